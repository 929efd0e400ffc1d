"""Selling seasons end to end through a real server and Redis (single and Cluster): bundle
prices (CreateSeason, SetSeasonPrices, GetSeason, CommitSeasonHold), ticket types and promo
codes at a season commit, unary and over a sales session."""

from __future__ import annotations

import grpc
import pytest
from seatwise.v1 import events_pb2, seasons_pb2

from tests.api import Api, field_violations
from tests.server.test_seasons_api import _season


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
