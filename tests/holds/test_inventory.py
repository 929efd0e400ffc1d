"""Each inventory script through :class:`holds.inventory.Inventory`, against a real Redis.

Every test checks both what the call returns and what Redis holds afterwards
(:func:`tests.holds.factories.read_state`), and failed calls are checked to
have changed nothing at all (the whole cut compares equal before and after).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from holds.errors import (
    GeneralAdmissionUnavailable,
    HoldExpired,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from holds.events import EventStore
from holds.inventory import Inventory, ReapResult, SeatOrdinalsInWrongState, SeatOrdinalsUnavailable
from holds.records import Buyer
from holds.redis_client import AnyRedis
from server.context import Stores
from tests.holds.factories import (
    GA_AREA,
    RawState,
    TestEvent,
    check_consistent,
    expire_hold,
    make_event,
    read_state,
    replay_changes,
    snapshot_states,
)

BUYER = Buyer(name="Ada", email="ada@example.org")


@pytest.fixture
def inv(stores: Stores) -> Inventory:
    return stores.inventory


@pytest.fixture
def events(stores: Stores) -> EventStore:
    return stores.events


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    """3 rows x 6 seats (row 0 VIP), GA 'floor' of 5, up to 10 places per hold."""
    return await make_event(stores.seatmaps, stores.events)


async def state(client: AnyRedis, ev: TestEvent) -> RawState:
    return await read_state(client, ev.event_id)


def later(
    fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kwargs: Any
) -> Callable[[], Coroutine[Any, Any, Any]]:
    """``fn(*args, **kwargs)`` as a zero-argument call (bound now, not at call time)."""
    return lambda: fn(*args, **kwargs)


async def unchanged(
    client: AnyRedis,
    ev: TestEvent,
    call: Callable[[], Coroutine[Any, Any, Any]],
    error: type[BaseException] | tuple[type[BaseException], ...],
) -> pytest.ExceptionInfo[BaseException]:
    """Run a call that must fail with ``error`` and leave every key exactly as it was."""
    before = await state(client, ev)
    with pytest.raises(error) as info:
        await call()
    after = await state(client, ev)
    before.now_ms = after.now_ms
    assert after == before, "a failed call changed the inventory"
    return info


# -- holds -----------------------------------------------------------------------


async def test_hold_takes_seats_and_ga(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    result = await inv.hold(ev.event_id, seats=ev.seats(0, 7), ga={GA_AREA: 2}, buyer="b1")
    s = await state(redis_client, ev)
    assert s.seats == {0: f"h:{result.hold_id}", 7: f"h:{result.hold_id}"}
    assert result.record.seat_ordinals == [0, 7]
    assert result.record.categories == ["vip", "std"]
    assert result.record.ga == {GA_AREA: 2}
    assert result.record.count == 4
    assert s.ga_held == {GA_AREA: 2}
    assert s.buyers == {"b1": 4}
    assert s.holdexp[result.hold_id] == result.expires_ms == result.record.expires
    assert result.expires_ms - s.now_ms == pytest.approx(ev.settings.hold_ttl_ms, abs=2_000)
    assert result.seq == s.seq
    check_consistent(s)


async def test_hold_is_all_or_nothing_and_names_exactly_the_taken_seats(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    first = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), buyer="a")
    await inv.set_status(ev.event_id, [5], "blocked", ["free"])
    await inv.set_status(ev.event_id, [6], "not_for_sale", ["free"])
    sold = await inv.hold(ev.event_id, seats=ev.seats(9), buyer="c")
    await inv.commit(ev.event_id, sold.hold_id, "k-sold", BUYER)

    info = await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(3, 2, 4, 0, 5, 6, 9, 10), ga={GA_AREA: 1}, buyer="b"),
        SeatOrdinalsUnavailable,
    )
    assert isinstance(info.value, SeatOrdinalsUnavailable)
    assert sorted(info.value.ordinals) == [0, 2, 5, 6, 9]
    s = await state(redis_client, ev)
    assert s.state_of(3) == s.state_of(4) == s.state_of(10) == "free"
    assert s.holder(0) == s.holder(2) == first.hold_id
    check_consistent(s)


async def test_failing_ga_part_holds_no_seat(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    info = await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(3), ga={GA_AREA: ev.ga_capacity + 1}, buyer="b"),
        GeneralAdmissionUnavailable,
    )
    assert isinstance(info.value, GeneralAdmissionUnavailable)
    assert info.value.area == GA_AREA
    assert info.value.available == ev.ga_capacity
    await unchanged(redis_client, ev, lambda: inv.hold(ev.event_id, ga={"nope": 1}), NotFound)


async def test_duplicate_seats_in_one_hold_are_rejected(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    """One seat listed twice would become two tickets for one seat (see report: fixed in inventory.py)."""
    await unchanged(
        redis_client, ev, lambda: inv.hold(ev.event_id, seats=ev.seats(4, 4), buyer="b"), InvalidRequest
    )


@pytest.mark.parametrize("qty", [0, -3])
async def test_non_positive_ga_quantities_are_rejected(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent, qty: int
) -> None:
    """A negative quantity would lower ``ga_held`` and let others exceed capacity."""
    await unchanged(
        redis_client, ev, lambda: inv.hold(ev.event_id, ga={GA_AREA: qty}, buyer="b"), InvalidRequest
    )
    held = await inv.hold(ev.event_id, ga={GA_AREA: 2}, buyer="b")
    await unchanged(
        redis_client, ev, lambda: inv.release(ev.event_id, held.hold_id, ga={GA_AREA: qty}), InvalidRequest
    )


async def test_add_to_existing_hold(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    first = await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b")
    more = await inv.hold(
        ev.event_id, seats=ev.seats(1, 8), ga={GA_AREA: 2}, buyer="b", hold_id=first.hold_id
    )
    assert more.hold_id == first.hold_id
    assert more.expires_ms == first.expires_ms  # adding does not extend the lease
    assert more.record.seat_ordinals == [0, 1, 8]
    assert more.record.categories == ["vip", "vip", "std"]
    assert more.record.ga == {GA_AREA: 2}
    assert more.record.count == 5
    more2 = await inv.hold(ev.event_id, ga={GA_AREA: 1}, buyer="b", hold_id=first.hold_id)
    assert more2.record.ga == {GA_AREA: 3}
    s = await state(redis_client, ev)
    assert list(s.holds) == [first.hold_id]
    assert s.buyers == {"b": 6}
    check_consistent(s)

    # a seat already in this hold, another buyer's token, an unknown hold: nothing changes
    await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(2, 1), buyer="b", hold_id=first.hold_id),
        SeatOrdinalsUnavailable,
    )
    await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(2), buyer="x", hold_id=first.hold_id),
        NotFound,
    )
    await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(2), buyer="b", hold_id="hnope"),
        NotFound,
    )


async def test_cannot_add_to_an_expired_hold(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    first = await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b")
    await expire_hold(redis_client, ev.event_id, first.hold_id)
    with pytest.raises((HoldExpired, NotFound)):
        await inv.hold(ev.event_id, seats=ev.seats(1), buyer="b", hold_id=first.hold_id)
    s = await state(redis_client, ev)
    assert s.state_of(1) == "free"
    assert s.state_of(0) == "free"


async def test_limit_per_hold(stores: Stores, inv: Inventory, redis_client: AnyRedis) -> None:
    ev = await make_event(stores.seatmaps, stores.events, max_seats_per_hold=4)
    info = await unchanged(
        redis_client, ev, lambda: inv.hold(ev.event_id, seats=ev.seats(*range(5))), LimitExceeded
    )
    assert isinstance(info.value, LimitExceeded)
    assert (info.value.limit, info.value.maximum) == ("hold", 4)
    # GA places count towards the limit too
    await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), ga={GA_AREA: 2}),
        LimitExceeded,
    )
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), ga={GA_AREA: 1})
    assert held.record.count == 4
    await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(3), hold_id=held.hold_id),
        LimitExceeded,
    )
    # after a partial release there is room again
    assert await inv.release(ev.event_id, held.hold_id, seats=[2]) == 3
    await inv.hold(ev.event_id, seats=ev.seats(3), hold_id=held.hold_id)


async def test_limit_per_buyer(stores: Stores, inv: Inventory, redis_client: AnyRedis) -> None:
    ev = await make_event(stores.seatmaps, stores.events, max_seats_per_buyer=5)
    h1 = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), buyer="alice")
    info = await unchanged(
        redis_client, ev, lambda: inv.hold(ev.event_id, seats=ev.seats(3, 4), ga={GA_AREA: 1}, buyer="alice"),
        LimitExceeded,
    )  # fmt: skip
    assert isinstance(info.value, LimitExceeded)
    assert (info.value.limit, info.value.maximum) == ("buyer", 5)
    await inv.hold(ev.event_id, seats=ev.seats(3, 4), buyer="alice")  # exactly 5
    await inv.hold(ev.event_id, seats=ev.seats(5, 6, 7, 8, 9), buyer="bob")  # another buyer is counted apart
    await inv.hold(ev.event_id, seats=ev.seats(10, 11), buyer="")  # anonymous holds have no buyer limit
    # releasing gives the buyer's quota back; so does expiry (once purged)
    await inv.release(ev.event_id, h1.hold_id)
    h3 = await inv.hold(ev.event_id, seats=ev.seats(12, 13, 14), buyer="alice")
    await expire_hold(redis_client, ev.event_id, h3.hold_id)
    await inv.hold(ev.event_id, seats=ev.seats(15, 16, 17), buyer="alice")
    s = await state(redis_client, ev)
    assert s.buyers == {"alice": 5, "bob": 5}
    check_consistent(s)


async def test_limit_per_buyer_counts_what_the_buyer_bought(
    stores: Stores, inv: Inventory, redis_client: AnyRedis
) -> None:
    """Held plus bought, minus cancelled: hold-and-commit cycles cannot pass the limit."""
    ev = await make_event(stores.seatmaps, stores.events, max_seats_per_buyer=2)
    first = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="tout")
    order = (await inv.commit(ev.event_id, first.hold_id, "k1", BUYER)).order
    assert order.buyer_id == "tout"
    s = await state(redis_client, ev)
    assert (s.buyers, s.bought) == ({}, {"tout": 2})
    for asked in ({"seats": ev.seats(2)}, {"ga": {GA_AREA: 1}}):
        info = await unchanged(
            redis_client, ev, later(inv.hold, ev.event_id, buyer="tout", **asked), LimitExceeded
        )
        assert isinstance(info.value, LimitExceeded)
        assert (info.value.limit, info.value.maximum) == ("buyer", 2)

    # a cancelled ticket gives its place back; held and bought count together
    await inv.cancel(ev.event_id, order.order_id, ticket_ids=[order.tickets[0].ticket_id])
    assert (await state(redis_client, ev)).bought == {"tout": 1}
    second = await inv.hold(ev.event_id, seats=ev.seats(2), buyer="tout")
    await unchanged(
        redis_client, ev, later(inv.hold, ev.event_id, ga={GA_AREA: 1}, buyer="tout"), LimitExceeded
    )
    await inv.commit(ev.event_id, second.hold_id, "k2", BUYER)
    await unchanged(
        redis_client, ev, later(inv.hold, ev.event_id, seats=ev.seats(3), buyer="tout"), LimitExceeded
    )
    await inv.cancel(ev.event_id, order.order_id)  # the rest of the first order
    third = await inv.hold(ev.event_id, ga={GA_AREA: 1}, buyer="tout")
    await inv.commit(ev.event_id, third.hold_id, "k3", BUYER)

    # other buyers are counted apart; anonymous holds have no buyer limit
    other = await inv.hold(ev.event_id, seats=ev.seats(4, 5), buyer="fan")
    await inv.commit(ev.event_id, other.hold_id, "k4", BUYER)
    anonymous = await inv.hold(ev.event_id, seats=ev.seats(6, 7, 8))
    await inv.commit(ev.event_id, anonymous.hold_id, "k5", BUYER)
    s = await state(redis_client, ev)
    assert s.bought == {"tout": 2, "fan": 2}
    check_consistent(s)


async def test_ga_never_exceeds_capacity(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    h1 = await inv.hold(ev.event_id, ga={GA_AREA: 3})
    info = await unchanged(
        redis_client, ev, lambda: inv.hold(ev.event_id, ga={GA_AREA: 3}), GeneralAdmissionUnavailable
    )
    assert isinstance(info.value, GeneralAdmissionUnavailable)
    assert info.value.available == 2
    h2 = await inv.hold(ev.event_id, ga={GA_AREA: 2})
    info = await unchanged(
        redis_client, ev, lambda: inv.hold(ev.event_id, ga={GA_AREA: 1}), GeneralAdmissionUnavailable
    )
    assert isinstance(info.value, GeneralAdmissionUnavailable)
    assert info.value.available == 0
    order = (await inv.commit(ev.event_id, h1.hold_id, "k1", BUYER)).order
    s = await state(redis_client, ev)
    assert (s.ga_held[GA_AREA], s.ga_sold[GA_AREA]) == (2, 3)
    # sold places stay taken; released, expired and cancelled places come back
    await unchanged(
        redis_client, ev, lambda: inv.hold(ev.event_id, ga={GA_AREA: 1}), GeneralAdmissionUnavailable
    )
    await expire_hold(redis_client, ev.event_id, h2.hold_id)
    h3 = await inv.hold(ev.event_id, ga={GA_AREA: 2})
    await inv.cancel(ev.event_id, order.order_id)
    await inv.hold(ev.event_id, ga={GA_AREA: 3}, hold_id=h3.hold_id)
    s = await state(redis_client, ev)
    assert (s.ga_held[GA_AREA], s.ga_sold[GA_AREA]) == (5, 0)
    check_consistent(s)


# -- release ---------------------------------------------------------------------


async def test_release_everything(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), ga={GA_AREA: 2}, buyer="b")
    assert await inv.release(ev.event_id, held.hold_id) == 0
    s = await state(redis_client, ev)
    assert s.seats == {}
    assert s.holds == {}
    assert s.holdexp == {}
    assert s.buyers == {}
    assert s.ga_held == {GA_AREA: 0}
    check_consistent(s)
    # NotFound, or PreconditionFailed where the scripts remember why a hold ended
    gone = (NotFound, PreconditionFailed)
    await unchanged(redis_client, ev, lambda: inv.release(ev.event_id, held.hold_id), gone)


async def test_release_part(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), ga={GA_AREA: 3}, buyer="b")
    assert await inv.release(ev.event_id, held.hold_id, seats=[1], ga={GA_AREA: 1}) == 4
    s = await state(redis_client, ev)
    assert s.seats == {0: f"h:{held.hold_id}", 2: f"h:{held.hold_id}"}
    hold = s.holds[held.hold_id]
    assert (hold.seat_ordinals, hold.categories, hold.ga) == ([0, 2], ["vip", "vip"], {GA_AREA: 2})
    assert s.ga_held[GA_AREA] == 2
    assert s.buyers == {"b": 4}
    check_consistent(s)

    # seats / GA not in the hold are rejected and nothing at all is released
    info = await unchanged(
        redis_client,
        ev,
        lambda: inv.release(ev.event_id, held.hold_id, seats=[0, 5]),
        SeatOrdinalsInWrongState,
    )
    assert isinstance(info.value, SeatOrdinalsInWrongState)
    assert list(info.value.states) == [5]
    await unchanged(
        redis_client, ev, lambda: inv.release(ev.event_id, held.hold_id, seats=[1]), SeatOrdinalsInWrongState
    )
    await unchanged(
        redis_client,
        ev,
        lambda: inv.release(ev.event_id, held.hold_id, seats=[0], ga={GA_AREA: 3}),
        InvalidRequest,
    )
    await unchanged(
        redis_client, ev, lambda: inv.release(ev.event_id, held.hold_id, seats=[0, 0]), InvalidRequest
    )

    # releasing the last pieces deletes the hold
    assert await inv.release(ev.event_id, held.hold_id, seats=[0, 2], ga={GA_AREA: 2}) == 0
    s = await state(redis_client, ev)
    assert s.seats == {}
    assert s.holds == {}
    assert s.buyers == {}
    check_consistent(s)


async def test_release_of_an_expired_hold_is_refused_and_frees_nothing_new(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    old = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="a")
    await expire_hold(redis_client, ev.event_id, old.hold_id)
    new = await inv.hold(ev.event_id, seats=ev.seats(1), buyer="b")  # re-held by someone else
    with pytest.raises((HoldExpired, NotFound)):
        await inv.release(ev.event_id, old.hold_id, seats=[1])
    s = await state(redis_client, ev)
    assert s.holder(1) == new.hold_id
    check_consistent(s)


# -- extend ----------------------------------------------------------------------


async def test_extend_is_capped_by_lifetime(stores: Stores, inv: Inventory, redis_client: AnyRedis) -> None:
    ev = await make_event(stores.seatmaps, stores.events, hold_ttl_ms=10_000, max_lifetime_ms=25_000)
    held = await inv.hold(ev.event_id, seats=ev.seats(0))
    created = held.record.created
    view, capped = await inv.extend(ev.event_id, held.hold_id)
    assert not capped
    assert view.expires_ms >= held.expires_ms
    assert view.expires_ms - created <= 10_000 + 2_000
    view, capped = await inv.extend(ev.event_id, held.hold_id, 20_000)
    assert not capped
    assert view.expires_ms - created == pytest.approx(20_000, abs=2_000)
    view, capped = await inv.extend(ev.event_id, held.hold_id, 60_000)
    assert capped
    assert view.expires_ms == created + 25_000 == view.record.expires
    s = await state(redis_client, ev)
    assert s.holdexp[held.hold_id] == created + 25_000
    # never shortened, and still capped
    view, capped = await inv.extend(ev.event_id, held.hold_id, 1_000)
    assert view.expires_ms == created + 25_000
    # an expired hold cannot be revived
    await expire_hold(redis_client, ev.event_id, held.hold_id)
    await unchanged(redis_client, ev, lambda: inv.extend(ev.event_id, held.hold_id), HoldExpired)
    await unchanged(redis_client, ev, lambda: inv.extend(ev.event_id, "hnope"), NotFound)
    await unchanged(redis_client, ev, lambda: inv.extend("evnope", held.hold_id), NotFound)


# -- commit ----------------------------------------------------------------------


async def test_commit_prices_in_minor_units(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 7, 8), ga={GA_AREA: 2}, buyer="b")
    result = await inv.commit(ev.event_id, held.hold_id, "key-1", BUYER)
    order = result.order
    assert not result.replayed
    assert order.total == 4200 + 1500 + 1500 + 2 * 900
    assert isinstance(order.total, int)
    assert order.currency == "EUR"
    assert order.buyer == BUYER
    assert order.status == "committed"
    assert [(t.seat, t.category, t.price) for t in order.tickets if t.seat is not None] == [
        (0, "vip", 4200), (7, "std", 1500), (8, "std", 1500),
    ]  # fmt: skip
    assert [(t.ga_area, t.category, t.price) for t in order.tickets if t.seat is None] == [
        (GA_AREA, "ga", 900)
    ] * 2
    assert len({t.ticket_id for t in order.tickets}) == 5
    s = await state(redis_client, ev)
    assert s.seats == {0: f"s:{order.order_id}", 7: f"s:{order.order_id}", 8: f"s:{order.order_id}"}
    assert (s.ga_held[GA_AREA], s.ga_sold[GA_AREA]) == (0, 2)
    assert s.holds == {}
    assert s.buyers == {}
    assert s.orders == {order.order_id: order}
    assert order.seq == s.seq
    check_consistent(s)


async def test_commit_uses_current_prices_and_refuses_unpriced_categories(
    stores: Stores, inv: Inventory, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events, prices={"vip": 5000, "ga": 0})
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 7))
    info = await unchanged(
        redis_client, ev, lambda: inv.commit(ev.event_id, held.hold_id, "k", BUYER), PreconditionFailed
    )
    assert not isinstance(info.value, HoldExpired)
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, prices={"vip": 5100, "std": 1234, "ga": 0})
    ga = await inv.hold(ev.event_id, ga={GA_AREA: 1})
    assert (await inv.commit(ev.event_id, held.hold_id, "k", BUYER)).order.total == 5100 + 1234
    assert (await inv.commit(ev.event_id, ga.hold_id, "k2", BUYER)).order.total == 0


async def test_commit_after_real_expiry_is_refused(
    stores: Stores, inv: Inventory, redis_client: AnyRedis
) -> None:
    """The lease runs on Redis's clock: a 1 s hold is dead 1 s later, with no reaper."""
    ev = await make_event(stores.seatmaps, stores.events, hold_ttl_ms=1_000)
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1), ga={GA_AREA: 1}, buyer="b")
    await asyncio.sleep(max(0.0, held.expires_ms / 1000 - time.time()) + 0.05)
    with pytest.raises(HoldExpired):
        await inv.commit(ev.event_id, held.hold_id, "k", BUYER)
    s = await state(redis_client, ev)
    assert s.orders == {}
    assert s.idem == {}
    assert s.state_of(0) == s.state_of(1) == "free"
    seats, _ga = await snapshot_states(inv, ev)
    assert seats[0] == seats[1] == "free"
    # a second commit with the same key is refused as well: a failure is not remembered as an order
    with pytest.raises((HoldExpired, NotFound)):
        await inv.commit(ev.event_id, held.hold_id, "k", BUYER)
    check_consistent(await state(redis_client, ev))


