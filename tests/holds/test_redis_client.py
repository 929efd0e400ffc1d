"""Driver errors: the connection failing is an outage (retryable); Redis refusing
a command is a fault (a bug: INTERNAL), never reported as an outage."""

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
