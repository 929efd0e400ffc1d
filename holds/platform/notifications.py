"""Plan limits: usage per billing period and the 80 % / 100 % notifications.

A billing period is a calendar month in UTC (``YYYY-MM``). Counting and
refusing is one script over the organizer's ``{t:}`` keys (``plan_usage.lua``):
its usage hash for the period, its set of active events and its notifications
stream, so two concurrent calls can never both pass a limit's last unit, and
each threshold is recorded once per period (a marker in the usage hash). The
platform's copy of a notification is a second command in the platform's slot,
written after the script (a crash between them leaves it in the organizer's
log only, as with the audit log).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from holds import keys
from holds.errors import InvalidRequest, PlanLimitExceeded, StoreError
from holds.events import Event, EventSettings, EventStore, new_event_id
from holds.platform.platforms import PlatformStore
from holds.platform.records import Notification, notification_decoder
from holds.platform.tenants import TenantStore
from holds.records import hold_decoder, json_encoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from holds.seatmaps import LoadedSeatMap, stats_of
from rules.fees import PlanLimits

MAX_NOTIFICATIONS = 10_000  # per stream, trimmed approximately
USAGE_TTL_S = 400 * 86_400  # a period's usage is kept about 13 months


def period_of(at_ms: int) -> str:
    """The billing period (calendar month, UTC) of ``at_ms``: ``YYYY-MM``."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m")


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class PlanUsage:
    def __init__(self, client: AnyRedis, scripts: ScriptRegistry) -> None:
        self._r = client
        self._scripts = scripts

    async def _run(
        self,
        organizer_id: str,
        platform_id: str,
        mode: str,
        a: str,
        b: int,
        c: int,
        d: int = 0,
        period: str = "",
    ) -> None:
        """``period``: the billing period counted in (default: now's)."""
        now_ms = int(time.time() * 1000)
        period = period or period_of(now_ms)
        usage_key = keys.tenant_usage(organizer_id, period)
        reply = await self._scripts.plan_usage(
            [usage_key, keys.tenant_active_events(organizer_id), keys.tenant_notifications(organizer_id)],
            [mode, now_ms, a, b, c, period, platform_id, organizer_id, d],
        )
        match reply:
            case [Reply.OK, *notes]:
                refused = None
            case [Reply.LIMIT_REACHED, name, usage, *notes]:
                refused = (_text(name), int(usage))
            case _:
                raise StoreError(f"plan_usage returned an unknown result {reply!r}")
        async with wrap_errors("record notifications"):
            await self._r.expire(usage_key, USAGE_TTL_S)
            for i in range(0, len(notes), 4):
                name, threshold, usage, limit = notes[i : i + 4]
                if platform_id:
                    note = Notification(
                        now_ms, organizer_id, f"limit_{int(threshold)}", _text(name), int(limit),
                        int(usage), period, platform_id,
                    )  # fmt: skip
                    await self._r.xadd(
                        keys.platform_notifications(platform_id),
                        {"e": json_encoder.encode(note)},
                        maxlen=MAX_NOTIFICATIONS,
                        approximate=True,
                    )
        if refused is not None:
            name, usage = refused
            raise PlanLimitExceeded(name, _limit_value(name, b, c, mode), usage)

    async def add(self, organizer_id: str, platform_id: str, limit: str, amount: int, value: int) -> None:
        """Count ``amount`` against ``limit`` (of ``value``; 0: none) this period, or refuse."""
        await self._run(organizer_id, platform_id, "add", limit, amount, value)

    async def count(self, organizer_id: str, platform_id: str, limit: str, amount: int, value: int) -> None:
        """Count ``amount`` that already happened (never refused); notifies at thresholds."""
        await self._run(organizer_id, platform_id, "count", limit, amount, value)

    async def claim(self, claim: TicketClaim) -> None:
        """Claim ``claim.quantity`` places of a sale about to be made, or refuse."""
        await self._run(
            claim.organizer_id, claim.platform_id, "claim", claim.limit, claim.quantity, claim.value,
            period=claim.period,
        )  # fmt: skip

    async def settle(self, claim: TicketClaim, made: int) -> None:
        """The sale of ``claim`` made ``made`` places (0: it did not apply): the claim
        dropped, what was made counted (never refused), thresholds recorded."""
        await self._run(
            claim.organizer_id, claim.platform_id, "settle", claim.limit, claim.quantity, claim.value,
            made, claim.period,
        )  # fmt: skip

    async def peak(self, organizer_id: str, platform_id: str, limit: str, size: int, value: int) -> None:
        """A size (a seat map's places) against ``limit``: refused above ``value``."""
        await self._run(organizer_id, platform_id, "peak", limit, size, value)

    async def add_event(self, organizer_id: str, platform_id: str, event_id: str, limits: PlanLimits) -> None:
        """Count a new event (events per month, active events), or refuse."""
        await self._run(
            organizer_id, platform_id, "event", event_id, limits.events_per_month, limits.active_events
        )

    async def release_event(self, organizer_id: str, event_id: str) -> None:
        """The event closed (or was never created): no longer active."""
        async with wrap_errors("release active event"):
            await self._r.srem(keys.tenant_active_events(organizer_id), event_id)

    async def uncount(self, organizer_id: str, limit: str) -> None:
        """Give back one unit counted for a change that then failed (an event not created)."""
        async with wrap_errors("uncount usage"):
            await self._r.hincrby(
                keys.tenant_usage(organizer_id, period_of(int(time.time() * 1000))), limit, -1
            )

    async def used_and_claimed(self, organizer_id: str, limit: str) -> int:
        """This period's usage of ``limit`` with the claims of sales in flight."""
        async with wrap_errors("read usage"):
            period = period_of(int(time.time() * 1000))
            raw = await self._r.hmget(keys.tenant_usage(organizer_id, period), [limit, f"{limit}:claimed"])
        return sum(int(r) for r in raw if r is not None)

    async def sale_state(self, event_id: str, idempotency_key: str, hold_id: str) -> tuple[bool, int]:
        """Before a sale is claimed: whether its idempotency key already made an order (a
        replay claims nothing) and how many places the hold holds (0: no hold, or none named).
        One round trip in the event's slot."""
        async with wrap_errors("read the sale"), self._r.pipeline(transaction=False) as pipe:
            pipe.hexists(keys.event_key(event_id, "idem"), idempotency_key)
            if hold_id:
                pipe.hget(keys.event_key(event_id, "holds"), hold_id)
            found = await pipe.execute()
        if found[0]:
            return True, 0
        raw = found[1] if hold_id else None
        return False, hold_decoder.decode(raw).count if raw is not None else 0

    async def used(self, organizer_id: str, limit: str, at_ms: int | None = None) -> int:
        period = period_of(at_ms if at_ms is not None else int(time.time() * 1000))
        async with wrap_errors("read usage"):
            raw = await self._r.hget(keys.tenant_usage(organizer_id, period), limit)
        return int(raw) if raw is not None else 0

    async def page(self, log: str, page_size: int, page_token: str) -> tuple[list[Notification], str]:
        """Newest first; the token is the stream id to continue below (exclusive)."""
        upper = "+"
        if page_token:
            ms, sep, seq = page_token.partition("-")
            if not (sep and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
                raise InvalidRequest("page_token", "not a token this server issued")
            upper = f"({page_token}"
        async with wrap_errors("read notifications"):
            chunk = await self._r.xrevrange(log, max=upper, min="-", count=page_size + 1)
        entries = [
            (_text(entry_id), notification_decoder.decode(fields[b"e"] if b"e" in fields else fields["e"]))
            for entry_id, fields in chunk
        ]
        more = len(entries) > page_size
        entries = entries[:page_size]
        return [e for _, e in entries], entries[-1][0] if more and entries else ""


def _limit_value(name: str, b: int, c: int, mode: str) -> int:
    """The refused limit's value from the script's arguments (see :meth:`PlanUsage._run`)."""
    if mode != "event":
        return c
    return b if name == "events_per_month" else c


@dataclass(frozen=True)
class TicketClaim:
    """Places of one sale claimed against the organizer's tickets-per-month limit in its
    ``{t:}`` slot before the event's script sells them (the script cannot reach that slot
    on a Cluster); settled after it: counted as sold, or given back."""

    organizer_id: str
    platform_id: str
    period: str
    quantity: int
    value: int  # the limit
    limit: str = "tickets_per_month"


class PlanLimitsOf:
    """The limits of an organizer's current plan, and the checks the stores call.

    Reads go through the organizers' and plans' in-process caches, so an organizer
    whose plan has no limit pays no Redis round trip for any of this."""

    def __init__(self, tenants: TenantStore, platforms: PlatformStore, usage: PlanUsage) -> None:
        self._tenants = tenants
        self._platforms = platforms
        self.usage = usage

    async def of(self, tenant_id: str) -> tuple[str, PlanLimits] | None:
        """(platform id, limits) of the organizer's plan; None: no plan."""
        organizer = await self._tenants.organizer(tenant_id)
        if organizer is None or not organizer.plan_id or not organizer.platform_id:
            return None
        plan = await self._platforms.plan(organizer.platform_id, organizer.plan_id)
        if plan is None:
            return None
        return organizer.platform_id, plan.limits

    async def check_tickets(self, tenant_id: str, quantity: int) -> None:
        """Before a hold or a sale of ``quantity`` places: refused when the month's tickets
        would pass the limit (holds in flight are not counted: see docs/platform.md)."""
        found = await self.of(tenant_id)
        if found is None or not found[1].tickets_per_month:
            return
        limit = found[1].tickets_per_month
        used = await self.usage.used_and_claimed(tenant_id, "tickets_per_month")
        if used + quantity > limit:
            raise PlanLimitExceeded("tickets_per_month", limit, used)

    async def claim_tickets(
        self, tenant_id: str, event_id: str, idempotency_key: str, *, hold_id: str = "", quantity: int = 0
    ) -> TicketClaim | None:
        """Before a sale (a hold's commit, ``hold_id``; a box-office sale of ``quantity``):
        its places claimed against the month's limit, or refused (PlanLimitExceeded). None:
        nothing to settle (no limit on the plan, or the key already made its order: a replay
        neither claims nor gives back). A claim of 0 (the hold is gone) is settled all the
        same, so a sale made anyway is still counted."""
        found = await self.of(tenant_id)
        if found is None or not found[1].tickets_per_month:
            return None
        replayed, held = await self.usage.sale_state(event_id, idempotency_key, hold_id)
        if replayed:
            return None
        platform_id, limits = found
        claim = TicketClaim(
            tenant_id, platform_id, period_of(int(time.time() * 1000)), quantity if not hold_id else held,
            limits.tickets_per_month,
        )  # fmt: skip
        if claim.quantity:
            await self.usage.claim(claim)
        return claim

    async def settle_tickets(self, claim: TicketClaim, made: int) -> None:
        """After the sale: ``made`` tickets sold (0: it did not apply, the claim given back)."""
        await self.usage.settle(claim, made)

    async def check_map(self, tenant_id: str, places: int) -> None:
        """A seat map of ``places`` (seats and general-admission capacity) uploaded or put on sale."""
        found = await self.of(tenant_id)
        if found is None or not found[1].seats_per_map:
            return
        platform_id, limits = found
        await self.usage.peak(tenant_id, platform_id, "seats_per_map", places, limits.seats_per_map)

    async def add_event(self, tenant_id: str, event_id: str) -> bool:
        """Before an event is created: counted (events this month, active events), or refused.
        Counted for every organizer on a plan, limited or not, so a change of plan finds the
        counts right. False: not counted (the organizer has no plan)."""
        found = await self.of(tenant_id)
        if found is None:
            return False
        platform_id, limits = found
        await self.usage.add_event(tenant_id, platform_id, event_id, limits)
        return True


async def create_within_limits(
    events: EventStore,
    limits: PlanLimitsOf,
    tenant_id: str,
    loaded: LoadedSeatMap,
    currency: str,
    settings: EventSettings,
    event_id: str = "",
) -> Event:
    """Create an event if the organizer's plan allows it: its map's places within
    seats per map, then one more event this month and one more active event
    (counted before the event is written; uncounted again if writing it fails).
    ``event_id``: a new id made by the caller (an event of a season), else a new one."""
    stats = stats_of(loaded.seatmap)
    await limits.check_map(tenant_id, stats.seat_count + stats.ga_capacity)
    event_id = event_id or new_event_id()
    counted = await limits.add_event(tenant_id, event_id)
    try:
        event = await events.create(tenant_id, loaded, currency, settings, event_id)
    except BaseException:
        if counted:
            await limits.usage.release_event(tenant_id, event_id)
            await limits.usage.uncount(tenant_id, "events_per_month")
        raise
    if settings.status == "closed" and counted:  # created closed (allowed): never active
        await limits.usage.release_event(tenant_id, event_id)
    return event
