"""Ticket types and promo codes at sale (holds/offers.py, _offers.lua in commit.lua and
box_office.lua), against a real Redis (single and cluster): a type's price per category,
per-order limits, channels, hidden types behind access codes, promo codes' discounts,
windows, minimum quantities and their maximum uses, which concurrent commits can never
exceed (an event's code in the commit script; an organizer-wide one claimed first)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holds.billing import Billing
from holds.errors import AlreadyExists, InvalidRequest, NotFound, PreconditionFailed, StoreUnavailable
from holds.offers import OfferChoice
from holds.records import Buyer
from holds.sales import Sales, hold_token
from rules.fees import FeePlan, PlanPrices, split_ticket
from rules.promos import BPS_DENOMINATOR, MAX_TYPES_PER_EVENT, PromoCode, TicketType, discount
from rules.statements import Period
from server.context import Stores
from tests.holds.factories import GA_AREA, TestEvent, check_consistent, make_event, read_state

PLAN = FeePlan("std", "EUR", {"EUR": PlanPrices(ticket_fee_fixed=50, processing_fee_fixed=25)},
               ticket_fee_bps=500, processing_fee_bps=150)  # fmt: skip
CHILD = TicketType(
    type_id="child", name="Child", prices={"vip": 2100, "std": 700, "ga": 450}, max_per_order=2
)
PRESALE = TicketType(type_id="presale", name="Presale", prices={"std": 1000}, access_code="FANS")
COUNTER = TicketType(type_id="counter", name="Counter", prices={"std": 1200}, channels=["box_office"])


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    event = await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20)
    for t in (CHILD, PRESALE, COUNTER):
        await stores.offers.put_type(event.tenant, event.event_id, t, "create")
    return event


@pytest.fixture
def sales(stores: Stores) -> Sales:
    async def plan(tenant_id: str) -> FeePlan:
        return PLAN

    return Sales(stores.live, stores.inventory, plan, offers=stores.offers)


def seat(ev: TestEvent, ordinal: int) -> str:
    return ev.loaded.index.placed[ordinal].seat.id


async def hold(stores: Stores, ev: TestEvent, *ordinals: int, buyer: str = "", ga: int = 0) -> str:
    result = await stores.inventory.hold(
        ev.event_id, seats=ev.seats(*ordinals), buyer=buyer, ga={GA_AREA: ga} if ga else None
    )
    return hold_token(ev.event_id, result.hold_id)


async def commit(sales: Sales, ev: TestEvent, token: str, key: str, offer: OfferChoice | None = None):  # type: ignore[no-untyped-def]
    return await sales.commit(ev.tenant, token, key, Buyer(name="Ada"), offer=offer)


async def test_types_price_each_place_and_the_split_follows(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    token = await hold(stores, ev, 0, 7, 8, ga=3)  # vip, std, std, 3 GA
    offer = OfferChoice({seat(ev, 0): "child", seat(ev, 8): "child"}, {GA_AREA: {"child": 1}}, "", "")
    with pytest.raises(InvalidRequest, match="at most 2 ticket"):  # 3 children, 2 per order
        await commit(sales, ev, token, "k1", offer)
    offer = OfferChoice({seat(ev, 0): "child", seat(ev, 8): "child"})
    _, order, _ = await commit(sales, ev, token, "k1", offer)
    assert [(t.ticket_type, t.price) for t in order.tickets] == [
        ("child", 2100), ("", 1500), ("child", 700), ("", 900), ("", 900), ("", 900)]  # fmt: skip
    assert order.total == sum(t.price for t in order.tickets)
    for t in order.tickets:
        parts = (t.ticket_fee_rate, t.ticket_fee_fixed, t.processing_fee_rate, t.processing_fee_fixed)
        assert parts == split_ticket(t.price, "EUR", PLAN, "platform").parts()
    check_consistent(await read_state(stores.redis, ev.event_id))


async def test_a_plain_commit_is_unchanged(stores: Stores, sales: Sales, ev: TestEvent) -> None:
    token = await hold(stores, ev, 7, ga=1)
    _, order, _ = await commit(sales, ev, token, "k")
    assert [(t.ticket_type, t.price, t.discount) for t in order.tickets] == [("", 1500, 0), ("", 900, 0)]
    assert (order.promo_code, order.discount) == ("", 0)


@pytest.mark.parametrize(
    ("offer", "match"),
    [
        (OfferChoice({"A-1-1": "nope"}), "unknown ticket type 'nope'"),
        (OfferChoice({"A-1-1": "presale"}), "unknown ticket type 'presale'"),  # hidden without its code
        (OfferChoice({"A-1-1": "presale"}, access_code="WRONG"), "unknown ticket type 'presale'"),
        (OfferChoice({"A-0-0": "presale"}, access_code="FANS"), "not sold for category 'vip'"),
        (OfferChoice({"A-1-1": "counter"}), "not sold on the storefront channel"),
        (OfferChoice({"A-2-2": "child"}), r"ticket_types\[A-2-2\]: the seat is not in this sale"),
        (OfferChoice({"Z-9": "child"}), r"ticket_types\[Z-9\]: unknown seat"),
        (OfferChoice(ga_types={GA_AREA: {"child": 3}}), rf"ga_ticket_types\[{GA_AREA}\]"),
        (OfferChoice(promo_code="NOPE"), "unknown promo code 'NOPE'"),
    ],
)
async def test_bad_choices_are_refused_naming_the_field_and_change_nothing(
    stores: Stores, sales: Sales, ev: TestEvent, offer: OfferChoice, match: str
) -> None:
    token = await hold(stores, ev, 0, 7, ga=2)
    before = await read_state(stores.redis, ev.event_id)
    with pytest.raises(InvalidRequest, match=match):
        await commit(sales, ev, token, "k", offer)
    after = await read_state(stores.redis, ev.event_id)
    assert (after.seats, after.orders, after.holds) == (before.seats, before.orders, before.holds)
    _, order, _ = await commit(sales, ev, token, "k")  # the hold still commits, untyped
    assert order.total == 4200 + 1500 + 2 * 900


async def test_an_access_code_unlocks_a_hidden_type(stores: Stores, sales: Sales, ev: TestEvent) -> None:
    offered = await stores.offers.offered_types(ev.tenant, ev.event_id)
    assert [t.type_id for t in offered] == ["child"]
    offered = await stores.offers.offered_types(ev.tenant, ev.event_id, access_code="FANS")
    assert [t.type_id for t in offered] == ["child", "presale"]
    boxed = await stores.offers.offered_types(ev.tenant, ev.event_id, channel="box_office")
    assert [t.type_id for t in boxed] == ["child", "counter"]
    token = await hold(stores, ev, 7)
    _, order, _ = await commit(
        sales, ev, token, "k", OfferChoice({seat(ev, 7): "presale"}, access_code="FANS")
    )
    assert order.tickets[0].price == 1000


async def test_the_box_office_sells_its_own_types(stores: Stores, sales: Sales, ev: TestEvent) -> None:
    _, result = await sales.sell_at_box_office(
        ev.tenant, ev.event_id, [seat(ev, 7)], {}, idempotency_key="bo", buyer=Buyer(),
        payment_method="cash", offer=OfferChoice({seat(ev, 7): "counter"}),
    )  # fmt: skip
    assert (result.order.tickets[0].ticket_type, result.order.tickets[0].price) == ("counter", 1200)


async def test_promo_codes_discount_each_ticket(stores: Stores, sales: Sales, ev: TestEvent) -> None:
    await stores.offers.put_promo(ev.tenant, ev.event_id, PromoCode("TEN", "percent", bps=1000), "create")
    await stores.offers.put_promo(ev.tenant, ev.event_id, PromoCode("FIVER", "amount", amount=500), "create")
    token = await hold(stores, ev, 0, 7, ga=1)
    _, order, _ = await commit(sales, ev, token, "k", OfferChoice({seat(ev, 7): "child"}, promo_code="TEN"))
    assert [(t.list_price, t.discount, t.price) for t in order.tickets] == [
        (4200, 420, 3780), (700, 70, 630), (900, 90, 810)]  # fmt: skip
    assert (order.promo_code, order.discount, order.total) == ("TEN", 580, 3780 + 630 + 810)
    token = await hold(stores, ev, 8, ga=1)
    _, order, _ = await commit(
        sales, ev, token, "k2", OfferChoice({seat(ev, 8): "child"}, promo_code="FIVER")
    )
    assert [t.price for t in order.tickets] == [200, 400]
    infos = {i.promo.code: i.uses for i in await stores.offers.list_promos(ev.tenant, ev.event_id)}
    assert infos == {"FIVER": 1, "TEN": 1}


async def test_promo_windows_and_minimum_quantity(stores: Stores, sales: Sales, ev: TestEvent) -> None:
    offers = stores.offers
    await offers.put_promo(
        ev.tenant, ev.event_id, PromoCode("OLD", "amount", amount=1, valid_until_ms=1), "create"
    )
    later = 4_000_000_000_000
    await offers.put_promo(
        ev.tenant, ev.event_id, PromoCode("SOON", "amount", amount=1, valid_from_ms=later), "create"
    )
    await offers.put_promo(
        ev.tenant, ev.event_id, PromoCode("GROUP", "percent", bps=500, min_quantity=3), "create"
    )
    await offers.put_promo(ev.tenant, ev.event_id, PromoCode("OFF", "amount", amount=1), "create")
    await offers.disable_promo(ev.tenant, ev.event_id, "OFF")
    token = await hold(stores, ev, 7, 8)
    before = await read_state(stores.redis, ev.event_id)
    refusals = [("OLD", "has expired"), ("SOON", "is not valid yet"), ("GROUP", "needs at least 3 place"),
                ("OFF", "is disabled")]  # fmt: skip
    for code, why in refusals:
        with pytest.raises(PreconditionFailed, match=f"promo_code '{code}' {why}") as raised:
            await commit(sales, ev, token, "k", OfferChoice(promo_code=code))
        assert raised.value.subject == code
    assert (await read_state(stores.redis, ev.event_id)).orders == before.orders


async def test_definitions_are_created_once_updated_and_disabled(stores: Stores, ev: TestEvent) -> None:
    offers = stores.offers
    with pytest.raises(AlreadyExists):
        await offers.put_type(ev.tenant, ev.event_id, CHILD, "create")
    with pytest.raises(NotFound):
        await offers.put_type(ev.tenant, ev.event_id, TicketType("ghost", "Ghost", {"std": 1}), "update")
    with pytest.raises(InvalidRequest, match=r"ticket_type.prices\[balcony\]"):
        await offers.put_type(ev.tenant, ev.event_id, TicketType("b", "B", {"balcony": 1}), "create")
    with pytest.raises(InvalidRequest, match=r"promo_code\.bps"):
        await offers.put_promo(ev.tenant, ev.event_id, PromoCode("X", "percent", bps=0), "create")
    updated = await offers.put_type(ev.tenant, ev.event_id, CHILD.__replace__(max_per_order=5), "update")  # type: ignore[attr-defined]
    assert updated.max_per_order == 5
    assert (await offers.disable_type(ev.tenant, ev.event_id, "child")).disabled
    assert "child" not in [t.type_id for t in await offers.offered_types(ev.tenant, ev.event_id)]
    with pytest.raises(NotFound):
        await offers.list_types("someone-else", ev.event_id)
    for i in range(MAX_TYPES_PER_EVENT - 3):  # child, presale, counter exist
        await offers.put_type(ev.tenant, ev.event_id, TicketType(f"t{i}", "T", {"std": 1}), "create")
    with pytest.raises(PreconditionFailed, match=f"at most {MAX_TYPES_PER_EVENT} ticket types per event"):
        await offers.put_type(ev.tenant, ev.event_id, TicketType("one-more", "T", {"std": 1}), "create")


async def _race(sales: Sales, stores: Stores, ev: TestEvent, code: str, buyers: list[str]) -> list[object]:
    tokens = [await hold(stores, ev, o, buyer=b) for o, b in zip(range(len(buyers)), buyers, strict=True)]
    return await asyncio.gather(
        *(commit(sales, ev, t, f"k{i}", OfferChoice(promo_code=code)) for i, t in enumerate(tokens)),
        return_exceptions=True,
    )


@pytest.mark.parametrize("scope", ["event", "organizer"])
async def test_concurrent_commits_never_exceed_max_uses(stores: Stores, sales: Sales, scope: str) -> None:
    ev = await make_event(stores.seatmaps, stores.events, rows=5, seats_per_row=10, max_seats_per_hold=20)
    event_id = ev.event_id if scope == "event" else ""
    await stores.offers.put_promo(
        ev.tenant, event_id, PromoCode("TENUSES", "percent", bps=100, max_uses=10), "create"
    )
    outcomes = await _race(sales, stores, ev, "TENUSES", [f"b{i}" for i in range(50)])
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 10
    assert all(
        isinstance(e, PreconditionFailed) and "promo_code 'TENUSES' is used up" in str(e) for e in lost
    )
    assert [i.uses for i in await stores.offers.list_promos(ev.tenant, event_id)] == [10]
    state = await read_state(stores.redis, ev.event_id)
    assert sum(1 for o in state.orders.values() if o.promo_code == "TENUSES") == 10
    check_consistent(state)


@pytest.mark.parametrize("scope", ["event", "organizer"])
async def test_concurrent_commits_never_exceed_uses_per_buyer(
    stores: Stores, sales: Sales, scope: str
) -> None:
    ev = await make_event(stores.seatmaps, stores.events, rows=5, seats_per_row=10, max_seats_per_hold=20)
    event_id = ev.event_id if scope == "event" else ""
    promo = PromoCode("TWOEACH", "amount", amount=100, max_uses_per_buyer=2)
    await stores.offers.put_promo(ev.tenant, event_id, promo, "create")
    outcomes = await _race(sales, stores, ev, "TWOEACH", ["ada"] * 10 + ["bob"] * 10)
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 4
    assert all("by this buyer" in str(o) for o in outcomes if isinstance(o, BaseException))
    with pytest.raises(InvalidRequest, match="buyer_id"):  # an anonymous hold cannot use it
        await commit(sales, ev, await hold(stores, ev, 40), "anon", OfferChoice(promo_code="TWOEACH"))


async def test_an_organizer_code_is_given_back_when_the_commit_fails(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await stores.offers.put_promo(
        ev.tenant, "", PromoCode("ONCE", "amount", amount=100, max_uses=1), "create"
    )
    token = await hold(stores, ev, 7)
    with pytest.raises(InvalidRequest):  # a bad type: the claimed use goes back
        await commit(sales, ev, token, "k", OfferChoice({seat(ev, 7): "nope"}, promo_code="ONCE"))
    _, order, _ = await commit(sales, ev, token, "k", OfferChoice(promo_code="ONCE"))
    assert order.promo_code == "ONCE"
    _, again, replayed = await commit(sales, ev, token, "k", OfferChoice(promo_code="ONCE"))
    assert replayed  # a replay claims nothing
    assert again == order
    assert [i.uses for i in await stores.offers.list_promos(ev.tenant, "")] == [1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(price=st.integers(0, 10**12), bps=st.integers(1, BPS_DENOMINATOR), amount=st.integers(1, 10**12))
async def test_the_script_discounts_as_rules_promos_does(
    stores: Stores, sales: Sales, price: int, bps: int, amount: int
) -> None:
    ev = await make_event(stores.seatmaps, stores.events, prices={"vip": price, "std": price, "ga": price})
    for promo in (PromoCode("P", "percent", bps=bps), PromoCode("A", "amount", amount=amount)):
        await stores.offers.put_promo(ev.tenant, ev.event_id, promo, "create")
        token = await hold(stores, ev, 7 if promo.code == "P" else 8)
        _, order, _ = await commit(sales, ev, token, promo.code, OfferChoice(promo_code=promo.code))
        assert order.tickets[0].price == price - discount(price, promo)
        assert order.tickets[0].discount == discount(price, promo)


async def test_statements_and_refunds_follow_the_paid_price(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await stores.offers.put_promo(ev.tenant, ev.event_id, PromoCode("TEN", "percent", bps=1000), "create")
    token = await hold(stores, ev, 0, 7)
    _, order, _ = await commit(sales, ev, token, "k", OfferChoice({seat(ev, 0): "child"}, promo_code="TEN"))
    paid = [t.price for t in order.tickets]
    assert paid == [2100 - 210, 1500 - 150]
    statement = await Billing(stores.redis).statement(ev.tenant, Period(0, 2**62), [ev.event_id])
    totals = statement.currencies[0].totals
    assert sum(totals.gross_by_method.values()) == sum(paid)
    fees = sum(split_ticket(p, "EUR", PLAN, "platform").platform for p in paid)
    assert sum(totals.fees_by_kind.values()) == fees
    child = order.tickets[0]
    with pytest.raises(PreconditionFailed, match=f"at most {child.price} more"):
        await sales.refund(
            ev.tenant, ev.event_id, order.order_id, {child.ticket_id: child.price + 1}, refund_key="r"
        )


async def test_a_commit_of_unknown_outcome_keeps_its_claim(
    stores: Stores, sales: Sales, ev: TestEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applied, but the answer was lost: giving the claim back would let one more order use it."""
    await stores.offers.put_promo(ev.tenant, "", PromoCode("LOST", "amount", amount=10, max_uses=1), "create")
    real = stores.inventory.commit

    async def applied_then_lost(*args: object, **kwargs: object) -> object:
        await real(*args, **kwargs)  # type: ignore[arg-type]
        raise StoreUnavailable("the connection broke before the answer")

    monkeypatch.setattr(stores.inventory, "commit", applied_then_lost)
    with pytest.raises(StoreUnavailable):
        await commit(sales, ev, await hold(stores, ev, 7), "k", OfferChoice(promo_code="LOST"))
    monkeypatch.undo()
    assert [i.uses for i in await stores.offers.list_promos(ev.tenant, "")] == [1]
    with pytest.raises(PreconditionFailed, match="is used up"):  # never a second order with it
        await commit(sales, ev, await hold(stores, ev, 8), "k2", OfferChoice(promo_code="LOST"))
