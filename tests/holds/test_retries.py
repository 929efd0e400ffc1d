"""Retry-safe holds (holds/retries.py): a request id makes a hold once, whatever the retries.

Through :class:`holds.inventory.Inventory` (the script's answers, and what Redis
holds afterwards) and through :class:`holds.sales.Sales` (the three kinds of
hold, adding to a hold, and best available answering the very seats of the
first attempt). A replay changes nothing at all: the whole cut compares equal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from holds import keys
from holds.errors import HoldExpired, InvalidRequest, PreconditionFailed, SeatsUnavailable
from holds.inventory import HoldResult, Inventory, SeatOrdinalsUnavailable
from holds.records import Buyer
from holds.redis_client import AnyRedis
from holds.sales import Sales, parse_token
from seatmap.bestavailable import BestAvailableRequest
from server.context import Stores
from tests.holds.factories import (
    GA_AREA,
    K,
    RawState,
    TestEvent,
    check_consistent,
    expire_hold,
    make_event,
    read_state,
)

BUYER = Buyer(name="Ada")


@pytest.fixture
def inv(stores: Stores) -> Inventory:
    return stores.inventory


@pytest.fixture
def sales(stores: Stores) -> Sales:
    return stores.sales


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    """3 rows x 6 seats, GA 'floor' of 5, up to 10 places per hold."""
    return await make_event(stores.seatmaps, stores.events)


async def same_state(client: AnyRedis, ev: TestEvent, call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``call`` (a replay, or a refused call); assert it changed nothing; return its result."""
    before = await read_state(client, ev.event_id)
    result = await call()
    after = await read_state(client, ev.event_id)
    before.now_ms = after.now_ms
    assert after == before, "the call changed the inventory"
    return result


async def refused(
    client: AnyRedis, ev: TestEvent, call: Callable[[], Coroutine[Any, Any, Any]], error: type[Exception]
) -> Exception:
    async def expect() -> Exception:
        with pytest.raises(error) as info:
            await call()
        return info.value

    result: Exception = await same_state(client, ev, expect)
    return result


def hold_of(s: RawState, hold_id: str) -> tuple[list[int], dict[str, int], int]:
    record = s.holds[hold_id]
    return record.seat_ordinals, dict(record.ga), record.count


# -- the script, through Inventory ---------------------------------------------------


async def test_a_retried_hold_returns_the_first_attempts_hold(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    def hold() -> Coroutine[Any, Any, HoldResult]:
        return inv.hold(ev.event_id, seats=ev.seats(0, 1), ga={GA_AREA: 2}, buyer="b", request_id="r-1")

    first = await hold()
    assert not first.replayed
    again: HoldResult = await same_state(redis_client, ev, hold)
    assert again.replayed
    assert (again.hold_id, again.expires_ms, again.record) == (first.hold_id, first.expires_ms, first.record)
    s = await read_state(redis_client, ev.event_id)
    assert list(s.holds) == [first.hold_id]
    assert s.buyers == {"b": 4}
    assert s.ga_held == {GA_AREA: 2}
    assert s.holdreqs["r-1"][0] == first.hold_id
    assert s.holds[first.hold_id].request_ids == ["r-1"]
    check_consistent(s)


async def test_a_replay_returns_the_hold_as_it_is_now(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    """Released in part and extended since: the replay shows that, and holds nothing again."""
    first = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), buyer="b", request_id="r-1")
    await inv.release(ev.event_id, first.hold_id, seats=[1])
    extended, _ = await inv.extend(ev.event_id, first.hold_id, ttl_ms=900_000)
    again = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), buyer="b", request_id="r-1")
    assert again.replayed
    assert again.record.seat_ordinals == [0, 2]
    assert again.expires_ms == extended.expires_ms
    s = await read_state(redis_client, ev.event_id)
    assert s.state_of(1) == "free"
    check_consistent(s)


async def test_a_replay_is_answered_before_seats_limits_or_the_sale_state(
    stores: Stores, inv: Inventory, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events, max_seats_per_buyer=2)
    first = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="b", request_id="r-1")
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, status="paused")
    again = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="b", request_id="r-1")
    assert again.replayed
    assert again.hold_id == first.hold_id
    # a new request is refused as before
    with pytest.raises(PreconditionFailed, match="not on sale"):
        await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="b", request_id="r-2")


