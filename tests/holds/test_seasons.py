"""Seasons and bundles against real Redis (single and Cluster): a season hold takes the
same seats in every chosen event or nothing, races single-event holds without a seat
ever held or sold twice, and its commit yields one order (a ticket per seat) per event."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from dataclasses import dataclass

import pytest
from redis.crc import key_slot

from holds import keys
from holds.errors import HoldExpired, InvalidRequest, NotFound, PreconditionFailed, SeatsUnavailable
from holds.events import EventSettings
from holds.records import Buyer
from holds.redis_client import AnyRedis
from holds.sales import HoldInfo, hold_token
from holds.seasons import (
    Season,
    SeasonHoldInfo,
    SeasonSeatsUnavailable,
    new_season_event_id,
    parse_season_token,
)
from holds.seatmaps import LoadedSeatMap
from server.context import Stores
from tests.holds.factories import PRICES, TENANT, check_consistent, read_state, small_map


@dataclass(frozen=True)
class TestSeason:
    __test__ = False

    season: Season
    loaded: LoadedSeatMap

    @property
    def events(self) -> list[str]:
        return list(self.season.event_ids)

    def seat(self, ordinal: int) -> str:
        return self.loaded.index.placed[ordinal].seat.id


async def make_season(
    stores: Stores,
    n_events: int = 3,
    *,
    tenant: str = TENANT,
    hold_ttl_ms: int = 600_000,
    max_seats_per_buyer: int = 0,
    ga_capacity: int = 5,
) -> TestSeason:
    version = await stores.seatmaps.put(tenant, "", small_map(ga_capacity=ga_capacity))
    await stores.seatmaps.publish(tenant, version.seat_map_id, version.version)
    loaded = await stores.seatmaps.load(tenant, version.seat_map_id, version.version)
    season = await stores.seasons.create(tenant, loaded, "EUR", "Season 26/27")
    for i in range(n_events):
        event_id = new_season_event_id(season.season_id)
        prices = {k: v + 100 * i for k, v in PRICES.items()}  # each event its own prices
        event = await stores.events.create(
            tenant, loaded, "EUR", EventSettings(
                name=f"Night {i}", status="on_sale", prices=prices, hold_ttl_ms=hold_ttl_ms,
                max_seats_per_buyer=max_seats_per_buyer,
            ),
            event_id,
        )  # fmt: skip
        await stores.seasons.add_event(season, event_id, event.created_at_ms + i)
    return TestSeason(await stores.seasons.get(tenant, season.season_id), loaded)


def test_season_events_share_the_seasons_slot() -> None:
    event_id = new_season_event_id("ssAbc")
    assert event_id.startswith("ssAbc~ev")
    wanted = key_slot(b"ev:ssAbc")
    assert {key_slot(k.encode()) for k in keys.event_keys(event_id)} == {wanted}
    assert {key_slot(k.encode()) for k in keys.season_keys("ssAbc")} == {wanted}
    assert keys.event_keys(event_id) != keys.event_keys(new_season_event_id("ssAbc"))
    assert keys.event_tag("evPlain") == "{ev:evPlain}"  # events of no season: unchanged


async def test_a_season_hold_takes_the_same_seats_in_every_event(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0), s.seat(1)], buyer="ada")
    assert held.event_ids == s.events
    assert held.seat_ids == [s.seat(0), s.seat(1)]
    _, hold_id = parse_season_token(held.token)
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.seats == {0: f"h:{hold_id}", 1: f"h:{hold_id}"}
        assert state.holdexp[hold_id] == held.expires_ms
        assert state.buyers == {"ada": 2}
        check_consistent(state)
    # a single event's view of its part: an ordinary hold
    part = await stores.sales.get_hold(TENANT, hold_token(s.events[1], hold_id))
    assert part.seat_ids == [s.seat(0), s.seat(1)]


async def test_an_event_of_a_season_cannot_move_to_another_seat_map_version(stores: Stores) -> None:
    s = await make_season(stores, n_events=2)
    again = await stores.seatmaps.put(TENANT, s.loaded.version.seat_map_id, small_map())
    await stores.seatmaps.publish(TENANT, again.seat_map_id, again.version)
    with pytest.raises(PreconditionFailed, match="part of a season"):
        await stores.moves.move(TENANT, s.events[0], again.version)
    assert (await stores.events.ref(TENANT, s.events[0])).seat_map_version == s.loaded.version.version


async def test_a_subset_of_the_events(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores)
    chosen = [s.events[2], s.events[0]]
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(3)], event_ids=chosen)
    assert held.event_ids == [s.events[0], s.events[2]]  # the season's order
    assert (await read_state(redis_client, s.events[1])).seats == {}
    assert len((await read_state(redis_client, s.events[2])).seats) == 1


async def test_one_taken_seat_holds_nothing_anywhere_and_is_named(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores)
    single = await stores.sales.hold_seats(TENANT, s.events[1], [s.seat(1)])
    with pytest.raises(SeasonSeatsUnavailable) as failed:
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0), s.seat(1), s.seat(2)])
    assert failed.value.by_event == {s.events[1]: [s.seat(1)]}
    assert failed.value.seat_ids == [f"{s.events[1]}/{s.seat(1)}"]
    assert isinstance(failed.value, SeatsUnavailable)  # FAILED_PRECONDITION with a violation per seat
    _, single_id = single.token.split(".")
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.seats == ({1: f"h:{single_id}"} if event_id == s.events[1] else {})
        check_consistent(state)


async def test_failures_name_the_event_and_change_nothing(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores, max_seats_per_buyer=2)
    await stores.sales.hold_seats(TENANT, s.events[2], [s.seat(5)], buyer="bo")
    with pytest.raises(Exception, match=f"buyer in event {s.events[2]}"):
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0), s.seat(1)], buyer="bo")
    assert (await read_state(redis_client, s.events[0])).seats == {}
    ref = await stores.events.ref(TENANT, s.events[1])
    await stores.events.update(ref, {"vip", "std", "ga"}, status="paused")
    with pytest.raises(PreconditionFailed, match=f"event {s.events[1]} is not on sale"):
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    assert (await read_state(redis_client, s.events[0])).seats == {}
    with pytest.raises(InvalidRequest, match=r"event_ids\[0\]"):
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], event_ids=["evOther"])
    with pytest.raises(NotFound):  # another organizer's season: as if it did not exist
        await stores.season_sales.hold("other", s.season.season_id, [s.seat(0)])


async def test_commit_yields_one_order_per_event_with_a_ticket_per_seat(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0), s.seat(7)], buyer="ada")
    order = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer(name="Ada"))
    assert not order.replayed
    assert [o.tickets[0].seat for o in order.orders] == [0, 0, 0]
    assert all(len(o.tickets) == 2 for o in order.orders)
    # each event's own prices: vip and std of event i are raised by 100 * i
    assert [o.total for o in order.orders] == [PRICES["vip"] + PRICES["std"] + 200 * i for i in range(3)]
    assert order.total == sum(o.total for o in order.orders)
    for event_id, event_order in zip(s.events, order.orders, strict=True):
        state = await read_state(redis_client, event_id)
        assert state.seats == {0: f"s:{event_order.order_id}", 7: f"s:{event_order.order_id}"}
        assert state.bought == {"ada": 2}
        assert state.buyers == {}
        check_consistent(state)
    again = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer(name="Ada"))
    assert again.replayed
    assert [o.order_id for o in again.orders] == [o.order_id for o in order.orders]
    read = await stores.season_sales.get_order(TENANT, s.season.season_id, order.season_order_id)
    assert [o.order_id for o in read.orders] == [o.order_id for o in order.orders]
    with pytest.raises(PreconditionFailed, match="already committed"):
        await stores.season_sales.commit(TENANT, held.token, "pay-2", Buyer())
    with pytest.raises(PreconditionFailed, match="already committed"):
        await stores.season_sales.release(TENANT, held.token)


async def test_commit_is_fenced_by_every_events_hold(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    _, hold_id = parse_season_token(held.token)
    await stores.sales.release_hold(TENANT, hold_token(s.events[2], hold_id))  # one part let go
    with pytest.raises(PreconditionFailed, match=f"released in event {s.events[2]}"):
        await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer())
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.orders == {}
    await stores.season_sales.release(TENANT, held.token)
    for event_id in s.events:
        assert (await read_state(redis_client, event_id)).seats == {}
    with pytest.raises(PreconditionFailed, match="released"):
        await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer())


async def test_an_expired_season_hold_cannot_commit(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores, hold_ttl_ms=1_000)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    _, hold_id = parse_season_token(held.token)
    rec_key = keys.season_keys(s.season.season_id)[1]
    raw = await redis_client.hget(rec_key, hold_id)
    assert raw is not None
    # expire it on Redis's clock: the record's and every event's lease in the past
    await redis_client.hset(rec_key, hold_id, raw.replace(str(held.expires_ms).encode(), b"1"))
    for event_id in s.events:
        await redis_client.zadd(keys.event_key(event_id, "holdexp"), {hold_id: 1})
    with pytest.raises(HoldExpired):
        await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer())
    # its seats are free for anyone
    await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])


async def test_extend_moves_every_events_lease(stores: Stores, redis_client: AnyRedis) -> None:
    s = await make_season(stores)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    longer = await stores.season_sales.extend(TENANT, held.token, ttl_ms=3_600_000)
    assert longer.expires_ms > held.expires_ms
    _, hold_id = parse_season_token(held.token)
    for event_id in s.events:
        assert (await read_state(redis_client, event_id)).holdexp[hold_id] == longer.expires_ms


Attempt = tuple[list[str], list[str], "Awaitable[HoldInfo | SeasonHoldInfo]"]  # events, seats, the call


def _attempts(s: TestSeason, every: list[Stores], rng: random.Random) -> list[Attempt]:
    """Season holds over overlapping pairs of four seats and single-event holds on the same seats."""
    seats = [s.seat(o) for o in rng.sample(range(12), 4)]
    attempts: list[Attempt] = []
    for i in range(4):
        pair = rng.sample(seats, 2)
        attempts.append((s.events, pair, every[i % 3].season_sales.hold(TENANT, s.season.season_id, pair)))
    for i, event_id in enumerate(s.events * 2):
        seat = [rng.choice(seats)]
        attempts.append(([event_id], seat, every[i % 3].sales.hold_seats(TENANT, event_id, seat)))
    rng.shuffle(attempts)
    return attempts


def _winners(attempts: list[Attempt], results: list[object]) -> dict[tuple[str, str], str]:
    """(event, seat) -> the token of the one hold that won it; a seat won twice fails."""
    owner: dict[tuple[str, str], str] = {}
    for (events, wanted, _), result in zip(attempts, results, strict=True):
        if isinstance(result, SeatsUnavailable):
            continue
        assert isinstance(result, HoldInfo | SeasonHoldInfo), result
        if isinstance(result, SeasonHoldInfo):
            assert result.event_ids == events  # a season hold has every event or none
        for event_id in events:
            for seat in wanted:
                assert (event_id, seat) not in owner, f"{seat} in {event_id} held twice"
                owner[(event_id, seat)] = result.token
    return owner


async def test_a_season_hold_racing_single_event_holds(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """Season holds and single-event holds over three processes' connections on the same
    seats: each seat of each event is held by exactly one winner, a season hold has all its
    events or none, and after every winner commits no seat is sold twice."""
    s = await make_season(stores, n_events=3)
    others = [Stores.open(redis_url) for _ in range(2)]
    rng = random.Random(14)
    owned = 0
    try:
        for round_ in range(6):
            attempts = _attempts(s, [stores, *others], rng)
            owner = _winners(
                attempts, await asyncio.gather(*(a[2] for a in attempts), return_exceptions=True)
            )
            assert owner, "nobody won a seat"
            owned += len(owner)
            for event_id in s.events:  # the stored state agrees: winners hold their seats, nothing else is
                state = await read_state(redis_client, event_id)
                check_consistent(state)
                held_here = {s.seat(o) for o, v in state.seats.items() if v.startswith("h:")}
                assert held_here == {seat for (e, seat) in owner if e == event_id}
            commits: list[Awaitable[object]] = []
            for n, token in enumerate(sorted(set(owner.values()))):
                key = f"r{round_}-{n}"
                if keys.SEASON_SEPARATOR in token:  # an event's own hold
                    commits.append(stores.sales.commit(TENANT, token, key, Buyer()))
                else:
                    commits.append(stores.season_sales.commit(TENANT, token, key, Buyer()))
            await asyncio.gather(*commits)
            for event_id in s.events:
                check_consistent(await read_state(redis_client, event_id))  # no seat sold twice
    finally:
        for opened in others:
            await opened.close()
    sold = 0
    for event_id in s.events:
        sold += sum(
            1 for v in (await read_state(redis_client, event_id)).seats.values() if v.startswith("s:")
        )
    assert sold == owned  # every winner committed, each seat-event once
