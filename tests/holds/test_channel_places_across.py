"""A channel's GA places come back to it from season holds and orders and from exchanges across
events, as from a single event's (tests/holds/test_channel_places.py): a season hold's release,
its expiry purged by the reaper or by another season script, its orders cancelled or refunded,
a GA ticket exchanged into another event of the season (one script) or of another slot (the
saga, driven by the caller or by the reaper's recovery). To the channel while it is open, to
the general pool once it is closed; counts conserved. Single Redis and cluster."""

from __future__ import annotations

import pytest

from holds.aftersale import AfterSale
from holds.records import Buyer, Order
from holds.sales import Sales, parse_token
from holds.seasons import parse_season_token
from server.context import Stores
from server.reaper import reap_once
from tests.holds.factories import (
    GA_AREA,
    TENANT,
    TestEvent,
    check_consistent,
    expire_hold,
    make_event,
    read_state,
)
from tests.holds.test_channel_places import CAPACITY, OPEN, PRESALE, check_places, cut
from tests.holds.test_exchanges import Crash, crash_at
from tests.holds.test_seasons import TestSeason, make_season

BUYER = Buyer(name="Ada")
SEASON_CAPACITY = 10
ALLOCATED = [3, 2]  # each event's presale places: a place routed to the wrong event shows


async def season_with_presale(stores: Stores) -> TestSeason:
    s = await make_season(stores, n_events=2, ga_capacity=SEASON_CAPACITY)
    for event_id, places in zip(s.events, ALLOCATED, strict=True):
        await stores.channels.define(TENANT, event_id, PRESALE)
        await stores.channels.allocate(TENANT, event_id, "presale", [], {GA_AREA: places})
    return s


async def counts(stores: Stores, s: TestSeason) -> list[tuple[int, int, int, int]]:
    """Per event: (the channel's reserved places, the general pool, held, sold), places checked."""
    out = []
    for event_id, places in zip(s.events, ALLOCATED, strict=True):
        c = await cut(stores.redis, event_id)
        check_places(c, {"presale": places})
        check_consistent(await read_state(stores.redis, event_id))
        out.append(c.counts())
    return out


async def test_a_season_holds_release_and_expiry_give_its_channel_places_back(stores: Stores) -> None:
    s = await season_with_presale(stores)
    season_id = s.season.season_id
    assert await counts(stores, s) == [(3, 7, 0, 0), (2, 8, 0, 0)]
    held = await stores.season_sales.hold(TENANT, season_id, [], ga={GA_AREA: 4}, access=OPEN)
    assert await counts(stores, s) == [(0, 6, 4, 0), (0, 6, 4, 0)]  # the channel's first
    await stores.season_sales.release(TENANT, held.token)
    assert await counts(stores, s) == [(3, 7, 0, 0), (2, 8, 0, 0)]

    # expired: purged by the reaper in one event, by the next season hold's tidying in the other
    held = await stores.season_sales.hold(TENANT, season_id, [], ga={GA_AREA: 2}, access=OPEN)
    assert await counts(stores, s) == [(1, 7, 2, 0), (0, 8, 2, 0)]
    _, hold_id = parse_season_token(held.token)
    for event_id in s.events:
        await expire_hold(stores.redis, event_id, hold_id)
    assert (await stores.inventory.reap(s.events[0])).purged == 1
    assert (await counts(stores, s))[0] == (3, 7, 0, 0)
    await stores.season_sales.hold(TENANT, season_id, [], ga={GA_AREA: 1}, event_ids=[s.events[1]])
    assert await counts(stores, s) == [(3, 7, 0, 0), (2, 7, 1, 0)]


