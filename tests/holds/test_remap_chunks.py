"""A seat-map move in chunks (holds/remap.py ``_in_steps``: remap_begin.lua, remap_step.lua)
against a real Redis, single and cluster: with a tiny chunk size it reaches exactly the state
the whole move in one script reaches (remap.lua, ``at_once``), on hand-made and random
states; the moving event refuses its sales (EventMoving, retry) while other events sell and
the reaper waits; a mover that dies between steps is resumed by a retry, or rolled back once
its lease ran out; a refusal names the same seats and changes nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holds import keys
from holds.channels import ChannelDef
from holds.errors import EventMoving, PreconditionFailed, SeatsLost, StoreUnavailable
from holds.records import Buyer
from holds.redis_client import AnyRedis
from holds.remap import MoveChunks
from holds.replies import Reply
from holds.sales import parse_token
from holds.scripts import Script
from seatmap.model import SeatMap
from server.context import Stores
from tests.holds.factories import (
    GA_AREA,
    RawState,
    TestEvent,
    check_consistent,
    expire_hold,
    make_event,
    small_map,
)
from tests.holds.test_remap import cut, publish, without_first_row

BUYER = Buyer(name="Ada", email="ada@example.org")
TINY = MoveChunks(seats=4, records=1)


def reversed_rows(ga_capacity: int = 5) -> SeatMap:
    """The same seats and ids, rows in the opposite order: every ordinal but the middle row's moves."""
    base = small_map(ga_capacity=ga_capacity)
    section = base.sections[0]
    return msgspec.structs.replace(
        base, sections=[msgspec.structs.replace(section, rows=list(reversed(section.rows)))]
    )


def comparable(state: RawState) -> RawState:
    """The state without what only says when it was written (clock readings; the holds' leases,
    which a move in chunks moves on by the time it held the event: their own test below)."""
    state.now_ms = 0
    state.holdexp = {h: 0 for h in state.holdexp}
    state.meta.pop("updated_at_ms", None)
    state.changes = [(i, {k: v for k, v in f.items() if k not in ("at", "prev")}) for i, f in state.changes]
    state.holdreqs_z = {r: 0 for r in state.holdreqs_z}
    return state


async def saved(client: AnyRedis, event_id: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for key in keys.event_keys(event_id):
        out[key] = await client.dump(key)
    return out


async def restore(client: AnyRedis, dumps: dict[str, bytes | None]) -> None:
    for key, value in dumps.items():
        await client.delete(key)
        if value is not None:
            await client.restore(key, 0, value)


async def no_move_keys(client: AnyRedis, event_id: str) -> None:
    move = keys.move_script_keys(event_id)[len(keys.EVENT_KEY_NAMES) : -1]
    assert await client.exists(*move) == 0, "a move left keys behind"
    assert await client.hget(keys.event_key(event_id, "meta"), "moving") is None


async def both_ways(stores: Stores, ev: TestEvent, to_version: int) -> tuple[Any, Any]:
    """The move in one script, then (from the same state, restored) in tiny chunks: each one's
    report or refusal and the state after it."""
    client = stores.redis
    start = await saved(client, ev.event_id)
    outcomes = []
    for at_once in (True, False):
        await restore(client, start)
        stores.moves.chunks = TINY
        try:
            report: Any = await stores.moves.move(ev.tenant, ev.event_id, to_version, at_once=at_once)
            report = (report.seats_moved, report.holds, report.orders, report.tickets)
        except SeatsLost as exc:
            report = ("lost", exc.seats, exc.areas)
        outcomes.append((report, comparable(await cut(client, ev))))
        await no_move_keys(client, ev.event_id)
    return outcomes[0], outcomes[1]


async def busy_event(stores: Stores, ev: TestEvent) -> None:
    """Holds, an expired hold, orders (one partly cancelled), GA, blocked and not-for-sale seats."""
    sales = stores.sales
    await sales.hold_seats(ev.tenant, ev.event_id, ["A-1-2", "A-2-3"], buyer="bea")
    gone = await sales.hold_seats(ev.tenant, ev.event_id, ["A-0-5"], buyer="dan")
    await expire_hold(stores.redis, ev.event_id, parse_token(gone.token)[1])
    for i, seats in enumerate((["A-2-0", "A-0-0"], ["A-1-4", "A-1-5", "A-0-3"])):
        held = await sales.hold_seats(ev.tenant, ev.event_id, seats, buyer=f"c{i}")
        _, order, _ = await sales.commit(ev.tenant, held.token, f"pay-{i}", BUYER)
    await sales.cancel(ev.tenant, ev.event_id, order.order_id, [order.tickets[0].ticket_id], "free", "")
    await sales.set_status(ev.tenant, ev.event_id, [7], "blocked", ["free"])
    await sales.set_status(ev.tenant, ev.event_id, [13], "not_for_sale", ["free"])
    await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, 2)


