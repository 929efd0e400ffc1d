"""ReportService end to end: an event's figures, its sales chart and heat maps."""

from __future__ import annotations

import io

import grpc
import pytest
from PIL import Image
from seatwise.v1 import access_pb2, reports_pb2, reports_pb2_grpc, sales_pb2, tenancy_pb2

from tests.api import Api
from tests.server.test_feed_api import _cancel, _event, _sell


def _reports(api: Api) -> reports_pb2_grpc.ReportServiceStub:
    return reports_pb2_grpc.ReportServiceStub(api.channel)


async def test_event_report_counts_seats_revenue_holds_and_check_ins(organizer: Api) -> None:
    event_id = await _event(organizer)
    a = await _sell(organizer, event_id, "r0-0", "a@example.com")
    await _sell(organizer, event_id, "r1-0", "b@example.com")
    c = await _sell(organizer, event_id, "r0-1", "c@example.com")
    await _cancel(organizer, event_id, c.order_id)
    held = await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-5"]), metadata=organizer.metadata
    )
    await organizer.holds.ReleaseHold(  # a hold abandoned
        sales_pb2.ReleaseHoldRequest(hold_token=held.hold.hold_token), metadata=organizer.metadata
    )
    token = await organizer.tickets.GetTicketToken(
        access_pb2.GetTicketTokenRequest(
            event_id=event_id, order_id=a.order_id, ticket_id=a.tickets[0].ticket_id
        ),
        metadata=organizer.metadata,
    )
    await organizer.access.ScanTicket(
        access_pb2.ScanTicketRequest(event_id=event_id, token=token.token, gate="A", device_id="d"),
        metadata=organizer.metadata,
    )
    report = await _reports(organizer).GetEventReport(
        reports_pb2.GetEventReportRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert report.name == "Feed night"
    assert report.seats.sold == 2
    assert report.seats.held == 0
    assert report.seats.free == 12 - 2 + 5  # seats and the GA area's places
    cats = {g.key: g.seats for g in report.by_category}
    assert cats["front"].sold == 1
    assert cats["back"].sold == 1
    assert sum(g.seats.sold for g in report.by_section) == 2
    assert report.orders == 3
    assert report.orders_cancelled == 1
    assert report.tickets_sold == 2
    assert report.tickets_cancelled == 1
    assert report.revenue_gross.amount_minor == 5000 + 3000
    assert report.revenue_gross.currency == "EUR"
    assert report.fees_recorded  # no plan: a split of 0 (tests/server/test_statements_api.py has fees)
    assert (report.fees.amount_minor, report.revenue_net.amount_minor) == (0, 5000 + 3000)
    assert sum(m.tickets for m in report.sales_per_minute) == 3
    assert report.peak_tickets_per_minute >= 1
    assert (report.holds_committed, report.holds_released, report.holds_expired) == (3, 1, 0)
    assert report.checked_in == 1
    assert report.checkin_rate == pytest.approx(0.5)
    assert [(g.key, g.seats.sold) for g in report.by_channel] == [("storefront", 2)]


async def test_sales_chart_and_heat_maps_are_images(organizer: Api) -> None:
    event_id = await _event(organizer)
    for seat in ("r0-0", "r0-1", "r1-2"):
        await _sell(organizer, event_id, seat, f"{seat}@example.com")
    reports = _reports(organizer)
    chart = await reports.RenderSalesChart(
        reports_pb2.RenderSalesChartRequest(event_id=event_id, width=800, height=400),
        metadata=organizer.metadata,
    )
    assert chart.content_type == "image/png"
    assert Image.open(io.BytesIO(chart.content)).size == (800, 400)
    for colouring in (reports_pb2.HEAT_MAP_COLOURING_STATUS, reports_pb2.HEAT_MAP_COLOURING_TIME_OF_SALE):
        png = await reports.RenderHeatMap(
            reports_pb2.RenderHeatMapRequest(event_id=event_id, colouring=colouring, width=600),
            metadata=organizer.metadata,
        )
        assert png.content.startswith(b"\x89PNG")
        assert png.content_type == "image/png"
    svg = await reports.RenderHeatMap(
        reports_pb2.RenderHeatMapRequest(
            event_id=event_id,
            format=reports_pb2.REPORT_IMAGE_FORMAT_SVG,
            colouring=reports_pb2.HEAT_MAP_COLOURING_TIME_OF_SALE,
        ),
        metadata=organizer.metadata,
    )
    text = svg.content.decode()
    assert text.count('class="seat sh-') == 3
    assert "Not sold" in text
    status_svg = await reports.RenderHeatMap(
        reports_pb2.RenderHeatMapRequest(event_id=event_id, format=reports_pb2.REPORT_IMAGE_FORMAT_SVG),
        metadata=organizer.metadata,
    )
    assert status_svg.content.decode().count('class="seat st-sold"') == 3


async def test_reports_are_the_callers_and_reporting_keys_may_read_them(
    organizer: Api, admin: Api, server: str
) -> None:
    event_id = await _event(organizer)
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_REPORTING), metadata=organizer.metadata
    )
    async with Api(server, created.api_key) as reporting:
        report = await _reports(reporting).GetEventReport(
            reports_pb2.GetEventReportRequest(event_id=event_id), metadata=reporting.metadata
        )
        assert report.event_id == event_id
    key = await admin.new_tenant_key("other")
    async with Api(server, key) as other:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _reports(other).GetEventReport(
                reports_pb2.GetEventReportRequest(event_id=event_id), metadata=other.metadata
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _reports(organizer).RenderSalesChart(
            reports_pb2.RenderSalesChartRequest(event_id=event_id, width=99_999), metadata=organizer.metadata
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
