"""How long the feed keeps its entries: ``SEATWISE_FEED_RETENTION_DAYS`` (default 30).

Each server process trims every tenant's feed streams (the events' ``lifecycle``
streams and the tenant's ``feed`` stream) once an hour with an exact
``XTRIM MINID`` at now minus the retention: entries older than that go, and a
cursor that had not read them is OUT_OF_RANGE. Before trimming a stream, the
newest entry about to go is recorded in the tenant's ``feed-trimmed`` hash
(Redis 7.0's ``max-deleted-entry-id`` does not count XTRIM), which is what
holds/feed/reader.py compares a cursor with; a crash between the two makes a
cursor look expired a little early, never the reverse. Several processes
trimming is harmless (the same trim twice). The audit stream is not trimmed.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from holds import keys
from holds.feed.cursor import format_id, parse_id
from holds.feed.reader import FeedReader
from holds.redis_client import AnyRedis, wrap_errors

DEFAULT_RETENTION_DAYS = 30.0
TRIM_EVERY_S = 3600.0
DAY_MS = 86_400_000

log = structlog.get_logger("seatwise.feed")


async def trim_tenant(client: AnyRedis, tenant_id: str, horizon_ms: int) -> int:
    """Drop the tenant's feed entries written before ``horizon_ms``; returns how many went."""
    streams = await FeedReader(client).streams(tenant_id)
    trimmed_key = keys.tenant_feed_trimmed(tenant_id)
    horizon = format_id((horizon_ms, 0))
    removed = 0
    for start in range(0, len(streams), 256):
        chunk = streams[start : start + 256]
        async with wrap_errors("trim feed"):
            async with client.pipeline(transaction=False) as pipe:
                for _, key in chunk:
                    pipe.xrevrange(key, max="(" + horizon, min="-", count=1)
                newest_going = await pipe.execute()
            going = {name: found[0][0] for (name, _), found in zip(chunk, newest_going, strict=True) if found}
            if not going:
                continue
            recorded = await client.hmget(trimmed_key, list(going))
            raise_to = {
                name: entry_id
                for (name, entry_id), before in zip(going.items(), recorded, strict=True)
                if before is None or parse_id(entry_id) > parse_id(before)
            }
            if raise_to:
                await client.hset(trimmed_key, mapping=raise_to)
            async with client.pipeline(transaction=False) as pipe:
                for name, key in chunk:
                    if name in going:
                        pipe.xtrim(key, minid=horizon, approximate=False)
                removed += sum(int(n) for n in await pipe.execute())
    return removed


async def trim_all(client: AnyRedis, retention_days: float) -> int:
    horizon = int(time.time() * 1000 - retention_days * DAY_MS)
    async with wrap_errors("list tenants"):
        tenants = sorted(t.decode() for t in await client.hkeys(keys.TENANTS))
    return sum([await trim_tenant(client, tenant, horizon) for tenant in tenants])


async def trim_forever(client: AnyRedis, retention_days: float, every_s: float = TRIM_EVERY_S) -> None:
    while True:
        try:
            removed = await trim_all(client, retention_days)
            if removed:
                log.info("feed.trimmed", entries=removed, retention_days=retention_days)
        except Exception as exc:  # a Redis outage: the next round tries again
            log.warning("feed.trim_failed", error=str(exc))
        await asyncio.sleep(every_s)
