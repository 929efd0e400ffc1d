"""Channels and allocations (holds/channels.py) against a real Redis, single and
cluster: a channel's seats and places are refused without its access and taken
with it, all-or-nothing; closing returns them to the general pool at once (the
mirror and the change stream see it); a close racing many holds leaves every seat
either held by a request that had access while the channel was open, or general."""

from __future__ import annotations

import asyncio
import random

import pytest

from holds import keys
from holds.availability import decode_snapshot
from holds.channels import ChannelAccess, ChannelDef, Channels
from holds.errors import (
    AlreadyExists,
    GeneralAdmissionUnavailable,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SeatsInWrongState,
    SeatsUnavailable,
)
from holds.records import Buyer
from holds.sales import Sales
from rules.fees import FeePlan, PlanPrices
from seatmap.bestavailable import BestAvailableRequest
from server.context import Stores
from tests.holds.factories import GA_AREA, TestEvent, check_consistent, make_event, read_state
from tests.holds.test_live import until

PRESALE = ChannelDef(id="presale", name="Presale", access_code="EARLY-BIRD")
BOX = ChannelDef(id="door", name="Box office", kind="box_office")
OPEN = ChannelAccess("presale", "EARLY-BIRD")
PLAN = FeePlan("std", "EUR", {"EUR": PlanPrices()})


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events, max_seats_per_hold=20, ga_capacity=10)


@pytest.fixture
def sales(stores: Stores) -> Sales:
    async def plan(tenant_id: str) -> FeePlan:
        return PLAN

    return Sales(stores.live, stores.inventory, plan)


def seat(ev: TestEvent, ordinal: int) -> str:
    return ev.loaded.index.placed[ordinal].seat.id


def seat_ids(ev: TestEvent, *ordinals: int) -> list[str]:
    return [seat(ev, o) for o in ordinals]


async def presale(stores: Stores, ev: TestEvent, *ordinals: int, places: int = 0) -> Channels:
    channels = stores.channels
    await channels.define(ev.tenant, ev.event_id, PRESALE)
    await channels.allocate(
        ev.tenant, ev.event_id, "presale", seat_ids(ev, *ordinals), {GA_AREA: places} if places else {}
    )
    return channels


async def test_a_channels_seats_are_refused_without_access_and_taken_with_it(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    await presale(stores, ev, 0, 1, 2)
    before = await read_state(stores.redis, ev.event_id)
    with pytest.raises(SeatsInWrongState) as refused:
        await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 1, 2, 3))
    assert set(refused.value.states) == {seat(ev, 1), seat(ev, 2)}  # named, seat 3 is general
    assert "channel" in refused.value.states[seat(ev, 1)]
    with pytest.raises(InvalidRequest, match="channel_access"):
        await sales.hold_seats(
            ev.tenant, ev.event_id, seat_ids(ev, 1), access=ChannelAccess("presale", "nope")
        )
    with pytest.raises(InvalidRequest, match="channel_access"):
        await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 1), access=ChannelAccess("other", "x"))
    after = await read_state(stores.redis, ev.event_id)
    assert (after.seats, after.seq) == (before.seats, before.seq)  # nothing changed
    held = await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 1, 2, 3), access=OPEN)
    assert sorted(held.seat_ids) == sorted(seat_ids(ev, 1, 2, 3))  # channel seats and general ones
    check_consistent(await read_state(stores.redis, ev.event_id))


async def test_closing_returns_unsold_seats_at_once_and_refuses_the_channel(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    channels = await presale(stores, ev, 0, 1, 2, 3)
    held = await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 0), access=OPEN)
    closed = await channels.close(ev.tenant, ev.event_id, "presale")
    assert (closed.seats, closed.channel.status, closed.already) == (4, "closed", False)
    assert (await channels.close(ev.tenant, ev.event_id, "presale")).already
    # the returned seats are general now: anyone holds them; the held one keeps its hold
    other = await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 1, 2))
    assert sorted(other.seat_ids) == sorted(seat_ids(ev, 1, 2))
    with pytest.raises(SeatsUnavailable):
        await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 0))
    with pytest.raises(PreconditionFailed, match="closed"):
        await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 3), access=OPEN)
    with pytest.raises(PreconditionFailed, match="closed"):
        await channels.allocate(ev.tenant, ev.event_id, "presale", seat_ids(ev, 5), {})
    snap = decode_snapshot(await stores.inventory.snapshot(ev.event_id), ev.seat_count)
    assert not snap.allocations.codes.any()
    assert held.seat_ids == [seat(ev, 0)]
    check_consistent(await read_state(stores.redis, ev.event_id))


