"""Structured logs (structlog): key=value on a terminal, JSON lines in production.

Every line logged while a call is served carries its ``request_id``
(``server/request_ids.py``), so an operator goes from a client's error (its
``RequestInfo`` detail) to the server's lines about it. Secrets never reach a
log: API keys are identified by key id only, and nothing logs request
messages or metadata; as a second line of defence, :func:`redact` replaces the
value of any field named like a secret or a buyer's personal data, and any
text that looks like an API key, before a line is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from server import request_ids

REDACTED = "[redacted]"
# field names whose values are never written (an API key, a buyer's personal data)
SECRET_FIELDS = frozenset(
    {"authorization", "api_key", "secret", "password", "email", "name", "buyer", "payment_reference", "phone"}
)
# an API key as the tenant store mints it (sw_<key id>_<secret>)
_API_KEY = re.compile(r"sw_[A-Za-z0-9]+_[A-Za-z0-9_\-]{8,}")
_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")


def add_request_id(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The request id of the call being served, if any."""
    request_id = request_ids.current()
    if request_id:
        event.setdefault("request_id", request_id)
    return event


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if "sw_" in value:
            value = _API_KEY.sub(REDACTED, value)
        if "@" in value:
            value = _EMAIL.sub(REDACTED, value)
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Values of secret-named fields replaced; API-key- and e-mail-shaped text masked
    in every other value (an exception's text included)."""
    for key, value in event.items():
        event[key] = REDACTED if key in SECRET_FIELDS else _scrub(value)
    return event


def configure(
    log_format: str = "console", level: str = "info", *, stream: TextIO | None = None, cache: bool = True
) -> None:
    """Configure structlog for the process (``stream``: stderr; tests pass their own
    and ``cache=False``, so loggers are not bound to a stream for good)."""
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=cache,
    )
