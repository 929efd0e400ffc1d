"""Exchanges into another event of the organizer against real Redis (single and cluster):
two events of a season in one script; an event in another slot by the saga of
holds/exchanges.py, with a crash injected between each step, recovery, retries,
concurrent identical calls, a sold-out target and the races with refunds and transfers.
After every settled exchange exactly one of {the old tickets, the new tickets} is valid."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import string
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from holds import keys, seatvalues
from holds.aftersale import AfterSale, ExchangeResult
from holds.errors import HoldExpired, InvalidRequest, NotFound, PreconditionFailed
from holds.exchanges import Abandoned, hold_request_id, parse_member, pending_member, same_slot
from holds.inventory import HoldResult, SeatOrdinalsUnavailable
from holds.records import Buyer, Exchange, Order, Ticket
from holds.redis_client import AnyRedis
from holds.sales import Sales, hold_token
from server.context import Stores
from server.reaper import reap_once
from tests.holds.factories import TestEvent, check_consistent, make_event, read_state
from tests.holds.history import Op, Recorder, check_cross_exchanges
from tests.holds.test_aftersale import ADA, BOB, order_of, scan, seat, token_of
from tests.holds.test_history import _state
from tests.holds.test_seasons import make_season

FAR_FUTURE_MS = 2**53  # recovery "now": every attempt is due


class Crash(Exception):
    """The caller dies between two steps: nothing after the step runs."""


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20)


@pytest.fixture
async def other(stores: Stores) -> TestEvent:
    """Another event of the same organizer, in another slot."""
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20)


@pytest.fixture
def sales(stores: Stores) -> Sales:
    return Sales(stores.live, stores.inventory)


@pytest.fixture
def after(stores: Stores, sales: Sales) -> AfterSale:
    return AfterSale(stores.redis, stores.scripts, sales, stores.inventory, stores.door)


async def exchange(
    after: AfterSale, ev: TestEvent, order: Order, tickets: list[str], target: TestEvent, seats: list[int],
    key: str = "x-1",
) -> ExchangeResult:  # fmt: skip
    _, result = await after.exchange(
        ev.tenant, ev.event_id, order.order_id, tickets, seat_ids=[seat(target, o) for o in seats],
        exchange_key=key, target_event_id=target.event_id,
    )  # fmt: skip
    return result


async def valid(stores: Stores, event_id: str, order_id: str, ticket_ids: list[str]) -> bool:
    """Whether all of these tickets are valid (all or none must be: asserted)."""
    order = await stores.inventory.get_order(event_id, order_id)
    states = {t.status == "valid" and not t.exchanging for t in order.tickets if t.ticket_id in ticket_ids}
    assert len(states) == 1, f"some tickets valid, some not: {order.tickets}"
    return states.pop()


async def target_orders(redis_client: AnyRedis, target: TestEvent) -> list[str]:
    return sorted(k.decode() for k in await redis_client.hkeys(keys.event_key(target.event_id, "orders")))


async def pending(redis_client: AnyRedis) -> list[bytes]:
    return list(await redis_client.zrange(keys.EXCHANGES_PENDING, 0, -1))


async def cut(redis_client: AnyRedis, *event_ids: str) -> list[tuple[object, ...]]:
    """What an exchange may change in these events, for "nothing changed"."""
    out: list[tuple[object, ...]] = []
    for e in event_ids:
        state = await read_state(redis_client, e)
        out.append((state.seats, state.orders, state.holds, state.seq, state.tickets))
    return out


async def consistent(redis_client: AnyRedis, *events: TestEvent) -> None:
    for e in events:
        check_consistent(await read_state(redis_client, e.event_id))


# -- the saga, end to end -------------------------------------------------------------


async def test_an_exchange_into_another_event_moves_the_tickets_and_records_the_difference(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    assert not same_slot(ev.event_id, other.event_id)
    order = await order_of(sales, ev, 0, 7)  # a vip and a std seat
    old = [t.ticket_id for t in order.tickets]
    old_tokens = [await token_of(stores, ev, order, t) for t in old]
    result = await exchange(after, ev, order, old, other, [8, 1])  # std for vip, vip for std
    new_order = result.new_order
    assert new_order is not None
    assert not result.replayed
    assert [t.seat for t in new_order.tickets] == [8, 1]
    assert [t.exchanged_from for t in new_order.tickets] == old
    assert new_order.exchanged_from_event == ev.event_id
    assert new_order.exchanged_from_order == order.order_id
    assert all(t.status == "exchanged" for t in result.order.tickets)
    x = result.exchange
    assert (x.target_event_id, x.target_order_id) == (other.event_id, new_order.order_id)
    assert list(x.to_tickets) == [t.ticket_id for t in new_order.tickets]
    assert x.difference == sum(t.price for t in new_order.tickets) - sum(t.price for t in order.tickets) == 0
    source, target = (
        await read_state(redis_client, ev.event_id),
        await read_state(redis_client, other.event_id),
    )
    assert {0, 7}.isdisjoint(source.seats), "the old seats are free"
    assert target.seats[8] == target.seats[1] == seatvalues.sold_to(new_order.order_id)
    assert not target.holds, "the exchange's hold ended with the commit"
    check_consistent(source)
    check_consistent(target)
    for token in old_tokens:
        assert await scan(stores, ev, token) == ("revoked", "exchanged")
    new_token = (await stores.door.ticket_token(ev.tenant, other.event_id, new_order.order_id,
                                                new_order.tickets[0].ticket_id))[1]  # fmt: skip
    assert (await stores.door.scan(ev.tenant, other.event_id, new_token, "A", "d1"))[1].result == "admitted"
    assert await pending(redis_client) == []

    again = await exchange(after, ev, order, old, other, [8, 1])
    assert again.replayed
    assert again.exchange == x
    assert again.new_order == new_order
    with pytest.raises(InvalidRequest, match="exchange_key"):
        await exchange(after, ev, order, old, other, [9, 2])
    assert await target_orders(redis_client, other) == [new_order.order_id]


async def test_an_exchange_prices_the_new_seats_at_the_target_and_records_what_is_owed(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent
) -> None:
    order = await order_of(sales, ev, 7)  # std, 1500
    result = await exchange(after, ev, order, [order.tickets[0].ticket_id], other, [0])  # vip, 4200
    assert result.exchange.difference == 4200 - 1500
    assert result.order.total == order.total - 1500, "the money moved with the ticket"
    assert result.new_order is not None
    assert result.new_order.total == 4200


async def test_another_organizers_event_answers_not_found_and_nothing_changes(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, redis_client: AnyRedis
) -> None:
    foreign = await make_event(stores.seatmaps, stores.events, tenant="someone-else")
    order = await order_of(sales, ev, 0)
    before = await cut(redis_client, ev.event_id, foreign.event_id)
    for target in (foreign.event_id, "ev-missing"):
        with pytest.raises(NotFound) as caught:
            await after.exchange(
                ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id],
                seat_ids=[seat(foreign, 3)], exchange_key="x", target_event_id=target,
            )  # fmt: skip
        assert str(caught.value) == str(NotFound("event", target)), "exactly as a missing event"
    assert await cut(redis_client, ev.event_id, foreign.event_id) == before
    assert await pending(redis_client) == []


async def test_bad_exchanges_into_another_event_name_what_is_wrong_and_release_the_hold(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0, 1)
    t0, t1 = (t.ticket_id for t in order.tickets)
    await sales.cancel(ev.tenant, ev.event_id, order.order_id, [t1], "free", "")
    taken = await order_of(sales, other, 5)
    with pytest.raises(PreconditionFailed, match=f"ticket {t1} is cancelled"):
        await exchange(after, ev, order, [t1], other, [3])
    with pytest.raises(Exception, match=seat(other, 5)):
        await exchange(after, ev, order, [t0], other, [5], key="x-2")
    with pytest.raises(InvalidRequest, match="unknown seat"):
        await after.exchange(ev.tenant, ev.event_id, order.order_id, [t0], seat_ids=["nope"],
                             exchange_key="x-3", target_event_id=other.event_id)  # fmt: skip
    state = await read_state(redis_client, other.event_id)
    assert not state.holds, "the hold the refused exchange made is released"
    assert await target_orders(redis_client, other) == [taken.order_id]
    assert await valid(stores, ev.event_id, order.order_id, [t0])
    assert await pending(redis_client) == []
    await consistent(redis_client, ev, other)


# -- crashes between the steps, recovery and retries ----------------------------------


def crash_at(step: str) -> Callable[[str], Awaitable[None]]:
    async def fault(name: str) -> None:
        if name == step:
            raise Crash(step)

    return fault


@pytest.mark.parametrize("how", ["recovery", "retry"])
@pytest.mark.parametrize("step", ["held", "locked", "committed"])
async def test_a_crash_between_steps_is_completed_or_undone_never_both_never_neither(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis,
    step: str, how: str,
) -> None:  # fmt: skip
    order = await order_of(sales, ev, 0, 1)
    old = [t.ticket_id for t in order.tickets]
    after.cross.fault = crash_at(step)
    with pytest.raises(Crash):
        await exchange(after, ev, order, old, other, [8, 9])
    after.cross.fault = None
    assert len(await pending(redis_client)) == 1, "the attempt is known to recovery"
    if step != "held":  # locked: no transfer, refund, cancel, scan or second exchange meanwhile
        with pytest.raises(PreconditionFailed, match="being exchanged"):
            await after.transfer(ev.tenant, ev.event_id, order.order_id, old[0], 0, BOB)
        with pytest.raises(PreconditionFailed, match="being exchanged"):
            await sales.refund(ev.tenant, ev.event_id, order.order_id, {}, refund_key="r")
        with pytest.raises(PreconditionFailed, match="being exchanged"):
            await sales.cancel(ev.tenant, ev.event_id, order.order_id, [old[1]], "free", "")
        with pytest.raises(PreconditionFailed, match="being exchanged"):
            await exchange(after, ev, order, old, ev, [12, 13], key="x-other")
        token = await token_of(stores, ev, order, old[0])
        assert await scan(stores, ev, token) == ("revoked", "exchanging")
    if how == "recovery":
        assert await after.cross.recover(now_ms=FAR_FUTURE_MS) == 1
    else:
        result = await exchange(after, ev, order, old, other, [8, 9])
        assert result.new_order is not None
        await after.cross.recover(now_ms=FAR_FUTURE_MS)  # settles the crashed attempt
    assert await pending(redis_client) == []
    news = await target_orders(redis_client, other)
    old_valid = await valid(stores, ev.event_id, order.order_id, old)
    new_valid = False
    if news:
        new_order = await stores.inventory.get_order(other.event_id, news[0])
        new_valid = all(t.status == "valid" for t in new_order.tickets)
    assert old_valid != new_valid, f"exactly one of old ({old_valid}) and new ({new_valid}) is valid"
    assert len(news) <= 1
    # a crash before the lock is undone by recovery; after it, the exchange completes
    assert new_valid == (how == "retry" or step != "held")
    assert not (await read_state(redis_client, other.event_id)).holds, "no hold left behind"
    await consistent(redis_client, ev, other)
    # and a retry afterwards answers the settled exchange, or starts a new attempt
    result = await exchange(after, ev, order, old, other, [8, 9])
    assert result.new_order is not None
    assert await target_orders(redis_client, other) == [result.new_order.order_id]
    assert result.replayed == new_valid


async def test_a_locked_exchange_whose_hold_is_gone_rolls_back_and_unlocks(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0)
    old = [order.tickets[0].ticket_id]
    after.cross.fault = crash_at("locked")
    with pytest.raises(Crash):
        await exchange(after, ev, order, old, other, [8])
    after.cross.fault = None
    rec = await after.cross.read(ev.event_id, "x-1")
    assert rec is not None
    assert rec.status == "locked"
    await stores.inventory.release(other.event_id, rec.hold_id)  # the hold ends (as if it expired)
    with pytest.raises(PreconditionFailed, match="committed or released"):
        await exchange(after, ev, order, old, other, [8])  # the retry finds (c) refused: rolled back
    rec = await after.cross.read(ev.event_id, "x-1")
    assert rec is not None
    assert rec.status == "aborted"
    assert await valid(stores, ev.event_id, order.order_id, old)
    assert await target_orders(redis_client, other) == []
    await after.cross.recover(now_ms=FAR_FUTURE_MS)
    assert await pending(redis_client) == []
    # the tickets are free to change hands again; the same key starts a next attempt
    result = await exchange(after, ev, order, old, other, [8])
    assert result.new_order is not None
    assert not result.replayed
    await consistent(redis_client, ev, other)


async def test_a_single_event_exchange_with_the_key_of_one_across_events_is_refused(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    """The key of an exchange into another event, in flight (its tickets locked) or done, is
    another request's for an exchange within the event: INVALID_ARGUMENT exchange_key, nothing
    changed, whichever order and tickets it names."""
    order = await order_of(sales, ev, 0, 1)
    second = await order_of(sales, ev, 2, key="k2")
    after.cross.fault = crash_at("locked")
    with pytest.raises(Crash):
        await exchange(after, ev, order, [order.tickets[0].ticket_id], other, [8])
    after.cross.fault = None

    async def within(o: Order, ticket: str, new_seat: int, key: str = "x-1") -> None:
        await after.exchange(
            ev.tenant, ev.event_id, o.order_id, [ticket], seat_ids=[seat(ev, new_seat)], exchange_key=key
        )

    for status in ("locked", "done"):
        rec = await after.cross.read(ev.event_id, "x-1")
        assert rec is not None
        assert rec.status == status
        before = await cut(redis_client, ev.event_id, other.event_id)
        for o, ticket in ((order, order.tickets[1].ticket_id), (second, second.tickets[0].ticket_id)):
            with pytest.raises(InvalidRequest) as refused:
                await within(o, ticket, 12)
            assert refused.value.field == "exchange_key"
            assert rec.exchange_id in str(refused.value)
        assert await cut(redis_client, ev.event_id, other.event_id) == before
        await after.cross.recover(now_ms=FAR_FUTURE_MS)  # the exchange completes: refused all the same
    await within(order, order.tickets[1].ticket_id, 12, key="x-2")  # another key is free
    await consistent(redis_client, ev, other)


async def test_a_call_that_follows_a_finished_identical_one_leaves_nothing_pending(
    after: AfterSale, sales: Sales, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    """An identical call that read "no exchange yet", then was overtaken by one that went all
    the way (and took its attempt off the pending set), notes the attempt again; its hold
    request then fails (that hold is committed) and it answers the finished exchange. It
    must take its note of the attempt back: the record is final, nothing is left to recover."""
    order = await order_of(sales, ev, 0, 1)
    old = [t.ticket_id for t in order.tickets]
    read = after.cross.read
    reads = 0
    first_read_done = asyncio.Event()
    overtaken = asyncio.Event()

    async def first_read_waits(source_event: str, key: str) -> Any:
        nonlocal reads
        rec = await read(source_event, key)
        reads += 1
        if reads == 1:  # the slow call: it saw no record, and waits for the other to finish
            first_read_done.set()
            await overtaken.wait()
        return rec

    after.cross.read = first_read_waits  # type: ignore[method-assign]
    slow = asyncio.create_task(exchange(after, ev, order, old, other, [8, 9]))
    await first_read_done.wait()
    fast = await exchange(after, ev, order, old, other, [8, 9])
    assert await pending(redis_client) == []
    overtaken.set()
    followed = await slow
    assert followed.exchange.exchange_id == fast.exchange.exchange_id
    assert followed.new_order is not None
    assert fast.new_order is not None
    assert followed.new_order.order_id == fast.new_order.order_id
    assert await pending(redis_client) == []
    assert not (await read_state(redis_client, other.event_id)).holds
    await consistent(redis_client, ev, other)


async def test_a_slow_attempt_given_up_by_recovery_cannot_lock_later(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    """Recovery takes an attempt that has not locked yet (its caller is slower than the
    grace): the attempt's late lock is refused and its hold released; nothing is stuck."""
    order = await order_of(sales, ev, 0)
    old = [order.tickets[0].ticket_id]

    async def recovery_overtakes(name: str) -> None:
        if name == "held":
            assert await after.cross.recover(now_ms=FAR_FUTURE_MS) == 1

    after.cross.fault = recovery_overtakes
    with pytest.raises(Abandoned):
        await exchange(after, ev, order, old, other, [8])
    after.cross.fault = None
    assert await pending(redis_client) == []
    assert await valid(stores, ev.event_id, order.order_id, old)
    assert not (await read_state(redis_client, other.event_id)).holds
    result = await exchange(after, ev, order, old, other, [8])  # the retry: attempt 2
    assert result.new_order is not None
    assert await redis_client.hget(
        keys.event_key(other.event_id, "holdreqs"), hold_request_id(ev.event_id, "x-1", 2)
    )
    await consistent(redis_client, ev, other)


