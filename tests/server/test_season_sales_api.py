"""Selling seasons end to end through a real server and Redis (single and Cluster): bundle
prices (CreateSeason, SetSeasonPrices, GetSeason, CommitSeasonHold), ticket types and promo
codes at a season commit, unary and over a sales session."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2
from seatwise.v1 import events_pb2, offers_pb2, sales_pb2, seasons_pb2

from tests.api import Api, field_violations
from tests.server.test_seasons_api import _season
from tests.server.test_sessions import Session


def _bundle(**prices: int) -> list[events_pb2.CategoryPrice]:
    return [events_pb2.CategoryPrice(category=c, amount_minor=a) for c, a in prices.items()]


async def _hold(api: Api, season_id: str, seats: list[str], **fields: object) -> str:
    held = await api.seasons.HoldSeasonSeats(
        seasons_pb2.HoldSeasonSeatsRequest(season_id=season_id, seat_ids=seats, **fields),  # type: ignore[arg-type]
        metadata=api.metadata,
    )
    return held.hold.season_hold_token


async def test_bundle_prices_are_set_read_and_sell_a_whole_season(organizer: Api) -> None:
    season = await _season(organizer, n_events=3)
    assert list(season.bundle_prices) == []
    set_ = await organizer.seasons.SetSeasonPrices(
        seasons_pb2.SetSeasonPricesRequest(season_id=season.season_id, bundle_prices=_bundle(front=12_001)),
        metadata=organizer.metadata,
    )
    assert [(p.category, p.amount_minor) for p in set_.season.bundle_prices] == [("front", 12_001)]
    got = await organizer.seasons.GetSeason(
        seasons_pb2.GetSeasonRequest(season_id=season.season_id), metadata=organizer.metadata
    )
    assert [(p.category, p.amount_minor) for p in got.season.bundle_prices] == [("front", 12_001)]
    token = await _hold(organizer, season.season_id, ["r0-0", "r0-1"])
    done = await organizer.seasons.CommitSeasonHold(
        seasons_pb2.CommitSeasonHoldRequest(season_hold_token=token, idempotency_key="b-1"),
        metadata=organizer.metadata,
    )
    assert done.order.bundle_priced
    assert done.order.total.amount_minor == 2 * 12_001
    assert sum(o.total.amount_minor for o in done.order.orders) == 2 * 12_001
    # equal list prices: 4001, 4000, 4000 per seat, the remainder on the first event
    assert [o.total.amount_minor for o in done.order.orders] == [8002, 8000, 8000]
    # a subset of the events: each event's own price
    token = await _hold(organizer, season.season_id, ["r0-2"], event_ids=[season.event_ids[1]])
    done = await organizer.seasons.CommitSeasonHold(
        seasons_pb2.CommitSeasonHoldRequest(season_hold_token=token, idempotency_key="b-2"),
        metadata=organizer.metadata,
    )
    assert not done.order.bundle_priced
    assert done.order.total.amount_minor == 5000


async def test_bad_bundle_prices_name_the_field_and_change_nothing(organizer: Api) -> None:
    season = await _season(organizer, n_events=1)
    bad = [
        (_bundle(balcony=1), "bundle_prices[balcony]"),
        (_bundle(front=-5), "bundle_prices[front]"),
        (_bundle(front=1) + _bundle(front=2), "bundle_prices[1].category"),
    ]
    for prices, field in bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await organizer.seasons.SetSeasonPrices(
                seasons_pb2.SetSeasonPricesRequest(season_id=season.season_id, bundle_prices=prices),
                metadata=organizer.metadata,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in [f for f, _ in field_violations(err.value)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seasons.CreateSeason(
            seasons_pb2.CreateSeasonRequest(
                name="x", seat_map_id=season.seat_map_id, currency="EUR", bundle_prices=_bundle(nope=1)
            ),
            metadata=organizer.metadata,
        )
    assert "bundle_prices[nope]" in [f for f, _ in field_violations(err.value)]
    got = await organizer.seasons.GetSeason(
        seasons_pb2.GetSeasonRequest(season_id=season.season_id), metadata=organizer.metadata
    )
    assert list(got.season.bundle_prices) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seasons.SetSeasonPrices(
            seasons_pb2.SetSeasonPricesRequest(season_id="ssNope", bundle_prices=_bundle(front=1)),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    created = await organizer.seasons.CreateSeason(
        seasons_pb2.CreateSeasonRequest(
            name="y", seat_map_id=season.seat_map_id, currency="EUR", bundle_prices=_bundle(back=7)
        ),
        metadata=organizer.metadata,
    )
    assert [(p.category, p.amount_minor) for p in created.season.bundle_prices] == [("back", 7)]


async def _offers(api: Api, season: seasons_pb2.Season, *, skip: str = "") -> None:
    """A child type in every event of the season (but ``skip``), an organizer-wide code."""
    for event_id in season.event_ids:
        if event_id != skip:
            await api.offers.CreateTicketType(
                offers_pb2.PutTicketTypeRequest(
                    event_id=event_id,
                    ticket_type=offers_pb2.TicketType(
                        type_id="child", name="Child", prices=_bundle(front=1000), max_per_order=1
                    ),
                ),
                metadata=api.metadata,
            )
    await api.offers.CreatePromoCode(
        offers_pb2.PutPromoCodeRequest(
            promo_code=offers_pb2.PromoCode(
                code="SEASON10", kind=offers_pb2.PROMO_KIND_PERCENT, percent_bps=1000, max_uses=1
            )
        ),
        metadata=api.metadata,
    )


def _commit(token: str, key: str, **types: str) -> seasons_pb2.CommitSeasonHoldRequest:
    return seasons_pb2.CommitSeasonHoldRequest(
        season_hold_token=token,
        idempotency_key=key,
        ticket_types=[sales_pb2.TicketTypeChoice(seat_id=s, ticket_type=t) for s, t in types.items()],
        promo_code="SEASON10",
    )


async def test_a_season_commit_with_a_type_and_a_promo_code(organizer: Api) -> None:
    season = await _season(organizer, n_events=2)
    await _offers(organizer, season)
    token = await _hold(organizer, season.season_id, ["r0-0", "r0-1"])
    done = await organizer.seasons.CommitSeasonHold(
        _commit(token, "t-1", **{"r0-0": "child"}), metadata=organizer.metadata
    )
    assert done.order.promo_code == "SEASON10"
    for order in done.order.orders:
        assert [(t.ticket_type, t.price.amount_minor) for t in order.tickets] == [("child", 900), ("", 4500)]
    assert done.order.discount.amount_minor == 2 * (100 + 500)
    assert done.order.total.amount_minor == 2 * (900 + 4500)
    # the code's one use is gone: another season order cannot have it
    other = await _hold(organizer, season.season_id, ["r0-2"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seasons.CommitSeasonHold(_commit(other, "t-2"), metadata=organizer.metadata)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "used up" in (err.value.details() or "")


async def test_a_type_unknown_in_one_event_is_invalid_naming_it(organizer: Api) -> None:
    season = await _season(organizer, n_events=2)
    await _offers(organizer, season, skip=season.event_ids[1])
    token = await _hold(organizer, season.season_id, ["r0-0"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seasons.CommitSeasonHold(
            _commit(token, "t-1", **{"r0-0": "child"}), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, why)] = field_violations(err.value)
    assert field == "ticket_types"
    assert f"'child' in event {season.event_ids[1]}" in why
    # the organizer's code was claimed for the refused commit and given back: still usable
    plain = await organizer.seasons.CommitSeasonHold(_commit(token, "t-2"), metadata=organizer.metadata)
    assert plain.order.promo_code == "SEASON10"


async def test_a_season_commit_with_a_type_and_a_promo_over_a_session(organizer: Api) -> None:
    """The new request fields flow through a sales session as through the unary call."""
    season = await _season(organizer, n_events=2)
    await _offers(organizer, season)
    session = Session(organizer)
    try:
        held = await session.ask(
            hold_season_seats=seasons_pb2.HoldSeasonSeatsRequest(
                season_id=season.season_id, seat_ids=["r0-3", "r0-4"]
            )
        )
        token = held.season_hold.hold.season_hold_token
        twice = await session.ask(
            commit_season_hold=_commit(token, "s-1", **{"r0-3": "child", "r0-4": "child"})
        )
        assert twice.error.code == code_pb2.INVALID_ARGUMENT  # at most 1 child per event's order
        assert "per order in event" in twice.error.message
        done = await session.ask(commit_season_hold=_commit(token, "s-1", **{"r0-3": "child"}))
        order = done.season_order.order
        assert order.promo_code == "SEASON10"
        assert [[t.ticket_type for t in o.tickets] for o in order.orders] == [["child", ""]] * 2
        assert order.total.amount_minor == 2 * (900 + 4500)
        again = await session.ask(commit_season_hold=_commit(token, "s-1", **{"r0-3": "child"}))
        assert again.season_order.replayed
    finally:
        session.call.cancel()
