"""SeasonService end to end through a real server and Redis: a season, events created into
it, a season hold over every event (or some), its commit into one order per event."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import channels_pb2, events_pb2, sales_pb2, seasons_pb2

from tests.api import Api, field_violations, precondition_subjects, status_of
from tests.server.events import published_map
from tests.server.maps import small_map
from tests.server.test_sessions import Session

PRICES = [
    events_pb2.CategoryPrice(category="front", amount_minor=5000),
    events_pb2.CategoryPrice(category="back", amount_minor=3000),
    events_pb2.CategoryPrice(category="floor", amount_minor=2000),
]


async def _season(api: Api, n_events: int = 3) -> seasons_pb2.Season:
    sm = await published_map(api, small_map())
    created = await api.seasons.CreateSeason(
        seasons_pb2.CreateSeasonRequest(name="Season 26/27", seat_map_id=sm.seat_map_id, currency="EUR"),
        metadata=api.metadata,
    )
    for i in range(n_events):
        event = await api.events.CreateEvent(
            events_pb2.CreateEventRequest(
                season_id=created.season.season_id, name=f"Night {i}", prices=PRICES,
                status=events_pb2.EVENT_STATUS_ON_SALE,
            ),
            metadata=api.metadata,
        )  # fmt: skip
        assert event.event.season_id == created.season.season_id
        assert event.event.seat_map_id == sm.seat_map_id
        assert event.event.currency == "EUR"
    got = await api.seasons.GetSeason(
        seasons_pb2.GetSeasonRequest(season_id=created.season.season_id), metadata=api.metadata
    )
    assert len(got.season.event_ids) == n_events
    return got.season


async def test_a_season_hold_commits_to_one_order_per_event(organizer: Api) -> None:
    season = await _season(organizer)
    held = await organizer.seasons.HoldSeasonSeats(
        seasons_pb2.HoldSeasonSeatsRequest(
            season_id=season.season_id, seat_ids=["r0-0", "r0-1"], buyer_id="ada"
        ),
        metadata=organizer.metadata,
    )
    assert list(held.hold.event_ids) == list(season.event_ids)
    assert list(held.hold.seat_ids) == ["r0-0", "r0-1"]
    commit = seasons_pb2.CommitSeasonHoldRequest(
        season_hold_token=held.hold.season_hold_token,
        idempotency_key="season-pay-1",
        buyer=sales_pb2.BuyerDetails(name="Ada"),
    )
    done = await organizer.seasons.CommitSeasonHold(commit, metadata=organizer.metadata)
    assert not done.replayed
    assert [o.event_id for o in done.order.orders] == list(season.event_ids)
    assert all(len(o.tickets) == 2 for o in done.order.orders)
    assert done.order.total.amount_minor == 3 * 2 * 5000
    again = await organizer.seasons.CommitSeasonHold(commit, metadata=organizer.metadata)
    assert again.replayed
    assert [o.order_id for o in again.order.orders] == [o.order_id for o in done.order.orders]
    read = await organizer.seasons.GetSeasonOrder(
        seasons_pb2.GetSeasonOrderRequest(
            season_id=season.season_id, season_order_id=done.order.season_order_id
        ),
        metadata=organizer.metadata,
    )
    assert read.order.season_order_id == done.order.season_order_id
    # each event's own order, as any order
    first = done.order.orders[0]
    got = await organizer.orders.GetOrder(
        sales_pb2.GetOrderRequest(event_id=first.event_id, order_id=first.order_id),
        metadata=organizer.metadata,
    )
    assert got.order.order_id == first.order_id


async def test_a_taken_seat_fails_the_whole_season_hold_naming_event_and_seat(organizer: Api) -> None:
    season = await _season(organizer)
    taken_in = season.event_ids[1]
    await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=taken_in, seat_ids=["r0-1"]), metadata=organizer.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seasons.HoldSeasonSeats(
            seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id, seat_ids=["r0-0", "r0-1"]),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_subjects(err.value) == [f"{taken_in}/r0-1"]
    # nothing was held anywhere: the other events' r0-0 and r0-1 are free for a season hold of them
    others = [e for e in season.event_ids if e != taken_in]
    held = await organizer.seasons.HoldSeasonSeats(
        seasons_pb2.HoldSeasonSeatsRequest(
            season_id=season.season_id, seat_ids=["r0-0", "r0-1"], event_ids=others
        ),
        metadata=organizer.metadata,
    )
    assert list(held.hold.event_ids) == others
    await organizer.seasons.ReleaseSeasonHold(
        seasons_pb2.SeasonHoldRequest(season_hold_token=held.hold.season_hold_token),
        metadata=organizer.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seasons.GetSeasonHold(
            seasons_pb2.SeasonHoldRequest(season_hold_token=held.hold.season_hold_token),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_input_names_the_field(organizer: Api) -> None:
    season = await _season(organizer, n_events=1)
    cases = [
        (seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id), "seat_ids"),
        (seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id, seat_ids=["nope"]), "seat_ids"),
        (
            seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r0-0"], event_ids=["evX"]
            ),
            "event_ids[0]",
        ),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await organizer.seasons.HoldSeasonSeats(request, metadata=organizer.metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in [f for f, _ in field_violations(err.value)]
    with pytest.raises(grpc.aio.AioRpcError) as err:  # another seat map than the season's
        await organizer.events.CreateEvent(
            events_pb2.CreateEventRequest(season_id=season.season_id, name="x", currency="USD"),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "currency" in [f for f, _ in field_violations(err.value)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seasons.CommitSeasonHold(
            seasons_pb2.CommitSeasonHoldRequest(season_hold_token="", idempotency_key="k"),
            metadata=organizer.metadata,
        )
    assert "season_hold_token" in [f for f, _ in field_violations(err.value)]
    listed = await organizer.seasons.ListSeasons(
        seasons_pb2.ListSeasonsRequest(), metadata=organizer.metadata
    )
    assert season.season_id in [s.season_id for s in listed.seasons]


async def test_season_operations_over_a_sales_session(organizer: Api) -> None:
    """The season operations answer over a session as their unary RPCs do."""
    season = await _season(organizer, n_events=2)
    session = Session(organizer)
    try:
        answer = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r1-0"]
            )
        )
        held = answer.season_hold.hold
        assert list(held.event_ids) == list(season.event_ids)
        token = held.season_hold_token
        got = await session.ask(get_season_hold=seasons_pb2.SeasonHoldRequest(season_hold_token=token))
        assert got.season_hold.hold.seat_ids == ["r1-0"]
        extended = await session.ask(
            extend_season_hold=seasons_pb2.ExtendSeasonHoldRequest(season_hold_token=token)
        )
        assert extended.WhichOneof("result") == "season_hold"
        # the same seats again: refused as the unary call refuses, naming each event's seat
        taken = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r1-0"]
            )
        )
        assert taken.error.code == code_pb2.FAILED_PRECONDITION
        committed = await session.ask(
            commit_season_hold=seasons_pb2.CommitSeasonHoldRequest(
                season_hold_token=token, idempotency_key="s-1"
            )
        )
        assert len(committed.season_order.order.orders) == 2
        other = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r1-1"]
            )
        )
        released = await session.ask(
            release_season_hold=seasons_pb2.SeasonHoldRequest(
                season_hold_token=other.season_hold.hold.season_hold_token
            )
        )
        assert released.WhichOneof("result") == "season_release"
    finally:
        session.call.cancel()


@pytest.mark.parametrize("sessions", [0, 2])
async def test_the_client_holds_and_commits_a_season_over_either_transport(
    organizer: Api, sessions: int
) -> None:
    season = await _season(organizer, n_events=2)
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    async with SeatwiseClient(organizer.target, key, sessions=sessions) as client:
        held = await client.hold_season_seats(season.season_id, ["r1-2"], buyer_id="b1")
        token = held.hold.season_hold_token
        assert (await client.get_season_hold(token)).hold.seat_ids == ["r1-2"]
        assert (await client.extend_season_hold(token)).hold.season_hold_token == token
        with pytest.raises(SeatwiseError) as err:
            await client.hold_season_seats(season.season_id, ["r1-2"])
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        done = await client.commit_season_hold(token, "pay-1", buyer=sales_pb2.BuyerDetails(name="Ann"))
        again = await client.commit_season_hold(token, "pay-1")
        assert again.replayed
        assert again.order.season_order_id == done.order.season_order_id
        assert [len(o.tickets) for o in done.order.orders] == [1, 1]
        other = await client.hold_season_seats(season.season_id, ["r1-3"], request_id="c-1")
        retried = await client.hold_season_seats(season.season_id, ["r1-3"], request_id="c-1")
        assert retried.replayed
        assert retried.hold.season_hold_token == other.hold.season_hold_token
        await client.release_season_hold(other.hold.season_hold_token)


PRESALE = channels_pb2.Channel(channel_id="presale", name="Presale", access_code="EARLY")
ACCESS = channels_pb2.ChannelAccess(channel_id="presale", access_code="EARLY")


def _violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(type, subject) of each PreconditionFailure violation."""
    out = []
    for detail in status_of(error).details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            out += [(v.type, v.subject) for v in failure.violations]
    return out