async def test_concurrent_identical_retries_make_one_exchange_and_answer_it_alike(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0, 1)
    old = [t.ticket_id for t in order.tickets]
    results = await asyncio.gather(*(exchange(after, ev, order, old, other, [8, 9]) for _ in range(6)))
    new_ids = {r.new_order.order_id for r in results if r.new_order is not None}
    assert len(new_ids) == 1
    assert len(results) == 6
    assert len({r.exchange.exchange_id for r in results}) == 1
    assert await target_orders(redis_client, other) == sorted(new_ids)
    assert not (await read_state(redis_client, other.event_id)).holds
    assert await pending(redis_client) == []
    await consistent(redis_client, ev, other)


@pytest.mark.parametrize("rival", ["refund", "transfer"])
async def test_an_exchange_racing_a_refund_or_transfer_of_its_ticket_has_one_winner(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis,
    rival: str,
) -> None:  # fmt: skip
    for round_ in range(8):
        order = await order_of(sales, ev, round_, key=f"{rival}{round_}")
        ticket = order.tickets[0].ticket_id
        swap = exchange(after, ev, order, [ticket], other, [6 + round_], key=f"x{round_}")
        if rival == "refund":
            other_call: Awaitable[object] = sales.refund(
                ev.tenant, ev.event_id, order.order_id, {}, refund_key=f"r{round_}", release_to="free"
            )
        else:
            other_call = after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 0, BOB)
        pair = [swap, other_call] if round_ % 2 else [other_call, swap]
        outcomes = await asyncio.gather(*pair, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) <= 1 or rival == "transfer", outcomes
        assert all(isinstance(e, PreconditionFailed) for e in errors), outcomes
        now = await stores.inventory.get_order(ev.event_id, order.order_id)
        t = now.tickets[0]
        exchanged = t.status == "exchanged"
        swapped = [o for o in outcomes if isinstance(o, ExchangeResult)]
        assert exchanged == bool(swapped)
        if rival == "refund":
            assert exchanged != (t.refunded > 0), "either exchanged or refunded, never both"
        seat_value = (await read_state(redis_client, other.event_id)).seats.get(6 + round_)
        assert (seat_value is not None) == exchanged, "the new seat is sold only by a completed exchange"
    assert not (await read_state(redis_client, other.event_id)).holds
    assert await pending(redis_client) == []
    await consistent(redis_client, ev, other)


