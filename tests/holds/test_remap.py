"""Moving an event to another version of its seat map (holds/remap.py, remap.lua), against real Redis.

The small map (tests/holds/factories.py) has rows R0 (VIP), R1, R2 of six seats ``A-<row>-<i>``
and a GA area ``floor``. Version 2 drops row R0, so every remaining seat's ordinal moves down
by six: derived by seat id. A refused move changes nothing (the whole cut compares equal).
"""

from __future__ import annotations

import asyncio
import random

import msgspec
import pytest

from holds.channels import ChannelDef
from holds.errors import (
    Conflict,
    EventMoving,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SeatMapMoved,
    SeatsLost,
    SeatsUnavailable,
)
from holds.records import Buyer
from holds.redis_client import AnyRedis
from holds.remap import MoveReport
from holds.sales import hold_token, parse_token
from seatmap.model import SeatMap
from server.context import Stores
from tests.holds.factories import (
    GA_AREA,
    RawState,
    TestEvent,
    check_consistent,
    make_event,
    read_state,
    small_map,
)
from tests.holds.test_live import until

BUYER = Buyer(name="Ada", email="ada@example.org")
ROW = 6


def without_first_row(ga_capacity: int = 5) -> SeatMap:
    base = small_map(ga_capacity=ga_capacity)
    section = base.sections[0]
    return msgspec.structs.replace(base, sections=[msgspec.structs.replace(section, rows=section.rows[1:])])


def renamed_row(row: int, prefix: str) -> SeatMap:
    """Row ``row``'s seats get ids ``<prefix>-<row>-<i>`` (same places, new ids)."""
    base = small_map()
    section = base.sections[0]
    rows = list(section.rows)
    rows[row] = msgspec.structs.replace(
        rows[row],
        seats=[msgspec.structs.replace(s, id=f"{prefix}-{row}-{i}") for i, s in enumerate(rows[row].seats)],
    )
    return msgspec.structs.replace(base, sections=[msgspec.structs.replace(section, rows=rows)])


async def publish(stores: Stores, ev: TestEvent, seatmap: SeatMap) -> int:
    version = await stores.seatmaps.put(ev.tenant, ev.loaded.version.seat_map_id, seatmap)
    await stores.seatmaps.publish(ev.tenant, version.seat_map_id, version.version)
    return version.version


async def cut(client: AnyRedis, ev: TestEvent) -> RawState:
    return await read_state(client, ev.event_id)


def seat(ev: TestEvent, ordinal: int) -> str:
    return ev.loaded.index.placed[ordinal].seat.id


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events)


