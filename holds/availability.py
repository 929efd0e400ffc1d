"""Live availability of an event, mirrored in each server process.

A mirror starts from one atomic snapshot (``snapshot.lua``) and then follows
the event's change stream (entry ids ``0-<seq>``), so browsing, best-available
search and thousands of ``WatchAvailability`` streams cost no Redis reads per
request: one reader per process feeds them all (``holds/changefeed.py``). The mirror may lag
Redis by a few milliseconds; it is only ever used to *propose* seats, and the
hold script re-checks every seat atomically, so a stale mirror costs a retry,
never a double sale. A watcher whose queue overflows, or a mirror that finds
a gap in the stream (trimmed past its position), resynchronises from a new
snapshot and tells its watchers to do the same.

Changes reach watchers in batches: the mirror collects them for at most
``COALESCE_S`` and hands the *same* list to every watcher, so the server builds
one message per batch however many watch (the event's reply caches keep it).
:func:`watch` is the whole sequence a watcher sees: a snapshot or the changes
it missed, then live batches, a new snapshot after each resync.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from holds import seatvalues
from seatmap.distancing import Neighbourhoods

FREE, HELD, SOLD, BLOCKED, NOT_FOR_SALE = 0, 1, 2, 3, 4
STATE_NAMES = ("free", "held", "sold", "blocked", "not_for_sale")
_STATE_CODE = {name: code for code, name in enumerate(STATE_NAMES)}
_OCCUPIED = (False, True, True, False, False)  # per state code: held or sold (distancing)
# Batches a watcher may have waiting before it must resync (~3 s of a rush).
WATCH_QUEUE_SIZE = 64
COALESCE_S = 0.05  # at most one batch per mirror (so per watcher) per this interval
# A watcher whose next batch is older than this is resynchronised: however its
# lag hides in HTTP/2 and socket buffers, it is never more than this stale.
MAX_LAG_S = 5.0
REPLAY_CHUNK = 500  # changes per item when a resuming watcher catches up
_FEW_SEATS = 64  # changes up to this many seats are applied seat by seat


@dataclass
class GaCount:
    capacity: int
    held: int
    sold: int

    @property
    def available(self) -> int:
        return max(self.capacity - self.held - self.sold, 0)


@dataclass(frozen=True)
class Delta:
    """One change: seats moved to ``state``, or a GA area's held/sold moved."""

    seq: int
    kind: str
    state: str
    seats: tuple[int, ...]
    ga_area: str
    ga_qty: int
    # the area's counts right after this change (None: an entry written before they were recorded)
    ga_held: int | None = None
    ga_sold: int | None = None
    # the stream's identity (the prelude's emit): when this entry was written, and
    # when the one before it was ("" in entries written before they were recorded)
    at: str = ""
    prev: str = ""
    # an allocation change (kind "channel", holds/lua/_channels.lua): ``op`` allocated |
    # returned | reserved | taken; the seats that moved into (or out of) ``channel``, or the
    # area whose places reserved for ``channel`` are now ``reserved``
    op: str = ""
    channel: str = ""
    channel_seats: tuple[int, ...] = ()
    channel_area: str = ""
    reserved: int = 0


@dataclass(frozen=True)
class Resync:
    """The watcher fell behind or the stream had a gap: start from a new snapshot."""

    reason: str


@dataclass(frozen=True)
class Ended:
    """The mirror stopped (its event left this process's memory): the watch ends."""

    reason: str


class Batch(list[Delta]):
    """Consecutive changes, in order; the same list object goes to every watcher.
    ``at``: when the mirror handed it over (the event loop's clock)."""

    at: float = 0.0

    def after(self, seq: int) -> Batch:
        """The changes past ``seq`` (a new list: its message is built for it alone)."""
        cut = Batch(d for d in self if d.seq > seq)
        cut.at = self.at
        return cut