async def test_expired_and_re_held_hold_can_never_commit(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    old = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="a")
    await expire_hold(redis_client, ev.event_id, old.hold_id)
    new = await inv.hold(ev.event_id, seats=ev.seats(1, 2), buyer="b")
    for key in ("k-old", "k-old-2"):
        await unchanged(
            redis_client,
            ev,
            later(inv.commit, ev.event_id, old.hold_id, key, BUYER),
            (HoldExpired, NotFound),  # NotFound once the re-hold purged the dead lease
        )
    # even once the new holder lets go, the old lease stays dead
    await inv.release(ev.event_id, new.hold_id)
    with pytest.raises((HoldExpired, NotFound)):
        await inv.commit(ev.event_id, old.hold_id, "k-old-3", BUYER)
    s = await state(redis_client, ev)
    assert s.orders == {}
    assert s.state_of(0) == s.state_of(1) == s.state_of(2) == "free"
    check_consistent(s)


async def test_commit_is_fenced_by_every_seat(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    """A live hold that lost one seat (blocked by the organizer) cannot commit the rest."""
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="a")
    await inv.set_status(ev.event_id, [1], "blocked", ["held"])
    await unchanged(redis_client, ev, lambda: inv.commit(ev.event_id, held.hold_id, "k", BUYER), HoldExpired)
    s = await state(redis_client, ev)
    assert s.orders == {}
    assert s.seats == {0: f"h:{held.hold_id}", 1: "b"}


