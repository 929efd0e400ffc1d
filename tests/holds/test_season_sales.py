"""Selling seasons against real Redis (single and Cluster): bundle prices split over the
events' orders, ticket types and promo codes at a season commit."""

from __future__ import annotations

import asyncio

import pytest

from holds import keys
from holds.billing import Billing
from holds.errors import Conflict, InvalidRequest, NotFound, PreconditionFailed
from holds.offers import OfferChoice
from holds.records import Buyer
from holds.redis_client import AnyRedis
from rules.bundles import split_bundle
from rules.promos import PromoCode, TicketType, discount
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


# -- ticket types and promo codes at a season commit -------------------------------------------


def child(i: int, max_per_order: int = 0) -> TicketType:
    """Event i's child type: its own prices."""
    return TicketType(
        type_id="child", name="Child", prices={"vip": 2000 + 10 * i, "std": 700 + 10 * i},
        max_per_order=max_per_order,
    )  # fmt: skip


async def with_types(stores: Stores, s: TestSeason, max_per_order: int = 0, skip: int = -1) -> None:
    for i, event_id in enumerate(s.events):
        if i != skip:
            await stores.offers.put_type(TENANT, event_id, child(i, max_per_order), "create")


async def test_a_type_per_seat_applies_in_every_event_at_its_price(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores)
    await with_types(stores, s)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0), s.seat(7)], buyer="ada")
    order = await stores.season_sales.commit(
        TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice({s.seat(0): "child"})
    )
    for i, event_order in enumerate(order.orders):
        first, second = event_order.tickets
        assert (first.ticket_type, first.price) == ("child", 2000 + 10 * i)
        assert (second.ticket_type, second.price) == ("", PRICES["std"] + 100 * i)
        assert event_order.total == first.price + second.price
        check_consistent(await read_state(redis_client, s.events[i]))


async def test_a_type_unknown_in_one_event_names_the_event_and_sells_nothing(
    stores: Stores, redis_client: AnyRedis
) -> None:
    s = await make_season(stores)
    await with_types(stores, s, skip=1)
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    with pytest.raises(InvalidRequest, match=f"unknown ticket type 'child' in event {s.events[1]}") as bad:
        await stores.season_sales.commit(
            TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice({s.seat(0): "child"})
        )
    assert bad.value.field == "ticket_types"
    with pytest.raises(InvalidRequest, match=rf"ticket_types\[{s.seat(3)}\]"):  # a seat not in the hold
        await stores.season_sales.commit(
            TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice({s.seat(3): "child"})
        )
    with pytest.raises(InvalidRequest, match=r"ga_ticket_types\[floor\]"):
        await stores.season_sales.commit(
            TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice(ga_types={"floor": {"child": 1}})
        )
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert state.orders == {}
        check_consistent(state)
    done = await stores.season_sales.commit(TENANT, held.token, "pay-1", Buyer())  # the hold is intact
    assert len(done.orders) == 3


async def test_a_types_limit_per_order_applies_to_each_events_order(stores: Stores) -> None:
    s = await make_season(stores)
    await with_types(stores, s, max_per_order=1)
    two = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0), s.seat(1)])
    both = OfferChoice({s.seat(0): "child", s.seat(1): "child"})
    with pytest.raises(
        InvalidRequest, match=f"at most 1 ticket.* of type 'child' per order in event {s.events[0]}"
    ):
        await stores.season_sales.commit(TENANT, two.token, "pay-1", Buyer(), offer=both)
    # one child seat: one per event order, three in the season order
    order = await stores.season_sales.commit(
        TENANT, two.token, "pay-1", Buyer(), offer=OfferChoice({s.seat(1): "child"})
    )
    assert [[t.ticket_type for t in o.tickets] for o in order.orders] == [["", "child"]] * 3


