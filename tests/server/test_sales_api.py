"""Events, holds and orders end to end through a real server and Redis."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import common_pb2, events_pb2, sales_pb2, seatmap_pb2, tenancy_pb2

from tests.api import Api, field_violations, precondition_subjects
from tests.server.events import make_event
from tests.server.maps import small_map


async def _hold(api: Api, event_id: str, *seats: str) -> sales_pb2.Hold:
    response = await api.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=list(seats)), metadata=api.metadata
    )
    return response.hold


async def test_create_event_needs_a_published_map(organizer: Api) -> None:
    uploaded = await organizer.seatmaps.UploadSeatMap(
        seatmap_pb2.UploadSeatMapRequest(content=small_map()), metadata=organizer.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.events.CreateEvent(
            events_pb2.CreateEventRequest(
                seat_map_id=uploaded.seat_map.seat_map_id, name="x", currency="EUR"
            ),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"currency": "euro"}, "currency"),
        ({"name": ""}, "name"),
        ({"hold_ttl": Duration(seconds=0, nanos=1000)}, "hold_ttl"),
        ({"max_seats_per_hold": -1}, "max_seats_per_hold"),
    ],
)
async def test_bad_event_settings_name_the_field(
    organizer: Api, overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await make_event(organizer, **overrides)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(f == field for f, _ in field_violations(err.value)), field_violations(err.value)


@pytest.mark.parametrize(
    ("quantity", "accessible", "field"), [(0, 0, "quantity"), (101, 0, "quantity"), (2, 3, "accessible")]
)
async def test_bad_best_available_request_names_the_field(
    organizer: Api, quantity: int, accessible: int, field: str
) -> None:
    event_id = await make_event(organizer)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.HoldBestAvailable(
            sales_pb2.HoldBestAvailableRequest(event_id=event_id, quantity=quantity, accessible=accessible),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == [field]


async def test_hold_commit_and_order(organizer: Api) -> None:
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r0-0", "r0-1")
    assert sorted(hold.seat_ids) == ["r0-0", "r0-1"]
    committed = await organizer.orders.CommitHold(
        sales_pb2.CommitHoldRequest(
            hold_token=hold.hold_token,
            idempotency_key="pay-1",
            buyer=sales_pb2.BuyerDetails(name="Ann", email="ann@example.com"),
        ),
        metadata=organizer.metadata,
    )
    order = committed.order
    assert not committed.replayed
    assert order.total.amount_minor == 10000
    assert order.total.currency == "EUR"
    assert sorted(t.seat_id for t in order.tickets) == ["r0-0", "r0-1"]
    again = await organizer.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="pay-1"),
        metadata=organizer.metadata,
    )
    assert again.replayed
    assert again.order.order_id == order.order_id
    fetched = await organizer.orders.GetOrder(
        sales_pb2.GetOrderRequest(event_id=event_id, order_id=order.order_id), metadata=organizer.metadata
    )
    assert fetched.order == order


async def test_conflict_names_exactly_the_taken_seats(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await _hold(organizer, event_id, "r0-1", "r0-3")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _hold(organizer, event_id, "r0-0", "r0-1", "r0-2", "r0-3")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sorted(precondition_subjects(err.value)) == ["r0-1", "r0-3"]
    # all-or-nothing: the free seats of the failed request are still free
    await _hold(organizer, event_id, "r0-0", "r0-2")


@pytest.mark.parametrize(
    ("seats", "field"),
    [([], "seat_ids"), (["nope"], "seat_ids"), (["r0-0", "r0-0"], "seat_ids")],
)
async def test_bad_seat_lists_are_invalid_argument(organizer: Api, seats: list[str], field: str) -> None:
    event_id = await make_event(organizer)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _hold(organizer, event_id, *seats)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


async def test_best_available_and_general_admission(organizer: Api) -> None:
    event_id = await make_event(organizer)
    best = await organizer.holds.HoldBestAvailable(
        sales_pb2.HoldBestAvailableRequest(event_id=event_id, quantity=3, categories=["front"]),
        metadata=organizer.metadata,
    )
    assert len(best.hold.seat_ids) == 3
    assert all(s.startswith("r0-") for s in best.hold.seat_ids)
    ga = await organizer.holds.HoldGeneralAdmission(
        sales_pb2.HoldGeneralAdmissionRequest(event_id=event_id, area_id="floor", quantity=4),
        metadata=organizer.metadata,
    )
    assert ga.hold.general_admission["floor"] == 4
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.HoldGeneralAdmission(
            sales_pb2.HoldGeneralAdmissionRequest(event_id=event_id, area_id="floor", quantity=2),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.ABORTED


async def test_release_extend_and_get_hold(organizer: Api) -> None:
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r1-0", "r1-1")
    extended = await organizer.holds.ExtendHold(
        sales_pb2.ExtendHoldRequest(hold_token=hold.hold_token), metadata=organizer.metadata
    )
    assert extended.hold.expires_at.ToMilliseconds() >= hold.expires_at.ToMilliseconds()
    remaining = await organizer.holds.ReleaseHold(
        sales_pb2.ReleaseHoldRequest(hold_token=hold.hold_token, seat_ids=["r1-0"]),
        metadata=organizer.metadata,
    )
    assert remaining.remaining == 1
    got = await organizer.holds.GetHold(
        sales_pb2.GetHoldRequest(hold_token=hold.hold_token), metadata=organizer.metadata
    )
    assert list(got.hold.seat_ids) == ["r1-1"]
    await organizer.holds.ReleaseHold(
        sales_pb2.ReleaseHoldRequest(hold_token=hold.hold_token), metadata=organizer.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.GetHold(
            sales_pb2.GetHoldRequest(hold_token=hold.hold_token), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "released" in err.value.details()


async def test_paused_event_refuses_holds(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, status=events_pb2.EVENT_STATUS_PAUSED),
        metadata=organizer.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _hold(organizer, event_id, "r0-0")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_closed_is_final(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, status=events_pb2.EVENT_STATUS_CLOSED),
        metadata=organizer.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.events.UpdateEvent(
            events_pb2.UpdateEventRequest(event_id=event_id, status=events_pb2.EVENT_STATUS_ON_SALE),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_block_and_cancel_and_availability(organizer: Api) -> None:
    event_id = await make_event(organizer)
    blocked = await organizer.events.SetSeatStatus(
        events_pb2.SetSeatStatusRequest(
            event_id=event_id,
            selection=events_pb2.SeatSelection(rows=[events_pb2.RowRef(section_id="main", row_id="row1")]),
            status=events_pb2.SEAT_STATUS_BLOCKED,
        ),
        metadata=organizer.metadata,
    )
    assert blocked.seats_changed == 6
    hold = await _hold(organizer, event_id, "r0-0")
    order = (
        await organizer.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="k"),
            metadata=organizer.metadata,
        )
    ).order
    # a held/sold seat cannot be blocked: the whole call fails and names it
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.events.SetSeatStatus(
            events_pb2.SetSeatStatusRequest(
                event_id=event_id,
                selection=events_pb2.SeatSelection(seat_ids=["r0-0", "r0-1"]),
                status=events_pb2.SEAT_STATUS_BLOCKED,
            ),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "r0-0" in err.value.details()
    for _ in range(50):  # the mirror follows the change stream asynchronously
        availability = await organizer.events.GetAvailability(
            events_pb2.GetAvailabilityRequest(event_id=event_id, include_seats=True),
            metadata=organizer.metadata,
        )
        if any(s.status == events_pb2.SEAT_STATUS_SOLD for s in availability.seats):
            break
        await asyncio.sleep(0.02)
    states = {s.seat_id: s.status for s in availability.seats}
    assert states["r0-0"] == events_pb2.SEAT_STATUS_SOLD
    assert states["r1-3"] == events_pb2.SEAT_STATUS_BLOCKED
    by_section = {c.key: c for c in availability.by_section}
    assert by_section["main"].blocked == 6
    assert by_section["main"].sold == 1
    cancelled = await organizer.orders.CancelOrder(
        sales_pb2.CancelOrderRequest(event_id=event_id, order_id=order.order_id), metadata=organizer.metadata
    )
    assert cancelled.order.status == sales_pb2.ORDER_STATUS_CANCELLED
    await _hold(organizer, event_id, "r0-0")  # back on sale


async def test_watch_availability_streams_snapshot_then_deltas(organizer: Api) -> None:
    event_id = await make_event(organizer)
    call = organizer.events.WatchAvailability(
        events_pb2.WatchAvailabilityRequest(event_id=event_id), metadata=organizer.metadata
    )
    first = await call.read()
    assert first.WhichOneof("update") == "snapshot"
    await _hold(organizer, event_id, "r0-4")
    update = await asyncio.wait_for(call.read(), timeout=5)
    assert update.WhichOneof("update") == "delta"
    assert update.sequence == first.sequence + 1
    assert list(update.delta.seat_ids) == ["r0-4"]
    assert update.delta.status == events_pb2.SEAT_STATUS_HELD
    call.cancel()


async def test_revoking_a_key_ends_its_open_watch(organizer: Api) -> None:
    """A revoked key's open streams end with UNAUTHENTICATED, even a quiet one."""
    event_id = await make_event(organizer)
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    async with Api(organizer.target, created.api_key) as shop:
        call = shop.events.WatchAvailability(
            events_pb2.WatchAvailabilityRequest(event_id=event_id), metadata=shop.metadata
        )
        assert (await call.read()).WhichOneof("update") == "snapshot"
        await organizer.tenants.RevokeApiKey(
            tenancy_pb2.RevokeApiKeyRequest(key_id=created.key.key_id), metadata=organizer.metadata
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:  # the stream is quiet until it ends
            await asyncio.wait_for(call.read(), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_storefront_can_sell_but_not_configure(organizer: Api) -> None:
    event_id = await make_event(organizer)
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    async with Api(organizer.target, created.api_key) as shop:
        hold = await _hold(shop, event_id, "r0-5")
        assert hold.hold_token
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.events.UpdateEvent(
                events_pb2.UpdateEventRequest(event_id=event_id, status=events_pb2.EVENT_STATUS_PAUSED),
                metadata=shop.metadata,
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_other_tenant_cannot_touch_the_event(admin: Api, organizer: Api, server: str) -> None:
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r0-0")
    key = await admin.new_tenant_key("globex")
    async with Api(server, key) as other:
        for call in (
            other.holds.HoldSeats(
                sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-1"]), metadata=other.metadata
            ),
            other.orders.CommitHold(
                sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="x"),
                metadata=other.metadata,
            ),
            other.events.GetEvent(events_pb2.GetEventRequest(event_id=event_id), metadata=other.metadata),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_limit_per_hold_is_resource_exhausted(organizer: Api) -> None:
    event_id = await make_event(organizer, max_seats_per_hold=2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _hold(organizer, event_id, "r0-0", "r0-1", "r0-2")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await _hold(organizer, event_id, "r0-0", "r0-1")


async def test_a_retried_hold_request_returns_the_first_hold(organizer: Api) -> None:
    """The reply of a hold is lost; the retry with the same request_id gets that hold."""
    event_id = await make_event(organizer)
    md = organizer.metadata
    seats = sales_pb2.HoldSeatsRequest(
        event_id=event_id, seat_ids=["r1-0", "r1-1"], buyer_id="ann", request_id="req-1"
    )
    first = await organizer.holds.HoldSeats(seats, metadata=md)
    again = await organizer.holds.HoldSeats(seats, metadata=md)
    assert not first.replayed
    assert again.replayed
    assert again.hold == first.hold

    best = sales_pb2.HoldBestAvailableRequest(
        event_id=event_id, quantity=2, buyer_id="ann", request_id="req-2"
    )
    first_best = await organizer.holds.HoldBestAvailable(best, metadata=md)
    again = await organizer.holds.HoldBestAvailable(best, metadata=md)
    assert again.replayed
    assert list(again.hold.seat_ids) == list(first_best.hold.seat_ids)

    ga = sales_pb2.HoldGeneralAdmissionRequest(
        event_id=event_id, area_id="floor", quantity=2, hold_token=first.hold.hold_token,
        buyer_id="ann", request_id="req-3",
    )  # fmt: skip
    added = await organizer.holds.HoldGeneralAdmission(ga, metadata=md)
    again = await organizer.holds.HoldGeneralAdmission(ga, metadata=md)
    assert again.replayed
    assert again.hold.general_admission["floor"] == added.hold.general_admission["floor"] == 2

    # the same id with another request
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(
                event_id=event_id, seat_ids=["r1-2"], buyer_id="ann", request_id="req-1"
            ),
            metadata=md,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == ["request_id"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r1-2"], request_id="x" * 129),
            metadata=md,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # committed: a late retry names the order and holds nothing
    order = await organizer.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=first.hold.hold_token, idempotency_key="pay-1"), metadata=md
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.HoldSeats(seats, metadata=md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"committed to order {order.order.order_id}" in err.value.details()


async def test_limit_per_buyer_counts_seats_bought(organizer: Api) -> None:
    event_id = await make_event(organizer, max_seats_per_buyer=2)
    md = organizer.metadata
    held = await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0", "r0-1"], buyer_id="tout"), metadata=md
    )
    order = await organizer.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=held.hold.hold_token, idempotency_key="k1"), metadata=md
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-2"], buyer_id="tout"), metadata=md
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await organizer.orders.CancelOrder(
        sales_pb2.CancelOrderRequest(
            event_id=event_id, order_id=order.order.order_id, ticket_ids=[order.order.tickets[0].ticket_id]
        ),
        metadata=md,
    )
    await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-2"], buyer_id="tout"), metadata=md
    )


async def test_commit_of_an_expired_hold_is_refused(organizer: Api) -> None:
    event_id = await make_event(
        organizer, hold_ttl=Duration(seconds=1), max_hold_lifetime=Duration(seconds=2)
    )
    hold = await _hold(organizer, event_id, "r0-0")
    await asyncio.sleep(1.2)
    rival = await _hold(organizer, event_id, "r0-0")  # the lease ran out: the seat is free again
    assert list(rival.seat_ids) == ["r0-0"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="late"),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_extend_is_capped_by_the_lifetime(organizer: Api) -> None:
    event_id = await make_event(
        organizer, hold_ttl=Duration(seconds=2), max_hold_lifetime=Duration(seconds=3)
    )
    hold = await _hold(organizer, event_id, "r1-5")
    await asyncio.sleep(1.5)
    extended = (
        await organizer.holds.ExtendHold(
            sales_pb2.ExtendHoldRequest(hold_token=hold.hold_token), metadata=organizer.metadata
        )
    ).hold
    assert extended.lifetime_capped
    lifetime_end = hold.expires_at.ToMilliseconds() - 2000 + 3000
    assert abs(extended.expires_at.ToMilliseconds() - lifetime_end) <= 5


@pytest.mark.parametrize("token", ["garbage", "evX.", ".h1"])
async def test_malformed_hold_tokens(organizer: Api, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.GetHold(sales_pb2.GetHoldRequest(hold_token=token), metadata=organizer.metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hold_token" in err.value.details()


async def test_late_calls_say_why_the_hold_is_gone(organizer: Api) -> None:
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r0-2")
    order = (
        await organizer.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="a"),
            metadata=organizer.metadata,
        )
    ).order
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="b"),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert order.order_id in err.value.details()
    released = await _hold(organizer, event_id, "r0-3")
    await organizer.holds.ReleaseHold(
        sales_pb2.ReleaseHoldRequest(hold_token=released.hold_token), metadata=organizer.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.holds.GetHold(
            sales_pb2.GetHoldRequest(hold_token=released.hold_token), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "released" in err.value.details()


async def test_availability_vector_has_one_status_byte_per_seat(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await _hold(organizer, event_id, "r0-1")  # ordinal 1: row 0 comes first
    for _ in range(50):
        reply = await organizer.events.GetAvailability(
            events_pb2.GetAvailabilityRequest(
                event_id=event_id, seat_encoding=events_pb2.SEAT_ENCODING_VECTOR
            ),
            metadata=organizer.metadata,
        )
        if reply.seat_status_vector[1] == events_pb2.SEAT_STATUS_HELD:
            break
        await asyncio.sleep(0.02)
    vector = reply.seat_status_vector
    assert len(vector) == 12
    assert vector[1] == events_pb2.SEAT_STATUS_HELD
    assert all(b == events_pb2.SEAT_STATUS_FREE for i, b in enumerate(vector) if i != 1)
    assert not reply.seats  # the list is only sent when asked for
    counts_only = await organizer.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert not counts_only.seat_status_vector
    assert not counts_only.seats
    assert sum(c.held for c in counts_only.by_category) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("starts_at", Timestamp(seconds=2**62)),
        ("on_sale_from", Timestamp(seconds=5, nanos=2**30)),
        ("hold_ttl", Duration(seconds=2**62)),
    ],
)
async def test_out_of_range_times_name_the_field(organizer: Api, field: str, value: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await make_event(organizer, **{field: value})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


async def test_watch_coalesces_a_burst_without_losing_a_change(organizer: Api) -> None:
    event_id = await make_event(organizer)
    call = organizer.events.WatchAvailability(
        events_pb2.WatchAvailabilityRequest(event_id=event_id), metadata=organizer.metadata
    )
    first = await call.read()
    wanted = [f"r1-{n}" for n in range(6)]
    await asyncio.gather(*(_hold(organizer, event_id, seat) for seat in wanted))
    seen: list[str] = []
    at = first.sequence
    while at < first.sequence + len(wanted):
        update = await asyncio.wait_for(call.read(), timeout=5)
        kind = update.WhichOneof("update")
        deltas = [update.delta] if kind == "delta" else list(update.deltas.deltas)
        if kind == "deltas":
            assert update.deltas.first_sequence == at + 1  # consecutive: nothing skipped
        assert update.sequence == at + len(deltas)
        at = update.sequence
        seen += [s for d in deltas for s in d.seat_ids]
    assert sorted(seen) == sorted(wanted)
    call.cancel()


async def test_list_events_pages_and_stays_in_the_tenant(admin: Api, organizer: Api, server: str) -> None:
    created = [await make_event(organizer) for _ in range(3)]
    first = await organizer.events.ListEvents(
        events_pb2.ListEventsRequest(page=common_pb2.PageRequest(page_size=2)), metadata=organizer.metadata
    )
    rest = await organizer.events.ListEvents(
        events_pb2.ListEventsRequest(
            page=common_pb2.PageRequest(page_size=2, page_token=first.next_page_token)
        ),
        metadata=organizer.metadata,
    )
    listed = [e.event_id for e in first.events] + [e.event_id for e in rest.events]
    assert listed == created[::-1]  # newest first
    assert not rest.next_page_token
    assert first.events[0].prices  # whole events, not just ids
    key = await admin.new_tenant_key("globex")
    async with Api(server, key) as other:
        mine = await other.events.ListEvents(events_pb2.ListEventsRequest(), metadata=other.metadata)
    assert list(mine.events) == []


async def test_render_colours_seats_by_live_status(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await _hold(organizer, event_id, "r0-3")
    for _ in range(50):
        rendered = await organizer.seatmaps.RenderSeatMap(
            seatmap_pb2.RenderSeatMapRequest(event_id=event_id), metadata=organizer.metadata
        )
        root = ElementTree.fromstring(rendered.content)
        seat = next(e for e in root.iter() if e.get("data-seat") == "r0-3")
        if "held" in (seat.get("class") or ""):
            break
        await asyncio.sleep(0.02)
    assert "held" in (seat.get("class") or "")
    free = next(e for e in root.iter() if e.get("data-seat") == "r0-4")
    assert "free" in (free.get("class") or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seatmaps.RenderSeatMap(
            seatmap_pb2.RenderSeatMapRequest(event_id=event_id, seat_map_id="sm_other"),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_watch_resumes_from_a_sequence_without_a_new_snapshot(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await _hold(organizer, event_id, "r1-0")  # sequence 0 means "no position": start after one change
    await asyncio.sleep(0.1)
    first = organizer.events.WatchAvailability(
        events_pb2.WatchAvailabilityRequest(event_id=event_id), metadata=organizer.metadata
    )
    at = (await first.read()).sequence
    assert at > 0
    first.cancel()  # the client goes away ...
    await _hold(organizer, event_id, "r0-0")
    await _hold(organizer, event_id, "r0-1")  # ... and misses two changes
    await asyncio.sleep(0.1)  # let the server's mirror catch up
    resumed = organizer.events.WatchAvailability(
        events_pb2.WatchAvailabilityRequest(event_id=event_id, after_sequence=at), metadata=organizer.metadata
    )
    update = await asyncio.wait_for(resumed.read(), timeout=5)
    assert update.WhichOneof("update") == "deltas"  # the missed changes, not a snapshot
    assert update.deltas.first_sequence == at + 1
    assert update.sequence == at + 2
    assert [list(d.seat_ids) for d in update.deltas.deltas] == [["r0-0"], ["r0-1"]]
    resumed.cancel()


class _LostReply(grpc.RpcError):
    """What a sync call raises when its deadline passed (the server may have applied it)."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED


async def test_the_cli_client_retries_a_lost_hold_with_its_request_id(organizer: Api, server: str) -> None:
    from server.client import Client

    event_id = await make_event(organizer)
    api_key = dict(organizer.metadata)["authorization"].removeprefix("Bearer ")
    sent: list[str] = []

    def hold() -> sales_pb2.HoldResponse:
        with Client(server, api_key) as client:
            real = client.holds.HoldSeats

            def lose_first_reply(request: sales_pb2.HoldSeatsRequest, **kw: object) -> object:
                sent.append(request.request_id)
                reply = real(request, **kw)  # type: ignore[arg-type]
                if len(sent) == 1:
                    raise _LostReply
                return reply

            client.holds.HoldSeats = lose_first_reply  # type: ignore[assignment]
            return client.hold_seats(event_id, ["r0-0", "r0-1"])

    reply = await asyncio.to_thread(hold)
    assert reply.replayed
    assert list(reply.hold.seat_ids) == ["r0-0", "r0-1"]
    assert len(sent) == 2
    assert sent[0] == sent[1] != ""
