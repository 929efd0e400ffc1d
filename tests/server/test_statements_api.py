"""Fees recorded at sale and statements, end to end: an organizer on a plan sells,
each ticket carries its split, and GetStatement's lines reconcile with the orders
to the minor unit (organizer, reporting key, platform roll-up, CSV, scoping)."""

from __future__ import annotations

import csv
import io
import json
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import (
    aftersale_pb2,
    aftersale_pb2_grpc,
    platform_pb2,
    reports_pb2,
    reports_pb2_grpc,
    sales_pb2,
    tenancy_pb2,
)

from holds import keys
from rules.fees import FeePlan, PlanPrices, settlement, split_ticket
from server.context import Stores
from tests.api import Api, field_violations
from tests.server import test_platforms_api
from tests.server.events import make_event
from tests.server.test_platforms_api import World, _code, _sign_up
from tests.server.test_sales_api import _hold

world = test_platforms_api.world  # the fixture: two platforms, an organizer of each

PLAN = FeePlan(
    plan_id="std",
    default_currency="EUR",
    prices={"EUR": PlanPrices(ticket_fee_fixed=50, processing_fee_fixed=25)},
    ticket_fee_bps=500,
    processing_fee_bps=150,
)


def _ts(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def statement_request(**fields: object) -> platform_pb2.GetStatementRequest:
    now = int(time.time() * 1000)
    base: dict[str, object] = {"period_start": _ts(now - 3_600_000), "period_end": _ts(now + 3_600_000)}
    return platform_pb2.GetStatementRequest(**(base | fields))  # type: ignore[arg-type]


async def planned_organizer(world: World, slug: str = "planned") -> tuple[str, str]:
    """(organizer id, organizer key) of an organizer of p1 on PLAN."""
    prices = {"EUR": platform_pb2.PlanPrices(ticket_fee_fixed=50, processing_fee_fixed=25)}
    plan = platform_pb2.Plan(plan_id="std", default_currency="EUR", prices=prices, ticket_fee_bps=500,
                             processing_fee_bps=150)  # fmt: skip
    await world.p1.platforms.CreatePlan(platform_pb2.CreatePlanRequest(plan=plan), metadata=world.p1.metadata)
    signed = await _sign_up(world.p1, slug, plan_id="std")
    return signed.organizer.organizer_id, signed.api_key


async def sell(api: Api, event_id: str, key: str, *seats: str, **fields: object) -> sales_pb2.Order:
    hold = await _hold(api, event_id, *seats)
    request = sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key=key, **fields)  # type: ignore[arg-type]
    return (await api.orders.CommitHold(request, metadata=api.metadata)).order


