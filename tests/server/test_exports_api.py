"""ExportService end to end: CSV and JSON Lines of orders, tickets, check-ins and
marketing contacts, streamed in bounded chunks, through a real server and Redis
(single node and cluster)."""

from __future__ import annotations

import csv
import io
import json

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import access_pb2, feed_pb2, feed_pb2_grpc, reports_pb2, reports_pb2_grpc, tenancy_pb2

from holds.feed import exports as export_reader
from server.servicers import exports as export_servicer
from tests.api import Api
from tests.server.test_feed_api import _cancel, _event, _sell

SEATS = [f"r{r}-{n}" for r in range(2) for n in range(6)]


async def _export(
    api: Api,
    kind: int,
    fmt: int = reports_pb2.EXPORT_FORMAT_CSV,
    event_id: str = "",
    bom: bool = False,
    **times: Timestamp,
) -> tuple[bytes, list[reports_pb2.ExportChunk]]:
    stub = reports_pb2_grpc.ExportServiceStub(api.channel)
    request = reports_pb2.ExportRequest(kind=kind, format=fmt, event_id=event_id, bom=bom, **times)
    chunks = [c async for c in stub.Export(request, metadata=api.metadata)]
    return b"".join(c.data for c in chunks), chunks


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _jsonl(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.decode().splitlines()]


async def test_orders_and_tickets_parse_back_as_csv_and_json_lines(organizer: Api) -> None:
    event_id = await _event(organizer)
    ann = await _sell(organizer, event_id, "r0-0", "ann@example.com", "Ann Åström", consent=True)
    bob = await _sell(organizer, event_id, "r0-1", "bob@example.com", '=HYPERLINK("http://x")')
    await _cancel(organizer, event_id, bob.order_id)

    data, chunks = await _export(organizer, reports_pb2.EXPORT_KIND_ORDERS, event_id=event_id, bom=True)
    assert data.startswith(b"\xef\xbb\xbfevent_id,order_id,")
    assert b"\r\n" in data
    assert chunks[0].rows_estimate == 2
    assert chunks[-1].rows_so_far == 2
    rows = {r["order_id"]: r for r in _csv(data)}
    assert rows[ann.order_id]["buyer_name"] == "Ann Åström"
    assert rows[ann.order_id]["total"] == "50.00"
    assert rows[ann.order_id]["total_minor"] == "5000"
    assert rows[ann.order_id]["marketing_consent"] == "true"
    assert rows[bob.order_id]["status"] == "cancelled"
    assert rows[bob.order_id]["buyer_name"] == '\'=HYPERLINK("http://x")'  # formula guard

    data, _ = await _export(
        organizer, reports_pb2.EXPORT_KIND_ORDERS, reports_pb2.EXPORT_FORMAT_JSONL, event_id
    )
    lines = {r["order_id"]: r for r in _jsonl(data)}
    assert lines[bob.order_id]["buyer_name"] == '=HYPERLINK("http://x")'  # JSON keeps the value
    assert lines[ann.order_id]["total_minor"] == 5000

    data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_TICKETS, event_id=event_id)
    assert not data.startswith(b"\xef\xbb\xbf")
    tickets = {r["seat_id"]: r for r in _csv(data)}
    assert tickets["r0-0"]["status"] == "valid"
    assert tickets["r0-0"]["category"] == "front"
    assert tickets["r0-1"]["status"] == "cancelled"
    assert tickets["r0-0"]["section_id"]


async def test_a_date_range_and_every_event(organizer: Api) -> None:
    first, second = await _event(organizer), await _event(organizer)
    a = await _sell(organizer, first, "r0-0", "a@example.com")
    b = await _sell(organizer, second, "r0-0", "b@example.com")
    data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_ORDERS)
    assert {r["order_id"] for r in _csv(data)} == {a.order_id, b.order_id}
    after = Timestamp()
    after.FromMilliseconds(b.created_at.ToMilliseconds() + 1)
    data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_ORDERS, until=after, **{"from": b.created_at})
    assert {r["order_id"] for r in _csv(data)} == {b.order_id}
    data, chunks = await _export(organizer, reports_pb2.EXPORT_KIND_ORDERS, **{"from": after})
    assert _csv(data) == []
    assert data.startswith(b"event_id,")
    assert chunks[-1].rows_so_far == 0


async def test_chunks_are_bounded(organizer: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_servicer, "CHUNK_BYTES", 300)
    monkeypatch.setattr(export_servicer, "ROWS_PER_ENCODE", 2)
    monkeypatch.setattr(export_reader, "CHUNK", 3)
    event_id = await _event(organizer)
    for seat in SEATS:
        await _sell(organizer, event_id, seat, f"{seat}@example.com", "Buyer")
    data, chunks = await _export(organizer, reports_pb2.EXPORT_KIND_TICKETS, event_id=event_id)
    assert len(_csv(data)) == len(SEATS)
    assert len(chunks) > 3
    assert all(c.rows <= 2 * 3 for c in chunks)  # never more than a few encodes' worth
    assert max(len(c.data) for c in chunks) < 300 + 2 * 400
    assert [c.rows_so_far for c in chunks] == sorted(c.rows_so_far for c in chunks)