async def test_commit_is_idempotent(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(3, 4), buyer="b")
    first = await inv.commit(ev.event_id, held.hold_id, "same-key", BUYER)
    again = await inv.commit(ev.event_id, held.hold_id, "same-key", Buyer(name="someone else"))
    assert not first.replayed
    assert again.replayed
    assert again.order == first.order
    other = await inv.hold(ev.event_id, seats=ev.seats(5), buyer="c")
    info = await unchanged(
        redis_client, ev, lambda: inv.commit(ev.event_id, other.hold_id, "same-key", BUYER), InvalidRequest
    )
    assert isinstance(info.value, InvalidRequest)
    assert info.value.field == "idempotency_key"
    # a fresh key for the consumed hold finds no hold; the other hold is untouched and still commits
    await unchanged(
        redis_client,
        ev,
        lambda: inv.commit(ev.event_id, held.hold_id, "fresh-key", BUYER),
        (NotFound, PreconditionFailed),  # PreconditionFailed where the scripts remember the commit
    )
    second = await inv.commit(ev.event_id, other.hold_id, "other-key", BUYER)
    s = await state(redis_client, ev)
    assert set(s.orders) == {first.order.order_id, second.order.order_id}
    assert s.idem == {"same-key": first.order.order_id, "other-key": second.order.order_id}
    # the replay still answers after the order changed, and returns it as it is now
    cancelled = await inv.cancel(ev.event_id, first.order.order_id)
    replay = await inv.commit(ev.event_id, held.hold_id, "same-key", BUYER)
    assert replay.replayed
    assert replay.order == cancelled
    check_consistent(await state(redis_client, ev))


