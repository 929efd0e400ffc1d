"""Rate limits on hold-taking calls, per API key and per buyer id, set per event.

Against on-sale bots: an event may allow each API key, and each buyer id, at
most so many ``HoldSeats``/``HoldBestAvailable``/``HoldGeneralAdmission`` calls
per window (``rate_limit_per_key``, ``rate_limit_per_buyer`` in its settings,
e.g. ``"20/second"``). The counters are the :pypi:`limits` library's, in Redis,
so every server process shares them; its **fixed window** strategy is used: one
counter per (limit, event, key or buyer), incremented and given its expiry by
one Lua script (one round trip per limit, O(1) memory however high the limit);
a window starts with its first call. A caller may get up to twice the rate
across a window boundary, which is accepted for a coarse bot limit; a moving
window would store one entry per call (a list as long as the limit).

A refused call still counts, so a bot that keeps calling stays refused until
its window ends (the window is not extended). A call without a buyer id is
limited per key only. The event's limits are read from its ``meta`` at most
once per ``SETTINGS_TTL_S`` per process (a bounded TTL cache): an event with
no limits costs no Redis round trip, and a changed limit applies everywhere
within that time.

limits' redis-py implementation is used (``implementation="redispy"``), so no
second Redis client library is installed; it builds its own connection pool
(or cluster client) from the server's Redis URL.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError

from holds import keys
from holds.errors import InvalidRequest, StoreUnavailable
from holds.events import parse_rate_limit
from holds.fresh import FreshCache
from holds.redis_client import CLUSTER_SCHEME, AnyRedis, wrap_errors
from holds.sales import MAX_BUYER_ID
from server import metrics

SETTINGS_TTL_S = 5.0  # an event's limits are re-read this often per process
MAX_CACHED_EVENTS = 10_000


class RateLimited(Exception):
    """A hold-taking call over its event's ``limit`` (a setting's name)."""

    def __init__(self, limit: str, item: RateLimitItem, retry_after_s: float) -> None:
        super().__init__(f"rate limit reached: {limit} is {item}; retry after {retry_after_s:.0f} s")
        self.limit = limit
        self.item = item
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class EventLimits:
    per_key: RateLimitItem | None
    per_buyer: RateLimitItem | None


NO_LIMITS = EventLimits(None, None)


def storage_uri(redis_url: str) -> str:
    """limits' URI for one of our Redis URLs (redis://, rediss://, unix://, redis+cluster://)."""
    if redis_url.startswith(CLUSTER_SCHEME):
        return "async+redis+cluster://" + redis_url.removeprefix(CLUSTER_SCHEME)
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class SalesLimiter:
    """The per-event rate limits of one process; counters in Redis."""

    def __init__(self, redis: AnyRedis, redis_url: str, *, timeout_s: float = 5.0) -> None:
        self._r = redis
        uri = storage_uri(redis_url)
        options: dict[str, float | str | bool] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
        }
        storage_class = RedisClusterStorage if redis_url.startswith(CLUSTER_SCHEME) else RedisStorage
        self._storage = storage_class(
            uri, wrap_exceptions=True, implementation="redispy", key_prefix=keys.RATE_LIMITS_PREFIX, **options
        )
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._settings: FreshCache[str, EventLimits] = FreshCache(
            SETTINGS_TTL_S, max_entries=MAX_CACHED_EVENTS
        )

    async def limits_of(self, event_id: str) -> EventLimits:
        cached = self._settings.get(event_id)
        if cached is not None:
            return cached[0]
        async with wrap_errors("read event rate limits"):
            raw = await self._r.hmget(
                keys.event_key(event_id, "meta"), ["rate_limit_per_key", "rate_limit_per_buyer"]
            )
        per_key, per_buyer = (v.decode() if v else "" for v in raw)
        found = EventLimits(
            parse_rate_limit("rate_limit_per_key", per_key),
            parse_rate_limit("rate_limit_per_buyer", per_buyer),
        )
        self._settings.put(event_id, found)
        return found

    async def check(self, event_id: str, key_id: str, buyer: str) -> None:
        """Count one hold-taking call; raise RateLimited when over a limit.

        Call only once the caller is known to own the event (else a limit would
        tell another organizer's key that the event exists)."""
        limits = await self.limits_of(event_id)
        checks: list[tuple[str, RateLimitItem, tuple[str, ...]]] = []
        if limits.per_key is not None:
            checks.append(("rate_limit_per_key", limits.per_key, ("key", event_id, key_id)))
        if limits.per_buyer is not None and buyer:
            if len(buyer) > MAX_BUYER_ID:
                raise InvalidRequest("buyer_id", f"must be at most {MAX_BUYER_ID} characters")
            checks.append(("rate_limit_per_buyer", limits.per_buyer, ("buyer", event_id, buyer)))
        if not checks:
            return
        try:
            allowed = await asyncio.gather(*(self._limiter.hit(item, *ids) for _, item, ids in checks))
            for (name, item, ids), ok in zip(checks, allowed, strict=True):
                if not ok:
                    metrics.refused(name)  # rate_limit_per_key or rate_limit_per_buyer
                    stats = await self._limiter.get_window_stats(item, *ids)
                    raise RateLimited(name, item, max(stats.reset_time - time.time(), 1.0))
        except StorageError as exc:
            raise StoreUnavailable(f"rate limit counters: {exc.storage_error}") from exc

    async def aclose(self) -> None:
        client = getattr(self._storage.bridge, "storage", None)
        if client is not None:
            await client.aclose()