async def test_orders_record_the_split_and_statements_reconcile(world: World) -> None:
    org_id, key = await planned_organizer(world)
    async with Api(world.server, key) as org:
        event_id = await make_event(org)
        online = await sell(org, event_id, "k1", "r0-0", "r1-1")
        till = await sell(org, event_id, "k2", "r0-2", collector=sales_pb2.COLLECTOR_ORGANIZER,
                          payment_method="card_terminal")  # fmt: skip
        assert online.plan_id == "std"
        assert online.collector == sales_pb2.COLLECTOR_PLATFORM
        assert (till.collector, till.payment_method) == (sales_pb2.COLLECTOR_ORGANIZER, "card_terminal")
        expected_net = 0
        for order, collector in ((online, "platform"), (till, "organizer")):
            for t in order.tickets:
                split = split_ticket(t.price.amount_minor, "EUR", PLAN, collector)  # type: ignore[arg-type]
                got = t.split
                assert (got.ticket_fee_rate, got.ticket_fee_fixed, got.processing_fee_rate,
                        got.processing_fee_fixed) == split.parts()  # fmt: skip
                assert (got.platform_fee, got.organizer_share) == (split.platform, split.organizer)
                expected_net += settlement(split, collector)  # type: ignore[arg-type]

        got = await org.platforms.GetStatement(statement_request(include_csv=True), metadata=org.metadata)
        assert got.organizer_id == org_id
        [eur] = got.currencies
        tickets = [t for o in (online, till) for t in o.tickets]
        assert eur.gross_minor == sum(t.price.amount_minor for t in tickets)
        assert eur.fees_minor == sum(t.split.platform_fee for t in tickets)
        assert eur.tickets_sold == 3
        assert eur.net_due_minor == expected_net == sum(line.amount_minor for line in eur.lines)
        lines = {(line.section, line.label): line.amount_minor for line in eur.lines}
        assert lines[("sales", "online")] == sum(t.price.amount_minor for t in online.tickets)
        assert lines[("sales", "card_terminal")] == sum(t.price.amount_minor for t in till.tickets)
        assert (
            lines[("held_by_organizer", "organizer's payment account")] == -lines[("sales", "card_terminal")]
        )
        csv = got.csv.decode().splitlines()
        assert csv[0].startswith("organizer_id,period_start")
        assert csv[-1].endswith(f",{eur.net_due_minor}")
        assert ",net_due," in csv[-1]

        # the event's report: gross and net of the fees split at sale, by channel
        report = await reports_pb2_grpc.ReportServiceStub(org.channel).GetEventReport(
            reports_pb2.GetEventReportRequest(event_id=event_id), metadata=org.metadata
        )
        assert report.revenue_gross.amount_minor == eur.gross_minor
        assert report.fees.amount_minor == eur.fees_minor
        assert report.revenue_net.amount_minor == eur.gross_minor - eur.fees_minor
        assert [(g.key, g.seats.sold) for g in report.by_channel] == [("storefront", 3)]

        # a reporting key reads its organizer's statement, and only its own
        made = await org.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_REPORTING), metadata=org.metadata
        )
        async with Api(world.server, made.api_key) as reporting:
            seen = await reporting.platforms.GetStatement(statement_request(), metadata=reporting.metadata)
            assert seen.currencies == got.currencies
            denied = reporting.platforms.GetStatement(
                statement_request(organizer_id=world.org1_id), metadata=reporting.metadata
            )
            assert await _code(denied) == grpc.StatusCode.PERMISSION_DENIED

    # the platform: the organizer's statement, and the roll-up of all of its organizers
    by_platform = await world.p1.platforms.GetStatement(
        statement_request(organizer_id=org_id), metadata=world.p1.metadata
    )
    assert by_platform.currencies == got.currencies
    rollup = await world.p1.platforms.GetStatement(
        statement_request(include_csv=True), metadata=world.p1.metadata
    )
    assert rollup.platform_id == "p1"
    assert rollup.organizer_id == ""
    assert [(o.organizer_id, o.net_due_minor) for o in rollup.organizers] == [(org_id, expected_net)]
    assert rollup.currencies[0].owed_to_organizers_minor - rollup.currencies[0].owed_by_organizers_minor == (
        expected_net
    )
    assert b"owed_to_organizers" in rollup.csv
    # another platform cannot tell the organizer exists
    other = world.p2.platforms.GetStatement(
        statement_request(organizer_id=org_id), metadata=world.p2.metadata
    )
    assert await _code(other) == grpc.StatusCode.NOT_FOUND


