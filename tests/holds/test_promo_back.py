"""A promo code's use is given back when its whole order is cancelled or refunded and
cancelled (_promo_back.lua in cancel.lua and refund.lua; promo_return.lua and
holds/offers.py for an organizer-wide code), against a real Redis (single and cluster):
in total and per buyer, once per order whatever is retried, and never so that cancels
racing new uses let more orders hold the code than its maximum."""

from __future__ import annotations

import asyncio

import pytest

from holds import keys
from holds.errors import PreconditionFailed
from holds.offers import OfferChoice
from holds.records import Buyer, Order
from holds.sales import Sales, hold_token
from rules.promos import PromoCode
from server.context import Stores
from tests.holds.factories import TestEvent, check_consistent, make_event, read_state


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events, rows=5, seats_per_row=10, max_seats_per_hold=20)


async def hold(stores: Stores, ev: TestEvent, *ordinals: int, buyer: str = "") -> str:
    result = await stores.inventory.hold(ev.event_id, seats=ev.seats(*ordinals), buyer=buyer)
    return hold_token(ev.event_id, result.hold_id)


async def buy(stores: Stores, ev: TestEvent, key: str, *ordinals: int, code: str, buyer: str = "") -> Order:
    token = await hold(stores, ev, *ordinals, buyer=buyer)
    _, order, _ = await stores.sales.commit(
        ev.tenant, token, key, Buyer(name="Ada"), offer=OfferChoice(promo_code=code)
    )
    return order


async def uses(stores: Stores, ev: TestEvent, scope: str) -> int:
    (info,) = await stores.offers.list_promos(ev.tenant, ev.event_id if scope == "event" else "")
    return info.uses


async def buyer_uses(stores: Stores, ev: TestEvent, scope: str, code: str, buyer: str) -> int:
    key = keys.offer_keys(ev.event_id)[2] if scope == "event" else keys.tenant_promo_uses(ev.tenant)
    return int(await stores.redis.hget(key, f"{code}|{buyer}") or 0)


async def put(stores: Stores, ev: TestEvent, scope: str, promo: PromoCode) -> None:
    await stores.offers.put_promo(ev.tenant, ev.event_id if scope == "event" else "", promo, "create")


SCOPES = pytest.mark.parametrize("scope", ["event", "organizer"])


@SCOPES
async def test_a_cancelled_order_gives_its_use_back_in_total_and_per_buyer(
    stores: Stores, ev: TestEvent, scope: str
) -> None:
    await put(stores, ev, scope, PromoCode("TWO", "amount", amount=100, max_uses=2, max_uses_per_buyer=1))
    first = await buy(stores, ev, "k1", 0, 1, code="TWO", buyer="ada")
    await buy(stores, ev, "k2", 2, code="TWO", buyer="bob")
    with pytest.raises(PreconditionFailed, match="used up"):
        await buy(stores, ev, "k3", 3, code="TWO", buyer="cyd")
    # cancelling part of the order keeps the use: it is the order's, not a ticket's
    await stores.sales.cancel(
        ev.tenant, ev.event_id, first.order_id, [first.tickets[0].ticket_id], "free", ""
    )
    assert await uses(stores, ev, scope) == 2
    _, cancelled = await stores.sales.cancel(ev.tenant, ev.event_id, first.order_id, [], "free", "")
    assert (cancelled.status, cancelled.promo_returned) == ("cancelled", True)
    assert await uses(stores, ev, scope) == 1
    assert await buyer_uses(stores, ev, scope, "TWO", "ada") == 0
    # a retried cancel gives nothing back a second time
    with pytest.raises(PreconditionFailed, match="already cancelled"):
        await stores.sales.cancel(ev.tenant, ev.event_id, first.order_id, [], "free", "")
    assert await uses(stores, ev, scope) == 1
    again = await buy(stores, ev, "k4", 4, code="TWO", buyer="ada")  # the buyer may use it again
    assert again.promo_code == "TWO"
    assert await uses(stores, ev, scope) == 2
    with pytest.raises(PreconditionFailed, match="used up"):
        await buy(stores, ev, "k5", 5, code="TWO", buyer="cyd")
    check_consistent(await read_state(stores.redis, ev.event_id))


