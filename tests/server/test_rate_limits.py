"""Per-event rate limits on hold-taking calls (server/ratelimit.py), end to end.

Windows are an hour long, so every test counts calls within one window and no
timing is asserted. Runs on a single Redis and on a cluster (tests/server/conftest.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from seatwise.v1 import events_pb2, sales_pb2, tenancy_pb2

from server.context import Stores
from server.ratelimit import storage_uri
from tests.api import Api, field_violations, status_of
from tests.conftest import ADMIN_KEY
from tests.processes import free_port, spawn_serve, wait_serving
from tests.server.events import make_event
from tests.server.test_sessions import Session

PER_HOUR = "3/hour"


async def _hold_ga(api: Api, event_id: str, buyer: str = "") -> status_pb2.Status | sales_pb2.HoldResponse:
    """One GA place for ``buyer``: the reply, or the rich status of the refusal."""
    request = sales_pb2.HoldGeneralAdmissionRequest(
        event_id=event_id, area_id="floor", quantity=1, buyer_id=buyer
    )
    try:
        return await api.holds.HoldGeneralAdmission(request, metadata=api.metadata)
    except grpc.aio.AioRpcError as exc:
        return status_of(exc)


def _refusal(status: object) -> tuple[str, float]:
    """(the limit named, the retry delay in seconds) of a RESOURCE_EXHAUSTED status."""
    assert isinstance(status, status_pb2.Status), status
    assert status.code == code_pb2.RESOURCE_EXHAUSTED, status
    retry, quota = error_details_pb2.RetryInfo(), error_details_pb2.QuotaFailure()
    assert any(d.Unpack(retry) for d in status.details), status
    assert any(d.Unpack(quota) for d in status.details), status
    return quota.violations[0].subject, retry.retry_delay.ToTimedelta().total_seconds()


async def _storefront(organizer: Api) -> Api:
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    return Api(organizer.target, created.api_key)


async def test_per_buyer_limit_refuses_with_retry_info(organizer: Api) -> None:
    event_id = await make_event(organizer, ga=50, rate_limit_per_buyer=PER_HOUR)
    for _ in range(3):
        assert isinstance(await _hold_ga(organizer, event_id, "bot"), sales_pb2.HoldResponse)
    limit, delay = _refusal(await _hold_ga(organizer, event_id, "bot"))
    assert limit == "rate_limit_per_buyer"
    assert 0 < delay <= 3600
    # another buyer has its own count; a buyer-less call is not limited per buyer
    assert isinstance(await _hold_ga(organizer, event_id, "human"), sales_pb2.HoldResponse)
    for _ in range(4):
        assert isinstance(await _hold_ga(organizer, event_id), sales_pb2.HoldResponse)
    # every hold-taking call counts, not only GA
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"], buyer_id="bot"),
            metadata=organizer.metadata,
        )
    assert _refusal(status_of(err.value))[0] == "rate_limit_per_buyer"


async def test_per_key_limit_is_per_key(organizer: Api) -> None:
    event_id = await make_event(organizer, ga=50, rate_limit_per_key=PER_HOUR)
    for n in range(3):
        assert isinstance(await _hold_ga(organizer, event_id, f"b{n}"), sales_pb2.HoldResponse)
    assert _refusal(await _hold_ga(organizer, event_id, "b9"))[0] == "rate_limit_per_key"
    assert _refusal(await _hold_ga(organizer, event_id))[0] == "rate_limit_per_key"  # buyer-less too
    # another key of the organizer has its own count
    async with await _storefront(organizer) as other_key:
        for _ in range(3):
            assert isinstance(await _hold_ga(other_key, event_id), sales_pb2.HoldResponse)


async def test_limits_are_per_event_and_can_be_removed(organizer: Api) -> None:
    limited = await make_event(organizer, ga=50, rate_limit_per_key="1/hour")
    free = await make_event(organizer, ga=50)
    for _ in range(5):
        assert isinstance(await _hold_ga(organizer, free, "bot"), sales_pb2.HoldResponse)
    assert isinstance(await _hold_ga(organizer, limited), sales_pb2.HoldResponse)
    assert isinstance(await _hold_ga(organizer, limited), status_pb2.Status)
    got = await organizer.events.GetEvent(
        events_pb2.GetEventRequest(event_id=limited), metadata=organizer.metadata
    )
    assert got.event.rate_limit_per_key == "1/hour"
    assert got.event.rate_limit_per_buyer == ""
    updated = await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=limited, rate_limit_per_key="none"),
        metadata=organizer.metadata,
    )
    assert updated.event.rate_limit_per_key == ""


@pytest.mark.parametrize("value", ["lots", "0/second", "1/second;2/minute"])
async def test_bad_limits_name_the_field(organizer: Api, value: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await make_event(organizer, rate_limit_per_buyer=value)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == ["rate_limit_per_buyer"]


async def test_another_organizers_limited_event_is_not_found(admin: Api, organizer: Api) -> None:
    event_id = await make_event(organizer, ga=50, rate_limit_per_key="1/hour")
    async with Api(organizer.target, await admin.new_tenant_key("rival")) as rival:
        for _ in range(2):
            status = await _hold_ga(rival, event_id)
            assert isinstance(status, status_pb2.Status)
            assert status.code == code_pb2.NOT_FOUND


async def test_limits_apply_per_message_in_sessions(organizer: Api) -> None:
    event_id = await make_event(organizer, ga=50, rate_limit_per_buyer="2/hour")
    session = Session(organizer)
    try:
        request = sales_pb2.HoldGeneralAdmissionRequest(
            event_id=event_id, area_id="floor", quantity=1, buyer_id="bot"
        )
        for _ in range(2):
            answer = await session.ask(hold_general_admission=request)
            assert answer.WhichOneof("result") == "hold", answer
        refused = await session.ask(hold_general_admission=request)
        assert refused.WhichOneof("result") == "error"
        assert _refusal(refused.error)[0] == "rate_limit_per_buyer"
        # the stream goes on: another buyer is served
        request.buyer_id = "human"
        assert (await session.ask(hold_general_admission=request)).WhichOneof("result") == "hold"
    finally:
        session.call.cancel()


def test_storage_uris() -> None:
    assert storage_uri("redis://h:1/0") == "async+redis://h:1/0"
    assert storage_uri("unix:///tmp/r.sock") == "async+redis+unix:///tmp/r.sock"
    assert storage_uri("redis+cluster://h:7000") == "async+redis+cluster://h:7000"


@pytest.fixture
def two_servers(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two `seatwise serve` processes on the same Redis."""
    targets, children = [], []
    try:
        for n in range(2):
            port = free_port()
            children.append(
                spawn_serve(
                    {
                        "port": str(port),
                        "redis_url": redis_url,
                        "admin_key": ADMIN_KEY,
                        "data_dir": str(tmp_path / f"s{n}"),
                    },
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            targets.append(f"127.0.0.1:{port}")
        for target in targets:
            wait_serving(target)
        yield targets[0], targets[1]
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=30)


async def test_the_count_is_shared_by_server_processes(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    async with Api(first, ADMIN_KEY) as admin:
        key = await admin.new_tenant_key("shared")
    async with Api(first, key) as a, Api(second, key) as b:
        event_id = await make_event(a, ga=50, rate_limit_per_key=PER_HOUR)
        assert isinstance(await _hold_ga(a, event_id), sales_pb2.HoldResponse)
        assert isinstance(await _hold_ga(b, event_id), sales_pb2.HoldResponse)
        assert isinstance(await _hold_ga(a, event_id), sales_pb2.HoldResponse)
        assert _refusal(await _hold_ga(b, event_id))[0] == "rate_limit_per_key"
        assert _refusal(await _hold_ga(a, event_id))[0] == "rate_limit_per_key"


async def test_an_event_without_limits_costs_no_round_trip_per_hold(
    organizer: Api, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await make_event(organizer, ga=50)
    reads = 0
    original = stores.redis.hmget

    async def hmget(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(stores.rate_limits, "_r", SimpleNamespace(hmget=hmget))
    for _ in range(5):
        await stores.rate_limits.check(event_id, "k", "b")
    assert reads <= 1  # its limits are read once per SETTINGS_TTL_S, then cached
