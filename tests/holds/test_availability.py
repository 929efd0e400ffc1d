"""How a mirror hands its changes to watchers: one shared batch per interval,
nothing a watcher's snapshot already has, resync for the slow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holds import availability
from holds.availability import Batch, Delta, Ended, EventMirror, GroupCounts, Resync, Snapshot, subscribe
from holds.records import Buyer
from server.context import Stores
from tests.holds.factories import GA_AREA, make_event

Update = Batch | Resync | Ended


def mirror(seats: int = 10) -> EventMirror:
    return EventMirror("ev1", seats, Snapshot(0, np.zeros(seats, dtype=np.int8), {}))


def change(m: EventMirror, seat: int, state: str = "held") -> Delta:
    """Apply and publish the next change, as the mirror's reader does."""
    delta = Delta(seq=m.seq + 1, kind=state, state=state, seats=(seat,), ga_area="", ga_qty=0)
    m.apply(delta)
    m.publish(delta)
    return delta


async def next_update(updates: AsyncIterator[Update], within_s: float = 1.0) -> Update:
    return await asyncio.wait_for(anext(updates), within_s)


def test_opened_counts_the_seats_that_became_free_and_nothing_else() -> None:
    m = mirror(200)
    start = m.opened
    m.apply(Delta(1, "held", "held", (1, 2), "", 0))
    m.apply(Delta(2, "sold", "sold", (1, 2), "", 0))
    m.mark_held([3])
    m.mark_taken([4])
    assert m.opened == start  # taking seats opens none
    m.apply(Delta(3, "released", "free", (3, 4, 5), "", 0))  # seat 5 was free already
    assert m.opened == start + 2
    block = tuple(range(10, 150))  # a section's worth: the mirror's numpy path
    m.apply(Delta(4, "held", "held", block, "", 0))
    m.apply(Delta(5, "expired", "free", block, "", 0))
    assert m.opened == start + 2 + len(block)
    m.replace(Snapshot(5, np.zeros(200, dtype=np.int8), {}))  # a resync: anything may have opened
    assert m.opened == start + 3 + len(block)
    # seats returned from a channel to the general pool: open to requests that could not take them
    m.apply(Delta(6, "channel", "", (), "", 0, op="returned", channel="presale", channel_seats=(7, 8)))
    assert m.opened == start + 4 + len(block)


async def test_every_watcher_gets_the_same_batch_once_per_interval() -> None:
    m = mirror()
    a, b = subscribe(m), subscribe(m)
    first = change(m, 0)  # quiet: goes out at once
    got_a, got_b = await next_update(a), await next_update(b)
    assert got_a == [first]
    assert got_b is got_a
    burst = [change(m, s) for s in range(1, 6)]  # within the interval: one batch
    loop = asyncio.get_running_loop()
    started = loop.time()
    got_a, got_b = await next_update(a), await next_update(b)
    assert got_a == burst
    assert got_b is got_a
    assert loop.time() - started >= availability.COALESCE_S * 0.8  # held back for the interval


async def test_a_new_watcher_never_gets_what_its_snapshot_has() -> None:
    m = mirror()
    early = subscribe(m)
    change(m, 0)
    assert len(await next_update(early)) == 1
    pending = [change(m, 1), change(m, 2)]  # in the outbox, already in the mirror's state
    late = subscribe(m)  # its snapshot is taken at seq 3
    after = change(m, 3)
    assert await next_update(early) == [*pending, after]
    assert await next_update(late) == [after]


async def test_a_slow_reader_gets_the_backlog_batch_by_batch_as_shared() -> None:
    m = mirror()
    slow = subscribe(m)
    keen = subscribe(m)
    shared = []
    for seat in range(3):
        change(m, seat)
        m.flush()
        shared.append(await next_update(keen))
    backlog = [await next_update(slow) for _ in range(3)]
    assert backlog == shared
    # the very lists the keen watcher got: one message per batch serves both
    assert all(mine is theirs for mine, theirs in zip(backlog, shared, strict=True))


async def test_a_watcher_too_far_behind_is_told_to_resync_and_the_others_go_on() -> None:
    m = mirror(seats=availability.WATCH_QUEUE_SIZE + 10)
    slow = subscribe(m)
    keen = subscribe(m)
    await asyncio.sleep(0)  # both subscribed
    for seat in range(availability.WATCH_QUEUE_SIZE + 5):
        change(m, seat)
        m.flush()
        assert await next_update(keen) is not None
    assert await next_update(slow) == Resync("too far behind")


async def test_resync_drops_unsent_changes_and_tells_every_watcher() -> None:
    m = mirror()
    watcher = subscribe(m)
    change(m, 0)
    m.resync("gap in the change stream")  # before the outbox went out: the new state has it
    assert await next_update(watcher) == Resync("gap in the change stream")
    after = change(m, 1)
    assert await next_update(watcher) == [after]
    m.close()


async def test_no_watchers_no_batches() -> None:
    m = mirror()
    change(m, 0)
    assert m.outbox == []


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.integers(0, 3), min_size=1, max_size=30),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["apply", "held", "taken", "replace"]),
            # ordinals, some out of range, some repeated; long lists take the bulk path
            st.one_of(
                st.lists(st.integers(0, 40), max_size=6),
                st.lists(st.integers(0, 40), min_size=65, max_size=90),
            ),
            st.sampled_from(availability.STATE_NAMES),
        ),
        max_size=25,
    ),
)
def test_group_counts_follow_every_change(codes: list[int], steps: list[tuple[str, list[int], str]]) -> None:
    """However the states change, each group's counts equal a recount of the states."""
    seats = len(codes)
    code_array = np.asarray(codes, dtype=np.intp)
    counts = {"g": GroupCounts(code_array, 4)}
    m = EventMirror("ev1", seats, Snapshot(0, np.zeros(seats, dtype=np.int8), {}), counts)
    for kind, ordinals, state in steps:
        in_range = [o for o in ordinals if o < seats]
        if kind == "apply":
            m.apply(Delta(m.seq + 1, state, state, tuple(dict.fromkeys(ordinals)), "", 0))
        elif kind == "held":
            m.mark_held(list(dict.fromkeys(in_range)))
        elif kind == "taken":
            m.mark_taken(ordinals)
        else:
            m.replace(
                Snapshot(m.seq, np.random.default_rng(len(ordinals)).integers(0, 5, seats, dtype=np.int8), {})
            )
        expected = GroupCounts(code_array, 4)
        expected.recount(m.snapshot.states)
        assert m.counts["g"].rows == expected.rows