@SCOPES
async def test_a_refund_gives_the_use_back_only_when_it_cancels_the_whole_order(
    stores: Stores, ev: TestEvent, scope: str
) -> None:
    await put(stores, ev, scope, PromoCode("ONE", "percent", bps=1000, max_uses=1))
    order = await buy(stores, ev, "k1", 0, 1, code="ONE")
    tickets = [t.ticket_id for t in order.tickets]
    sales = stores.sales
    await sales.refund(ev.tenant, ev.event_id, order.order_id, {tickets[0]: 100}, refund_key="money-only")
    await sales.refund(ev.tenant, ev.event_id, order.order_id, {tickets[0]: 0}, refund_key="one-ticket",
                       release_to="free")  # fmt: skip
    assert await uses(stores, ev, scope) == 1  # money back, a ticket cancelled: the order still uses it
    _, result = await sales.refund(
        ev.tenant, ev.event_id, order.order_id, {}, refund_key="rest", release_to="free"
    )
    assert result.order.status == "cancelled"
    assert await uses(stores, ev, scope) == 0
    _, replay = await sales.refund(
        ev.tenant, ev.event_id, order.order_id, {tickets[1]: 0}, refund_key="rest2", release_to="free"
    )  # the money left on the cancelled ticket: the order stays cancelled, nothing given back again
    assert replay.order.status == "cancelled"
    assert await uses(stores, ev, scope) == 0
    assert (await buy(stores, ev, "k2", 5, code="ONE")).promo_code == "ONE"


async def test_an_organizer_code_left_pending_by_a_dead_process_is_given_back_once(
    stores: Stores, ev: TestEvent
) -> None:
    await put(stores, ev, "organizer", PromoCode("ORG", "amount", amount=10, max_uses=3))
    order = await buy(stores, ev, "k1", 0, code="ORG")
    await buy(stores, ev, "k2", 1, code="ORG")
    # the cancel script alone: the process "dies" before the give-back in the organizer's slot
    cancelled = await stores.inventory.cancel(ev.event_id, order.order_id)
    assert cancelled.promo_returned
    assert await uses(stores, ev, "organizer") == 2
    backlog = keys.promo_back_keys(ev.event_id)[1]
    assert await stores.redis.zrange(backlog, 0, -1) == [order.order_id.encode()]
    # the caller retries the cancel: it hears "already cancelled" and the give-back is finished
    with pytest.raises(PreconditionFailed):
        await stores.sales.cancel(ev.tenant, ev.event_id, order.order_id, [], "free", "")
    assert await uses(stores, ev, "organizer") == 1
    assert await stores.redis.zrange(backlog, 0, -1) == []
    # a return run twice at once (two processes draining one backlog) counts once
    await stores.redis.zadd(backlog, {order.order_id: 1})
    await stores.redis.zadd(backlog, {order.order_id: 1})
    given = await asyncio.gather(*(stores.offers.settle_returns(ev.tenant, ev.event_id) for _ in range(4)))
    assert sum(given) == 0
    assert await uses(stores, ev, "organizer") == 1
    for _ in range(2):
        with pytest.raises(PreconditionFailed):
            await stores.sales.cancel(ev.tenant, ev.event_id, order.order_id, [], "free", "")
    assert await uses(stores, ev, "organizer") == 1


@SCOPES
async def test_cancels_racing_new_uses_never_exceed_the_maximum(
    stores: Stores, ev: TestEvent, scope: str
) -> None:
    most = 5
    await put(stores, ev, scope, PromoCode("RUSH", "amount", amount=10, max_uses=most))
    sold = [await buy(stores, ev, f"first{i}", i, code="RUSH") for i in range(most)]
    tokens = [await hold(stores, ev, 10 + i) for i in range(20)]
    sales: Sales = stores.sales

    async def new_use(i: int) -> Order:
        _, order, _ = await sales.commit(
            ev.tenant, tokens[i], f"new{i}", Buyer(name="B"), offer=OfferChoice(promo_code="RUSH")
        )
        return order

    async def cancel(order: Order) -> Order:
        return (await sales.cancel(ev.tenant, ev.event_id, order.order_id, [], "free", ""))[1]

    outcomes = await asyncio.gather(
        *(new_use(i) for i in range(20)), *(cancel(o) for o in sold[:3]), return_exceptions=True
    )
    won = [o for o in outcomes[:20] if isinstance(o, Order)]
    assert all(isinstance(o, PreconditionFailed) for o in outcomes[:20] if not isinstance(o, Order))
    assert all(isinstance(o, Order) and o.status == "cancelled" for o in outcomes[20:])
    assert len(won) <= 3
    state = await read_state(stores.redis, ev.event_id)
    live = [o for o in state.orders.values() if o.promo_code == "RUSH" and o.status != "cancelled"]
    assert len(live) == most - 3 + len(won) <= most
    assert await uses(stores, ev, scope) == len(live)  # every cancel's use given back, once
    check_consistent(state)
