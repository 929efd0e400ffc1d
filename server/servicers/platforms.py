"""seatwise.v1.PlatformService: platforms, organizer sign-up and suspension, the audit log."""

from __future__ import annotations

import msgspec
from seatwise.v1 import platform_pb2, platform_pb2_grpc

from holds import keys
from holds.billing import Billing, check_period
from holds.errors import InvalidRequest, NotFound
from holds.platform import audit as audit_store
from holds.platform.records import AuditEntry, PlatformRecord
from holds.records import RoleName, TenantRecord
from holds.redis_client import AnyRedis
from rules.fees import FeePlan
from rules.statements import (
    CurrencyStatement,
    RollupCurrency,
    Totals,
    build_rollup,
    rollup_csv,
    statement_csv,
)
from server import scope
from server.audit import note_target
from server.auth import AUDIT_READERS, EVERY_ROLE, OPERATOR, ORGANIZER, ROOT, current_principal
from server.context import Stores
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, page_bounds, page_token_after
from server.servicers import Context
from server.servicers.platform_ops import PlatformOps, organizer_pb
from server.servicers.tenancy import ROLE_TO_PROTO, key_pb, timestamp_field_ms, timestamp_ms


def platform_pb(record: PlatformRecord) -> platform_pb2.Platform:
    return platform_pb2.Platform(
        platform_id=record.platform_id,
        name=record.name,
        created_at=timestamp_ms(record.created_at_ms),
        terms_version=record.terms_version,
        public_sales_when_suspended=record.public_sales_when_suspended,
        billing_grace_days=record.billing_grace_days,
    )


def audit_entry_pb(entry: AuditEntry) -> platform_pb2.AuditEntry:
    return platform_pb2.AuditEntry(
        at=timestamp_ms(entry.at_ms),
        actor_key_id=entry.actor_key_id,
        actor_role=ROLE_TO_PROTO.get(entry.actor_role, 0),  # type: ignore[call-overload]
        actor_platform_id=entry.actor_platform_id,
        organizer_id=entry.organizer_id,
        platform_id=entry.platform_id,
        acting=entry.acting,
        method=entry.method,
        targets=entry.targets,
        outcome=entry.outcome,
    )


