"""Season holds under each event's selling rules, against real Redis (single and Cluster):
a seat allocated to a channel needs the channel's access in its event, an event's
minimum-distance rule keeps a season hold away from other groups (and other groups away
from it, until it is released, expires or is cancelled), and a season hold racing a
single-event hold for neighbouring seats never lets both win."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from holds import keys
from holds.channels import ChannelAccess, ChannelDef
from holds.errors import (
    GeneralAdmissionUnavailable,
    HoldExpired,
    InvalidRequest,
    PreconditionFailed,
    SeatsDistanced,
    SeatsInWrongState,
)
from holds.records import Buyer
from holds.redis_client import AnyRedis
from holds.sales import HoldInfo
from holds.seasons import (
    SeasonGeneralAdmissionUnavailable,
    SeasonHoldInfo,
    SeasonSeatsDistanced,
    SeasonSeatsInChannel,
    parse_season_token,
)
from server.context import Stores
from tests.holds.factories import GA_AREA, PRICES, TENANT, check_consistent, read_state
from tests.holds.test_seasons import TestSeason, make_season

PRESALE = ChannelDef(id="presale", name="Presale", access_code="EARLY")
ACCESS = ChannelAccess("presale", "EARLY")


async def set_rule(stores: Stores, event_id: str, rule: str) -> None:
    """The organizer's change, as another process makes it (this process's event is not told)."""
    ref = await stores.events.read_ref(event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, changes={"distancing": rule})


async def held_anywhere(redis: AnyRedis, s: TestSeason) -> dict[str, dict[int, str]]:
    return {e: (await read_state(redis, e)).seats for e in s.events if (await read_state(redis, e)).seats}


async def test_a_channels_seat_needs_its_access_in_its_event(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores)
    for event_id in s.events:  # the channel in every event; seat 3 allocated to it in the second only
        await stores.channels.define(TENANT, event_id, PRESALE)
    await stores.channels.allocate(TENANT, s.events[1], "presale", [s.seat(3)], {})
    hold = stores.season_sales.hold
    with pytest.raises(SeasonSeatsInChannel) as refused:
        await hold(TENANT, s.season.season_id, [s.seat(2), s.seat(3)])
    assert refused.value.by_event == {s.events[1]: [s.seat(3)]}
    assert list(refused.value.states) == [f"{s.events[1]}/{s.seat(3)}"]
    assert isinstance(refused.value, SeatsInWrongState)  # FAILED_PRECONDITION, a violation per seat
    assert await held_anywhere(redis_client, s) == {}
    with pytest.raises(InvalidRequest, match=f"in event {s.events[0]}, or a wrong access code"):
        await hold(TENANT, s.season.season_id, [s.seat(3)], access=ChannelAccess("presale", "LATE"))
    # the events that do not allocate the seat: a season hold of them needs no access
    await hold(TENANT, s.season.season_id, [s.seat(4)], event_ids=[s.events[0], s.events[2]])
    held = await hold(TENANT, s.season.season_id, [s.seat(2), s.seat(3)], access=ACCESS)
    assert held.event_ids == s.events
    _, hold_id = parse_season_token(held.token)
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert {o: v for o, v in state.seats.items() if o in (2, 3)} == {2: f"h:{hold_id}", 3: f"h:{hold_id}"}
        check_consistent(state)


async def test_access_to_a_channel_one_event_lacks_names_that_event(stores: Stores) -> None:
    s = await make_season(stores, n_events=2)
    await stores.channels.define(TENANT, s.events[0], PRESALE)
    with pytest.raises(InvalidRequest, match=f"in event {s.events[1]}") as refused:
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], access=ACCESS)
    assert refused.value.field == "channel_access"
    await stores.channels.define(TENANT, s.events[1], PRESALE)
    await stores.channels.close(TENANT, s.events[1], "presale")
    with pytest.raises(PreconditionFailed, match=f"of event {s.events[1]} is closed"):
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], access=ACCESS)


async def test_a_season_hold_keeps_each_events_distance(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores)
    await set_rule(stores, s.events[1], "row:1")  # this process learns it from the script's answer
    single = await stores.sales.hold_seats(TENANT, s.events[1], [s.seat(2)])
    with pytest.raises(SeasonSeatsDistanced) as refused:
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(1), s.seat(3), s.seat(5)])
    assert refused.value.by_event == {s.events[1]: [s.seat(1), s.seat(3)]}
    assert refused.value.seat_ids == [f"{s.events[1]}/{s.seat(1)}", f"{s.events[1]}/{s.seat(3)}"]
    assert isinstance(refused.value, SeatsDistanced)  # FAILED_PRECONDITION, SEAT_DISTANCED per seat
    state = await read_state(redis_client, s.events[1])
    assert list(state.seats) == [2]  # nothing held anywhere but the single hold
    assert await held_anywhere(redis_client, s) == {s.events[1]: state.seats}
    # without the event of the rule, or two seats away, it is fine
    await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(3)], event_ids=[s.events[0]])
    season = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(4), s.seat(5)])
    # and other groups keep their distance from it, in the event of the rule only
    with pytest.raises(SeatsDistanced) as near:
        await stores.sales.hold_seats(TENANT, s.events[1], [s.seat(3)])
    assert near.value.seat_ids == [s.seat(3)]
    await stores.sales.release_hold(TENANT, single.token)
    with pytest.raises(SeatsDistanced):  # seat 3 sits next to the season hold's seat 4
        await stores.sales.hold_seats(TENANT, s.events[1], [s.seat(3)])
    await stores.season_sales.release(TENANT, season.token)  # released: its neighbours are free
    freed = await stores.sales.hold_seats(TENANT, s.events[1], [s.seat(3)])
    for event_id in s.events:
        check_consistent(await read_state(redis_client, event_id))
    assert freed.seat_ids == [s.seat(3)]


async def test_expiry_frees_a_season_holds_neighbours_and_a_sale_keeps_them(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores, n_events=2)
    await set_rule(stores, s.events[0], "row:1")
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(8)])
    _, hold_id = parse_season_token(held.token)
    for event_id in s.events:  # the lease in the past on Redis's clock
        await redis_client.zadd(keys.event_key(event_id, "holdexp"), {hold_id: 1})
    await stores.sales.hold_seats(TENANT, s.events[0], [s.seat(9)])  # an expired group keeps no distance
    sold = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(1)])
    order = await stores.season_sales.commit(TENANT, sold.token, "pay-1", Buyer())
    with pytest.raises(SeatsDistanced):  # a sold group keeps its distance
        await stores.sales.hold_seats(TENANT, s.events[0], [s.seat(2)])
    with pytest.raises(SeasonSeatsDistanced) as refused:
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    assert refused.value.by_event == {s.events[0]: [s.seat(0)]}
    await stores.sales.cancel(TENANT, s.events[0], order.orders[0].order_id, [], "free", "changed plans")
    await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(2)])  # cancelled: free again
    for event_id in s.events:
        check_consistent(await read_state(redis_client, event_id))


async def test_a_season_hold_racing_a_single_hold_for_neighbouring_seats(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """Under a one-seat rule in one event, a season hold of seat n and a single-event hold of
    seat n + 1 in that event, sent at once from two processes: exactly one of them wins."""
    s = await make_season(stores)
    await set_rule(stores, s.events[2], "row:1")
    other = Stores.open(redis_url)
    wins = {"season": 0, "single": 0}
    try:
        for round_ in range(8):
            row, first = divmod(round_ % 6, 3)
            seat, neighbour = s.seat(row * 6 + 2 * first), s.seat(row * 6 + 2 * first + 1)
            season_call = (stores if round_ % 2 else other).season_sales.hold(
                TENANT, s.season.season_id, [seat]
            )
            single_call = (other if round_ % 2 else stores).sales.hold_seats(TENANT, s.events[2], [neighbour])
            if round_ % 3 == 0:
                results = await asyncio.gather(season_call, single_call, return_exceptions=True)
            else:
                results = list(
                    reversed(await asyncio.gather(single_call, season_call, return_exceptions=True))
                )
            season_result, single_result = results
            won = [isinstance(season_result, SeasonHoldInfo), isinstance(single_result, HoldInfo)]
            assert won.count(True) == 1, results
            loser = single_result if won[0] else season_result
            assert isinstance(loser, SeatsDistanced), loser
            if won[0]:
                wins["season"] += 1
                assert isinstance(season_result, SeasonHoldInfo)
                await stores.season_sales.release(TENANT, season_result.token)
            else:
                wins["single"] += 1
                assert isinstance(single_result, HoldInfo)
                await stores.sales.release_hold(TENANT, single_result.token)
            for event_id in s.events:
                check_consistent(await read_state(redis_client, event_id))
    finally:
        await other.close()
    assert sum(wins.values()) == 8


async def test_a_stale_rule_is_learnt_once_per_event(stores: Stores) -> None:
    """Two events' rules changed behind this process: the season hold learns each and holds."""
    s = await make_season(stores)
    await set_rule(stores, s.events[0], "row:1")
    await set_rule(stores, s.events[2], "row:2")
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    assert held.event_ids == s.events
    ctxs = [await stores.sales.context(TENANT, e) for e in s.events]
    assert [c.distancing for c in ctxs] == ["row:1", "", "row:2"]


