# The seatwise service (and the Locust load generator, same image).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY proto ./proto
COPY seatmap ./seatmap
COPY rules ./rules
COPY holds ./holds
COPY server ./server
COPY loadtest ./loadtest
RUN uv sync --frozen --no-dev --group loadtest
ENV PATH=/opt/venv/bin:$PATH
EXPOSE 50051
ENTRYPOINT ["seatwise"]
CMD ["serve", "--host", "0.0.0.0"]