class PlatformServicer(PlatformOps, platform_pb2_grpc.PlatformServiceServicer):
    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self._tenants = stores.tenants
        self._platforms = stores.platforms
        self._audit = stores.audit
        self._redis: AnyRedis = stores.redis
        self._billing = Billing(stores.redis)
        self._dues = stores.dues

    async def CreatePlatform(
        self, request: platform_pb2.CreatePlatformRequest, context: Context
    ) -> platform_pb2.CreatePlatformResponse:
        record = await self._platforms.create(
            request.platform_id, request.name, request.terms_version, request.public_sales_when_suspended
        )
        note_target(platform_id=record.platform_id)
        return platform_pb2.CreatePlatformResponse(platform=platform_pb(record))

    async def ListPlatforms(
        self, request: platform_pb2.ListPlatformsRequest, context: Context
    ) -> platform_pb2.ListPlatformsResponse:
        offset, limit = page_bounds(request.page_size, request.page_token)
        records = await self._platforms.list_platforms()
        return platform_pb2.ListPlatformsResponse(
            platforms=[platform_pb(r) for r in records[offset : offset + limit]],
            next_page_token=page_token_after(offset, limit, len(records) > offset + limit),
        )

    async def GetPlatform(
        self, request: platform_pb2.GetPlatformRequest, context: Context
    ) -> platform_pb2.GetPlatformResponse:
        record = await scope.platform(self._platforms, request.platform_id)
        return platform_pb2.GetPlatformResponse(platform=platform_pb(record))

    async def UpdatePlatform(
        self, request: platform_pb2.UpdatePlatformRequest, context: Context
    ) -> platform_pb2.UpdatePlatformResponse:
        record = await scope.platform(self._platforms, request.platform_id)
        updated = await self._platforms.update(
            record.platform_id,
            terms_version=request.terms_version if request.HasField("terms_version") else None,
            public_sales_when_suspended=(
                request.public_sales_when_suspended
                if request.HasField("public_sales_when_suspended")
                else None
            ),
            billing_grace_days=(
                request.billing_grace_days if request.HasField("billing_grace_days") else None
            ),
        )
        return platform_pb2.UpdatePlatformResponse(platform=platform_pb(updated))

    async def SignUpOrganizer(
        self, request: platform_pb2.SignUpOrganizerRequest, context: Context
    ) -> platform_pb2.SignUpOrganizerResponse:
        platform = await scope.platform(self._platforms, request.platform_id)
        organizer = await self._platforms.sign_up(
            platform.platform_id,
            request.name,
            request.slug,
            request.country,
            request.plan_id,
            request.accepted_terms_version,
        )
        note_target(organizer_id=organizer.tenant_id, platform_id=platform.platform_id)
        await self._dues.bill_organizer(organizer, organizer.created_at_ms)  # setup and first month
        key, secret = await self._tenants.create_key(
            organizer.tenant_id, "organizer", request.key_label or "sign-up"
        )
        return platform_pb2.SignUpOrganizerResponse(
            organizer=organizer_pb(organizer), key=key_pb(key), api_key=secret
        )

    async def GetOrganizer(
        self, request: platform_pb2.GetOrganizerRequest, context: Context
    ) -> platform_pb2.GetOrganizerResponse:
        record = await scope.organizer(self._tenants, request.organizer_id)
        return platform_pb2.GetOrganizerResponse(organizer=organizer_pb(record))

    async def ListOrganizers(
        self, request: platform_pb2.ListOrganizersRequest, context: Context
    ) -> platform_pb2.ListOrganizersResponse:
        offset, limit = page_bounds(request.page_size, request.page_token)
        p = current_principal()
        if p.is_root and not request.platform_id:
            records = [r for r in await self._tenants.list_tenants() if not r.platform_id]
        else:
            platform = await scope.platform(self._platforms, request.platform_id)
            records = await self._tenants.list_tenants(platform.platform_id)
        return platform_pb2.ListOrganizersResponse(
            organizers=[organizer_pb(r) for r in records[offset : offset + limit]],
            next_page_token=page_token_after(offset, limit, len(records) > offset + limit),
        )

    async def SuspendOrganizer(
        self, request: platform_pb2.SuspendOrganizerRequest, context: Context
    ) -> platform_pb2.SuspendOrganizerResponse:
        organizer = await self._target(request.organizer_id)
        updated = await self._platforms.set_suspended(organizer, True, request.reason)
        return platform_pb2.SuspendOrganizerResponse(organizer=organizer_pb(updated))

    async def ReinstateOrganizer(
        self, request: platform_pb2.ReinstateOrganizerRequest, context: Context
    ) -> platform_pb2.ReinstateOrganizerResponse:
        organizer = await self._target(request.organizer_id)
        updated = await self._platforms.set_suspended(organizer, False, "")
        return platform_pb2.ReinstateOrganizerResponse(organizer=organizer_pb(updated))

    async def _target(self, organizer_id: str) -> TenantRecord:
        if not organizer_id and not current_principal().tenant_id:
            raise InvalidRequest("organizer_id", "required")
        return await scope.organizer(self._tenants, organizer_id)

    async def CreatePlan(
        self, request: platform_pb2.CreatePlanRequest, context: Context
    ) -> platform_pb2.CreatePlanResponse:
        platform = await scope.platform(self._platforms, request.platform_id)
        plan = await self._platforms.create_plan(platform.platform_id, fee_plan(request.plan))
        note_target(plan_id=plan.plan_id)
        return platform_pb2.CreatePlanResponse(plan=plan_pb(plan))

    async def ListPlans(
        self, request: platform_pb2.ListPlansRequest, context: Context
    ) -> platform_pb2.ListPlansResponse:
        p = current_principal()
        if p.is_admin and not p.acting:
            platform_id = (await scope.platform(self._platforms, request.platform_id)).platform_id
        else:  # an organizer's keys (or an operator acting as one): the organizer's platform
            platform_id = p.platform_id
            if request.platform_id and request.platform_id != platform_id:
                raise NotFound("platform", request.platform_id)
            if not platform_id:
                return platform_pb2.ListPlansResponse()
        plans = await self._platforms.list_plans(platform_id)
        return platform_pb2.ListPlansResponse(plans=[plan_pb(plan) for plan in plans])

    async def ListAuditLog(
        self, request: platform_pb2.ListAuditLogRequest, context: Context
    ) -> platform_pb2.ListAuditLogResponse:
        if request.page_size < 0:
            raise InvalidRequest("page_size", "must not be negative")
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        p = current_principal()
        where = audit_store.AuditFilter(
            method=request.method[:200],
            actor_key_id=request.actor_key_id[:64],
            since_ms=timestamp_field_ms(request, "since"),
            until_ms=timestamp_field_ms(request, "until"),
        )
        if where.since_ms < 0:
            raise InvalidRequest("since", "must not be before 1970")
        if where.until_ms < 0:
            raise InvalidRequest("until", "must not be before 1970")
        if request.organizer_id or not p.is_admin or p.acting:
            organizer = await scope.organizer(self._tenants, request.organizer_id)
            log = keys.tenant_audit(organizer.tenant_id)
        elif request.platform_id or p.role == "platform_admin":
            platform = await scope.platform(self._platforms, request.platform_id)
            log = keys.platform_audit(platform.platform_id)
        else:
            log = keys.ROOT_AUDIT
        entries, token = await self._audit.page(log, where, page_size, request.page_token)
        return platform_pb2.ListAuditLogResponse(
            entries=[audit_entry_pb(e) for e in entries], next_page_token=token
        )

    async def GetStatement(
        self, request: platform_pb2.GetStatementRequest, context: Context
    ) -> platform_pb2.GetStatementResponse:
        for field in ("period_start", "period_end"):
            if not request.HasField(field):
                raise InvalidRequest(field, "required")
        period = check_period(
            timestamp_field_ms(request, "period_start"), timestamp_field_ms(request, "period_end")
        )
        out = platform_pb2.GetStatementResponse(
            period_start=request.period_start, period_end=request.period_end
        )
        p = current_principal()
        if request.organizer_id or not p.is_admin or p.acting:
            organizer = await scope.organizer(self._tenants, request.organizer_id)
            statement = await self._billing.statement(organizer.tenant_id, period)
            out.organizer_id = organizer.tenant_id
            out.platform_id = organizer.platform_id
            out.currencies.extend(_currency_pb(part) for part in statement.currencies)
            lines = statement_csv(statement)
        else:
            platform = await scope.platform(self._platforms, request.platform_id)
            organizers = await self._tenants.list_tenants(platform.platform_id)
            rollup = build_rollup(
                period, await self._billing.statements((o.tenant_id for o in organizers), period)
            )
            out.platform_id = platform.platform_id
            out.currencies.extend(_currency_pb(part) for part in rollup.currencies)
            out.organizers.extend(
                platform_pb2.OrganizerNetDue(
                    organizer_id=o.organizer_id,
                    currency=o.currency,
                    net_due_minor=o.net_due,
                    direction=o.direction,
                )
                for o in rollup.organizers
            )
            lines = rollup_csv(rollup)
        if request.include_csv:
            out.csv = "".join(lines).encode()
        return out