# -- retry-safe season holds ---------------------------------------------------------------


async def test_a_retried_season_hold_returns_the_same_hold(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores)
    season_id = s.season.season_id

    def again(**overrides: object) -> Awaitable[SeasonHoldInfo]:
        kwargs: dict[str, Any] = {"buyer": "ann", "request_id": "r-1", **overrides}
        seats = kwargs.pop("seats", [s.seat(0), s.seat(1)])
        return stores.season_sales.hold(TENANT, season_id, seats, **kwargs)

    first = await again()
    assert not first.replayed
    before = {e: await read_state(redis_client, e) for e in s.events}
    ref = await stores.events.ref(TENANT, s.events[1])
    await stores.events.update(ref, {"vip", "std", "ga"}, status="paused")  # whatever the sale is now
    retried = await again(seats=[s.seat(1), s.seat(0)])  # the same request: seats in another order
    assert retried.replayed
    assert (retried.token, retried.seat_ids, retried.expires_ms) == (
        first.token,
        first.seat_ids,
        first.expires_ms,
    )
    for event_id in s.events:  # nothing held twice, no count moved
        state = await read_state(redis_client, event_id)
        assert (state.seats, state.buyers) == (before[event_id].seats, before[event_id].buyers)
    for different in ({"seats": [s.seat(0)]}, {"buyer": "bob"}, {"event_ids": [s.events[0]]},
                      {"access": ACCESS}):  # fmt: skip
        with pytest.raises(InvalidRequest, match="different season hold request") as refused:
            await again(**different)
        assert refused.value.field == "request_id"
    with pytest.raises(InvalidRequest, match="request_id"):
        await again(request_id="x" * 129)
    await stores.events.update(ref, {"vip", "std", "ga"}, status="on_sale")
    order = await stores.season_sales.commit(TENANT, first.token, "pay-1", Buyer())
    with pytest.raises(PreconditionFailed, match=f"committed to season order {order.season_order_id}"):
        await again()
    # another request id is another hold; its retry after release hears so
    other = await again(seats=[s.seat(2)], request_id="r-2")
    await stores.season_sales.release(TENANT, other.token)
    with pytest.raises(PreconditionFailed, match="released"):
        await again(seats=[s.seat(2)], request_id="r-2")
    for event_id in s.events:
        check_consistent(await read_state(redis_client, event_id))


