"""A plan changed mid-month bills the monthly fee difference for the days left, once per
change (its request id), as a statement charge: a charge for an upgrade, a credit (a
fee reversal) for a downgrade."""

from __future__ import annotations

import time

import msgspec
from seatwise.v1 import platform_pb2

from holds import keys
from holds.platform.notifications import period_of
from rules.fees import month_part_left, prorated_change
from server.context import Stores
from tests.server import test_platforms_api
from tests.server.test_platforms_api import World, _sign_up
from tests.server.test_statements_api import statement_request

world = test_platforms_api.world


async def _plan(world: World, plan_id: str, monthly_fee: int) -> None:
    prices = {"EUR": platform_pb2.PlanPrices(monthly_fee=monthly_fee)}
    plan = platform_pb2.Plan(plan_id=plan_id, default_currency="EUR", prices=prices)
    await world.p1.platforms.CreatePlan(platform_pb2.CreatePlanRequest(plan=plan), metadata=world.p1.metadata)


async def _change(world: World, organizer_id: str, plan_id: str, request_id: str) -> None:
    await world.p1.platforms.ChangePlan(
        platform_pb2.ChangePlanRequest(organizer_id=organizer_id, plan_id=plan_id),
        metadata=[*world.p1.metadata, ("x-request-id", request_id)],
    )


async def test_a_change_mid_month_bills_the_difference_for_the_days_left_once(
    world: World, stores: Stores
) -> None:
    now = int(time.time() * 1000)
    stores.dues.clock = lambda: now
    await _plan(world, "basic", 2_900)
    await _plan(world, "pro", 9_900)
    signed = await _sign_up(world.p1, "changing-hall", plan_id="basic")
    org_id = signed.organizer.organizer_id
    part = month_part_left(now)
    up, down = prorated_change(2_900, 9_900, part), prorated_change(9_900, 2_900, part)

    await _change(world, org_id, "pro", "change-1")
    await _change(world, org_id, "pro", "change-1")  # a retry: the plan is already pro, nothing more
    # a retry whose first attempt billed but did not write the plan: the same charge, once
    organizer = await stores.tenants.get_tenant(org_id)
    before = msgspec.structs.replace(organizer, plan_id="basic")
    assert await stores.dues.bill_plan_change(before, "pro", "change-1") == []
    await _change(world, org_id, "basic", "change-2")  # back down: a credit

    charges = await stores.redis.hgetall(keys.tenant_charges(org_id))
    month = period_of(now)
    assert sorted(k.decode() for k in charges) == [  # no setup fee on these plans
        f"monthly:{month}", f"plan_change:{month}:change-1", f"plan_change:{month}:change-2",
    ]  # fmt: skip
    got = await world.p1.platforms.GetStatement(
        statement_request(organizer_id=org_id), metadata=world.p1.metadata
    )
    [part_eur] = got.currencies
    lines = {(line.section, line.label): line.amount_minor for line in part_eur.lines}
    assert lines[("fees", "monthly_fee")] == -(2_900 + up)
    assert lines[("fee_reversals", "monthly_fee")] == -down
    assert part_eur.net_due_minor == -(2_900 + up + down) == sum(line.amount_minor for line in part_eur.lines)
