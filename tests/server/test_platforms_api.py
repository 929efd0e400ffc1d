"""Platforms over organizers, end to end: sign-up, isolation, acting as an
organizer, suspension, the audit log, and keys written before platforms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from seatwise.v1 import events_pb2, platform_pb2, sales_pb2, tenancy_pb2

from holds.redis_client import AnyRedis
from server.app import create_server
from server.config import Config
from server.context import Stores
from tests.api import Api, field_violations
from tests.holds.platform.test_migration import load_v1
from tests.server.events import make_event


async def _platform(admin: Api, platform_id: str, **settings: object) -> str:
    """Create a platform; returns a platform-admin key for it."""
    await admin.platforms.CreatePlatform(
        platform_pb2.CreatePlatformRequest(platform_id=platform_id, name=platform_id.title(), **settings),  # type: ignore[arg-type]
        metadata=admin.metadata,
    )
    created = await admin.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_PLATFORM_ADMIN, platform_id=platform_id),
        metadata=admin.metadata,
    )
    return created.api_key


async def _sign_up(platform: Api, slug: str, **fields: object) -> platform_pb2.SignUpOrganizerResponse:
    request = platform_pb2.SignUpOrganizerRequest(
        **{"name": slug.title(), "slug": slug, "country": "DE", "accepted_terms_version": "v3"} | fields  # type: ignore[arg-type]
    )
    return await platform.platforms.SignUpOrganizer(request, metadata=platform.metadata)


@dataclass
class World:
    admin: Api
    p1: Api  # platform admin of p1
    p2: Api
    org1: Api  # organizer admin of an organizer of p1
    org1_id: str
    org2_id: str  # an organizer of p2
    server: str


@pytest.fixture
async def world(admin: Api, server: str) -> AsyncIterator[World]:
    key1 = await _platform(admin, "p1", terms_version="v3")
    key2 = await _platform(admin, "p2", terms_version="v3")
    async with Api(server, key1) as p1, Api(server, key2) as p2:
        signed1 = await _sign_up(p1, "fair-tickets")
        signed2 = await _sign_up(p2, "other-shows")
        async with Api(server, signed1.api_key) as org1:
            yield World(
                admin, p1, p2, org1, signed1.organizer.organizer_id, signed2.organizer.organizer_id, server
            )


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_signed_up_organizer_sells_at_once(world: World) -> None:
    me = await world.org1.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=world.org1.metadata)
    assert (me.tenant_id, me.platform_id, me.role) == (world.org1_id, "p1", tenancy_pb2.ROLE_ORGANIZER)
    event_id = await make_event(world.org1)
    shop_key = await world.org1.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT, label="shop"),
        metadata=world.org1.metadata,
    )
    async with Api(world.server, shop_key.api_key) as shop:
        held = await shop.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]), metadata=shop.metadata
        )
        order = await shop.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=held.hold.hold_token, idempotency_key="k1"),
            metadata=shop.metadata,
        )
    assert order.order.order_id
    got = await world.org1.platforms.GetOrganizer(
        platform_pb2.GetOrganizerRequest(), metadata=world.org1.metadata
    )
    assert (got.organizer.slug, got.organizer.country, got.organizer.terms_version) == (
        "fair-tickets",
        "DE",
        "v3",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"slug": "ab"}, "slug"),
        ({"slug": "Fair_Tickets"}, "slug"),
        ({"slug": "-fair"}, "slug"),
        ({"slug": "admin"}, "slug"),
        ({"slug": "a" * 41}, "slug"),
        ({"name": ""}, "name"),
        ({"name": "Fair\x00"}, "name"),
        ({"name": " Fair"}, "name"),
        ({"country": "Germany"}, "country"),
        ({"accepted_terms_version": "v2"}, "accepted_terms_version"),
        ({"plan_id": "gold"}, "plan_id"),
    ],
)
async def test_sign_up_is_validated_with_clear_errors(
    world: World, fields: dict[str, str], field: str
) -> None:
    request = {
        "name": "Good Name",
        "slug": "good-slug",
        "country": "FR",
        "accepted_terms_version": "v3",
    } | fields
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.p1.platforms.SignUpOrganizer(
            platform_pb2.SignUpOrganizerRequest(**request), metadata=world.p1.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == [field]


async def test_slugs_are_unique_within_a_platform_only(world: World) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _sign_up(world.p1, "fair-tickets")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await _sign_up(world.p2, "fair-tickets")  # another platform's namespace


async def test_a_platform_sees_only_its_own_organizers(world: World) -> None:
    listed = await world.p1.platforms.ListOrganizers(
        platform_pb2.ListOrganizersRequest(), metadata=world.p1.metadata
    )
    assert [o.organizer_id for o in listed.organizers] == [world.org1_id]
    tenants = await world.p1.tenants.ListTenants(tenancy_pb2.ListTenantsRequest(), metadata=world.p1.metadata)
    assert [t.tenant_id for t in tenants.tenants] == [world.org1_id]
    # another platform's organizer answers exactly as one that does not exist
    for organizer_id in (world.org2_id, "t_nonexistent"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.GetOrganizer(
                platform_pb2.GetOrganizerRequest(organizer_id=organizer_id), metadata=world.p1.metadata
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == f"organizer {organizer_id!r} not found"
    for platform_id in ("p2", "p9"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.ListOrganizers(
                platform_pb2.ListOrganizersRequest(platform_id=platform_id), metadata=world.p1.metadata
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == f"platform {platform_id!r} not found"


async def test_platform_admin_acts_on_its_organizers_only(world: World) -> None:
    async with Api(world.server, world.p1.metadata[0][1].removeprefix("Bearer "), world.org1_id) as acting:
        me = await acting.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=acting.metadata)
        assert (me.tenant_id, me.acting, me.role) == (world.org1_id, True, tenancy_pb2.ROLE_PLATFORM_ADMIN)
        await make_event(acting)  # support: sets an event up for the organizer
    for other in (world.org2_id, "t_nonexistent"):
        async with Api(world.server, world.p1.metadata[0][1].removeprefix("Bearer "), other) as spoof:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await spoof.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=spoof.metadata)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == f"organizer {other!r} not found"
    async with Api(world.server, world.admin.metadata[0][1].removeprefix("Bearer "), world.org2_id) as root:
        me = await root.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=root.metadata)
    assert (me.tenant_id, me.platform_id, me.acting) == (world.org2_id, "p2", True)


async def test_acted_as_calls_are_audited_for_the_organizer_and_its_platform(world: World) -> None:
    async with Api(world.server, world.p1.metadata[0][1].removeprefix("Bearer "), world.org1_id) as acting:
        await acting.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=acting.metadata)
    own = await world.org1.platforms.ListAuditLog(
        platform_pb2.ListAuditLogRequest(method="WhoAmI"), metadata=world.org1.metadata
    )
    (entry,) = own.entries
    assert (entry.acting, entry.organizer_id, entry.actor_platform_id, entry.outcome) == (
        True,
        world.org1_id,
        "p1",
        "OK",
    )
    assert entry.method == "TenantService/WhoAmI"
    platform_log = await world.p1.platforms.ListAuditLog(
        platform_pb2.ListAuditLogRequest(organizer_id=""), metadata=world.p1.metadata
    )
    methods = [e.method for e in platform_log.entries]
    assert methods[0] == "TenantService/WhoAmI"  # newest first
    assert "PlatformService/SignUpOrganizer" in methods
    other = await world.p2.platforms.ListAuditLog(
        platform_pb2.ListAuditLogRequest(), metadata=world.p2.metadata
    )
    assert all(e.organizer_id != world.org1_id for e in other.entries)


async def test_audit_log_pages(world: World) -> None:
    for i in range(5):
        await world.org1.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_REPORTING, label=f"r{i}"),
            metadata=world.org1.metadata,
        )
    seen: list[str] = []
    token = ""
    while True:
        page = await world.org1.platforms.ListAuditLog(
            platform_pb2.ListAuditLogRequest(method="CreateApiKey", page_size=2, page_token=token),
            metadata=world.org1.metadata,
        )
        seen += [e.targets["key_id"] for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.org1.platforms.ListAuditLog(
            platform_pb2.ListAuditLogRequest(page_token="forged"), metadata=world.org1.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("sales_continue", [False, True])
async def test_suspension(admin: Api, server: str, sales_continue: bool) -> None:
    key = await _platform(admin, "p1", terms_version="v3", public_sales_when_suspended=sales_continue)
    async with Api(server, key) as p1:
        signed = await _sign_up(p1, "fair-tickets")
        async with Api(server, signed.api_key) as org:
            event_id = await make_event(org)
            shop_key = (
                await org.tenants.CreateApiKey(
                    tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=org.metadata
                )
            ).api_key
            organizer_id = signed.organizer.organizer_id
            suspended = await p1.platforms.SuspendOrganizer(
                platform_pb2.SuspendOrganizerRequest(organizer_id=organizer_id, reason="unpaid invoices"),
                metadata=p1.metadata,
            )
            assert suspended.organizer.suspended
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await org.events.ListEvents(_list_events(), metadata=org.metadata)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "unpaid invoices" in (err.value.details() or "")
            async with Api(server, shop_key) as shop:
                code = await _code(
                    shop.holds.HoldSeats(
                        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]),
                        metadata=shop.metadata,
                    )
                )
                assert code == (grpc.StatusCode.OK if sales_continue else grpc.StatusCode.FAILED_PRECONDITION)
            async with Api(server, key, organizer_id) as support:  # the platform still acts on it
                await support.events.ListEvents(_list_events(), metadata=support.metadata)
            await p1.platforms.ReinstateOrganizer(
                platform_pb2.ReinstateOrganizerRequest(organizer_id=organizer_id), metadata=p1.metadata
            )
            await org.events.ListEvents(_list_events(), metadata=org.metadata)
            log = await org.platforms.ListAuditLog(platform_pb2.ListAuditLogRequest(), metadata=org.metadata)
            methods = [e.method for e in log.entries]
            assert "PlatformService/SuspendOrganizer" in methods
            assert "PlatformService/ReinstateOrganizer" in methods


def _list_events() -> events_pb2.ListEventsRequest:
    return events_pb2.ListEventsRequest()


async def test_keys_expire_and_organizers_mint_staff_keys_only(world: World) -> None:
    for role in (tenancy_pb2.ROLE_ORGANIZER, tenancy_pb2.ROLE_PLATFORM_ADMIN, tenancy_pb2.ROLE_ROOT_ADMIN):
        code = await _code(
            world.org1.tenants.CreateApiKey(
                tenancy_pb2.CreateApiKeyRequest(role=role), metadata=world.org1.metadata
            )
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED
    code = await _code(
        world.p1.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_ROOT_ADMIN), metadata=world.p1.metadata
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    request = tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT)
    request.expires_at.FromMilliseconds(1000)
    code = await _code(world.org1.tenants.CreateApiKey(request, metadata=world.org1.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_keys_written_before_platforms_keep_working(
    redis_client: AnyRedis, stores: Stores, tmp_path: Path
) -> None:
    secrets = await load_v1(redis_client)
    config = Config(port=0, data_dir=tmp_path, admin_key=secrets["bootstrap"])
    await stores.tenants.put_bootstrap_key(secrets["bootstrap"])
    grpc_server, port, _ = create_server(config, stores)
    await grpc_server.start()
    target = f"127.0.0.1:{port}"
    try:
        async with Api(target, secrets["admin"]) as old_admin, Api(target, secrets["organizer"]) as old_org:
            me = await old_admin.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=old_admin.metadata)
            assert me.role == tenancy_pb2.ROLE_ROOT_ADMIN
            listed = await old_admin.tenants.ListTenants(
                tenancy_pb2.ListTenantsRequest(), metadata=old_admin.metadata
            )
            assert [t.tenant_id for t in listed.tenants] == ["acme", "globex"]
            await old_admin.platforms.CreatePlatform(
                platform_pb2.CreatePlatformRequest(platform_id="p1", name="P1"), metadata=old_admin.metadata
            )
            me = await old_org.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=old_org.metadata)
            assert (me.tenant_id, me.role, me.platform_id) == ("acme", tenancy_pb2.ROLE_ORGANIZER, "")
            event_id = await make_event(old_org)
        async with Api(target, secrets["storefront"]) as old_shop:
            await old_shop.holds.HoldSeats(
                sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]), metadata=old_shop.metadata
            )
        async with Api(target, secrets["bootstrap"], "acme") as root:
            await root.tenants.ListApiKeys(tenancy_pb2.ListApiKeysRequest(), metadata=root.metadata)
        await asyncio.sleep(0)
    finally:
        await grpc_server.stop(None)


def _plan(plan_id: str = "basic", **overrides: object) -> platform_pb2.Plan:
    fields: dict[str, object] = {
        "plan_id": plan_id,
        "default_currency": "EUR",
        "prices": {"EUR": platform_pb2.PlanPrices(monthly_fee=2900, ticket_fee_fixed=50)},
        "ticket_fee_bps": 250,
    }
    return platform_pb2.Plan(**(fields | overrides))  # type: ignore[arg-type]


async def test_plans_per_platform_and_chosen_at_sign_up(world: World) -> None:
    created = await world.p1.platforms.CreatePlan(
        platform_pb2.CreatePlanRequest(plan=_plan()), metadata=world.p1.metadata
    )
    assert (created.plan.ticket_fee_bps, created.plan.refund_policy) == (250, "full")
    assert (
        await _code(
            world.p1.platforms.CreatePlan(
                platform_pb2.CreatePlanRequest(plan=_plan()), metadata=world.p1.metadata
            )
        )
        == grpc.StatusCode.ALREADY_EXISTS
    )
    for bad in (_plan("x", default_currency="USD"), _plan("y", ticket_fee_bps=10_001), _plan("bad id")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.CreatePlan(
                platform_pb2.CreatePlanRequest(plan=bad), metadata=world.p1.metadata
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    signed = await _sign_up(world.p1, "with-plan", plan_id="basic")
    assert signed.organizer.plan_id == "basic"
    seen = await world.org1.platforms.ListPlans(platform_pb2.ListPlansRequest(), metadata=world.org1.metadata)
    assert [p.plan_id for p in seen.plans] == ["basic"]
    other = await world.p2.platforms.ListPlans(platform_pb2.ListPlansRequest(), metadata=world.p2.metadata)
    assert list(other.plans) == []
    assert (
        await _code(
            world.p2.platforms.CreatePlan(
                platform_pb2.CreatePlanRequest(platform_id="p1", plan=_plan("z")), metadata=world.p2.metadata
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )
    log = await world.p1.platforms.ListAuditLog(
        platform_pb2.ListAuditLogRequest(method="CreatePlan"), metadata=world.p1.metadata
    )
    assert [e.outcome for e in log.entries] == ["INVALID_ARGUMENT"] * 3 + ["ALREADY_EXISTS", "OK"]
