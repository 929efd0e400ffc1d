"""A channel's GA places come back to it (holds/lua/_channels.lua ``channel_back``), against
a real Redis, single and cluster: places a hold or a sale took from a channel's reservation
return to that channel when the hold is released or expires (purged by the reaper or by
another script) and when the ticket is cancelled, refunded or exchanged, while the channel is
open; to the general pool once it is closed. The general pool never moves when a channel's
place comes back, the availability mirror follows, and releases racing a close lose or
double no place."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from holds import keys
from holds.aftersale import AfterSale
from holds.availability import decode_snapshot
from holds.channels import ChannelAccess, ChannelDef
from holds.records import Buyer, HoldRecord, Order
from holds.redis_client import AnyRedis
from holds.sales import Sales, parse_token
from rules.fees import FeePlan, PlanPrices
from server.context import Stores
from tests.holds.factories import GA_AREA, TestEvent, check_consistent, expire_hold, make_event, read_state
from tests.holds.test_live import until

PRESALE = ChannelDef(id="presale", name="Presale", access_code="EARLY-BIRD")
BOX = ChannelDef(id="door", name="Box office", kind="box_office")
OPEN = ChannelAccess("presale", "EARLY-BIRD")
PLAN = FeePlan("std", "EUR", {"EUR": PlanPrices()})
BUYER = Buyer(name="Ada")
CAPACITY = 40


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=40, ga_capacity=CAPACITY)


@pytest.fixture
def sales(stores: Stores) -> Sales:
    async def plan(tenant_id: str) -> FeePlan:
        return PLAN

    return Sales(stores.live, stores.inventory, plan)


# One atomic cut of an area's counts, the channels' reservations, holds and orders.
_CUT = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[5]), redis.call('HGETALL', KEYS[6]),
  redis.call('HGETALL', KEYS[7]), redis.call('HGETALL', KEYS[8])}
"""


def _pairs(flat: list[Any]) -> dict[str, bytes]:
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


@dataclass(frozen=True)
class Cut:
    held: int
    sold: int
    reserved: dict[str, int]  # channel -> places of the area reserved for it
    resv: int  # the area's sum of reservations (ga_resv)
    holds: dict[str, HoldRecord]
    orders: dict[str, Order]
    open: set[str]  # the channels open at this cut
    capacity: int = CAPACITY

    @property
    def general(self) -> int:
        return self.capacity - self.held - self.sold - self.resv

    def counts(self, channel: str = "presale") -> tuple[int, int, int, int]:
        """(the channel's reserved places, the general pool, held, sold)."""
        return self.reserved.get(channel, 0), self.general, self.held, self.sold

    def taken_through(self, channel: str) -> int:
        """Places of the area that holds and valid tickets took from ``channel``."""
        held = sum(h.chga.get(f"{GA_AREA}|{channel}", 0) for h in self.holds.values())
        sold = sum(
            1
            for o in self.orders.values()
            for t in o.tickets
            if t.status == "valid" and t.ga_area == GA_AREA and t.ga_channel == channel
        )
        return held + sold


async def cut(client: AnyRedis, event_id: str) -> Cut:
    ek = dict(zip(keys.EVENT_KEY_NAMES, keys.event_keys(event_id), strict=True))
    channels, _alloc, ga_alloc, ga_resv = keys.channel_keys(event_id)
    ks = [ek["ga_held"], ek["ga_sold"], ga_alloc, ga_resv, ek["holds"], ek["orders"], ek["ga_cap"], channels]
    reply = await client.eval(_CUT, len(ks), *ks)
    held, sold, alloc, resv, holds, orders, cap, defs = (_pairs(r) for r in reply)
    reserved = {}
    for f, v in alloc.items():
        area, _, channel = f.partition("|")
        if area == GA_AREA:
            reserved[channel] = int(v)
    return Cut(
        held=int(held.get(GA_AREA, b"0")),
        sold=int(sold.get(GA_AREA, b"0")),
        reserved=reserved,
        resv=int(resv.get(GA_AREA, b"0")),
        holds={h: msgspec.json.decode(v, type=HoldRecord) for h, v in holds.items()},
        orders={o: msgspec.json.decode(v, type=Order) for o, v in orders.items()},
        open={c for c, v in defs.items() if msgspec.json.decode(v, type=ChannelDef).status == "open"},
        capacity=int(cap.get(GA_AREA, b"0")),
    )


