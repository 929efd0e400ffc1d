"""A randomized concurrent run over a season's events, recorded and checked by
tests/holds/history.py's :func:`check_season_history`.

Eight buyers on their own Redis connections fight over eight seats of a season of three
events (a 1 s lease) for a few seconds, with season operations and single-event ones
mixed: season holds over every event or two of them, single-event holds in any event,
releases, extends, commits of either (some after sleeping past the lease, retried with
the same key when their outcome was unknown) and cancels of single orders and of one
event's order of a season order (its seats back on sale in that event only, for a
single hold to take). About one call in twenty gets a deadline too short to answer.
Each event's history is checked with the season calls projected onto it (no seat held
or sold twice across season orders and single orders, fencing, provenance, the final
state), and the season rules on top (one order per event per season commit, all or
nothing, the season orders in Redis exactly the acknowledged ones). The checker is shown
to catch a season commit that sold in some events only and a phantom season order.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable

import msgspec
import pytest

from holds import keys
from holds.inventory import Inventory
from holds.records import Buyer, Order, Ticket
from holds.redis_client import AnyRedis, connect
from holds.scripts import ScriptRegistry
from holds.seasons import SeasonOrderLine, SeasonOrderRecord, SeasonSales, SeasonStore, season_hold_token
from server.context import Stores
from tests.holds.factories import TENANT, RawState, check_consistent, read_state, settle
from tests.holds.history import Op, Recorder, check_season_history
from tests.holds.test_seasons import TestSeason, make_season

RUN_S = 3.0  # at least this long, then on until the run covered what the checker is about
GIVE_UP_S = 120.0  # a safety bound only: a loaded machine takes longer, never fails for it
CLIENTS = 8
POOL = 8  # seats 0..7 of the season's seat map
SHORT_S = 0.0005  # a deadline a call can rarely meet: its outcome is unknown
NORMAL_S = 5.0


class _Shopper:
    """One buyer on its own connection, choosing its next call at random."""

    def __init__(
        self, name: str, inv: Inventory, seasons: SeasonSales, rec: Recorder, s: TestSeason, seed: int
    ) -> None:
        self.name, self.inv, self.seasons, self.rec, self.s = name, inv, seasons, rec, s
        self.rng = random.Random(seed)
        self.singles: dict[tuple[str, str], set[int]] = {}  # (event, hold) -> seats it believes it holds
        self.season_holds: dict[str, tuple[str, ...]] = {}  # season hold -> its events
        self.orders: list[tuple[str, Order]] = []  # (event, order) it may cancel
        self.retry: list[tuple[str, str, str, str]] = []  # (kind, event, hold, key) of unknown commits
        self.keys = itertools.count()

    def deadline(self) -> float:
        return SHORT_S if self.rng.random() < 0.05 else NORMAL_S

    async def run(self, stop_at: float, covered: Callable[[], bool]) -> None:
        give_up_at = stop_at + GIVE_UP_S
        while time.time() < give_up_at and (time.time() < stop_at or not covered()):
            r = self.rng.random()
            if self.orders and r < 0.1:
                await self.cancel()
            elif self.retry and r < 0.2:
                kind, event_id, hold_id, key = self.retry.pop()
                await (self.season_commit if kind == "season" else self.commit)(
                    event_id, hold_id, key, NORMAL_S
                )
            elif r < 0.4 or not (self.singles or self.season_holds):
                await (self.season_hold() if self.rng.random() < 0.5 else self.hold())
            elif r < 0.5:
                await self.release()
            elif r < 0.55 and self.season_holds:
                await self.season_extend()
            else:
                await self.pay()
            await asyncio.sleep(self.rng.uniform(0, 0.02))

    def seats(self) -> tuple[int, ...]:
        return tuple(sorted(self.rng.sample(range(POOL), self.rng.randint(1, 2))))

    async def hold(self) -> None:
        event_id, seats = self.rng.choice(self.s.events), self.seats()
        placed = self.s.loaded.index.placed
        op = self.rec.op(self.name, "hold", seats=seats, event=event_id)
        call = self.inv.hold(event_id, seats=[(o, placed[o].seat.category) for o in seats], buyer=self.name)
        result = await self.rec.run(op, call, self.deadline())
        if result is not None:
            self.singles[(event_id, result.hold_id)] = set(seats)

    async def season_hold(self) -> None:
        seats = self.seats()
        chosen = sorted(self.rng.sample(self.s.events, 2)) if self.rng.random() < 0.3 else []
        events = tuple(e for e in self.s.events if not chosen or e in chosen)
        op = self.rec.op(self.name, "season_hold", seats=seats, events=events)
        call = self.seasons.hold(
            TENANT,
            self.s.season.season_id,
            [self.s.seat(o) for o in seats],
            event_ids=chosen,
            buyer=self.name,
        )
        result = await self.rec.run(op, call, self.deadline())
        if result is not None:
            self.season_holds[op.hold_id] = events

    async def release(self) -> None:
        if self.season_holds and (not self.singles or self.rng.random() < 0.5):
            hold_id, events = self.rng.choice(sorted(self.season_holds.items()))
            op = self.rec.op(self.name, "season_release", hold_id=hold_id, events=events)
            await self.rec.run(
                op,
                self.seasons.release(TENANT, season_hold_token(self.s.season.season_id, hold_id)),
                self.deadline(),
            )
            self.season_holds.pop(hold_id)
            return
        (event_id, hold_id), held = self.rng.choice(sorted(self.singles.items()))
        part = sorted(held)[:1] if len(held) > 1 and self.rng.random() < 0.5 else []
        op = self.rec.op(
            self.name, "release", hold_id=hold_id, seats=tuple(part), all=not part, event=event_id
        )
        await self.rec.run(op, self.inv.release(event_id, hold_id, seats=part), self.deadline())
        if part:
            held -= set(part)
        else:
            self.singles.pop((event_id, hold_id))

    async def season_extend(self) -> None:
        hold_id, events = self.rng.choice(sorted(self.season_holds.items()))
        op = self.rec.op(self.name, "season_extend", hold_id=hold_id, events=events)
        token = season_hold_token(self.s.season.season_id, hold_id)
        await self.rec.run(op, self.seasons.extend(TENANT, token), NORMAL_S)

    async def pay(self) -> None:
        slow = self.rng.random() < 0.15  # pays slowly: the lease may run out
        if self.season_holds and (not self.singles or self.rng.random() < 0.5):
            hold_id = self.rng.choice(sorted(self.season_holds))
            if slow:
                await asyncio.sleep(self.rng.uniform(0.9, 1.1))
            await self.season_commit("", hold_id, f"{self.name}-s{next(self.keys)}", self.deadline())
            return
        event_id, hold_id = self.rng.choice(sorted(self.singles))
        if slow:
            await asyncio.sleep(self.rng.uniform(0.9, 1.1))
        await self.commit(event_id, hold_id, f"{self.name}-{next(self.keys)}", self.deadline())

    async def commit(self, event_id: str, hold_id: str, key: str, deadline: float) -> None:
        op = self.rec.op(self.name, "commit", hold_id=hold_id, idem_key=key, event=event_id)
        result = await self.rec.run(
            op, self.inv.commit(event_id, hold_id, key, Buyer(name=self.name)), deadline
        )
        if result is not None:
            self.orders.append((event_id, result.order))
        elif op.outcome == "unknown":
            self.retry.append(("single", event_id, hold_id, key))  # a real client retries with the same key
        self.singles.pop((event_id, hold_id), None)

    async def season_commit(self, _event: str, hold_id: str, key: str, deadline: float) -> None:
        events = self.season_holds.get(hold_id) or next(
            o.events for o in self.rec.ops if o.kind == "season_hold" and o.hold_id == hold_id
        )
        op = self.rec.op(self.name, "season_commit", hold_id=hold_id, idem_key=key, events=events)
        token = season_hold_token(self.s.season.season_id, hold_id)
        result = await self.rec.run(
            op, self.seasons.commit(TENANT, token, key, Buyer(name=self.name)), deadline
        )
        if result is not None:
            self.orders += list(zip(result.event_ids, result.orders, strict=True))
        elif op.outcome == "unknown":
            self.retry.append(("season", "", hold_id, key))
        self.season_holds.pop(hold_id, None)

    async def cancel(self) -> None:
        """A single order, or one event's order of a season order: its seats back on sale there."""
        event_id, order = self.rng.choice(self.orders)
        op = self.rec.op(self.name, "cancel", order_id=order.order_id, all=True, event=event_id)
        await self.rec.run(op, self.inv.cancel(event_id, order.order_id), self.deadline())
        self.orders.remove((event_id, order))