@dataclass
class Allocations:
    """Which channel each seat is allocated to (``codes[ordinal]``: 0 the general pool,
    i the channel ``names[i]``) and each area's places reserved per channel."""

    codes: npt.NDArray[np.int16]
    names: list[str] = field(default_factory=lambda: [""])
    reserved: dict[str, dict[str, int]] = field(default_factory=dict)  # area -> channel -> places

    def code(self, channel: str) -> int:
        """The code of ``channel`` (a new one is added)."""
        try:
            return self.names.index(channel)
        except ValueError:
            self.names.append(channel)
            return len(self.names) - 1

    def copy(self) -> Allocations:
        return Allocations(
            self.codes.copy(), list(self.names), {a: dict(r) for a, r in self.reserved.items()}
        )

    def channel_of(self, ordinal: int) -> str:
        return self.names[int(self.codes[ordinal])]

    def open_to(self, channel: str) -> npt.NDArray[np.bool_]:
        """Seats a request with access to ``channel`` ("": none) may take."""
        if len(self.names) == 1:
            return np.ones(len(self.codes), dtype=np.bool_)
        mask: npt.NDArray[np.bool_] = self.codes == 0
        if channel in self.names[1:]:
            mask |= self.codes == self.names.index(channel)
        return mask

    def counts(self, states: npt.NDArray[np.int8]) -> dict[str, list[int]]:
        """Allocated seats per state of each channel that has any (or reserved places)."""
        out: dict[str, list[int]] = {}
        if len(self.names) > 1:
            rows = count_by_group(self.codes.astype(np.intp), len(self.names), states)
            out = {name: rows[i] for i, name in enumerate(self.names) if i and any(rows[i])}
        for by_channel in self.reserved.values():
            for channel in by_channel:
                out.setdefault(channel, [0] * len(STATE_NAMES))
        return dict(sorted(out.items()))

    def apply(self, delta: Delta, seat_count: int) -> None:
        if delta.channel_area:
            by_channel = self.reserved.setdefault(delta.channel_area, {})
            if delta.reserved > 0:
                by_channel[delta.channel] = delta.reserved
            else:
                by_channel.pop(delta.channel, None)
        seats = [o for o in delta.channel_seats if o < seat_count]
        if seats:
            self.codes[seats] = self.code(delta.channel) if delta.op == "allocated" else 0


@dataclass
class Snapshot:
    seq: int
    states: npt.NDArray[np.int8]
    ga: dict[str, GaCount]
    at: str = ""  # the 'at' of the entry at ``seq``: the next entry's 'prev' must equal it
    channels: Allocations | None = None  # set by decode_snapshot (holds/channels.py)

    @property
    def allocations(self) -> Allocations:
        if self.channels is None:
            self.channels = Allocations(np.zeros(len(self.states), dtype=np.int16))
        return self.channels


def follows(snapshot: Snapshot, delta: Delta) -> bool:
    """Whether ``delta`` was written right after what ``snapshot`` is at, as far as
    the stream says: the next sequence number, and (when both are known) written
    after the very entry the mirror applied last. A replica promoted without some
    entries writes their sequence numbers again: then ``prev`` differs."""
    if delta.seq != snapshot.seq + 1:
        return False
    return not (delta.prev and snapshot.at) or delta.prev == snapshot.at