async def test_contacts_are_opted_in_buyers_by_their_newest_decision(organizer: Api) -> None:
    event_id = await _event(organizer)
    await _sell(organizer, event_id, "r0-0", "Ann@Example.com", "Ann", consent=True)
    await _sell(organizer, event_id, "r0-1", "bob@example.com", "Bob", consent=False)
    await _sell(organizer, event_id, "r0-2", "cat@example.com", "Cat", consent=True)
    await _sell(organizer, event_id, "r0-3", "dan@example.com", "Dan", consent=False)
    await _sell(organizer, event_id, "r0-4", "dan@example.com", "Dan", consent=True)  # a newer opt-in
    feed = feed_pb2_grpc.FeedServiceStub(organizer.channel)
    await feed.UpdateConsent(  # the CRM: Cat opted out after buying
        feed_pb2.UpdateConsentRequest(email="cat@example.com", opted_in=False, source="crm"),
        metadata=organizer.metadata,
    )
    await feed.UpdateConsent(  # Bob opted in later
        feed_pb2.UpdateConsentRequest(email="bob@example.com", opted_in=True, source="crm"),
        metadata=organizer.metadata,
    )
    data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_CONTACTS, event_id=event_id)
    rows = {r["email"]: r for r in _csv(data)}
    assert set(rows) == {"ann@example.com", "bob@example.com", "dan@example.com"}
    assert rows["bob@example.com"]["consent_source"] == "crm"
    assert rows["ann@example.com"]["consent_source"] == "checkout"


async def test_contacts_follow_a_decision_by_buyer_id(organizer: Api) -> None:
    event_id = await _event(organizer)
    await _sell(organizer, event_id, "r0-0", "eve@example.com", "Eve", consent=True, buyer_id="shop-9")
    await _sell(organizer, event_id, "r0-1", "fay@example.com", "Fay", consent=True, buyer_id="shop-10")
    await feed_pb2_grpc.FeedServiceStub(organizer.channel).UpdateConsent(
        feed_pb2.UpdateConsentRequest(buyer_id="shop-9", opted_in=False, source="crm"),
        metadata=organizer.metadata,
    )
    data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_CONTACTS, event_id=event_id)
    assert {r["email"] for r in _csv(data)} == {"fay@example.com"}
    orders, _ = await _export(organizer, reports_pb2.EXPORT_KIND_ORDERS, event_id=event_id)
    consent = {r["buyer_email"]: r["marketing_consent"] for r in _csv(orders)}
    assert consent == {"eve@example.com": "false", "fay@example.com": "true"}


async def test_erased_buyers_appear_erased(organizer: Api) -> None:
    event_id = await _event(organizer)
    order = await _sell(organizer, event_id, "r0-0", "eve@example.com", "Eve", consent=True)
    await feed_pb2_grpc.FeedServiceStub(organizer.channel).EraseBuyer(
        feed_pb2.EraseBuyerRequest(email="eve@example.com"), metadata=organizer.metadata
    )
    for kind in (reports_pb2.EXPORT_KIND_ORDERS, reports_pb2.EXPORT_KIND_TICKETS):
        data, _ = await _export(organizer, kind, event_id=event_id)
        assert b"eve@example.com" not in data
        assert b"Eve" not in data
        (row,) = _csv(data)
        assert row["order_id"] == order.order_id
        assert row["buyer_erased"] == "true"
    data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_CONTACTS, event_id=event_id)
    assert _csv(data) == []


async def test_checkins(organizer: Api) -> None:
    event_id = await _event(organizer)
    order = await _sell(organizer, event_id, "r0-0", "ann@example.com")
    token = await organizer.tickets.GetTicketToken(
        access_pb2.GetTicketTokenRequest(
            event_id=event_id, order_id=order.order_id, ticket_id=order.tickets[0].ticket_id
        ),
        metadata=organizer.metadata,
    )
    await organizer.access.ScanTicket(
        access_pb2.ScanTicketRequest(event_id=event_id, token=token.token, gate="North", device_id="d1"),
        metadata=organizer.metadata,
    )
    data, _ = await _export(
        organizer, reports_pb2.EXPORT_KIND_CHECKINS, reports_pb2.EXPORT_FORMAT_JSONL, event_id
    )
    (row,) = _jsonl(data)
    assert row["ticket_id"] == order.tickets[0].ticket_id
    assert row["order_id"] == order.order_id
    assert row["state"] == "in"
    assert row["gate"] == "North"
    assert str(row["at"]).endswith("Z")


async def test_only_the_callers_events(organizer: Api, admin: Api, server: str) -> None:
    event_id = await _event(organizer)
    await _sell(organizer, event_id, "r0-0", "ann@example.com", "Ann")
    key = await admin.new_tenant_key("other")
    async with Api(server, key) as other:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _export(other, reports_pb2.EXPORT_KIND_ORDERS, event_id=event_id)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        data, _ = await _export(other, reports_pb2.EXPORT_KIND_ORDERS)  # all of its events: none
        assert _csv(data) == []
        data, _ = await _export(other, reports_pb2.EXPORT_KIND_CONTACTS)
        assert b"ann@" not in data


async def test_roles_and_bad_requests(organizer: Api, server: str) -> None:
    event_id = await _event(organizer)
    for role, allowed in ((tenancy_pb2.ROLE_REPORTING, True), (tenancy_pb2.ROLE_BOX_OFFICE, False)):
        created = await organizer.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=role), metadata=organizer.metadata
        )
        async with Api(server, created.api_key) as staff:
            if allowed:
                await _export(staff, reports_pb2.EXPORT_KIND_ORDERS, event_id=event_id)
            else:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await _export(staff, reports_pb2.EXPORT_KIND_ORDERS, event_id=event_id)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for kind, fmt, bom in ((0, 0, False), (1, 2, True), (1, 9, False)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _export(organizer, kind, fmt, event_id, bom)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
