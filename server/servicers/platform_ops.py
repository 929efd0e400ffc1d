"""PlatformService's operator features beyond sign-up: branding, the hub, the
organizers' CSV export, plan-limit notifications, plan changes and billing
state (docs/platform.md). Mixed into ``PlatformServicer``; translation only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import msgspec
from seatwise.v1 import platform_pb2

from holds import keys
from holds.billing import Billing, check_period
from holds.errors import InvalidRequest, NotFound, PreconditionFailed
from holds.platform.branding import BrandingStore
from holds.platform.dues import Dues, period_bounds
from holds.platform.hub import Hub
from holds.platform.notifications import PlanLimitsOf, period_of
from holds.platform.platforms import PlatformStore
from holds.platform.records import Branding, Notification
from holds.platform.tenants import TenantStore
from holds.records import TenantRecord
from rules.branding import FIELDS as BRANDING_FIELDS
from rules.reports import encode_rows, header
from server import request_ids, scope
from server.audit import note_target
from server.auth import current_principal
from server.context import Stores
from server.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from server.servicers import Context
from server.servicers.tenancy import timestamp_field_ms, timestamp_ms

EXPORT_COLUMNS: Final = ("organizer_id", "name", "slug", "plan_id", "status", "created_at", "tickets_sold")
EXPORT_ROWS_PER_CHUNK: Final = 200


def organizer_pb(record: TenantRecord) -> platform_pb2.Organizer:
    return platform_pb2.Organizer(
        organizer_id=record.tenant_id,
        name=record.name,
        created_at=timestamp_ms(record.created_at_ms),
        platform_id=record.platform_id,
        slug=record.slug,
        country=record.country,
        plan_id=record.plan_id,
        terms_version=record.terms_version,
        suspended=record.suspended,
        suspended_reason=record.suspended_reason,
        suspended_for_billing=record.suspended_for_billing,
    )


def branding_pb(branding: Branding) -> platform_pb2.Branding:
    out = platform_pb2.Branding(**{name: getattr(branding, name) for name in BRANDING_FIELDS})
    if branding.updated_at_ms:
        out.updated_at.CopyFrom(timestamp_ms(branding.updated_at_ms))
    return out


def notification_pb(note: Notification) -> platform_pb2.Notification:
    percent = note.kind.removeprefix("limit_")
    return platform_pb2.Notification(
        at=timestamp_ms(note.at_ms),
        organizer_id=note.organizer_id,
        platform_id=note.platform_id,
        kind=note.kind,
        limit=note.limit,
        limit_value=note.limit_value,
        usage=note.usage,
        period=note.period,
        message=f"{note.limit}: {note.usage} of {note.limit_value} used in {note.period} ({percent} %)",
    )


def _status(record: TenantRecord) -> str:
    if not record.suspended:
        return "active"
    return "suspended_unpaid" if record.suspended_for_billing else "suspended"


def _iso(ms: int) -> str:
    return timestamp_ms(ms).ToJsonString()


class PlatformOps:
    """The methods; ``PlatformServicer`` provides the stores."""

    def __init__(self, stores: Stores) -> None:
        self._ops_tenants: TenantStore = stores.tenants
        self._ops_platforms: PlatformStore = stores.platforms
        self._branding: BrandingStore = stores.branding
        self._hub: Hub = stores.hub
        self._limits: PlanLimitsOf = stores.plan_limits
        self._dues: Dues = stores.dues
        self._ops_billing = Billing(stores.redis)

    # -- branding ------------------------------------------------------------------
    async def GetBranding(
        self, request: platform_pb2.GetBrandingRequest, context: Context
    ) -> platform_pb2.GetBrandingResponse:
        p = current_principal()
        if request.organizer_id or (not request.platform_id and (not p.is_admin or p.acting)):
            organizer = await scope.organizer(self._ops_tenants, request.organizer_id)
            branding = await self._branding.organizer(organizer)
            return platform_pb2.GetBrandingResponse(
                branding=branding_pb(branding),
                organizer_id=organizer.tenant_id,
                platform_id=organizer.platform_id,
            )
        platform_id = scope.readable_platform_id(request.platform_id)
        if p.is_admin and not p.acting:
            platform_id = (await scope.platform(self._ops_platforms, platform_id)).platform_id
        return platform_pb2.GetBrandingResponse(
            branding=branding_pb(await self._branding.platform(platform_id)), platform_id=platform_id
        )

    async def UpdateBranding(
        self, request: platform_pb2.UpdateBrandingRequest, context: Context
    ) -> platform_pb2.UpdateBrandingResponse:
        changes = {name: getattr(request, name) for name in BRANDING_FIELDS if request.HasField(name)}
        p = current_principal()
        if request.organizer_id or (not request.platform_id and (not p.is_admin or p.acting)):
            organizer = await scope.organizer(self._ops_tenants, request.organizer_id)
            note_target(organizer_id=organizer.tenant_id, platform_id=organizer.platform_id)
            branding = await self._branding.update_organizer(organizer, changes)
        else:
            if not p.is_admin or p.acting:
                raise NotFound("platform", request.platform_id)
            platform = await scope.platform(self._ops_platforms, request.platform_id)
            branding = await self._branding.update_platform(platform.platform_id, changes)
        return platform_pb2.UpdateBrandingResponse(branding=branding_pb(branding))

    # -- the hub -------------------------------------------------------------------
    async def ListHubEvents(
        self, request: platform_pb2.ListHubEventsRequest, context: Context
    ) -> platform_pb2.ListHubEventsResponse:
        if request.page_size < 0:
            raise InvalidRequest("page_size", "must not be negative")
        limit = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        p = current_principal()
        platform_id = scope.readable_platform_id(request.platform_id)
        if p.is_admin and not p.acting:
            platform_id = (await scope.platform(self._ops_platforms, platform_id)).platform_id
        platform = await self._ops_platforms.get(platform_id)
        from_ms = timestamp_field_ms(request, "from")
        until_ms = timestamp_field_ms(request, "until")
        if from_ms < 0 or until_ms < 0:
            raise InvalidRequest("from" if from_ms < 0 else "until", "must not be before 1970")
        if until_ms and until_ms <= from_ms:
            raise InvalidRequest("until", "must be after from")
        organizer_id = request.organizer_id[:64]
        if organizer_id:  # a filter: an organizer not of this platform matches nothing
            organizer = await self._ops_tenants.organizer(organizer_id)
            if organizer is None or organizer.platform_id != platform_id:
                return platform_pb2.ListHubEventsResponse()
        page = await self._hub.page(
            platform_id,
            organizer_id=organizer_id,
            include_suspended=platform.public_sales_when_suspended,
            now_ms=self._dues.clock(),
            from_ms=from_ms,
            until_ms=until_ms,
            limit=limit,
            page_token=request.page_token,
        )
        by_id = page.organizers
        brandings = await self._branding.organizers(list(by_id.values()))
        return platform_pb2.ListHubEventsResponse(
            events=[
                platform_pb2.HubEvent(
                    event_id=e.event_id,
                    name=e.name,
                    starts_at=timestamp_ms(e.starts_at_ms),
                    timezone=e.timezone,
                    currency=e.currency,
                    organizer_id=e.organizer_id,
                    organizer_slug=by_id[e.organizer_id].slug,
                    organizer_branding=branding_pb(brandings[e.organizer_id]),
                )
                for e in page.events
            ],
            next_page_token=page.next_page_token,
        )

    # -- the organizers' export -------------------------------------------------------
    async def ExportOrganizers(
        self, request: platform_pb2.ExportOrganizersRequest, context: Context
    ) -> AsyncIterator[platform_pb2.ExportOrganizersChunk]:
        platform = await scope.platform(self._ops_platforms, request.platform_id)
        if request.HasField("period_start") != request.HasField("period_end"):
            raise InvalidRequest("period_end", "give both ends of the period, or neither")
        if request.HasField("period_start"):
            period = check_period(
                timestamp_field_ms(request, "period_start"), timestamp_field_ms(request, "period_end")
            )
        else:
            period = period_bounds(period_of(self._dues.clock()))
        organizers = await self._ops_tenants.list_tenants(platform.platform_id)
        buffer = bytearray(header(EXPORT_COLUMNS, "csv"))
        rows = total = 0
        for organizer in organizers:
            statement = await self._ops_billing.statement(organizer.tenant_id, period)
            row: dict[str, str | int | bool | None] = {
                "organizer_id": organizer.tenant_id,
                "name": organizer.name,
                "slug": organizer.slug,
                "plan_id": organizer.plan_id,
                "status": _status(organizer),
                "created_at": _iso(organizer.created_at_ms),
                "tickets_sold": sum(part.totals.tickets_sold for part in statement.currencies),
            }
            buffer += encode_rows(EXPORT_COLUMNS, [row], "csv")
            rows += 1
            if rows == EXPORT_ROWS_PER_CHUNK:
                total += rows
                yield platform_pb2.ExportOrganizersChunk(data=bytes(buffer), rows=rows, rows_so_far=total)
                buffer.clear()
                rows = 0
        if buffer:
            total += rows
            yield platform_pb2.ExportOrganizersChunk(data=bytes(buffer), rows=rows, rows_so_far=total)

    # -- notifications ----------------------------------------------------------------
    async def ListNotifications(
        self, request: platform_pb2.ListNotificationsRequest, context: Context
    ) -> platform_pb2.ListNotificationsResponse:
        if request.page_size < 0:
            raise InvalidRequest("page_size", "must not be negative")
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        p = current_principal()
        if request.organizer_id or not p.is_admin or p.acting:
            organizer = await scope.organizer(self._ops_tenants, request.organizer_id)
            log = keys.tenant_notifications(organizer.tenant_id)
        else:
            platform = await scope.platform(self._ops_platforms, request.platform_id)
            log = keys.platform_notifications(platform.platform_id)
        notes, token = await self._limits.usage.page(log, page_size, request.page_token)
        return platform_pb2.ListNotificationsResponse(
            notifications=[notification_pb(n) for n in notes], next_page_token=token
        )

    # -- plans and billing ----------------------------------------------------------------
    async def ChangePlan(
        self, request: platform_pb2.ChangePlanRequest, context: Context
    ) -> platform_pb2.ChangePlanResponse:
        if not request.organizer_id and not current_principal().tenant_id:
            raise InvalidRequest("organizer_id", "required")
        organizer = await scope.organizer(self._ops_tenants, request.organizer_id)
        if not organizer.platform_id:
            raise PreconditionFailed(
                f"organizer {organizer.tenant_id!r} is under no platform: it has no plans", subject="plan_id"
            )
        if not request.plan_id:
            raise InvalidRequest("plan_id", "required")
        if (
            len(request.plan_id) > 64
            or await self._ops_platforms.plan(organizer.platform_id, request.plan_id) is None
        ):
            raise InvalidRequest("plan_id", f"the platform has no plan {request.plan_id[:64]!r}")
        note_target(plan_id=request.plan_id)
        # billed before the change is written: a retry with the same request id bills nothing twice
        await self._dues.bill_plan_change(organizer, request.plan_id, request_ids.current())
        updated = msgspec.structs.replace(organizer, plan_id=request.plan_id)
        await self._ops_tenants.put_tenant(updated)
        return platform_pb2.ChangePlanResponse(
            organizer=organizer_pb(updated), previous_plan_id=organizer.plan_id
        )

    async def MarkStatementPaid(
        self, request: platform_pb2.MarkStatementPaidRequest, context: Context
    ) -> platform_pb2.MarkStatementPaidResponse:
        if not request.organizer_id and not current_principal().tenant_id:
            raise InvalidRequest("organizer_id", "required")
        organizer = await scope.organizer(self._ops_tenants, request.organizer_id)
        period_bounds(request.period)
        note_target(period=request.period)
        updated, reinstated = await self._dues.mark_paid(organizer, request.period)
        return platform_pb2.MarkStatementPaidResponse(organizer=organizer_pb(updated), reinstated=reinstated)
