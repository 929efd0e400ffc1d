"""A sales session's key: checked once as the stream opens, then read from Redis
every REVALIDATE_S beside it, so a key revoked by any process ends the stream
whatever this process has cached (server/wrapping.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from seatwise.v1 import sales_pb2, tenancy_pb2

from holds.platform.tenants import TenantStore
from holds.redis_client import AnyRedis
from server import wrapping
from server.context import Stores
from tests.api import Api
from tests.server.events import make_event
from tests.server.test_sessions import Session

SESSION = "/seatwise.v1.SalesService/Session"


async def _storefront(organizer: Api) -> tuple[str, str]:
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    return created.api_key, created.key.key_id


async def test_a_key_revoked_by_another_process_ends_the_session_whatever_is_cached(
    organizer: Api, stores: Stores, redis_client: AnyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # this process would trust its cached key for an hour: only the stream's own
    # read of the key from Redis can see the revocation
    monkeypatch.setattr(stores.tenants._keys, "ttl_s", 3600.0)
    monkeypatch.setattr(wrapping, "REVALIDATE_S", 0.05)
    event_id = await make_event(organizer)
    api_key, key_id = await _storefront(organizer)
    async with Api(organizer.target, api_key) as shop:
        session = Session(shop)
        held = await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
        assert held.WhichOneof("result") == "hold"
        token = held.hold.hold.hold_token
        # a unary call too, so this process keeps the resolved caller as well
        await shop.holds.GetHold(sales_pb2.GetHoldRequest(hold_token=token), metadata=shop.metadata)

        await TenantStore(redis_client).revoke_key(key_id, None)  # another process's store

        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(session.call.read(), timeout=30)
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # what the stream saw is this process's news too: its unary calls are refused at once
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await shop.holds.GetHold(sales_pb2.GetHoldRequest(hold_token=token), metadata=shop.metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_session_is_authenticated_once_however_many_messages_it_carries(
    organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wrapping, "REVALIDATE_S", 3600.0)  # no re-check during the test
    resolved: list[str] = []
    principal = wrapping.RpcWrapper._principal

    async def counted(self: wrapping.RpcWrapper, method: str, *args: Any, **kwargs: Any) -> Any:
        resolved.append(method)
        return await principal(self, method, *args, **kwargs)

    monkeypatch.setattr(wrapping.RpcWrapper, "_principal", counted)
    event_id = await make_event(organizer)
    session = Session(organizer)
    try:
        for n in range(12):
            answer = await session.ask(
                hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=[f"r{n // 6}-{n % 6}"])
            )
            assert answer.WhichOneof("result") == "hold", answer
    finally:
        session.call.cancel()
    assert resolved.count(SESSION) == 1
