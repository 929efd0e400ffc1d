"""Small venues and on-sale events for the inventory tests, plus raw Redis readers.

Everything here talks to the real Redis of ``tests/conftest.py``: the map is
stored, published and loaded through :class:`holds.seatmaps.SeatMapStore` and
the event created through :class:`holds.events.EventStore`, exactly as the
service does. :func:`read_state` reads every key of one event in one
script (``event_dump.lua``: a consistent cut), and :func:`check_consistent` asserts the
inventory invariants of ``/work/shared/design.md`` on such a cut, independently
of the Lua code (it re-derives what each key must hold from the others).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis
import redis.asyncio
import redis.cluster

from holds import keys, seatvalues
from holds.availability import decode_snapshot
from holds.events import EventSettings, EventStatus, EventStore
from holds.inspection import EventDump, decode_dump, dump_source, read_event
from holds.inventory import Inventory
from holds.redis_client import CLUSTER_SCHEME, AnyRedis
from holds.script_channel import ClusterChannels, pack
from holds.scripts import ScriptRegistry
from holds.seatmaps import LoadedSeatMap, SeatMapStore
from seatmap.model import Category, GeneralAdmissionArea, Point, Row, Seat, SeatMap, Section

TENANT = "acme"
CATEGORIES = (
    Category("vip", "VIP", "#d62728"),
    Category("std", "Standard", "#1f77b4"),
    Category("ga", "Floor"),
)
PRICES = {"vip": 4200, "std": 1500, "ga": 900}
GA_AREA = "floor"
PITCH = 50.0
ROW_PITCH = 60.0

SyncRedis = redis.Redis | redis.cluster.RedisCluster

# Positions in the KEYS list of every inventory script (holds/keys.py EVENT_KEY_NAMES).
K = {name: i for i, name in enumerate(keys.EVENT_KEY_NAMES)}


def small_map(rows: int = 3, seats_per_row: int = 6, ga_capacity: int = 5) -> SeatMap:
    """One section of straight rows (row 0 is VIP, the rest standard) and one GA area.

    Seat ids are ``A-<row>-<seat>``; ordinals follow rows then seats, so seat
    ``(r, i)`` has ordinal ``r * seats_per_row + i``.
    """
    built = []
    for r in range(rows):
        seats = [
            Seat(
                id=f"A-{r}-{i}",
                label=str(i + 1),
                position=Point(PITCH / 2 + i * PITCH, 100.0 + r * ROW_PITCH),
                category="vip" if r == 0 else "std",
            )
            for i in range(seats_per_row)
        ]
        built.append(Row(id=f"R{r}", label=chr(ord("A") + r), seats=seats))
    width = seats_per_row * PITCH
    bottom = 100.0 + rows * ROW_PITCH
    section = Section(
        id="A",
        label="Block A",
        outline=[
            Point(0, 100.0 - ROW_PITCH / 2),
            Point(width, 100.0 - ROW_PITCH / 2),
            Point(width, bottom),
            Point(0, bottom),
        ],
        rows=built,
    )
    floor = GeneralAdmissionArea(
        id=GA_AREA,
        label="Floor",
        outline=[
            Point(0, bottom + 50),
            Point(width, bottom + 50),
            Point(width, bottom + 300),
            Point(0, bottom + 300),
        ],
        capacity=ga_capacity,
        category="ga",
    )
    return SeatMap(
        name="Small hall",
        categories=list(CATEGORIES),
        sections=[section],
        ga_areas=[floor] if ga_capacity > 0 else [],
        focal_point=Point(width / 2, 0.0),
    )


@dataclass(frozen=True)
class TestEvent:
    """An event on a small map: what the tests need to address its inventory."""

    __test__ = False  # not a pytest test class

    event_id: str
    tenant: str
    loaded: LoadedSeatMap
    ordinals: tuple[int, ...]
    categories: dict[int, str]  # ordinal -> category key
    ga_area: str
    ga_capacity: int
    prices: dict[str, int]
    settings: EventSettings
    seats_per_row: int = field(default=6)

    def seats(self, *ordinals: int) -> list[tuple[int, str]]:
        """``(ordinal, category)`` pairs as :meth:`Inventory.hold` takes them."""
        return [(o, self.categories[o]) for o in ordinals]

    @property
    def seat_count(self) -> int:
        return len(self.ordinals)

    @property
    def keys(self) -> list[str]:
        return list(keys.event_keys(self.event_id))


async def make_event(
    seatmaps: SeatMapStore,
    events: EventStore,
    *,
    tenant: str = TENANT,
    rows: int = 3,
    seats_per_row: int = 6,
    ga_capacity: int = 5,
    hold_ttl_ms: int = 60_000,
    max_lifetime_ms: int | None = None,
    max_seats_per_hold: int = 10,
    max_seats_per_buyer: int = 0,
    status: EventStatus = "on_sale",
    onsale_from_ms: int = 0,
    onsale_until_ms: int = 0,
    prices: dict[str, int] | None = None,
) -> TestEvent:
    """Store, publish and load :func:`small_map`, then create an event on it."""
    seatmap = small_map(rows, seats_per_row, ga_capacity)
    version = await seatmaps.put(tenant, "", seatmap)
    await seatmaps.publish(tenant, version.seat_map_id, version.version)
    loaded = await seatmaps.load(tenant, version.seat_map_id, version.version)
    settings = EventSettings(
        name="Test night",
        status=status,
        prices=dict(PRICES if prices is None else prices),
        hold_ttl_ms=hold_ttl_ms,
        max_lifetime_ms=max(hold_ttl_ms, max_lifetime_ms or 10 * hold_ttl_ms),
        max_seats_per_hold=max_seats_per_hold,
        max_seats_per_buyer=max_seats_per_buyer,
        onsale_from_ms=onsale_from_ms,
        onsale_until_ms=onsale_until_ms,
    )
    event = await events.create(tenant, loaded, "EUR", settings)
    placed = loaded.index.placed
    return TestEvent(
        event_id=event.ref.event_id,
        tenant=tenant,
        loaded=loaded,
        ordinals=tuple(p.ordinal for p in placed),
        categories={p.ordinal: p.seat.category for p in placed},
        ga_area=GA_AREA,
        ga_capacity=ga_capacity,
        prices=dict(settings.prices),
        settings=settings,
        seats_per_row=seats_per_row,
    )


# -- reading an event's raw state -----------------------------------------------


# Every key of an event in one atomic cut: the same reader the load-test audit uses.
RawState = EventDump


async def read_state(client: AnyRedis, event_id: str) -> RawState:
    return await read_event(ScriptRegistry(client), event_id)


def read_state_sync(client: SyncRedis, event_id: str) -> RawState:
    ks = keys.event_keys(event_id)
    return decode_dump(client.eval(dump_source(), len(ks), *ks))  # type: ignore[arg-type,unused-ignore]


def sync_client(url: str) -> SyncRedis:
    """A blocking client for ``url`` (single node or ``redis+cluster://``), as holds.redis_client connects."""
    if url.startswith(CLUSTER_SCHEME):
        return redis.cluster.RedisCluster.from_url("redis://" + url.removeprefix(CLUSTER_SCHEME))
    return redis.Redis.from_url(url)


# -- invariants on one cut ------------------------------------------------------


def check_consistent(state: RawState, *, stream_complete: bool = True) -> None:  # noqa: C901
    """Assert the inventory invariants on one atomic cut of an event's keys.

    * every seat is in exactly one well-formed state; a sold seat points at an
      order holding a valid ticket for it, and no seat has valid tickets in two
      orders (the double-sale check); a seat pointing at a live hold is listed by it;
    * GA: held + sold <= capacity, sold == valid GA tickets, held == sum of holds;
    * per-buyer counters == the holds' counts; bought counters == valid tickets
      per buyer; hold counts == seats + GA places;
    * request ids of stored holds map to them; those of ended holds are scheduled
      to be forgotten;
    * orders, their listing, idempotency keys and tickets agree; one
      ``order.created`` lifecycle entry per order;
    * the change stream has ids ``0-1 .. 0-seq`` with no gap (``stream_complete``).
    """
    sold_by: dict[int, str] = {}
    for ordinal, order_id in state.valid_seat_tickets():
        assert ordinal not in sold_by, f"seat {ordinal} sold twice: {sold_by[ordinal]} and {order_id}"
        sold_by[ordinal] = order_id
    for ordinal, value in state.seats.items():
        seat, owner = seatvalues.decode(value)
        assert seat != "invalid", f"seat {ordinal} has a bad value {value!r}"
        if seat == "sold":
            assert sold_by.get(ordinal) == owner, (
                f"seat {ordinal} is {value} but valid tickets say {sold_by.get(ordinal)}"
            )
        if seat == "held" and state.live(owner):
            hold = state.holds.get(owner)
            assert hold is not None, f"seat {ordinal} held by a missing hold"
            assert ordinal in hold.seat_ordinals, f"seat {ordinal} held by a hold not listing it"
    for ordinal, order_id in sold_by.items():
        seat_value = state.seats.get(ordinal)
        assert seat_value == seatvalues.sold_to(order_id), (
            f"order {order_id} has a valid ticket for seat {ordinal}, seat is {seat_value}"
        )

    held_ga: Counter[str] = Counter()
    buyer_counts: Counter[str] = Counter()
    # holds the box office sold seats over: such a hold lost those seats for good (its commit is
    # refused), and once that order is cancelled or exchanged the seat lives on without it
    overridden = {h for o in state.orders.values() for h in o.overridden_holds.split(",") if h}
    for hold_id, hold in state.holds.items():
        assert hold_id in state.holdexp, f"hold {hold_id} has no expiry"
        assert hold.count == len(hold.seat_ordinals) + sum(hold.ga.values()), f"hold {hold_id} miscounts"
        assert len(set(hold.seat_ordinals)) == len(hold.seat_ordinals), f"hold {hold_id} lists a seat twice"
        held_ga.update(hold.ga)
        if hold.buyer:
            buyer_counts[hold.buyer] += hold.count
        if state.live(hold_id):
            for o in hold.seat_ordinals:
                value = state.seats.get(o)
                if value is not None and seatvalues.decode(value)[0] == "sold":
                    # only the box office takes a held seat, with its override, recorded on its order
                    seller = state.orders[seatvalues.decode(value)[1]]
                    assert seller.channel == "box_office", (
                        f"live hold {hold_id} lost seat {o} to a storefront"
                    )
                    assert hold_id in seller.overridden_holds.split(","), f"seat {o} overridden unrecorded"
                    continue
                if hold_id in overridden and value != seatvalues.held_by(hold_id):
                    continue
                assert value in (
                    seatvalues.held_by(hold_id),
                    seatvalues.BLOCKED,
                    seatvalues.NOT_FOR_SALE,
                ), f"live hold {hold_id} lost seat {o}"
    assert set(state.holdexp) == set(state.holds), "holdexp and holds disagree"
    assert {b: c for b, c in buyer_counts.items() if c} == {b: c for b, c in state.buyers.items() if c}
    bought: Counter[str] = Counter()
    for order in state.orders.values():
        if order.buyer_id:
            bought[order.buyer_id] += sum(1 for t in order.tickets if t.status == "valid")
    assert {b: c for b, c in bought.items() if c} == state.bought, "bought counters disagree with tickets"

    # request ids: a stored hold's map to it and are kept; an ended hold's are scheduled to go
    for hold_id, hold in state.holds.items():
        for request_id in hold.request_ids:
            assert state.holdreqs.get(request_id, ("", ""))[0] == hold_id, f"request {request_id} lost"
            assert request_id not in state.holdreqs_z, f"request {request_id} of a stored hold expires"
    for request_id, (hold_id, _fp) in state.holdreqs.items():
        if hold_id not in state.holds:
            assert request_id in state.holdreqs_z, f"request {request_id} of ended {hold_id} kept forever"
    assert set(state.holdreqs_z) <= set(state.holdreqs)

    sold_ga = state.valid_ga_tickets()
    for area, cap in state.ga_cap.items():
        held, sold = state.ga_held.get(area, 0), state.ga_sold.get(area, 0)
        assert held >= 0
        assert sold >= 0
        assert held + sold <= cap, f"GA {area} over capacity: {held} held + {sold} sold > {cap}"
        assert sold == sold_ga.get(area, 0), (
            f"GA {area}: {sold} sold but {sold_ga.get(area, 0)} valid tickets"
        )
        assert held == held_ga.get(area, 0), f"GA {area}: {held} held but holds say {held_ga.get(area, 0)}"

    assert state.orders_z == set(state.orders)
    assert set(state.idem.values()) == set(state.orders)
    for key, order_id in state.idem.items():
        assert state.orders[order_id].idempotency_key == key
    all_tickets = {t.ticket_id: o.order_id for o in state.orders.values() for t in o.tickets}
    assert state.tickets == all_tickets
    for order in state.orders.values():
        current = [t for t in order.tickets if t.status != "exchanged"]  # an exchange's new ones count
        assert order.total == sum(t.price for t in current)
        valid = [t for t in current if t.status == "valid"]
        expected = (
            "committed"
            if len(valid) == len(current)
            else ("cancelled" if not valid else "partially_cancelled")
        )
        assert order.status == expected, f"order {order.order_id} is {order.status}, tickets say {expected}"
    created = Counter(e["order"] for e in state.lifecycle if e["kind"] == "order.created")
    assert created == Counter(list(state.orders)), "one order.created lifecycle entry per order"

    if stream_complete:
        assert [i for i, _ in state.changes] == [f"0-{n}" for n in range(1, state.seq + 1)], (
            "gap in the change stream"
        )


def replay_changes(state: RawState, seat_count: int) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Seat states and GA (held, sold) rebuilt from the change stream alone.

    Expiry is only written to the stream when a hold is purged, so compare with
    the snapshot after reaping every expired hold.
    """
    seats = ["free"] * seat_count
    ga: dict[str, list[int]] = {}
    for _id, f in state.changes:
        if f["seats"]:
            for s in f["seats"].split(","):
                seats[int(s)] = f["state"]
        if f["ga"]:
            counts = ga.setdefault(f["ga"], [0, 0])
            qty = int(f["qty"])
            if f["kind"] == "held":
                counts[0] += qty
            elif f["kind"] == "sold":
                counts[0] -= qty
                counts[1] += qty
            elif f["kind"] == "cancelled":
                counts[1] += qty
            else:  # released / expired: qty is negative
                counts[0] += qty
    return seats, {a: (c[0], c[1]) for a, c in ga.items()}


async def snapshot_states(
    inventory: Inventory, event: TestEvent
) -> tuple[list[str], dict[str, tuple[int, int, int]]]:
    snap = decode_snapshot(await inventory.snapshot(event.event_id), event.seat_count)
    names = ("free", "held", "sold", "blocked", "not_for_sale")
    return [names[int(s)] for s in snap.states], {a: (c.capacity, c.held, c.sold) for a, c in snap.ga.items()}


# -- simulating the clock -------------------------------------------------------
# Expiry is decided by the hold's score in the ``holdexp`` zset, compared with
# Redis's TIME inside each script (hold.lua, commit.lua, seat_is_free...). Moving
# that score into the past is therefore exactly what the passing of the TTL
# looks like to the scripts, without sleeping. The hold record's own
# ``expires`` field is informational and left alone.
PAST_MS = 1


async def expire_hold(client: AnyRedis, event_id: str, hold_id: str) -> None:
    await client.zadd(keys.event_keys(event_id)[K["holdexp"]], {hold_id: PAST_MS}, xx=True)


def expire_hold_sync(client: SyncRedis, event_id: str, hold_id: str) -> None:
    client.zadd(keys.event_keys(event_id)[K["holdexp"]], {hold_id: PAST_MS}, xx=True)


async def settle(redis_client: AnyRedis, *registries: ScriptRegistry) -> None:
    """Return once Redis has run every command sent before this call, those of calls
    abandoned at their deadline included: a PING behind each registry's script
    connections (Redis answers a connection's commands in order), then one to every
    node, answered after the commands already waiting in its sockets."""
    ping = pack(("PING",))
    for registry in registries:
        channel = registry.channel
        channels = channel.open_channels() if isinstance(channel, ClusterChannels) else [channel]
        for one in channels:
            if one is not None:
                await one.execute(ping)
    if isinstance(redis_client, redis.asyncio.RedisCluster):
        await redis_client.ping(target_nodes=redis.asyncio.RedisCluster.ALL_NODES)
    else:
        await redis_client.ping()