def decode_snapshot(reply: Any, seat_count: int) -> Snapshot:
    seq, _now, flat, live_holds, ga_flat, _oldest = reply[:6]
    at = reply[6] if len(reply) > 6 else b""
    live = {live_holds[i] for i in range(0, len(live_holds), 2)}
    states = np.zeros(seat_count, dtype=np.int8)
    for i in range(0, len(flat), 2):
        ordinal = int(flat[i])
        if ordinal >= seat_count:
            continue
        state, owner = seatvalues.decode(flat[i + 1])
        if state == "held" and owner not in live:
            continue  # an expired, unpurged hold's seat is free
        states[ordinal] = _STATE_CODE.get(state, FREE)  # a corrupt value reads as free, as before
    ga = {
        ga_flat[i].decode(): GaCount(int(ga_flat[i + 1]), int(ga_flat[i + 2]), int(ga_flat[i + 3]))
        for i in range(0, len(ga_flat), 4)
    }
    channels = Allocations(np.zeros(seat_count, dtype=np.int16))
    if len(reply) > 8:  # the channel keys were passed (holds/lua/snapshot.lua)
        alloc, reserved = reply[7], reply[8]
        for i in range(0, len(alloc), 2):
            ordinal = int(alloc[i])
            if ordinal < seat_count:
                channels.codes[ordinal] = channels.code(_str(alloc[i + 1]))
        for i in range(0, len(reserved), 2):
            area, _, channel = _str(reserved[i]).partition("|")
            channels.reserved.setdefault(area, {})[channel] = int(reserved[i + 1])
    return Snapshot(int(seq), states, ga, _str(at), channels)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Delta:
    seats = fields.get(b"seats", b"")
    chseats = fields.get(b"chseats", b"")
    return Delta(
        seq=int(entry_id.split(b"-")[1]),
        kind=fields.get(b"kind", b"").decode(),
        state=fields.get(b"state", b"").decode(),
        seats=tuple(int(s) for s in seats.split(b",")) if seats else (),
        ga_area=fields.get(b"ga", b"").decode(),
        ga_qty=int(fields.get(b"qty", b"0")),
        ga_held=int(fields[b"held"]) if fields.get(b"held") else None,
        ga_sold=int(fields[b"sold"]) if fields.get(b"sold") else None,
        at=fields.get(b"at", b"").decode(),
        prev=fields.get(b"prev", b"").decode(),
        op=fields.get(b"op", b"").decode(),
        channel=fields.get(b"channel", b"").decode(),
        channel_seats=tuple(int(s) for s in chseats.split(b",")) if chseats else (),
        channel_area=fields.get(b"chga", b"").decode(),
        reserved=int(fields.get(b"resv", b"0")),
    )


def distanced(states: npt.NDArray[np.int8], near: Neighbourhoods | None) -> npt.NDArray[np.bool_]:
    """Free seats within the distancing rule's reach of a held or sold seat: what a new
    buyer may not take (minimum-distance seating; all False without a rule)."""
    if near is None:
        return np.zeros(len(states), dtype=np.bool_)
    blocked: npt.NDArray[np.bool_] = near.blocked((states == HELD) | (states == SOLD)) & (states == FREE)
    return blocked


def count_by_group(codes: npt.NDArray[np.intp], groups: int, states: npt.NDArray[np.int8]) -> list[list[int]]:
    """rows[g][s]: seats of group g (``codes`` per seat) in state s, in one bincount."""
    n = len(STATE_NAMES)
    flat = np.bincount(codes * n + states.astype(np.intp), minlength=groups * n)
    rows: list[list[int]] = flat[: groups * n].reshape(groups, n).tolist()
    return rows


class GroupCounts:
    """Seats per state of each group of seats (each category, each section), kept in
    step with the mirror's states change by change: a browsing crowd reads counts
    of a 90k-seat event without counting 90k seats per request."""

    def __init__(self, codes: npt.NDArray[np.intp], groups: int) -> None:
        self.codes = codes  # the group of each seat
        self._code_of: list[int] = codes.tolist()  # plain ints: a change moves a few seats
        self.groups = groups
        self.rows: list[list[int]] = [[0] * len(STATE_NAMES) for _ in range(groups)]  # [group][state]

    def recount(self, states: npt.NDArray[np.int8]) -> None:
        self.rows = count_by_group(self.codes, self.groups, states)

    def move_one(self, seat: int, old: int, new: int) -> None:
        row = self.rows[self._code_of[seat]]
        row[old] -= 1
        row[new] += 1

    def move(self, seats: npt.NDArray[np.intp], old: npt.NDArray[np.int8], new: int) -> None:
        counts = np.asarray(self.rows, dtype=np.int64)
        groups = self.codes[seats]
        np.subtract.at(counts, (groups, old), 1)
        np.add.at(counts, (groups, np.full(len(seats), new, dtype=np.intp)), 1)
        self.rows = counts.tolist()