async def _statuses(api: Api, event_id: str) -> dict[str, int]:
    """Every seat's status in the event's availability (a seat not listed is free)."""
    reply = await api.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=event_id, include_seats=True), metadata=api.metadata
    )
    listed = {s.seat_id: s.status for s in reply.seats}
    every = [f"r{r}-{n}" for r in range(2) for n in range(6)]
    return {seat: listed.get(seat, events_pb2.SEAT_STATUS_FREE) for seat in every}


async def _statuses_once(api: Api, event_id: str, seat: str, status: int) -> dict[str, int]:
    """The statuses once ``seat`` shows ``status``: the mirror follows the change stream."""
    for _ in range(200):
        statuses = await _statuses(api, event_id)
        if statuses[seat] == status:
            break
        await asyncio.sleep(0.02)
    return statuses


async def _rules(api: Api, season: seasons_pb2.Season) -> None:
    """A one-seat distancing rule on the first event, a presale channel in each with seat r0-3
    allocated to it in the second: both allowed on a season's events."""
    first, second = season.event_ids[0], season.event_ids[1]
    await api.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=first, distancing=events_pb2.Distancing(seats_in_row=1)),
        metadata=api.metadata,
    )
    for event_id in season.event_ids:
        await api.channels.DefineChannel(
            channels_pb2.DefineChannelRequest(event_id=event_id, channel=PRESALE), metadata=api.metadata
        )
    await api.channels.AllocateToChannel(
        channels_pb2.AllocateToChannelRequest(event_id=second, channel_id="presale", seat_ids=["r0-3"]),
        metadata=api.metadata,
    )


