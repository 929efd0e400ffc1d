"""One reader of the change streams of every event a process mirrors.

A mirror follows its event's change stream (entry ids ``0-<seq>``). Reading
each stream with a blocking XREAD of its own holds one Redis connection and
one task per event for as long as the process lives; a process that served
thousands of events ran out of file descriptors, and Redis of clients. The
feed reads every followed stream of a process over one connection instead:

- On a single Redis, one blocking ``XREAD ... STREAMS s1 s2 ... id1 id2 ...``
  over a connection of its own (raw replies). When the set of streams
  changes (an event starts or stops being followed, a mirror resynchronised)
  the reader is woken with ``CLIENT UNBLOCK`` and reads again with the new set.
- On a Redis Cluster one XREAD cannot name streams of several slots, and every
  event has a slot of its own, so the feed polls: one pipeline of non-blocking
  XREADs per round over redis-py's cluster connections (one per node), again
  at once after a round that brought changes, else after ``POLL_S``. The same
  applies where no raw channel can be had (TLS).

Entries go to the mirror they belong to, in order. A mirror that sees a gap
(its stream trimmed past its position) or a store outage is resynchronised
from a new snapshot by a task of its own, so the reader never waits on one.

A failover can roll a stream back: a replica promoted without the last
changes writes their sequence numbers again with other contents, and a mirror
that read the lost ones would go on from its old position, checking only that
numbers follow each other. Three things start such a mirror over: every entry
names the entry written before it (``prev``, the prelude's ``emit``), and an
entry that does not follow the one the mirror applied last is a rollback; a
failed read (the primary went away) resyncs every mirror it named; and on a
Redis Cluster, a stream whose slot another primary serves since the last read
(a read that redis-py retried on the promoted replica without failing) is
resynced too, which also covers a mirror that ended exactly at the rolled-back
sequence and would never see another entry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio.cluster import RedisCluster

from holds import keys, metrics
from holds.availability import Delta, EventMirror, decode_entry, decode_snapshot, follows
from holds.inventory import Inventory
from holds.redis_client import AnyRedis, wrap_errors
from holds.script_channel import ScriptChannel, for_client, pack

log = structlog.get_logger("seatwise.changefeed")

READ_BLOCK_MS = 1000
READ_COUNT = 500  # entries per stream per read
READ_GRACE_S = 5.0  # a read overdue by this much is treated as a dead connection
POLL_S = 0.02  # the pause between polling rounds that brought nothing (Cluster, TLS)
RETRY_S = 0.5  # the pause after a failed read
MAX_REPLAY = 10_000  # changes a resuming watcher is sent instead of a new snapshot
LAYOUT_KIND = "layout"  # the entry of a move to another seat-map version (holds/lua/remap.lua)

Entry = tuple[bytes, dict[bytes, bytes]]


class ChangeFeed:
    """The change streams of the mirrors one process follows, read over one connection."""

    def __init__(self, client: AnyRedis, inventory: Inventory) -> None:
        self._r = client
        self._inventory = inventory
        self._mirrors: dict[str, EventMirror] = {}  # stream key -> mirror
        self._resyncing: dict[str, asyncio.Task[None]] = {}  # stream key -> its resync
        self._changed = asyncio.Event()  # the set of streams to read changed
        self._reader_id: int | None = None  # CLIENT ID of the blocked reader (single Redis)
        self._reading: frozenset[str] = frozenset()  # the streams the read in flight names
        self._task: asyncio.Task[None] | None = None
        self._waking: asyncio.Task[None] | None = None  # at most one wake at a time
        self._served_by: dict[str, str] = {}  # stream key -> the primary last read from (Cluster)
        # told the event id of a stream with a 'layout' entry (the event moved to another
        # seat-map version, holds/lua/remap.lua): its mirror's ordinals are void from there on
        self.on_layout: Callable[[str], None] | None = None
        self.rounds = 0  # reads made: for tests and benchmarks

    # -- who is followed ------------------------------------------------------
    def follow(self, mirror: EventMirror) -> None:
        """Read ``mirror``'s stream from its current sequence on."""
        self._mirrors[keys.event_key(mirror.event_id, "changes")] = mirror
        self._streams_changed()

    def unfollow(self, event_id: str) -> None:
        stream = keys.event_key(event_id, "changes")
        self._mirrors.pop(stream, None)
        self._served_by.pop(stream, None)
        task = self._resyncing.pop(stream, None)
        if task is not None:
            task.cancel()
        self._streams_changed()

    def __len__(self) -> int:
        return len(self._mirrors)

    def _streams_changed(self) -> None:
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="changefeed")
        elif self._reader_id is not None and self._reading != self._wanted():
            self._wake_reader(self._reader_id)

    def _wanted(self) -> frozenset[str]:
        return frozenset(s for s in self._mirrors if s not in self._resyncing)

    def _wake_reader(self, reader_id: int) -> None:
        if self._waking is None or self._waking.done():
            self._waking = asyncio.create_task(self._wake(reader_id))

    async def _wake(self, reader_id: int) -> None:
        """End the reader's blocking XREAD early so it reads the new set of streams.
        The read may not have reached Redis yet (then UNBLOCK finds nothing to end):
        try a few times while that read is still the one in flight."""
        for _ in range(5):
            try:
                if await self._r.client_unblock(reader_id):
                    return
            except Exception:  # the reader's connection is gone: it reconnects anyway
                return
            await asyncio.sleep(0.005)
            if self._reader_id != reader_id or self._reading == self._wanted():
                return

    # -- reading --------------------------------------------------------------
    async def _run(self) -> None:
        channel = for_client(self._r)
        reader = channel if isinstance(channel, ScriptChannel) else None
        try:
            while True:
                wanted = self._wanted()
                if not wanted:
                    self._changed.clear()
                    if not self._mirrors:
                        return  # nobody to follow: the task ends, a new follow starts one
                    await self._changed.wait()
                    continue
                self._changed.clear()
                positions = {s: self._mirrors[s].seq for s in wanted}
                try:
                    async with wrap_errors("follow changes"):
                        if reader is not None:
                            replies = await self._read_blocking(reader, positions)
                        else:
                            replies = await self._poll(positions)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis away: keep the last state, resync when back
                    log.warning("changefeed.read_failed", streams=len(positions), error=str(exc))
                    await asyncio.sleep(RETRY_S)
                    for stream in positions:
                        self._resync(stream, "store was unavailable")
                    continue
                self.rounds += 1
                if reader is None:
                    self._check_primaries(positions, replies)
                for stream, entries in replies.items():
                    self._deliver(stream, entries)
                if reader is None and not replies and not self._changed.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), POLL_S)
        finally:
            self._reader_id = None
            if reader is not None:
                await reader.aclose()

    async def _read_blocking(
        self, reader: ScriptChannel, positions: dict[str, int]
    ) -> dict[str, list[Entry]]:
        streams = list(positions)
        command = pack(
            ("XREAD", "COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS, "STREAMS", *streams,
             *(f"0-{positions[s]}" for s in streams))
        )  # fmt: skip
        # CLIENT ID goes out in the same write as the XREAD, so its reply (which
        # comes first) names the connection that is about to block
        ident = asyncio.ensure_future(reader.execute(pack(("CLIENT", "ID"))))
        read = asyncio.ensure_future(reader.execute(command))
        self._reading = frozenset(streams)
        try:
            async with asyncio.timeout(READ_BLOCK_MS / 1000 + READ_GRACE_S):
                self._reader_id = int(await ident)
                if self._reading != self._wanted():  # changed while the read went out
                    self._wake_reader(self._reader_id)
                raw = await read  # None, or [[stream, [[id, [field, value, ...]], ...]], ...]
        finally:
            self._reader_id = None
            self._reading = frozenset()
            for future in (ident, read):
                future.cancel()
        return {
            stream.decode(): [
                (entry_id, dict(zip(flat[0::2], flat[1::2], strict=True))) for entry_id, flat in entries
            ]
            for stream, entries in raw or ()
        }

    async def _poll(self, positions: dict[str, int]) -> dict[str, list[Entry]]:
        async with self._r.pipeline(transaction=False) as pipe:  # streams live in many slots
            for stream, after in positions.items():
                pipe.xread({stream: f"0-{after}"}, count=READ_COUNT)
            replies: list[Any] = await pipe.execute()
        out: dict[str, list[Entry]] = {}
        for reply in replies:
            for stream, entries in reply or ():
                name = stream.decode() if isinstance(stream, bytes) else str(stream)
                out[name] = [(entry_id, fields) for entry_id, fields in entries]
        return out

    def _check_primaries(self, positions: dict[str, int], replies: dict[str, list[Entry]]) -> None:
        """On a Redis Cluster: resync each stream whose slot another primary serves than
        at its last read (a failover), dropping what was just read of it."""
        if not isinstance(self._r, RedisCluster):
            return
        for stream in positions:
            node = self._r.get_node_from_key(stream)
            now = node.name if node is not None else ""
            before = self._served_by.get(stream)
            self._served_by[stream] = now
            if before is not None and before != now:
                replies.pop(stream, None)
                self._resync(stream, "another primary serves the event (failover)")

    def _deliver(self, stream: str, entries: list[Entry]) -> None:
        mirror = self._mirrors.get(stream)
        if mirror is None or stream in self._resyncing:
            return  # no longer followed, or starting over from a snapshot
        applied: Delta | None = None
        for entry_id, fields in entries:
            delta = decode_entry(entry_id, fields)
            if delta.seq <= mirror.seq:
                continue  # read from a position the mirror has since passed (a resync)
            if not follows(mirror.snapshot, delta):
                gap = delta.seq != mirror.seq + 1
                self._resync(
                    stream, "gap in the change stream" if gap else "the change stream was rolled back"
                )
                return
            if delta.kind == LAYOUT_KIND:  # the ordinals after it are another seat map's
                if self.on_layout is not None:
                    self.on_layout(mirror.event_id)
                else:
                    self._resync(stream, "the event moved to another seat-map version")
                return
            mirror.apply(delta)
            mirror.publish(delta)
            applied = delta
        if applied is not None:  # how far behind Redis the mirror was, once per stream per read
            metrics.mirror_applied(applied.at)

    # -- starting over --------------------------------------------------------
    def _resync(self, stream: str, reason: str) -> None:
        mirror = self._mirrors.get(stream)
        if mirror is None or stream in self._resyncing:
            return
        self._resyncing[stream] = asyncio.create_task(self._resync_from_snapshot(stream, mirror, reason))

    async def _resync_from_snapshot(self, stream: str, mirror: EventMirror, reason: str) -> None:
        try:
            while True:
                try:
                    snapshot = decode_snapshot(
                        await self._inventory.snapshot(mirror.event_id), mirror.seat_count
                    )
                    break
                except Exception as exc:
                    log.warning("changefeed.resync_failed", event_id=mirror.event_id, error=str(exc))
                    await asyncio.sleep(RETRY_S)
            mirror.replace(snapshot)
            mirror.resync(reason)
            metrics.mirror_resynced(reason)
        finally:
            if self._resyncing.get(stream) is asyncio.current_task():
                del self._resyncing[stream]
                self._streams_changed()

    # -- reading the past -----------------------------------------------------
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
        if any(d.kind == LAYOUT_KIND for d in deltas):
            return None  # ordinals of two seat-map versions: the watcher starts from a snapshot
        return deltas

    async def close(self) -> None:
        self._mirrors.clear()
        tasks = [*self._resyncing.values(), *(t for t in (self._task, self._waking) if t is not None)]
        self._resyncing.clear()
        for task in tasks:
            # a cancel that lands as redis-py's write completes can be swallowed
            # (Python 3.11's wait_for): cancel until the task is done
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.2)
        self._task = None
