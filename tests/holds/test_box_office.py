"""Box office sales and refunds through holds.sales, against a real Redis (single
and cluster): one script each, all-or-nothing, idempotent, never a seat sold
twice nor more refunded than paid, even when racing."""

from __future__ import annotations

import asyncio

import pytest

from holds import seatvalues
from holds.errors import (
    Conflict,
    GeneralAdmissionUnavailable,
    HoldExpired,
    InvalidRequest,
    PreconditionFailed,
    SeatsInWrongState,
    SeatsUnavailable,
)
from holds.records import Buyer
from holds.sales import Sales
from rules.fees import FeePlan, PlanPrices, reverse, split_ticket
from server.context import Stores
from tests.holds.factories import GA_AREA, TestEvent, check_consistent, make_event, read_state

PLAN = FeePlan("std", "EUR", {"EUR": PlanPrices(ticket_fee_fixed=50, processing_fee_fixed=25)},
               ticket_fee_bps=500, processing_fee_bps=150)  # fmt: skip


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20)


@pytest.fixture
def sales(stores: Stores) -> Sales:
    async def plan(tenant_id: str) -> FeePlan:
        return PLAN

    return Sales(stores.live, stores.inventory, plan)


def seat(ev: TestEvent, ordinal: int) -> str:
    return ev.loaded.index.placed[ordinal].seat.id


async def sell(sales: Sales, ev: TestEvent, key: str, *ordinals: int, override: bool = False, **ga: int):  # type: ignore[no-untyped-def]
    return await sales.sell_at_box_office(
        ev.tenant, ev.event_id, [seat(ev, o) for o in ordinals], ga, idempotency_key=key,
        buyer=Buyer(name="Walk-in"), payment_method="cash", override=override,
    )  # fmt: skip


