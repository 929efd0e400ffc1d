"""The platform hub: upcoming on-sale events of every organizer of a platform.

Read, not indexed: the hub walks the platform's organizers' event indexes and
reads each event's ``meta`` (pipelined, :data:`CHUNK` per round trip), keeping
events that are on sale, have a start time in the asked range and have not
closed their on-sale window. A call costs O(the platform's events); the
storefront caches pages (the events change rarely). Events of a suspended
organizer are shown only when its platform lets suspended organizers keep
selling. Order: start time, then event id; pages are offsets into that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from holds import keys
from holds.records import TenantRecord
from holds.redis_client import AnyRedis, wrap_errors

CHUNK = 500
FIELDS = ("tenant", "name", "starts_at", "timezone", "currency", "status", "onsale_until_ms")


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


def _text(raw: bytes | None) -> str:
    return raw.decode() if raw is not None else ""


class Hub:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client

    async def upcoming(
        self, organizers: list[TenantRecord], now_ms: int, from_ms: int, until_ms: int
    ) -> list[HubEvent]:
        """On-sale events of ``organizers`` starting in ``[max(from_ms, now_ms), until_ms)`` (0: no end)."""
        lower = max(from_ms, now_ms)
        found: list[HubEvent] = []
        async with wrap_errors("read hub"):
            for organizer in organizers:
                ids = [i.decode() for i in await self._r.zrange(keys.event_index(organizer.tenant_id), 0, -1)]
                for start in range(0, len(ids), CHUNK):
                    part = ids[start : start + CHUNK]
                    async with self._r.pipeline(transaction=False) as pipe:  # events live in many slots
                        for event_id in part:
                            pipe.hmget(keys.event_key(event_id, "meta"), FIELDS)
                        replies = await pipe.execute()
                    for event_id, values in zip(part, replies, strict=True):
                        tenant, name, starts_at, tz, currency, status, until = (_text(v) for v in values)
                        if tenant != organizer.tenant_id or status != "on_sale":
                            continue
                        if until and int(until) and int(until) <= now_ms:
                            continue
                        at = starts_ms(starts_at)
                        if at is None or at < lower or (until_ms and at >= until_ms):
                            continue
                        found.append(HubEvent(event_id, organizer.tenant_id, name, at, tz, currency))
        found.sort(key=lambda e: (e.starts_at_ms, e.event_id))
        return found
