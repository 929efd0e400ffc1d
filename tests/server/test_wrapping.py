"""The wrapper around every RPC, called directly: budgets and registration."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from seatwise.v1 import tenancy_pb2

from server.admission import Admission
from server.context import Stores
from server.declarations import MethodRule
from server.servicers import tenancy
from server.wrapping import RpcWrapper

WHO_AM_I = "/seatwise.v1.TenantService/WhoAmI"
WHO_AM_I_RULE = tenancy.SERVICE.methods["WhoAmI"]


class FakeContext:
    """What the wrapper uses of a grpc.aio servicer context; aborts are recorded."""

    def __init__(self, api_key: str, time_remaining: float | None) -> None:
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._time_remaining = time_remaining
        self.status: Any = None
        self.trailers: Any = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return self._time_remaining

    def set_trailing_metadata(self, trailers: Any) -> None:
        self.trailers = trailers

    async def abort(self, code: grpc.StatusCode, details: str, trailers: Any = ()) -> None:
        self.status = (code, details)
        self.trailers = trailers or self.trailers
        raise grpc.aio.AbortError()


async def _key(stores: Stores) -> str:
    await stores.tenants.create_tenant("acme", "Acme")
    _record, key = await stores.tenants.create_key("acme", "organizer", "test")
    return key


def _wrapped(
    stores: Stores, admission: Admission, behaviour: Any, rule: MethodRule | None = WHO_AM_I_RULE
) -> Any:
    handler = RpcWrapper(stores.tenants, admission).wrap(
        WHO_AM_I,
        grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=tenancy_pb2.WhoAmIRequest.FromString
        ),
        rule,
    )
    return handler.unary_unary


async def test_a_call_past_its_budget_answers_unavailable_in_time(stores: Stores) -> None:
    key = await _key(stores)
    admission = Admission()

    async def stuck(request: Any, context: Any) -> Any:
        await asyncio.sleep(30)  # a store that never answers

    unary = _wrapped(stores, admission, stuck)
    context = FakeContext(key, time_remaining=0.5)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AbortError):
        await unary(tenancy_pb2.WhoAmIRequest(), context)
    took = time.monotonic() - started
    code, details = context.status
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "retry" in details
    assert took < 0.5 + 0.5  # the budget ends before 0.5 s; slack for a loaded machine
    assert took >= 0.5 - 0.05 - 0.01
    assert admission.inflight == 0
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the budget's cancellation was taken back


async def test_a_call_within_its_budget_is_untouched(stores: Stores) -> None:
    key = await _key(stores)
    reply = tenancy_pb2.WhoAmIResponse(tenant_id="acme")

    async def quick(request: Any, context: Any) -> Any:
        await asyncio.sleep(0.05)
        return reply

    unary = _wrapped(stores, Admission(), quick)
    context = FakeContext(key, time_remaining=0.5)
    replies = await asyncio.gather(*(unary(tenancy_pb2.WhoAmIRequest(), context) for _ in range(20)))
    assert replies == [reply] * 20
    assert context.status is None


async def test_a_method_without_a_rule_refuses_every_key(stores: Stores) -> None:
    key = await _key(stores)

    async def quick(request: Any, context: Any) -> Any:
        return tenancy_pb2.WhoAmIResponse()

    unary = _wrapped(stores, Admission(), quick, rule=None)
    context = FakeContext(key, time_remaining=0.5)
    with pytest.raises(grpc.aio.AbortError):
        await unary(tenancy_pb2.WhoAmIRequest(), context)
    code, details = context.status
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "not open to API keys" in details


async def test_a_call_cancelled_from_elsewhere_is_not_taken_for_a_timeout(stores: Stores) -> None:
    key = await _key(stores)
    admission = Admission()
    started = asyncio.Event()

    async def stuck(request: Any, context: Any) -> Any:
        started.set()
        await asyncio.sleep(30)

    unary = _wrapped(stores, admission, stuck)
    context = FakeContext(key, time_remaining=5.0)
    call = asyncio.create_task(unary(tenancy_pb2.WhoAmIRequest(), context))
    await started.wait()
    call.cancel()  # the client went away, or the server is stopping
    with pytest.raises(asyncio.CancelledError):
        await call
    assert context.status is None  # no status for a caller that left
    assert admission.inflight == 0


def test_register_refuses_a_service_that_registered_nothing(stores: Stores) -> None:
    def add_nothing(servicer: Any, server: Any) -> None:
        server.add_generic_rpc_handlers(())

    with pytest.raises(RuntimeError, match="registered no method handlers"):
        RpcWrapper(stores.tenants).register(grpc.aio.server(), add_nothing, object(), {})