async def test_box_office_sells_seats_and_ga_with_the_split(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    _, result = await sell(sales, ev, "bo-1", 0, 7, **{GA_AREA: 2})
    order = result.order
    assert (order.channel, order.collector, order.payment_method, order.hold_id) == (
        "box_office", "organizer", "cash", "")  # fmt: skip
    assert [t.seat for t in order.tickets] == [0, 7, None, None]
    for t in order.tickets:
        parts = (t.ticket_fee_rate, t.ticket_fee_fixed, t.processing_fee_rate, t.processing_fee_fixed)
        assert parts == split_ticket(t.price, "EUR", PLAN, "organizer").parts()
    again = await sell(sales, ev, "bo-1", 0, 7, **{GA_AREA: 2})
    assert again[1].replayed
    assert again[1].order == order
    with pytest.raises(InvalidRequest, match="idempotency_key"):
        await sell(sales, ev, "bo-1", 1)
    state = await read_state(stores.redis, ev.event_id)
    check_consistent(state)


async def test_box_office_refuses_sold_seats_and_held_ones_without_override(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await sell(sales, ev, "bo-1", 0)
    held = await stores.inventory.hold(ev.event_id, seats=ev.seats(1, 2), buyer="ada")
    before = await read_state(stores.redis, ev.event_id)
    with pytest.raises(SeatsUnavailable):
        await sell(sales, ev, "bo-2", 0, 3)
    with pytest.raises(SeatsInWrongState) as err:
        await sell(sales, ev, "bo-2", 1, 3)
    assert err.value.states == {seat(ev, 1): "held"}
    with pytest.raises(GeneralAdmissionUnavailable):
        await sell(sales, ev, "bo-2", **{GA_AREA: ev.ga_capacity + 1})
    assert (await read_state(stores.redis, ev.event_id)).seats == before.seats  # nothing changed
    # with the override: sold over the hold, whose commit then fails (fenced)
    _, result = await sell(sales, ev, "bo-3", 1, 3, override=True)
    assert result.overridden_holds == [held.hold_id]
    with pytest.raises(HoldExpired):
        await stores.inventory.commit(ev.event_id, held.hold_id, "k", Buyer())
    check_consistent(await read_state(stores.redis, ev.event_id))


async def test_box_office_and_storefront_racing_never_sell_a_seat_twice(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    inv = stores.inventory

    async def storefront(i: int) -> str | None:
        try:
            held = await inv.hold(ev.event_id, seats=ev.seats(i % 4, 4 + i % 3))
            await inv.commit(ev.event_id, held.hold_id, f"sf-{i}", Buyer())
            return "storefront"
        except (SeatsUnavailable, HoldExpired, Conflict):
            return None
        except Exception as exc:  # the inventory's own unavailable error
            if type(exc).__name__ == "SeatOrdinalsUnavailable":
                return None
            raise

    async def box_office(i: int) -> str | None:
        try:
            await sell(sales, ev, f"bo-{i}", i % 4, 4 + i % 3, override=i % 2 == 0)
            return "box_office"
        except (SeatsUnavailable, SeatsInWrongState):
            return None

    results = await asyncio.gather(*(f(i) for i in range(12) for f in (storefront, box_office)))
    assert any(results)
    state = await read_state(stores.redis, ev.event_id)
    check_consistent(state)  # includes: no seat has valid tickets in two orders


async def test_refunds_partial_full_and_release(stores: Stores, sales: Sales, ev: TestEvent) -> None:
    _, sold = await sell(sales, ev, "bo-1", 0, 1)
    order = sold.order
    first, second = order.tickets
    _, part = await sales.refund(
        ev.tenant, ev.event_id, order.order_id, {first.ticket_id: 1000}, refund_key="r1"
    )
    [line] = part.refund.lines
    split = split_ticket(first.price, "EUR", PLAN, "organizer")
    assert (line.amount, line.refunded_before) == (1000, 0)
    parts = (line.ticket_fee_rate, line.ticket_fee_fixed, line.processing_fee_rate, line.processing_fee_fixed)
    assert parts == reverse(split, 1000).parts()
    assert part.order.tickets[0].refunded == 1000
    assert part.order.tickets[0].status == "valid"
    replay = await sales.refund(
        ev.tenant, ev.event_id, order.order_id, {first.ticket_id: 1000}, refund_key="r1"
    )
    assert replay[1].replayed
    with pytest.raises(InvalidRequest, match="refund_key"):
        await sales.refund(ev.tenant, ev.event_id, order.order_id, {first.ticket_id: 5}, refund_key="r1")
    with pytest.raises(PreconditionFailed, match="at most"):
        await sales.refund(
            ev.tenant, ev.event_id, order.order_id, {first.ticket_id: first.price}, refund_key="r2"
        )
    # the whole order, seats kept not for sale
    _, whole = await sales.refund(ev.tenant, ev.event_id, order.order_id, {}, refund_key="r3",
                                  release_to="not_for_sale")  # fmt: skip
    assert {line.ticket_id: line.amount for line in whole.refund.lines} == {
        first.ticket_id: first.price - 1000, second.ticket_id: second.price}  # fmt: skip
    assert whole.order.status == "cancelled"
    assert all(t.refunded == t.price for t in whole.order.tickets)
    # a full refund (in two parts) reverses exactly the reversible fees
    rest = whole.refund.lines[0]
    rest_parts = (
        rest.ticket_fee_rate,
        rest.ticket_fee_fixed,
        rest.processing_fee_rate,
        rest.processing_fee_fixed,
    )
    reversed_first = [a + b for a, b in zip(reverse(split, 1000).parts(), rest_parts, strict=True)]
    assert reversed_first == list(split.parts())
    state = await read_state(stores.redis, ev.event_id)
    assert state.seats[0] == seatvalues.NOT_FOR_SALE
    with pytest.raises(PreconditionFailed, match="nothing left"):
        await sales.refund(ev.tenant, ev.event_id, order.order_id, {}, refund_key="r4")


async def test_concurrent_refunds_never_exceed_what_was_paid(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    _, sold = await sell(sales, ev, "bo-1", 0)
    order = sold.order
    ticket = order.tickets[0]
    step = ticket.price // 5 + 1  # 5 of them would exceed the price

    async def refund(i: int) -> int:
        try:
            _, result = await sales.refund(ev.tenant, ev.event_id, order.order_id, {ticket.ticket_id: step},
                                           refund_key=f"r{i}")  # fmt: skip
            return result.refund.total
        except (PreconditionFailed, Conflict):
            return 0

    done = await asyncio.gather(*(refund(i) for i in range(10)))
    final = await stores.inventory.get_order(ev.event_id, order.order_id)
    assert sum(done) == final.tickets[0].refunded <= ticket.price
    assert done.count(step) == 4
