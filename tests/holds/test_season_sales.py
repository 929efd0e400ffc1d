"""Selling seasons against real Redis (single and Cluster): bundle prices split over the
events' orders, ticket types and promo codes at a season commit."""

from __future__ import annotations

import pytest

from holds import keys
from holds.billing import Billing
from holds.errors import Conflict, InvalidRequest, NotFound
from holds.records import Buyer
from holds.redis_client import AnyRedis
from rules.bundles import split_bundle
from rules.statements import Period
from server.context import Stores
from tests.holds.factories import PRICES, TENANT, check_consistent, read_state
from tests.holds.test_seasons import TestSeason, make_season

BUNDLE = {"vip": 10_000, "std": 3_001}


async def bundled(stores: Stores, n_events: int = 3) -> TestSeason:
    s = await make_season(stores, n_events)
    season = await stores.seasons.set_bundle_prices(TENANT, s.season.season_id, s.loaded, BUNDLE)
    return TestSeason(season, s.loaded)


def category(s: TestSeason, ordinal: int) -> str:
    return s.loaded.index.placed[ordinal].seat.category


async def test_bundle_prices_are_stored_validated_and_replaced(stores: Stores) -> None:
    s = await make_season(stores, 1)
    assert s.season.bundle_prices == {}
    made = await stores.seasons.create(TENANT, s.loaded, "EUR", "With a bundle", {"vip": 9000})
    assert (await stores.seasons.get(TENANT, made.season_id)).bundle_prices == {"vip": 9000}
    with pytest.raises(InvalidRequest, match=r"bundle_prices\[balcony\]"):
        await stores.seasons.create(TENANT, s.loaded, "EUR", "Bad", {"balcony": 1})
    with pytest.raises(InvalidRequest, match=r"bundle_prices\[vip\]"):
        await stores.seasons.set_bundle_prices(TENANT, made.season_id, s.loaded, {"vip": -1})
    assert (await stores.seasons.get(TENANT, made.season_id)).bundle_prices == {"vip": 9000}  # unchanged
    again = await stores.seasons.set_bundle_prices(TENANT, made.season_id, s.loaded, {"std": 10})
    assert again.bundle_prices == {"std": 10}
    with pytest.raises(NotFound):  # another organizer's season: as if it did not exist
        await stores.seasons.set_bundle_prices("other", made.season_id, s.loaded, {"std": 1})


async def test_a_whole_season_commit_is_priced_from_the_bundle(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await bundled(stores)
    seats = [0, 7]  # a vip and a std seat
    assert [category(s, o) for o in seats] == ["vip", "std"]
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(o) for o in seats])
    order = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer(name="Ada"))
    assert order.bundle_priced
    assert order.total == BUNDLE["vip"] + BUNDLE["std"]
    assert sum(o.total for o in order.orders) == order.total
    for j, o in enumerate(seats):  # each seat's bundle split over the events by their list prices
        cat = category(s, o)
        lists = [PRICES[cat] + 100 * i for i in range(3)]
        assert [eo.tickets[j].price for eo in order.orders] == split_bundle(BUNDLE[cat], lists)
    for event_id, event_order in zip(s.events, order.orders, strict=True):
        assert event_order.total == sum(t.price for t in event_order.tickets)
        check_consistent(await read_state(redis_client, event_id))
    again = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer(name="Ada"))
    assert again.replayed
    assert again.bundle_priced
    assert again.total == order.total
    read = await stores.season_sales.get_order(TENANT, s.season.season_id, order.season_order_id)
    assert read.bundle_priced
    assert read.total == order.total
    # statements read the orders' amounts: the season's gross is the bundle
    statement = await Billing(stores.redis).statement(TENANT, Period(0, 2**62), s.events)
    assert statement.currencies[0].totals.gross == BUNDLE["vip"] + BUNDLE["std"]


async def test_a_subset_commit_uses_the_events_own_prices(stores: Stores) -> None:
    s = await bundled(stores)
    held = await stores.season_sales.hold(
        TENANT, s.season.season_id, [s.seat(0)], event_ids=[s.events[0], s.events[2]]
    )
    order = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer())
    assert not order.bundle_priced
    assert [o.total for o in order.orders] == [PRICES["vip"], PRICES["vip"] + 200]


async def test_a_category_with_no_bundle_price_sells_at_the_events_prices(stores: Stores) -> None:
    s = await make_season(stores)
    await stores.seasons.set_bundle_prices(TENANT, s.season.season_id, s.loaded, {"vip": 9_999})
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0), s.seat(7)])
    order = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer())
    assert order.bundle_priced
    assert sum(o.tickets[0].price for o in order.orders) == 9_999
    assert [o.tickets[1].price for o in order.orders] == [PRICES["std"] + 100 * i for i in range(3)]


async def test_a_price_moved_under_the_commit_is_split_again(
    stores: Stores, redis_client: AnyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script checks each list price the split was made from: a price changed between
    the split and the script is refused, split again and committed at the new proportions."""
    s = await bundled(stores, 2)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    sales = stores.season_sales
    real = sales._bundle
    calls = 0

    async def moving(*args: object) -> str:
        nonlocal calls
        calls += 1
        split = await real(*args)  # type: ignore[arg-type]
        if calls == 1:  # an organizer changes the second event's price right after the split
            await redis_client.hset(keys.event_key(s.events[1], "prices"), "vip", 8_000)
        return split

    monkeypatch.setattr(sales, "_bundle", moving)
    order = await sales.commit(TENANT, held.token, "pay-1", Buyer())
    assert calls == 2
    assert [o.tickets[0].price for o in order.orders] == split_bundle(BUNDLE["vip"], [PRICES["vip"], 8_000])


async def test_prices_that_keep_moving_are_a_conflict_and_sell_nothing(
    stores: Stores, redis_client: AnyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await bundled(stores, 2)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    sales = stores.season_sales
    real = sales._bundle
    price = iter(range(5_000, 6_000))

    async def moving(*args: object) -> str:
        split = await real(*args)  # type: ignore[arg-type]
        await redis_client.hset(keys.event_key(s.events[1], "prices"), "vip", next(price))
        return split

    monkeypatch.setattr(sales, "_bundle", moving)
    with pytest.raises(Conflict, match="changed their prices"):
        await sales.commit(TENANT, held.token, "pay-1", Buyer())
    for event_id in s.events:
        assert (await read_state(redis_client, event_id)).orders == {}
