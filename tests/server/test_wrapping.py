"""The wrapper around every RPC, called directly: budgets and registration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import msgspec
import pytest
from seatwise.v1 import tenancy_pb2

from holds.platform.platforms import PlatformStore
from holds.platform.tenants import TenantStore
from holds.records import TenantRecord
from holds.redis_client import AnyRedis
from server.admission import Admission
from server.auth import TENANT_HEADER, current_principal
from server.context import Stores
from server.deadlines import Budgets, call_budget
from server.declarations import MethodRule
from server.servicers import tenancy
from server.wrapping import RpcWrapper
from tests.clock import Clock

T = TypeVar("T")

WHO_AM_I = "/seatwise.v1.TenantService/WhoAmI"
WHO_AM_I_RULE = tenancy.SERVICE.methods["WhoAmI"]


class FakeContext:
    """What the wrapper uses of a grpc.aio servicer context; aborts are recorded."""

    def __init__(self, api_key: str, time_remaining: float | None, tenant: str = "") -> None:
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {api_key}"),)
        if tenant:
            self._metadata += ((TENANT_HEADER, tenant),)
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
    stores: Stores,
    admission: Admission,
    behaviour: Any,
    rule: MethodRule | None = WHO_AM_I_RULE,
    budgets: Budgets | None = None,
) -> Any:
    handler = RpcWrapper(stores.tenants, admission, budgets=budgets).wrap(
        WHO_AM_I,
        grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=tenancy_pb2.WhoAmIRequest.FromString
        ),
        rule,
    )
    return handler.unary_unary


class RecordedBudgets(Budgets):
    """Budgets that remember the budget each call was given."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[float] = []

    async def within(self, budget_s: float, work: Awaitable[T]) -> T:
        self.given.append(budget_s)
        return await super().within(budget_s, work)


async def test_a_call_past_its_budget_answers_unavailable_before_the_client_deadline(stores: Stores) -> None:
    key = await _key(stores)
    admission = Admission()
    budgets = RecordedBudgets()

    async def stuck(request: Any, context: Any) -> Any:
        await asyncio.sleep(30)  # a store that never answers

    unary = _wrapped(stores, admission, stuck, budgets=budgets)
    context = FakeContext(key, time_remaining=0.5)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AbortError):
        await unary(tenancy_pb2.WhoAmIRequest(), context)
    took = time.monotonic() - started
    code, details = context.status
    assert code == grpc.StatusCode.UNAVAILABLE  # the budget ended it: the store never answered
    assert "retry" in details
    # the budget is the client's deadline less a margin (how soon it fires is the sweep's,
    # tested in test_deadlines.py; a wall-time bound here would flake on a loaded machine)
    assert budgets.given == [call_budget(0.5)]
    assert call_budget(0.5) < 0.5
    assert took >= call_budget(0.5) - 0.005  # not cut short before its budget
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


# -- principals kept between calls (server/principals.py) -----------------------------------


class CountingTenants(TenantStore):
    """Counts the resolutions that verify a key, to tell a kept principal from a new one."""

    verified = 0

    async def verify(self, api_key: str, *, fresh: bool = False) -> Any:
        self.verified += 1
        return await super().verify(api_key, fresh=fresh)


def _whoami(tenants: TenantStore, clock: Clock, platforms: PlatformStore | None = None) -> Any:
    async def whoami(request: Any, context: Any) -> Any:
        return tenancy_pb2.WhoAmIResponse(tenant_id=current_principal().tenant_id)

    wrapper = RpcWrapper(tenants, Admission(), platforms=platforms, clock=clock)
    handler = grpc.unary_unary_rpc_method_handler(whoami)
    return wrapper.wrap(WHO_AM_I, handler, WHO_AM_I_RULE).unary_unary


async def _call(unary: Any, key: str, tenant: str = "") -> tuple[grpc.StatusCode, str]:
    context = FakeContext(key, time_remaining=5.0, tenant=tenant)
    try:
        reply = await unary(tenancy_pb2.WhoAmIRequest(), context)
    except grpc.aio.AbortError:
        return context.status[0], ""
    return grpc.StatusCode.OK, reply.tenant_id


@dataclass
class Acme:
    """An organizer with an organizer key, and WhoAmI wrapped on a clock of the test's."""

    clock: Clock
    tenants: CountingTenants
    organizer: TenantRecord
    key_id: str
    key: str
    unary: Any


async def _acme(redis_client: AnyRedis) -> Acme:
    clock = Clock()
    tenants = CountingTenants(redis_client, clock=clock)
    organizer = await tenants.create_tenant("acme", "Acme")
    record, key = await tenants.create_key("acme", "organizer", "test")
    return Acme(clock, tenants, organizer, record.key_id, key, _whoami(tenants, clock))


async def test_a_kept_principal_lasts_no_longer_than_the_key_record_it_came_from(
    redis_client: AnyRedis,
) -> None:
    acme = await _acme(redis_client)
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.OK, "acme")
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.OK, "acme")
    assert acme.tenants.verified == 1  # the second call was served by the kept principal
    # another server process revokes the key: this one learns it when its record goes stale
    await TenantStore(redis_client).revoke_key(acme.key_id, None)
    acme.clock.now += 4.9
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.OK, "acme")
    acme.clock.now += 0.1  # the key record read at 1000.0 was fresh for 5 s
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.UNAUTHENTICATED, "")


