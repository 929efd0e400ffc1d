"""Transfers, exchanges and resale against real Redis (single and cluster): one script
each, all or nothing, the previous holder's token revoked at once, listings withdrawn
with their ticket; and the races the issue names."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from holds import keys, seatvalues
from holds.aftersale import AfterSale, ResaleRules
from holds.errors import InvalidRequest, NotFound, PreconditionFailed, SeatsUnavailable
from holds.feed.cursor import Cursor
from holds.feed.privacy import Privacy
from holds.feed.reader import Checkpoint, FeedEntry, FeedReader
from holds.inventory import HoldResult, SeatOrdinalsUnavailable
from holds.records import Buyer, Order
from holds.redis_client import AnyRedis
from holds.sales import Sales, hold_token
from rules.fees import FeePlan, PlanPrices, split_ticket
from server.context import Stores
from tests.holds.factories import GA_AREA, TestEvent, check_consistent, make_event, read_state

PLAN = FeePlan("std", "EUR", {"EUR": PlanPrices(ticket_fee_fixed=50, processing_fee_fixed=25)},
               ticket_fee_bps=500, processing_fee_bps=150)  # fmt: skip
ADA, BOB, CAL = Buyer(name="Ada", email="ada@example.org"), Buyer(name="Bob"), Buyer(name="Cal")


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20)


@pytest.fixture
def sales(stores: Stores) -> Sales:
    async def plan(tenant_id: str) -> FeePlan:
        return PLAN

    return Sales(stores.live, stores.inventory, plan)


@pytest.fixture
def after(stores: Stores, sales: Sales) -> AfterSale:
    return AfterSale(stores.redis, stores.scripts, sales, stores.inventory, stores.door)


def seat(ev: TestEvent, ordinal: int) -> str:
    return ev.loaded.index.placed[ordinal].seat.id


async def order_of(sales: Sales, ev: TestEvent, *ordinals: int, key: str = "k", ga: int = 0) -> Order:
    _, result = await sales.sell_at_box_office(
        ev.tenant, ev.event_id, [seat(ev, o) for o in ordinals], {GA_AREA: ga} if ga else {},
        idempotency_key=f"{key}-{ordinals}", buyer=ADA, payment_method="cash",
    )  # fmt: skip
    return result.order


async def token_of(stores: Stores, ev: TestEvent, order: Order, ticket_id: str) -> str:
    return (await stores.door.ticket_token(ev.tenant, ev.event_id, order.order_id, ticket_id))[1]


async def scan(stores: Stores, ev: TestEvent, token: str, gate: str = "A") -> tuple[str, str]:
    outcome = (await stores.door.scan(ev.tenant, ev.event_id, token, gate, "d1"))[1]
    return outcome.result, outcome.reason


async def everything(client: AnyRedis, event_id: str) -> tuple[Any, ...]:
    """Every key the after-sale scripts touch, for "nothing changed"."""
    state = await read_state(client, event_id)
    extra = [await client.hgetall(k) for k in (*keys.door_keys(event_id), *keys.resale_keys(event_id)[:2])]
    return state.seats, state.orders, state.holds, state.seq, state.tickets, extra


async def lifecycle(client: AnyRedis, event_id: str) -> list[tuple[str, str]]:
    entries = await client.xrange(keys.event_key(event_id, "lifecycle"))
    return [(f[b"kind"].decode(), f[b"detail"].decode()) for _, f in entries]


# -- transfer ------------------------------------------------------------------------


async def test_a_transfer_revokes_the_old_token_at_once(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0, 1)
    ticket = order.tickets[0].ticket_id
    old_token = await token_of(stores, ev, order, ticket)
    _, moved, new_token = await after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 0, BOB)
    t = next(t for t in moved.tickets if t.ticket_id == ticket)
    assert (t.revision, t.holder, t.revocations, t.status) == (1, BOB, ["transferred"], "valid")
    assert (t.price, t.seat, t.ticket_fee_rate) == (
        order.tickets[0].price,
        0,
        order.tickets[0].ticket_fee_rate,
    )
    assert new_token != old_token
    assert new_token == await token_of(stores, ev, moved, ticket), "the holder's token is stable"
    assert await scan(stores, ev, old_token) == ("revoked", "transferred")
    assert await scan(stores, ev, new_token) == ("admitted", "")
    assert ("ticket.transferred", f"{ticket}|1") in await lifecycle(redis_client, ev.event_id)
    check_consistent(await read_state(redis_client, ev.event_id))

    # a second transfer of the revision the caller read is refused, naming the ticket
    other = order.tickets[1].ticket_id
    await after.transfer(ev.tenant, ev.event_id, order.order_id, other, 0, BOB)
    before = await everything(redis_client, ev.event_id)
    with pytest.raises(PreconditionFailed, match=f"ticket {other} already changed hands \\(transferred\\)"):
        await after.transfer(ev.tenant, ev.event_id, order.order_id, other, 0, CAL)
    assert await everything(redis_client, ev.event_id) == before


async def test_a_ticket_transferred_twice_revokes_every_earlier_token(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent
) -> None:
    order = await order_of(sales, ev, 2)
    ticket = order.tickets[0].ticket_id
    first = await token_of(stores, ev, order, ticket)
    _, _, second = await after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 0, BOB)
    _, _, third = await after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 1, CAL)
    assert await scan(stores, ev, first) == ("revoked", "transferred")
    assert await scan(stores, ev, second) == ("revoked", "transferred")
    assert await scan(stores, ev, third) == ("admitted", "")


async def test_bad_transfers_name_the_ticket_and_change_nothing(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 3, 4, 5)
    t0, t1, t2 = (t.ticket_id for t in order.tickets)
    await sales.cancel(ev.tenant, ev.event_id, order.order_id, [t1], "free", "")
    assert await scan(stores, ev, await token_of(stores, ev, order, t2)) == ("admitted", "")
    before = await everything(redis_client, ev.event_id)
    with pytest.raises(InvalidRequest, match="ticket 'nope' is not in order"):
        await after.transfer(ev.tenant, ev.event_id, order.order_id, "nope", 0, BOB)
    with pytest.raises(PreconditionFailed, match=f"ticket {t1} is cancelled"):
        await after.transfer(ev.tenant, ev.event_id, order.order_id, t1, 0, BOB)
    with pytest.raises(PreconditionFailed, match=f"ticket {t2} was already used at the door"):
        await after.transfer(ev.tenant, ev.event_id, order.order_id, t2, 0, BOB)
    with pytest.raises(NotFound):
        await after.transfer(ev.tenant, ev.event_id, "o-missing", t0, 0, BOB)
    with pytest.raises(InvalidRequest, match="new_holder"):
        await after.transfer(ev.tenant, ev.event_id, order.order_id, t0, 0, Buyer())
    with pytest.raises(NotFound):  # another organizer's event is not found
        await after.transfer("someone-else", ev.event_id, order.order_id, t0, 0, BOB)
    assert await everything(redis_client, ev.event_id) == before


# -- exchange ------------------------------------------------------------------------


async def test_an_exchange_takes_the_new_seats_then_releases_the_old(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    # row 0 is "vip" and rows 1-2 "std" in the small map: an exchange to another category
    order = await order_of(sales, ev, 0, 1)
    old = order.tickets[0]
    old_token = await token_of(stores, ev, order, old.ticket_id)
    new_ordinal = 13
    assert ev.categories[new_ordinal] != ev.categories[0]
    _, result = await after.exchange(
        ev.tenant, ev.event_id, order.order_id, [old.ticket_id], seat_ids=[seat(ev, new_ordinal)],
        exchange_key="x-1",
    )  # fmt: skip
    new = result.order.tickets[-1]
    new_price = ev.prices[ev.categories[new_ordinal]]
    expected = split_ticket(new_price, "EUR", PLAN, "organizer")
    assert (new.seat, new.category, new.price, new.status, new.exchanged_from) == (
        new_ordinal, ev.categories[new_ordinal], new_price, "valid", old.ticket_id
    )  # fmt: skip
    assert (new.ticket_fee_rate, new.ticket_fee_fixed, new.processing_fee_rate) == expected.parts()[:3]
    replaced = next(t for t in result.order.tickets if t.ticket_id == old.ticket_id)
    assert (replaced.status, replaced.exchanged_for) == ("exchanged", new.ticket_id)
    x = result.exchange
    assert x.difference == new_price - old.price
    assert x.fee_difference == (new.platform_fee - old.platform_fee)
    assert result.order.total == order.total + x.difference
    state = await read_state(redis_client, ev.event_id)
    assert state.seats[new_ordinal] == seatvalues.sold_to(order.order_id)
    assert 0 not in state.seats, "the old seat is back on sale"
    check_consistent(state)
    # the stream: the new seat sold, then the old one freed, in one script (consecutive)
    entries = await redis_client.xrange(keys.event_key(ev.event_id, "changes"))
    tail = [(f[b"kind"], f[b"state"], f[b"seats"]) for _, f in entries[-2:]]
    assert tail == [(b"sold", b"sold", str(new_ordinal).encode()), (b"exchanged", b"free", b"0")]
    assert await scan(stores, ev, old_token) == ("revoked", "exchanged")
    assert await scan(stores, ev, await token_of(stores, ev, result.order, new.ticket_id)) == ("admitted", "")
    kinds = [k for k, _ in await lifecycle(redis_client, ev.event_id)]
    assert kinds[-2] == "order.exchanged"  # then the scan's check-in

    # the same key answers the same exchange; with another request it is refused
    _, again = await after.exchange(
        ev.tenant, ev.event_id, order.order_id, [old.ticket_id], seat_ids=[seat(ev, new_ordinal)],
        exchange_key="x-1",
    )  # fmt: skip
    assert again.replayed
    assert again.exchange == x
    with pytest.raises(InvalidRequest, match="exchange_key"):
        await after.exchange(
            ev.tenant, ev.event_id, order.order_id, [order.tickets[1].ticket_id],
            seat_ids=[seat(ev, 14)], exchange_key="x-1",
        )  # fmt: skip


async def test_bad_exchanges_name_what_is_wrong_and_change_nothing(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 6, 7, 8)
    other = await order_of(sales, ev, 9, key="other")
    t0, t1, t2 = (t.ticket_id for t in order.tickets)
    await sales.refund(ev.tenant, ev.event_id, order.order_id, {t1: 100}, refund_key="r-1")
    await sales.cancel(ev.tenant, ev.event_id, order.order_id, [t2], "free", "")
    before = await everything(redis_client, ev.event_id)

    async def exchange(tickets: list[str], seats: list[int], key: str = "bad") -> None:
        await after.exchange(ev.tenant, ev.event_id, order.order_id, tickets,
                             seat_ids=[seat(ev, o) for o in seats], exchange_key=key)  # fmt: skip

    with pytest.raises(SeatsUnavailable) as unavailable:
        await exchange([t0], [9])
    assert unavailable.value.seat_ids == [seat(ev, 9)]
    with pytest.raises(InvalidRequest, match=f"ticket '{other.tickets[0].ticket_id}' is not in order"):
        await exchange([other.tickets[0].ticket_id], [12])
    with pytest.raises(PreconditionFailed, match=f"ticket {t1} was \\(partly\\) refunded"):
        await exchange([t1], [12])
    with pytest.raises(PreconditionFailed, match=f"ticket {t2} is cancelled"):
        await exchange([t2], [12])
    with pytest.raises(InvalidRequest, match="one new seat per ticket"):
        await exchange([t0], [12, 13])
    with pytest.raises(InvalidRequest, match="listed twice"):
        await exchange([t0, t0], [12, 13])
    assert await everything(redis_client, ev.event_id) == before


async def test_an_exchange_on_a_sold_out_event_never_lets_a_buyer_in_between(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    """Every seat sold; one is given back and the box office holds it at once; buyers
    hammer holds on both seats while the exchange runs. No buyer ever gets the seat
    the exchange takes, and the seat it gives back is only held after it was freed."""
    orders = [await order_of(sales, ev, *range(r * 6, r * 6 + 6), key=f"row{r}") for r in range(3)]
    target, old_ordinal = 17, 0
    last = orders[2]
    cancel_ticket = next(t.ticket_id for t in last.tickets if t.seat == target)
    await sales.cancel(ev.tenant, ev.event_id, last.order_id, [cancel_ticket], "free", "")
    box_hold = await stores.inventory.hold(ev.event_id, seats=ev.seats(target), buyer="box")
    done, running = asyncio.Event(), asyncio.Event()
    got: list[HoldResult] = []
    attempts = 0

    async def buyer(n: int) -> None:
        nonlocal attempts
        while True:
            finished = done.is_set()
            for o in (target, old_ordinal):
                attempts += 1
                with contextlib.suppress(SeatOrdinalsUnavailable):
                    got.append(await stores.inventory.hold(ev.event_id, seats=ev.seats(o), buyer=f"b{n}"))
                if attempts >= 8:
                    running.set()
            if finished:
                return
            await asyncio.sleep(0)

    buyers = [asyncio.create_task(buyer(n)) for n in range(4)]
    await running.wait()  # the buyers are hammering before the exchange starts
    ticket = next(t.ticket_id for t in orders[0].tickets if t.seat == old_ordinal)
    _, result = await after.exchange(
        ev.tenant, ev.event_id, orders[0].order_id, [ticket],
        hold_token=hold_token(ev.event_id, box_hold.hold_id), exchange_key="swap",
    )  # fmt: skip
    done.set()
    await asyncio.gather(*buyers)
    assert all(target not in h.record.seat_ordinals for h in got), "a buyer got the exchanged-to seat"
    on_old = [h for h in got if old_ordinal in h.record.seat_ordinals]
    assert len(on_old) == 1, "the seat given back is held by exactly one buyer after the exchange"
    assert on_old[0].seq > result.exchange.seq, "held only after the exchange freed it"
    state = await read_state(redis_client, ev.event_id)
    assert state.seats[target] == seatvalues.sold_to(orders[0].order_id)
    assert box_hold.hold_id not in state.holds, "the box office's hold ended with the exchange"
    check_consistent(state)


# -- resale --------------------------------------------------------------------------


async def test_resale_list_hold_commit_moves_ownership_and_records_the_money(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0, 1)
    ticket = order.tickets[0].ticket_id
    seller_token = await token_of(stores, ev, order, ticket)
    with pytest.raises(PreconditionFailed, match="does not allow resale"):
        await after.list_ticket(ev.tenant, ev.event_id, order.order_id, ticket, revision=0, price=5000,
                                seller_id="ada")  # fmt: skip
    await after.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True, floor=1000, cap=6000))
    assert await after.resale_rules(ev.tenant, ev.event_id) == ResaleRules(True, 1000, 6000)
    before = await everything(redis_client, ev.event_id)
    for price in (999, 6001):
        with pytest.raises(
            InvalidRequest, match=f"ticket {ticket}: a resale price must be at least 1000 and at most 6000"
        ):
            await after.list_ticket(ev.tenant, ev.event_id, order.order_id, ticket, revision=0, price=price,
                                    seller_id="ada")  # fmt: skip
    assert await everything(redis_client, ev.event_id) == before

    _, listed = await after.list_ticket(ev.tenant, ev.event_id, order.order_id, ticket, revision=0,
                                        price=5500, seller_id="ada")  # fmt: skip
    listing = next(t for t in listed.tickets if t.ticket_id == ticket).listing
    assert listing is not None
    assert (listing.price, listing.seller_id) == (5500, "ada")
    with pytest.raises(PreconditionFailed, match="already listed"):
        await after.list_ticket(ev.tenant, ev.event_id, order.order_id, ticket, revision=0, price=5000,
                                seller_id="ada")  # fmt: skip
    _, found = await after.listings(ev.tenant, ev.event_id)
    assert [(o, t.ticket_id) for o, t in found] == [(order.order_id, ticket)]

    _, held = await after.hold_listing(ev.tenant, ev.event_id, ticket, listing.listing_id, "bob")
    assert (held.price, held.order_id) == (5500, order.order_id)
    with pytest.raises(PreconditionFailed, match="held by a resale buyer"):
        await after.hold_listing(ev.tenant, ev.event_id, ticket, listing.listing_id, "cal")
    _, result, buyer_token = await after.commit_listing(ev.tenant, held.token, "buy-1", BOB)
    r = result.resale
    fees = split_ticket(5500, "EUR", PLAN, "platform")
    assert (r.price, r.seller_id, r.seller, r.buyer, r.buyer_id) == (5500, "ada", ADA, BOB, "bob")
    assert (
        r.ticket_fee_rate,
        r.ticket_fee_fixed,
        r.processing_fee_rate,
        r.processing_fee_fixed,
    ) == fees.parts()
    assert r.seller_payout == 5500 - fees.platform
    assert r.listed_ms == listing.listed_ms <= r.accepted_ms == r.delivered_ms
    t = next(t for t in result.order.tickets if t.ticket_id == ticket)
    assert (t.holder, t.revision, t.revocations, t.listing, t.resale_id) == (
        BOB,
        1,
        ["resold"],
        None,
        r.resale_id,
    )
    assert await scan(stores, ev, seller_token) == ("revoked", "resold")
    assert await scan(stores, ev, buyer_token) == ("admitted", "")
    kinds = [k for k, _ in await lifecycle(redis_client, ev.event_id)]
    assert kinds[-3:] == ["ticket.listed", "ticket.resold", "ticket.checked_in"]
    assert (await after.listings(ev.tenant, ev.event_id))[1] == []
    # a retry answers the same resale
    _, again, _ = await after.commit_listing(ev.tenant, held.token, "buy-1", BOB)
    assert again.replayed
    assert again.resale == r
    assert await after.resales(ev.tenant, ev.event_id, 0, 2**62) == [r]
    check_consistent(await read_state(redis_client, ev.event_id))


@pytest.mark.parametrize("how", ["cancel", "refund", "transfer", "scan", "exchange", "withdraw"])
async def test_a_listing_is_withdrawn_with_its_ticket(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, how: str
) -> None:
    await after.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    order = await order_of(sales, ev, 3)
    ticket = order.tickets[0].ticket_id
    _, listed = await after.list_ticket(ev.tenant, ev.event_id, order.order_id, ticket, revision=0, price=100,
                                        seller_id="ada")  # fmt: skip
    listing = listed.tickets[0].listing
    assert listing is not None
    match how:
        case "cancel":
            await sales.cancel(ev.tenant, ev.event_id, order.order_id, [ticket], "free", "")
        case "refund":
            await sales.refund(ev.tenant, ev.event_id, order.order_id, {ticket: 1}, refund_key="r")
        case "transfer":
            await after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 0, BOB)
        case "scan":
            assert (await scan(stores, ev, await token_of(stores, ev, order, ticket)))[0] == "admitted"
        case "exchange":
            await after.exchange(ev.tenant, ev.event_id, order.order_id, [ticket], seat_ids=[seat(ev, 12)],
                                 exchange_key="x")  # fmt: skip
        case "withdraw":
            await after.withdraw_listing(ev.tenant, ev.event_id, order.order_id, ticket)
    _, current = await sales.get_order(ev.tenant, ev.event_id, order.order_id)
    assert all(t.listing is None for t in current.tickets)
    assert (await after.listings(ev.tenant, ev.event_id))[1] == []
    with pytest.raises(NotFound):
        await after.hold_listing(ev.tenant, ev.event_id, ticket, listing.listing_id, "bob")


async def test_a_resale_purchase_racing_the_sellers_transfer_has_one_winner(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    await after.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    wins: list[str] = []
    for round_ in range(12):
        order = await order_of(sales, ev, round_, key=f"race{round_}")
        ticket = order.tickets[0].ticket_id
        _, listed = await after.list_ticket(ev.tenant, ev.event_id, order.order_id, ticket, revision=0,
                                            price=700, seller_id="ada")  # fmt: skip
        assert listed.tickets[0].listing is not None
        _, held = await after.hold_listing(
            ev.tenant, ev.event_id, ticket, listed.tickets[0].listing.listing_id, "bob"
        )
        buy = after.commit_listing(ev.tenant, held.token, f"buy-{round_}", BOB)
        give = after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 0, CAL)
        pair = [buy, give] if round_ % 2 else [give, buy]
        outcomes = await asyncio.gather(*pair, return_exceptions=True)
        ok = [o for o in outcomes if not isinstance(o, BaseException)]
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(ok) == 1, outcomes
        assert len(failed) == 1, outcomes
        assert isinstance(failed[0], NotFound | PreconditionFailed), failed[0]
        _, now = await sales.get_order(ev.tenant, ev.event_id, order.order_id)
        t = now.tickets[0]
        assert t.revision == 1
        assert t.listing is None
        wins.append(t.revocations[0])
        assert (t.holder == BOB) == (t.revocations == ["resold"])
    check_consistent(await read_state(redis_client, ev.event_id))
    assert set(wins) <= {"resold", "transferred"}


@pytest.mark.parametrize("rival", ["transfer", "refund"])
async def test_cancel_racing_a_transfer_or_refund_stays_consistent(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis, rival: str
) -> None:
    for round_ in range(10):
        order = await order_of(sales, ev, round_, key=f"{rival}{round_}")
        ticket = order.tickets[0].ticket_id
        token = await token_of(stores, ev, order, ticket)
        cancel = sales.cancel(ev.tenant, ev.event_id, order.order_id, [ticket], "free", "")
        if rival == "transfer":
            other = after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 0, BOB)
        else:
            other = sales.refund(ev.tenant, ev.event_id, order.order_id, {}, refund_key=f"r{round_}",
                                 release_to="free")  # fmt: skip
        pair = [cancel, other] if round_ % 2 else [other, cancel]
        outcomes = await asyncio.gather(*pair, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) <= 1, outcomes
        assert all(isinstance(e, PreconditionFailed) for e in errors), outcomes
        _, now = await sales.get_order(ev.tenant, ev.event_id, order.order_id)
        t = now.tickets[0]
        assert t.status == "cancelled", "the ticket ends cancelled whoever ran first"
        assert (await scan(stores, ev, token))[0] == "revoked"
        if rival == "transfer" and t.revision == 1:
            assert not errors, "the transfer ran first, then the cancel"
        if rival == "refund":
            assert t.refunded in (0, t.price)
    check_consistent(await read_state(redis_client, ev.event_id))


async def test_the_feed_names_the_tickets_of_each_after_sale_entry(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    await after.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    order = await order_of(sales, ev, 0, 1)
    t0, t1 = (t.ticket_id for t in order.tickets)
    await after.transfer(ev.tenant, ev.event_id, order.order_id, t0, 0, BOB)
    await after.list_ticket(ev.tenant, ev.event_id, order.order_id, t0, revision=1, price=10,
                                        seller_id="bob")  # fmt: skip
    await after.withdraw_listing(ev.tenant, ev.event_id, order.order_id, t0)
    _, done = await after.exchange(ev.tenant, ev.event_id, order.order_id, [t1], seat_ids=[seat(ev, 12)],
                                   exchange_key="x")  # fmt: skip
    entries: list[FeedEntry] = []
    async for item in FeedReader(redis_client).follow(ev.tenant, Cursor(), poll_s=0.01):
        if isinstance(item, Checkpoint):
            break
        entries.append(item)
    after_sale = [(e.kind, e.ticket_ids, e.reason) for e in entries if e.kind != "order.created"]
    assert after_sale == [
        ("ticket.transferred", [t0], ""),
        ("ticket.listed", [t0], ""),
        ("ticket.listing_withdrawn", [t0], "withdrawn"),
        ("order.exchanged", [t1, done.exchange.to_tickets[0]], ""),
    ]


async def test_an_exchanged_tickets_money_is_refunded_on_its_replacement(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0)
    old = order.tickets[0].ticket_id
    _, done = await after.exchange(ev.tenant, ev.event_id, order.order_id, [old], seat_ids=[seat(ev, 12)],
                                   exchange_key="x")  # fmt: skip
    new = done.exchange.to_tickets[0]
    before = await everything(redis_client, ev.event_id)
    with pytest.raises(PreconditionFailed, match=f"ticket {old} was exchanged: refund its replacement {new}"):
        await sales.refund(ev.tenant, ev.event_id, order.order_id, {old: 0}, refund_key="r1")
    assert await everything(redis_client, ev.event_id) == before
    _, whole = await sales.refund(
        ev.tenant, ev.event_id, order.order_id, {}, refund_key="r2", release_to="free"
    )
    assert [line.ticket_id for line in whole.refund.lines] == [new]
    assert whole.refund.total == done.order.total
    check_consistent(await read_state(redis_client, ev.event_id))


async def test_erasure_reaches_ticket_holders_and_resale_records(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    """Zelda received a ticket by transfer, sold it on, and bought another by resale:
    erasing her leaves her name in no order, ticket or resale record."""
    zelda = Buyer(name="Zelda Personalname", email="Zelda.Personal@Example.org")
    await after.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    given = await order_of(sales, ev, 0, 1, key="given")  # Ada's order
    ticket = given.tickets[0].ticket_id
    await after.transfer(ev.tenant, ev.event_id, given.order_id, ticket, 0, zelda)
    _, listed = await after.list_ticket(ev.tenant, ev.event_id, given.order_id, ticket, revision=1,
                                        price=700, seller_id="acct-7")  # fmt: skip
    assert listed.tickets[0].listing is not None
    _, held = await after.hold_listing(
        ev.tenant, ev.event_id, ticket, listed.tickets[0].listing.listing_id, "bob"
    )
    await after.commit_listing(ev.tenant, held.token, "rk-1", BOB)
    other = await order_of(sales, ev, 2, key="other")
    second = other.tickets[0].ticket_id
    _, listed = await after.list_ticket(ev.tenant, ev.event_id, other.order_id, second, revision=0,
                                        price=700, seller_id="ada")  # fmt: skip
    assert listed.tickets[0].listing is not None
    _, held = await after.hold_listing(
        ev.tenant, ev.event_id, second, listed.tickets[0].listing.listing_id, "z"
    )
    await after.commit_listing(ev.tenant, held.token, "rk-2", zelda)

    async def everything() -> bytes:
        """Every hash's fields and values, on every node (scan_iter walks a cluster's)."""
        out: list[bytes] = []
        async for key in redis_client.scan_iter(count=500):
            if await redis_client.type(key) == b"hash":
                out += [b for pair in (await redis_client.hgetall(key)).items() for b in pair]
        return b"\n".join(out).lower()

    assert b"zelda" in await everything()
    await Privacy(stores.redis, stores.scripts).erase_buyer(ev.tenant, zelda.email, "key-1")
    after_erasure = await everything()
    assert b"zelda" not in after_erasure
    assert b"personalname" not in after_erasure
    _, kept = await sales.get_order(ev.tenant, ev.event_id, other.order_id)
    assert (kept.tickets[0].revision, kept.tickets[0].price) == (1, other.tickets[0].price)  # the sale stays
    check_consistent(await read_state(redis_client, ev.event_id))