async def test_season_holds_under_channels_and_distancing(organizer: Api) -> None:
    """A season's events take channels and a distancing rule; a season hold obeys both in each
    event, refusals name "<event id>/<seat id>", and availability shows each event's states."""
    season = await _season(organizer)
    first, second, third = season.event_ids
    await _rules(organizer, season)
    hold = organizer.seasons.HoldSeasonSeats
    with pytest.raises(grpc.aio.AioRpcError) as no_access:
        await hold(
            seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id, seat_ids=["r0-3"]),
            metadata=organizer.metadata,
        )
    assert no_access.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _violations(no_access.value) == [("SEAT_STATE", f"{second}/r0-3")]
    held = await hold(
        seasons_pb2.HoldSeasonSeatsRequest(
            season_id=season.season_id, seat_ids=["r0-3"], channel_access=ACCESS
        ),
        metadata=organizer.metadata,
    )
    assert list(held.hold.event_ids) == list(season.event_ids)
    # each event's availability: held everywhere, its neighbours distanced in the first only
    states = {
        e: await _statuses_once(organizer, e, "r0-3", events_pb2.SEAT_STATUS_HELD) for e in season.event_ids
    }
    for event_id in season.event_ids:
        assert states[event_id]["r0-3"] == events_pb2.SEAT_STATUS_HELD
        assert states[event_id]["r1-3"] == events_pb2.SEAT_STATUS_FREE
    assert states[first]["r0-2"] == states[first]["r0-4"] == events_pb2.SEAT_STATUS_DISTANCED
    assert states[second]["r0-2"] == states[third]["r0-4"] == events_pb2.SEAT_STATUS_FREE
    per_channel = await organizer.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=second), metadata=organizer.metadata
    )
    assert [(c.channel_id, c.held) for c in per_channel.by_channel] == [("presale", 1)]
    with pytest.raises(grpc.aio.AioRpcError) as near:
        await hold(
            seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id, seat_ids=["r0-4", "r1-0"]),
            metadata=organizer.metadata,
        )
    assert near.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _violations(near.value) == [("SEAT_DISTANCED", f"{first}/r0-4")]
    await organizer.seasons.ReleaseSeasonHold(
        seasons_pb2.SeasonHoldRequest(season_hold_token=held.hold.season_hold_token),
        metadata=organizer.metadata,
    )
    freed = await _statuses_once(organizer, first, "r0-3", events_pb2.SEAT_STATUS_FREE)
    assert freed["r0-4"] == freed["r0-2"] == events_pb2.SEAT_STATUS_FREE  # its neighbours with it


