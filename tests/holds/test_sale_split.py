"""The fee split recorded at sale: the selling scripts' Lua ``split_ticket`` is
:func:`rules.fees.split_ticket` (checked on many seeded random prices and terms,
edge values included), and an order records each ticket's split, its terms,
who collected and how."""

from __future__ import annotations

import json
import random

import pytest

from holds.records import Buyer, Sale, SaleTerms
from holds.redis_client import AnyRedis
from holds.scripts import INVENTORY_PRELUDE, REPLIES_HEADER
from holds.scripts import _read as read_lua
from rules.fees import Collector, FeePlan, PlanPrices, split_ticket
from server.context import Stores
from tests.holds.factories import GA_AREA, make_event

HARNESS = """
local out = {}
for _, case in ipairs(cjson.decode(ARGV[1])) do
  local t = {price = case.price}
  split_ticket(t, case.terms, case.collector)
  out[#out + 1] = {t.ticket_fee_rate or 0, t.ticket_fee_fixed or 0, t.processing_fee_rate or 0,
    t.processing_fee_fixed or 0}
end
return cjson.encode(out)
"""

EDGE_PRICES = [0, 1, 2, 3, 5, 15, 25, 50, 99, 100, 9_999, 10_000, 10_001, 15_000, 999_999_999_999, 10**12]
EDGE_BPS = [0, 1, 250, 500, 5_000, 9_999, 10_000]


def _cases(n: int, seed: int) -> list[tuple[int, FeePlan, Collector]]:
    rng = random.Random(seed)
    cases: list[tuple[int, FeePlan, Collector]] = []
    for i in range(n):
        price = rng.choice(EDGE_PRICES) if i % 3 == 0 else rng.randrange(0, [10**3, 10**6, 10**12 + 1][i % 3])
        fixed = [0, rng.randrange(0, 500), rng.randrange(0, 100_000), 10**12]
        plan = FeePlan(
            plan_id="p",
            default_currency="EUR",
            prices={
                "EUR": PlanPrices(ticket_fee_fixed=rng.choice(fixed), processing_fee_fixed=rng.choice(fixed))
            },
            ticket_fee_bps=rng.choice(EDGE_BPS) if rng.random() < 0.3 else rng.randrange(0, 10_001),
            processing_fee_bps=rng.choice(EDGE_BPS) if rng.random() < 0.3 else rng.randrange(0, 10_001),
            refund_policy=rng.choice(["full", "keep_fixed"]),
        )
        cases.append((price, plan, rng.choice(["platform", "organizer"])))
    # exact ties of the rate part: price * bps / 10000 ends in .5
    cases += [(p, FeePlan("t", "EUR", {"EUR": PlanPrices()}, ticket_fee_bps=5_000, processing_fee_bps=5_000),
               "platform") for p in (1, 3, 5, 7, 10**12 - 1, 2 * 10**11 + 1)]  # fmt: skip
    return cases


def terms_of(plan: FeePlan, currency: str = "EUR") -> SaleTerms:
    prices = plan.prices_in(currency)
    return SaleTerms(plan.plan_id, plan.ticket_fee_bps, plan.processing_fee_bps,
                     prices.ticket_fee_fixed, prices.processing_fee_fixed, plan.refund_policy)  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_lua_split_is_rules_split(redis_client: AnyRedis, seed: int) -> None:
    cases = _cases(2_000, seed)
    source = "\n".join([read_lua(REPLIES_HEADER), read_lua(INVENTORY_PRELUDE), HARNESS])
    payload = [
        {"price": price, "collector": collector, "terms": {
            f: getattr(terms_of(plan), f) for f in SaleTerms.__struct_fields__}}
        for price, plan, collector in cases
    ]  # fmt: skip
    raw = await redis_client.eval(source, 0, json.dumps(payload))  # type: ignore[misc]
    got = json.loads(raw)
    for (price, plan, collector), parts in zip(cases, got, strict=True):
        assert tuple(parts) == split_ticket(price, "EUR", plan, collector).parts(), (price, plan, collector)


PLAN = FeePlan(
    plan_id="std",
    default_currency="EUR",
    prices={"EUR": PlanPrices(ticket_fee_fixed=100, processing_fee_fixed=25)},
    ticket_fee_bps=500,
    processing_fee_bps=150,
)


@pytest.mark.parametrize("collector", ["platform", "organizer"])
async def test_commit_records_each_tickets_split(stores: Stores, collector: Collector) -> None:
    ev = await make_event(stores.seatmaps, stores.events, prices={"vip": 12_345, "std": 5_005, "ga": 777})
    inv = stores.inventory
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 7), ga={GA_AREA: 2})
    sale = Sale(collector=collector, payment_method="card", terms=terms_of(PLAN))
    order = (await inv.commit(ev.event_id, held.hold_id, "k1", Buyer(name="Ada"), sale)).order
    assert (order.collector, order.payment_method, order.channel, order.terms) == (
        collector, "card", "storefront", terms_of(PLAN))  # fmt: skip
    assert len(order.tickets) == 5
    for t in order.tickets:
        split = split_ticket(t.price, "EUR", PLAN, collector)
        parts = (t.ticket_fee_rate, t.ticket_fee_fixed, t.processing_fee_rate, t.processing_fee_fixed)
        assert parts == split.parts()
        assert t.organizer_share == split.organizer
    again = await inv.get_order(ev.event_id, order.order_id)
    assert again == order


async def test_commit_without_plan_records_no_fees(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    held = await stores.inventory.hold(ev.event_id, seats=ev.seats(2))
    order = (await stores.inventory.commit(ev.event_id, held.hold_id, "k", Buyer())).order
    assert order.terms is None
    assert (order.collector, order.payment_method) == ("platform", "online")
    assert all(t.platform_fee == 0 and t.organizer_share == t.price for t in order.tickets)
