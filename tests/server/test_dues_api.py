"""Billing automation, with the clock injected: an organizer whose statement stays
unpaid past its platform's grace period is suspended (audited), and reinstated by
MarkStatementPaid; nothing else is touched."""

from __future__ import annotations

import time

import grpc
import pytest
from seatwise.v1 import platform_pb2, sales_pb2, tenancy_pb2

from holds.platform.dues import DAY_MS, period_bounds
from holds.platform.notifications import period_of
from server.context import Stores
from tests.api import Api, field_violations
from tests.server import test_platforms_api
from tests.server.events import make_event
from tests.server.test_platforms_api import World
from tests.server.test_statements_api import planned_organizer, sell

world = test_platforms_api.world  # two platforms, an organizer of each
GRACE_DAYS = 3


async def _owing_organizer(world: World) -> tuple[str, Api]:
    """An organizer of p1 that sold with its own payment account: it owes p1 its fees."""
    await world.p1.platforms.UpdatePlatform(
        platform_pb2.UpdatePlatformRequest(billing_grace_days=GRACE_DAYS), metadata=world.p1.metadata
    )
    org_id, key = await planned_organizer(world)
    org = Api(world.server, key)
    event_id = await make_event(org)
    await sell(org, event_id, "k1", "r0-0", collector=sales_pb2.COLLECTOR_ORGANIZER, payment_method="cash")
    return org_id, org


async def _organizer(world: World, organizer_id: str) -> platform_pb2.Organizer:
    got = await world.p1.platforms.GetOrganizer(
        platform_pb2.GetOrganizerRequest(organizer_id=organizer_id), metadata=world.p1.metadata
    )
    return got.organizer


async def test_unpaid_past_grace_suspends_and_paid_reinstates(world: World, stores: Stores) -> None:
    org_id, org = await _owing_organizer(world)
    period = period_of(int(time.time() * 1000))
    end = period_bounds(period).end_ms
    async with org:
        # the period has not ended, then it has but the grace period has not passed
        assert await stores.dues.run_once(end - 1) == []
        assert await stores.dues.run_once(end + GRACE_DAYS * DAY_MS - 1) == []
        assert not (await _organizer(world, org_id)).suspended
        # exactly at the end of the grace period
        assert await stores.dues.run_once(end + GRACE_DAYS * DAY_MS) == [org_id]
        assert await stores.dues.run_once(end + GRACE_DAYS * DAY_MS + 1) == []  # once
        suspended = await _organizer(world, org_id)
        assert (suspended.suspended, suspended.suspended_for_billing) == (True, True)
        assert f"unpaid statement for {period}" in suspended.suspended_reason
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await org.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=org.metadata)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "unpaid statement" in (err.value.details() or "")
        log = await world.p1.platforms.ListAuditLog(
            platform_pb2.ListAuditLogRequest(method="billing/SuspendUnpaid"), metadata=world.p1.metadata
        )
        (entry,) = log.entries
        assert (entry.organizer_id, entry.targets["period"], entry.actor_role) == (org_id, period, 0)

        stores.dues.clock = lambda: end + (GRACE_DAYS + 1) * DAY_MS
        paid = await world.p1.platforms.MarkStatementPaid(
            platform_pb2.MarkStatementPaidRequest(organizer_id=org_id, period=period),
            metadata=world.p1.metadata,
        )
        assert paid.reinstated
        assert (paid.organizer.suspended, paid.organizer.suspended_for_billing) == (False, False)
        me = await org.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=org.metadata)
        assert me.tenant_id == org_id
        assert await stores.dues.run_once(end + 30 * DAY_MS) == []  # paid stays paid
        audited = await world.p1.platforms.ListAuditLog(
            platform_pb2.ListAuditLogRequest(organizer_id=org_id), metadata=world.p1.metadata
        )
        methods = {e.method for e in audited.entries}
        assert {
            "PlatformService/MarkStatementPaid",
            "billing/ReinstatePaid",
            "billing/SuspendUnpaid",
        } <= methods


async def test_nothing_owed_or_no_grace_means_no_suspension(world: World, stores: Stores) -> None:
    end = period_bounds(period_of(int(time.time() * 1000))).end_ms
    # world.org1 owes nothing (no sales); p2 has no grace period, and its organizer owes nothing either
    org_id, org = await _owing_organizer(world)
    async with org:
        await world.p1.platforms.UpdatePlatform(
            platform_pb2.UpdatePlatformRequest(billing_grace_days=0), metadata=world.p1.metadata
        )
        assert await stores.dues.run_once(end + 90 * DAY_MS) == []
        await world.p1.platforms.UpdatePlatform(
            platform_pb2.UpdatePlatformRequest(billing_grace_days=GRACE_DAYS), metadata=world.p1.metadata
        )
        assert await stores.dues.run_once(end + 90 * DAY_MS) == [org_id]  # only the one that owes
    assert not (await _organizer(world, world.org1_id)).suspended


async def test_a_suspension_by_hand_is_not_lifted_by_payment(world: World, stores: Stores) -> None:
    org_id, org = await _owing_organizer(world)
    period = period_of(int(time.time() * 1000))
    end = period_bounds(period).end_ms
    await org.channel.close()
    await world.p1.platforms.SuspendOrganizer(
        platform_pb2.SuspendOrganizerRequest(organizer_id=org_id, reason="fraud review"),
        metadata=world.p1.metadata,
    )
    assert await stores.dues.run_once(end + 10 * DAY_MS) == []  # already suspended: left alone
    stores.dues.clock = lambda: end + 10 * DAY_MS
    paid = await world.p1.platforms.MarkStatementPaid(
        platform_pb2.MarkStatementPaidRequest(organizer_id=org_id, period=period), metadata=world.p1.metadata
    )
    assert not paid.reinstated
    assert (paid.organizer.suspended, paid.organizer.suspended_reason) == (True, "fraud review")


async def test_mark_statement_paid_is_validated_and_scoped(world: World, stores: Stores) -> None:
    period = period_of(int(time.time() * 1000))
    for bad in ("2026-13", "26-01", "", "2026-1"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.MarkStatementPaid(
                platform_pb2.MarkStatementPaidRequest(organizer_id=world.org1_id, period=bad),
                metadata=world.p1.metadata,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(err.value)] == ["period"]
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the current period has not ended
        await world.p1.platforms.MarkStatementPaid(
            platform_pb2.MarkStatementPaidRequest(organizer_id=world.org1_id, period=period),
            metadata=world.p1.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for organizer_id in (world.org2_id, "t_nonexistent"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.MarkStatementPaid(
                platform_pb2.MarkStatementPaidRequest(organizer_id=organizer_id, period="2020-01"),
                metadata=world.p1.metadata,
            )
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND,
            f"organizer {organizer_id!r} not found",
        )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.org1.platforms.MarkStatementPaid(
            platform_pb2.MarkStatementPaidRequest(period="2020-01"), metadata=world.org1.metadata
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.p1.platforms.UpdatePlatform(
            platform_pb2.UpdatePlatformRequest(billing_grace_days=-1), metadata=world.p1.metadata
        )
    assert [f for f, _ in field_violations(err.value)] == ["billing_grace_days"]