async def test_each_events_own_code_counts_a_use_per_order(stores: Stores) -> None:
    s = await make_season(stores)
    ten = PromoCode("TEN", "percent", bps=1000, max_uses=5)
    for event_id in s.events:
        await stores.offers.put_promo(TENANT, event_id, ten, "create")
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], buyer="ada")
    order = await stores.season_sales.commit(
        TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice(promo_code="TEN")
    )
    lists = [PRICES["vip"] + 100 * i for i in range(3)]
    assert [o.tickets[0].price for o in order.orders] == [p - discount(p, ten) for p in lists]
    assert order.promo_code == "TEN"
    assert order.discount == sum(discount(p, ten) for p in lists)
    assert all(o.promo_code == "TEN" for o in order.orders)
    for event_id in s.events:
        assert [i.uses for i in await stores.offers.list_promos(TENANT, event_id)] == [1]
    again = await stores.season_sales.commit(
        TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice(promo_code="TEN")
    )
    assert again.replayed
    for event_id in s.events:  # a replay uses nothing
        assert [i.uses for i in await stores.offers.list_promos(TENANT, event_id)] == [1]


async def test_an_organizer_code_is_one_use_per_season_order_and_goes_with_the_bundle(stores: Stores) -> None:
    s = await bundled(stores)
    half = PromoCode("HALF", "percent", bps=5000, max_uses=2)
    await stores.offers.put_promo(TENANT, "", half, "create")
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)], buyer="ada")
    order = await stores.season_sales.commit(
        TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice(promo_code="HALF")
    )
    shares = split_bundle(BUNDLE["vip"], [PRICES["vip"] + 100 * i for i in range(3)])
    assert order.bundle_priced
    assert [o.tickets[0].price for o in order.orders] == [p - discount(p, half) for p in shares]
    assert order.total == BUNDLE["vip"] - order.discount
    assert {o.promo_scope for o in order.orders} == {"season"}
    assert [i.uses for i in await stores.offers.list_promos(TENANT, "")] == [1]
    again = await stores.season_sales.commit(
        TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice(promo_code="HALF")
    )
    assert again.replayed
    assert [i.uses for i in await stores.offers.list_promos(TENANT, "")] == [
        1
    ]  # the replay's claim given back


async def test_a_code_unknown_in_one_event_names_it_and_gives_nothing_back_twice(stores: Stores) -> None:
    s = await make_season(stores)
    await stores.offers.put_promo(TENANT, s.events[0], PromoCode("ONE", "amount", amount=100), "create")
    held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(0)])
    with pytest.raises(InvalidRequest, match=f"unknown promo code 'ONE' in event {s.events[1]}"):
        await stores.season_sales.commit(
            TENANT, held.token, "pay-1", Buyer(), offer=OfferChoice(promo_code="ONE")
        )
    # an organizer code is refused in one event (too few places): its claimed use comes back
    await stores.offers.put_promo(
        TENANT, "", PromoCode("BIG", "amount", amount=100, min_quantity=2), "create"
    )
    with pytest.raises(PreconditionFailed, match=f"at least 2 place.* in event {s.events[0]}"):
        await stores.season_sales.commit(
            TENANT, held.token, "pay-2", Buyer(), offer=OfferChoice(promo_code="BIG")
        )
    assert [(i.promo.code, i.uses) for i in await stores.offers.list_promos(TENANT, "")] == [("BIG", 0)]


async def _race(stores: Stores, s: TestSeason, code: str, n: int) -> list[object]:
    holds = [
        await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(o)], buyer=f"b{o}")
        for o in range(n)
    ]
    return await asyncio.gather(
        *(
            stores.season_sales.commit(TENANT, h.token, f"k{i}", Buyer(), offer=OfferChoice(promo_code=code))
            for i, h in enumerate(holds)
        ),
        return_exceptions=True,
    )