async def test_adding_to_a_hold_is_retry_safe(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    first = await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b", request_id="r-1")

    def add() -> Coroutine[Any, Any, HoldResult]:
        return inv.hold(
            ev.event_id,
            seats=ev.seats(5),
            ga={GA_AREA: 1},
            buyer="b",
            hold_id=first.hold_id,
            request_id="r-2",
        )

    added = await add()
    assert not added.replayed
    again: HoldResult = await same_state(redis_client, ev, add)
    assert again.replayed
    assert again.hold_id == first.hold_id
    assert again.record.seat_ordinals == [0, 5]
    assert again.record.count == 3
    s = await read_state(redis_client, ev.event_id)
    assert s.holds[first.hold_id].request_ids == ["r-1", "r-2"]
    assert s.buyers == {"b": 3}
    check_consistent(s)


@pytest.mark.parametrize(
    "change",
    [
        {"seats": [(1, "vip")]},  # other seats
        {"ga": {GA_AREA: 1}},  # GA added
        {"buyer": "someone else"},
        {"hold_id": "hOther"},  # an add to a hold
    ],
)
async def test_the_same_request_id_with_another_request_is_invalid(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent, change: dict[str, Any]
) -> None:
    await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b", request_id="r-1")
    asked: dict[str, Any] = {"seats": ev.seats(0), "buyer": "b", "request_id": "r-1"} | change
    error = await refused(redis_client, ev, lambda: inv.hold(ev.event_id, **asked), InvalidRequest)
    assert isinstance(error, InvalidRequest)
    assert error.field == "request_id"


async def test_a_request_id_is_scoped_to_its_event(inv: Inventory, stores: Stores, ev: TestEvent) -> None:
    other = await make_event(stores.seatmaps, stores.events)
    a = await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b", request_id="r-1")
    b = await inv.hold(other.event_id, seats=other.seats(0), buyer="b", request_id="r-1")
    assert not a.replayed
    assert not b.replayed


async def test_a_replay_after_the_hold_ended_says_why_and_never_holds_again(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    committed = await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b", request_id="r-c")
    order = (await inv.commit(ev.event_id, committed.hold_id, "k", BUYER)).order
    await inv.cancel(ev.event_id, order.order_id)  # the seat is free again: still no second hold
    released = await inv.hold(ev.event_id, seats=ev.seats(1), buyer="b", request_id="r-r")
    await inv.release(ev.event_id, released.hold_id)
    expired = await inv.hold(ev.event_id, seats=ev.seats(2), buyer="b", request_id="r-e")
    await expire_hold(redis_client, ev.event_id, expired.hold_id)

    # expired, not yet purged: the lease decides
    await refused(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(2), buyer="b", request_id="r-e"),
        HoldExpired,
    )
    await inv.reap(ev.event_id)  # purged: the tombstone decides
    for seat, request_id, error, message in [
        (0, "r-c", PreconditionFailed, f"committed to order {order.order_id}"),
        (1, "r-r", PreconditionFailed, "released"),
        (2, "r-e", HoldExpired, "expired"),
    ]:
        retry = functools.partial(
            inv.hold, ev.event_id, seats=ev.seats(seat), buyer="b", request_id=request_id
        )
        assert str(await refused(redis_client, ev, retry, error)).find(message) >= 0
    s = await read_state(redis_client, ev.event_id)
    assert s.holds == {}
    assert set(s.holdreqs_z) == {"r-c", "r-r", "r-e"}  # kept with the tombstones
    check_consistent(s)


async def test_request_ids_are_forgotten_a_day_after_their_hold_ended(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    held = await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b", request_id="r-1")
    await inv.release(ev.event_id, held.hold_id)
    # a day passes (the scores are what the scripts compare with Redis's clock)
    await redis_client.zadd(ev.keys[K["holdreqs_z"]], {"r-1": 1}, xx=True)
    await redis_client.zadd(ev.keys[K["holdgone"]], {held.hold_id: 1}, xx=True)
    other = await inv.hold(ev.event_id, seats=ev.seats(5), buyer="x")  # any ending hold trims
    await inv.release(ev.event_id, other.hold_id)
    s = await read_state(redis_client, ev.event_id)
    assert "r-1" not in s.holdreqs
    assert "r-1" not in s.holdreqs_z
    again = await inv.hold(ev.event_id, seats=ev.seats(0), buyer="b", request_id="r-1")
    assert not again.replayed  # a new hold: the id is free again
    check_consistent(await read_state(redis_client, ev.event_id))


async def test_a_failed_hold_records_no_request_id(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    blocker = await inv.hold(ev.event_id, seats=ev.seats(1), buyer="x")
    await refused(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="b", request_id="r-1"),
        SeatOrdinalsUnavailable,
    )
    await inv.release(ev.event_id, blocker.hold_id)
    retried = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="b", request_id="r-1")
    assert not retried.replayed  # the retry of a refused request simply tries again


@pytest.mark.parametrize("request_id", ["x" * 129, "tab\there", "naïve", "line\n"])
async def test_bad_request_ids_are_refused_and_change_nothing(
    inv: Inventory, redis_client: AnyRedis, ev: TestEvent, request_id: str
) -> None:
    error = await refused(
        redis_client,
        ev,
        lambda: inv.hold(ev.event_id, seats=ev.seats(0), buyer="b", request_id=request_id),
        InvalidRequest,
    )
    assert isinstance(error, InvalidRequest)
    assert error.field == "request_id"


async def test_replay_only_holds_nothing(inv: Inventory, redis_client: AnyRedis, ev: TestEvent) -> None:
    assert await same_state(redis_client, ev, lambda: inv.replay(ev.event_id, "r-1", "f")) is None
    held = await inv.hold(ev.event_id, seats=ev.seats(0), request_id="r-1", request_fingerprint="f")
    replayed = await inv.replay(ev.event_id, "r-1", "f")
    assert replayed is not None
    assert replayed.replayed
    assert replayed.hold_id == held.hold_id
    with pytest.raises(InvalidRequest):
        await inv.replay(ev.event_id, "r-1", "g")


# -- the service's three kinds of hold, through Sales -------------------------------------


async def test_hold_seats_and_general_admission_replay_through_sales(
    sales: Sales, redis_client: AnyRedis, ev: TestEvent
) -> None:
    seats = await sales.hold_seats(ev.tenant, ev.event_id, ["A-0-0", "A-0-1"], buyer="b", request_id="s")
    again = await same_state(
        redis_client,
        ev,
        lambda: sales.hold_seats(ev.tenant, ev.event_id, ["A-0-1", "A-0-0"], buyer="b", request_id="s"),
    )  # the same seats in another order are the same request
    assert again.replayed
    assert again.token == seats.token
    assert again.seat_ids == seats.seat_ids

    ga = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2, buyer="b", request_id="g")
    again = await same_state(
        redis_client,
        ev,
        lambda: sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2, buyer="b", request_id="g"),
    )
    assert again.replayed
    assert again.token == ga.token
    assert again.ga == {GA_AREA: 2}
    with pytest.raises(InvalidRequest, match="request_id"):
        await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 3, buyer="b", request_id="g")
    # one request id for two kinds of request is a mismatch, even for the "same" seats
    with pytest.raises(InvalidRequest, match="request_id"):
        await sales.hold_best_available(
            ev.tenant, ev.event_id, BestAvailableRequest(quantity=2), buyer="b", request_id="s"
        )

    # adding to a hold
    more = await sales.hold_seats(
        ev.tenant, ev.event_id, ["A-1-0"], buyer="b", token=seats.token, request_id="add"
    )
    again = await same_state(
        redis_client,
        ev,
        lambda: sales.hold_seats(
            ev.tenant, ev.event_id, ["A-1-0"], buyer="b", token=seats.token, request_id="add"
        ),
    )
    assert again.replayed
    assert again.seat_ids == more.seat_ids == ["A-0-0", "A-0-1", "A-1-0"]
    check_consistent(await read_state(redis_client, ev.event_id))