async def test_a_season_orders_channel_places_go_back_on_cancel_or_refund_or_to_the_pool_once_closed(
    stores: Stores,
) -> None:
    s = await season_with_presale(stores)
    season_id = s.season.season_id
    held = await stores.season_sales.hold(TENANT, season_id, [], ga={GA_AREA: 4}, access=OPEN)
    # an expired hold of the first event is purged by the commit's tidying: to the first's channel
    other = await stores.sales.hold_general_admission(TENANT, s.events[0], GA_AREA, 1, access=OPEN)
    await expire_hold(stores.redis, s.events[0], parse_token(other.token)[1])
    season_order = await stores.season_sales.commit(TENANT, held.token, "pay-1", BUYER)
    assert await counts(stores, s) == [(0, 6, 0, 4), (0, 6, 0, 4)]
    orders = list(season_order.orders)
    for order, places in zip(orders, ALLOCATED, strict=True):
        assert sorted(t.ga_channel for t in order.tickets) == [""] * (4 - places) + ["presale"] * places

    await stores.sales.cancel(TENANT, s.events[0], orders[0].order_id, [], "free", "")
    assert (await counts(stores, s))[0] == (3, 7, 0, 0)
    await stores.channels.close(TENANT, s.events[1], "presale")
    await stores.sales.refund(TENANT, s.events[1], orders[1].order_id, {}, refund_key="r1", release_to="free")
    c = await cut(stores.redis, s.events[1])
    assert c.counts() == (0, SEASON_CAPACITY, 0, 0)  # closed: every place to the general pool
    check_consistent(await read_state(stores.redis, s.events[1]))


async def test_a_ga_ticket_exchanged_into_another_event_of_the_season_gives_its_place_back(
    stores: Stores,
) -> None:
    s = await season_with_presale(stores)
    held = await stores.sales.hold_general_admission(TENANT, s.events[0], GA_AREA, 2, access=OPEN)
    _, order, _ = await stores.sales.commit(TENANT, held.token, "k1", BUYER)
    assert (await counts(stores, s))[0] == (1, 7, 0, 2)
    for n, ticket in enumerate(order.tickets):
        if n == 1:
            await stores.channels.close(TENANT, s.events[0], "presale")
        await stores.after_sale.exchange(
            TENANT, s.events[0], order.order_id, [ticket.ticket_id], seat_ids=[s.seat(n)],
            exchange_key=f"sx{n}", target_event_id=s.events[1],
        )  # fmt: skip
        if n == 0:
            assert (await counts(stores, s))[0] == (2, 7, 0, 1)
    c = await cut(stores.redis, s.events[0])
    assert c.counts() == (0, SEASON_CAPACITY, 0, 0)
    check_consistent(await read_state(stores.redis, s.events[0]))


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=40, ga_capacity=CAPACITY)


@pytest.fixture
async def other(stores: Stores) -> TestEvent:
    """Another event of the organizer, in another slot: an exchange into it is a saga."""
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20)


async def channel_order(stores: Stores, sales: Sales, ev: TestEvent, places: int) -> Order:
    await stores.channels.define(ev.tenant, ev.event_id, PRESALE)
    await stores.channels.allocate(ev.tenant, ev.event_id, "presale", [], {GA_AREA: 6})
    held = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, places, access=OPEN)
    _, order, _ = await sales.commit(ev.tenant, held.token, "k1", BUYER)
    assert (await cut(stores.redis, ev.event_id)).counts() == (6 - places, 34, 0, places)
    return order


@pytest.mark.parametrize("driver", ["caller", "recovery"])
async def test_a_ga_ticket_exchanged_into_another_slot_gives_its_place_back_to_its_channel(
    stores: Stores, ev: TestEvent, other: TestEvent, driver: str
) -> None:
    after: AfterSale = stores.after_sale  # the one the server's reaper settles with
    order = await channel_order(stores, stores.sales, ev, 2)
    if driver == "recovery":  # the caller dies after the target's commit: the reaper finishes
        after.cross.grace_ms = 0
        after.cross.fault = crash_at("committed")
    try:
        await after.exchange(
            ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id],
            seat_ids=[other.loaded.index.placed[3].seat.id], exchange_key="x1",
            target_event_id=other.event_id,
        )  # fmt: skip
    except Crash:
        assert driver == "recovery"
        after.cross.fault = None
        await reap_once(stores)
    rec = await after.cross.read(ev.event_id, "x1")
    assert rec is not None
    assert rec.status == "done"
    c = await cut(stores.redis, ev.event_id)
    assert c.counts() == (5, 34, 0, 1)
    check_places(c, {"presale": 6})
    check_consistent(await read_state(stores.redis, ev.event_id))

    await stores.channels.close(ev.tenant, ev.event_id, "presale")  # closed: to the general pool
    await after.exchange(
        ev.tenant, ev.event_id, order.order_id, [order.tickets[1].ticket_id],
        seat_ids=[other.loaded.index.placed[4].seat.id], exchange_key="x2", target_event_id=other.event_id,
    )  # fmt: skip
    assert (await cut(stores.redis, ev.event_id)).counts() == (0, CAPACITY, 0, 0)
    check_consistent(await read_state(stores.redis, ev.event_id))