@pytest.mark.parametrize("scope", ["event", "organizer"])
async def test_concurrent_season_commits_use_a_code_exactly_its_max_uses(
    stores: Stores, redis_client: AnyRedis, scope: str
) -> None:
    """Eight season commits at once against a code of at most 3 uses: exactly 3 get it, the
    others are refused and sell nothing. An event's code counts in the season's slot, in the
    commit script; an organizer's in its own slot, claimed first (one use per season order)."""
    s = await make_season(stores)
    three = PromoCode("THREE", "percent", bps=2000, max_uses=3)
    for event_id in s.events if scope == "event" else [""]:
        await stores.offers.put_promo(TENANT, event_id, three, "create")
    outcomes = await _race(stores, s, "THREE", 8)
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 3
    assert all(isinstance(e, PreconditionFailed) and "'THREE' is used up" in str(e) for e in lost), lost
    for event_id in s.events if scope == "event" else [""]:
        assert [i.uses for i in await stores.offers.list_promos(TENANT, event_id)] == [3]
    for event_id in s.events:
        state = await read_state(redis_client, event_id)
        assert sum(1 for o in state.orders.values() if o.promo_code == "THREE") == 3
        assert len(state.orders) == 3
        check_consistent(state)


async def test_a_season_orders_organizer_code_use_comes_back_once_when_all_its_orders_are_cancelled(
    stores: Stores, redis_client: AnyRedis
) -> None:
    """The season order's one use of an organizer-wide code is given back, in total and for its
    buyer, once every one of its orders is wholly cancelled (cancelled or refunded with the
    places released), not before and never twice: replayed cancels and concurrent cancels of
    its orders return it once."""
    s = await make_season(stores)
    await stores.offers.put_promo(TENANT, "", PromoCode("TWO", "amount", amount=100, max_uses=2,
                                                        max_uses_per_buyer=1), "create")  # fmt: skip
    uses_key = keys.tenant_promo_uses(TENANT)

    async def season_order(seat: int, buyer: str) -> list[tuple[str, str]]:
        held = await stores.season_sales.hold(TENANT, s.season.season_id, [s.seat(seat)], buyer=buyer)
        order = await stores.season_sales.commit(
            TENANT, held.token, f"pay-{seat}", Buyer(), offer=OfferChoice(promo_code="TWO")
        )
        assert {(o.promo_scope, o.promo_buyer) for o in order.orders} == {("season", buyer)}
        return [(e, o.order_id) for e, o in zip(order.event_ids, order.orders, strict=True)]

    async def uses() -> tuple[int, int, int]:
        got = await redis_client.hmget(uses_key, ["TWO", "TWO|ada", "TWO|bob"])
        return (int(got[0] or 0), int(got[1] or 0), int(got[2] or 0))

    ada = await season_order(0, "ada")
    bob = await season_order(1, "bob")
    assert await uses() == (2, 1, 1)
    (e0, o0), (e1, o1), (e2, o2) = ada
    await stores.sales.cancel(TENANT, e0, o0, [], "free", "")
    await stores.sales.refund(TENANT, e1, o1, {}, refund_key="r1", release_to="free")
    assert await uses() == (2, 1, 1), "two of its three orders cancelled: the use is still the order's"
    with pytest.raises(PreconditionFailed):  # a retry of a cancel made: nothing more
        await stores.sales.cancel(TENANT, e0, o0, [], "free", "")
    assert await uses() == (2, 1, 1)
    await stores.sales.cancel(TENANT, e2, o2, [], "free", "")
    assert await uses() == (1, 0, 1), "the last order cancelled: the season order's one use back"
    for _ in range(2):  # replays of each cancel: nothing more
        for event_id, order_id in ada:
            with pytest.raises(PreconditionFailed):
                await stores.sales.cancel(TENANT, event_id, order_id, [], "free", "")
    assert await uses() == (1, 0, 1)

    # bob's orders cancelled all at once, each twice: his use back exactly once
    outcomes = await asyncio.gather(
        *(stores.sales.cancel(TENANT, e, o, [], "free", "") for e, o in bob * 2), return_exceptions=True
    )
    assert sum(1 for r in outcomes if not isinstance(r, BaseException)) == 3
    assert all(isinstance(r, PreconditionFailed) for r in outcomes if isinstance(r, BaseException))
    again = await season_order(2, "ada")  # the code can be used again, by ada too
    assert await uses() == (1, 1, 0)
    for event_id in s.events:
        assert await redis_client.zcard(keys.promo_back_keys(event_id)[1]) == 0, "backlog drained"
        check_consistent(await read_state(redis_client, event_id))
    assert len(again) == 3
