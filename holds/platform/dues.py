"""Billing state: organizers that leave a statement unpaid past their platform's
grace period are suspended automatically, and reinstated when it is marked paid.

A billing period is a calendar month in UTC (``YYYY-MM``). Once a period has
ended, its statement (``holds/billing.py``) no longer changes (every record
belongs to the period in which it happened), so its state is decided once and
kept in the organizer's ``billing`` hash: ``clear`` (the organizer owes the
platform nothing in any currency), ``due`` (it owes, net, in some currency) or
``paid`` (``MarkStatementPaid``). A period is **overdue** when it is ``due``
and ended more than the platform's ``billing_grace_days`` ago.

:meth:`Dues.run_once` (called by every server process's periodic loop,
``server/reaper.py``; harmless when two run at once) walks the platforms with a
grace period and suspends each organizer with an overdue period that is not
suspended already, marking the suspension as billing's; the action is written to
the audit log as ``billing/SuspendUnpaid`` by actor ``system``. Marking a
period paid reinstates an organizer suspended by billing once no period is
overdue; an organizer suspended by its platform by hand is never reinstated by
billing. ``now_ms`` is always passed in, so tests inject the clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import structlog

from holds import keys
from holds.billing import Billing
from holds.errors import InvalidRequest, PreconditionFailed
from holds.platform.audit import AuditLog
from holds.platform.notifications import period_of
from holds.platform.platforms import PlatformStore
from holds.platform.records import AuditEntry
from holds.platform.tenants import TenantStore
from holds.records import TenantRecord
from holds.redis_client import AnyRedis, wrap_errors
from rules.statements import Period, PlanCharge

log = structlog.get_logger("seatwise.dues")
DAY_MS = 86_400_000
PERIOD = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
SUSPEND_METHOD = "billing/SuspendUnpaid"
REINSTATE_METHOD = "billing/ReinstatePaid"


def period_bounds(period: str) -> Period:
    """``YYYY-MM`` → its ``[start, end)`` in ms (UTC); INVALID_ARGUMENT ``period`` otherwise."""
    match = PERIOD.match(period)
    if match is None:
        raise InvalidRequest("period", "a billing period as YYYY-MM, e.g. 2026-11")
    year, month = int(match[1]), int(match[2])
    if year < 1970:
        raise InvalidRequest("period", "must not be before 1970")
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return Period(int(start.timestamp() * 1000), int(end.timestamp() * 1000))


def periods_between(first_ms: int, end_ms: int) -> list[str]:
    """The periods from the one of ``first_ms`` up to the last one that ended by ``end_ms``."""
    out: list[str] = []
    period = period_of(first_ms)
    while True:
        bounds = period_bounds(period)
        if bounds.end_ms > end_ms:
            return out
        out.append(period)
        period = period_of(bounds.end_ms)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class Dues:
    def __init__(
        self,
        client: AnyRedis,
        tenants: TenantStore,
        platforms: PlatformStore,
        audit: AuditLog,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._r = client
        self._tenants = tenants
        self._platforms = platforms
        self._audit = audit
        self._billing = Billing(client)
        # ms; MarkStatementPaid reads it (tests replace it; the periodic loop passes its own)
        self.clock: Callable[[], int] = clock or (lambda: int(datetime.now(UTC).timestamp() * 1000))

    async def state(self, organizer_id: str, period: str) -> str:
        """``clear``, ``due`` or ``paid`` for a period that has ended (decided once, then kept)."""
        async with wrap_errors("read billing state"):
            raw = await self._r.hget(keys.tenant_billing(organizer_id), period)
        if raw is not None:
            return _text(raw)
        statement = await self._billing.statement(organizer_id, period_bounds(period))
        decided = "due" if any(part.net_due < 0 for part in statement.currencies) else "clear"
        async with wrap_errors("write billing state"):
            await self._r.hsetnx(keys.tenant_billing(organizer_id), period, decided)
            raw = await self._r.hget(keys.tenant_billing(organizer_id), period)
        return _text(raw) if raw is not None else decided

    async def overdue(self, organizer: TenantRecord, grace_days: int, now_ms: int) -> list[str]:
        """The organizer's periods that are due and ended more than ``grace_days`` before ``now_ms``."""
        if grace_days <= 0:
            return []
        periods = periods_between(organizer.created_at_ms, now_ms - grace_days * DAY_MS)
        return [p for p in periods if await self.state(organizer.tenant_id, p) == "due"]

    async def bill_organizer(self, organizer: TenantRecord, now_ms: int) -> None:
        """Bill the organizer's plan charges due at ``now_ms`` (holds/billing.py bill_plan)."""
        plan = await self._platforms.organizer_plan(organizer.tenant_id)
        if plan is not None:
            await self._billing.bill_plan(organizer, plan, now_ms)

    async def bill_plan_change(
        self, organizer: TenantRecord, plan_id: str, change_id: str
    ) -> list[PlanCharge]:
        """Before the organizer moves to ``plan_id`` now: the month's fee difference for the
        days left (holds/billing.py bill_plan_change), once per ``change_id``. Nothing when
        the plan does not change or the organizer had no plan (the billing round then bills
        the new plan's fees)."""
        if not organizer.platform_id or not organizer.plan_id or organizer.plan_id == plan_id:
            return []
        old = await self._platforms.plan(organizer.platform_id, organizer.plan_id)
        new = await self._platforms.plan(organizer.platform_id, plan_id)
        if old is None or new is None:
            return []
        return await self._billing.bill_plan_change(organizer, old, new, change_id, self.clock())

    async def bill_plans(self, now_ms: int) -> None:
        """Bill every organizer of every platform its plan charges due at ``now_ms``
        (the reaper's billing round: a new month's fee is billed within minutes)."""
        for platform in await self._platforms.list_platforms():
            for organizer in await self._tenants.list_tenants(platform.platform_id):
                await self.bill_organizer(organizer, now_ms)

    async def run_once(self, now_ms: int) -> list[str]:
        """Suspend every organizer with an overdue period; returns the ids suspended now."""
        suspended: list[str] = []
        for platform in await self._platforms.list_platforms():
            if platform.billing_grace_days <= 0:
                continue
            for organizer in await self._tenants.list_tenants(platform.platform_id):
                if organizer.suspended:
                    continue
                overdue = await self.overdue(organizer, platform.billing_grace_days, now_ms)
                if not overdue:
                    continue
                reason = (
                    f"unpaid statement for {overdue[0]}: the platform's grace period of "
                    f"{platform.billing_grace_days} day(s) has passed"
                )
                updated = msgspec.structs.replace(
                    organizer, suspended=True, suspended_reason=reason, suspended_for_billing=True
                )
                await self._tenants.put_tenant(updated)
                await self._record(SUSPEND_METHOD, updated, now_ms, overdue[0])
                log.info("dues.suspended", organizer=organizer.tenant_id, period=overdue[0])
                suspended.append(organizer.tenant_id)
        return suspended

    async def mark_paid(self, organizer: TenantRecord, period: str) -> tuple[TenantRecord, bool]:
        """Mark ``period`` paid; reinstate the organizer if billing suspended it and nothing
        else is overdue. Returns the organizer as it is now and whether it was reinstated."""
        now_ms = self.clock()
        bounds = period_bounds(period)
        if bounds.end_ms > now_ms:
            raise PreconditionFailed(f"billing period {period} has not ended yet", subject=period)
        async with wrap_errors("write billing state"):
            await self._r.hset(keys.tenant_billing(organizer.tenant_id), period, "paid")
        current = await self._tenants.get_tenant(organizer.tenant_id)
        if not (current.suspended and current.suspended_for_billing):
            return current, False
        grace = 0
        if current.platform_id:
            grace = (await self._platforms.get(current.platform_id)).billing_grace_days
        if await self.overdue(current, grace, now_ms):
            return current, False
        reinstated = msgspec.structs.replace(
            current, suspended=False, suspended_reason="", suspended_for_billing=False
        )
        await self._tenants.put_tenant(reinstated)
        await self._record(REINSTATE_METHOD, reinstated, now_ms, period)
        return reinstated, True

    async def _record(self, method: str, organizer: TenantRecord, now_ms: int, period: str) -> None:
        entry = AuditEntry(
            at_ms=now_ms,
            actor_key_id="",
            actor_role="system",
            method=method,
            outcome="OK",
            organizer_id=organizer.tenant_id,
            platform_id=organizer.platform_id,
            targets={"organizer_id": organizer.tenant_id, "period": period},
        )
        try:
            await self._audit.append(entry)
        except Exception as exc:  # as for calls: a failed audit write does not undo the action
            log.warning("audit.write_failed", method=method, error=str(exc))