def check_places(c: Cut, allocated: dict[str, int]) -> None:
    """No place lost or doubled: reservations sum to the area's, nothing over capacity, held and
    sold agree with the holds and valid tickets, and an open channel's places are all either
    still reserved for it or taken through it by a hold or a valid ticket."""
    assert c.resv == sum(c.reserved.values()), c
    assert c.general >= 0, c
    assert c.held == sum(h.ga.get(GA_AREA, 0) for h in c.holds.values())
    assert c.sold == sum(
        1 for o in c.orders.values() for t in o.tickets if t.status == "valid" and t.ga_area == GA_AREA
    )
    for h in c.holds.values():
        assert sum(n for f, n in h.chga.items() if f.startswith(f"{GA_AREA}|")) <= h.ga.get(GA_AREA, 0)
    for channel, places in allocated.items():
        if channel in c.open:
            assert c.reserved.get(channel, 0) + c.taken_through(channel) == places, (channel, c)
        else:
            assert channel not in c.reserved


async def jitter(rng: random.Random, most: int) -> None:
    """Let the other tasks run a random number of turns (fewer than ``most``)."""
    for _ in range(rng.randrange(most)):
        await asyncio.sleep(0)


async def presale(stores: Stores, ev: TestEvent, places: int) -> None:
    await stores.channels.define(ev.tenant, ev.event_id, PRESALE)
    await stores.channels.allocate(ev.tenant, ev.event_id, "presale", [], {GA_AREA: places})


async def test_released_places_go_back_to_their_channel_general_ones_first(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await presale(stores, ev, 6)
    r = stores.redis
    assert (await cut(r, ev.event_id)).counts() == (6, 34, 0, 0)
    whole = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 4, access=OPEN)
    assert (await cut(r, ev.event_id)).counts() == (2, 34, 4, 0)
    await sales.release_hold(ev.tenant, whole.token)
    assert (await cut(r, ev.event_id)).counts() == (6, 34, 0, 0)  # the channel's, the general pool as it was

    # 6 of the channel's and 2 general; a partial release gives the general ones back first
    mixed = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 8, access=OPEN)
    c = await cut(r, ev.event_id)
    assert c.counts() == (0, 32, 8, 0)
    assert c.holds[parse_token(mixed.token)[1]].chga == {f"{GA_AREA}|presale": 6}
    await sales.release_hold(ev.tenant, mixed.token, ga={GA_AREA: 3})
    c = await cut(r, ev.event_id)
    assert c.counts() == (1, 34, 5, 0)
    assert c.holds[parse_token(mixed.token)[1]].chga == {f"{GA_AREA}|presale": 5}
    await sales.release_hold(ev.tenant, mixed.token, ga={GA_AREA: 5})
    assert (await cut(r, ev.event_id)).counts() == (6, 34, 0, 0)
    check_places(await cut(r, ev.event_id), {"presale": 6})
    check_consistent(await read_state(r, ev.event_id))


async def test_expired_places_go_back_to_their_channel_by_the_reaper_or_any_purge(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await presale(stores, ev, 6)
    r = stores.redis
    first = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2, access=OPEN)
    second = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 3, access=OPEN)
    assert (await cut(r, ev.event_id)).counts() == (1, 34, 5, 0)
    await expire_hold(r, ev.event_id, parse_token(first.token)[1])
    assert (await stores.inventory.reap(ev.event_id)).purged == 1
    assert (await cut(r, ev.event_id)).counts() == (3, 34, 3, 0)
    # the second expires and is purged by the next commit's tidying (commit.lua)
    other = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 1)
    await expire_hold(r, ev.event_id, parse_token(second.token)[1])
    await sales.commit(ev.tenant, other.token, "k-other", BUYER)
    assert (await cut(r, ev.event_id)).counts() == (6, 33, 0, 1)
    check_places(await cut(r, ev.event_id), {"presale": 6})
    check_consistent(await read_state(r, ev.event_id))