def _coverage(ops: list[Op], season_order_ids: set[str]) -> list[str]:
    """What the run has not exercised yet of what the checker is about."""
    seen = Counter((op.kind, op.outcome) for op in ops)
    cancelled_parts = sum(
        1 for op in ops if op.kind == "cancel" and op.outcome == "ok" and op.order_id in season_order_ids
    )
    wanted = {
        "5 season commits": seen[("season_commit", "ok")] >= 5,
        "5 single commits": seen[("commit", "ok")] >= 5,
        "5 refused season holds": seen[("season_hold", "fail")] >= 5,
        "5 refused single holds": seen[("hold", "fail")] >= 5,
        "2 season releases": seen[("season_release", "ok")] >= 2,
        "2 season extends": seen[("season_extend", "ok")] >= 2,
        "2 cancels of a season order's event order": cancelled_parts >= 2,
        "a season commit of an expired hold": any(
            o.kind == "season_commit" and o.error == "HoldExpired" for o in ops
        ),
        "3 calls of unknown outcome": sum(1 for o in ops if o.outcome == "unknown") >= 3,
    }
    return [name for name, done in wanted.items() if not done]


def _season_order_ids(ops: list[Op]) -> set[str]:
    return {o.order_id for op in ops if op.kind == "season_commit" for o in op.event_orders.values()}