async def test_channel_access_request_ids_and_ga_over_a_sales_session(organizer: Api) -> None:
    season = await _season(organizer, n_events=2)
    await _rules(organizer, season)
    session = Session(organizer)
    try:
        refused = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r0-3"]
            )
        )
        assert refused.error.code == code_pb2.FAILED_PRECONDITION
        held = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r0-3"], channel_access=ACCESS
            )
        )
        assert list(held.season_hold.hold.seat_ids) == ["r0-3"]
        retry_safe = seasons_pb2.HoldSeasonSeatsRequest(
            season_id=season.season_id, seat_ids=["r1-4"], request_id="q-1"
        )
        first = await session.ask(hold_season_seats=retry_safe)
        again = await session.ask(hold_season_seats=retry_safe)
        assert (first.season_hold.replayed, again.season_hold.replayed) == (False, True)
        assert again.season_hold.hold.season_hold_token == first.season_hold.hold.season_hold_token
        other = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r1-5"], request_id="q-1"
            )
        )
        assert other.error.code == code_pb2.INVALID_ARGUMENT
        places = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, general_admission={"floor": 3}
            )
        )
        assert dict(places.season_hold.hold.general_admission) == {"floor": 3}
        too_many = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, general_admission={"floor": 3}
            )
        )
        assert too_many.error.code == code_pb2.ABORTED
    finally:
        session.call.cancel()


async def test_general_admission_in_a_season_hold(organizer: Api) -> None:
    """GA places in every event, a GA ticket per place and event at commit; an event with too
    few places fails the whole hold with ABORTED naming the event and the area."""
    season = await _season(organizer, n_events=2)
    first, second = season.event_ids
    held = await organizer.seasons.HoldSeasonSeats(
        seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id, general_admission={"floor": 2}),
        metadata=organizer.metadata,
    )
    assert dict(held.hold.general_admission) == {"floor": 2}
    assert list(held.hold.seat_ids) == []
    await organizer.holds.HoldGeneralAdmission(
        sales_pb2.HoldGeneralAdmissionRequest(event_id=second, area_id="floor", quantity=2),
        metadata=organizer.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as too_few:
        await organizer.seasons.HoldSeasonSeats(
            seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r0-0"], general_admission={"floor": 2}
            ),
            metadata=organizer.metadata,
        )
    assert too_few.value.code() == grpc.StatusCode.ABORTED
    assert f"{second}/floor" in (too_few.value.details() or "")
    resources = []
    for detail in status_of(too_few.value).details:
        info = error_details_pb2.ResourceInfo()
        if detail.Unpack(info):
            resources.append(info.resource_name)
    assert resources == [f"{second}/floor"]
    assert (await _statuses(organizer, first))["r0-0"] == events_pb2.SEAT_STATUS_FREE  # nothing held
    done = await organizer.seasons.CommitSeasonHold(
        seasons_pb2.CommitSeasonHoldRequest(
            season_hold_token=held.hold.season_hold_token, idempotency_key="ga-1"
        ),
        metadata=organizer.metadata,
    )
    assert [[t.ga_area_id for t in o.tickets] for o in done.order.orders] == [["floor", "floor"]] * 2
    assert done.order.total.amount_minor == 4 * 2000