# -- cancel ----------------------------------------------------------------------


async def test_cancel_whole_order(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1), ga={GA_AREA: 3})
    order = (await inv.commit(ev.event_id, held.hold_id, "k", BUYER)).order
    cancelled = await inv.cancel(ev.event_id, order.order_id, reason="refund")
    assert cancelled.status == "cancelled"
    assert {t.status for t in cancelled.tickets} == {"cancelled"}
    assert cancelled.total == order.total  # the order keeps what was paid
    s = await state(redis_client, ev)
    assert s.seats == {}
    assert (s.ga_held[GA_AREA], s.ga_sold[GA_AREA]) == (0, 0)
    assert s.orders[order.order_id] == cancelled
    assert [e["kind"] for e in s.lifecycle] == ["order.created", "order.cancelled"]
    assert s.lifecycle[1]["detail"].endswith("|refund")
    check_consistent(s)
    info = await unchanged(
        redis_client, ev, lambda: inv.cancel(ev.event_id, order.order_id), PreconditionFailed
    )
    assert not isinstance(info.value, HoldExpired)
    await unchanged(redis_client, ev, lambda: inv.cancel(ev.event_id, "onope"), NotFound)
    # the seats and places are for sale again
    again = await inv.hold(ev.event_id, seats=ev.seats(0, 1), ga={GA_AREA: ev.ga_capacity})
    order2 = (await inv.commit(ev.event_id, again.hold_id, "k2", BUYER)).order
    s = await state(redis_client, ev)
    assert s.seats == {0: f"s:{order2.order_id}", 1: f"s:{order2.order_id}"}
    check_consistent(s)


