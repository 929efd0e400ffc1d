"""Resales made here enter their seller's ledger by themselves (resale_commit.lua puts each
in its event's ``ledgerdue`` set; holds/platform/sellers.py NativeResales moves it into the
ledger of the organizer's platform), once each, against a real Redis (single and cluster):
nothing lost when the process dies between the commit and the ledger, nothing counted twice
when the commit is retried or two processes settle the same event."""

from __future__ import annotations

import asyncio

import pytest

from holds import keys
from holds.aftersale import AfterSale, ResaleRules
from holds.errors import NotFound
from holds.platform.sellers import NativeResales, SellerLedger, native_order
from holds.records import Buyer, Order
from holds.sales import Sales
from server.context import Stores
from tests.holds.factories import TENANT, TestEvent, make_event

PLATFORM = "p-market"


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    await stores.tenants.create_tenant(TENANT, "Acme", platform_id=PLATFORM)
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20)


async def sold(stores: Stores, ev: TestEvent, *ordinals: int) -> Order:
    sales: Sales = stores.sales
    seats = [ev.loaded.index.placed[o].seat.id for o in ordinals]
    _, result = await sales.sell_at_box_office(
        ev.tenant, ev.event_id, seats, {}, idempotency_key=f"bo-{ordinals}", buyer=Buyer(name="Ada"),
        payment_method="cash",
    )  # fmt: skip
    return result.order


async def resell(after: AfterSale, ev: TestEvent, order: Order, i: int, seller: str, key: str) -> str:
    ticket = order.tickets[i].ticket_id
    _, listed = await after.list_ticket(
        ev.tenant, ev.event_id, order.order_id, ticket, revision=0, price=3000 + i, seller_id=seller
    )
    listing = next(t for t in listed.tickets if t.ticket_id == ticket).listing
    assert listing is not None
    _, held = await after.hold_listing(ev.tenant, ev.event_id, ticket, listing.listing_id, f"buyer-{i}")
    return held.token


async def seller_orders(stores: Stores, seller: str) -> dict[bytes, bytes]:
    return await stores.redis.hgetall(keys.seller_orders(PLATFORM, seller))  # type: ignore[no-any-return]


async def test_a_committed_resale_is_in_its_sellers_ledger_once(stores: Stores, ev: TestEvent) -> None:
    await stores.after_sale.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    order = await sold(stores, ev, 0, 1)
    token = await resell(stores.after_sale, ev, order, 0, "ada", "buy-1")
    ledger = SellerLedger(stores.redis)
    with pytest.raises(NotFound):  # nothing reported for ada yet
        await ledger.metrics(PLATFORM, "ada")
    _, result, _ = await stores.after_sale.commit_listing(ev.tenant, token, "buy-1", Buyer(name="Bob"))
    recorded = await seller_orders(stores, "ada")
    expected = native_order(result.resale, 0)
    assert list(recorded) == [f"resale:{result.resale.resale_id}".encode()]
    assert (expected.value_minor, expected.outcome, expected.delivered_ms) == (
        3000, "accepted", result.resale.delivered_ms,
    )  # fmt: skip
    assert await stores.redis.zcard(keys.resale_keys(ev.event_id)[3]) == 0  # nothing left due
    # a retried purchase replays and records the same record again: still one order
    _, again, _ = await stores.after_sale.commit_listing(ev.tenant, token, "buy-1", Buyer(name="Bob"))
    assert again.replayed
    assert await seller_orders(stores, "ada") == recorded
    metrics = await ledger.metrics(PLATFORM, "ada")
    assert metrics.seller_id == "ada"


async def test_a_resale_left_due_by_a_dead_process_is_recorded_by_the_next_commit(
    stores: Stores, ev: TestEvent
) -> None:
    """The first commit runs without a ledger (its process "dies" after the script); the next
    resale commit of the event records both, and settling twice at once counts each once."""
    plain = AfterSale(stores.redis, stores.scripts, stores.sales, stores.inventory, stores.door)
    await plain.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    order = await sold(stores, ev, 0, 1, 2)
    first = await resell(plain, ev, order, 0, "ada", "buy-1")
    _, lost, _ = await plain.commit_listing(ev.tenant, first, "buy-1", Buyer(name="Bob"))
    assert await seller_orders(stores, "ada") == {}
    due = keys.resale_keys(ev.event_id)[3]
    assert await stores.redis.zrange(due, 0, -1) == [lost.resale.resale_id.encode()]

    second = await resell(stores.after_sale, ev, order, 1, "ada", "buy-2")
    _, made, _ = await stores.after_sale.commit_listing(ev.tenant, second, "buy-2", Buyer(name="Cal"))
    recorded = await seller_orders(stores, "ada")
    assert sorted(recorded) == sorted(f"resale:{r.resale.resale_id}".encode() for r in (lost, made))
    # two processes settling the same resales at once write the same records once each
    third = await resell(plain, ev, order, 2, "bea", "buy-3")
    await plain.commit_listing(ev.tenant, third, "buy-3", Buyer(name="Dan"))
    native = NativeResales(stores.redis, stores.tenants)
    counts = await asyncio.gather(*(native.settle(ev.tenant, ev.event_id) for _ in range(3)))
    assert 1 <= sum(counts) <= 3  # each settle may write the record; it is the same record
    assert len(await seller_orders(stores, "bea")) == 1
    assert await seller_orders(stores, "ada") == recorded
    assert await stores.redis.zcard(due) == 0


async def test_an_organizer_outside_platforms_has_no_seller_ledger(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events, tenant="solo", max_seats_per_hold=20)
    await stores.after_sale.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    order = await sold(stores, ev, 0)
    token = await resell(stores.after_sale, ev, order, 0, "ada", "buy-1")
    await stores.after_sale.commit_listing(ev.tenant, token, "buy-1", Buyer(name="Bob"))
    assert await stores.redis.zcard(keys.resale_keys(ev.event_id)[3]) == 0
    assert await stores.redis.keys(f"*{keys.platform_tag('')}*seller*") == []