async def test_an_expired_season_holds_retry_hears_it_expired(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores, n_events=2)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], request_id="r-1")
    _, hold_id = parse_season_token(held.token)
    record_key = keys.season_keys(s.season.season_id)[1]
    raw = await redis_client.hget(record_key, hold_id)
    assert raw is not None
    await redis_client.hset(record_key, hold_id, raw.replace(str(held.expires_ms).encode(), b"1"))
    with pytest.raises(HoldExpired):
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], request_id="r-1")
    with pytest.raises(InvalidRequest, match="season_hold_token"):  # a request id is never a token
        await stores.season_sales.get_hold(TENANT, f"{s.season.season_id}.req:r-1")


async def test_concurrent_retries_make_one_season_hold(stores: Stores, redis_url: str) -> None:
    s = await make_season(stores)
    others = [Stores.open(redis_url) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(
                opened.season_sales.hold(TENANT, s.season.season_id, [s.seat(4)], request_id="same")
                for opened in [stores, *others, stores]
            )
        )
    finally:
        for opened in others:
            await opened.close()
    assert len({r.token for r in results}) == 1
    assert [r.replayed for r in results].count(False) == 1


# -- general admission in season holds ------------------------------------------------------


async def test_a_season_hold_takes_ga_places_in_every_event_and_commits_ga_tickets(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores)
    held = await stores.season_sales.hold(
        TENANT, s.season.season_id, [s.seat(0)], ga={GA_AREA: 2}, buyer="ann"
    )
    assert held.ga == {GA_AREA: 2}
    _, hold_id = parse_season_token(held.token)
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.ga_held == {GA_AREA: 2}
        assert state.holds[hold_id].ga == {GA_AREA: 2}
        assert state.buyers == {"ann": 3}
        check_consistent(state)
    assert (await stores.season_sales.get_hold(TENANT, held.token)).ga == {GA_AREA: 2}
    order = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer())
    for i, (event_id, event_order) in enumerate(zip(s.events, order.orders, strict=True)):
        assert [t.ga_area for t in event_order.tickets] == [None, GA_AREA, GA_AREA]
        assert event_order.total == PRICES["vip"] + 2 * PRICES["ga"] + 300 * i  # each event's prices
        state = await read_state(redis_client, event_id)
        assert (state.ga_held.get(GA_AREA, 0), state.ga_sold) == (0, {GA_AREA: 2})
        assert state.bought == {"ann": 3}
        check_consistent(state)
    # only places: no seat at all
    places = await stores.season_sales.hold(TENANT, s.season.season_id, [], ga={GA_AREA: 1})
    assert places.seat_ids == []
    await stores.season_sales.release(TENANT, places.token)
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert (state.ga_held.get(GA_AREA, 0), state.ga_sold) == (0, {GA_AREA: 2})
        check_consistent(state)