@pytest.fixture
async def ev(stores: Stores) -> TestEvent:
    return await make_event(stores.seatmaps, stores.events)


async def test_a_move_in_tiny_chunks_ends_exactly_as_the_move_in_one_script(
    stores: Stores, ev: TestEvent
) -> None:
    await busy_event(stores, ev)
    v2 = await publish(stores, ev, reversed_rows())
    (once, once_state), (steps, steps_state) = await both_ways(stores, ev, v2)
    assert once == steps
    assert once[0] > 0
    assert once[2] > 0
    assert steps_state == once_state
    check_consistent(steps_state)
    assert steps_state.meta["seat_map_version"] == str(v2)


async def test_a_refusal_in_chunks_names_the_same_seats_and_changes_nothing(
    stores: Stores, ev: TestEvent
) -> None:
    await busy_event(stores, ev)
    v2 = await publish(stores, ev, without_first_row(ga_capacity=1))
    before = comparable(await cut(stores.redis, ev))
    (once, _), (steps, steps_state) = await both_ways(stores, ev, v2)
    assert once[0] == steps[0] == "lost"
    assert once == steps
    assert steps_state == before


class Crashing:
    """remap_step that dies (the mover's process or its link) after ``steps`` calls."""

    def __init__(self, script: Script, steps: int) -> None:
        self.script = script
        self.left = steps

    async def replicated(self, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        if self.left == 0:
            raise StoreUnavailable("the mover died")
        self.left -= 1
        return await self.script.replicated(keys_, args)


async def test_sales_wait_during_a_move_other_events_do_not_and_a_retry_finishes_it(
    stores: Stores, ev: TestEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    await busy_event(stores, ev)
    other = await make_event(stores.seatmaps, stores.events)
    v2 = await publish(stores, ev, reversed_rows())
    start = await saved(stores.redis, ev.event_id)
    await stores.moves.move(ev.tenant, ev.event_id, v2, at_once=True)
    reference = comparable(await cut(stores.redis, ev))
    await restore(stores.redis, start)

    stores.moves.chunks = TINY
    step = stores.scripts.remap_step
    monkeypatch.setattr(stores.scripts, "remap_step", Crashing(step, 5))
    with pytest.raises(StoreUnavailable):
        await stores.moves.move(ev.tenant, ev.event_id, v2)
    # the event is held: its sales, changes and GetHold wait; the reaper too; others sell
    with pytest.raises(EventMoving) as waiting:
        await stores.sales.hold_seats(ev.tenant, ev.event_id, ["A-0-1"])
    assert 0 < waiting.value.retry_after_s <= 1
    with pytest.raises(EventMoving):
        await stores.sales.set_status(ev.tenant, ev.event_id, [1], "blocked", ["free"])
    assert (await stores.inventory.reap(ev.event_id)).purged == 0
    await stores.sales.hold_seats(other.tenant, other.event_id, ["A-0-1"])
    # a retry goes on where the mover stopped and ends where the move in one script does
    monkeypatch.setattr(stores.scripts, "remap_step", Crashing(step, 10_000))
    report = await stores.moves.move(ev.tenant, ev.event_id, v2)
    assert report.to_version == v2
    assert comparable(await cut(stores.redis, ev)) == reference
    await no_move_keys(stores.redis, ev.event_id)
    held = await stores.sales.hold_seats(ev.tenant, ev.event_id, ["A-0-1"])  # it sells again
    assert held.seat_ids == ["A-0-1"]


async def test_a_move_whose_lease_ran_out_is_rolled_back_and_begun_again(
    stores: Stores, ev: TestEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    await busy_event(stores, ev)
    v2 = await publish(stores, ev, reversed_rows())
    stores.moves.chunks = TINY
    step = stores.scripts.remap_step
    monkeypatch.setattr(stores.scripts, "remap_step", Crashing(step, 7))
    with pytest.raises(StoreUnavailable):
        await stores.moves.move(ev.tenant, ev.event_id, v2)
    # the lease runs out (set, not waited for): the event sells again, and its change is kept
    await stores.redis.hset(keys.event_key(ev.event_id, "meta"), "moving", "1")
    late = await stores.sales.hold_seats(ev.tenant, ev.event_id, ["A-0-1"], buyer="late")
    monkeypatch.setattr(stores.scripts, "remap_step", step)
    await stores.moves.move(ev.tenant, ev.event_id, v2)
    state = await cut(stores.redis, ev)
    check_consistent(state)
    await no_move_keys(stores.redis, ev.event_id)
    fresh = await stores.sales.context(ev.tenant, ev.event_id)
    assert stores.sales.seat_ids(fresh, state.holds[parse_token(late.token)[1]].seat_ordinals) == ["A-0-1"]


REDIS_NOW = "local t = redis.call('TIME') return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"


async def redis_now(client: AnyRedis, event_id: str) -> int:
    """Redis's clock (ms) on the node of the event's slot."""
    return int(await client.eval(REDIS_NOW, 1, keys.event_key(event_id, "meta")))


class HeldUp:
    """remap_step whose mover is slow: once the next step is ``phase``, it waits (on Redis's clock,
    observed) until ``until_ms`` has passed; notes the move's frozen clock and the time it resumed."""

    def __init__(self, script: Script, client: AnyRedis, event_id: str, phase: str, until_ms: int) -> None:
        self.script, self.client, self.event_id = script, client, event_id
        self.phase, self.until_ms = phase, until_ms
        self.frozen = self.resumed = 0

    async def replicated(self, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        reply = await self.script.replicated(keys_, args)
        if reply[0] == Reply.MOVE_STEP and reply[1] == self.phase.encode():
            self.frozen = int(
                await self.client.hget(keys.move_script_keys(self.event_id)[len(keys.EVENT_KEY_NAMES)], "now")
                or 0
            )
            # polls Redis's clock, the one the lease is on (no event to wait for); each step renews
            # the move's lease, so it does not lapse while the mover waits
            while await redis_now(self.client, self.event_id) <= self.until_ms:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            self.resumed = await redis_now(self.client, self.event_id)
        return reply


@pytest.mark.parametrize("outcome", ["moved", "refused"])
async def test_a_hold_gets_back_the_time_the_move_held_the_event(
    stores: Stores, ev: TestEvent, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    """A hold that would have expired while the event was moving (it could not even be extended)
    is live after the move, with what it had left when the move began; so after a refusal."""
    if outcome == "refused":  # a sold seat of the first row has no place in the target
        held = await stores.sales.hold_seats(ev.tenant, ev.event_id, ["A-0-0"])
        await stores.sales.commit(ev.tenant, held.token, "pay-0", BUYER)
    v2 = await publish(stores, ev, without_first_row() if outcome == "refused" else reversed_rows())
    held = await stores.sales.hold_seats(ev.tenant, ev.event_id, ["A-1-1"], buyer="ann")
    hold_id = parse_token(held.token)[1]
    holdexp = keys.event_key(ev.event_id, "holdexp")
    expires = await redis_now(stores.redis, ev.event_id) + 200  # runs out while the event moves
    await stores.redis.zadd(holdexp, {hold_id: expires}, xx=True)
    stores.moves.chunks = TINY
    slow = HeldUp(stores.scripts.remap_step, stores.redis, ev.event_id,
                  "swap" if outcome == "moved" else "check", expires)  # fmt: skip
    monkeypatch.setattr(stores.scripts, "remap_step", slow)
    if outcome == "moved":
        await stores.moves.move(ev.tenant, ev.event_id, v2)
        ended = int((await cut(stores.redis, ev)).meta["updated_at_ms"])  # the swap's clock
        low = high = ended
    else:
        with pytest.raises(SeatsLost):
            await stores.moves.move(ev.tenant, ev.event_id, v2)
        low, high = slow.resumed, await redis_now(stores.redis, ev.event_id)
    assert slow.frozen < expires < slow.resumed, "the hold's lease ran out while the event was held"
    now_expires = int(await stores.redis.zscore(holdexp, hold_id) or 0)
    left = expires - slow.frozen
    assert low + left <= now_expires <= high + left  # what it had left when the move began
    state = await cut(stores.redis, ev)
    assert state.live(hold_id)
    check_consistent(state)
    _, order, _ = await stores.sales.commit(ev.tenant, held.token, "pay-1", BUYER)  # still committable
    assert [t.seat for t in order.tickets] == state.holds[hold_id].seat_ordinals


async def test_a_channel_defined_during_a_move_rolls_it_back(
    stores: Stores, ev: TestEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    await busy_event(stores, ev)
    v2 = await publish(stores, ev, reversed_rows())
    stores.moves.chunks = TINY
    step = stores.scripts.remap_step
    monkeypatch.setattr(stores.scripts, "remap_step", Crashing(step, 3))
    with pytest.raises(StoreUnavailable):
        await stores.moves.move(ev.tenant, ev.event_id, v2)
    await stores.channels.define(ev.tenant, ev.event_id, ChannelDef("pre", "Presale", access_code="P"))
    monkeypatch.setattr(stores.scripts, "remap_step", step)
    before = comparable(await cut(stores.redis, ev))
    with pytest.raises(PreconditionFailed, match="channels"):
        await stores.moves.move(ev.tenant, ev.event_id, v2)  # plan() refuses now
    monkeypatch.setattr(stores.moves, "_has_channels", None)  # as if it was defined after plan()
    with pytest.raises(PreconditionFailed, match="channels"):
        await stores.moves.move(ev.tenant, ev.event_id, v2)
    await no_move_keys(stores.redis, ev.event_id)
    after = comparable(await cut(stores.redis, ev))
    assert after.meta["seat_map_version"] == before.meta["seat_map_version"]


# -- random states ------------------------------------------------------------------

operation = st.tuples(
    st.sampled_from(["hold", "buy", "ga", "block", "expire", "cancel", "release"]),
    st.lists(st.integers(0, 17), min_size=1, max_size=3, unique=True),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=12), lose_a_row=st.booleans())
async def test_random_states_move_in_chunks_as_in_one_script(
    stores: Stores, ops: list[tuple[str, list[int]]], lose_a_row: bool
) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    await play(stores, ev, ops)
    v2 = await publish(stores, ev, without_first_row() if lose_a_row else reversed_rows())
    (once, once_state), (steps, steps_state) = await both_ways(stores, ev, v2)
    assert once == steps
    assert steps_state == once_state
    check_consistent(steps_state)


async def play(stores: Stores, ev: TestEvent, ops: list[tuple[str, list[int]]]) -> None:
    """Apply the operations; a refused one (a seat taken, nothing to cancel) is skipped."""
    sales = stores.sales
    tokens: list[str] = []
    orders: list[str] = []
    rng = random.Random(len(ops))
    for kind, ordinals in ops:
        seat_ids = [ev.loaded.index.placed[o].seat.id for o in ordinals]
        try:
            if kind in ("hold", "buy"):
                held = await sales.hold_seats(ev.tenant, ev.event_id, seat_ids, buyer=f"b{len(tokens)}")
                tokens.append(held.token)
                if kind == "buy":
                    _, order, _ = await sales.commit(ev.tenant, held.token, f"k{len(orders)}", BUYER)
                    orders.append(order.order_id)
            elif kind == "ga":
                held = await sales.hold_general_admission(ev.tenant, ev.event_id, GA_AREA, len(ordinals))
                tokens.append(held.token)
            elif kind == "block":
                await sales.set_status(
                    ev.tenant, ev.event_id, ordinals, rng.choice(["blocked", "not_for_sale"]), ["free"]
                )
            elif kind == "expire" and tokens:
                await expire_hold(stores.redis, ev.event_id, parse_token(rng.choice(tokens))[1])
            elif kind == "release" and tokens:
                await sales.release_hold(ev.tenant, rng.choice(tokens))
            elif kind == "cancel" and orders:
                await sales.cancel(ev.tenant, ev.event_id, rng.choice(orders), [], "free", "")
        except Exception as exc:  # a refusal of the random plan (holds.errors), not of the move
            if type(exc).__module__ != "holds.errors":
                raise