async def test_cancelled_refunded_and_box_office_places_go_back_to_their_channel(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await presale(stores, ev, 6)
    await stores.channels.define(ev.tenant, ev.event_id, BOX)
    await stores.channels.allocate(ev.tenant, ev.event_id, "door", [], {GA_AREA: 4})
    r = stores.redis
    held = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 8, access=OPEN)  # 6 + 2
    _, order, _ = await sales.commit(ev.tenant, held.token, "k1", BUYER)
    assert Counter(t.ga_channel for t in order.tickets) == {"presale": 6, "": 2}
    assert (await cut(r, ev.event_id)).counts() == (0, 28, 0, 8)
    channel_tickets = [t.ticket_id for t in order.tickets if t.ga_channel]
    general_ticket = next(t.ticket_id for t in order.tickets if not t.ga_channel)
    await sales.cancel(ev.tenant, ev.event_id, order.order_id, channel_tickets[:2], "free", "")
    assert (await cut(r, ev.event_id)).counts() == (2, 28, 0, 6)
    await sales.cancel(ev.tenant, ev.event_id, order.order_id, [general_ticket], "free", "")
    assert (await cut(r, ev.event_id)).counts() == (2, 29, 0, 5)  # a general place: to the general pool
    await sales.refund(
        ev.tenant, ev.event_id, order.order_id, {channel_tickets[2]: 0}, refund_key="r1", release_to="free"
    )
    assert (await cut(r, ev.event_id)).counts() == (3, 29, 0, 4)

    _, sold = await sales.sell_at_box_office(
        ev.tenant, ev.event_id, [], {GA_AREA: 5}, idempotency_key="b1", buyer=BUYER, payment_method="cash"
    )
    assert Counter(t.ga_channel for t in sold.order.tickets) == {"door": 4, "": 1}
    assert (await cut(r, ev.event_id)).counts("door") == (0, 28, 0, 9)
    await sales.cancel(ev.tenant, ev.event_id, sold.order.order_id, [], "free", "")
    assert (await cut(r, ev.event_id)).counts("door") == (4, 29, 0, 4)
    check_places(await cut(r, ev.event_id), {"presale": 6, "door": 4})
    check_consistent(await read_state(r, ev.event_id))


async def test_an_exchanged_ga_ticket_gives_its_place_back_to_its_channel(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await presale(stores, ev, 6)
    r = stores.redis
    held = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2, access=OPEN)
    _, order, _ = await sales.commit(ev.tenant, held.token, "k1", BUYER)
    after = AfterSale(r, stores.scripts, sales, stores.inventory, stores.door)
    await after.exchange(
        ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id],
        seat_ids=[ev.loaded.index.placed[0].seat.id], exchange_key="x1",
    )  # fmt: skip
    assert (await cut(r, ev.event_id)).counts() == (5, 34, 0, 1)
    check_places(await cut(r, ev.event_id), {"presale": 6})
    check_consistent(await read_state(r, ev.event_id))


async def test_after_the_channel_closes_its_places_go_to_the_general_pool(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await presale(stores, ev, 6)
    r = stores.redis
    held = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2, access=OPEN)
    bought = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 3, access=OPEN)
    _, order, _ = await sales.commit(ev.tenant, bought.token, "k1", BUYER)
    assert (await cut(r, ev.event_id)).counts() == (1, 34, 2, 3)
    closed = await stores.channels.close(ev.tenant, ev.event_id, "presale")
    assert closed.places == 1
    assert (await cut(r, ev.event_id)).counts() == (0, 35, 2, 3)
    await sales.release_hold(ev.tenant, held.token)
    assert (await cut(r, ev.event_id)).counts() == (0, 37, 0, 3)
    await sales.cancel(ev.tenant, ev.event_id, order.order_id, [], "free", "")
    assert (await cut(r, ev.event_id)).counts() == (0, 40, 0, 0)
    check_consistent(await read_state(r, ev.event_id))