async def test_an_exchange_into_a_sold_out_event_never_lets_a_buyer_in_between(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    """The target is sold out but for the seats the box office holds for the exchange;
    buyers hammer holds on the new seat (target) and the old one (source) while the saga
    runs. No buyer ever gets the new seat; the old one is only held after it was freed."""
    for r in range(3):
        await order_of(sales, other, *(o for o in range(r * 6, r * 6 + 6) if o != 17), key=f"row{r}")
    new_ordinal, old_ordinal = 17, 0
    box_hold = await stores.inventory.hold(other.event_id, seats=other.seats(new_ordinal), buyer="box")
    order = await order_of(sales, ev, old_ordinal)
    done, running = asyncio.Event(), asyncio.Event()
    got: list[tuple[str, HoldResult]] = []
    attempts = 0

    async def buyer(n: int) -> None:
        nonlocal attempts
        while True:
            finished = done.is_set()
            for e, o in ((other, new_ordinal), (ev, old_ordinal)):
                attempts += 1
                with contextlib.suppress(SeatOrdinalsUnavailable):
                    got.append(
                        (e.event_id, await stores.inventory.hold(e.event_id, seats=e.seats(o), buyer=f"b{n}"))
                    )
                if attempts >= 8:
                    running.set()
            if finished:
                return
            await asyncio.sleep(0)

    buyers = [asyncio.create_task(buyer(n)) for n in range(4)]
    await running.wait()
    _, result = await after.exchange(
        ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id],
        hold_token=hold_token(other.event_id, box_hold.hold_id), exchange_key="swap",
        target_event_id=other.event_id,
    )  # fmt: skip
    done.set()
    await asyncio.gather(*buyers)
    assert not [h for e, h in got if e == other.event_id], "a buyer got the exchanged-to seat"
    on_old = [h for e, h in got if e == ev.event_id]
    assert len(on_old) == 1, "the seat given back is held by exactly one buyer after the exchange"
    assert on_old[0].seq > result.exchange.seq, "held only after the exchange freed it"
    target = await read_state(redis_client, other.event_id)
    assert result.new_order is not None
    assert target.seats[new_ordinal] == seatvalues.sold_to(result.new_order.order_id)
    assert box_hold.hold_id not in target.holds
    await consistent(redis_client, ev, other)


