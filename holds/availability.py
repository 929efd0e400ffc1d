"""Live availability of an event, mirrored in each server process.

A mirror starts from one atomic snapshot (``snapshot.lua``) and then follows
the event's change stream (entry ids ``0-<seq>``), so browsing, best-available
search and thousands of ``WatchAvailability`` streams cost no Redis reads per
request: one XREAD per event per process feeds them all. The mirror may lag
Redis by a few milliseconds; it is only ever used to *propose* seats, and the
hold script re-checks every seat atomically, so a stale mirror costs a retry,
never a double sale. A watcher whose queue overflows, or a mirror that finds
a gap in the stream (trimmed past its position), resynchronises from a new
snapshot and tells its watchers to do the same.

Changes reach watchers in batches: the mirror collects them for at most
``COALESCE_S`` and hands the *same* list to every watcher, so the server builds
one message per batch however many watch (``server/servicers/events.py``
caches it by the batch).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from holds import keys, seatvalues
from holds.inventory import Inventory
from holds.redis_client import AnyRedis, wrap_errors
from holds.script_channel import ScriptChannel, for_client, pack

log = structlog.get_logger("seatwise.availability")

FREE, HELD, SOLD, BLOCKED, NOT_FOR_SALE = 0, 1, 2, 3, 4
STATE_NAMES = ("free", "held", "sold", "blocked", "not_for_sale")
_STATE_CODE = {name: code for code, name in enumerate(STATE_NAMES)}
# Batches a watcher may have waiting before it must resync (~3 s of a rush).
WATCH_QUEUE_SIZE = 64
COALESCE_S = 0.05  # at most one batch per mirror (so per watcher) per this interval
MAX_REPLAY = 10_000  # changes a resuming watcher is sent instead of a new snapshot
READ_BLOCK_MS = 1000
READ_COUNT = 500
READ_GRACE_S = 5.0
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


@dataclass(frozen=True)
class Resync:
    """The watcher fell behind or the stream had a gap: start from a new snapshot."""

    reason: str


# Consecutive changes, in order; the same list object goes to every watcher.
Batch = list[Delta]


@dataclass
class Snapshot:
    seq: int
    states: npt.NDArray[np.int8]
    ga: dict[str, GaCount]


def decode_snapshot(reply: Any, seat_count: int) -> Snapshot:
    seq, _now, flat, live_holds, ga_flat, _oldest = reply
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
    return Snapshot(int(seq), states, ga)


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Delta:
    seats = fields.get(b"seats", b"")
    return Delta(
        seq=int(entry_id.split(b"-")[1]),
        kind=fields.get(b"kind", b"").decode(),
        state=fields.get(b"state", b"").decode(),
        seats=tuple(int(s) for s in seats.split(b",")) if seats else (),
        ga_area=fields.get(b"ga", b"").decode(),
        ga_qty=int(fields.get(b"qty", b"0")),
    )


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


@dataclass
class EventMirror:
    event_id: str
    seat_count: int
    snapshot: Snapshot
    # counts by state per group of seats, by grouping name ("category", "section")
    counts: dict[str, GroupCounts] = field(default_factory=dict)
    watchers: set[asyncio.Queue[Batch | Resync]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    # changes applied but not yet handed to the watchers, and when that happens next
    outbox: list[Delta] = field(default_factory=list)
    _flush_at: asyncio.TimerHandle | None = None
    _flushed_at: float = 0.0
    # Seats this process is trying to hold right now: concurrent best-available
    # searches here skip them instead of all racing for the same block.
    pending: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.pending = np.zeros(self.seat_count, dtype=np.bool_)
        self.replace(self.snapshot)

    def replace(self, snapshot: Snapshot) -> None:
        """Start over from a new snapshot (at creation and on a resync)."""
        self.snapshot = snapshot
        for counts in self.counts.values():
            counts.recount(snapshot.states)

    def _set(self, seats: Sequence[int], code: int) -> None:
        """Every change of a seat's state goes through here, so the counts follow."""
        states = self.snapshot.states
        if len(seats) <= _FEW_SEATS:  # a hold or a sale: plain Python beats numpy's call overhead
            for seat in set(seats):
                old = int(states[seat])
                if old != code:
                    for counts in self.counts.values():
                        counts.move_one(seat, old, code)
                    states[seat] = code
            return
        many = np.unique(np.asarray(seats, dtype=np.intp))  # a block of a section, say
        was = states[many]
        moving = was != code
        many, was = many[moving], was[moving]
        for counts in self.counts.values():
            counts.move(many, was, code)
        states[many] = code

    @property
    def seq(self) -> int:
        return self.snapshot.seq

    def free_mask(self) -> npt.NDArray[np.bool_]:
        mask: npt.NDArray[np.bool_] = (self.snapshot.states == FREE) & ~self.pending
        return mask

    def mark_held(self, ordinals: list[int]) -> None:
        """Record our own successful hold at once (the change stream confirms it later)."""
        self._set(ordinals, HELD)

    def mark_taken(self, ordinals: list[int]) -> None:
        """Optimistically record seats a hold attempt found taken (the stream confirms later)."""
        states = self.snapshot.states
        self._set([o for o in ordinals if 0 <= o < self.seat_count and states[o] == FREE], HELD)

    def apply(self, delta: Delta) -> None:
        if delta.seats:
            code = _STATE_CODE.get(delta.state, FREE)
            self._set([s for s in delta.seats if s < self.seat_count], code)
        if delta.ga_area:
            counts = self.snapshot.ga.get(delta.ga_area)
            if counts is not None:
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
        self._flush_at = None
        self._flushed_at = asyncio.get_running_loop().time()
        batch, self.outbox = self.outbox, []
        if batch:
            self._offer(batch)

    def resync(self, reason: str) -> None:
        """The mirror's state was replaced: changes not yet sent are in it; watchers start over."""
        self.close()
        self.outbox = []
        self._offer(Resync(reason))

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