async def test_orders_without_a_plan_record_no_fees(world: World) -> None:
    event_id = await make_event(world.org1)
    order = await sell(world.org1, event_id, "k", "r0-0")
    assert order.plan_id == ""
    assert order.tickets[0].split.platform_fee == 0
    got = await world.org1.platforms.GetStatement(statement_request(), metadata=world.org1.metadata)
    [eur] = got.currencies
    assert eur.fees_minor == 0
    assert eur.net_due_minor == eur.gross_minor == 5000


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"period_start": None}, "period_start"),
        ({"period_end": _ts(0)}, "period_end"),
        ({"period_end": _ts(500 * 86_400_000)}, "period_end"),
    ],
)
async def test_statement_periods_are_checked(world: World, fields: dict[str, object], field: str) -> None:
    request = statement_request(**{k: v for k, v in fields.items() if v is not None})
    if fields.get("period_start", 1) is None:
        request.ClearField("period_start")
    if field == "period_end" and fields["period_end"] == _ts(500 * 86_400_000):
        request.period_start.FromMilliseconds(0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.org1.platforms.GetStatement(request, metadata=world.org1.metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


async def test_box_office_sales_refunds_and_the_statement(world: World) -> None:
    org_id, key = await planned_organizer(world, "counter")
    async with Api(world.server, key) as org:
        made = await org.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_BOX_OFFICE), metadata=org.metadata
        )
        event_id = await make_event(org)
        held = await _hold(org, event_id, "r0-1")
        async with Api(world.server, made.api_key) as till:
            sell = sales_pb2.SellAtBoxOfficeRequest(
                event_id=event_id, seat_ids=["r0-0", "r0-1"], idempotency_key="bo-1", payment_method="cash"
            )
            refused = till.orders.SellAtBoxOffice(sell, metadata=till.metadata)
            assert await _code(refused) == grpc.StatusCode.FAILED_PRECONDITION  # r0-1 is held
            sell.override_holds = True
            sold = await till.orders.SellAtBoxOffice(sell, metadata=till.metadata)
            assert sold.overridden_holds == 1
            order = sold.order
            assert order.channel == sales_pb2.SALES_CHANNEL_BOX_OFFICE
            assert order.collector == sales_pb2.COLLECTOR_ORGANIZER
            assert order.payment_method == "cash"
            lost = org.orders.CommitHold(
                sales_pb2.CommitHoldRequest(hold_token=held.hold_token, idempotency_key="late"),
                metadata=org.metadata,
            )
            assert await _code(lost) == grpc.StatusCode.FAILED_PRECONDITION
            # refunds: part of one ticket, then the rest of the order with the seats back on sale
            first, _ = order.tickets
            refund = sales_pb2.RefundOrderRequest(
                event_id=event_id,
                order_id=order.order_id,
                refund_key="rf-1",
                tickets=[sales_pb2.TicketRefund(ticket_id=first.ticket_id, amount_minor=1234)],
            )
            part = await till.orders.RefundOrder(refund, metadata=till.metadata)
            assert part.refund.total.amount_minor == 1234
            assert part.order.tickets[0].refunded.amount_minor == 1234
            too_much = sales_pb2.RefundOrderRequest(
                event_id=event_id,
                order_id=order.order_id,
                refund_key="rf-2",
                tickets=[
                    sales_pb2.TicketRefund(ticket_id=first.ticket_id, amount_minor=first.price.amount_minor)
                ],
            )
            assert await _code(till.orders.RefundOrder(too_much, metadata=till.metadata)) == (
                grpc.StatusCode.FAILED_PRECONDITION
            )
            rest = await till.orders.RefundOrder(
                sales_pb2.RefundOrderRequest(
                    event_id=event_id,
                    order_id=order.order_id,
                    refund_key="rf-3",
                    release=sales_pb2.REFUND_RELEASE_FREE,
                ),
                metadata=till.metadata,
            )
            assert rest.order.status == sales_pb2.ORDER_STATUS_CANCELLED
            again = await org.holds.HoldSeats(
                sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]), metadata=org.metadata
            )
            assert again.hold.seat_ids == ["r0-0"]

        # the statement: the sale and both refunds, reconciled to the minor unit
        got = await org.platforms.GetStatement(statement_request(), metadata=org.metadata)
        [eur] = got.currencies
        paid = sum(t.price.amount_minor for t in order.tickets)
        assert eur.gross_minor == paid
        assert eur.refunds_minor == paid  # everything was refunded
        assert eur.refund_count == 3  # one line per ticket and refund
        reversed_fees = sum(t.fee_reversal.platform_fee for r in (part, rest) for t in r.refund.tickets)
        assert (
            eur.fee_reversals_minor == reversed_fees == eur.fees_minor
        )  # a full refund reverses all (full policy)
        assert eur.net_due_minor == 0
        assert sum(line.amount_minor for line in eur.lines) == 0

        audit = await org.platforms.ListAuditLog(
            platform_pb2.ListAuditLogRequest(method="OrderService/SellAtBoxOffice"), metadata=org.metadata
        )
        [entry] = audit.entries
        assert entry.targets["order_id"] == order.order_id
        assert entry.targets["overridden_holds"] == "1"
        refunds = await org.platforms.ListAuditLog(
            platform_pb2.ListAuditLogRequest(method="OrderService/RefundOrder"), metadata=org.metadata
        )
        # every refund call is audited, the refused one too
        assert sorted(e.outcome for e in refunds.entries) == ["FAILED_PRECONDITION", "OK", "OK"]
    assert org_id