async def test_a_fresh_key_check_sees_another_process_revocation_and_ends_what_was_kept(
    redis_client: AnyRedis,
) -> None:
    acme = await _acme(redis_client)
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.OK, "acme")
    await TenantStore(redis_client).revoke_key(acme.key_id, None)  # by another server process
    assert await acme.tenants.verify(acme.key) is not None  # the cached record: fresh for 5 s
    assert await acme.tenants.verify(acme.key, fresh=True) is None  # as an open stream checks it
    # the record read is this process's news: the principal kept from it is gone too
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.UNAUTHENTICATED, "")


async def test_a_key_revoked_by_this_process_is_refused_at_the_next_call(redis_client: AnyRedis) -> None:
    acme = await _acme(redis_client)
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.OK, "acme")
    await acme.tenants.revoke_key(acme.key_id, None)
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.UNAUTHENTICATED, "")


async def test_an_organizer_suspended_by_this_process_is_refused_at_the_next_call(
    redis_client: AnyRedis,
) -> None:
    acme = await _acme(redis_client)
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.OK, "acme")
    suspended = msgspec.structs.replace(acme.organizer, suspended=True, suspended_reason="test")
    await acme.tenants.put_tenant(suspended)
    assert await _call(acme.unary, acme.key) == (grpc.StatusCode.FAILED_PRECONDITION, "")


async def test_an_organizer_record_read_later_bounds_the_kept_principal(redis_client: AnyRedis) -> None:
    clock = Clock()
    tenants = TenantStore(redis_client, clock=clock)
    organizer = await tenants.create_tenant("acme", "Acme")
    _record, key = await tenants.create_key("acme", "organizer", "test")
    await tenants.verify(key)  # the key record is read at 1000.0 ...
    clock.now = 1003.0
    unary = _whoami(tenants, clock)
    assert await _call(unary, key) == (grpc.StatusCode.OK, "acme")  # ... the organizer's at 1003.0
    suspended = msgspec.structs.replace(organizer, suspended=True, suspended_reason="test")
    await TenantStore(redis_client).put_tenant(suspended)  # by another process
    clock.now = 1005.5  # the key record is read again; the organizer's is still fresh
    assert await _call(unary, key) == (grpc.StatusCode.OK, "acme")
    clock.now = 1007.9
    assert await _call(unary, key) == (grpc.StatusCode.OK, "acme")
    clock.now = 1008.0  # the organizer record read at 1003.0 is stale
    assert await _call(unary, key) == (grpc.StatusCode.FAILED_PRECONDITION, "")


async def test_a_platform_changed_by_this_process_drops_the_principals_it_decided(
    redis_client: AnyRedis,
) -> None:
    clock = Clock()
    tenants = TenantStore(redis_client, clock=clock)
    platforms = PlatformStore(redis_client, tenants)
    await platforms.create("p1", "Platform", "v1", public_sales_when_suspended=True)
    organizer = await tenants.create_tenant("acme", "Acme", platform_id="p1")
    await tenants.put_tenant(msgspec.structs.replace(organizer, suspended=True, suspended_reason="unpaid"))
    _record, shop = await tenants.create_key("acme", "storefront", "shop", platform_id="p1")
    unary = _whoami(tenants, clock, platforms)
    assert await _call(unary, shop) == (grpc.StatusCode.OK, "acme")  # public sales go on
    await platforms.update("p1", terms_version=None, public_sales_when_suspended=False)
    assert await _call(unary, shop) == (grpc.StatusCode.FAILED_PRECONDITION, "")


async def test_a_platform_record_read_earlier_bounds_the_kept_principal(redis_client: AnyRedis) -> None:
    clock = Clock()
    tenants = TenantStore(redis_client, clock=clock)
    platforms = PlatformStore(redis_client, tenants, clock=clock)
    await platforms.create("p1", "Platform", "v1", public_sales_when_suspended=True)
    organizer = await tenants.create_tenant("acme", "Acme", platform_id="p1")
    await tenants.put_tenant(msgspec.structs.replace(organizer, suspended=True, suspended_reason="unpaid"))
    _record, shop = await tenants.create_key("acme", "storefront", "shop", platform_id="p1")
    await platforms.cached_fresh("p1")  # the platform record is read at 1000.0 ...
    clock.now = 1003.0
    unary = _whoami(tenants, clock, platforms)
    assert await _call(unary, shop) == (grpc.StatusCode.OK, "acme")  # ... the key's and organizer's at 1003.0
    other_process = PlatformStore(redis_client, TenantStore(redis_client))
    await other_process.update("p1", terms_version=None, public_sales_when_suspended=False)
    clock.now = 1004.9
    assert await _call(unary, shop) == (grpc.StatusCode.OK, "acme")
    clock.now = 1005.0  # the platform record read at 1000.0 is stale
    assert await _call(unary, shop) == (grpc.StatusCode.FAILED_PRECONDITION, "")


async def test_an_operator_acting_on_two_organizers_is_kept_apart(redis_client: AnyRedis) -> None:
    clock = Clock()
    tenants = TenantStore(redis_client, clock=clock)
    await tenants.create_tenant("acme", "Acme")
    await tenants.create_tenant("beta", "Beta")
    _record, admin = await tenants.create_key("", "root_admin", "ops")
    unary = _whoami(tenants, clock)
    for _ in range(2):
        assert await _call(unary, admin, tenant="acme") == (grpc.StatusCode.OK, "acme")
        assert await _call(unary, admin, tenant="beta") == (grpc.StatusCode.OK, "beta")
        assert await _call(unary, admin, tenant="gone") == (grpc.StatusCode.NOT_FOUND, "")
