"""seatwise.v1.ReportService: an event's figures, its sales chart and seat-map heat
maps (docs/data.md#reports). Figures are folded chunk by chunk (rules/reports.py);
the chart and the heat maps are drawn in the heavy-work pool (server/heavy.py),
never in the event loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import numpy as np
from seatwise.v1 import common_pb2, reports_pb2, reports_pb2_grpc

from holds.availability import STATE_NAMES, count_by_group
from holds.errors import InvalidRequest
from holds.feed.exports import ExportReader, TimeRange, hold_endings
from rules.reports import SalesTally, hold_outcomes, rate, time_buckets
from seatmap import render
from server import heavy_jobs, scope
from server.auth import OPERATOR, REPORTING, current_principal
from server.context import Stores
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context
from server.servicers.convert import ts
from server.servicers.exports import ms_of

TIME_SHADES: Final = len(render.SHADE_COLORS)
MAX_CHART_PIXELS: Final = 4000
ALL_TIME: Final = TimeRange()


def _counts(row: list[int] | tuple[int, ...]) -> reports_pb2.SeatStatusCounts:
    return reports_pb2.SeatStatusCounts(**dict(zip(STATE_NAMES, row, strict=True)))


def _groups(keys: tuple[str, ...] | list[str], rows: list[list[int]]) -> list[reports_pb2.ReportGroup]:
    return [reports_pb2.ReportGroup(key=k, seats=_counts(r)) for k, r in zip(keys, rows, strict=True)]


def _money(amount: int, currency: str) -> common_pb2.Money:
    return common_pb2.Money(amount_minor=amount, currency=currency)


def _channels(tally: SalesTally) -> list[reports_pb2.ReportGroup]:
    return [
        reports_pb2.ReportGroup(key=k, seats=reports_pb2.SeatStatusCounts(sold=v))
        for k, v in sorted(tally.by_channel.items())
    ]


def _currency_figures(currency: str, tally: SalesTally) -> reports_pb2.CurrencyFigures:
    return reports_pb2.CurrencyFigures(
        currency=currency,
        orders=tally.orders,
        orders_cancelled=tally.orders_cancelled,
        tickets_sold=tally.tickets_sold,
        tickets_cancelled=tally.tickets_cancelled,
        revenue_gross=_money(tally.gross, currency),
        fees=_money(tally.fees, currency),
        revenue_net=_money(tally.gross - tally.fees, currency),
        by_channel=_channels(tally),
    )


class ReportServicer(reports_pb2_grpc.ReportServiceServicer):
    def __init__(self, stores: Stores) -> None:
        redis, live = stores.redis, stores.live
        self._tenants = stores.tenants
        self._platforms = stores.platforms
        self._events = stores.events
        self._door = stores.door
        self._heavy = stores.heavy
        self._r = redis
        self._live = live
        self._reader = ExportReader(redis, live)

    async def _tally(
        self, tenant: str, event_id: str, period: TimeRange = ALL_TIME, into: SalesTally | None = None
    ) -> SalesTally:
        """The event's orders in ``period`` folded into ``into`` (a new tally by default)."""
        tally = SalesTally() if into is None else into
        async for orders in self._reader.orders(tenant, event_id, period):
            for o in orders:
                # fees as split at sale, on the tickets still valid (an order without a
                # plan records a split of 0); refunds are the statement's business
                fees = sum(t.platform_fee for t in o.tickets if t.status == "valid")
                tally.add_order(
                    o.created_ms,
                    o.status,
                    ((t.category, t.price, t.status == "valid") for t in o.tickets),
                    fees=fees,
                    channel=o.channel,
                )
        return tally

    async def GetPlatformReport(
        self, request: reports_pb2.GetPlatformReportRequest, context: Context
    ) -> reports_pb2.PlatformReport:
        platform = await scope.platform(self._platforms, request.platform_id)
        period = TimeRange(ms_of(request, "from"), ms_of(request, "until"))
        if period.from_ms and period.until_ms and period.until_ms <= period.from_ms:
            raise InvalidRequest("until", "must be after from")
        report = reports_pb2.PlatformReport(platform_id=platform.platform_id)
        totals: dict[str, SalesTally] = {}
        everything = SalesTally()
        organizers = await self._tenants.list_tenants(platform.platform_id)
        for organizer in sorted(organizers, key=lambda o: o.tenant_id):
            event_ids = await self._reader.event_ids(organizer.tenant_id)
            by_currency: dict[str, SalesTally] = {}
            admitted = 0
            for event_id, (currency, checked_in) in zip(
                event_ids, await self._reader.event_facts(event_ids), strict=True
            ):
                tally = by_currency.setdefault(currency, SalesTally())
                await self._tally(organizer.tenant_id, event_id, period, tally)
                admitted += checked_in
            figures = report.organizers.add(
                organizer_id=organizer.tenant_id, slug=organizer.slug, name=organizer.name,
                events=len(event_ids), checked_in=admitted,
            )  # fmt: skip
            for currency, tally in sorted(by_currency.items()):
                figures.currencies.append(_currency_figures(currency, tally))
                totals[currency] = totals.get(currency, SalesTally()).merge(tally)
                everything = everything.merge(tally)
            report.checked_in += admitted
        report.totals.extend(_currency_figures(c, t) for c, t in sorted(totals.items()))
        report.sales_per_minute.extend(
            reports_pb2.SalesMinute(minute=ts(m), tickets=t, orders=o)
            for m, t, o in everything.timeline()
            if t or o
        )
        report.peak_tickets_per_minute = everything.peak_per_minute
        return report

    async def GetEventReport(
        self, request: reports_pb2.GetEventReportRequest, context: Context
    ) -> reports_pb2.EventReport:
        tenant = current_principal().require_tenant()
        ctx = await self._live.get(tenant, request.event_id)
        event = await self._events.get(ctx.ref)
        snapshot = (await self._live.mirror(ctx)).snapshot
        index = ctx.loaded.index
        states = snapshot.states
        by_category = count_by_group(index.category_code, len(index.category_keys), states)
        by_section = count_by_group(index.section_code, len(index.section_ids), states)
        category_of = {c: i for i, c in enumerate(index.category_keys)}
        total = [int(n) for n in np.bincount(states.astype(np.intp), minlength=len(STATE_NAMES))]
        ga_rows: list[list[int]] = []
        for area_id, ga in sorted(snapshot.ga.items()):  # GA places count as seats of their area
            row = [max(ga.capacity - ga.held - ga.sold, 0), ga.held, ga.sold, 0, 0]
            ga_rows.append(row)
            total = [a + b for a, b in zip(total, row, strict=True)]
            area = index.ga_areas.get(area_id)
            if area is not None and area.category in category_of:
                cat = by_category[category_of[area.category]]
                by_category[category_of[area.category]] = [a + b for a, b in zip(cat, row, strict=True)]
        tally = await self._tally(tenant, ctx.event_id)
        outcomes = {"committed": 0, "released": 0, "expired": 0}
        async for whys in hold_endings(self._r, ctx.event_id):
            for k, v in hold_outcomes(whys).items():
                outcomes[k] += v
        door = await self._door.stats(tenant, ctx.event_id)
        currency = ctx.ref.currency
        report = reports_pb2.EventReport(
            event_id=ctx.event_id,
            name=event.settings.name,
            seats=_counts(total),
            by_category=_groups(index.category_keys, by_category),
            by_section=_groups(index.section_ids, by_section)
            + _groups([f"ga:{a}" for a in sorted(snapshot.ga)], ga_rows),
            by_channel=_channels(tally),
            orders=tally.orders,
            orders_cancelled=tally.orders_cancelled,
            tickets_sold=tally.tickets_sold,
            tickets_cancelled=tally.tickets_cancelled,
            revenue_gross=_money(tally.gross, currency),
            fees_recorded=tally.fees_recorded and tally.orders > 0,
            sales_per_minute=[
                reports_pb2.SalesMinute(minute=ts(m), tickets=t, orders=o)
                for m, t, o in tally.timeline()
                if t or o
            ],
            peak_tickets_per_minute=tally.peak_per_minute,
            holds_committed=outcomes["committed"],
            holds_released=outcomes["released"],
            holds_expired=outcomes["expired"],
            checked_in=door.admitted,
            checkin_rate=rate(door.admitted, tally.tickets_sold),
        )
        net = tally.net
        if net is not None:
            report.fees.CopyFrom(_money(tally.fees, currency))
            report.revenue_net.CopyFrom(_money(net, currency))
        if tally.first_ms:
            report.first_sale.CopyFrom(ts(tally.first_ms))
            report.last_sale.CopyFrom(ts(tally.last_ms))
        return report

    async def RenderSalesChart(
        self, request: reports_pb2.RenderSalesChartRequest, context: Context
    ) -> reports_pb2.ReportImage:
        tenant = current_principal().require_tenant()
        for name, value in (("width", request.width), ("height", request.height)):
            if not 0 <= value <= MAX_CHART_PIXELS:
                raise InvalidRequest(name, f"must be 0 (default) to {MAX_CHART_PIXELS} pixels")
        ctx = await self._live.get(tenant, request.event_id)
        event = await self._events.get(ctx.ref)
        tally = await self._tally(tenant, ctx.event_id)
        png = await self._heavy.run(
            tenant,
            heavy_jobs.sales_chart_job,
            tally.timeline(),
            event.settings.name,
            max(request.width or 1200, 200),
            max(request.height or 600, 150),
        )
        return reports_pb2.ReportImage(content=png, content_type="image/png")

    async def RenderHeatMap(
        self, request: reports_pb2.RenderHeatMapRequest, context: Context
    ) -> reports_pb2.ReportImage:
        tenant = current_principal().require_tenant()
        if request.format not in (
            0,
            reports_pb2.REPORT_IMAGE_FORMAT_PNG,
            reports_pb2.REPORT_IMAGE_FORMAT_SVG,
        ):
            raise InvalidRequest("format", f"unknown image format {request.format}")
        if request.colouring not in (0, 1, 2):
            raise InvalidRequest("colouring", f"unknown colouring {request.colouring}")
        ctx = await self._live.get(tenant, request.event_id)
        status: dict[int, str] | None = None
        shading: render.Shading | None = None
        if request.colouring == reports_pb2.HEAT_MAP_COLOURING_TIME_OF_SALE:
            sold_at: dict[int, int] = {}
            async for orders in self._reader.orders(tenant, ctx.event_id):
                for o in orders:
                    for t in o.tickets:
                        if t.status == "valid" and t.seat is not None:
                            sold_at[t.seat] = o.created_ms
            shading = _time_shading(sold_at)
        else:
            states = (await self._live.mirror(ctx)).snapshot.states
            status = {int(o): STATE_NAMES[states[o]] for o in np.flatnonzero(states)}
        width, height = request.width or None, request.height or None
        if request.format == reports_pb2.REPORT_IMAGE_FORMAT_SVG:
            svg = await self._heavy.render_in_pool(
                tenant, render.render_svg, ctx.loaded, status, width=width, height=height, shading=shading
            )
            return reports_pb2.ReportImage(content=svg.encode(), content_type="image/svg+xml")
        png = await self._heavy.render_in_pool(
            tenant, render.render_png, ctx.loaded, status, width=width, height=height, shading=shading
        )
        return reports_pb2.ReportImage(content=png, content_type="image/png")