@dataclass(frozen=True)
class Fresh:
    """Start (over) from this state; ``reason`` says why when it replaces an earlier one."""

    snapshot: Snapshot
    rows: dict[str, list[list[int]]]  # counts per group and state, by grouping (GroupCounts.rows)
    reason: str = ""


@dataclass(frozen=True)
class Replay:
    """Changes a resuming watcher missed, read back from the stream; ``ga`` as of the last."""

    deltas: list[Delta]
    ga: dict[str, GaCount]


@dataclass
class EventMirror:
    event_id: str
    seat_count: int
    snapshot: Snapshot
    # counts by state per group of seats, by grouping name ("category", "section")
    counts: dict[str, GroupCounts] = field(default_factory=dict)
    watchers: set[asyncio.Queue[Batch | Resync | Ended]] = field(default_factory=set)
    # changes applied but not yet handed to the watchers, and when that happens next
    outbox: list[Delta] = field(default_factory=list)
    _flush_at: asyncio.TimerHandle | None = None
    _flushed_at: float = 0.0
    # Seats this process is trying to hold right now: concurrent best-available
    # searches here skip them instead of all racing for the same block.
    pending: npt.NDArray[np.bool_] = field(init=False)
    # Minimum-distance seating: the event's neighbourhoods (None: no rule) and, per seat,
    # how many of its neighbours are held or sold, kept in step change by change (so a
    # best-available search of a 90k-seat event does not recount them per request).
    near: Neighbourhoods | None = None
    near_count: npt.NDArray[np.int32] | None = None
    # Grows whenever a seat may have become available to a new group (freed, a channel's
    # allocations changed, a new snapshot or distancing rule): best-available's pools
    # (holds/candidates.py) search again only then; seats being taken need no search.
    opened: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.pending = np.zeros(self.seat_count, dtype=np.bool_)
        self.replace(self.snapshot)

    def replace(self, snapshot: Snapshot) -> None:
        """Start over from a new snapshot (at creation and on a resync)."""
        self.snapshot = snapshot  # set_near counts it as opened: anything may have come free
        for counts in self.counts.values():
            counts.recount(snapshot.states)
        self.set_near(self.near)

    def set_near(self, near: Neighbourhoods | None) -> None:
        """Follow a distancing rule's neighbourhoods (None: no rule) from the states now."""
        self.near = near
        self.opened += 1
        if near is None:
            self.near_count = None
            return
        states = self.snapshot.states
        occupied = np.flatnonzero((states == HELD) | (states == SOLD))
        self.near_count = np.bincount(near.around(occupied), minlength=self.seat_count).astype(np.int32)

    def _set(self, seats: Sequence[int], code: int) -> None:
        """Every change of a seat's state goes through here, so the counts follow."""
        states = self.snapshot.states
        if len(seats) <= _FEW_SEATS:  # a hold or a sale: plain Python beats numpy's call overhead
            for seat in set(seats):
                old = int(states[seat])
                if old != code:
                    for counts in self.counts.values():
                        counts.move_one(seat, old, code)
                    if self.near_count is not None and _OCCUPIED[old] != _OCCUPIED[code]:
                        self._count_near_one(seat, _OCCUPIED[code])
                    states[seat] = code
                    if code == FREE:
                        self.opened += 1
            return
        many = np.unique(np.asarray(seats, dtype=np.intp))  # a block of a section, say
        was = states[many]
        moving = was != code
        many, was = many[moving], was[moving]
        for counts in self.counts.values():
            counts.move(many, was, code)
        if self.near_count is not None:
            flips = many[np.array([_OCCUPIED[w] for w in was.tolist()], dtype=np.bool_) != _OCCUPIED[code]]
            self._count_near(flips, _OCCUPIED[code])
        states[many] = code
        if code == FREE:
            self.opened += len(many)

    def _count_near_one(self, seat: int, occupied: bool) -> None:
        """One seat: its neighbours are distinct, so a plain ``+=`` does (a hold's case)."""
        if self.near is not None and self.near_count is not None:
            near = self.near
            self.near_count[near.indices[near.indptr[seat] : near.indptr[seat + 1]]] += 1 if occupied else -1

    def _count_near(self, seats: npt.NDArray[np.intp], occupied: bool) -> None:
        """``seats`` became held or sold (``occupied``), or stopped being: their neighbours' counts move."""
        if self.near is not None and self.near_count is not None:
            np.add.at(self.near_count, self.near.around(seats), 1 if occupied else -1)

    @property
    def seq(self) -> int:
        return self.snapshot.seq

    def free_mask(self, channel: str | None = None) -> npt.NDArray[np.bool_]:
        """Seats a new group may take as far as the mirror knows: free, not being held by
        this process, and not distanced (minimum-distance seating) from a held or sold seat
        or from one being held by this process; with ``channel`` (a channel id, "" none),
        only those a request with that channel's access may take (holds/channels.py)."""
        mask: npt.NDArray[np.bool_] = (self.snapshot.states == FREE) & ~self.pending
        if self.near is not None and self.near_count is not None:
            mask &= self.near_count == 0
            trying = np.flatnonzero(self.pending)
            if len(trying):  # nor next to seats another request here is holding right now
                mask[self.near.around(trying)] = False
        if channel is not None:
            mask &= self.snapshot.allocations.open_to(channel)
        return mask

    def distanced(self) -> npt.NDArray[np.bool_]:
        """:func:`distanced` of the states now (from the kept counts)."""
        states = self.snapshot.states
        if self.near_count is None:
            return np.zeros(len(states), dtype=np.bool_)
        mask: npt.NDArray[np.bool_] = (self.near_count > 0) & (states == FREE)
        return mask

    def mark_held(self, ordinals: list[int]) -> None:
        """Record our own successful hold at once (the change stream confirms it later)."""
        self._set(ordinals, HELD)

    def mark_taken(self, ordinals: list[int]) -> None:
        """Optimistically record seats a hold attempt found taken (the stream confirms later)."""
        states = self.snapshot.states
        self._set([o for o in ordinals if 0 <= o < self.seat_count and states[o] == FREE], HELD)

    def apply(self, delta: Delta) -> None:
        if delta.kind == "channel":
            self.snapshot.allocations.apply(delta, self.seat_count)
            self.opened += 1
        if delta.seats:
            code = _STATE_CODE.get(delta.state, FREE)
            self._set([s for s in delta.seats if s < self.seat_count], code)
        if delta.ga_area:
            counts = self.snapshot.ga.get(delta.ga_area)
            if counts is not None and delta.ga_held is not None and delta.ga_sold is not None:
                counts.held, counts.sold = delta.ga_held, delta.ga_sold
            elif counts is not None:
                if delta.kind == "held":
                    counts.held += delta.ga_qty
                elif delta.kind == "sold":
                    counts.held -= delta.ga_qty
                    counts.sold += delta.ga_qty
                elif delta.kind == "cancelled":
                    counts.sold += delta.ga_qty  # qty is negative
                else:  # released / expired
                    counts.held += delta.ga_qty  # qty is negative
        self.snapshot.seq = delta.seq
        self.snapshot.at = delta.at

    def publish(self, delta: Delta) -> None:
        """Queue an applied change for the watchers: at once when things are quiet,
        else with the others of the next COALESCE_S, one batch for everyone."""
        if not self.watchers:
            return  # a new watcher starts from the mirror's state, which has it
        self.outbox.append(delta)
        if self._flush_at is None:
            loop = asyncio.get_running_loop()
            self._flush_at = loop.call_at(max(loop.time(), self._flushed_at + COALESCE_S), self.flush)

    def flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._flush_at = None
        self._flushed_at = loop.time()
        if self.outbox:
            batch = Batch(self.outbox)
            batch.at = self._flushed_at
            self.outbox = []
            self._offer(batch)

    def resync(self, reason: str) -> None:
        """The mirror's state was replaced: changes not yet sent are in it; watchers start over."""
        self.close()
        self.outbox = []
        self._offer(Resync(reason))

    def end(self, reason: str) -> None:
        """Stop: every watcher's stream ends (it may resume elsewhere from its sequence)."""
        self.close()
        self.outbox = []
        for queue in list(self.watchers):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(Ended(reason))
        self.watchers.clear()

    def copy(self, reason: str = "") -> Fresh:
        """The state now, copied: a watcher's starting point."""
        snap = self.snapshot
        ga = {a: GaCount(c.capacity, c.held, c.sold) for a, c in snap.ga.items()}
        rows = {name: [row[:] for row in counts.rows] for name, counts in self.counts.items()}
        return Fresh(
            Snapshot(snap.seq, snap.states.copy(), ga, snap.at, snap.allocations.copy()), rows, reason
        )

    def _offer(self, item: Batch | Resync) -> None:
        for queue in list(self.watchers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # a slow watcher: drop its backlog and make it resync, never block the others
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(Resync("too far behind"))

    def close(self) -> None:
        """Cancel the pending hand-over to the watchers."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None


def subscribe(mirror: EventMirror) -> AsyncIterator[Batch | Resync | Ended]:
    """Every update after the mirror's current seq, in batches of consecutive deltas.

    The subscription is taken *now*, synchronously: copy the mirror right before
    calling this, with no await in between, and nothing is missed. A watcher gets
    the mirror's batches (at most one per COALESCE_S, the same list for every
    watcher); one that reads slowly gets what piled up, still batch by batch, and
    one that falls ``WATCH_QUEUE_SIZE`` batches behind a Resync.
    """
    queue: asyncio.Queue[Batch | Resync | Ended] = asyncio.Queue(WATCH_QUEUE_SIZE)
    start = mirror.seq  # changes up to here are in the watcher's snapshot
    mirror.watchers.add(queue)

    async def updates() -> AsyncIterator[Batch | Resync | Ended]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Batch) and loop.time() - item.at > MAX_LAG_S:
                    while not queue.empty():  # what piled up is in the new snapshot
                        if isinstance(queue.get_nowait(), Ended):
                            yield Ended("the mirror stopped")
                            return
                    item = Resync("too far behind")
                if isinstance(item, Batch):
                    if item[-1].seq <= start:
                        continue
                    if item[0].seq <= start:  # the first batch may overlap the snapshot
                        item = item.after(start)
                # a backlog is handed over batch by batch, never merged: each
                # list stays the one every watcher has, so its message is
                # built once (merged, a lagging crowd built one each and fell
                # further behind)
                yield item
                if isinstance(item, Ended):
                    return
        finally:
            mirror.watchers.discard(queue)

    return updates()


Replayer = Callable[[int, int], Awaitable[list[Delta] | None]]


async def watch(
    mirror: EventMirror, after: int, replay: Replayer
) -> AsyncIterator[Fresh | Replay | Batch | Ended]:
    """What a watcher resuming after sequence ``after`` (0: a new one) is sent, in order.

    First the changes it missed (``Replay`` chunks, read back from the stream by
    ``replay``) when ``after`` is recent enough, else the state now (``Fresh``),
    unless it already has it; then the live batches; after a resync a ``Fresh``
    with the reason; ``Ended`` last if the mirror stops.
    """
    fresh = mirror.copy()
    updates = subscribe(mirror)  # with no await since the copy: nothing is missed
    missed = await replay(after, fresh.snapshot.seq) if after else None
    if missed:
        for start in range(0, len(missed), REPLAY_CHUNK):
            yield Replay(missed[start : start + REPLAY_CHUNK], fresh.snapshot.ga)
    elif after == 0 or after != fresh.snapshot.seq:  # new, or too far behind: the state now
        yield fresh
    floor = fresh.snapshot.seq  # what the watcher has: never sent again
    async for item in updates:
        if isinstance(item, Resync):
            fresh = mirror.copy(item.reason)
            floor = fresh.snapshot.seq
            yield fresh
        elif isinstance(item, Batch):
            if item[-1].seq <= floor:
                continue  # queued behind a resync whose snapshot has it
            yield item if item[0].seq > floor else item.after(floor)
        else:
            yield item