def _currency_pb(part: CurrencyStatement | RollupCurrency) -> platform_pb2.StatementCurrency:
    totals: Totals = part.totals
    out = platform_pb2.StatementCurrency(
        currency=part.currency,
        lines=[
            platform_pb2.StatementLine(section=line.section, label=line.label, amount_minor=line.amount)
            for line in part.lines
        ],
        net_due_minor=part.net_due,
        gross_minor=totals.gross,
        refunds_minor=totals.refunds,
        fees_minor=totals.fees,
        fee_reversals_minor=totals.fee_reversals,
        tickets_sold=totals.tickets_sold,
        refund_count=totals.refund_count,
        resale_sales_minor=totals.resale_gross,
        seller_payouts_minor=totals.seller_payouts,
        resale_fees_minor=totals.resale_fees,
        resale_count=totals.resale_count,
    )
    if isinstance(part, CurrencyStatement):
        out.direction = part.direction
    else:
        out.owed_to_organizers_minor = part.owed_to_organizers
        out.owed_by_organizers_minor = part.owed_by_organizers
    return out


# Organizer admins and reporting keys read their own statements; operators any of theirs.
STATEMENT_READERS: frozenset[RoleName] = ORGANIZER | {"reporting"}


def plan_pb(plan: FeePlan) -> platform_pb2.Plan:
    return platform_pb2.Plan(
        plan_id=plan.plan_id,
        default_currency=plan.default_currency,
        prices={
            code: platform_pb2.PlanPrices(
                setup_fee=p.setup_fee,
                monthly_fee=p.monthly_fee,
                ticket_fee_fixed=p.ticket_fee_fixed,
                processing_fee_fixed=p.processing_fee_fixed,
            )
            for code, p in plan.prices.items()
        },
        ticket_fee_bps=plan.ticket_fee_bps,
        processing_fee_bps=plan.processing_fee_bps,
        refund_policy=plan.refund_policy,
        limits=platform_pb2.PlanLimits(
            events_per_month=plan.limits.events_per_month,
            seats_per_map=plan.limits.seats_per_map,
            active_events=plan.limits.active_events,
            tickets_per_month=plan.limits.tickets_per_month,
        ),
        features=platform_pb2.PlanFeatures(
            own_branding=plan.features.own_branding,
            own_payment_account=plan.features.own_payment_account,
        ),
    )


