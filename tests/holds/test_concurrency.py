"""Races against one real Redis: asyncio clients on separate connections, and OS processes
(for seats, GA places, commits, and for the per-buyer limit of one buyer id).

Every contender has its own Redis connection (and in the process tests its own
interpreter), so the only thing serialising them is Redis running one script
at a time. The assertions are about outcomes that a lost update or a missing
fence would break: two winners for one seat, overlapping holds, GA places past
capacity, two orders for one commit, a commit that sold seats after its lease
ran out.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from holds.errors import (
    GeneralAdmissionUnavailable,
    HoldExpired,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    SeatsUnavailable,
)
from holds.inventory import Inventory, SeatOrdinalsUnavailable
from holds.records import Buyer
from holds.redis_client import AnyRedis, connect
from holds.scripts import ScriptRegistry
from seatmap.bestavailable import BestAvailableRequest
from server.context import Stores
from tests.holds.factories import GA_AREA, TestEvent, check_consistent, make_event, read_state

BUYER = Buyer(name="racer")


@asynccontextmanager
async def inventories(redis_url: str, n: int) -> AsyncIterator[list[Inventory]]:
    """``n`` inventories, each on its own client and script channel, as n server processes."""
    clients = [connect(redis_url) for _ in range(n)]
    registries = [ScriptRegistry.open(c) for c in clients]
    try:
        for c in clients:  # open every connection before the race starts
            await c.ping()
        yield [Inventory(c, r) for c, r in zip(clients, registries, strict=True)]
    finally:
        for c, r in zip(clients, registries, strict=True):
            await r.aclose()
            await c.aclose()


# -- asyncio clients ---------------------------------------------------------------


async def test_clients_race_for_the_same_seats_one_winner(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """40 clients ask for the very same seats, round after round: exactly one wins each round."""
    ev = await make_event(stores.seatmaps, stores.events, rows=4, seats_per_row=10)
    rounds = [ev.seats(3 * r, 3 * r + 1, 3 * r + 2) for r in range(12)]
    async with inventories(redis_url, 40) as invs:
        for r, seats in enumerate(rounds):
            go = asyncio.Event()

            async def attempt(inv: Inventory, i: int, seats: list[tuple[int, str]], go: asyncio.Event) -> Any:
                await go.wait()
                try:
                    return (await inv.hold(ev.event_id, seats=seats, buyer=f"b{i}")).hold_id
                except SeatOrdinalsUnavailable as exc:
                    return sorted(exc.ordinals)

            tasks = [asyncio.create_task(attempt(inv, i, seats, go)) for i, inv in enumerate(invs)]
            await asyncio.sleep(0)
            go.set()
            outcomes = await asyncio.gather(*tasks)
            winners = [h for h in outcomes if isinstance(h, str)]
            assert len(winners) == 1, f"round {r}: {len(winners)} winners"
            # every loser is told exactly which seats blocked it: all of them (the same set)
            assert all(h == sorted(o for o, _ in seats) for h in outcomes if not isinstance(h, str))
            s = await read_state(redis_client, ev.event_id)
            assert {o: s.holder(o) for o, _ in seats} == {o: winners[0] for o, _ in seats}
    check_consistent(await read_state(redis_client, ev.event_id))


async def test_clients_race_for_overlapping_seats(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """Random overlapping requests: winners are pairwise disjoint and Redis agrees with them."""
    ev = await make_event(stores.seatmaps, stores.events, rows=5, seats_per_row=12)
    rng = random.Random(7)
    wins: dict[str, list[int]] = {}
    refusals: list[tuple[list[int], list[int]]] = []
    async with inventories(redis_url, 30) as invs:
        go = asyncio.Event()

        async def buyer(inv: Inventory, i: int) -> None:
            await go.wait()
            for _ in range(8):
                start = rng.randrange(ev.seat_count - 3)
                wanted = sorted(rng.sample(range(start, start + 4), rng.randint(1, 3)))
                try:
                    result = await inv.hold(ev.event_id, seats=ev.seats(*wanted), buyer=f"b{i}")
                except SeatOrdinalsUnavailable as exc:
                    refusals.append((wanted, exc.ordinals))
                else:
                    wins[result.hold_id] = wanted

        tasks = [asyncio.create_task(buyer(inv, i)) for i, inv in enumerate(invs)]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*tasks)
    owner: dict[int, str] = {}
    for hold_id, seats in wins.items():
        for o in seats:
            assert o not in owner, f"seat {o} won by {owner[o]} and {hold_id}"
            owner[o] = hold_id
    s = await read_state(redis_client, ev.event_id)
    assert {o: s.holder(o) for o in ev.ordinals if s.holder(o)} == owner
    for wanted, named in refusals:
        assert named, "a refusal names the seats that blocked it"
        assert set(named) <= set(wanted)
        assert all(o in owner for o in named), "a refusal named a seat nobody holds"
    assert len(wins) > 10  # the race really was contended
    assert len(refusals) > 10
    check_consistent(s)


async def test_best_available_rush_never_overlaps(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """300 buyers through Sales.hold_best_available, spread over 3 'server processes'
    (each its own Sales with its own lagging availability mirror)."""
    ev = await make_event(stores.seatmaps, stores.events, rows=8, seats_per_row=20, max_seats_per_hold=6)
    servers = [Stores.open(redis_url) for _ in range(3)]
    rng = random.Random(11)
    wins: list[tuple[str, list[str], int]] = []
    sold_out = 0
    try:
        for srv in servers:  # warm each server's mirror before the rush
            await srv.live.mirror(await srv.live.get(ev.tenant, ev.event_id))
        go = asyncio.Event()

        async def buyer(i: int) -> None:
            nonlocal sold_out
            quantity = rng.randint(1, 4)
            await go.wait()
            try:
                info = await servers[i % 3].sales.hold_best_available(
                    ev.tenant, ev.event_id, BestAvailableRequest(quantity=quantity), buyer=f"b{i}"
                )
            except SeatsUnavailable:
                sold_out += 1
            else:
                wins.append((info.token.partition(".")[2], info.seat_ids, quantity))

        tasks = [asyncio.create_task(buyer(i)) for i in range(300)]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*tasks)
    finally:
        for srv in servers:
            await srv.close()
    index = ev.loaded.index.ordinal_of
    owner: dict[int, str] = {}
    for hold_id, seat_ids, quantity in wins:
        assert len(seat_ids) == len(set(seat_ids)) == quantity
        for sid in seat_ids:
            assert index[sid] not in owner, f"seat {sid} in holds {owner[index[sid]]} and {hold_id}"
            owner[index[sid]] = hold_id
    s = await read_state(redis_client, ev.event_id)
    assert {o: s.holder(o) for o in ev.ordinals if s.holder(o)} == owner
    assert len(wins) + sold_out == 300
    # the rush (about 750 seats asked for 160) was really contended; how full the hall gets
    # depends on how far the mirrors lag (8 attempts each), so only a floor is asserted
    assert len(owner) >= 60
    assert sold_out > 0
    check_consistent(s)


async def test_ga_rush_never_exceeds_capacity(stores: Stores, redis_url: str, redis_client: AnyRedis) -> None:
    ev = await make_event(stores.seatmaps, stores.events, ga_capacity=50)
    rng = random.Random(3)
    won: list[int] = []
    refused: list[tuple[int, int]] = []
    async with inventories(redis_url, 25) as invs:
        go = asyncio.Event()

        async def buyer(inv: Inventory) -> None:
            await go.wait()
            for _ in range(8):
                qty = rng.randint(1, 3)
                try:
                    await inv.hold(ev.event_id, ga={GA_AREA: qty})
                except GeneralAdmissionUnavailable as exc:
                    refused.append((qty, exc.available))
                else:
                    won.append(qty)

        tasks = [asyncio.create_task(buyer(inv)) for inv in invs]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*tasks)
    s = await read_state(redis_client, ev.event_id)
    assert sum(won) == s.ga_held[GA_AREA] <= 50
    assert sum(won) > 50 - 3
    assert refused, "demand (about 400 places) exceeded capacity"
    assert all(available < qty for qty, available in refused)
    check_consistent(s)


async def test_same_commit_sent_concurrently_makes_one_order(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    async with inventories(redis_url, 30) as invs:
        for trial in range(5):
            held = await invs[0].hold(ev.event_id, seats=ev.seats(2 * trial, 2 * trial + 1), ga={GA_AREA: 1})
            go = asyncio.Event()

            async def commit(inv: Inventory, hold_id: str, key: str, go: asyncio.Event) -> Any:
                await go.wait()
                try:
                    return await inv.commit(ev.event_id, hold_id, key, BUYER)
                except (NotFound, PreconditionFailed) as exc:
                    return exc

            # the same key from 30 clients
            tasks = [asyncio.create_task(commit(inv, held.hold_id, f"key-{trial}", go)) for inv in invs]
            await asyncio.sleep(0)
            go.set()
            results = await asyncio.gather(*tasks)
            assert all(not isinstance(r, Exception) for r in results), results
            assert len({r.order.order_id for r in results}) == 1
            assert [r.replayed for r in results].count(False) == 1
    s = await read_state(redis_client, ev.event_id)
    assert len(s.orders) == 5
    assert Counter(o.hold_id for o in s.orders.values()).most_common(1)[0][1] == 1
    check_consistent(s)


async def test_one_hold_committed_under_different_keys_makes_one_order(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    async with inventories(redis_url, 30) as invs:
        held = await invs[0].hold(ev.event_id, seats=ev.seats(0, 1))
        go = asyncio.Event()

        async def commit(inv: Inventory, key: str) -> bool:
            await go.wait()
            try:
                await inv.commit(ev.event_id, held.hold_id, key, BUYER)
            except (NotFound, PreconditionFailed):
                return False
            return True

        tasks = [asyncio.create_task(commit(inv, f"key-{i}")) for i, inv in enumerate(invs)]
        await asyncio.sleep(0)
        go.set()
        assert (await asyncio.gather(*tasks)).count(True) == 1
    s = await read_state(redis_client, ev.event_id)
    assert len(s.orders) == 1
    check_consistent(s)


@dataclass
class Trial:
    seats: list[tuple[int, str]]
    offset_ms: float  # commit sent this long after the hold's expiry (negative: before)
    expires_s: float = 0.0
    sent_s: float = 0.0  # when the commit actually went out and its answer came back:
    answered_s: float = 0.0  # on a loaded machine, later than planned
    committed: bool = False
    order_id: str = ""
    rival_won: str = ""


@pytest.mark.slow
async def test_commit_racing_expiry_has_exactly_one_outcome(
    stores: Stores, redis_url: str, redis_client: AnyRedis
) -> None:
    """1 s holds; commits land from 150 ms before to 60 ms after expiry while a rival
    hammers the same seats. Each trial ends one way only: committed (seats sold to
    that order, the rival never got them) or refused (no order; seats free or the rival's)."""
    ev = await make_event(stores.seatmaps, stores.events, rows=8, seats_per_row=20, hold_ttl_ms=1_000)
    rng = random.Random(5)
    trials: list[Trial] = []
    async with inventories(redis_url, 12) as invs:
        for batch in range(2):
            batch_trials = [
                Trial(ev.seats(*range(2 * (40 * batch + t), 2 * (40 * batch + t) + 2)), rng.uniform(-150, 60))
                for t in range(40)
            ]
            trials += batch_trials

            async def run(i: int, trial: Trial) -> None:
                inv, rival = invs[i % 6], invs[6 + i % 6]
                held = await inv.hold(ev.event_id, seats=trial.seats, buyer=f"b{i}")
                expires_s = trial.expires_s = held.expires_ms / 1000

                async def commit() -> None:
                    await asyncio.sleep(max(0.0, expires_s + trial.offset_ms / 1000 - time.time()))
                    trial.sent_s = time.time()
                    try:
                        result = await inv.commit(ev.event_id, held.hold_id, f"k-{held.hold_id}", BUYER)
                    except (HoldExpired, NotFound):
                        return
                    finally:
                        trial.answered_s = time.time()
                    trial.committed, trial.order_id = True, result.order.order_id

                async def rival_holds() -> None:
                    await asyncio.sleep(max(0.0, expires_s - 0.03 - time.time()))
                    deadline = expires_s + 0.1
                    while time.time() < deadline and not trial.rival_won:
                        try:
                            trial.rival_won = (
                                await rival.hold(ev.event_id, seats=trial.seats, buyer="rival")
                            ).hold_id
                        except SeatOrdinalsUnavailable:
                            await asyncio.sleep(rng.uniform(0.001, 0.006))

                await asyncio.gather(commit(), rival_holds())

            await asyncio.gather(*(run(i, t) for i, t in enumerate(batch_trials)))

    s = await read_state(redis_client, ev.event_id)
    for t in trials:
        ordinals = [o for o, _ in t.seats]
        if t.committed:
            assert not t.rival_won, "a rival held seats of a hold that then committed"
            assert all(s.seats.get(o) == f"s:{t.order_id}" for o in ordinals)
        else:
            assert all(not s.seats.get(o, "").startswith("s:") for o in ordinals)
            assert {s.holder(o) for o in ordinals} in ({None}, {t.rival_won or None})
    committed = sum(t.committed for t in trials)
    assert len(s.orders) == committed
    assert 0 < committed < len(trials), f"{committed}/{len(trials)} committed: the race was not exercised"
    # Redis and this process read the same clock: answered before expiry, a commit won;
    # sent after it, never (by the times the commits really ran, not the planned ones)
    assert all(t.committed for t in trials if t.answered_s < t.expires_s - 0.002)
    assert not any(t.committed for t in trials if t.sent_s > t.expires_s + 0.002)
    check_consistent(s)


# -- OS processes -------------------------------------------------------------------

PROCESSES = 4
CONTENDERS_PER_PROCESS = 6
ROUND_S = 0.04


@dataclass(frozen=True)
class Round:
    kind: str  # "same" (identical seats for all), "overlap" (random windows in a block), "ga"
    seats: tuple[int, ...]


def _plan(ev: TestEvent) -> list[Round]:
    plan = []
    for r in range(24):
        block = tuple(range(6 * r, 6 * r + 6))
        plan.append(Round(["same", "overlap", "ga"][r % 3], block[:3] if r % 3 == 0 else block))
    return plan


def _race_process(redis_url: str, event_id: str, categories: dict[int, str], plan: list[Round], proc: int,
                  ready: Any, start: Any, results: Any) -> None:  # fmt: skip
    """One OS process: its own interpreter, its own clients; reports every attempt."""
    asyncio.run(_race_in_process(redis_url, event_id, categories, plan, proc, ready, start, results))


async def _race_in_process(
    redis_url: str,
    event_id: str,
    categories: dict[int, str],
    plan: list[Round],
    proc: int,
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    clients = [connect(redis_url) for _ in range(CONTENDERS_PER_PROCESS)]
    for c in clients:
        await c.ping()
    invs = [Inventory(c, ScriptRegistry.open(c)) for c in clients]  # closed with the process
    rng = random.Random(proc)
    ready.put(proc)
    start_at = await asyncio.to_thread(start.get, True, 60)
    out: list[tuple[Any, ...]] = []

    async def contender(k: int, inv: Inventory) -> None:
        who = f"p{proc}c{k}"
        for r, rnd in enumerate(plan):
            await asyncio.sleep(max(0.0, start_at + r * ROUND_S - time.time()))
            if rnd.kind == "ga":
                qty = rng.randint(1, 3)
                try:
                    held = await inv.hold(event_id, ga={GA_AREA: qty}, buyer=who)
                    out.append((r, who, True, held.hold_id, (), qty))
                except GeneralAdmissionUnavailable as exc:
                    out.append((r, who, False, "", (), exc.available - qty))
                continue
            if rnd.kind == "same":
                wanted = list(rnd.seats)
            else:
                first = rng.randrange(len(rnd.seats) - 1)
                wanted = list(rnd.seats[first : first + rng.randint(2, 3)])
            try:
                held = await inv.hold(event_id, seats=[(o, categories[o]) for o in wanted], buyer=who)
                out.append((r, who, True, held.hold_id, tuple(wanted), 0))
            except SeatOrdinalsUnavailable as exc:
                out.append((r, who, False, "", tuple(wanted), tuple(exc.ordinals)))

    await asyncio.gather(*(contender(k, inv) for k, inv in enumerate(invs)))
    for c in clients:
        await c.aclose()
    results.put(out)


def _seat_winners(plan: list[Round], attempts: list[tuple[Any, ...]]) -> dict[int, str]:
    """Check the seat rounds of a process race; returns seat -> winning hold."""
    owner: dict[int, str] = {}
    for r, rnd in enumerate(plan):
        if rnd.kind == "ga":
            continue
        these = [a for a in attempts if a[0] == r]
        wins = [a for a in these if a[2]]
        if rnd.kind == "same":
            assert len(wins) == 1, f"round {r}: {len(wins)} winners for the same seats"
        for _r, _who, _ok, hold_id, wanted, _detail in wins:
            for o in wanted:
                assert o not in owner, f"seat {o} won twice"
                owner[o] = hold_id
        for _r, who, ok, _h, wanted, detail in these:
            if not ok:
                assert detail, f"{who} was refused without naming a seat"
                assert set(detail) <= set(wanted)
                assert all(o in owner for o in detail), "a refusal named a seat nobody won"
    return owner


@pytest.fixture
def spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


@pytest.mark.slow
async def test_processes_race_for_seats_and_ga(
    stores: Stores, redis_url: str, redis_client: AnyRedis, spawn: multiprocessing.context.SpawnContext
) -> None:
    """4 OS processes x 6 clients, started on the same wall-clock instants, round after round."""
    ev = await make_event(stores.seatmaps, stores.events, rows=8, seats_per_row=20, ga_capacity=40)
    plan = _plan(ev)
    ready, start, results = spawn.Queue(), spawn.Queue(), spawn.Queue()
    procs = [
        spawn.Process(
            target=_race_process,
            args=(redis_url, ev.event_id, ev.categories, plan, p, ready, start, results),
            daemon=True,
        )
        for p in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            await asyncio.to_thread(ready.get, True, 60)
        start_at = time.time() + 0.2
        for _ in procs:
            start.put(start_at)
        attempts = [a for _ in procs for a in await asyncio.to_thread(results.get, True, 60)]
    finally:
        for p in procs:
            await asyncio.to_thread(p.join, 10)
            if p.is_alive():
                p.kill()
        for q in (ready, start, results):
            q.close()
            q.join_thread()
    assert all(p.exitcode == 0 for p in procs)
    assert len(attempts) == PROCESSES * CONTENDERS_PER_PROCESS * len(plan)

    s = await read_state(redis_client, ev.event_id)
    owner = _seat_winners(plan, attempts)
    assert {o: s.holder(o) for o in ev.ordinals if s.holder(o)} == owner

    ga_won = sum(a[5] for a in attempts if a[0] in {r for r, x in enumerate(plan) if x.kind == "ga"} and a[2])
    ga_refused = [a for a in attempts if plan[a[0]].kind == "ga" and not a[2]]
    assert ga_won == s.ga_held[GA_AREA] <= 40
    assert ga_refused, "GA demand exceeded capacity"
    assert all(a[5] < 0 for a in ga_refused)  # refused only when fewer places were left than asked
    check_consistent(s)


# -- one buyer id in many processes: the per-buyer limit ------------------------------

LIMIT = 6
TOUT = "tout"
BUYER_PROCESSES = 4
CLIENTS_PER_BUYER_PROCESS = 3
STEPS = 15


def _tout_process(redis_url: str, event_id: str, categories: dict[int, str], proc: int,
                  ready: Any, start: Any, results: Any) -> None:  # fmt: skip
    asyncio.run(_tout_in_process(redis_url, event_id, categories, proc, ready, start, results))


async def _tout_in_process(
    redis_url: str, event_id: str, categories: dict[int, str], proc: int, ready: Any, start: Any, results: Any
) -> None:
    """Every client buys for the one buyer id: hold, then commit or release; cancel now and then."""
    clients = [connect(redis_url) for _ in range(CLIENTS_PER_BUYER_PROCESS)]
    for c in clients:
        await c.ping()
    invs = [Inventory(c, ScriptRegistry.open(c)) for c in clients]  # closed with the process
    rng = random.Random(100 + proc)
    ready.put(proc)
    await asyncio.to_thread(start.get, True, 60)
    out: list[tuple[str, int]] = []  # (outcome, places)

    async def contender(k: int, inv: Inventory) -> None:
        mine = 8 * (proc * CLIENTS_PER_BUYER_PROCESS + k)
        free = list(range(mine, mine + 8))  # seats no other contender asks for
        orders: list[Any] = []
        for step in range(STEPS):
            if orders and rng.random() < 0.25:
                order = orders.pop()
                await inv.cancel(event_id, order.order_id, ticket_ids=[order.tickets[0].ticket_id])
                out.append(("cancelled", 1))
                continue
            seats = [free.pop() for _ in range(min(len(free), rng.randint(1, 2)))]
            ga = {GA_AREA: 1} if not seats or rng.random() < 0.3 else {}
            try:
                held = await inv.hold(event_id, seats=[(o, categories[o]) for o in seats], ga=ga, buyer=TOUT)
            except LimitExceeded:
                free += seats
                out.append(("refused", len(seats) + len(ga)))
                continue
            out.append(("held", held.record.count))
            if rng.random() < 0.7:
                key = f"p{proc}c{k}s{step}"
                orders.append((await inv.commit(event_id, held.hold_id, key, BUYER)).order)
                out.append(("bought", held.record.count))
            else:
                await inv.release(event_id, held.hold_id)
                free += seats

    await asyncio.gather(*(contender(k, inv) for k, inv in enumerate(invs)))
    for c in clients:
        await c.aclose()
    results.put(out)


def _tout_places(s: Any) -> tuple[int, int]:
    """(held, bought) by the one buyer, from the records themselves (not the counters)."""
    held = sum(h.count for h in s.holds.values() if h.buyer == TOUT)
    bought = sum(1 for o in s.orders.values() if o.buyer_id == TOUT for t in o.tickets if t.status == "valid")
    return held, bought


@pytest.mark.slow
async def test_processes_buying_for_one_buyer_never_pass_the_limit(
    stores: Stores, redis_url: str, redis_client: AnyRedis, spawn: multiprocessing.context.SpawnContext
) -> None:
    """4 OS processes x 3 clients buy for one buyer id, far more than its limit of 6: at every
    cut of the event read while they race, and at the end, held + bought <= 6."""
    ev = await make_event(
        stores.seatmaps, stores.events, rows=8, seats_per_row=20, ga_capacity=40, max_seats_per_buyer=LIMIT
    )
    ready, start, results = spawn.Queue(), spawn.Queue(), spawn.Queue()
    procs = [
        spawn.Process(
            target=_tout_process,
            args=(redis_url, ev.event_id, ev.categories, p, ready, start, results),
            daemon=True,
        )
        for p in range(BUYER_PROCESSES)
    ]
    for p in procs:
        p.start()
    cuts = 0
    try:
        for _ in procs:
            await asyncio.to_thread(ready.get, True, 60)
        for _ in procs:
            start.put(True)
        collected = asyncio.gather(*(asyncio.to_thread(results.get, True, 60) for _ in procs))
        while not collected.done():  # watch the race: every atomic cut is within the limit
            s = await read_state(redis_client, ev.event_id)
            held, bought = _tout_places(s)
            assert held + bought <= LIMIT, f"{held} held + {bought} bought > {LIMIT}"
            assert s.buyers.get(TOUT, 0) + s.bought.get(TOUT, 0) <= LIMIT
            cuts += 1
            await asyncio.sleep(0.005)
        outcomes = [o for out in await collected for o in out]
    finally:
        for p in procs:
            await asyncio.to_thread(p.join, 10)
            if p.is_alive():
                p.kill()
        for q in (ready, start, results):
            q.close()
            q.join_thread()
    assert all(p.exitcode == 0 for p in procs)

    s = await read_state(redis_client, ev.event_id)
    held, bought = _tout_places(s)
    assert held + bought <= LIMIT
    assert (s.buyers.get(TOUT, 0), s.bought.get(TOUT, 0)) == (held, bought)
    check_consistent(s)
    seen = Counter(kind for kind, _n in outcomes)
    assert seen["refused"] > 0, seen  # demand passed the limit
    assert seen["cancelled"] > 0, seen  # and cancels gave places back:
    assert sum(n for kind, n in outcomes if kind == "bought") > LIMIT, seen  # bought more than 6 in all
    assert cuts > 0