async def test_best_available_replays_the_very_seats_of_the_first_attempt(
    sales: Sales, inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    wanted = BestAvailableRequest(quantity=2, categories=frozenset({"std"}))
    first = await sales.hold_best_available(ev.tenant, ev.event_id, wanted, buyer="b", request_id="best")
    # a search now would propose other seats; the retry gets the first ones
    for _ in range(3):
        again = await same_state(
            redis_client,
            ev,
            lambda: sales.hold_best_available(ev.tenant, ev.event_id, wanted, buyer="b", request_id="best"),
        )
        assert again.replayed
        assert (again.token, again.seat_ids) == (first.token, first.seat_ids)
    # sold out meanwhile (every other std seat taken): the retry still gets its seats
    others = [o for o in ev.ordinals if ev.categories[o] == "std" and o not in _ordinals(ev, first.seat_ids)]
    assert len(others) == 10
    await inv.hold(ev.event_id, seats=ev.seats(*others), buyer="x")
    with pytest.raises(SeatsUnavailable):
        await sales.hold_best_available(ev.tenant, ev.event_id, wanted, buyer="c", request_id="other")
    again = await sales.hold_best_available(ev.tenant, ev.event_id, wanted, buyer="b", request_id="best")
    assert again.replayed
    assert again.seat_ids == first.seat_ids
    # another shape under the same id is a mismatch
    with pytest.raises(InvalidRequest, match="request_id"):
        await sales.hold_best_available(
            ev.tenant, ev.event_id, BestAvailableRequest(quantity=3), buyer="b", request_id="best"
        )
    s = await read_state(redis_client, ev.event_id)
    assert len([h for h in s.holds.values() if h.buyer == "b"]) == 1
    check_consistent(s)


async def test_a_replay_after_commit_names_the_order(
    sales: Sales, inv: Inventory, redis_client: AnyRedis, ev: TestEvent
) -> None:
    held = await sales.hold_seats(ev.tenant, ev.event_id, ["A-0-0"], buyer="b", request_id="r")
    _event_id, hold_id = parse_token(held.token)
    order = (await inv.commit(ev.event_id, hold_id, "k", BUYER)).order
    with pytest.raises(PreconditionFailed, match=f"committed to order {order.order_id}"):
        await sales.hold_seats(ev.tenant, ev.event_id, ["A-0-0"], buyer="b", request_id="r")


def _ordinals(ev: TestEvent, seat_ids: list[str]) -> list[int]:
    return [ev.loaded.index.ordinal_of[s] for s in seat_ids]


def test_every_request_key_is_an_event_key() -> None:
    assert {"holdreqs", "holdreqs_z", "bought"} <= set(keys.EVENT_KEY_NAMES)
