"""Driver errors: the connection failing is an outage (retryable); Redis refusing
a command is a fault (a bug: INTERNAL), never reported as an outage; other
exceptions are bugs, except the two a connection closed under redis-py raises."""

from __future__ import annotations

import pytest
import redis.exceptions

from holds.errors import StoreFault, StoreUnavailable
from holds.redis_client import AnyRedis, store_error, wrap_errors
from holds.seatmaps import SeatMapStore
from server.errors import to_status


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading"),
        redis.exceptions.BusyLoadingError("loading"),
        redis.exceptions.ReadOnlyError("READONLY"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
        redis.exceptions.OutOfMemoryError("OOM command not allowed"),
        redis.exceptions.MovedError("3999 127.0.0.1:6381"),
        OSError("broken pipe"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_failures_are_unavailable(exc: Exception) -> None:
    assert isinstance(store_error("op", exc), StoreUnavailable)


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ResponseError("value is not an integer or out of range"),
        redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        redis.exceptions.NoPermissionError("NOPERM"),
        redis.exceptions.DataError("Invalid input of type: 'dict'"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_error_replies_are_faults_not_outages(exc: Exception) -> None:
    mapped = store_error("op", exc)
    assert isinstance(mapped, StoreFault)
    status = to_status(mapped)
    assert status is not None
    assert status.code == 13  # INTERNAL
    assert "retry" not in status.message
    assert str(exc) not in status.message


def test_noscript_is_left_to_the_script_runner() -> None:
    assert store_error("op", redis.exceptions.NoScriptError("NOSCRIPT")) is None


async def test_a_reply_error_from_redis_is_a_fault(redis_client: AnyRedis) -> None:
    """What a forged 2^63 page offset did: ZREVRANGE refuses the index."""
    from holds.scripts import ScriptRegistry

    store = SeatMapStore(redis_client, ScriptRegistry.open(redis_client))
    with pytest.raises(StoreFault):
        await store.list_latest("acme", 2**63, 10)
    await redis_client.set("sw:test:s", "x")
    with pytest.raises(StoreFault):
        async with wrap_errors("incr a string"):
            await redis_client.incr("sw:test:s")


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
