"""How a mirror hands its changes to watchers: one shared batch per interval,
nothing a watcher's snapshot already has, resync for the slow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from holds import availability
from holds.availability import Batch, Delta, Ended, EventMirror, GroupCounts, Resync, Snapshot, subscribe

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