def fee_plan(message: platform_pb2.Plan) -> FeePlan:
    """The request's plan, validated by rules.fees (INVALID_ARGUMENT naming ``plan``)."""
    fields = {
        "plan_id": message.plan_id,
        "default_currency": message.default_currency,
        "prices": {
            code: {
                "setup_fee": p.setup_fee,
                "monthly_fee": p.monthly_fee,
                "ticket_fee_fixed": p.ticket_fee_fixed,
                "processing_fee_fixed": p.processing_fee_fixed,
            }
            for code, p in message.prices.items()
        },
        "ticket_fee_bps": message.ticket_fee_bps,
        "processing_fee_bps": message.processing_fee_bps,
        "refund_policy": message.refund_policy or "full",
        "limits": {
            "events_per_month": message.limits.events_per_month,
            "seats_per_map": message.limits.seats_per_map,
            "active_events": message.limits.active_events,
            "tickets_per_month": message.limits.tickets_per_month,
        },
        "features": {
            name: getattr(message.features, name)
            for name in ("own_branding", "own_payment_account")
            if message.features.HasField(name)
        },
    }
    try:
        return msgspec.convert(fields, FeePlan)
    except msgspec.ValidationError as exc:
        raise InvalidRequest("plan", str(exc)) from exc


SERVICE = ServiceDeclaration(
    descriptor=platform_pb2.DESCRIPTOR.services_by_name["PlatformService"],
    add_to_server=platform_pb2_grpc.add_PlatformServiceServicer_to_server,
    factory=PlatformServicer,
    methods={
        "CreatePlatform": MethodRule(ROOT, audited=True),
        "ListPlatforms": MethodRule(ROOT),
        "GetPlatform": MethodRule(OPERATOR),
        "UpdatePlatform": MethodRule(OPERATOR, audited=True),
        "SignUpOrganizer": MethodRule(OPERATOR, audited=True),
        "GetOrganizer": MethodRule(ORGANIZER),
        "ListOrganizers": MethodRule(OPERATOR),
        "SuspendOrganizer": MethodRule(OPERATOR, audited=True),
        "ReinstateOrganizer": MethodRule(OPERATOR, audited=True),
        "ListAuditLog": MethodRule(AUDIT_READERS),
        "CreatePlan": MethodRule(OPERATOR, audited=True),
        "ListPlans": MethodRule(ORGANIZER),
        "GetStatement": MethodRule(STATEMENT_READERS),
        # Storefronts render branding and the hub: every key of the platform reads them.
        "GetBranding": MethodRule(EVERY_ROLE),
        "UpdateBranding": MethodRule(ORGANIZER, audited=True),
        "ListHubEvents": MethodRule(EVERY_ROLE),
        "ExportOrganizers": MethodRule(OPERATOR),
        "ListNotifications": MethodRule(AUDIT_READERS),
        "ChangePlan": MethodRule(OPERATOR, audited=True),
        "MarkStatementPaid": MethodRule(OPERATOR, audited=True),
    },
)