async def test_a_move_derived_by_seat_id_rewrites_seats_holds_and_orders(
    stores: Stores, redis_client: AnyRedis, ev: TestEvent
) -> None:
    sales = stores.sales
    held = await sales.hold_seats(ev.tenant, ev.event_id, ["A-1-2", "A-2-3"], buyer="bea")
    sold_hold = await sales.hold_seats(ev.tenant, ev.event_id, ["A-2-0"], buyer="cy")
    _, order, _ = await sales.commit(ev.tenant, sold_hold.token, "pay-1", BUYER)
    await sales.set_status(ev.tenant, ev.event_id, [ROW + 5], "blocked", ["free"])
    await sales.set_status(ev.tenant, ev.event_id, [2 * ROW + 5], "not_for_sale", ["free"])
    ga = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2)
    v2 = await publish(stores, ev, without_first_row(ga_capacity=8))

    report = await stores.moves.move(ev.tenant, ev.event_id, v2)

    assert (report.from_version, report.to_version, report.dry_run) == (1, v2, False)
    assert (report.seats_moved, report.holds, report.orders, report.tickets) == (5, 1, 1, 1)
    assert (report.mapped_by_id, report.mapped_explicitly, report.seats_without_target) == (12, 0, 6)
    state = await cut(redis_client, ev)
    check_consistent(state)
    hold_id = parse_token(held.token)[1]
    assert state.seats == {
        2: f"h:{hold_id}",  # A-1-2
        9: f"h:{hold_id}",  # A-2-3
        6: f"s:{order.order_id}",  # A-2-0
        5: "b",  # A-1-5
        11: "n",  # A-2-5
    }
    assert state.holds[hold_id].seat_ordinals == [2, 9]
    assert state.holds[hold_id].categories == ["std", "std"]  # held at the category they were shown
    ticket = state.orders[order.order_id].tickets[0]
    assert (ticket.seat, ticket.seat_was) == (6, [12])
    assert state.meta["seat_map_version"] == str(v2)
    assert state.ga_cap == {GA_AREA: 8}
    assert state.changes[-1][1]["kind"] == "layout"
    assert report.sequence == state.seq
    assert state.lifecycle[-1]["kind"] == "event.seat_map_moved"
    assert state.lifecycle[-1]["detail"] == f"1|{v2}"

    # this process loads the event afresh: seat ids read in the new version
    ctx = await sales.context(ev.tenant, ev.event_id)
    assert ctx.ref.seat_map_version == v2
    assert (await sales.get_hold(ev.tenant, held.token)).seat_ids == ["A-1-2", "A-2-3"]
    _, order2 = await sales.get_order(ev.tenant, ev.event_id, order.order_id)
    assert sales.seat_ids(ctx, [t.seat for t in order2.tickets if t.seat is not None]) == ["A-2-0"]
    # the hold made before the move commits after it, on its seats' new ordinals
    _, committed, _ = await sales.commit(ev.tenant, held.token, "pay-2", BUYER)
    assert sales.seat_ids(ctx, [t.seat for t in committed.tickets if t.seat is not None]) == [
        "A-1-2",
        "A-2-3",
    ]
    assert [t.price for t in committed.tickets] == [ev.prices["std"]] * 2
    _, ga_order, _ = await sales.commit(ev.tenant, ga.token, "pay-3", BUYER)
    assert [t.ga_area for t in ga_order.tickets] == [GA_AREA, GA_AREA]
    check_consistent(await cut(redis_client, ev))


async def test_an_explicit_mapping_moves_seats_whose_ids_changed(
    stores: Stores, redis_client: AnyRedis, ev: TestEvent
) -> None:
    sales = stores.sales
    held = await sales.hold_seats(ev.tenant, ev.event_id, ["A-1-2"])
    sold_hold = await sales.hold_seats(ev.tenant, ev.event_id, ["A-1-4", "A-2-0"])
    _, order, _ = await sales.commit(ev.tenant, sold_hold.token, "pay-1", BUYER)
    v2 = await publish(stores, ev, renamed_row(1, "B"))

    with pytest.raises(SeatsLost) as lost:  # by id alone, row 1's occupied seats have no target
        await stores.moves.move(ev.tenant, ev.event_id, v2)
    assert lost.value.seats == {"A-1-2": "held", "A-1-4": "sold"}

    report = await stores.moves.move(ev.tenant, ev.event_id, v2, {"A-1-2": "B-1-3", "A-1-4": "B-1-4"})
    assert (report.mapped_explicitly, report.seats_moved) == (2, 3)
    state = await cut(redis_client, ev)
    check_consistent(state)
    assert state.seats[ROW + 3] == f"h:{parse_token(held.token)[1]}"  # B-1-3: moved one seat along
    assert state.seats[ROW + 4] == f"s:{order.order_id}"
    assert state.seats[2 * ROW] == f"s:{order.order_id}"  # A-2-0: same id, same ordinal
    ticket = state.orders[order.order_id].tickets[0]
    assert ticket.seat == ROW + 4
    assert ticket.seat_was in ([], {})
    assert (await sales.get_hold(ev.tenant, held.token)).seat_ids == ["B-1-3"]


