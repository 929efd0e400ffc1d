"""The platform hub: upcoming on-sale events of every organizer of a platform.

Indexed: each platform keeps a sorted set of its events that are on sale and have
a start time, scored by the start (``keys.platform_hub``), and one per organizer
(``keys.platform_hub_organizer``), both in the platform's ``{p:}`` slot. The
event store calls :meth:`Hub.track` after every creation and update of an event
(a status change, closing, a new start time), which adds or removes it. A page
reads the index by score from ``max(from, now)`` to ``until`` after its cursor
(start ms and event id of the last event shown), so a call costs O(the page),
not O(the platform's events); the organizer filter reads that organizer's set.

The index is a candidate list, each page checked against the events themselves
(their ``meta``, pipelined): an event found not on sale any more, or without a
start time, leaves the index there and then (two concurrent updates may track in
the other order), one whose start changed is re-scored, one whose on-sale window
has closed is skipped, and members whose start has passed are trimmed from the
set read. A platform whose index was never built (events written before it
existed) builds it once, at its first hub call, from its organizers' events.

Events of a suspended organizer are shown only when its platform lets suspended
organizers keep selling. Order: start time, then event id.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from holds import keys
from holds.errors import InvalidRequest
from holds.events import EventSettings
from holds.platform.tenants import TenantStore
from holds.records import TenantRecord
from holds.redis_client import AnyRedis, wrap_errors

CHUNK = 500  # events read per round trip when the index is built
FIELDS = ("tenant", "name", "starts_at", "timezone", "currency", "status", "onsale_until_ms")
_CURSOR = re.compile(r"h:(\d{1,16}):([A-Za-z0-9_-]{1,64})")


@dataclass(frozen=True)
class HubEvent:
    event_id: str
    organizer_id: str
    name: str
    starts_at_ms: int
    timezone: str
    currency: str


def starts_ms(value: str) -> int | None:
    """An RFC 3339 start time in ms (None: none or unreadable)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else raw


def cursor_token(starts_at_ms: int, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"h:{starts_at_ms}:{event_id}".encode()).decode()