def _when(ms: int, fmt: str) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt)


def _time_shading(sold_at: dict[int, int]) -> render.Shading:
    """Sold seats in TIME_SHADES equal spans of time from the first sale to the last."""
    if not sold_at:
        return render.Shading({}, ())
    first, last = min(sold_at.values()), max(sold_at.values())
    shades = TIME_SHADES if last > first else 1
    span = max(last - first, 1)
    # the date once when the sale fits in a day, on every label when it does not
    one_day = _when(first, "%Y-%m-%d") == _when(last, "%Y-%m-%d")
    fmt = "%H:%M" if one_day else "%Y-%m-%d %H:%M"
    labels = tuple(
        f"sold {_when(first + span * i // shades, fmt)} to {_when(first + span * (i + 1) // shades, fmt)} UTC"
        + (f", {_when(first, '%Y-%m-%d')}" if one_day else "")
        for i in range(shades)
    )
    return render.Shading(time_buckets(sold_at, shades), labels)


SERVICE = ServiceDeclaration(
    descriptor=reports_pb2.DESCRIPTOR.services_by_name["ReportService"],
    add_to_server=reports_pb2_grpc.add_ReportServiceServicer_to_server,
    factory=ReportServicer,
    methods={
        "GetEventReport": MethodRule(REPORTING),
        "RenderSalesChart": MethodRule(REPORTING),
        "RenderHeatMap": MethodRule(REPORTING),
        "GetPlatformReport": MethodRule(OPERATOR),
    },
)
