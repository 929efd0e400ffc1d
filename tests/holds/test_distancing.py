"""Minimum-distance seating against a real Redis (single and cluster): a hold or a box-office
sale next to another group is refused naming every seat, next to its own group it is not,
releasing or cancelling a group frees its neighbours, best available keeps the distance, and
two buyers racing for neighbouring seats never both win."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holds import keys
from holds.aftersale import AfterSale
from holds.availability import FREE, EventMirror, Snapshot, distanced
from holds.distancing import NO_RULE_ARGS, RuleChanged, SeatOrdinalsDistanced, script_args, with_current_rule
from holds.errors import Conflict, InvalidRequest, SeatsDistanced, SeatsUnavailable
from holds.events import EventSettings
from holds.inventory import Inventory
from holds.records import Buyer
from holds.redis_client import AnyRedis
from holds.sales import Sales
from seatmap.bestavailable import BestAvailableRequest
from seatmap.distancing import DistancingRule, neighbourhoods
from seatmap.index import SeatIndex
from server.context import Stores
from tests.holds.factories import TestEvent, check_consistent, make_event, read_state
from tests.holds.test_concurrency import inventories
from tests.seatmap.maps import grid_map

BUYER = Buyer(name="Ada")


async def set_rule(stores: Stores, ev: TestEvent, rule: str) -> None:
    """The organizer's change, as another process makes it (this process's event is not told)."""
    ref = await stores.events.read_ref(ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, changes={"distancing": rule})


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    event = await make_event(stores.seatmaps, stores.events, rows=3, seats_per_row=8)
    await set_rule(stores, event, "row:1")
    return event


def seat(ev: TestEvent, ordinal: int) -> str:
    return ev.loaded.index.placed[ordinal].seat.id


async def hold(sales: Sales, ev: TestEvent, *ordinals: int, token: str = "", buyer: str = "") -> str:
    info = await sales.hold_seats(
        ev.tenant, ev.event_id, [seat(ev, o) for o in ordinals], token=token, buyer=buyer
    )
    return info.token


async def test_a_hold_next_to_another_group_is_refused_naming_every_seat(
    stores: Stores, ev: TestEvent
) -> None:
    await hold(stores.sales, ev, 2)
    with pytest.raises(SeatsDistanced) as info:
        await hold(stores.sales, ev, 1, 3, 5)  # 1 and 3 touch seat 2; 5 keeps the distance
    assert info.value.seat_ids == [seat(ev, 1), seat(ev, 3)]
    state = await read_state(stores.redis, ev.event_id)  # nothing was held
    assert {o for o in ev.ordinals if state.holder(o)} == {2}
    await hold(stores.sales, ev, 4, 5)  # two seats away: fine (the rule is one seat)
    await hold(stores.sales, ev, 2 + 8)  # the row behind is not "in the row"


async def test_a_group_may_sit_together_and_grow_next_to_itself(stores: Stores, ev: TestEvent) -> None:
    token = await hold(stores.sales, ev, 2, 3, 4)
    await hold(stores.sales, ev, 5, token=token)  # next to its own hold
    with pytest.raises(SeatsDistanced):
        await hold(stores.sales, ev, 6)  # but nobody else
    _, order, _ = await stores.sales.commit(ev.tenant, token, "k1", BUYER)
    assert len(order.tickets) == 4
    with pytest.raises(SeatsDistanced):
        await hold(stores.sales, ev, 1)  # a sold group keeps its distance too


async def test_release_and_cancel_free_the_neighbours(stores: Stores, ev: TestEvent) -> None:
    token = await hold(stores.sales, ev, 3)
    with pytest.raises(SeatsDistanced):
        await hold(stores.sales, ev, 4)
    await stores.sales.release_hold(ev.tenant, token)
    other = await hold(stores.sales, ev, 4)  # the released group's neighbour is free again
    _, order, _ = await stores.sales.commit(ev.tenant, other, "k2", BUYER)
    with pytest.raises(SeatsDistanced):
        await hold(stores.sales, ev, 5)
    await stores.sales.cancel(ev.tenant, ev.event_id, order.order_id, [], "free", "changed plans")
    await hold(stores.sales, ev, 5)
    check_consistent(await read_state(stores.redis, ev.event_id))


async def test_an_expired_hold_keeps_no_distance(
    stores: Stores, ev: TestEvent, redis_client: AnyRedis
) -> None:
    token = await hold(stores.sales, ev, 3)
    hold_id = token.split(".", 1)[1]
    await redis_client.zadd(keys.event_key(ev.event_id, "holdexp"), {hold_id: 1})
    await hold(stores.sales, ev, 4)


async def test_the_box_office_keeps_the_distance(stores: Stores, ev: TestEvent) -> None:
    await hold(stores.sales, ev, 3)
    with pytest.raises(SeatsDistanced) as info:
        await stores.sales.sell_at_box_office(
            ev.tenant, ev.event_id, [seat(ev, 4), seat(ev, 6)], {}, idempotency_key="bo",
            buyer=BUYER, payment_method="cash",
        )  # fmt: skip
    assert info.value.seat_ids == [seat(ev, 4)]
    _, result = await stores.sales.sell_at_box_office(
        ev.tenant, ev.event_id, [seat(ev, 5), seat(ev, 6)], {}, idempotency_key="bo2",
        buyer=BUYER, payment_method="cash",
    )  # fmt: skip
    assert len(result.order.tickets) == 2
    with pytest.raises(SeatsDistanced):
        await hold(stores.sales, ev, 7)


async def test_a_process_that_missed_the_rule_learns_it_from_the_script(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events, rows=2, seats_per_row=8)
    await hold(stores.sales, ev, 2)
    ctx = await stores.sales.context(ev.tenant, ev.event_id)
    assert ctx.distancing == ""
    await set_rule(stores, ev, "row:2")  # another process's UpdateEvent
    with pytest.raises(SeatsDistanced):
        await hold(stores.sales, ev, 4)  # refused with the new rule on the first call
    assert ctx.distancing == "row:2"
    await set_rule(stores, ev, "")  # and the rule removed
    await hold(stores.sales, ev, 4)
    assert ctx.distancing == ""


async def test_the_script_refuses_a_stale_or_missing_rule(stores: Stores, ev: TestEvent) -> None:
    inventory: Inventory = stores.inventory
    with pytest.raises(RuleChanged) as info:
        await inventory.hold(ev.event_id, seats=ev.seats(0), rule_args=NO_RULE_ARGS)
    assert info.value.rule == "row:1"
    near = neighbourhoods(ev.loaded.index, DistancingRule.parse("row:2"))
    with pytest.raises(RuleChanged):
        await inventory.hold(ev.event_id, seats=ev.seats(0), rule_args=script_args("row:2", near, [0]))
    state = await read_state(stores.redis, ev.event_id)
    assert not any(state.holder(o) for o in ev.ordinals)


async def test_a_rule_that_changes_twice_during_a_hold_is_a_retryable_conflict(
    stores: Stores, ev: TestEvent
) -> None:
    ctx = await stores.sales.context(ev.tenant, ev.event_id)
    calls = 0

    async def flip(rule_args: list[object]) -> None:
        nonlocal calls
        calls += 1
        raise RuleChanged("row:2" if calls == 1 else "row:3")

    with pytest.raises(Conflict):
        await with_current_rule(ctx, [0], flip)  # type: ignore[arg-type]
    assert calls == 2


async def test_best_available_keeps_the_distance_until_nothing_is_left(stores: Stores, ev: TestEvent) -> None:
    await hold(stores.sales, ev, 2)
    request = BestAvailableRequest(quantity=2, categories=frozenset({"vip"}))  # row 0 only
    groups = [[2]]
    while True:
        try:
            info = await stores.sales.hold_best_available(ev.tenant, ev.event_id, request)
        except SeatsUnavailable:
            break
        groups.append(sorted(ev.loaded.index.ordinal_of[s] for s in info.seat_ids))
    # every group keeps one seat free from every other in the row
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            assert min(abs(x - y) for x in a for y in b) > 1, groups
    assert len(groups) == 2  # [2], then one pair of 4-7: 0 is alone between the row's end and 1
    state = await read_state(stores.redis, ev.event_id)
    assert sorted(o for o in range(8) if state.holder(o)) == sorted(o for g in groups for o in g)


async def test_two_buyers_racing_for_neighbouring_seats_never_both_win(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events, rows=4, seats_per_row=10)
    await set_rule(stores, ev, "row:1")
    near = neighbourhoods(ev.loaded.index, DistancingRule.parse("row:1"))
    rng = random.Random(11)
    async with inventories(redis_url, 2) as invs:
        for r in range(4):
            for start in range(0, 9, 2):
                a, b = r * 10 + start, r * 10 + start + 1  # neighbours in the row
                go = asyncio.Event()

                async def attempt(inv: Inventory, o: int, go: asyncio.Event) -> str | None:
                    await go.wait()
                    try:
                        res = await inv.hold(
                            ev.event_id, seats=ev.seats(o), rule_args=script_args("row:1", near, [o])
                        )
                    except SeatOrdinalsDistanced:
                        return None
                    return res.hold_id

                pair = [a, b] if rng.random() < 0.5 else [b, a]
                tasks = [asyncio.create_task(attempt(inv, o, go)) for inv, o in zip(invs, pair, strict=True)]
                await asyncio.sleep(0)
                go.set()
                won = [h for h in await asyncio.gather(*tasks) if h]
                assert len(won) == 1, (a, b, won)
                await invs[0].release(ev.event_id, won[0])  # the next pair starts from a free row
    state = await read_state(redis_client, ev.event_id)
    assert not any(state.holder(o) for o in ev.ordinals)
    check_consistent(state)


async def test_bad_rules_are_refused_naming_the_field(stores: Stores, ev: TestEvent) -> None:
    ref = await stores.events.read_ref(ev.event_id)
    with pytest.raises(InvalidRequest) as info:
        await stores.events.update(ref, {"vip", "std", "ga"}, changes={"distancing": "row:99"})
    assert info.value.field == "distancing.seats_in_row"
    event = await stores.events.get(ref)
    assert event.settings.distancing == "row:1"  # unchanged
    assert EventSettings(name="x").distancing == ""


async def test_an_exchange_onto_free_seats_keeps_the_distance_from_others_not_from_itself(
    stores: Stores, ev: TestEvent
) -> None:
    after = AfterSale(stores.redis, stores.scripts, stores.sales, stores.inventory, stores.door)
    _, sold = await stores.sales.sell_at_box_office(
        ev.tenant, ev.event_id, [seat(ev, 0), seat(ev, 1)], {}, idempotency_key="bo",
        buyer=BUYER, payment_method="cash",
    )  # fmt: skip
    order = sold.order
    await hold(stores.sales, ev, 5)
    with pytest.raises(SeatsDistanced) as info:  # 4 touches another group's seat 5
        await after.exchange(
            ev.tenant, ev.event_id, order.order_id, [order.tickets[1].ticket_id], seat_ids=[seat(ev, 4)],
            exchange_key="x-1",
        )  # fmt: skip
    assert info.value.seat_ids == [seat(ev, 4)]
    # 2 touches only the order's own seat 1
    _, result = await after.exchange(
        ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id], seat_ids=[seat(ev, 2)],
        exchange_key="x-2",
    )  # fmt: skip
    assert result.order.tickets[-1].seat == 2
    check_consistent(await read_state(stores.redis, ev.event_id))


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(["row:1", "row:3", "m:1.0@100.0"]),
    st.lists(st.tuples(st.lists(st.integers(0, 47), max_size=80), st.integers(0, 4)), max_size=30),
)
def test_the_mirror_keeps_its_distanced_seats_in_step_with_every_change(rule: str, changes: list) -> None:
    """Change by change (one seat, a block of seats, a resync), the mirror's counts of held and
    sold neighbours equal a recount: best available and availability read them."""
    index = SeatIndex(grid_map(4, 12))
    near = neighbourhoods(index, DistancingRule.parse(rule))
    mirror = EventMirror("ev", len(index), Snapshot(0, np.zeros(len(index), dtype=np.int8), {}))
    mirror.set_near(near)
    for seats, code in changes:
        mirror._set(seats, code)
        assert (mirror.distanced() == distanced(mirror.snapshot.states, near)).all()
        assert (
            mirror.free_mask()
            == ((mirror.snapshot.states == FREE) & ~distanced(mirror.snapshot.states, near))
        ).all()
    mirror.pending[[0, 47]] = True  # seats this process is trying to hold: theirs are not proposed
    far = distanced(mirror.snapshot.states, near)
    trying = np.zeros(len(index), dtype=bool)
    trying[near.of(0) + near.of(47)] = True
    assert (mirror.free_mask() == ((mirror.snapshot.states == FREE) & ~far & ~mirror.pending & ~trying)).all()
    mirror.pending[:] = False
    mirror.replace(Snapshot(1, mirror.snapshot.states.copy(), {}))
    assert (mirror.distanced() == distanced(mirror.snapshot.states, near)).all()


async def test_a_best_available_rush_keeps_the_distance(stores: Stores, ev: TestEvent) -> None:
    """Thirty buyers at once on 24 seats under one seat in the row: whoever gets seats, no two
    groups sit next to each other, and the ones left without are told there are none (or to retry)."""
    request = BestAvailableRequest(quantity=1)

    async def buyer() -> list[int] | str:
        try:
            info = await stores.sales.hold_best_available(ev.tenant, ev.event_id, request)
        except (SeatsUnavailable, Conflict) as exc:
            return type(exc).__name__
        return [ev.loaded.index.ordinal_of[s] for s in info.seat_ids]

    outcomes = await asyncio.gather(*(buyer() for _ in range(30)))
    won = [o[0] for o in outcomes if isinstance(o, list)]

    def touching(a: int, b: int) -> bool:
        return abs(b - a) == 1 and b // 8 == a // 8

    for a in won:
        assert not any(touching(a, b) for b in won), sorted(won)
    # and nobody was turned away while a seat keeping the distance was left
    assert all(any(touching(a, b) for b in won) for a in range(24) if a not in won), sorted(won)
    state = await read_state(stores.redis, ev.event_id)
    assert sorted(o for o in ev.ordinals if state.holder(o)) == sorted(won)
    check_consistent(state)