async def test_the_statement_exported_as_csv_and_json_lines_matches_get_statement(world: World) -> None:
    _, key = await planned_organizer(world, "exporter")
    async with Api(world.server, key) as org:
        event_id = await make_event(org)
        await sell(org, event_id, "k1", "r0-0", "r1-1")
        await sell(org, event_id, "k2", "r0-2", collector=sales_pb2.COLLECTOR_ORGANIZER)
        period = statement_request(include_csv=True)
        got = await org.platforms.GetStatement(period, metadata=org.metadata)
        exports = reports_pb2_grpc.ExportServiceStub(org.channel)

        async def export(fmt: int, **fields: object) -> bytes:
            request = reports_pb2.ExportRequest(kind=reports_pb2.EXPORT_KIND_STATEMENT, format=fmt,  # type: ignore[arg-type]
                                                **fields)  # fmt: skip
            chunks = [c async for c in exports.Export(request, metadata=org.metadata)]
            return b"".join(c.data for c in chunks)

        window = {"from": period.period_start, "until": period.period_end}
        csv_bytes = await export(reports_pb2.EXPORT_FORMAT_CSV, bom=True, **window)
        assert csv_bytes == b"\xef\xbb\xbf" + got.csv
        lines = (await export(reports_pb2.EXPORT_FORMAT_JSONL, event_id=event_id, **window)).splitlines()
        rows = [json.loads(line) for line in lines]
        [eur] = got.currencies
        assert [(r["section"], r["label"], r["amount_minor"]) for r in rows] == [
            *((line.section, line.label, line.amount_minor) for line in eur.lines),
            ("net_due", rows[-1]["label"], eur.net_due_minor),
        ]
        missing = exports.Export(
            reports_pb2.ExportRequest(kind=reports_pb2.EXPORT_KIND_STATEMENT, until=period.period_end),
            metadata=org.metadata,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in missing:
                pass
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value)[0][0] == "from"