async def test_the_mirror_follows_allocations_and_best_available_skips_them(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    live = await stores.live.get(ev.tenant, ev.event_id)
    mirror = await stores.live.mirror(live)
    allocated = list(range(ev.seat_count - 3))  # every seat but the last 3
    channels = await presale(stores, ev, *allocated)
    snap = decode_snapshot(await stores.inventory.snapshot(ev.event_id), ev.seat_count)
    assert [snap.allocations.channel_of(o) for o in (0, ev.seat_count - 1)] == ["presale", ""]
    await until(lambda: mirror.seq >= snap.seq, "the mirror follows the stream")
    assert mirror.snapshot.allocations.channel_of(0) == "presale"
    assert int(mirror.free_mask("").sum()) == 3
    request = BestAvailableRequest(quantity=4)
    with pytest.raises(SeatsUnavailable):
        await sales.hold_best_available(ev.tenant, ev.event_id, request)
    got = await sales.hold_best_available(ev.tenant, ev.event_id, request, access=OPEN)
    assert len(got.seat_ids) == 4
    closed = await channels.close(ev.tenant, ev.event_id, "presale")
    await until(lambda: mirror.seq >= closed.seq, "the mirror sees the close")
    assert not mirror.snapshot.allocations.codes.any()
    assert int(mirror.free_mask("").sum()) == ev.seat_count - 4


async def test_ga_places_reserved_for_a_channel_are_counted_apart(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    channels = await presale(stores, ev, places=6)  # of 10
    with pytest.raises(GeneralAdmissionUnavailable) as full:
        await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 5)
    assert full.value.available == 4
    await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 4)
    # a presale buyer takes the channel's places (7 = 6 reserved + 1 general left? no: 0 left)
    with pytest.raises(GeneralAdmissionUnavailable):
        await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 7, access=OPEN)
    await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2, access=OPEN)
    with pytest.raises(PreconditionFailed, match="general pool"):
        await channels.allocate(ev.tenant, ev.event_id, "presale", [], {GA_AREA: 1})
    closed = await channels.close(ev.tenant, ev.event_id, "presale")
    assert closed.places == 4
    await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 4)  # general now
    check_consistent(await read_state(stores.redis, ev.event_id))


async def test_box_office_takes_box_office_channels_not_storefront_ones(
    stores: Stores, sales: Sales, ev: TestEvent
) -> None:
    channels = await presale(stores, ev, 0)
    await channels.define(ev.tenant, ev.event_id, BOX)
    await channels.allocate(ev.tenant, ev.event_id, "door", seat_ids(ev, 1, 3), {})

    async def sell(key: str, *ordinals: int) -> None:
        await sales.sell_at_box_office(
            ev.tenant, ev.event_id, seat_ids(ev, *ordinals), {}, idempotency_key=key,
            buyer=Buyer(name="Walk-in"), payment_method="cash",
        )  # fmt: skip

    with pytest.raises(SeatsInWrongState) as refused:
        await sell("k1", 0, 1)
    assert set(refused.value.states) == {seat(ev, 0)}
    await sell("k2", 1, 2)
    with pytest.raises(SeatsInWrongState):  # a storefront can't take the box office's seats
        await sales.hold_seats(ev.tenant, ev.event_id, seat_ids(ev, 3), access=OPEN)
    check_consistent(await read_state(stores.redis, ev.event_id))