async def test_a_move_that_would_lose_seats_is_refused_naming_each_and_changes_nothing(
    stores: Stores, redis_client: AnyRedis, ev: TestEvent
) -> None:
    sales = stores.sales
    await sales.hold_seats(ev.tenant, ev.event_id, ["A-0-1"])
    sold = await sales.hold_seats(ev.tenant, ev.event_id, ["A-0-2", "A-1-0"])
    await sales.commit(ev.tenant, sold.token, "pay-1", BUYER)
    await sales.set_status(ev.tenant, ev.event_id, [3], "blocked", ["free"])
    await sales.set_status(ev.tenant, ev.event_id, [4], "not_for_sale", ["free"])
    await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 3)
    v2 = await publish(stores, ev, without_first_row(ga_capacity=2))

    before = await cut(redis_client, ev)
    with pytest.raises(SeatsLost) as refused:
        await stores.moves.move(ev.tenant, ev.event_id, v2)
    after = await cut(redis_client, ev)
    before.now_ms = after.now_ms
    # but for the leases, which get back the time the move held the event (all by the same gap)
    assert after.holdexp.keys() == before.holdexp.keys()
    assert len({after.holdexp[h] - before.holdexp[h] for h in before.holdexp}) == 1
    assert all(after.holdexp[h] >= before.holdexp[h] for h in before.holdexp)
    before.holdexp = after.holdexp
    assert after == before, "a refused move changed the event"
    assert refused.value.seats == {
        "A-0-1": "held",
        "A-0-2": "sold",
        "A-0-3": "blocked",
        "A-0-4": "not_for_sale",
    }
    assert refused.value.areas == {GA_AREA: "3 place(s) held or sold; capacity 2 in the target version"}
    for named in ("A-0-1 (held)", "A-0-2 (sold)", "A-0-3 (blocked)", "A-0-4 (not_for_sale)", "area floor"):
        assert named in str(refused.value)

    # a dry run reports the same and changes nothing either
    report = await stores.moves.move(ev.tenant, ev.event_id, v2, dry_run=True)
    assert report.dry_run
    assert report.lost_seats == refused.value.seats
    assert report.lost_areas == refused.value.areas
    again = await cut(redis_client, ev)
    again.now_ms = before.now_ms
    assert again == before


async def test_a_dry_run_reports_what_would_move(
    stores: Stores, redis_client: AnyRedis, ev: TestEvent
) -> None:
    await stores.sales.hold_seats(ev.tenant, ev.event_id, ["A-1-1", "A-2-2"])
    v2 = await publish(stores, ev, without_first_row())
    before = await cut(redis_client, ev)
    report = await stores.moves.move(ev.tenant, ev.event_id, v2, dry_run=True)
    assert (report.seats_moved, report.holds, report.lost_seats) == (2, 1, {})
    after = await cut(redis_client, ev)
    after.now_ms = before.now_ms
    assert after == before


async def test_expired_holds_are_not_lost_seats(
    stores: Stores, redis_client: AnyRedis, ev: TestEvent
) -> None:
    held = await stores.sales.hold_seats(ev.tenant, ev.event_id, ["A-0-0"])
    await redis_client.zadd(ev.keys[4], {parse_token(held.token)[1]: 1}, xx=True)  # holdexp: in the past
    v2 = await publish(stores, ev, without_first_row())
    report = await stores.moves.move(ev.tenant, ev.event_id, v2)
    assert report.seats_moved == 0
    state = await cut(redis_client, ev)
    check_consistent(state)
    assert state.seats == {}
    assert state.holds == {}


async def test_bad_requests_name_the_field(stores: Stores, ev: TestEvent) -> None:
    v2 = await publish(stores, ev, without_first_row())
    draft = await stores.seatmaps.put(ev.tenant, ev.loaded.version.seat_map_id, without_first_row())
    with pytest.raises(InvalidRequest, match="already on version 1"):
        await stores.moves.move(ev.tenant, ev.event_id, 1)
    with pytest.raises(InvalidRequest, match=r"mapping\[A-9-9\]"):
        await stores.moves.move(ev.tenant, ev.event_id, v2, {"A-9-9": "A-1-1"})
    with pytest.raises(InvalidRequest, match="no seat 'Z' in the target version"):
        await stores.moves.move(ev.tenant, ev.event_id, v2, {"A-1-1": "Z"})
    with pytest.raises(InvalidRequest, match="also the target of"):
        await stores.moves.move(ev.tenant, ev.event_id, v2, {"A-1-1": "A-2-2", "A-1-2": "A-2-2"})
    with pytest.raises(Conflict, match="not published"):
        await stores.moves.move(ev.tenant, ev.event_id, draft.version)
    with pytest.raises(NotFound):
        await stores.moves.move(ev.tenant, ev.event_id, 99)
    with pytest.raises(NotFound):  # another organizer's event: exactly as a missing one
        await stores.moves.move("someone-else", ev.event_id, v2)
    with pytest.raises(NotFound):
        await stores.moves.move(ev.tenant, "evNope", v2)


