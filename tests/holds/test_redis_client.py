"""Which driver failures are the store being unavailable (retryable) and which are bugs."""

from __future__ import annotations

import pytest

from holds.errors import StoreUnavailable
from holds.redis_client import store_error, wrap_errors

# what uvloop raises when redis-py writes to a connection a failover closed
CLOSED = (
    "unable to perform operation on <TCPTransport closed=True reading=False 0x7f1c2c0b7a00>;"
    " the handler is closed"
)


def test_a_write_on_a_transport_closed_under_it_is_unavailable() -> None:
    mapped = store_error("script commit", RuntimeError(CLOSED))
    assert isinstance(mapped, StoreUnavailable)
    assert "connection closed" in str(mapped)


def _raised_in(filename: str, exc: Exception) -> Exception:
    try:
        exec(compile("raise exc", filename, "exec"), {"exc": exc})
    except Exception as raised:
        return raised
    raise AssertionError("not raised")


def test_a_write_after_redis_py_dropped_the_connection_is_unavailable() -> None:
    message = "'NoneType' object has no attribute 'writelines'"
    inside = _raised_in("/venv/site-packages/redis/asyncio/connection.py", AttributeError(message))
    assert isinstance(store_error("script hold", inside), StoreUnavailable)
    elsewhere = _raised_in("/work/holds/sales.py", AttributeError(message))
    assert store_error("script hold", elsewhere) is None  # our own None bug stays a bug


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("dictionary changed size during iteration"),
        RuntimeError("unable to perform operation on nothing in particular"),
        ValueError(CLOSED),  # only uvloop's RuntimeError, by its message
    ],
)
def test_other_runtime_errors_stay_bugs(exc: Exception) -> None:
    assert store_error("script commit", exc) is None


async def test_wrap_errors_raises_the_mapped_error() -> None:
    with pytest.raises(StoreUnavailable):
        async with wrap_errors("script hold"):
            raise RuntimeError(CLOSED)
    with pytest.raises(RuntimeError):
        async with wrap_errors("script hold"):
            raise RuntimeError("a bug")