def parse_cursor(token: str) -> tuple[int, str] | None:
    """(start ms, event id) after which a page continues; None: from the start."""
    if not token:
        return None
    try:
        decoded = base64.urlsafe_b64decode(token[:200].encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidRequest("page_token", "not a token this server issued") from exc
    match = _CURSOR.fullmatch(decoded)
    if match is None:
        raise InvalidRequest("page_token", "not a token this server issued")
    return int(match[1]), match[2]


@dataclass(frozen=True)
class HubPage:
    events: list[HubEvent]
    organizers: dict[str, TenantRecord]  # of the events listed
    next_page_token: str


class Hub:
    def __init__(self, client: AnyRedis, tenants: TenantStore) -> None:
        self._r = client
        self._tenants = tenants

    async def track(self, tenant_id: str, event_id: str, settings: EventSettings) -> None:
        """After an event was created or updated: in its platform's hub index while it is on
        sale with a start time, out of it otherwise (an organizer without a platform: none)."""
        organizer = await self._tenants.organizer(tenant_id)
        if organizer is None or not organizer.platform_id:
            return
        at = starts_ms(settings.starts_at)
        platform_id = organizer.platform_id
        sets = (keys.platform_hub(platform_id), keys.platform_hub_organizer(platform_id, tenant_id))
        async with wrap_errors("index hub"), self._r.pipeline(transaction=False) as pipe:
            for key in sets:
                if settings.status == "on_sale" and at is not None:
                    pipe.zadd(key, {event_id: at})
                else:
                    pipe.zrem(key, event_id)
            await pipe.execute()

    async def page(
        self,
        platform_id: str,
        *,
        organizer_id: str,
        include_suspended: bool,
        now_ms: int,
        from_ms: int,
        until_ms: int,
        limit: int,
        page_token: str,
    ) -> HubPage:
        """Events starting in ``[max(from_ms, now_ms), until_ms)`` (0: no end), ``limit`` at most,
        after ``page_token``; ``organizer_id`` (""): only that organizer's."""
        after = parse_cursor(page_token)
        await self._build(platform_id)
        if organizer_id:
            index = keys.platform_hub_organizer(platform_id, organizer_id)
        else:
            index = keys.platform_hub(platform_id)
        pos = after  # the scan's cursor: (start ms, event id) of the last member read
        lower = max(from_ms, now_ms)
        upper = f"({until_ms}" if until_ms else "+inf"
        found: list[HubEvent] = []
        organizers: dict[str, TenantRecord] = {}
        batch = limit + 1
        async with wrap_errors("read hub"):
            await self._r.zremrangebyscore(index, "-inf", f"({now_ms}")  # started: not upcoming
            while len(found) <= limit:
                low = max(lower, pos[0]) if pos is not None else lower
                chunk = await self._r.zrangebyscore(index, low, upper, start=0, num=batch, withscores=True)
                members = [(_text(m), int(score)) for m, score in chunk]
                fresh = [m for m in members if pos is None or (m[1], m[0]) > (pos[0], pos[1])]
                if fresh:
                    pos = (fresh[-1][1], fresh[-1][0])
                    found += await self._verified(
                        platform_id, index, fresh, now_ms, include_suspended, organizers
                    )
                if len(chunk) < batch:
                    break
                batch = min(batch * 2, CHUNK) if fresh else batch * 2  # many at one start: read on
        more = len(found) > limit
        found = found[:limit]
        token = cursor_token(found[-1].starts_at_ms, found[-1].event_id) if more and found else ""
        return HubPage(found, {e.organizer_id: organizers[e.organizer_id] for e in found}, token)

    async def _verified(
        self,
        platform_id: str,
        index: str,
        candidates: list[tuple[str, int]],
        now_ms: int,
        include_suspended: bool,
        organizers: dict[str, TenantRecord],
    ) -> list[HubEvent]:
        """The candidates (event id, indexed start) of ``index`` that are still on the hub,
        each checked against its ``meta``; stale members removed or re-scored."""
        if not candidates:
            return []
        async with self._r.pipeline(transaction=False) as pipe:  # events live in many slots
            for event_id, _ in candidates:
                pipe.hmget(keys.event_key(event_id, "meta"), FIELDS)
            replies = await pipe.execute()
        kept: list[HubEvent] = []
        for (event_id, indexed), values in zip(candidates, replies, strict=True):
            tenant, name, starts_at, tz, currency, status, until = (_text(v) for v in values)
            at = starts_ms(starts_at)
            organizer = organizers.get(tenant) or (await self._tenants.organizer(tenant) if tenant else None)
            if organizer is None or organizer.platform_id != platform_id:  # gone, or never ours
                await self._r.zrem(index, event_id)
                await self._r.zrem(keys.platform_hub(platform_id), event_id)
                continue
            if status != "on_sale" or at is None:  # an update's track raced another's: tidy
                await self._forget(platform_id, tenant, event_id)
                continue
            if at != indexed:  # moved: listed where it now starts
                await self._r.zadd(keys.platform_hub(platform_id), {event_id: at})
                await self._r.zadd(keys.platform_hub_organizer(platform_id, tenant), {event_id: at})
                continue
            if until and int(until) and int(until) <= now_ms:
                continue  # its on-sale window closed
            if organizer.suspended and not include_suspended:
                continue
            organizers[tenant] = organizer
            kept.append(HubEvent(event_id, tenant, name, at, tz, currency))
        return kept

    async def _forget(self, platform_id: str, tenant_id: str, event_id: str) -> None:
        await self._r.zrem(keys.platform_hub(platform_id), event_id)
        await self._r.zrem(keys.platform_hub_organizer(platform_id, tenant_id), event_id)

    async def _build(self, platform_id: str) -> None:
        """Once per platform: index the events written before the index existed (read from
        its organizers' event indexes, O(its events), then never again)."""
        marker = keys.platform_hub_built(platform_id)
        async with wrap_errors("build hub"):
            if await self._r.exists(marker):
                return
            for organizer in await self._tenants.list_tenants(platform_id):
                ids = [_text(i) for i in await self._r.zrange(keys.event_index(organizer.tenant_id), 0, -1)]
                for start in range(0, len(ids), CHUNK):
                    part = ids[start : start + CHUNK]
                    async with self._r.pipeline(transaction=False) as pipe:
                        for event_id in part:
                            pipe.hmget(keys.event_key(event_id, "meta"), ("tenant", "status", "starts_at"))
                        replies = await pipe.execute()
                    listed = {}
                    for event_id, (tenant, status, starts_at) in zip(part, replies, strict=True):
                        at = starts_ms(_text(starts_at))
                        if (
                            _text(tenant) == organizer.tenant_id
                            and _text(status) == "on_sale"
                            and at is not None
                        ):
                            listed[event_id] = at
                    if listed:
                        await self._r.zadd(keys.platform_hub(platform_id), listed)
                        await self._r.zadd(
                            keys.platform_hub_organizer(platform_id, organizer.tenant_id), listed
                        )
            await self._r.set(marker, "1")