async def test_the_mirror_and_snapshots_report_the_restored_places(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    live = await stores.live.get(ev.tenant, ev.event_id)
    mirror = await stores.live.mirror(live)
    await presale(stores, ev, 6)
    held = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 4, access=OPEN)
    seq = (await read_state(stores.redis, ev.event_id)).seq
    await until(lambda: mirror.seq >= seq, "the mirror follows the hold")
    assert mirror.snapshot.allocations.reserved[GA_AREA] == {"presale": 2}
    await sales.release_hold(ev.tenant, held.token)
    state = await read_state(stores.redis, ev.event_id)
    last = state.changes[-1][1]
    assert (last["kind"], last["op"], last["channel"], last["chga"], last["resv"]) == (
        "channel", "restored", "presale", GA_AREA, "6",
    )  # fmt: skip
    await until(lambda: mirror.seq >= state.seq, "the mirror follows the release")
    assert mirror.snapshot.allocations.reserved[GA_AREA] == {"presale": 6}
    assert mirror.snapshot.ga[GA_AREA].held == 0
    snap = decode_snapshot(await stores.inventory.snapshot(ev.event_id), ev.seat_count)
    assert snap.allocations.reserved[GA_AREA] == {"presale": 6}


async def test_a_channels_seat_stays_the_channels_after_release(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    """Seats need nothing: the allocation is by ordinal and a hold never removes it."""
    await stores.channels.define(ev.tenant, ev.event_id, PRESALE)
    seat_id = ev.loaded.index.placed[0].seat.id
    await stores.channels.allocate(ev.tenant, ev.event_id, "presale", [seat_id], {})
    held = await sales.hold_seats(ev.tenant, ev.event_id, [seat_id], access=OPEN)
    await sales.release_hold(ev.tenant, held.token)
    assert await stores.redis.hget(keys.channel_keys(ev.event_id)[1], "0") == b"presale"


async def test_releases_expiries_and_cancels_racing_a_close_lose_or_double_no_place(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    """Many holds and orders through the channel; their releases, expiries (the reaper),
    cancels and refunds race the channel's close while an observer takes atomic cuts: at
    every cut no place is lost or doubled; afterwards the channel reserves nothing and the
    general pool is every place not sold."""
    await presale(stores, ev, 30)
    r = stores.redis
    rng = random.Random(14)
    tokens = [
        (
            await sales.hold_general_admission(
                ev.tenant, ev.event_id, GA_AREA, rng.randint(1, 2), access=OPEN
            )
        ).token
        for _ in range(14)
    ]
    orders: list[Order] = []
    for i, token in enumerate(tokens[:5]):
        orders.append((await sales.commit(ev.tenant, token, f"k{i}", BUYER))[1])
    live_tokens = tokens[5:]
    stop = False
    cuts = 0

    async def observe() -> None:
        nonlocal cuts
        while not stop:
            c = await cut(r, ev.event_id)
            check_places(c, {"presale": 30})
            cuts += 1
            await asyncio.sleep(0)

    async def release(token: str) -> None:
        await jitter(rng, 4)
        await sales.release_hold(ev.tenant, token)

    async def expire(token: str) -> None:
        await jitter(rng, 4)
        await expire_hold(r, ev.event_id, parse_token(token)[1])
        await stores.inventory.reap(ev.event_id)

    async def cancel(order: Order, i: int) -> None:
        await jitter(rng, 4)
        if i % 2:
            await sales.cancel(ev.tenant, ev.event_id, order.order_id, [], "free", "")
        else:
            await sales.refund(
                ev.tenant, ev.event_id, order.order_id, {}, refund_key=f"r{i}", release_to="free"
            )

    async def close() -> None:
        await jitter(rng, 6)
        await stores.channels.close(ev.tenant, ev.event_id, "presale")

    watcher = asyncio.create_task(observe())
    jobs = [release(t) for t in live_tokens[::2]] + [expire(t) for t in live_tokens[1::2]]
    jobs += [cancel(o, i) for i, o in enumerate(orders[:4])]
    await asyncio.gather(close(), *jobs)
    stop = True
    await watcher
    assert cuts > 0
    c = await cut(r, ev.event_id)
    assert not c.open
    check_places(c, {"presale": 30})
    kept = sum(1 for t in orders[4].tickets)
    assert c.counts() == (0, CAPACITY - kept, 0, kept)
    check_consistent(await read_state(r, ev.event_id))