async def test_a_stale_process_is_fenced_and_loads_the_new_version(
    stores: Stores, redis_url: str, redis_client: AnyRedis, ev: TestEvent
) -> None:
    """Another process still has version 1 loaded (no mirror: it follows no stream): its
    ordinals are refused (nothing changes), it drops the event, and the retry is right."""
    other = Stores.open(redis_url)
    try:
        await other.sales.context(ev.tenant, ev.event_id)  # loaded at version 1
        v2 = await publish(stores, ev, without_first_row())
        await stores.moves.move(ev.tenant, ev.event_id, v2)
        before = await cut(redis_client, ev)
        with pytest.raises(SeatMapMoved):
            await other.sales.hold_seats(ev.tenant, ev.event_id, ["A-2-2"])
        after = await cut(redis_client, ev)
        after.now_ms = before.now_ms
        assert after == before
        held = await other.sales.hold_seats(ev.tenant, ev.event_id, ["A-2-2"])
        assert held.seat_ids == ["A-2-2"]
        assert (await cut(redis_client, ev)).seats == {ROW + 2: f"h:{parse_token(held.token)[1]}"}
    finally:
        await other.close()


async def test_a_stale_process_commits_a_hold_made_before_the_move_after_one_refusal(
    stores: Stores, redis_url: str, redis_client: AnyRedis, ev: TestEvent
) -> None:
    other = Stores.open(redis_url)
    try:
        held = await other.sales.hold_seats(ev.tenant, ev.event_id, ["A-1-4"])  # at version 1
        v2 = await publish(stores, ev, without_first_row())
        await stores.moves.move(ev.tenant, ev.event_id, v2)
        before = await cut(redis_client, ev)
        with pytest.raises(SeatMapMoved):  # its order would be read with version 1's seats
            await other.sales.commit(ev.tenant, held.token, "pay-1", BUYER)
        after = await cut(redis_client, ev)
        after.now_ms = before.now_ms
        assert after == before
        ctx, order, replayed = await other.sales.commit(ev.tenant, held.token, "pay-1", BUYER)
        assert not replayed
        assert other.sales.seat_ids(ctx, [t.seat for t in order.tickets if t.seat is not None]) == ["A-1-4"]
        _, cancelled = await other.sales.cancel(ev.tenant, ev.event_id, order.order_id, [], "free", "")
        assert cancelled.status == "cancelled"
        check_consistent(await cut(redis_client, ev))
    finally:
        await other.close()


async def test_a_process_that_follows_the_stream_drops_the_event(
    stores: Stores, redis_url: str, ev: TestEvent
) -> None:
    other = Stores.open(redis_url)
    try:
        live = await other.live.get(ev.tenant, ev.event_id)
        await other.live.mirror(live)  # follows the change stream
        v2 = await publish(stores, ev, without_first_row())
        await stores.moves.move(ev.tenant, ev.event_id, v2)
        for _ in range(2000):  # observed progress: the feed delivers the 'layout' entry
            if live.evicted:
                break
            await asyncio.sleep(0.005)
        assert live.evicted, "the other process kept version 1"
        fresh = await other.live.get(ev.tenant, ev.event_id)
        assert fresh.ref.seat_map_version == v2
        mirror = await other.live.mirror(fresh)
        assert mirror.seat_count == 2 * ROW
    finally:
        await other.close()