async def test_definitions_and_allocations_are_checked(stores: Stores, ev: TestEvent) -> None:
    channels = await presale(stores, ev, 0)
    with pytest.raises(AlreadyExists):
        await channels.define(ev.tenant, ev.event_id, PRESALE)
    with pytest.raises(InvalidRequest, match="access_code"):
        await channels.define(ev.tenant, ev.event_id, ChannelDef(id="p2", name="P"))
    with pytest.raises(InvalidRequest, match="access_code"):
        await channels.define(ev.tenant, ev.event_id, ChannelDef("b2", "B", "box_office", "code"))
    with pytest.raises(NotFound):
        await channels.define("other-tenant", ev.event_id, PRESALE)
    await channels.define(ev.tenant, ev.event_id, BOX)
    with pytest.raises(SeatsInWrongState) as refused:
        await channels.allocate(ev.tenant, ev.event_id, "door", seat_ids(ev, 0, 1), {})
    assert list(refused.value.states) == [seat(ev, 0)]
    with pytest.raises(NotFound):
        await channels.allocate(ev.tenant, ev.event_id, "nope", seat_ids(ev, 1), {})
    with pytest.raises(InvalidRequest, match="seat_ids"):
        await channels.allocate(ev.tenant, ev.event_id, "door", ["no-such-seat"], {})
    with pytest.raises(NotFound):
        await channels.close(ev.tenant, ev.event_id, "nope")
    assert [c.id for c in await channels.list(ev.tenant, ev.event_id)] == ["door", "presale"]


async def test_many_holds_racing_a_close(stores: Stores, sales: Sales, ev: TestEvent) -> None:
    """Holds with the channel's access race its close: each either got its seats while the
    channel was open or is refused as closed; afterwards no seat is allocated, every
    returned seat not held is general, and the inventory is consistent."""
    seats = list(range(ev.seat_count))
    channels = await presale(stores, ev, *seats)
    rng = random.Random(7)
    outcomes: list[str] = []
    closed_seq = 0

    async def buyer(i: int) -> None:
        await asyncio.sleep(0)
        try:
            await sales.hold_seats(ev.tenant, ev.event_id, [seat(ev, seats[i])], access=OPEN, buyer=f"b{i}")
            outcomes.append("held")
        except PreconditionFailed:
            outcomes.append("closed")
        except SeatsUnavailable:
            outcomes.append("taken")

    async def close() -> None:
        nonlocal closed_seq
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)
        closed_seq = (await channels.close(ev.tenant, ev.event_id, "presale")).seq

    await asyncio.gather(close(), *(buyer(i) for i in range(len(seats))))
    assert set(outcomes) <= {"closed", "held"}
    assert len(outcomes) == len(seats)
    state = await read_state(stores.redis, ev.event_id)
    check_consistent(state)
    assert await stores.redis.hlen(keys.channel_keys(ev.event_id)[1]) == 0  # nothing allocated
    # the holds that got in were all before the close in the stream
    held = [int(o) for o in state.seats]
    assert outcomes.count("held") == len(held)
    general = await sales.hold_seats(
        ev.tenant, ev.event_id, [seat(ev, o) for o in seats if o not in held] or [seat(ev, 0)]
    ) if len(held) < len(seats) else None  # fmt: skip
    assert general is None or len(general.seat_ids) == len(seats) - len(held)
    assert closed_seq > 0


async def test_whole_sections_and_rows_are_allocated_each_seat_once(stores: Stores, ev: TestEvent) -> None:
    index = ev.loaded.index
    first = index.placed[0]
    section_id, row_id = first.section_id, first.group_id
    channels = stores.channels
    await channels.define(ev.tenant, ev.event_id, PRESALE)
    in_row = index.seats_by_row(section_id, row_id)
    in_section = index.seats_by_section(section_id)
    done = await channels.allocate(
        ev.tenant, ev.event_id, "presale", [seat(ev, in_row[0])], {},
        sections=[section_id], rows=[f"{section_id}/{row_id}"],
    )  # fmt: skip
    assert done.seats == len(in_section)  # the named seat and the row are inside the section: once each
    alloc = await stores.redis.hgetall(keys.channel_keys(ev.event_id)[1])
    assert {int(o) for o in alloc} == set(in_section)
    before = await read_state(stores.redis, ev.event_id)
    for bad, field in (({"sections": ["nope"]}, "section_ids[nope]"), ({"rows": ["nope"]}, "rows[nope]"),
                       ({"rows": [f"{section_id}/nope"]}, f"rows[{section_id}/nope]")):  # fmt: skip
        with pytest.raises(InvalidRequest) as refused:
            await channels.allocate(ev.tenant, ev.event_id, "presale", [], {}, **bad)  # type: ignore[arg-type]
        assert refused.value.field == field
    assert (await read_state(stores.redis, ev.event_id)).seq == before.seq  # nothing changed
