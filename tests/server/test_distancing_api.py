"""Minimum-distance seating end to end: the event setting, the refusal, availability and watches."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from seatwise.v1 import events_pb2, sales_pb2

from tests.api import Api, field_violations, status_of
from tests.server.events import make_event
from tests.server.test_sales_api import _hold

ROW1 = events_pb2.Distancing(seats_in_row=1)


async def _commit(api: Api, token: str, key: str) -> sales_pb2.Order:
    response = await api.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=token, idempotency_key=key), metadata=api.metadata
    )
    return response.order


async def _availability(api: Api, event_id: str) -> events_pb2.GetAvailabilityResponse:
    return await api.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=event_id, seat_encoding=events_pb2.SEAT_ENCODING_LIST),
        metadata=api.metadata,
    )


def _statuses(reply: events_pb2.GetAvailabilityResponse) -> dict[str, int]:
    return {s.seat_id: s.status for s in reply.seats}


async def test_the_rule_is_an_event_setting(organizer: Api) -> None:
    event_id = await make_event(organizer, distancing=ROW1)
    got = await organizer.events.GetEvent(
        events_pb2.GetEventRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert got.event.distancing == ROW1
    update = events_pb2.UpdateEventRequest(
        event_id=event_id, distancing=events_pb2.Distancing(metres=1.5, layout_units_per_metre=100)
    )
    updated = await organizer.events.UpdateEvent(update, metadata=organizer.metadata)
    assert (updated.event.distancing.metres, updated.event.distancing.layout_units_per_metre) == (1.5, 100)
    kept = await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, name="Renamed"), metadata=organizer.metadata
    )
    assert kept.event.distancing.metres == 1.5  # unset keeps it
    removed = await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, distancing=events_pb2.Distancing()),
        metadata=organizer.metadata,
    )
    assert not removed.event.HasField("distancing")


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (events_pb2.Distancing(seats_in_row=2, metres=1), "distancing"),
        (events_pb2.Distancing(seats_in_row=51), "distancing.seats_in_row"),
        (events_pb2.Distancing(seats_in_row=-1), "distancing.seats_in_row"),
        (events_pb2.Distancing(metres=-1), "distancing.metres"),
        (events_pb2.Distancing(metres=float("nan")), "distancing.metres"),
        (events_pb2.Distancing(metres=1, layout_units_per_metre=-5), "distancing.layout_units_per_metre"),
        (
            events_pb2.Distancing(seats_in_row=1, layout_units_per_metre=100),
            "distancing.layout_units_per_metre",
        ),
    ],
)
async def test_bad_rules_are_invalid_argument_naming_the_field(
    organizer: Api, rule: events_pb2.Distancing, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await make_event(organizer, distancing=rule)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == [field]
    event_id = await make_event(organizer, distancing=ROW1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.events.UpdateEvent(
            events_pb2.UpdateEventRequest(event_id=event_id, distancing=rule), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == [field]
    got = await organizer.events.GetEvent(
        events_pb2.GetEventRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert got.event.distancing == ROW1  # unchanged


async def test_a_hold_next_to_another_group_is_failed_precondition_per_seat(organizer: Api) -> None:
    event_id = await make_event(organizer, distancing=ROW1)
    await _hold(organizer, event_id, "r0-2")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _hold(organizer, event_id, "r0-1", "r0-3", "r0-5")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = status_of(err.value)
    violations: list[tuple[str, str]] = []
    reasons = []
    for detail in status.details:
        failure, info = error_details_pb2.PreconditionFailure(), error_details_pb2.ErrorInfo()
        if detail.Unpack(failure):
            violations += [(v.type, v.subject) for v in failure.violations]
        if detail.Unpack(info):
            reasons.append(info.reason)
    assert violations == [("SEAT_DISTANCED", "r0-1"), ("SEAT_DISTANCED", "r0-3")]
    assert reasons == ["SEATS_DISTANCED"]
    own = await _hold(organizer, event_id, "r0-4", "r0-5")  # two seats together, one free between
    await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r1-5"], hold_token=own.hold_token),
        metadata=organizer.metadata,
    )


async def test_availability_reports_distanced_seats_until_the_group_is_cancelled(organizer: Api) -> None:
    event_id = await make_event(organizer, distancing=ROW1)
    hold = await _hold(organizer, event_id, "r0-2")
    reply = await _availability(organizer, event_id)
    distanced = events_pb2.SEAT_STATUS_DISTANCED
    assert _statuses(reply) == {"r0-1": distanced, "r0-2": events_pb2.SEAT_STATUS_HELD, "r0-3": distanced}
    front = next(c for c in reply.by_category if c.key == "front")
    assert (front.free, front.held, front.distanced) == (5, 1, 2)
    vector = await organizer.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=event_id, seat_encoding=events_pb2.SEAT_ENCODING_VECTOR),
        metadata=organizer.metadata,
    )
    assert list(vector.seat_status_vector[:6]) == [1, distanced, 2, distanced, 1, 1]
    order = await _commit(organizer, hold.hold_token, "pay-1")
    assert _statuses(await _availability(organizer, event_id))["r0-1"] == distanced
    await organizer.orders.CancelOrder(
        sales_pb2.CancelOrderRequest(event_id=event_id, order_id=order.order_id), metadata=organizer.metadata
    )
    for _ in range(100):  # the mirror follows the change stream: wait for the cancel to show
        statuses = _statuses(await _availability(organizer, event_id))
        if "r0-2" not in statuses:
            break
        await asyncio.sleep(0.05)
    assert statuses == {}


async def test_the_rule_changed_here_shows_at_once(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await _hold(organizer, event_id, "r0-2")
    assert _statuses(await _availability(organizer, event_id)) == {"r0-2": events_pb2.SEAT_STATUS_HELD}
    await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, distancing=ROW1), metadata=organizer.metadata
    )
    assert set(_statuses(await _availability(organizer, event_id))) == {"r0-1", "r0-2", "r0-3"}


async def test_watchers_see_neighbours_distanced_and_freed(organizer: Api) -> None:
    event_id = await make_event(organizer, distancing=ROW1)
    call = organizer.events.WatchAvailability(
        events_pb2.WatchAvailabilityRequest(event_id=event_id), metadata=organizer.metadata
    )
    first = await call.read()
    assert first.WhichOneof("update") == "snapshot"
    hold = await _hold(organizer, event_id, "r0-4")
    update = await asyncio.wait_for(call.read(), timeout=5)
    assert list(update.delta.seat_ids) == ["r0-4"]
    assert (list(update.distanced_seat_ids), list(update.undistanced_seat_ids)) == (["r0-3", "r0-5"], [])
    await organizer.holds.ReleaseHold(
        sales_pb2.ReleaseHoldRequest(hold_token=hold.hold_token), metadata=organizer.metadata
    )
    update = await asyncio.wait_for(call.read(), timeout=5)
    assert update.delta.status == events_pb2.SEAT_STATUS_FREE
    assert (list(update.distanced_seat_ids), list(update.undistanced_seat_ids)) == ([], ["r0-3", "r0-5"])
    call.cancel()