async def _no_replay(after: int, upto: int) -> list[Delta] | None:
    return None


async def test_after_a_resync_nothing_its_snapshot_has_is_sent_again() -> None:
    """A watcher that stopped reading while one seat toggled 130 times: its queue
    overflowed (resync), and the batches queued behind the resync marker are all
    in the new snapshot, so none of them may follow it."""
    m = mirror()
    watcher = availability.watch(m, 0, _no_replay)
    start = await anext(watcher)
    assert isinstance(start, availability.Fresh)
    assert start.snapshot.seq == 0
    for n in range(130):
        change(m, 0, "held" if n % 2 == 0 else "free")
        m.flush()
    fresh = await asyncio.wait_for(anext(watcher), 1)
    assert isinstance(fresh, availability.Fresh)
    assert fresh.reason == "too far behind"
    assert fresh.snapshot.seq == 130
    assert int(fresh.snapshot.states[0]) == 0  # the 130th change freed it
    after = change(m, 1)
    assert await asyncio.wait_for(anext(watcher), 1) == [after]  # nothing at or below 130


async def test_a_watcher_too_far_behind_in_time_is_resynced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lag hidden in HTTP/2 and socket buffers never fills the queue; the age of the
    next batch still shows it."""
    m = mirror()
    watcher = availability.watch(m, 0, _no_replay)
    await anext(watcher)
    change(m, 0)
    m.flush()
    monkeypatch.setattr(availability, "MAX_LAG_S", -1.0)  # every batch is now too old
    fresh = await asyncio.wait_for(anext(watcher), 1)
    assert isinstance(fresh, availability.Fresh)
    assert fresh.reason == "too far behind"
    assert fresh.snapshot.seq == 1


async def test_a_resuming_watcher_gets_the_missed_changes_then_live_ones() -> None:
    m = mirror()
    missed = [change(m, s) for s in range(3)]  # seq 1..3, before it subscribes

    async def replay(after: int, upto: int) -> list[Delta] | None:
        return [d for d in missed if after < d.seq <= upto]

    watcher = availability.watch(m, 1, replay)
    first = await anext(watcher)
    assert isinstance(first, availability.Replay)
    assert first.deltas == missed[1:]
    live = change(m, 5)
    assert await asyncio.wait_for(anext(watcher), 1) == [live]


async def test_a_watcher_at_the_current_sequence_gets_no_snapshot() -> None:
    m = mirror()
    change(m, 0)
    watcher = availability.watch(m, 1, _no_replay)  # it has everything up to 1
    first = asyncio.ensure_future(anext(watcher))
    await asyncio.sleep(0)  # subscribed (the generator runs up to its wait)
    live = change(m, 1)
    assert await asyncio.wait_for(first, 1) == [live]


def test_ga_changes_carry_their_own_counts() -> None:
    m = EventMirror("ev1", 0, Snapshot(0, np.zeros(0, dtype=np.int8), {"ga": availability.GaCount(10, 0, 0)}))
    m.apply(Delta(seq=1, kind="held", state="held", seats=(), ga_area="ga", ga_qty=2, ga_held=2, ga_sold=0))
    m.apply(Delta(seq=2, kind="sold", state="sold", seats=(), ga_area="ga", ga_qty=2, ga_held=7, ga_sold=2))
    # the recorded counts win over stepping by quantity (here: other changes the mirror never saw)
    assert m.snapshot.ga["ga"] == availability.GaCount(10, 7, 2)


async def test_the_change_stream_records_each_ga_changes_counts(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events, ga_capacity=10)
    first = await stores.inventory.hold(ev.event_id, ga={GA_AREA: 2})
    await stores.inventory.hold(ev.event_id, ga={GA_AREA: 3})
    await stores.inventory.commit(ev.event_id, first.hold_id, "idem-ga", Buyer(name="Ada"))
    deltas = await stores.live.feed.replay(ev.event_id, 0, 3)
    assert deltas is not None
    assert [(d.ga_held, d.ga_sold) for d in deltas] == [(2, 0), (5, 0), (3, 2)]


@pytest.mark.parametrize(
    ("snapshot_at", "delta_seq", "prev", "follows_it"),
    [
        ("100", 6, "100", True),  # the entry written right after the mirror's last
        ("100", 6, "999", False),  # same number, another history: rolled back
        ("100", 7, "100", False),  # a gap
        ("", 6, "999", True),  # a snapshot of a stream written before entries named it
        ("100", 6, "", True),  # an entry written before entries named their predecessor
    ],
)
def test_an_entry_follows_the_mirror_by_number_and_by_history(
    snapshot_at: str, delta_seq: int, prev: str, follows_it: bool
) -> None:
    snap = Snapshot(5, np.zeros(1, dtype=np.int8), {}, snapshot_at)
    delta = availability.Delta(delta_seq, "held", "held", (0,), "", 0, at="200", prev=prev)
    assert availability.follows(snap, delta) is follows_it
