"""Everything a server process keeps in memory about one event, with one lifecycle.

A :class:`LiveEvent` owns what a process knows about an event it serves: the
fixed facts (tenant, seat-map version, currency: a move to another seat-map
version drops the live event, holds/remap.py), the decoded
seat map and its index, the availability mirror (created on first need), the
best-available candidate pools and the server's reply caches. They are
obtained from one place, :class:`LiveEvents`, and evicted together: the least
recently used one when more than ``capacity`` are live, and any that nobody
used for ``idle_s`` (unless someone watches it). An evicted event stops being
followed, its watchers' streams end (they resume anywhere from their sequence),
and the next call loads it afresh, so a process that serves years of events
holds the memory and connections of the ones in use, not of every one it met.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

from holds.availability import EventMirror, GroupCounts, decode_snapshot
from holds.candidates import CandidatePools
from holds.changefeed import ChangeFeed
from holds.distancing import script_args
from holds.errors import InvalidRequest, NotFound, StoreError
from holds.events import EventRef, EventStore
from holds.inventory import Inventory
from holds.redis_client import AnyRedis
from holds.script_channel import EncodableArg
from holds.seatmaps import LoadedSeatMap, SeatMapStore
from seatmap.distancing import DistancingRule, InvalidRule, Neighbourhoods, neighbourhoods

DEFAULT_CAPACITY = 1_000  # live events per process
DEFAULT_IDLE_S = 15 * 60.0  # unused this long (and unwatched): evicted
MAX_EVENT_ID = 64


@dataclass(eq=False)
class LiveEvent:
    ref: EventRef
    loaded: LoadedSeatMap
    pools: CandidatePools = field(default_factory=CandidatePools)
    # the server layer's caches of built replies (availability, watch batches):
    # theirs to fill, evicted with the event
    replies: dict[str, Any] = field(default_factory=dict)
    mirror: EventMirror | None = None
    last_used: float = field(default_factory=time.monotonic)
    evicted: bool = False
    # the minimum-distance rule as this process last learnt it (canonical text, "": none)
    # and its neighbourhoods: read with the event, learnt again from this process's
    # UpdateEvent and from a hold script that answers "rule changed" (holds/distancing.py)
    _distancing: str = ""
    _near: Neighbourhoods | None = None
    _mirror_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def event_id(self) -> str:
        return self.ref.event_id

    @property
    def distancing(self) -> str:
        return self._distancing

    def near(self) -> Neighbourhoods | None:
        """Every seat's neighbours under the event's distancing rule (None: no rule)."""
        return self._near

    async def learn(self, rule: str) -> None:
        """Follow the distancing rule ``rule`` (canonical text). Its neighbourhoods are
        computed in a thread, once per rule: a rule in metres over a stadium costs about a
        second of CPU (docs/selling.md), which the event loop must not wait for."""
        if rule == self._distancing:
            return
        near = None
        if rule:
            try:
                parsed = DistancingRule.parse(rule)
            except InvalidRule as exc:
                raise StoreError(f"event {self.event_id} has a distancing rule it cannot read") from exc
            near = await asyncio.to_thread(neighbourhoods, self.loaded.index, parsed)
        self._distancing, self._near = rule, near
        if self.mirror is not None:
            self.mirror.set_near(near)

    def distancing_args(self, ordinals: list[int]) -> list[EncodableArg]:
        """What a seat-taking script is told of the rule for ``ordinals``."""
        return script_args(self._distancing, self._near, ordinals)

    @property
    def watched(self) -> bool:
        return self.mirror is not None and bool(self.mirror.watchers)


class _Evicting(LRUCache[str, LiveEvent]):
    """An LRU cache that retires what it evicts for size (cachetools' documented hook)."""

    def __init__(self, maxsize: int, retire: Any) -> None:
        super().__init__(maxsize)
        self._retire = retire

    def popitem(self) -> tuple[str, LiveEvent]:
        key, live = super().popitem()
        self._retire(live, "evicted: too many events live in this process")
        return key, live


class LiveEvents:
    """The live events of one process, loaded on demand and evicted as units."""

    def __init__(
        self,
        client: AnyRedis,
        events: EventStore,
        seatmaps: SeatMapStore,
        inventory: Inventory,
        *,
        capacity: int = DEFAULT_CAPACITY,
        idle_s: float = DEFAULT_IDLE_S,
    ) -> None:
        self._events = events
        self._seatmaps = seatmaps
        self._inventory = inventory
        self.feed = ChangeFeed(client, inventory)
        # an event moved to another seat-map version (holds/remap.py) is dropped and loaded
        # afresh: told by its change stream ('layout' entry) when this process follows it,
        # else by the first fenced script that refuses this process's ordinals
        self.feed.on_layout = self.forget
        inventory.on_seat_map_moved.append(self.forget)
        self._live = _Evicting(capacity, self._retire)
        self._loading: dict[str, asyncio.Future[LiveEvent]] = {}
        self.idle_s = idle_s
        self.loads = 0  # events loaded (again): for tests and benchmarks

    def __len__(self) -> int:
        return len(self._live)

    def event_ids(self) -> list[str]:
        return list(self._live.keys())

    async def get(self, tenant_id: str, event_id: str) -> LiveEvent:
        """The live event, if it belongs to ``tenant_id`` (else NotFound: no probing)."""
        live = self._live.get(event_id)
        if live is None:
            if not event_id:
                raise InvalidRequest("event_id", "required")
            if len(event_id) > MAX_EVENT_ID:
                raise NotFound("event", event_id[:MAX_EVENT_ID])
            live = await self._load(event_id)
        if live.ref.tenant_id != tenant_id:
            raise NotFound("event", event_id)
        live.last_used = time.monotonic()
        return live

    async def _load(self, event_id: str) -> LiveEvent:
        """Loaded once however many calls ask at the same time."""
        loading = self._loading.get(event_id)
        if loading is None:
            loading = self._loading[event_id] = asyncio.ensure_future(self._read(event_id))
            loading.add_done_callback(lambda _f: self._loading.pop(event_id, None))
        return await asyncio.shield(loading)

    async def _read(self, event_id: str) -> LiveEvent:
        ref = await self._events.read_ref(event_id)
        loaded = await self._seatmaps.load(ref.tenant_id, ref.seat_map_id, ref.seat_map_version)
        live = LiveEvent(ref, loaded)
        await live.learn(await self._events.read_distancing(event_id))
        self._live[event_id] = live  # may evict the least recently used
        self.loads += 1
        return live

    async def mirror(self, live: LiveEvent) -> EventMirror:
        """The event's availability mirror, started on first use."""
        if live.mirror is not None:
            return live.mirror
        if live.evicted:  # a call that began before the eviction: use the event's new life
            live = await self.get(live.ref.tenant_id, live.event_id)
        async with live._mirror_lock:
            if live.mirror is None:
                index = live.loaded.index
                seats = len(index)
                snapshot = decode_snapshot(await self._inventory.snapshot(live.event_id), seats)
                counts = {
                    "category": GroupCounts(index.category_code, len(index.category_keys)),
                    "section": GroupCounts(index.section_code, len(index.section_ids)),
                }
                mirror = EventMirror(live.event_id, seats, snapshot, counts)
                mirror.set_near(live.near())
                if live.evicted:
                    return mirror  # evicted while the snapshot was read: serve this call only
                live.mirror = mirror
                self.feed.follow(mirror)
        return live.mirror

    def evict_idle(self, now: float | None = None) -> int:
        """Evict the events unused for ``idle_s`` that nobody watches; how many went."""
        cutoff = (time.monotonic() if now is None else now) - self.idle_s
        idle = [eid for eid, live in self._live.items() if live.last_used < cutoff and not live.watched]
        for event_id in idle:
            live = self._live.pop(event_id)
            self._retire(live, "evicted: idle")
        return len(idle)

    def forget(self, event_id: str, reason: str = "the event moved to another seat-map version") -> None:
        """Drop the event (its facts, seat map, mirror, pools, reply caches): the next call
        loads it afresh; its watchers' streams end and resume with a new snapshot."""
        live = self._live.pop(event_id, None)
        if live is not None:
            self._retire(live, reason)

    def _retire(self, live: LiveEvent, reason: str) -> None:
        live.evicted = True
        if live.mirror is not None:
            self.feed.unfollow(live.event_id)
            live.mirror.end(reason)
        live.replies.clear()

    async def close(self) -> None:
        for event_id in list(self._live.keys()):
            self._retire(self._live.pop(event_id), "server stopping")
        await self.feed.close()
