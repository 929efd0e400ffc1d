"""The seat-map catalogue of each tenant: immutable versions, drafts and published.

Every upload stores a new version (content as msgpack, plus a small JSON
record). Content never changes after it is written, so decoded maps and their
spatial indexes are cached per process by (tenant, map, version).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import time
from dataclasses import dataclass

import msgspec
from cachetools import LRUCache

from holds import keys
from holds.errors import AlreadyExists, InvalidRequest, NotFound, PreconditionFailed, StoreError
from holds.ids import check_client_id, new_id
from holds.records import SeatMapStats, SeatMapVersion
from holds.records import json_encoder as record_encoder
from holds.records import seatmap_version_decoder as _record_decoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from seatmap.index import SeatIndex
from seatmap.model import SeatMap, json_encoder, msgpack_decoder, msgpack_encoder

MAX_VERSIONS_PER_MAP = 1000
LOAD_BUDGET_S = 30.0


INT64_MAX = 2**63 - 1


def stats_of(seatmap: SeatMap) -> SeatMapStats:
    """Counts of a map, valid or not (``ValidateSeatMap`` reports them for invalid
    maps too): the GA capacity counts no negative area and saturates at int64."""
    rows = sum(len(s.rows) for s in seatmap.sections)
    tables = sum(len(s.tables) for s in seatmap.sections)
    seats = sum(len(r.seats) for s in seatmap.sections for r in s.rows) + sum(
        len(t.seats) for s in seatmap.sections for t in s.tables
    )
    return SeatMapStats(
        seat_count=seats,
        section_count=len(seatmap.sections),
        row_count=rows,
        table_count=tables,
        ga_area_count=len(seatmap.ga_areas),
        ga_capacity=min(sum(max(a.capacity, 0) for a in seatmap.ga_areas), INT64_MAX),
        categories=[c.key for c in seatmap.categories],
    )


class PreparedSeatMap(msgspec.Struct, frozen=True):
    """A validated map ready to store: what the catalogue keeps of it, encoded."""

    name: str
    stats: SeatMapStats
    content_sha256: str  # of the native JSON, as GetSeatMap returns it
    content: bytes  # msgpack, as stored


def prepare(seatmap: SeatMap) -> PreparedSeatMap:
    """Everything ``put_prepared`` stores, computed from the map (pure, CPU only)."""
    return PreparedSeatMap(
        name=seatmap.name,
        stats=stats_of(seatmap),
        content_sha256=hashlib.sha256(json_encoder.encode(seatmap)).hexdigest(),
        content=msgpack_encoder.encode(seatmap),
    )


@dataclass(frozen=True)
class LoadedSeatMap:
    """A decoded version with its spatial index, shared by every request."""

    version: SeatMapVersion
    seatmap: SeatMap
    index: SeatIndex


def _decode_and_index(record: SeatMapVersion, raw: bytes) -> LoadedSeatMap:
    seatmap = msgpack_decoder.decode(raw)
    return LoadedSeatMap(record, seatmap, SeatIndex(seatmap))


class SeatMapStore:
    def __init__(self, client: AnyRedis, scripts: ScriptRegistry, *, cache_size: int = 16) -> None:
        self._r = client
        self._scripts = scripts
        # decoded versions by (tenant, map, version); a live event keeps its own alive
        self._cache: LRUCache[tuple[str, str, int], LoadedSeatMap] = LRUCache(cache_size)
        self._loading: dict[tuple[str, str, int], asyncio.Future[LoadedSeatMap]] = {}

    async def put(self, tenant_id: str, seat_map_id: str, seatmap: SeatMap) -> SeatMapVersion:
        """Store ``seatmap`` (already validated) as a new draft version."""
        return await self.put_prepared(tenant_id, seat_map_id, prepare(seatmap))

    async def put_prepared(
        self, tenant_id: str, seat_map_id: str, prepared: PreparedSeatMap
    ) -> SeatMapVersion:
        """Store a validated map encoded by :func:`prepare` (in the server's process
        pool: encoding a stadium is CPU the event loop must not spend) as a new draft."""
        is_new = not seat_map_id
        seat_map_id = new_id("sm_", 6) if is_new else check_client_id("seat_map_id", seat_map_id)
        now_ms = int(time.time() * 1000)
        record = SeatMapVersion(
            seat_map_id=seat_map_id,
            version=0,  # the script assigns it; the hash field is authoritative
            name=prepared.name,
            state="draft",
            stats=prepared.stats,
            content_sha256=prepared.content_sha256,
            created_at_ms=now_ms,
        )
        code, version = await self._scripts.seatmap_put(
            [
                keys.seatmap_index(tenant_id),
                keys.seatmap_versions(tenant_id, seat_map_id),
                keys.seatmap_content(tenant_id, seat_map_id),
            ],
            [
                seat_map_id,
                now_ms,
                0 if is_new else 1,
                record_encoder.encode(record),
                prepared.content,
                MAX_VERSIONS_PER_MAP,
            ],
        )
        match code:
            case Reply.OK:
                return msgspec.structs.replace(record, version=int(version))
            case Reply.SEATMAP_NOT_FOUND:
                raise NotFound("seat map", seat_map_id)
            case Reply.SEATMAP_EXISTS:  # a generated id collided: most unlikely, but never overwrite
                raise AlreadyExists("seat map", seat_map_id)
            case Reply.TOO_MANY_VERSIONS:
                raise PreconditionFailed(
                    f"seat map {seat_map_id!r} has reached {MAX_VERSIONS_PER_MAP} versions",
                    subject=seat_map_id,
                )
        raise StoreError(f"seatmap_put returned unknown code {code!r}")

    async def get_version(self, tenant_id: str, seat_map_id: str, version: int = 0) -> SeatMapVersion:
        """One version's record; ``version`` 0 means the latest."""
        check_client_id("seat_map_id", seat_map_id)
        if version < 0:
            raise InvalidRequest("version", "must be 0 (latest) or a positive version number")
        key = keys.seatmap_versions(tenant_id, seat_map_id)
        async with wrap_errors("get seat map"):
            if version == 0:
                latest = await self._r.hget(key, "latest")
                if latest is None:
                    raise NotFound("seat map", seat_map_id)
                version = int(latest)
            raw = await self._r.hget(key, str(version))
        if raw is None:
            raise NotFound("seat map version", f"{seat_map_id}@{version}")
        return msgspec.structs.replace(_record_decoder.decode(raw), version=version)

    async def latest_version_number(self, tenant_id: str, seat_map_id: str) -> int:
        async with wrap_errors("get seat map"):
            latest = await self._r.hget(keys.seatmap_versions(tenant_id, seat_map_id), "latest")
        return int(latest or 0)

    async def publish(self, tenant_id: str, seat_map_id: str, version: int) -> SeatMapVersion:
        if version <= 0:
            raise InvalidRequest("version", "name the version to publish (a positive number)")
        current = await self.get_version(tenant_id, seat_map_id, version)
        if current.state == "published":
            return current
        published = msgspec.structs.replace(
            current, state="published", published_at_ms=int(time.time() * 1000)
        )
        stored = msgspec.structs.replace(current, version=0)
        code = await self._scripts.seatmap_publish(
            [keys.seatmap_versions(tenant_id, seat_map_id)],
            [
                version,
                record_encoder.encode(stored),
                record_encoder.encode(msgspec.structs.replace(published, version=0)),
            ],
        )
        match code:
            case Reply.OK:
                return published
            case Reply.VERSION_NOT_FOUND:
                raise NotFound("seat map version", f"{seat_map_id}@{version}")
            case Reply.VERSION_CHANGED:  # published concurrently: return what is stored now
                return await self.get_version(tenant_id, seat_map_id, version)
        raise StoreError(f"seatmap_publish returned unknown code {code!r}")

    async def list_latest(self, tenant_id: str, offset: int, limit: int) -> tuple[list[SeatMapVersion], bool]:
        """The latest version of each map, newest map first; and whether more follow."""
        async with wrap_errors("list seat maps"):
            ids = await self._r.zrevrange(keys.seatmap_index(tenant_id), offset, offset + limit)
        more = len(ids) > limit
        page = [raw_id.decode() for raw_id in ids[:limit]]
        if not page:
            return [], more
        rows = await self._scripts.seatmap_list([keys.seatmap_versions(tenant_id, i) for i in page], [])
        result = [
            msgspec.structs.replace(_record_decoder.decode(record), version=int(latest))
            for latest, record in rows
            if latest and record  # a map whose keys vanished is skipped, not an error
        ]
        return result, more

    async def load(self, tenant_id: str, seat_map_id: str, version: int) -> LoadedSeatMap:
        """The decoded map and its index (cached; content is immutable).

        A cached *published* version is returned without touching Redis: nothing
        about it can change any more, and events hit this on every request.
        """
        if version > 0:
            cached = self._cache.get((tenant_id, seat_map_id, version))
            if cached is not None and cached.version.state == "published":
                return cached
        record = await self.get_version(tenant_id, seat_map_id, version)
        cache_key = (tenant_id, seat_map_id, record.version)
        cached = self._cache.get(cache_key)
        if cached is not None:
            if cached.version != record:  # published since it was cached
                cached = self._cache[cache_key] = LoadedSeatMap(record, cached.seatmap, cached.index)
            return cached
        # Single flight: on an on-sale's first second thousands of requests miss
        # together; one of them loads, the others wait for its result.
        pending = self._loading.get(cache_key)
        if pending is None:
            pending = self._loading[cache_key] = asyncio.ensure_future(self._load(record, tenant_id))
            pending.add_done_callback(lambda _: self._loading.pop(cache_key, None))
        return await asyncio.shield(pending)

    async def _load(self, record: SeatMapVersion, tenant_id: str) -> LoadedSeatMap:
        # shared by every waiting request and shielded from their deadlines: bound it itself
        async with asyncio.timeout(LOAD_BUDGET_S), wrap_errors("load seat map"):
            raw = await self._r.hget(keys.seatmap_content(tenant_id, record.seat_map_id), str(record.version))
        if raw is None:
            raise NotFound("seat map version", f"{record.seat_map_id}@{record.version}")
        # decoding and indexing a stadium takes about a second: keep the event loop serving
        loaded = await asyncio.to_thread(_decode_and_index, record, raw)
        # A stadium is ~10^6 long-lived objects: keep the cyclic GC from walking
        # them again and again (multi-millisecond pauses in the hot path).
        gc.freeze()
        self._cache[(tenant_id, record.seat_map_id, record.version)] = loaded
        return loaded