async def test_tickets_issued_before_a_move_still_scan(stores: Stores, ev: TestEvent) -> None:
    sales, door = stores.sales, stores.door
    held = await sales.hold_seats(ev.tenant, ev.event_id, ["A-2-4"])
    _, order, _ = await sales.commit(ev.tenant, held.token, "pay-1", BUYER)
    ticket = order.tickets[0].ticket_id
    _, token, _ = await door.ticket_token(ev.tenant, ev.event_id, order.order_id, ticket)
    v2 = await publish(stores, ev, without_first_row())
    await stores.moves.move(ev.tenant, ev.event_id, v2)

    _, outcome = await door.scan(ev.tenant, ev.event_id, token, "A", "d1")
    assert (outcome.result, outcome.seat_id) == ("admitted", "A-2-4")
    _, again = await door.scan(ev.tenant, ev.event_id, token, "A", "d1")
    assert again.result == "already_used"
    _, new_token, _ = await door.ticket_token(ev.tenant, ev.event_id, order.order_id, ticket)
    assert new_token != token  # issued now: names the new ordinal
    _, outcome = await door.scan(ev.tenant, ev.event_id, new_token, "A", "d1")
    assert outcome.result == "already_used"  # the same ticket, once only


async def test_a_move_while_the_event_moved_meanwhile_is_refused(
    stores: Stores, redis_client: AnyRedis, ev: TestEvent
) -> None:
    v2 = await publish(stores, ev, without_first_row())
    ref, current, target, mapping = await stores.moves.plan(ev.tenant, ev.event_id, v2, {})
    await stores.moves.move(ev.tenant, ev.event_id, v2)
    v3 = await publish(stores, ev, small_map())
    # a second move derived from version 1 (read before the first one landed) is fenced
    args: list[str | int] = [1, v3, 0, len(mapping.targets), *mapping.targets, 0]
    reply = await stores.scripts.remap(ev.keys, args)
    assert [int(reply[0]), int(reply[1])] == [80, v2]  # LAYOUT_CHANGED, the version now
    del ref, current, target