async def test_cancel_part_of_an_order(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), ga={GA_AREA: 2})
    order = (await inv.commit(ev.event_id, held.hold_id, "k", BUYER)).order
    by_seat = {t.seat: t.ticket_id for t in order.tickets if t.seat is not None}
    ga_tickets = [t.ticket_id for t in order.tickets if t.seat is None]

    partial = await inv.cancel(
        ev.event_id, order.order_id, ticket_ids=[by_seat[1], ga_tickets[0]], to="not_for_sale"
    )
    assert partial.status == "partially_cancelled"
    assert {t.ticket_id for t in partial.tickets if t.status == "cancelled"} == {by_seat[1], ga_tickets[0]}
    s = await state(redis_client, ev)
    assert s.seats == {0: f"s:{order.order_id}", 1: "n", 2: f"s:{order.order_id}"}
    assert s.ga_sold[GA_AREA] == 1
    assert s.lifecycle[-1]["kind"] == "order.tickets_cancelled"
    check_consistent(s)

    bad: list[tuple[Sequence[str], type[Exception]]] = [
        ([by_seat[0], "tnope"], InvalidRequest),
        ([by_seat[0], by_seat[1]], PreconditionFailed),  # already cancelled
        ([by_seat[0], by_seat[0]], PreconditionFailed),  # the same ticket twice
    ]
    for tickets, error in bad:
        await unchanged(
            redis_client,
            ev,
            later(inv.cancel, ev.event_id, order.order_id, ticket_ids=tickets),
            error,
        )
    with pytest.raises(InvalidRequest):
        await inv.cancel(ev.event_id, order.order_id, to="blocked")

    rest = await inv.cancel(ev.event_id, order.order_id)  # every ticket still valid
    assert rest.status == "cancelled"
    s = await state(redis_client, ev)
    assert s.seats == {1: "n"}
    assert s.ga_sold[GA_AREA] == 0
    assert [e["kind"] for e in s.lifecycle] == ["order.created", "order.tickets_cancelled", "order.cancelled"]
    check_consistent(s)


