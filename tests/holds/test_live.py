"""Live events: one bounded, evictable unit of process state per event."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from holds import keys
from holds.availability import HELD, Ended, Resync, decode_snapshot, subscribe
from holds.errors import NotFound
from holds.live import LiveEvent, LiveEvents
from holds.redis_client import AnyRedis
from holds.sales import Sales
from seatmap.bestavailable import BestAvailableRequest
from server.context import Stores
from server.reaper import reap_once
from tests.holds.factories import TENANT, make_event

CAPACITY = 40


@pytest.fixture
async def small(stores: Stores) -> AsyncIterator[Stores]:
    """The same stores with room for only CAPACITY live events."""
    live = LiveEvents(stores.redis, stores.events, stores.seatmaps, stores.inventory, capacity=CAPACITY)
    yield replace(stores, live=live, sales=Sales(live, stores.inventory))
    await live.close()


async def connected_clients(client: AnyRedis) -> int:
    return len(await client.client_list())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def until(condition: object, what: str, within_s: float = 30.0) -> None:
    """Wait for observed progress (a safety bound only, never a timing claim)."""
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


async def test_touching_thousands_of_events_keeps_the_process_bounded(
    small: Stores, redis_client: AnyRedis, redis_topology: str
) -> None:
    """Each event is browsed, held and released once, one after another: live
    events, followed streams, Redis connections, file descriptors, reaper work
    and the LiveEvent objects alive all stay bounded."""
    count = 2_000 if redis_topology == "single" else 600  # 50 and 15 times the capacity
    first = await make_event(small.seatmaps, small.events)
    event_ids = [first.event_id]
    for _ in range(count - 1):
        event = await small.events.create(TENANT, first.loaded, "EUR", (await small.events.get(
            await small.events.ref(TENANT, first.event_id))).settings)  # fmt: skip
        event_ids.append(event.ref.event_id)
    alive: weakref.WeakSet[LiveEvent] = weakref.WeakSet()
    readings: list[tuple[int, int, int]] = []
    for n, event_id in enumerate(event_ids, 1):
        live = await small.live.get(TENANT, event_id)
        alive.add(live)
        await small.live.mirror(live)
        hold = await small.sales.hold_best_available(TENANT, event_id, BestAvailableRequest(quantity=2))
        await small.sales.release_hold(TENANT, hold.token)
        assert len(small.live) <= CAPACITY
        assert len(small.live.feed) <= CAPACITY
        if n % 500 == 0:
            clients = await connected_clients(redis_client) if redis_topology == "single" else 0
            readings.append((n, clients, open_fds()))
    gc.collect()
    assert len(alive) <= CAPACITY + 1  # the evicted ones were freed
    print("events touched, Redis connections, open fds:", readings)
    baseline = readings[0]  # pools have grown to their working size by then
    for n, clients, fds in readings[1:]:
        assert clients <= baseline[1] + 2, f"Redis connections grew to {clients} after {n} events"
        assert fds <= baseline[2] + 8, f"file descriptors grew to {fds} after {n} events"
    # the reaper's round covers the live events, not every event ever created
    reaped: list[str] = []
    inventory = small.inventory
    original = inventory.reap

    async def counting(event_id: str, limit: int = 500) -> object:
        reaped.append(event_id)
        return await original(event_id, limit)

    inventory.reap = counting  # type: ignore[method-assign,assignment]
    try:
        await reap_once(small)
    finally:
        del inventory.reap
    assert 0 < len(reaped) <= CAPACITY


async def test_an_evicted_event_comes_back_correct(small: Stores) -> None:
    ev = await make_event(small.seatmaps, small.events, rows=4, seats_per_row=10)
    live = await small.live.get(ev.tenant, ev.event_id)
    mirror = await small.live.mirror(live)
    watcher = subscribe(mirror)
    held = await small.sales.hold_seats(
        ev.tenant, ev.event_id, [ev.loaded.index.placed[o].seat.id for o in (0, 1)]
    )
    others = [await make_event(small.seatmaps, small.events) for _ in range(CAPACITY)]
    for other in others:  # the first event is now the least recently used: evicted
        await small.live.get(other.tenant, other.event_id)
    assert live.evicted
    while True:  # whatever was queued, the watch ends
        item = await asyncio.wait_for(anext(watcher), 30)
        if isinstance(item, Ended):
            break
    again = await small.live.get(ev.tenant, ev.event_id)
    assert again is not live
    fresh = await small.live.mirror(again)
    assert [int(fresh.snapshot.states[o]) for o in (0, 1, 2)] == [1, 1, 0]  # held, held, free
    best = await small.sales.hold_best_available(ev.tenant, ev.event_id, BestAvailableRequest(quantity=2))
    assert not set(best.seat_ids) & set(held.seat_ids)
    # and it follows its stream again
    await small.sales.release_hold(ev.tenant, held.token)
    await until(lambda: int(fresh.snapshot.states[0]) == 0, "the release reached the new mirror")


async def test_many_mirrors_share_one_reader(small: Stores, redis_url: str, redis_topology: str) -> None:
    """Changes made by another process reach every mirror, over one connection."""
    events = [await make_event(small.seatmaps, small.events) for _ in range(20)]
    mirrors = [await small.live.mirror(await small.live.get(events[0].tenant, events[0].event_id))]
    with_one = await connected_clients(small.redis) if redis_topology == "single" else 0
    for ev in events[1:]:
        mirrors.append(await small.live.mirror(await small.live.get(ev.tenant, ev.event_id)))
    if redis_topology == "single":
        # not one more per mirror: at most the command pool's second connection (the reader's wake-up)
        assert await connected_clients(small.redis) <= with_one + 1 + 1
    other = Stores.open(redis_url)
    try:
        for ev in events:
            await other.inventory.hold(ev.event_id, seats=ev.seats(0, 1))
    finally:
        await other.close()
    await until(lambda: all(int(m.snapshot.states[0]) == 1 for m in mirrors), "every mirror saw its hold")


async def test_a_rolled_back_stream_is_noticed_and_the_mirror_starts_over(
    small: Stores, redis_client: AnyRedis
) -> None:
    """A failover to a replica that missed the last change, simulated without one: the
    event's keys go back to an earlier state (DUMP/RESTORE) and other changes take
    the lost change's sequence number. The mirror read the lost change; the next
    entry does not follow it (its ``prev``), so the mirror resyncs and its watchers
    get a resync."""
    ev = await make_event(small.seatmaps, small.events, rows=2, seats_per_row=10)
    mirror = await small.live.mirror(await small.live.get(ev.tenant, ev.event_id))
    watcher = subscribe(mirror)
    saved = {name: await redis_client.dump(name) for name in keys.event_keys(ev.event_id)}
    await small.inventory.hold(ev.event_id, seats=ev.seats(0, 1))  # to be lost
    await until(lambda: int(mirror.snapshot.states[0]) == HELD, "the mirror read the hold")
    lost_seq = mirror.seq
    for name, dumped in saved.items():  # the promoted replica never had that hold
        if dumped is None:
            await redis_client.delete(name)
        else:
            await redis_client.restore(name, 0, dumped, replace=True)
    await small.inventory.hold(ev.event_id, seats=ev.seats(5, 6))  # takes the lost sequence number
    await small.inventory.hold(ev.event_id, seats=ev.seats(7))
    fresh = decode_snapshot(await small.inventory.snapshot(ev.event_id), ev.seat_count)
    assert fresh.seq == lost_seq + 1

    def settled() -> bool:
        return mirror.seq == fresh.seq and bool((mirror.snapshot.states == fresh.states).all())

    await until(settled, "the mirror started over from a snapshot")
    assert int(mirror.snapshot.states[0]) == 0  # the lost hold is gone from the mirror too
    items = []
    while not any(isinstance(i, Resync) for i in items):
        items.append(await asyncio.wait_for(anext(watcher), 30))
    assert any(isinstance(i, Resync) and "rolled back" in i.reason for i in items)


async def test_idle_events_are_evicted_unless_watched(small: Stores) -> None:
    quiet = await make_event(small.seatmaps, small.events)
    watched = await make_event(small.seatmaps, small.events)
    await small.live.get(quiet.tenant, quiet.event_id)
    live = await small.live.get(watched.tenant, watched.event_id)
    subscribe(await small.live.mirror(live))
    later = time.monotonic() + small.live.idle_s + 1
    assert small.live.evict_idle(later) == 1
    assert small.live.event_ids() == [watched.event_id]


async def test_another_tenants_event_is_not_found(small: Stores) -> None:
    ev = await make_event(small.seatmaps, small.events)
    with pytest.raises(NotFound):
        await small.live.get("someone-else", ev.event_id)
    with pytest.raises(NotFound):
        await small.live.get(ev.tenant, "ev_missing")


async def test_finished_events_leave_the_reapers_set(small: Stores, redis_client: AnyRedis) -> None:
    now = int(time.time() * 1000)
    selling = await make_event(small.seatmaps, small.events)
    closed = await make_event(small.seatmaps, small.events, status="closed")
    past = await make_event(
        small.seatmaps, small.events, onsale_from_ms=now - 60_000, onsale_until_ms=now - 1
    )
    closing = await make_event(small.seatmaps, small.events)
    await small.inventory.hold(closing.event_id, seats=closing.seats(0))
    ref = await small.events.ref(closing.tenant, closing.event_id)
    await small.events.update(ref, {"vip", "std", "ga"}, status="closed")  # with a live hold
    await reap_once(small, sweep=True)
    members = {m.decode() for m in await redis_client.smembers(keys.ACTIVE_EVENTS)}
    assert selling.event_id in members
    assert closing.event_id in members  # its hold may still be released or expire
    assert closed.event_id not in members
    assert past.event_id not in members
    # extending the window brings it back
    ref = await small.events.ref(past.tenant, past.event_id)
    await small.events.update(ref, {"vip", "std", "ga"}, changes={"onsale_until_ms": now + 3_600_000})
    assert await redis_client.sismember(keys.ACTIVE_EVENTS, past.event_id)