async def test_holds_racing_a_move_lose_no_seat_and_hold_none_twice(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """Buyers on two processes hold seats of rows R1-R2 (which exist in both versions) while
    the organizer moves the event: each hold lands either before the move (and is moved with
    it) or after (on the new ordinals); a stale call is refused and retried on the new version,
    and so is one that finds the event moving (in chunks: EventMoving, retried once it moved).
    In the end every hold holds exactly the seats its buyer named, and no seat twice."""
    ev = await make_event(stores.seatmaps, stores.events, max_seats_per_hold=2)
    v2 = await publish(stores, ev, without_first_row())
    other = Stores.open(redis_url)
    rng = random.Random(7)
    pairs = [[f"A-{r}-{i}", f"A-{r}-{i + 1}"] for r in (1, 2) for i in (0, 2, 4)]
    rng.shuffle(pairs)
    asked: dict[str, list[str]] = {}
    done: list[bool] = []

    async def buyer(process: Stores, seat_ids: list[str]) -> None:
        for _attempt in range(5):
            try:
                held = await process.sales.hold_seats(ev.tenant, ev.event_id, seat_ids)
            except SeatMapMoved:
                continue
            except EventMoving:
                await until(lambda: bool(done), "the move ends")
                continue
            except SeatsUnavailable:
                raise
            asked[held.token] = seat_ids
            return
        raise AssertionError("still fenced after the event was reloaded")

    try:
        await other.sales.context(ev.tenant, ev.event_id)
        await stores.sales.context(ev.tenant, ev.event_id)
        tasks = [buyer(stores if i % 2 else other, p) for i, p in enumerate(pairs)]

        async def move() -> MoveReport:
            try:
                return await stores.moves.move(ev.tenant, ev.event_id, v2)
            finally:
                done.append(True)

        moving = asyncio.ensure_future(move())
        await asyncio.gather(moving, *tasks)
        assert moving.result().to_version == v2
    finally:
        await other.close()

    state = await cut(redis_client, ev)
    check_consistent(state)
    assert len(asked) == len(pairs)
    fresh = await stores.sales.context(ev.tenant, ev.event_id)
    held_seats: list[int] = []
    for token, seat_ids in asked.items():
        hold_id = parse_token(token)[1]
        ordinals = state.holds[hold_id].seat_ordinals
        assert stores.sales.seat_ids(fresh, ordinals) == seat_ids
        assert all(state.seats[o] == f"h:{hold_id}" for o in ordinals)
        held_seats += ordinals
    assert len(held_seats) == len(set(held_seats)) == 2 * len(pairs)
    assert hold_token(ev.event_id, "x")  # tokens are unchanged by a move


async def test_a_stale_process_reads_orders_in_the_new_version(
    stores: Stores, redis_url: str, ev: TestEvent
) -> None:
    """Reads by plain commands (no script to fence) check the version after reading, and
    read again on the new version once."""
    other = Stores.open(redis_url)
    try:
        sold = await other.sales.hold_seats(ev.tenant, ev.event_id, ["A-2-1"])
        _, order, _ = await other.sales.commit(ev.tenant, sold.token, "pay-0", BUYER)
        v2 = await publish(stores, ev, without_first_row())
        await stores.moves.move(ev.tenant, ev.event_id, v2)
        ctx, read = await other.sales.get_order(ev.tenant, ev.event_id, order.order_id)
        assert ctx.ref.seat_map_version == v2
        assert other.sales.seat_ids(ctx, [t.seat for t in read.tickets if t.seat is not None]) == ["A-2-1"]
        _, listed, _ = await other.sales.list_orders(ev.tenant, ev.event_id, 0, 10)
        assert [t.seat for o in listed for t in o.tickets] == [ROW + 1]
    finally:
        await other.close()


async def test_a_second_move_keeps_every_former_place_and_every_token_scans_once(
    stores: Stores, redis_client: AnyRedis, ev: TestEvent
) -> None:
    sales, door = stores.sales, stores.door
    held = await sales.hold_seats(ev.tenant, ev.event_id, ["A-2-4"])
    ga = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 1, token=held.token)
    _, order, _ = await sales.commit(ev.tenant, ga.token, "pay-1", BUYER)
    seat_ticket = next(t.ticket_id for t in order.tickets if t.seat is not None)
    tokens = [(await door.ticket_token(ev.tenant, ev.event_id, order.order_id, seat_ticket))[1]]
    v2 = await publish(stores, ev, without_first_row())
    await stores.moves.move(ev.tenant, ev.event_id, v2)  # "seat":N rewritten in place
    tokens.append((await door.ticket_token(ev.tenant, ev.event_id, order.order_id, seat_ticket))[1])
    v3 = await publish(stores, ev, small_map())  # row R0 back: ordinals as in version 1
    await stores.moves.move(ev.tenant, ev.event_id, v3)  # tickets that moved before: decoded
    state = await cut(redis_client, ev)
    check_consistent(state)
    tickets = {t.ticket_id: t for t in state.orders[order.order_id].tickets}
    assert (tickets[seat_ticket].seat, tickets[seat_ticket].seat_was) == (2 * ROW + 4, [2 * ROW + 4, ROW + 4])
    assert [(t.seat, t.ga_area) for t in tickets.values() if t.ticket_id != seat_ticket] == [(None, GA_AREA)]
    outcomes = [(await door.scan(ev.tenant, ev.event_id, token, "A", "d1"))[1] for token in tokens]
    assert [o.result for o in outcomes] == ["admitted", "already_used"]
    assert outcomes[0].seat_id == "A-2-4"


async def test_an_event_with_sales_channels_does_not_move(stores: Stores, ev: TestEvent) -> None:
    """Channel allocations name seats by ordinal of the current version; a move would
    leave them on the wrong seats, so it is refused and nothing changes."""
    await stores.channels.define(ev.tenant, ev.event_id, ChannelDef("pre", "Presale", access_code="P"))
    v2 = await publish(stores, ev, without_first_row())
    with pytest.raises(PreconditionFailed, match="sales channels"):
        await stores.moves.move(ev.tenant, ev.event_id, v2)
    assert (await stores.events.ref(ev.tenant, ev.event_id)).seat_map_version == 1