# -- set_status ------------------------------------------------------------------


async def test_set_status_is_conditional_and_all_or_nothing(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    seq, changed = await inv.set_status(ev.event_id, [0, 1], "blocked", ["free"])
    assert changed == 2
    held = await inv.hold(ev.event_id, seats=ev.seats(3))
    sold = await inv.hold(ev.event_id, seats=ev.seats(4))
    await inv.commit(ev.event_id, sold.hold_id, "k", BUYER)
    info = await unchanged(
        redis_client, ev, lambda: inv.set_status(ev.event_id, [1, 2, 3, 4], "not_for_sale", ["free"]),
        SeatOrdinalsInWrongState,
    )  # fmt: skip
    assert isinstance(info.value, SeatOrdinalsInWrongState)
    assert info.value.states == {1: "blocked", 3: "held", 4: "sold"}
    # already in the target state: allowed as a previous state, not counted as a change
    seq2, changed = await inv.set_status(ev.event_id, [1, 2], "blocked", ["free", "blocked"])
    assert changed == 1
    assert seq2 == seq + 1 + 2 + 1
    seq3, changed = await inv.set_status(ev.event_id, [0, 1, 2], "blocked", ["blocked"])
    assert (seq3, changed) == (seq2, 0)
    await inv.set_status(ev.event_id, [0, 1], "not_for_sale", ["blocked"])
    await inv.set_status(ev.event_id, [1, 2], "free", ["blocked", "not_for_sale"])
    s = await state(redis_client, ev)
    assert s.seats == {0: "n", 3: f"h:{held.hold_id}", 4: s.seats[4]}
    assert s.state_of(4) == "sold"
    check_consistent(s)
    await unchanged(redis_client, ev, lambda: inv.set_status("evnope", [0], "free", ["blocked"]), NotFound)


async def test_set_status_treats_an_expired_hold_as_free(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1))
    await expire_hold(redis_client, ev.event_id, held.hold_id)
    _, changed = await inv.set_status(ev.event_id, [0], "blocked", ["free"])
    assert changed == 1
    await inv.reap(ev.event_id)
    s = await state(redis_client, ev)
    assert s.seats == {0: "b"}  # the purge did not free the blocked seat
    check_consistent(s)