async def _season_orders(client: AnyRedis, season_id: str) -> list[SeasonOrderRecord]:
    raw = await client.hgetall(keys.season_keys(season_id)[2])
    return [
        msgspec.json.decode(v, type=SeasonOrderRecord) for k, v in raw.items() if not k.startswith(b"key:")
    ]


@pytest.mark.slow
async def test_a_history_of_season_and_single_event_calls_is_valid(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    s = await make_season(stores, 3, hold_ttl_ms=1_000)
    rec = Recorder()
    clients = [connect(redis_url) for _ in range(CLIENTS)]
    registries = [ScriptRegistry.open(c) for c in clients]  # calls abandoned mid-flight included
    try:
        stop_at = time.time() + RUN_S

        def covered() -> bool:
            return not _coverage(rec.ops, _season_order_ids(rec.ops))

        shoppers = []
        for i, (c, r) in enumerate(zip(clients, registries, strict=True)):
            seasons = SeasonSales(c, r, SeasonStore(c), stores.sales)
            shoppers.append(_Shopper(f"b{i}", Inventory(c, r), seasons, rec, s, 3000 + i))
        await asyncio.gather(*(shopper.run(stop_at, covered) for shopper in shoppers))
        await settle(redis_client, stores.scripts, *registries)  # calls abandoned by a deadline too
    finally:
        for c, r in zip(clients, registries, strict=True):
            await r.aclose()
            await c.aclose()
    finals = {e: await read_state(redis_client, e) for e in s.events}
    for final in finals.values():
        check_consistent(final)
    season_orders = await _season_orders(redis_client, s.season.season_id)
    assert check_season_history(rec.ops, finals, season_orders) == []
    outcomes = Counter((op.kind, op.outcome, op.error) for op in rec.ops)
    assert _coverage(rec.ops, _season_order_ids(rec.ops)) == [], f"not covered: {outcomes}"


# -- the checker catches what it claims to ------------------------------------------


def _state(orders: list[Order]) -> RawState:
    return RawState(
        now_ms=0, meta={}, seats={}, holds={}, holdexp={}, ga_cap={}, ga_held={}, ga_sold={}, buyers={},
        orders={o.order_id: o for o in orders}, idem={o.idempotency_key: o.order_id for o in orders},
        orders_z=set(), tickets={}, seq=0, changes=[], lifecycle=[],
    )  # fmt: skip


def _order(order_id: str, hold_id: str, key: str, seat: int) -> Order:
    ticket = Ticket(f"t-{order_id}", "std", 100, "valid", seat=seat)
    return Order(order_id, hold_id, key, Buyer(), [ticket], 100, "EUR", "committed", 0, 0)


def _season_hold(hold_id: str, events: tuple[str, ...], seat: int) -> Op:
    return Op(1, "b1", "season_hold", 10, 11, "ok", hold_id, (seat,), expires_ms=10_000, events=events)


def test_checker_accepts_a_season_order_and_catches_one_sold_in_some_events_only() -> None:
    events = ("ssA~e1", "ssA~e2")
    o1, o2 = _order("o1", "h1", "k", 3), _order("o2", "h1", "k", 3)
    commit = Op(2, "b1", "season_commit", 20, 21, "ok", "h1", idem_key="k", events=events)
    commit.event_orders, commit.season_order_id = {"ssA~e1": o1, "ssA~e2": o2}, "so1"
    record = SeasonOrderRecord(
        "so1",
        "ssA",
        "h1",
        "k",
        [SeasonOrderLine(e, o.order_id) for e, o in zip(events, (o1, o2), strict=True)],
        200,
        "EUR",
        20,
    )
    ops = [_season_hold("h1", events, 3), commit]
    assert check_season_history(ops, {"ssA~e1": _state([o1]), "ssA~e2": _state([o2])}, [record]) == []
    half = check_season_history(ops, {"ssA~e1": _state([o1]), "ssA~e2": _state([])}, [record])
    assert any("sold in ['ssA~e1'] only" in p for p in half)
    assert any("missing from Redis" in p for p in half)


def test_checker_catches_a_seat_sold_to_a_season_order_and_a_single_order() -> None:
    events = ("ssA~e1", "ssA~e2")
    season_order = _order("o1", "h1", "k", 3)
    single = _order("o9", "h9", "k9", 3)
    commit = Op(2, "b1", "season_commit", 20, 21, "ok", "h1", idem_key="k", events=("ssA~e1",))
    commit.event_orders, commit.season_order_id = {"ssA~e1": season_order}, "so1"
    ops = [
        _season_hold("h1", ("ssA~e1",), 3),
        commit,
        Op(3, "b2", "hold", 12, 13, "ok", "h9", (3,), expires_ms=10_000, event="ssA~e1"),
        Op(4, "b2", "commit", 22, 23, "ok", "h9", idem_key="k9", order_id="o9", order=single, event="ssA~e1"),
    ]
    record = SeasonOrderRecord("so1", "ssA", "h1", "k", [SeasonOrderLine("ssA~e1", "o1")], 100, "EUR", 20)
    finals = {"ssA~e1": _state([season_order, single]), events[1]: _state([])}
    problems = check_season_history(ops, finals, [record])
    assert any("seat 3 sold to o1 and o9" in p for p in problems)
    assert any("seat 3 held by" in p for p in problems)


def test_checker_catches_a_phantom_season_order() -> None:
    record = SeasonOrderRecord("so1", "ssA", "h1", "k", [], 0, "EUR", 0)
    assert any("never asked for" in p for p in check_season_history([], {}, [record]))


def test_an_extend_moves_the_lease_the_checker_fences_on() -> None:
    """A commit after the hold's first expiry but before its extended one is fenced correctly."""
    o1 = _order("o1", "h1", "k", 3)
    ops = [
        Op(1, "b1", "season_hold", 10, 11, "ok", "h1", (3,), expires_ms=100, events=("ssA~e1",)),
        Op(2, "b1", "season_extend", 50, 51, "ok", "h1", expires_ms=1_000, events=("ssA~e1",)),
        Op(3, "b1", "season_commit", 500, 501, "ok", "h1", idem_key="k", events=("ssA~e1",)),
    ]
    ops[2].event_orders, ops[2].season_order_id = {"ssA~e1": o1}, "so1"
    record = SeasonOrderRecord("so1", "ssA", "h1", "k", [SeasonOrderLine("ssA~e1", "o1")], 100, "EUR", 0)
    assert check_season_history(ops, {"ssA~e1": _state([o1])}, [record]) == []
    unextended = [ops[0], ops[2]]
    assert any(
        "after hold h1 expired" in p
        for p in check_season_history(unextended, {"ssA~e1": _state([o1])}, [record])
    )