async def test_too_few_places_in_one_event_holds_nothing_and_names_event_and_area(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores)
    await stores.sales.hold_general_admission(TENANT, s.events[1], GA_AREA, 4)
    with pytest.raises(SeasonGeneralAdmissionUnavailable) as refused:
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], ga={GA_AREA: 2})
    assert (refused.value.event_id, refused.value.area_id, refused.value.available) == (
        s.events[1],
        GA_AREA,
        1,
    )
    assert refused.value.area == f"{s.events[1]}/{GA_AREA}"  # ABORTED, its ResourceInfo names both
    assert isinstance(refused.value, GeneralAdmissionUnavailable)
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.seats == {}
        assert state.ga_held.get(GA_AREA, 0) == (4 if event_id == s.events[1] else 0)
    await stores.season_sales.hold(
        TENANT, s.season.season_id, [], ga={GA_AREA: 2}, event_ids=[s.events[0], s.events[2]]
    )
    for bad in ({"stage": 1}, {GA_AREA: 0}):
        with pytest.raises(InvalidRequest, match="general_admission"):
            await stores.season_sales.hold(TENANT, s.season.season_id, [], ga=bad)
    with pytest.raises(InvalidRequest, match="seat_ids"):
        await stores.season_sales.hold(TENANT, s.season.season_id, [])


async def test_ga_places_reserved_for_a_channel_need_its_access(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores, n_events=2)
    for event_id in s.events:
        await stores.channels.define(TENANT, event_id, PRESALE)
    await stores.channels.allocate(TENANT, s.events[0], "presale", [], {GA_AREA: 3})
    with pytest.raises(SeasonGeneralAdmissionUnavailable) as refused:
        await stores.season_sales.hold(TENANT, s.season.season_id, [], ga={GA_AREA: 3})
    assert (refused.value.event_id, refused.value.available) == (s.events[0], 2)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [], ga={GA_AREA: 3}, access=ACCESS)
    assert held.ga == {GA_AREA: 3}
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.ga_held == {GA_AREA: 3}
        check_consistent(state)


GaCall = tuple[list[str], int, Awaitable[object]]  # the events, places in each, the call


def _ga_calls(s: TestSeason, every: list[Stores], round_: int) -> list[GaCall]:
    """Three season holds of 2 places and one single-event hold of 2 or 3 per event, rotated."""
    season_id = s.season.season_id
    calls: list[GaCall] = [
        (s.events, 2, opened.season_sales.hold(TENANT, season_id, [], ga={GA_AREA: 2})) for opened in every
    ]
    for i, event_id in enumerate(s.events):
        qty = 2 + (i + round_) % 2
        calls.append(([event_id], qty, every[i].sales.hold_general_admission(TENANT, event_id, GA_AREA, qty)))
    return calls[round_:] + calls[:round_]


def _ga_winners(
    s: TestSeason, calls: list[GaCall], results: list[object]
) -> tuple[dict[str, int], list[object]]:
    """Places won per event, and the winning holds (a season hold has every event or none)."""
    held = dict.fromkeys(s.events, 0)
    won: list[object] = []
    for (events, qty, _), result in zip(calls, results, strict=True):
        if isinstance(result, GeneralAdmissionUnavailable):
            continue
        assert isinstance(result, SeasonHoldInfo | HoldInfo), result
        if isinstance(result, SeasonHoldInfo):
            assert result.event_ids == s.events
        won.append(result)
        for event_id in events:
            held[event_id] += qty
    return held, won


async def test_season_ga_holds_racing_single_event_ga_holds(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """Season holds of 2 places and single-event holds of 2 or 3 places of one area (capacity 5)
    sent at once from three processes: no event's area ever exceeds capacity, a season hold
    has its places in every event or none, and every winner's places are counted once."""
    s = await make_season(stores)
    others = [Stores.open(redis_url) for _ in range(2)]
    try:
        for round_ in range(4):
            calls = _ga_calls(s, [stores, *others], round_)
            results = await asyncio.gather(*(c[2] for c in calls), return_exceptions=True)
            held, won = _ga_winners(s, calls, results)
            assert won, "nobody won a place"
            for event_id in s.events:
                state = await read_state(redis_client, event_id)
                assert state.ga_held.get(GA_AREA, 0) == held[event_id] <= 5
                check_consistent(state)
            for result in won:
                if isinstance(result, SeasonHoldInfo):
                    await stores.season_sales.release(TENANT, result.token)
                else:
                    assert isinstance(result, HoldInfo)
                    await stores.sales.release_hold(TENANT, result.token)
    finally:
        for opened in others:
            await opened.close()
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.ga_held.get(GA_AREA, 0) == 0
        check_consistent(state)