@pytest.mark.parametrize("target", ["free", "blocked", "not_for_sale"])
async def test_set_status_never_moves_a_sold_seat(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent, target: str
) -> None:
    """Only a cancel may take a seat from its order: a freed sold seat could be sold twice."""
    held = await inv.hold(ev.event_id, seats=ev.seats(0))
    order = (await inv.commit(ev.event_id, held.hold_id, "k", BUYER)).order
    info = await unchanged(
        redis_client,
        ev,
        lambda: inv.set_status(ev.event_id, [0], target, ["free", "held", "sold", "blocked", "not_for_sale"]),  # type: ignore[arg-type]
        SeatOrdinalsInWrongState,
    )
    assert isinstance(info.value, SeatOrdinalsInWrongState)
    assert info.value.states == {0: "sold"}
    s = await state(redis_client, ev)
    assert s.seats == {0: f"s:{order.order_id}"}


async def test_set_status_rejects_unknown_targets(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    await inv.set_status(ev.event_id, [0], "blocked", ["free"])
    for target in ("held", "sold", ""):
        await unchanged(
            redis_client,
            ev,
            later(inv.set_status, ev.event_id, [0], target, ["blocked"]),
            InvalidRequest,
        )


# -- the event's sale state ------------------------------------------------------


async def test_hold_needs_the_event_on_sale(stores: Stores, inv: Inventory, redis_client: AnyRedis) -> None:
    now = int(time.time() * 1000)
    cases = [
        {"status": "draft"},
        {"onsale_from_ms": now + 3_600_000},
        {"onsale_from_ms": now - 7_200_000, "onsale_until_ms": now - 3_600_000},
    ]
    for kwargs in cases:
        ev = await make_event(stores.seatmaps, stores.events, **kwargs)  # type: ignore[arg-type]
        info = await unchanged(
            redis_client, ev, later(inv.hold, ev.event_id, seats=ev.seats(0)), PreconditionFailed
        )
        assert not isinstance(info.value, HoldExpired)
    await unchanged(redis_client, ev, lambda: inv.hold("evnope", seats=[(0, "std")]), NotFound)

    # an open window sells; pausing stops new holds (and additions) at once, resuming restarts them
    ev = await make_event(
        stores.seatmaps, stores.events, onsale_from_ms=now - 1000, onsale_until_ms=now + 3_600_000
    )
    held = await inv.hold(ev.event_id, seats=ev.seats(0))
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    categories = {"vip", "std", "ga"}
    await stores.events.update(ref, categories, status="paused")
    await unchanged(redis_client, ev, lambda: inv.hold(ev.event_id, seats=ev.seats(1)), PreconditionFailed)
    await unchanged(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(1), hold_id=held.hold_id),
        PreconditionFailed,
    )
    await stores.events.update(ref, categories, status="on_sale")
    await inv.hold(ev.event_id, seats=ev.seats(1), hold_id=held.hold_id)
    await stores.events.update(ref, categories, status="closed")
    await unchanged(redis_client, ev, lambda: inv.hold(ev.event_id, seats=ev.seats(2)), PreconditionFailed)


async def test_holds_in_flight_when_paused_or_closed(
    stores: Stores, inv: Inventory, redis_client: AnyRedis
) -> None:
    """Paused: no new holds and no extensions, but live holds may still be paid for
    (committed) or released. Closed: no commit either; a replayed commit still answers."""
    ev = await make_event(stores.seatmaps, stores.events)
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    categories = {"vip", "std", "ga"}
    paying = await inv.hold(ev.event_id, seats=ev.seats(0))
    leaving = await inv.hold(ev.event_id, seats=ev.seats(1))
    late = await inv.hold(ev.event_id, seats=ev.seats(2))
    await stores.events.update(ref, categories, status="paused")
    await unchanged(redis_client, ev, lambda: inv.extend(ev.event_id, paying.hold_id), PreconditionFailed)
    paid = await inv.commit(ev.event_id, paying.hold_id, "k-paused", BUYER)
    await inv.release(ev.event_id, leaving.hold_id)
    await stores.events.update(ref, categories, status="closed")
    await unchanged(
        redis_client, ev, lambda: inv.commit(ev.event_id, late.hold_id, "k-late", BUYER), PreconditionFailed
    )
    await unchanged(redis_client, ev, lambda: inv.extend(ev.event_id, late.hold_id), PreconditionFailed)
    replay = await inv.commit(ev.event_id, paying.hold_id, "k-paused", BUYER)
    assert replay.replayed
    assert replay.order.order_id == paid.order.order_id
    await inv.release(ev.event_id, late.hold_id)  # releasing is always allowed


# -- change stream, lifecycle, snapshot ------------------------------------------