async def test_the_callers_hold_must_fit_and_be_live(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0)
    two = await stores.inventory.hold(other.event_id, seats=other.seats(3, 4), buyer="box")
    with pytest.raises(InvalidRequest, match="the hold has 2 seat"):
        await after.exchange(ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id],
                             hold_token=hold_token(other.event_id, two.hold_id), exchange_key="h",
                             target_event_id=other.event_id)  # fmt: skip
    await stores.inventory.release(other.event_id, two.hold_id)
    with pytest.raises((HoldExpired, PreconditionFailed)):
        await after.exchange(ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id],
                             hold_token=hold_token(other.event_id, two.hold_id), exchange_key="h",
                             target_event_id=other.event_id)  # fmt: skip
    assert await valid(stores, ev.event_id, order.order_id, [order.tickets[0].ticket_id])
    assert await pending(redis_client) == []


# -- two events of a season: one script -----------------------------------------------


async def test_an_exchange_between_two_events_of_a_season_is_one_script(
    stores: Stores, sales: Sales, after: AfterSale, redis_client: AnyRedis
) -> None:
    season = await make_season(stores, 2)
    first, second = season.events
    assert same_slot(first, second)
    _, sold = await sales.sell_at_box_office(
        season.season.tenant_id, first, [season.seat(0), season.seat(7)], {},
        idempotency_key="s", buyer=ADA, payment_method="cash",
    )  # fmt: skip
    order = sold.order
    old = [t.ticket_id for t in order.tickets]
    _, result = await after.exchange(
        season.season.tenant_id, first, order.order_id, old, seat_ids=[season.seat(8), season.seat(1)],
        exchange_key="sx", target_event_id=second,
    )  # fmt: skip
    assert result.new_order is not None
    assert not result.replayed
    assert [t.exchanged_from for t in result.new_order.tickets] == old
    assert all(t.status == "exchanged" for t in result.order.tickets)
    assert result.exchange.target_order_id == result.new_order.order_id
    assert await pending(redis_client) == [], "no saga: one script"
    assert await after.cross.read(first, "sx") is None
    for e in (first, second):
        check_consistent(await read_state(redis_client, e))
    _, again = await after.exchange(
        season.season.tenant_id, first, order.order_id, old, seat_ids=[season.seat(8), season.seat(1)],
        exchange_key="sx", target_event_id=second,
    )  # fmt: skip
    assert again.replayed
    assert again.new_order == result.new_order
    assert again.exchange == result.exchange
    # refused whole: a taken seat changes nothing in either event
    _, more = await sales.sell_at_box_office(
        season.season.tenant_id, first, [season.seat(2)], {}, idempotency_key="s2", buyer=ADA,
        payment_method="cash",
    )  # fmt: skip
    before = await cut(redis_client, first, second)
    with pytest.raises(Exception, match=season.seat(8)):
        await after.exchange(
            season.season.tenant_id, first, more.order.order_id, [more.order.tickets[0].ticket_id],
            seat_ids=[season.seat(8)], exchange_key="sy", target_event_id=second,
        )  # fmt: skip
    assert await cut(redis_client, first, second) == before


