"""Pieces of the events servicer that the API tests cannot see (one watch message
per batch), and its own input checks (durations, names)."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from seatwise.v1 import events_pb2

from holds.availability import Delta, GaCount
from server.context import Stores
from server.servicers.events import BatchMessages
from tests.api import Api, field_violations
from tests.holds.factories import make_event
from tests.server.events import published_map


async def test_a_batch_is_built_once_for_all_its_watchers(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    ctx = await stores.live.get(ev.tenant, ev.event_id)
    ga = {ev.ga_area: GaCount(5, 1, 0)}
    batch = [
        Delta(seq=7, kind="held", state="held", seats=(0, 1), ga_area="", ga_qty=0),
        Delta(seq=8, kind="held", state="held", seats=(), ga_area=ev.ga_area, ga_qty=1),
    ]
    messages = BatchMessages(size=2)
    first = messages.get(ctx, ga, batch)
    assert messages.get(ctx, ga, batch) is first  # the second watcher reuses it
    assert first.deltas.first_sequence == 7
    placed = ev.loaded.index.placed
    assert [list(d.seat_ids) for d in first.deltas.deltas] == [[placed[0].seat.id, placed[1].seat.id], []]
    assert first.deltas.deltas[1].general_admission.held == 1
    equal = list(batch)  # another list (a watcher's first batch, cut at its snapshot): built anew
    assert messages.get(ctx, ga, equal) is not first
    assert messages.get(ctx, ga, equal) == first
    for n in range(3):  # bounded: the oldest entries go
        messages.get(ctx, ga, [Delta(seq=9 + n, kind="sold", state="sold", seats=(2,), ga_area="", ga_qty=0)])
    assert messages.get(ctx, ga, batch) is not first


async def _published_map(api: Api) -> str:
    return str((await published_map(api)).seat_map_id)


async def _refused_field(call: Awaitable[object]) -> list[str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return [f for f, _ in field_violations(err.value)]


@pytest.mark.parametrize(
    "duration",
    [Duration(seconds=60, nanos=-1), Duration(seconds=0, nanos=-500_000_000), Duration(seconds=-60)],
    ids=["sign-mismatch", "negative-nanos", "negative"],
)
async def test_negative_durations_are_refused(organizer: Api, duration: Duration) -> None:
    seat_map_id = await _published_map(organizer)
    create = events_pb2.CreateEventRequest(seat_map_id=seat_map_id, name="Gig", currency="EUR")
    for field in ("hold_ttl", "max_hold_lifetime"):
        request = events_pb2.CreateEventRequest()
        request.CopyFrom(create)
        getattr(request, field).CopyFrom(duration)
        assert await _refused_field(organizer.events.CreateEvent(request, metadata=organizer.metadata)) == [
            field
        ]
    event = (await organizer.events.CreateEvent(create, metadata=organizer.metadata)).event
    update = events_pb2.UpdateEventRequest(event_id=event.event_id, hold_ttl=duration)
    assert await _refused_field(organizer.events.UpdateEvent(update, metadata=organizer.metadata)) == [
        "hold_ttl"
    ]


@pytest.mark.parametrize("name", ["Gig\x00", "Gig\r\nX-Header: 1", "\u200b\u200d", "\u3164", "\u2066Gig"])
async def test_event_names_without_control_characters_or_blanks(organizer: Api, name: str) -> None:
    seat_map_id = await _published_map(organizer)
    create = events_pb2.CreateEventRequest(seat_map_id=seat_map_id, name=name, currency="EUR")
    assert await _refused_field(organizer.events.CreateEvent(create, metadata=organizer.metadata)) == ["name"]
    create.name = "Gig"
    event = (await organizer.events.CreateEvent(create, metadata=organizer.metadata)).event
    update = events_pb2.UpdateEventRequest(event_id=event.event_id, name=name)
    assert await _refused_field(organizer.events.UpdateEvent(update, metadata=organizer.metadata)) == ["name"]