async def test_every_change_is_in_the_stream_with_consecutive_seq(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    a = await inv.hold(ev.event_id, seats=ev.seats(0, 1), ga={GA_AREA: 2}, buyer="a")
    b = await inv.hold(ev.event_id, seats=ev.seats(2, 3), buyer="b")
    await inv.hold(ev.event_id, seats=ev.seats(4), hold_id=b.hold_id, buyer="b")
    await inv.release(ev.event_id, b.hold_id, seats=[2])
    order = (await inv.commit(ev.event_id, a.hold_id, "ka", BUYER)).order
    await inv.set_status(ev.event_id, [5, 6], "blocked", ["free"])
    await inv.cancel(ev.event_id, order.order_id, ticket_ids=[order.tickets[0].ticket_id])
    await expire_hold(redis_client, ev.event_id, b.hold_id)
    c = await inv.hold(ev.event_id, seats=ev.seats(3), buyer="c")  # purges b on the way
    order_c = (await inv.commit(ev.event_id, c.hold_id, "kc", BUYER)).order
    await inv.cancel(ev.event_id, order.order_id, to="not_for_sale")
    d = await inv.hold(ev.event_id, seats=ev.seats(7), ga={GA_AREA: 1})
    await inv.release(ev.event_id, d.hold_id)

    s = await state(redis_client, ev)
    check_consistent(s)
    kinds = [(f["kind"], f["state"], f["seats"], f["ga"], f["qty"]) for _, f in s.changes]
    assert kinds == [
        ("held", "held", "0,1", "", "0"),
        ("held", "held", "", GA_AREA, "2"),
        ("held", "held", "2,3", "", "0"),
        ("held", "held", "4", "", "0"),
        ("released", "free", "2", "", "0"),
        ("sold", "sold", "0,1", "", "0"),
        ("sold", "sold", "", GA_AREA, "2"),
        ("status", "blocked", "5,6", "", "0"),
        ("cancelled", "free", "0", "", "0"),
        ("expired", "free", "3,4", "", "0"),
        ("held", "held", "3", "", "0"),
        ("sold", "sold", "3", "", "0"),
        ("cancelled", "not_for_sale", "1", "", "0"),
        ("cancelled", "free", "", GA_AREA, "-2"),
        ("held", "held", "7", "", "0"),
        ("held", "held", "", GA_AREA, "1"),
        ("released", "free", "7", "", "0"),
        ("released", "free", "", GA_AREA, "-1"),
    ]
    assert s.seq == len(kinds)
    lifecycle = [(e["kind"], e["order"], int(e["seq"])) for e in s.lifecycle]
    seq_of = {f"0-{n}": n for n in range(1, s.seq + 1)}
    assert lifecycle == [
        ("order.created", order.order_id, seq_of["0-7"]),
        ("order.tickets_cancelled", order.order_id, seq_of["0-9"]),
        ("order.created", order_c.order_id, seq_of["0-12"]),
        ("order.cancelled", order.order_id, seq_of["0-14"]),
    ]
    # the stream alone rebuilds the snapshot
    seats, ga = await snapshot_states(inv, ev)
    replayed_seats, replayed_ga = replay_changes(s, ev.seat_count)
    assert replayed_seats == seats
    assert {a: (ev.ga_capacity, *c) for a, c in replayed_ga.items()} == ga


async def test_snapshot_agrees_with_redis(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    live = await inv.hold(ev.event_id, seats=ev.seats(0, 1), ga={GA_AREA: 1})
    dead = await inv.hold(ev.event_id, seats=ev.seats(2), ga={GA_AREA: 1})
    sold = await inv.hold(ev.event_id, seats=ev.seats(3))
    await inv.commit(ev.event_id, sold.hold_id, "k", BUYER)
    await inv.set_status(ev.event_id, [4], "blocked", ["free"])
    await inv.set_status(ev.event_id, [5], "not_for_sale", ["free"])
    await expire_hold(redis_client, ev.event_id, dead.hold_id)
    seats, ga = await snapshot_states(inv, ev)
    assert seats[:7] == ["held", "held", "free", "sold", "blocked", "not_for_sale", "free"]
    assert set(seats[7:]) == {"free"}
    assert ga == {GA_AREA: (ev.ga_capacity, 2, 0)}  # the expired hold's place counts until purged
    assert await inv.reap(ev.event_id) == ReapResult(purged=1, still_expired=0, finished=False)
    _, ga = await snapshot_states(inv, ev)
    assert ga == {GA_AREA: (ev.ga_capacity, 1, 0)}
    assert live.hold_id in (await state(redis_client, ev)).holds


# -- result codes ----------------------------------------------------------------


class _FixedReplies:
    """A script registry whose every script answers ``reply`` (for the unknown-code paths)."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def __getattr__(self, name: str) -> _FixedScript:
        return _FixedScript(self.reply)


class _FixedScript:
    def __init__(self, reply: Any) -> None:
        self.reply = reply

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self.reply

    replicated = __call__


CALLS: dict[str, Callable[[Inventory], Coroutine[Any, Any, Any]]] = {
    "hold": lambda i: i.hold("ev", seats=[(0, "std")]),
    "replay": lambda i: i.replay("ev", "r", "f"),
    "release": lambda i: i.release("ev", "h"),
    "extend": lambda i: i.extend("ev", "h"),
    "commit": lambda i: i.commit("ev", "h", "k", BUYER),
    "cancel": lambda i: i.cancel("ev", "o"),
    "set_status": lambda i: i.set_status("ev", [0], "blocked", ["free"]),
}


@pytest.mark.parametrize("reply", [[99], [0], [5], 7, None, [18]])
@pytest.mark.parametrize("method", sorted(CALLS))
async def test_unknown_result_codes_raise(redis_client: AnyRedis, method: str, reply: Any) -> None:
    inventory = Inventory(redis_client, _FixedReplies(reply))  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="unknown result"):
        await CALLS[method](inventory)