async def test_the_reaper_completes_an_exchange_whose_caller_died(
    stores: Stores, sales: Sales, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    after = stores.after_sale  # the one the server's reaper settles with
    order = await order_of(sales, ev, 0)
    old = [order.tickets[0].ticket_id]
    after.cross.grace_ms = 0  # due at once (30 s in a server)
    after.cross.fault = crash_at("committed")
    with pytest.raises(Crash):
        await exchange(after, ev, order, old, other, [8])
    after.cross.fault = None
    assert not await valid(stores, ev.event_id, order.order_id, old), "locked while in flight"
    await reap_once(stores)
    assert await pending(redis_client) == []
    rec = await after.cross.read(ev.event_id, "x-1")
    assert rec is not None
    assert rec.status == "done"
    assert (await stores.inventory.get_order(ev.event_id, order.order_id)).tickets[0].status == "exchanged"
    await consistent(redis_client, ev, other)


# -- a recorded concurrent run, checked by the history checker ------------------------


async def test_randomized_cross_event_exchanges_with_crashes_keep_exactly_one_valid(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    """Clients exchange tickets of the source's orders into the target (whose seats buyers
    hold and buy meanwhile), refund, transfer and cancel those tickets, while callers
    crash at random between the saga's steps; recovery runs; the history is checked."""
    rng = random.Random(14)
    orders = [await order_of(sales, ev, r * 6, r * 6 + 1, r * 6 + 2, key=f"o{r}") for r in range(3)]
    rec = Recorder()
    keys_ = itertools.count()

    async def fault(step: str) -> None:
        if rng.random() < 0.12:
            raise Crash(step)

    after.cross.fault = fault

    async def crashed_is_unknown(call: Awaitable[object]) -> object:
        try:
            return await call
        except Crash:
            raise TimeoutError from None  # to the client: a call it stopped waiting for

    async def client(name: str) -> None:
        for _ in range(14):
            order = rng.choice(orders)
            ticket = rng.choice(order.tickets).ticket_id
            roll = rng.random()
            if roll < 0.55:
                key = f"{name}-{next(keys_)}"
                target = rng.randrange(0, 18)
                op = rec.op(name, "exchange", order_id=order.order_id, tickets=(ticket,), seats=(target,),
                            idem_key=key, target=other.event_id)  # fmt: skip
                await rec.run(
                    op, crashed_is_unknown(exchange(after, ev, order, [ticket], other, [target], key)), 10
                )
            elif roll < 0.7:
                op = rec.op(name, "refund", order_id=order.order_id, tickets=(ticket,), release=True)
                call = sales.refund(ev.tenant, ev.event_id, order.order_id, {ticket: 0},
                                    refund_key=f"{name}-r{next(keys_)}", release_to="free")  # fmt: skip
                await rec.run(op, call, 10)
            elif roll < 0.85:
                op = rec.op(name, "transfer", order_id=order.order_id, tickets=(ticket,))
                await rec.run(op, after.transfer(ev.tenant, ev.event_id, order.order_id, ticket, 0, BOB), 10)
            else:  # a buyer of the target: the exchanges' seats are contended
                seat_ = rng.randrange(0, 18)
                op = rec.op(name, "hold", seats=(seat_,))
                with contextlib.suppress(Exception):
                    held = await stores.inventory.hold(other.event_id, seats=other.seats(seat_), buyer=name)
                    await stores.inventory.commit(other.event_id, held.hold_id, f"{name}-{seat_}", ADA)
            await asyncio.sleep(0)

    await asyncio.gather(*(client(f"c{n}") for n in range(4)))
    after.cross.fault = None
    await after.cross.recover(now_ms=FAR_FUTURE_MS)
    assert await pending(redis_client) == []
    source, target = (
        await read_state(redis_client, ev.event_id),
        await read_state(redis_client, other.event_id),
    )
    assert check_cross_exchanges(rec.ops, source, target) == []
    check_consistent(source)
    check_consistent(target)
    exchange_holds = {hold for request, (hold, _) in target.holdreqs.items() if request.startswith("xchg-")}
    assert not exchange_holds & set(target.holds), "no exchange's hold is left behind"
    outcomes = {(o.kind, o.outcome) for o in rec.ops}
    assert ("exchange", "ok") in outcomes, outcomes
    assert ("exchange", "unknown") in outcomes, outcomes


def test_the_checker_catches_both_and_neither() -> None:
    old = Ticket("t-1", "std", 100, "exchanged", seat=0, exchanged_for="n-1")
    record = Exchange("x1", "k", 1, ["t-1"], ["n-1"], 0, 0, target_event_id="B", target_order_id="o2")
    source = msgspec.structs.replace(_order("o1", [old]), exchanges=[record])
    new = Ticket("n-1", "std", 100, "valid", seat=3, exchanged_from="t-1")
    target = msgspec.structs.replace(_order("o2", [new]), exchanged_from_order="o1", exchange_id="x1")
    ops = [Op(1, "a", "exchange", 1, 2, "ok", order_id="o1", tickets=("t-1",), idem_key="k", target="B")]
    assert check_cross_exchanges(ops, _state([source]), _state([target])) == []
    still = msgspec.structs.replace(old, status="valid", exchanged_for="")
    both = msgspec.structs.replace(source, tickets=[still], exchanges=[])
    assert any("both" in p for p in check_cross_exchanges(ops, _state([both]), _state([target])))
    assert any("neither" in p for p in check_cross_exchanges(ops, _state([source]), _state([])))
    locked = msgspec.structs.replace(both, tickets=[msgspec.structs.replace(still, exchanging="x1")])
    assert any("still locked" in p for p in check_cross_exchanges([], _state([locked]), _state([])))
    assert any("not in Redis" in p for p in check_cross_exchanges(ops, _state([both]), _state([])))


def _order(order_id: str, tickets: list[Ticket]) -> Order:
    return Order(order_id, "", f"k-{order_id}", Buyer(), tickets, 100, "EUR", "committed", 1, 1)


async def test_a_refused_attempt_can_be_retried_with_its_key_once_the_cause_is_gone(
    stores: Stores, sales: Sales, after: AfterSale, ev: TestEvent, other: TestEvent, redis_client: AnyRedis
) -> None:
    order = await order_of(sales, ev, 0)
    old = [order.tickets[0].ticket_id]
    after.cross.fault = crash_at("locked")
    with pytest.raises(Crash):
        await exchange(after, ev, order, old, other, [8], key="first")
    after.cross.fault = None
    with pytest.raises(PreconditionFailed, match="being exchanged"):
        await exchange(after, ev, order, old, other, [9], key="second")
    assert not (await read_state(redis_client, other.event_id)).holds.keys() - {
        (await after.cross.read(ev.event_id, "first") or pytest.fail("no record")).hold_id
    }, "the refused attempt's hold is released"
    first = await after.cross.read(ev.event_id, "first")
    assert first is not None
    await stores.inventory.release(other.event_id, first.hold_id)  # the first one's hold ends: rolled back
    await after.cross.recover(now_ms=FAR_FUTURE_MS)
    result = await exchange(after, ev, order, old, other, [9], key="second")  # its next attempt
    assert result.new_order is not None
    assert [t.seat for t in result.new_order.tickets] == [9]
    assert await pending(redis_client) == []
    await consistent(redis_client, ev, other)


# -- pure parts -------------------------------------------------------------------------

_ids = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)


@given(source=_ids, target=_ids, attempt=st.integers(1, 10**6), key=st.text(min_size=1, max_size=128))
def test_a_pending_attempt_names_its_exchange_whatever_the_key(
    source: str, target: str, attempt: int, key: str
) -> None:
    assert parse_member(pending_member(source, target, attempt, key)) == (source, target, attempt, key)


@given(season=_ids, a=_ids, b=_ids)
def test_only_events_of_one_season_share_a_slot(season: str, a: str, b: str) -> None:
    first, second = f"{season}~{a}", f"{season}~{b}"
    assert same_slot(first, second)
    assert same_slot(first, season)
    assert same_slot(a, b) == (a == b)
    assert not same_slot(f"{season}x~{a}", first)
    assert hold_request_id(first, "k", 1) != hold_request_id(first, "k", 2)
    assert (hold_request_id(first, "k", 1) == hold_request_id(second, "k", 1)) == (a == b)
