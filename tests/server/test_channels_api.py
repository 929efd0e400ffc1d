"""Channels and allocations end to end through a real server and Redis (single and
cluster): an organizer defines channels, allocates seats and GA places and closes
them (ChannelService); a storefront's hold takes a channel's seats only with its
access (unary and over a sales session); availability and the watch stream report
per channel; another organizer's event is NOT_FOUND; refusals name what is at fault."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from seatwise.v1 import channels_pb2, events_pb2, sales_pb2

from tests.api import Api, field_violations, precondition_subjects
from tests.server import test_sessions as sessions_test

WAIT_S = 60.0  # a safety net against a hang, never a measured time
PRESALE = channels_pb2.Channel(channel_id="presale", name="Presale", access_code="EARLY")
ACCESS = channels_pb2.ChannelAccess(channel_id="presale", access_code="EARLY")


async def _presale(api: Api, *seats: str, places: int = 0) -> str:
    event_id = await sessions_test.make_event(api)
    await api.channels.DefineChannel(
        channels_pb2.DefineChannelRequest(event_id=event_id, channel=PRESALE), metadata=api.metadata
    )
    await api.channels.AllocateToChannel(
        channels_pb2.AllocateToChannelRequest(
            event_id=event_id, channel_id="presale", seat_ids=list(seats),
            general_admission={"floor": places} if places else {},
        ),
        metadata=api.metadata,
    )  # fmt: skip
    return event_id


async def test_a_channels_seats_need_its_access_and_return_when_it_closes(organizer: Api) -> None:
    event_id = await _presale(organizer, "r0-0", "r0-1", places=2)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await organizer.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0", "r0-2"]),
            metadata=organizer.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_subjects(refused.value) == ["r0-0"]
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await organizer.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(
                event_id=event_id, seat_ids=["r0-0"],
                channel_access=channels_pb2.ChannelAccess(channel_id="presale", access_code="LATE"),
            ),
            metadata=organizer.metadata,
        )  # fmt: skip
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(wrong.value)] == ["channel_access"]
    held = await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"], channel_access=ACCESS),
        metadata=organizer.metadata,
    )
    assert list(held.hold.seat_ids) == ["r0-0"]

    available = await organizer.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=event_id, include_seats=True), metadata=organizer.metadata
    )
    (presale,) = available.by_channel
    assert (presale.channel_id, presale.free, presale.held, presale.sold) == ("presale", 1, 1, 0)
    assert dict(presale.general_admission_reserved) == {"floor": 2}
    assert {(s.seat_id, s.channel_id) for s in available.seat_channels} == {
        ("r0-0", "presale"), ("r0-1", "presale")
    }  # fmt: skip

    closed = await organizer.channels.CloseChannel(
        channels_pb2.CloseChannelRequest(event_id=event_id, channel_id="presale"), metadata=organizer.metadata
    )
    assert (closed.seats_returned, closed.places_returned, closed.channel.closed) == (2, 2, True)
    general = await organizer.holds.HoldSeats(  # anyone's now
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-1"]), metadata=organizer.metadata
    )
    assert list(general.hold.seat_ids) == ["r0-1"]
    async with asyncio.timeout(WAIT_S):
        while True:
            available = await organizer.events.GetAvailability(
                events_pb2.GetAvailabilityRequest(event_id=event_id, include_seats=True),
                metadata=organizer.metadata,
            )
            if available.sequence >= closed.sequence:
                break
            await asyncio.sleep(0.02)  # the mirror follows the stream: wait for it to see the close
    assert not available.seat_channels
    assert not available.by_channel


async def test_the_watch_stream_reports_allocation_changes(organizer: Api) -> None:
    event_id = await sessions_test.make_event(organizer)
    stream = organizer.events.WatchAvailability(
        events_pb2.WatchAvailabilityRequest(event_id=event_id), metadata=organizer.metadata
    )
    first = await stream.read()
    assert first.WhichOneof("update") == "snapshot"
    await organizer.channels.DefineChannel(
        channels_pb2.DefineChannelRequest(event_id=event_id, channel=PRESALE), metadata=organizer.metadata
    )
    for request in (
        channels_pb2.AllocateToChannelRequest(event_id=event_id, channel_id="presale", seat_ids=["r1-1"]),
        channels_pb2.CloseChannelRequest(event_id=event_id, channel_id="presale"),
    ):
        call = (
            organizer.channels.AllocateToChannel
            if isinstance(request, channels_pb2.AllocateToChannelRequest)
            else organizer.channels.CloseChannel
        )
        await call(request, metadata=organizer.metadata)  # type: ignore[operator]
    changes: list[channels_pb2.ChannelChange] = []
    async with asyncio.timeout(WAIT_S):
        while len(changes) < 2:
            update = await stream.read()
            deltas = [update.delta] if update.WhichOneof("update") == "delta" else list(update.deltas.deltas)
            changes += [d.channel_change for d in deltas if d.HasField("channel_change")]
    stream.cancel()
    assert [(c.op, c.channel_id, list(c.seat_ids)) for c in changes] == [
        ("allocated", "presale", ["r1-1"]), ("returned", "presale", ["r1-1"])
    ]  # fmt: skip


async def test_best_available_and_ga_over_a_session_take_channel_places_with_access(organizer: Api) -> None:
    event_id = await _presale(organizer, places=5)  # the whole floor (capacity 5)
    session = sessions_test.Session(organizer)
    try:
        refused = await session.ask(
            hold_general_admission=sales_pb2.HoldGeneralAdmissionRequest(
                event_id=event_id, area_id="floor", quantity=1
            )
        )
        assert refused.WhichOneof("result") == "error"
        answer = await session.ask(
            hold_general_admission=sales_pb2.HoldGeneralAdmissionRequest(
                event_id=event_id, area_id="floor", quantity=2, channel_access=ACCESS
            )
        )
    finally:
        session.call.cancel()
    held = sessions_test.result_of(answer)
    assert isinstance(held, sales_pb2.HoldResponse)
    assert dict(held.hold.general_admission) == {"floor": 2}


async def test_definitions_are_checked_and_another_organizers_event_is_not_found(
    organizer: Api, admin: Api, server: str
) -> None:
    event_id = await _presale(organizer, "r0-0")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await organizer.channels.DefineChannel(
            channels_pb2.DefineChannelRequest(
                event_id=event_id, channel=channels_pb2.Channel(channel_id="p2", name="No code")
            ),
            metadata=organizer.metadata,
        )
    assert [f for f, _ in field_violations(bad.value)] == ["channel.access_code"]
    await organizer.channels.DefineChannel(
        channels_pb2.DefineChannelRequest(
            event_id=event_id,
            channel=channels_pb2.Channel(
                channel_id="door", name="Door", kind=channels_pb2.CHANNEL_KIND_BOX_OFFICE
            ),
        ),
        metadata=organizer.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await organizer.channels.AllocateToChannel(
            channels_pb2.AllocateToChannelRequest(event_id=event_id, channel_id="door", seat_ids=["r0-0"]),
            metadata=organizer.metadata,
        )
    assert taken.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_subjects(taken.value) == ["r0-0"]
    listed = await organizer.channels.ListChannels(
        channels_pb2.ListChannelsRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [c.channel_id for c in listed.channels] == ["door", "presale"]
    key = await admin.new_tenant_key("rival")
    async with Api(server, key) as rival:
        for call, request in (
            (rival.channels.ListChannels, channels_pb2.ListChannelsRequest(event_id=event_id)),
            (
                rival.channels.CloseChannel,
                channels_pb2.CloseChannelRequest(event_id=event_id, channel_id="presale"),
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await call(request, metadata=rival.metadata)  # type: ignore[operator]
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
