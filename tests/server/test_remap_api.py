"""EventService.MoveEventToSeatMapVersion end to end through a real server and Redis."""

from __future__ import annotations

import json

import grpc
import pytest
from google.rpc import error_details_pb2
from seatwise.v1 import events_pb2, sales_pb2, seatmap_pb2

from holds import keys
from holds.errors import StoreUnavailable
from holds.platform.audit import AuditFilter
from holds.remap import MoveChunks
from server.context import Stores
from tests.api import Api, field_violations, precondition_subjects, status_of
from tests.holds.test_remap_chunks import Crashing
from tests.server.events import make_event, published_map
from tests.server.maps import small_map


def _without_first_row() -> bytes:
    doc = json.loads(small_map(rows=3))
    doc["sections"][0]["rows"] = doc["sections"][0]["rows"][1:]
    return json.dumps(doc).encode()


async def _event_with_two_versions(api: Api) -> tuple[str, str, int]:
    sm = await published_map(api, small_map(rows=3))
    event_id = await make_event(api, seat_map_id=sm.seat_map_id, name="Moving night")
    v2 = await api.seatmaps.UploadSeatMap(
        seatmap_pb2.UploadSeatMapRequest(seat_map_id=sm.seat_map_id, content=_without_first_row()),
        metadata=api.metadata,
    )
    await api.seatmaps.PublishSeatMap(
        seatmap_pb2.PublishSeatMapRequest(seat_map_id=sm.seat_map_id, version=v2.seat_map.version),
        metadata=api.metadata,
    )
    return event_id, sm.seat_map_id, v2.seat_map.version


async def _hold(api: Api, event_id: str, *seats: str) -> sales_pb2.Hold:
    response = await api.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=list(seats)), metadata=api.metadata
    )
    return response.hold


async def test_a_move_is_refused_naming_lost_seats_then_made_and_audited(
    organizer: Api, stores: Stores
) -> None:
    api = organizer
    event_id, seat_map_id, v2 = await _event_with_two_versions(api)
    front = await _hold(api, event_id, "r0-1", "r0-2")
    back = await _hold(api, event_id, "r1-3")
    sold = await _hold(api, event_id, "r2-0")
    await api.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=sold.hold_token, idempotency_key="pay-1"),
        metadata=api.metadata,
    )

    request = events_pb2.MoveEventToSeatMapVersionRequest(event_id=event_id, seat_map_version=v2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.events.MoveEventToSeatMapVersion(request, metadata=api.metadata)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_subjects(err.value) == ["r0-1", "r0-2"]
    assert "r0-1 (held)" in (err.value.details() or "")

    dry = await api.events.MoveEventToSeatMapVersion(
        events_pb2.MoveEventToSeatMapVersionRequest(event_id=event_id, seat_map_version=v2, dry_run=True),
        metadata=api.metadata,
    )
    assert dry.dry_run
    assert [(p.seat_id, p.state) for p in dry.lost] == [("r0-1", "held"), ("r0-2", "held")]

    await api.holds.ReleaseHold(
        sales_pb2.ReleaseHoldRequest(hold_token=front.hold_token), metadata=api.metadata
    )
    moved = await api.events.MoveEventToSeatMapVersion(request, metadata=api.metadata)
    assert (moved.from_version, moved.to_version, moved.seats_moved, moved.holds_moved) == (1, v2, 2, 1)
    assert (moved.orders_changed, moved.tickets_moved, moved.mapped_by_id) == (1, 1, 12)
    assert not moved.lost

    got = await api.events.GetEvent(events_pb2.GetEventRequest(event_id=event_id), metadata=api.metadata)
    assert got.event.seat_map_version == v2
    hold = await api.holds.GetHold(
        sales_pb2.GetHoldRequest(hold_token=back.hold_token), metadata=api.metadata
    )
    assert list(hold.hold.seat_ids) == ["r1-3"]
    committed = await api.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=back.hold_token, idempotency_key="pay-2"),
        metadata=api.metadata,
    )
    assert [t.seat_id for t in committed.order.tickets] == ["r1-3"]
    availability = await api.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=event_id, include_seats=True), metadata=api.metadata
    )
    assert {s.seat_id for s in availability.seats} == {"r1-3", "r2-0"}

    entries, _ = await stores.audit.page(
        keys.tenant_audit("acme"), AuditFilter(method="MoveEventToSeatMapVersion"), 10, ""
    )
    assert [e.outcome for e in entries] == ["OK", "OK", "FAILED_PRECONDITION"]  # newest first
    assert seat_map_id


async def test_bad_requests_name_the_field_and_other_organizers_events_are_not_found(
    organizer: Api, admin: Api
) -> None:
    event_id, _, v2 = await _event_with_two_versions(organizer)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.events.MoveEventToSeatMapVersion(
            events_pb2.MoveEventToSeatMapVersionRequest(
                event_id=event_id, seat_map_version=v2, seat_mapping={"r9-9": "r1-1"}
            ),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == [("mapping[r9-9]", "no such seat in the event's current version")]

    other_key = await admin.new_tenant_key("other")
    async with Api(organizer.target, other_key) as other:
        with pytest.raises(grpc.aio.AioRpcError) as theirs:
            await other.events.MoveEventToSeatMapVersion(
                events_pb2.MoveEventToSeatMapVersionRequest(event_id=event_id, seat_map_version=v2),
                metadata=other.metadata,
            )
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await other.events.MoveEventToSeatMapVersion(
                events_pb2.MoveEventToSeatMapVersionRequest(event_id="evNope", seat_map_version=v2),
                metadata=other.metadata,
            )
    assert theirs.value.code() == missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_while_an_event_moves_its_sales_are_unavailable_with_retry_info(
    organizer: Api, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move in chunks whose mover died between steps holds the event: a hold or a commit
    is UNAVAILABLE with RetryInfo and ErrorInfo EVENT_MOVING; the organizer's retry of the
    move finishes it, and the event sells again on the new version."""
    api = organizer
    event_id, _, v2 = await _event_with_two_versions(api)
    held = await _hold(api, event_id, "r1-3")
    tenant_id = (await stores.events.read_ref(event_id)).tenant_id
    step = stores.scripts.remap_step
    monkeypatch.setattr(stores.moves, "chunks", MoveChunks(seats=2, records=1))
    monkeypatch.setattr(stores.scripts, "remap_step", Crashing(step, 2))
    with pytest.raises(StoreUnavailable):
        await stores.moves.move(tenant_id, event_id, v2)

    for call in (
        _hold(api, event_id, "r2-1"),
        api.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=held.hold_token, idempotency_key="pay-1"),
            metadata=api.metadata,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        details = status_of(err.value).details
        retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
        assert any(d.Unpack(retry) for d in details)
        assert 0 < retry.retry_delay.ToMilliseconds() <= 1000
        assert any(d.Unpack(info) for d in details)
        assert info.reason == "EVENT_MOVING"

    monkeypatch.setattr(stores.scripts, "remap_step", step)
    moved = await api.events.MoveEventToSeatMapVersion(
        events_pb2.MoveEventToSeatMapVersionRequest(event_id=event_id, seat_map_version=v2),
        metadata=api.metadata,
    )
    assert (moved.to_version, moved.holds_moved) == (v2, 1)
    assert (await _hold(api, event_id, "r2-1")).seat_ids == ["r2-1"]
    await api.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=held.hold_token, idempotency_key="pay-1"),
        metadata=api.metadata,
    )