async def test_the_platform_report_rolls_up_its_organizers(world: World) -> None:
    planned_id, key = await planned_organizer(world, "rolled-up")
    async with Api(world.server, key) as org:
        event_id = await make_event(org)
        first = await sell(org, event_id, "k1", "r0-0", "r1-1")
        await sell(org, event_id, "k2", "r0-2")
    event_1 = await make_event(world.org1)  # p1's other organizer, no plan
    await sell(world.org1, event_1, "k3", "r0-0")
    reports = reports_pb2_grpc.ReportServiceStub(world.p1.channel)
    report = await reports.GetPlatformReport(
        reports_pb2.GetPlatformReportRequest(), metadata=world.p1.metadata
    )
    assert report.platform_id == "p1"
    by_id = {o.organizer_id: o for o in report.organizers}
    assert set(by_id) == {world.org1_id, planned_id}, "p2's organizer is not in p1's report"
    [planned_eur] = by_id[planned_id].currencies
    assert (planned_eur.orders, planned_eur.tickets_sold) == (2, 3)
    fees = sum(t.split.platform_fee for t in first.tickets)
    assert planned_eur.fees.amount_minor > fees > 0
    [other_eur] = by_id[world.org1_id].currencies
    assert (other_eur.tickets_sold, other_eur.fees.amount_minor) == (1, 0)
    [total] = report.totals
    assert total.tickets_sold == 4
    assert total.revenue_gross.amount_minor == (
        planned_eur.revenue_gross.amount_minor + other_eur.revenue_gross.amount_minor
    )
    assert total.revenue_net.amount_minor == total.revenue_gross.amount_minor - planned_eur.fees.amount_minor
    assert sum(m.tickets for m in report.sales_per_minute) == 4
    # a period before the sales: organizers listed, nothing sold in it
    empty = await reports.GetPlatformReport(
        reports_pb2.GetPlatformReportRequest(until=_ts(first.created_at.ToMilliseconds() - 60_000)),
        metadata=world.p1.metadata,
    )
    assert [c.tickets_sold for o in empty.organizers for c in o.currencies] == [0, 0]
    backwards = reports.GetPlatformReport(
        reports_pb2.GetPlatformReportRequest(
            **{"from": _ts(2_000_000_000_000), "until": _ts(1_000_000_000_000)}
        ),
        metadata=world.p1.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await backwards
    assert field_violations(refused.value) == [("until", "must be after from")]
    # another platform's admin: the same answer as for a platform that does not exist
    theirs = reports_pb2_grpc.ReportServiceStub(world.p2.channel)
    for platform_id in ("p1", "p9"):
        call = theirs.GetPlatformReport(
            reports_pb2.GetPlatformReportRequest(platform_id=platform_id), metadata=world.p2.metadata
        )
        assert await _code(call) == grpc.StatusCode.NOT_FOUND


async def test_a_plans_features_decide_own_branding_and_own_payment_account(world: World) -> None:
    plan = platform_pb2.Plan(
        plan_id="basic",
        default_currency="EUR",
        prices={"EUR": platform_pb2.PlanPrices(ticket_fee_fixed=50)},
        features=platform_pb2.PlanFeatures(own_branding=False, own_payment_account=False),
    )
    created = await world.p1.platforms.CreatePlan(
        platform_pb2.CreatePlanRequest(plan=plan), metadata=world.p1.metadata
    )
    assert (created.plan.features.own_branding, created.plan.features.own_payment_account) == (False, False)
    listed = await world.p1.platforms.ListPlans(platform_pb2.ListPlansRequest(), metadata=world.p1.metadata)
    defaults = [p.features for p in listed.plans if p.plan_id != "basic"]
    assert all(f.own_branding and f.own_payment_account for f in defaults), "unset: included"
    signed = await _sign_up(world.p1, "basic-hall", plan_id="basic")
    async with Api(world.server, signed.api_key) as org:
        event_id = await make_event(org)
        hold = await _hold(org, event_id, "r0-0")
        own_account = org.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="k1",
                                        collector=sales_pb2.COLLECTOR_ORGANIZER),
            metadata=org.metadata,
        )  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await own_account
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "own payment account" in (refused.value.details() or "")
        request = sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="k1")
        sold = await org.orders.CommitHold(request, metadata=org.metadata)  # the platform collects
        assert sold.order.collector == sales_pb2.COLLECTOR_PLATFORM
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await org.platforms.UpdateBranding(
                platform_pb2.UpdateBrandingRequest(display_name="Basic Hall"), metadata=org.metadata
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "own branding" in (refused.value.details() or "")
        moved = await org.platforms.UpdateBranding(
            platform_pb2.UpdateBrandingRequest(slug="basic-hall-2"), metadata=org.metadata
        )
        assert moved.branding.slug == "basic-hall-2"


async def test_setup_and_monthly_fees_are_billed_once_in_the_organizers_currency(
    world: World, stores: Stores
) -> None:
    prices = {
        "EUR": platform_pb2.PlanPrices(setup_fee=10_000, monthly_fee=2_900),
        "GBP": platform_pb2.PlanPrices(setup_fee=9_000, monthly_fee=2_500),
    }
    plan = platform_pb2.Plan(plan_id="monthly", default_currency="EUR", prices=prices)
    await world.p1.platforms.CreatePlan(platform_pb2.CreatePlanRequest(plan=plan), metadata=world.p1.metadata)
    british = await _sign_up(world.p1, "london-hall", plan_id="monthly", country="GB")
    german = await _sign_up(world.p1, "berlin-hall", plan_id="monthly")  # DE: EUR
    for signed, currency, fees in ((british, "GBP", 11_500), (german, "EUR", 12_900)):
        got = await world.p1.platforms.GetStatement(
            statement_request(organizer_id=signed.organizer.organizer_id), metadata=world.p1.metadata
        )
        [part] = got.currencies
        lines = {(line.section, line.label): line.amount_minor for line in part.lines}
        assert part.currency == currency
        assert (lines[("fees", "setup_fee")], lines[("fees", "monthly_fee")]) == (
            -prices[currency].setup_fee,
            -prices[currency].monthly_fee,
        )
        assert part.net_due_minor == -fees == sum(line.amount_minor for line in part.lines)
    # the reaper's billing round bills nothing twice; the next month's fee when it comes
    organizer = await stores.tenants.get_tenant(german.organizer.organizer_id)
    await stores.dues.bill_plans(int(time.time() * 1000))
    next_month = int(time.time() * 1000) + 32 * 86_400_000
    await stores.dues.bill_plans(next_month)
    await stores.dues.bill_plans(next_month)
    charges = await stores.redis.hkeys(keys.tenant_charges(organizer.tenant_id))
    assert len(charges) == 3  # setup, this month, next month


async def test_resales_appear_in_the_statement_and_its_export_netting_to_zero(world: World) -> None:
    """A ticket resold on the marketplace: the statement shows what the resale buyer paid,
    the seller's payout and the platform's fees on it, which add up to zero for the organizer."""
    _, key = await planned_organizer(world, "resold")
    async with Api(world.server, key) as org:
        event_id = await make_event(org)
        order = await sell(org, event_id, "k1", "r0-0")
        before = await org.platforms.GetStatement(statement_request(), metadata=org.metadata)
        after = aftersale_pb2_grpc.AfterSaleServiceStub(org.channel)
        await after.SetResaleRules(
            aftersale_pb2.SetResaleRulesRequest(event_id=event_id, allowed=True), metadata=org.metadata
        )
        ticket = order.tickets[0].ticket_id
        listed = await after.ListTicketForResale(
            aftersale_pb2.ListTicketForResaleRequest(event_id=event_id, order_id=order.order_id,
                                                     ticket_id=ticket, price=7000, seller_id="ada"),
            metadata=org.metadata,
        )  # fmt: skip
        hold = await after.HoldListing(
            aftersale_pb2.HoldListingRequest(event_id=event_id, ticket_id=ticket,
                                             listing_id=listed.listing.listing_id, buyer_id="bob"),
            metadata=org.metadata,
        )  # fmt: skip
        bought = await after.CommitListing(
            aftersale_pb2.CommitListingRequest(hold_token=hold.hold_token, resale_key="buy-1",
                                               buyer=sales_pb2.BuyerDetails(name="Bob")),
            metadata=org.metadata,
        )  # fmt: skip
        fees = split_ticket(7000, "EUR", PLAN, "platform")
        assert bought.resale.seller_payout.amount_minor == 7000 - fees.platform

        period = statement_request(include_csv=True)
        got = await org.platforms.GetStatement(period, metadata=org.metadata)
        [eur] = got.currencies
        [was] = before.currencies
        resale_totals = (eur.resale_sales_minor, eur.seller_payouts_minor, eur.resale_fees_minor)
        assert (*resale_totals, eur.resale_count) == (7000, 7000 - fees.platform, fees.platform, 1)
        resale_lines = [(line.label, line.amount_minor) for line in eur.lines if line.section == "resales"]
        assert resale_lines == [
            ("resale sales", 7000),
            ("seller payouts", -(7000 - fees.platform)),
            ("resale ticket_fee", -fees.ticket_fee),
            ("resale processing_fee", -fees.processing_fee),
        ]
        assert eur.net_due_minor == was.net_due_minor  # a resale never changes what the organizer is owed
        assert (eur.gross_minor, eur.fees_minor) == (was.gross_minor, was.fees_minor)
        assert sum(line.amount_minor for line in eur.lines) == eur.net_due_minor

        exports = reports_pb2_grpc.ExportServiceStub(org.channel)
        for fmt in (reports_pb2.EXPORT_FORMAT_CSV, reports_pb2.EXPORT_FORMAT_JSONL):
            request = reports_pb2.ExportRequest(kind=reports_pb2.EXPORT_KIND_STATEMENT, format=fmt,  # type: ignore[arg-type]
                                                event_id=event_id, **{"from": period.period_start},
                                                until=period.period_end)  # fmt: skip
            data = b"".join([c.data async for c in exports.Export(request, metadata=org.metadata)])
            if fmt == reports_pb2.EXPORT_FORMAT_CSV:
                assert data == got.csv
                rows = [
                    (r["section"], r["label"], int(r["amount_minor"]))
                    for r in csv.DictReader(io.StringIO(data.decode()))
                ]
            else:
                rows = [
                    (r["section"], r["label"], r["amount_minor"]) for r in map(json.loads, data.splitlines())
                ]
            assert [
                (label, amount) for section, label, amount in rows if section == "resales"
            ] == resale_lines