class AvailabilityMirrors:
    """The mirrors of one server process, one per event in use, created on demand."""

    def __init__(self, client: AnyRedis, inventory: Inventory) -> None:
        self._r = client
        self._inventory = inventory
        self._mirrors: dict[str, EventMirror] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(
        self,
        event_id: str,
        seat_count: int,
        groups: Mapping[str, tuple[npt.NDArray[np.intp], int]] | None = None,
    ) -> EventMirror:
        """The event's mirror, created on first use; ``groups`` names groupings of the
        seats (each a group code per seat and the number of groups) to keep counts of."""
        mirror = self._mirrors.get(event_id)
        if mirror is not None and mirror.task is not None and not mirror.task.done():
            return mirror
        lock = self._locks.setdefault(event_id, asyncio.Lock())
        async with lock:
            mirror = self._mirrors.get(event_id)
            if mirror is None or mirror.task is None or mirror.task.done():
                snapshot = decode_snapshot(await self._inventory.snapshot(event_id), seat_count)
                counts = {name: GroupCounts(codes, n) for name, (codes, n) in (groups or {}).items()}
                mirror = EventMirror(event_id, seat_count, snapshot, counts)
                mirror.task = asyncio.create_task(self._follow(mirror), name=f"mirror:{event_id}")
                self._mirrors[event_id] = mirror
        return mirror

    async def fresh_snapshot(self, event_id: str, seat_count: int) -> Snapshot:
        return decode_snapshot(await self._inventory.snapshot(event_id), seat_count)

    async def _follow(self, mirror: EventMirror) -> None:
        stream = keys.event_key(mirror.event_id, "changes")
        this = asyncio.current_task()
        # A blocking XREAD holds its connection, so each mirror reads over one of its
        # own: a channel on a single Redis (raw replies, none of redis-py's per-entry
        # parsing), redis-py's client on a Cluster.
        channel = for_client(self._r)
        reader = channel if isinstance(channel, ScriptChannel) else None  # not a ClusterChannels
        try:
            while True:
                # Python 3.11's asyncio.wait_for (redis-py's send path) can swallow a
                # cancel that lands as the write completes: the request stays pending
                # on the task, so honour it here or close() would wait forever.
                if this is not None and this.cancelling():
                    raise asyncio.CancelledError
                try:
                    # the client has no per-read socket timeout (RPCs carry deadlines): bound it here
                    async with (
                        asyncio.timeout(READ_BLOCK_MS / 1000 + READ_GRACE_S),
                        wrap_errors("follow changes"),
                    ):
                        entries = await self._read(reader, stream, mirror.seq)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis away: keep the last state, retry, resync after
                    log.warning("mirror.read_failed", event_id=mirror.event_id, error=str(exc))
                    await asyncio.sleep(0.5)
                    await self._resync(mirror, "store was unavailable")
                    continue
                for entry_id, fields in entries:
                    delta = decode_entry(entry_id, fields)
                    if delta.seq != mirror.seq + 1:
                        await self._resync(mirror, "gap in the change stream")
                        break
                    mirror.apply(delta)
                    mirror.publish(delta)
        finally:
            if reader is not None:
                await reader.aclose()

    async def _read(
        self, reader: ScriptChannel | None, stream: str, after: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """The stream's entries after ``0-<after>`` (at most READ_COUNT), or none within READ_BLOCK_MS."""
        if reader is None:
            reply = await self._r.xread({stream: f"0-{after}"}, count=READ_COUNT, block=READ_BLOCK_MS)
            return [(entry_id, fields) for _s, entries in reply or () for entry_id, fields in entries]
        command = pack(
            ("XREAD", "COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS, "STREAMS", stream, f"0-{after}")
        )
        raw = await reader.execute(command)  # None, or [[stream, [[id, [field, value, ...]], ...]]]
        return [
            (entry_id, dict(zip(flat[0::2], flat[1::2], strict=True)))
            for _s, entries in raw or ()
            for entry_id, flat in entries
        ]

    async def _resync(self, mirror: EventMirror, reason: str) -> None:
        with contextlib.suppress(Exception):
            mirror.replace(
                decode_snapshot(await self._inventory.snapshot(mirror.event_id), mirror.seat_count)
            )
            mirror.resync(reason)

    @staticmethod
    def watch_from(mirror: EventMirror) -> AsyncIterator[Batch | Resync]:
        """Every update after the mirror's current seq, in batches of consecutive deltas.

        The subscription is taken *now*, synchronously: copy ``mirror.snapshot``
        right before calling this, with no await in between, and nothing is missed.
        A watcher gets the mirror's batches (at most one per COALESCE_S, the same
        list for every watcher); one that reads slowly gets what piled up, still
        batch by batch, and one that falls ``WATCH_QUEUE_SIZE`` batches behind a Resync.
        """
        queue: asyncio.Queue[Batch | Resync] = asyncio.Queue(WATCH_QUEUE_SIZE)
        start = mirror.seq  # changes up to here are in the watcher's snapshot
        mirror.watchers.add(queue)

        async def updates() -> AsyncIterator[Batch | Resync]:
            try:
                while True:
                    item = await queue.get()
                    if not isinstance(item, Resync):
                        if item[-1].seq <= start:
                            continue
                        if item[0].seq <= start:  # the first batch may overlap the snapshot
                            item = [d for d in item if d.seq > start]
                    # a backlog is handed over batch by batch, never merged: each
                    # list stays the one every watcher has, so its message is
                    # built once (merged, a lagging crowd built one each and fell
                    # further behind)
                    yield item
            finally:
                mirror.watchers.discard(queue)

        return updates()

    async def replay(self, event_id: str, after: int, upto: int) -> list[Delta] | None:
        """The changes after ``after`` up to ``upto`` from the stream, or None when they
        are no longer all there (trimmed) or too many to be worth replaying."""
        if not 0 <= after < upto or upto - after > MAX_REPLAY:
            return None
        stream = keys.event_key(event_id, "changes")
        async with wrap_errors("replay changes"):
            entries = await self._r.xrange(stream, min=f"0-{after + 1}", max=f"0-{upto}", count=upto - after)
        deltas = [decode_entry(entry_id, fields) for entry_id, fields in entries]
        if [d.seq for d in deltas] != list(range(after + 1, upto + 1)):
            return None
        return deltas

    async def close(self) -> None:
        for mirror in self._mirrors.values():
            mirror.close()
            if mirror.task is not None:
                mirror.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await mirror.task
        self._mirrors.clear()
