"""Events: a published seat-map version put on sale, with prices and hold rules.

The event's settings live in its own ``meta``/``prices``/``ga_cap`` keys, in
the event's hash slot, so the inventory scripts read them atomically with the
seats. What does not change with sales (tenant, seat-map version, currency)
is kept per process with the event (``holds/live.py``), which is how a hold
costs one Redis round trip; the seat-map version changes only by a move
(``holds/remap.py``), which every script that depends on it is fenced against.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import limits

from holds import keys
from holds.errors import AlreadyExists, InvalidRequest, NotFound, PreconditionFailed, StoreError
from holds.ids import check_name, new_id
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from holds.seatmaps import LoadedSeatMap
from seatmap.distancing import DistancingRule, InvalidRule

EventStatus = Literal["draft", "on_sale", "paused", "closed"]
STATUSES: tuple[EventStatus, ...] = ("draft", "on_sale", "paused", "closed")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_PRICE_MINOR = 10**12

DEFAULT_HOLD_TTL_MS = 10 * 60 * 1000
DEFAULT_MAX_LIFETIME_MS = 2 * 60 * 60 * 1000
DEFAULT_MAX_SEATS_PER_HOLD = 10


@dataclass(frozen=True)
class EventRef:
    """An event's fixed facts, kept per process with the live event (the seat-map version
    changes only by a move, holds/remap.py: the process then drops and reloads it)."""

    event_id: str
    tenant_id: str
    seat_map_id: str
    seat_map_version: int
    currency: str


@dataclass(frozen=True)
class EventSettings:
    name: str
    starts_at: str = ""  # RFC 3339
    timezone: str = "UTC"
    status: EventStatus = "draft"
    hold_ttl_ms: int = DEFAULT_HOLD_TTL_MS
    max_lifetime_ms: int = DEFAULT_MAX_LIFETIME_MS
    max_seats_per_hold: int = DEFAULT_MAX_SEATS_PER_HOLD
    max_seats_per_buyer: int = 0  # 0: no per-buyer limit
    onsale_from_ms: int = 0
    onsale_until_ms: int = 0
    prices: dict[str, int] = field(default_factory=dict)
    # Hold-taking calls allowed per API key / per buyer id, e.g. "20/second" or
    # "5 per minute" (server/ratelimit.py); "": no limit.
    rate_limit_per_key: str = ""
    rate_limit_per_buyer: str = ""
    # Minimum-distance seating: the rule's canonical text (seatmap/distancing.py), "": none.
    distancing: str = ""

    @property
    def distancing_rule(self) -> DistancingRule:
        return DistancingRule.parse(self.distancing)


@dataclass(frozen=True)
class Event:
    ref: EventRef
    settings: EventSettings
    created_at_ms: int
    updated_at_ms: int


def check_settings(settings: EventSettings, categories: set[str]) -> None:
    """Reject bad settings with the field at fault (nothing is written)."""
    _check_limits(settings)
    for category, price in settings.prices.items():
        if category not in categories:
            raise InvalidRequest(f"prices[{category}]", "no such category in the seat map")
        if not 0 <= price <= MAX_PRICE_MINOR:
            raise InvalidRequest(f"prices[{category}]", "price must be 0 or more minor units")


def _check_limits(settings: EventSettings) -> None:
    check_name("name", settings.name)
    if settings.status not in STATUSES:
        raise InvalidRequest("status", f"must be one of {', '.join(STATUSES)}")
    if not 1_000 <= settings.hold_ttl_ms <= 24 * 3600 * 1000:
        raise InvalidRequest("hold_ttl", "must be between 1 second and 24 hours")
    if not settings.hold_ttl_ms <= settings.max_lifetime_ms <= 7 * 24 * 3600 * 1000:
        raise InvalidRequest("max_hold_lifetime", "must be at least the hold TTL and at most 7 days")
    if not 1 <= settings.max_seats_per_hold <= 1000:
        raise InvalidRequest("max_seats_per_hold", "must be 1-1000")
    if not 0 <= settings.max_seats_per_buyer <= 10_000:
        raise InvalidRequest("max_seats_per_buyer", "must be 0 (no limit) to 10000")
    if settings.onsale_from_ms < 0 or settings.onsale_until_ms < 0:
        raise InvalidRequest("on_sale_window", "times must not be negative")
    if settings.onsale_until_ms and settings.onsale_until_ms <= settings.onsale_from_ms:
        raise InvalidRequest("on_sale_window", "end must be after start")
    if len(settings.timezone) > 64:
        raise InvalidRequest("timezone", "must be an IANA zone name")
    for name in ("rate_limit_per_key", "rate_limit_per_buyer"):
        parse_rate_limit(name, getattr(settings, name))
    try:
        DistancingRule.parse(settings.distancing)
    except InvalidRule as exc:
        raise InvalidRequest(exc.field, exc.reason) from exc


def parse_rate_limit(field_name: str, value: str) -> limits.RateLimitItem | None:
    """A rate limit setting ("N per second|minute|hour", "N/second", ...), or None for ""."""
    if not value:
        return None
    try:
        items = limits.parse_many(value) if len(value) <= 64 else []
    except ValueError:
        items = []
    if len(items) != 1 or items[0].amount < 1:
        raise InvalidRequest(field_name, 'must be one rate such as "20/second" or "5 per minute" ("": none)')
    return items[0]


def _meta_fields(settings: EventSettings) -> dict[str, str]:
    return {
        "name": settings.name,
        "starts_at": settings.starts_at,
        "timezone": settings.timezone,
        "hold_ttl_ms": str(settings.hold_ttl_ms),
        "max_lifetime_ms": str(settings.max_lifetime_ms),
        "max_seats_per_hold": str(settings.max_seats_per_hold),
        "max_seats_per_buyer": str(settings.max_seats_per_buyer),
        "onsale_from_ms": str(settings.onsale_from_ms),
        "onsale_until_ms": str(settings.onsale_until_ms),
        "rate_limit_per_key": settings.rate_limit_per_key,
        "rate_limit_per_buyer": settings.rate_limit_per_buyer,
        "distancing": settings.distancing,
    }


def _status_of(value: str) -> EventStatus:
    for status in STATUSES:
        if status == value:
            return status
    raise StoreError(f"stored event status {value!r} is not one of {STATUSES}")


def _event_from(ref: EventRef, meta: dict[bytes, bytes], prices: dict[bytes, bytes]) -> Event:
    m = {k.decode(): v.decode() for k, v in meta.items()}
    settings = EventSettings(
        name=m["name"],
        starts_at=m.get("starts_at", ""),
        timezone=m.get("timezone", "UTC"),
        status=_status_of(m["status"]),
        hold_ttl_ms=int(m["hold_ttl_ms"]),
        max_lifetime_ms=int(m["max_lifetime_ms"]),
        max_seats_per_hold=int(m["max_seats_per_hold"]),
        max_seats_per_buyer=int(m["max_seats_per_buyer"]),
        onsale_from_ms=int(m["onsale_from_ms"]),
        onsale_until_ms=int(m["onsale_until_ms"]),
        prices={k.decode(): int(v) for k, v in prices.items()},
        rate_limit_per_key=m.get("rate_limit_per_key", ""),  # events older than rate limits: none
        rate_limit_per_buyer=m.get("rate_limit_per_buyer", ""),
        distancing=m.get("distancing", ""),  # events older than distancing: none
    )
    return Event(ref, settings, int(m["created_at_ms"]), int(m["updated_at_ms"]))


def new_event_id() -> str:
    return new_id("ev", 9).replace("-", "x").replace("_", "y")


# Told of every event created or updated, after it was written: (tenant id, event id,
# its settings now). The platform hub's index (holds/platform/hub.py Hub.track).
EventChanged = Callable[[str, str, "EventSettings"], Awaitable[None]]


def check_sellable(loaded: LoadedSeatMap, currency: str) -> None:
    """What selling on a seat-map version in a currency needs (an event's, a season's)."""
    if loaded.version.state != "published":
        raise PreconditionFailed(
            f"seat map {loaded.version.seat_map_id} version {loaded.version.version} is not published",
            subject=loaded.version.seat_map_id,
        )
    if not _CURRENCY.match(currency):
        raise InvalidRequest("currency", "must be an ISO-4217 code such as EUR")


class EventStore:
    def __init__(
        self, client: AnyRedis, scripts: ScriptRegistry, on_change: EventChanged | None = None
    ) -> None:
        self._r = client
        self._scripts = scripts
        self._on_change = on_change

    async def create(
        self,
        tenant_id: str,
        loaded: LoadedSeatMap,
        currency: str,
        settings: EventSettings,
        event_id: str = "",
    ) -> Event:
        """A new event (``event_id``: one from :func:`new_event_id`, else a new one)."""
        check_sellable(loaded, currency)
        check_settings(settings, {c.key for c in loaded.seatmap.categories})
        event_id = event_id or new_event_id()
        now = int(time.time() * 1000)
        ref = EventRef(event_id, tenant_id, loaded.version.seat_map_id, loaded.version.version, currency)
        meta = _meta_fields(settings) | {
            "tenant": tenant_id,
            "seat_map_id": ref.seat_map_id,
            "seat_map_version": str(ref.seat_map_version),
            "currency": currency,
            "created_at_ms": str(now),
            "updated_at_ms": str(now),
        }
        meta |= {f"ga_category:{a.id}": a.category for a in loaded.seatmap.ga_areas}
        ga = {a.id: a.capacity for a in loaded.seatmap.ga_areas}
        await self._put(event_id, "create", settings.status, meta, settings.prices, ga)
        async with wrap_errors("index event"):
            await self._r.hset(keys.event_owner(), event_id, tenant_id)
            await self._r.zadd(keys.event_index(tenant_id), {event_id: now})
            await self._r.sadd(keys.ACTIVE_EVENTS, event_id)
        if self._on_change is not None:
            await self._on_change(tenant_id, event_id, settings)
        return Event(ref, settings, now, now)

    async def update(
        self,
        ref: EventRef,
        categories: set[str],
        *,
        status: EventStatus | None = None,
        prices: Mapping[str, int] | None = None,
        changes: Mapping[str, object] | None = None,
    ) -> Event:
        """Apply the given changes (None: unchanged), validated against the merged settings."""
        current = await self.get(ref)
        merged = EventSettings(
            **{
                **current.settings.__dict__,
                **(changes or {}),
                **({"status": status} if status else {}),
                **({"prices": dict(prices)} if prices is not None else {}),
            }
        )
        check_settings(merged, categories)
        meta = _meta_fields(merged) | {"updated_at_ms": str(int(time.time() * 1000))}
        await self._put(
            ref.event_id, "update", status or "", meta, dict(prices) if prices is not None else None, {}
        )
        # back in the reaper's set: it may take holds again (a reopened on-sale
        # window, say), or it closed and the reaper owes it its no-show entries
        async with wrap_errors("index event"):
            await self._r.sadd(keys.ACTIVE_EVENTS, ref.event_id)
        event = await self.get(ref)
        if self._on_change is not None:
            await self._on_change(ref.tenant_id, ref.event_id, event.settings)
        return event

    async def _put(
        self,
        event_id: str,
        mode: str,
        status: str,
        meta: Mapping[str, str],
        prices: Mapping[str, int] | None,
        ga: Mapping[str, int],
    ) -> None:
        args: list[str | int] = [mode, status, len(meta)]
        for k, v in meta.items():
            args += [k, v]
        args += [1 if prices is not None else 0, len(prices or {})]
        for k, p in (prices or {}).items():
            args += [k, p]
        args.append(len(ga))
        for k, c in ga.items():
            args += [k, c]
        reply = await self._scripts.event_put(
            [keys.event_key(event_id, name) for name in ("meta", "prices", "ga_cap", "lifecycle")], args
        )
        match reply:
            case Reply.OK:
                return
            case Reply.EVENT_NOT_FOUND:
                raise NotFound("event", event_id)
            case Reply.EVENT_EXISTS:
                raise AlreadyExists("event", event_id)
            case [Reply.STATUS_TRANSITION, current, wanted]:
                raise PreconditionFailed(
                    f"event status cannot change from {current.decode()} to {wanted.decode()}",
                    subject=event_id,
                )
        raise StoreError(f"event_put returned an unknown result {reply!r}")

    async def read_ref(self, event_id: str) -> EventRef:
        """The event's fixed facts, read from its own ``meta`` (whoever owns it)."""
        if not event_id or len(event_id) > 64:
            raise NotFound("event", event_id[:64])
        async with wrap_errors("get event"):
            raw = await self._r.hmget(
                keys.event_key(event_id, "meta"), ["tenant", "seat_map_id", "seat_map_version", "currency"]
            )
        if raw[0] is None:
            raise NotFound("event", event_id)
        return EventRef(event_id, raw[0].decode(), raw[1].decode(), int(raw[2]), raw[3].decode())

    async def read_distancing(self, event_id: str) -> str:
        """The event's distancing rule as stored now (canonical text, "": none)."""
        async with wrap_errors("get event"):
            raw = await self._r.hget(keys.event_key(event_id, "meta"), "distancing")
        return raw.decode() if raw else ""

    async def ref(self, tenant_id: str, event_id: str) -> EventRef:
        """The event's fixed facts, if it belongs to ``tenant_id`` (else NotFound: no probing)."""
        ref = await self.read_ref(event_id)
        if ref.tenant_id != tenant_id:
            raise NotFound("event", event_id)
        return ref

    async def get(self, ref: EventRef) -> Event:
        async with wrap_errors("get event"):
            meta = await self._r.hgetall(keys.event_key(ref.event_id, "meta"))
            prices = await self._r.hgetall(keys.event_key(ref.event_id, "prices"))
        if not meta:
            raise NotFound("event", ref.event_id)
        return _event_from(ref, meta, prices)

    async def list_events(self, tenant_id: str, offset: int, limit: int) -> tuple[list[Event], bool]:
        """A page of the tenant's events, newest first, in two round trips whatever its size."""
        async with wrap_errors("list events"):
            ids = [
                i.decode()
                for i in await self._r.zrevrange(keys.event_index(tenant_id), offset, offset + limit)
            ]
            page = ids[:limit]
            async with self._r.pipeline(transaction=False) as pipe:  # events live in many slots
                for event_id in page:
                    pipe.hgetall(keys.event_key(event_id, "meta"))
                    pipe.hgetall(keys.event_key(event_id, "prices"))
                replies = await pipe.execute() if page else []
        events = []
        for event_id, meta, prices in zip(page, replies[0::2], replies[1::2], strict=True):
            m = {k.decode(): v.decode() for k, v in meta.items()}
            if m.get("tenant") != tenant_id:
                continue  # vanished (or not this tenant's): never shown
            ref = EventRef(event_id, tenant_id, m["seat_map_id"], int(m["seat_map_version"]), m["currency"])
            events.append(_event_from(ref, meta, prices))
        return events, len(ids) > limit

    async def active_ids(self) -> list[str]:
        """Events that may have holds to tidy (the reaper's set), read in chunks."""
        async with wrap_errors("list active events"):
            ids = [i async for i in self._r.sscan_iter(keys.ACTIVE_EVENTS, count=1000)]
        return sorted({i.decode() for i in ids})

    async def retire(self, event_id: str) -> None:
        """Out of the reaper's set: the event has no hold and can take none."""
        async with wrap_errors("retire event"):
            await self._r.srem(keys.ACTIVE_EVENTS, event_id)
