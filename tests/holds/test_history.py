"""A randomized concurrent run, recorded and checked by tests/holds/history.py.

Twelve buyers on their own Redis connections fight over ten seats and a GA area of
three for a few seconds: holding and adding (each request with a request id),
releasing, committing (some after sleeping past the 1 s lease), retrying commits
with the same key and holds with the same request id, and cancelling, some holds
with the access of the presale channel an organizer allocates seats to and closes,
round after round; and the after-sale and box-office operations racing them: the box office selling seats
straight away, refunds (some cancelling their tickets), exchanges onto free seats
(of the ten, or of the eight seats only exchanges reach), transfers and resales of
tickets. About one call in twenty gets a deadline too short to answer, so the
history holds ``unknown`` outcomes too; a quarter of the acknowledged holds are sent
again at once (a gateway's duplicate), and a few request ids are reused for another
request. The checker itself is shown to fail on histories with a double sale, a
commit after expiry, a lost order, a retried hold that held seats again, a refund
beyond the price, a half-done exchange, a listing sold twice, a box-office sale
of a held seat and a hold that took a channel's seat without access.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import pytest

from holds import keys
from holds.aftersale import AfterSale, ResaleRules
from holds.channels import ChannelAccess, ChannelDef, Channels
from holds.errors import StoreError
from holds.inventory import Inventory
from holds.records import Buyer, Exchange, Order, Resale, Sale, Ticket, resale_decoder
from holds.redis_client import AnyRedis, connect
from holds.sales import Sales
from holds.scripts import ScriptRegistry
from server.context import Stores
from tests.holds.factories import (
    GA_AREA,
    RawState,
    TestEvent,
    check_consistent,
    make_event,
    read_state,
    settle,
)
from tests.holds.history import Op, Recorder, check_history

RUN_S = 3.5  # at least this long, then on until the run covered what the checker is about
GIVE_UP_S = 120.0  # a safety bound only: a loaded machine takes longer, never fails for it
CLIENTS = 12
SHORT_S = 0.0005  # a deadline a call can rarely meet: its outcome is unknown
NORMAL_S = 5.0
AFTER_SALE = 0.12  # the share of calls that sell at the box office, refund, exchange or resell
BOX_OFFICE = Sale(collector="organizer", payment_method="cash", channel="box_office")


@dataclass(frozen=True)
class Request:
    """A hold call as a client sends it (and sends it again)."""

    seats: tuple[int, ...]
    ga: int
    hold_id: str  # adding to this hold ("" : a new hold)
    request_id: str
    channel: str = ""  # the channel whose access it names ("": none)


ACCESS_CODE = "FANS"


class _Organizer:
    """Round after round: a new presale channel, seats allocated to it, then closed."""

    def __init__(self, channels: Channels, rec: Recorder, ev: TestEvent, seed: int) -> None:
        self.channels, self.rec, self.ev = channels, rec, ev
        self.rng = random.Random(seed)
        self.current = ""  # the open channel shoppers may name

    async def run(self, stop_at: float, covered: Callable[[], bool]) -> None:
        give_up_at = stop_at + GIVE_UP_S
        for n in itertools.count():
            if time.time() >= give_up_at or (time.time() >= stop_at and covered()):
                return
            channel = f"pre{n}"
            await self.channels.define(
                self.ev.tenant, self.ev.event_id, ChannelDef(channel, "Presale", access_code=ACCESS_CODE)
            )
            self.current = channel
            seats = tuple(sorted(self.rng.sample(list(self.ev.ordinals[:10]), 3)))
            placed = self.ev.loaded.index.placed
            op = self.rec.op("org", "allocate", seats=seats, channel=channel)
            ids = [placed[o].seat.id for o in seats]
            await self.rec.run(
                op, self.channels.allocate(self.ev.tenant, self.ev.event_id, channel, ids, {}), NORMAL_S
            )
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            op = self.rec.op("org", "close", channel=channel)
            await self.rec.run(op, self.channels.close(self.ev.tenant, self.ev.event_id, channel), NORMAL_S)
            await asyncio.sleep(self.rng.uniform(0, 0.1))


class _Shopper:
    """One buyer on its own connection, choosing its next call at random."""

    def __init__(
        self,
        name: str,
        inv: Inventory,
        rec: Recorder,
        ev: TestEvent,
        seed: int,
        after: AfterSale,
        sales: Sales,
        organizer: _Organizer,
    ) -> None:
        self.name, self.inv, self.rec, self.ev, self.after, self.sales = name, inv, rec, ev, after, sales
        self.organizer = organizer
        self.revisions: dict[str, int] = {}  # ticket id -> its revision as this buyer knows it
        self.rng = random.Random(seed)
        self.pool = list(ev.ordinals[:10])
        self.spare = list(ev.ordinals[10:])  # seats only exchanges reach: often free
        self.mine: dict[str, set[int]] = {}  # holds it believes it has -> seats
        self.orders: list[Order] = []
        self.retry: list[tuple[str, str]] = []  # (hold, key) of commits with an unknown outcome
        self.retry_holds: list[Request] = []  # hold calls with an unknown outcome: sent again
        self.sent: list[Request] = []  # for the misuse of a request id
        self.requests = itertools.count()

    def deadline(self) -> float:
        return SHORT_S if self.rng.random() < 0.05 else NORMAL_S

    async def run(self, stop_at: float, covered: Callable[[], bool]) -> None:
        give_up_at = stop_at + GIVE_UP_S
        while time.time() < give_up_at and (time.time() < stop_at or not covered()):
            r = self.rng.random()
            if self.rng.random() < AFTER_SALE:
                await self.after_sale()
            elif self.retry and r < 0.3:
                await self.commit(*self.retry.pop(), NORMAL_S)
            elif self.retry_holds and r < 0.5:
                await self.send_hold(self.retry_holds.pop(), NORMAL_S)
            elif self.sent and r < 0.03:
                await self.reuse_request_id()
            elif self.orders and r < 0.2:
                await self.cancel()  # seats come back for the others
            elif self.orders and r < 0.26:
                await self.transfer()  # racing its own cancels on other connections
            elif not self.mine or r < 0.45:
                await self.hold_new()
            elif r < 0.55:
                await self.add()
            elif r < 0.65:
                await self.release()
            else:
                hold_id = self.rng.choice(sorted(self.mine))
                if self.rng.random() < 0.15:
                    await asyncio.sleep(self.rng.uniform(0.9, 1.1))  # pays slowly: the lease may run out
                await self.commit(hold_id, f"{self.name}-{hold_id}", self.deadline())
            await asyncio.sleep(self.rng.uniform(0, 0.02))

    def request_id(self) -> str:
        return f"{self.name}-r{next(self.requests)}"

    async def hold_new(self) -> None:
        seats = sorted(self.rng.sample(self.pool, self.rng.randint(1, 3)))
        ga = 1 if self.rng.random() < 0.2 else 0
        channel = self.organizer.current if self.rng.random() < 0.3 else ""
        await self.send_hold(Request(tuple(seats), ga, "", self.request_id(), channel), self.deadline())

    async def add(self) -> None:
        hold_id = self.rng.choice(sorted(self.mine))
        seats = sorted(self.rng.sample(self.pool, 1))
        await self.send_hold(Request(tuple(seats), 0, hold_id, self.request_id()), self.deadline())

    async def send_hold(self, req: Request, deadline: float, duplicate: bool = True) -> None:
        """Send ``req`` (again, when it is a retry): a real client retries an unknown outcome
        with the same request id, and a gateway may send a call twice."""
        op = self.rec.op(
            self.name, "hold", hold_id=req.hold_id, seats=req.seats, ga=req.ga, request_id=req.request_id,
            channel=req.channel,
        )  # fmt: skip
        call = self.inv.hold(
            self.ev.event_id,
            seats=self.ev.seats(*req.seats),
            ga={GA_AREA: req.ga} if req.ga else None,
            buyer=self.name,
            hold_id=req.hold_id or None,
            request_id=req.request_id,
            access=ChannelAccess(req.channel, ACCESS_CODE) if req.channel else ChannelAccess(),
        )
        result = await self.rec.run(op, call, deadline)
        self.sent.append(req)
        if result is not None:
            self.mine.setdefault(result.hold_id, set()).update(req.seats)
            if duplicate and self.rng.random() < 0.25:
                await self.send_hold(req, NORMAL_S, duplicate=False)
        elif op.outcome == "unknown":
            self.retry_holds.append(req)

    async def reuse_request_id(self) -> None:
        """A client bug: a request id sent again with another request (refused)."""
        used = self.rng.choice(self.sent)
        other = tuple(sorted(set(self.pool) - set(used.seats))[:1])
        op = self.rec.op(self.name, "hold", seats=other, request_id=used.request_id)
        call = self.inv.hold(
            self.ev.event_id, seats=self.ev.seats(*other), buyer=self.name, request_id=used.request_id
        )
        await self.rec.run(op, call, NORMAL_S)

    async def release(self) -> None:
        hold_id = self.rng.choice(sorted(self.mine))
        held = sorted(self.mine[hold_id])
        part = held[:1] if self.rng.random() < 0.5 and len(held) > 1 else []
        op = self.rec.op(self.name, "release", hold_id=hold_id, seats=tuple(part), all=not part)
        await self.rec.run(op, self.inv.release(self.ev.event_id, hold_id, seats=part), self.deadline())
        if part:
            self.mine[hold_id] -= set(part)
        else:
            self.mine.pop(hold_id)

    async def commit(self, hold_id: str, key: str, deadline: float) -> None:
        op = self.rec.op(self.name, "commit", hold_id=hold_id, idem_key=key)
        call = self.inv.commit(self.ev.event_id, hold_id, key, Buyer(name=self.name))
        result = await self.rec.run(op, call, deadline)
        if result is not None:
            self.orders.append(result.order)
        elif op.outcome == "unknown":
            self.retry.append((hold_id, key))  # a real client retries with the same key
        self.mine.pop(hold_id, None)

    async def cancel(self) -> None:
        order = self.rng.choice(self.orders)
        tickets = (
            tuple(self.rng.sample([t.ticket_id for t in order.tickets], 1)) if self.rng.random() < 0.5 else ()
        )
        op = self.rec.op(self.name, "cancel", order_id=order.order_id, tickets=tickets, all=not tickets)
        call = self.inv.cancel(self.ev.event_id, order.order_id, ticket_ids=tickets)
        await self.rec.run(op, call, self.deadline())
        if not tickets:
            self.orders.remove(order)

    async def after_sale(self) -> None:
        choice = self.rng.random()
        if not self.orders or choice < 0.2:
            await self.box_office()
        elif choice < 0.45:
            await self.refund()
        elif choice < 0.8:
            await self.exchange()
        else:
            await self.resell()

    async def box_office(self) -> None:
        """Seats sold straight away (no override: a seat a buyer holds is refused)."""
        seats = sorted(self.rng.sample(self.pool, self.rng.randint(1, 2)))
        key = f"{self.name}-bo{next(self.requests)}"
        op = self.rec.op(self.name, "box_office", seats=tuple(seats), idem_key=key)
        call = self.inv.box_office(
            self.ev.event_id, seats=self.ev.seats(*seats), ga={}, idempotency_key=key,
            buyer=Buyer(name=self.name), sale=BOX_OFFICE, fingerprint=key,
        )  # fmt: skip
        result = await self.rec.run(op, call, self.deadline())
        if result is not None:
            self.orders.append(result.order)

    async def refund(self) -> None:
        """Part of a ticket (100) or all that is left of it (0), its seat back on sale or not."""
        order = self.rng.choice(self.orders)
        ticket = self.rng.choice(order.tickets).ticket_id
        release = self.rng.random() < 0.5
        amount = self.rng.choice([0, 100])
        op = self.rec.op(self.name, "refund", order_id=order.order_id, tickets=(ticket,), release=release)
        call = self.sales.refund(
            self.ev.tenant, self.ev.event_id, order.order_id, {ticket: amount},
            refund_key=f"{self.name}-rf{next(self.requests)}", release_to="free" if release else "",
        )  # fmt: skip
        result = await self.rec.run(op, call, self.deadline())
        if result is not None:
            op.lines = tuple((line.ticket_id, line.amount) for line in result[1].refund.lines)

    def _replace(self, order: Order) -> None:
        self.orders = [order if o.order_id == order.order_id else o for o in self.orders]

    async def exchange(self) -> None:
        """A seated ticket swapped for a seat of the pool (refused unless it is free)."""
        order = self.rng.choice(self.orders)
        seated = [t for t in order.tickets if t.seat is not None and t.status == "valid"]
        if not seated:
            return
        ticket = self.rng.choice(seated).ticket_id
        target = self.rng.choice(self.pool if self.rng.random() < 0.5 else self.spare)
        key = f"{self.name}-x{next(self.requests)}"
        op = self.rec.op(
            self.name, "exchange", order_id=order.order_id, tickets=(ticket,), seats=(target,), idem_key=key
        )
        call = self.after.exchange(
            self.ev.tenant, self.ev.event_id, order.order_id, [ticket],
            seat_ids=[self.ev.loaded.index.placed[target].seat.id], exchange_key=key,
        )  # fmt: skip
        result = await self.rec.run(op, call, self.deadline())
        if result is not None:
            self._replace(result[1].order)

    async def resell(self) -> None:
        """A ticket listed, held by a resale buyer and bought: only the purchase is recorded (the
        listing and its hold change no ownership); a refused listing or hold ends the attempt."""
        order = self.rng.choice(self.orders)
        ticket = self.rng.choice(order.tickets).ticket_id
        try:
            _, listed = await self.after.list_ticket(
                self.ev.tenant, self.ev.event_id, order.order_id, ticket,
                revision=self.revisions.get(ticket, 0), price=1000, seller_id=self.name,
            )  # fmt: skip
            listing = next(t for t in listed.tickets if t.ticket_id == ticket).listing
            assert listing is not None
            _, held = await self.after.hold_listing(
                self.ev.tenant, self.ev.event_id, ticket, listing.listing_id, f"{self.name}-fan"
            )
        except StoreError:
            return
        key = f"{self.name}-rs{next(self.requests)}"
        op = self.rec.op(self.name, "resale", order_id=order.order_id, tickets=(ticket,), idem_key=key)
        call = self.after.commit_listing(self.ev.tenant, held.token, key, Buyer(name=f"{self.name}'s fan"))
        result = await self.rec.run(op, call, self.deadline())
        if result is not None:
            op.resale_id = result[1].resale.resale_id
            self.revisions[ticket] = result[1].resale.revision

    async def transfer(self) -> None:
        order = self.rng.choice(self.orders)
        ticket = self.rng.choice(order.tickets).ticket_id
        revision = self.revisions.get(ticket, 0)
        op = self.rec.op(self.name, "transfer", order_id=order.order_id, tickets=(ticket,), revision=revision)
        call = self.after.transfer(
            self.ev.tenant,
            self.ev.event_id,
            order.order_id,
            ticket,
            revision,
            Buyer(name=f"{self.name}'s friend"),
        )
        if self.rng.random() < 0.3:  # the same ticket cancelled at once from another task: they race
            cancel = self.rec.op(self.name, "cancel", order_id=order.order_id, tickets=(ticket,))
            cancelled = self.inv.cancel(self.ev.event_id, order.order_id, ticket_ids=(ticket,))
            await asyncio.gather(
                self.rec.run(op, call, self.deadline()), self.rec.run(cancel, cancelled, self.deadline())
            )
        else:
            await self.rec.run(op, call, self.deadline())
        if op.outcome == "ok":
            self.revisions[ticket] = revision + 1


def _coverage(ops: list[Op]) -> list[str]:
    """What the run has not exercised yet of what the checker is about."""
    seen = Counter((op.kind, op.outcome) for op in ops)
    wanted = {
        "10 commits": seen[("commit", "ok")] >= 10,
        "10 refused holds (contention)": seen[("hold", "fail")] >= 10,
        "3 cancels": seen[("cancel", "ok")] >= 3,
        "3 transfers": seen[("transfer", "ok")] >= 3,
        "3 calls of unknown outcome": sum(n for (_k, outcome), n in seen.items() if outcome == "unknown")
        >= 3,
        "a commit of an expired hold": any(op.kind == "commit" and op.error == "HoldExpired" for op in ops),
        "3 replayed holds": sum(op.replayed for op in ops) >= 3,
        "a request id reused for another request": any(op.error == "InvalidRequest" for op in ops),
        "3 box-office sales": seen[("box_office", "ok")] >= 3,
        "3 refunds": seen[("refund", "ok")] >= 3,
        "2 exchanges": seen[("exchange", "ok")] >= 2,
        "2 resales": seen[("resale", "ok")] >= 2,
        "3 holds refused for a channel's seats": sum(op.error == "SeatOrdinalsInChannel" for op in ops) >= 3,
        "3 holds with a channel's access": sum(
            op.kind == "hold" and op.outcome == "ok" and bool(op.channel) for op in ops
        )
        >= 3,
        "3 channels closed": seen[("close", "ok")] >= 3,
    }
    return [name for name, done in wanted.items() if not done]


@pytest.mark.slow
async def test_randomized_history_is_valid(stores: Stores, redis_url: str, redis_client: AnyRedis) -> None:
    ev = await make_event(stores.seatmaps, stores.events, hold_ttl_ms=1_000, ga_capacity=3)
    await stores.after_sale.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    rec = Recorder()
    clients = [connect(redis_url) for _ in range(CLIENTS)]
    registries = [ScriptRegistry.open(c) for c in clients]  # calls abandoned mid-flight included
    try:
        stop_at = time.time() + RUN_S
        organizer = _Organizer(stores.channels, rec, ev, 999)
        await asyncio.gather(
            organizer.run(stop_at, lambda: not _coverage(rec.ops)),
            *(
                _Shopper(
                    f"b{i}",
                    Inventory(c, r),
                    rec,
                    ev,
                    1000 + i,
                    AfterSale(c, r, stores.sales, Inventory(c, r), stores.door),
                    stores.sales,
                    organizer,
                ).run(stop_at, lambda: not _coverage(rec.ops))
                for i, (c, r) in enumerate(zip(clients, registries, strict=True))
            ),
        )
        await settle(redis_client, stores.scripts, *registries)  # calls abandoned by a deadline too
    finally:
        for c, r in zip(clients, registries, strict=True):
            await r.aclose()
            await c.aclose()
    final = await read_state(redis_client, ev.event_id)
    check_consistent(final)
    raw = await redis_client.hgetall(keys.resale_keys(ev.event_id)[1])
    resales = [resale_decoder.decode(v) for k, v in raw.items() if not k.startswith(b"key:")]
    assert check_history(rec.ops, final, resales) == []

    assert _coverage(rec.ops) == [], "the run did not exercise what the checker is about"
    resold = Counter(t.seat for o in final.orders.values() for t in o.tickets if t.seat is not None)
    assert max(resold.values()) >= 2  # some seat was sold, cancelled and sold again


# -- the checker catches what it claims to ------------------------------------------


def _state(orders: list[Order]) -> RawState:
    return RawState(
        now_ms=0, meta={}, seats={}, holds={}, holdexp={}, ga_cap={}, ga_held={}, ga_sold={}, buyers={},
        orders={o.order_id: o for o in orders}, idem={o.idempotency_key: o.order_id for o in orders},
        orders_z=set(), tickets={}, seq=0, changes=[], lifecycle=[],
    )  # fmt: skip


def _order(order_id: str, hold_id: str, seat: int, status: str = "valid") -> Order:
    return Order(
        order_id, hold_id, f"k-{hold_id}", Buyer(), [Ticket(f"t-{order_id}", "std", 100, status, seat=seat)],
        100, "EUR", "committed" if status == "valid" else "cancelled", 0, 0,
    )  # fmt: skip


def _hold(op_id: int, client: str, hold_id: str, seat: int, t: float, expires: int = 10_000) -> Op:
    return Op(op_id, client, "hold", t, t + 1, "ok", hold_id, (seat,), expires_ms=expires)


def _commit(op_id: int, client: str, order: Order, t: float) -> Op:
    return Op(op_id, client, "commit", t, t + 1, "ok", order.hold_id, idem_key=order.idempotency_key,
              order_id=order.order_id, order=order)  # fmt: skip


def test_checker_accepts_a_resale_after_a_cancel() -> None:
    o1, o2 = _order("o1", "h1", 5, "cancelled"), _order("o2", "h2", 5)
    ops = [
        _hold(1, "a", "h1", 5, 100),
        _commit(2, "a", o1, 200),
        Op(3, "a", "cancel", 300, 301, "ok", order_id="o1", all=True),
        _hold(4, "b", "h2", 5, 400),
        _commit(5, "b", o2, 500),
    ]
    assert check_history(ops, _state([o1, o2])) == []


def test_checker_catches_a_double_sale() -> None:
    o1, o2 = _order("o1", "h1", 5), _order("o2", "h2", 5)
    ops = [
        _hold(1, "a", "h1", 5, 100),
        _commit(2, "a", o1, 200),
        _hold(3, "b", "h2", 5, 300),
        _commit(4, "b", o2, 400),
    ]
    problems = check_history(ops, _state([o1, o2]))
    assert any("seat 5 sold to o1 and o2" in p for p in problems)
    assert any("held by h1 and h2 at once" in p for p in problems)


def test_checker_catches_a_commit_after_expiry() -> None:
    o1 = _order("o1", "h1", 5)
    ops = [_hold(1, "a", "h1", 5, 100, expires=150), _commit(2, "a", o1, 200)]
    assert any("after hold h1 expired" in p for p in check_history(ops, _state([o1])))


def test_checker_catches_lost_and_phantom_orders() -> None:
    o1, o2 = _order("o1", "h1", 5), _order("o2", "h2", 6)
    ops = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", o1, 200), _hold(3, "b", "h2", 6, 100)]
    problems = check_history(ops, _state([o2]))
    assert any("o1 is missing from Redis" in p for p in problems)
    assert any("o2 in Redis was never asked for" in p for p in problems)


def test_checker_catches_a_sale_of_a_seat_never_held() -> None:
    o1 = _order("o1", "h1", 7)
    ops = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", o1, 200)]
    assert any("sold seat 7, never held" in p for p in check_history(ops, _state([o1])))


def _retried(op_id: int, hold_id: str, seat: int, t: float, outcome: str = "ok", **fields: object) -> Op:
    return Op(op_id, "a", "hold", t, t + 1, outcome, hold_id, (seat,), expires_ms=10_000, request_id="r1",
              **fields)  # type: ignore[arg-type]  # fmt: skip


def test_checker_accepts_a_replayed_hold() -> None:
    ops = [_retried(1, "", 5, 100, "unknown"), _retried(2, "h1", 5, 300, replayed=True)]
    assert check_history(ops, _state([])) == []


def test_checker_catches_a_retry_that_held_seats_again() -> None:
    ops = [_retried(1, "h1", 5, 100), _retried(2, "h2", 6, 300)]
    problems = check_history(ops, _state([]))
    assert any("request r1 made holds ['h1', 'h2']" in p for p in problems)


def test_checker_catches_a_retry_refused_while_its_hold_was_live() -> None:
    ops = [_retried(1, "h1", 5, 100), _retried(2, "", 5, 300, "fail", error="SeatOrdinalsUnavailable")]
    problems = check_history(ops, _state([]))
    assert any("refused for seats while its hold h1 was live" in p for p in problems)
    released = [*ops[:1], Op(3, "a", "release", 200, 201, "ok", "h1", all=True), ops[1]]
    assert check_history(released, _state([])) == []


def test_checker_catches_a_replay_of_nothing_and_a_disagreeing_record() -> None:
    state = _state([])
    state.holdreqs = {"r1": ("h9", "f")}
    problems = check_history([_retried(1, "h1", 5, 100, replayed=True)], state)
    assert any("replayed request r1 that no earlier call sent" in p for p in problems)
    assert any("Redis records h9" in p for p in problems)


def _transfer(op_id: int, t: float, revision: int, outcome: str = "ok") -> Op:
    return Op(op_id, "a", "transfer", t, t + 1, outcome, order_id="o1", tickets=("t-o1",), revision=revision)  # type: ignore[arg-type]


def _moved(revision: int, status: str = "valid") -> Order:
    order = _order("o1", "h1", 5, status)
    return msgspec.structs.replace(
        order, tickets=[msgspec.structs.replace(order.tickets[0], revision=revision)]
    )


def test_checker_accepts_transfers_in_turn() -> None:
    ops = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", _moved(2), 200), _transfer(3, 300, 0),
           _transfer(4, 400, 1), _transfer(5, 500, 1, "fail")]  # fmt: skip
    assert check_history(ops, _state([_moved(2)])) == []


def test_checker_catches_a_double_transfer_and_a_transfer_after_a_cancel() -> None:
    twice = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", _moved(2), 200), _transfer(3, 300, 0),
             _transfer(4, 300, 0)]  # fmt: skip
    assert any("transferred twice" in p for p in check_history(twice, _state([_moved(2)])))
    lost = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", _moved(0), 200), _transfer(3, 300, 0)]
    assert any("at revision 0" in p for p in check_history(lost, _state([_moved(0)])))
    late = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", _moved(1, "cancelled"), 200),
            Op(3, "a", "cancel", 300, 301, "ok", order_id="o1", all=True), _transfer(4, 400, 0)]  # fmt: skip
    assert any("after its cancel" in p for p in check_history(late, _state([_moved(1, "cancelled")])))


def _box(op_id: int, order: Order, t: float, seat: int) -> Op:
    return Op(op_id, "a", "box_office", t, t + 1, "ok", seats=(seat,), idem_key=order.idempotency_key,
              order_id=order.order_id, order=order)  # fmt: skip


def _box_order(order_id: str, seat: int) -> Order:
    return msgspec.structs.replace(_order(order_id, "", seat), idempotency_key=f"k-{order_id}")


def test_checker_accepts_a_box_office_sale_and_catches_one_over_a_held_seat() -> None:
    o1 = _box_order("o1", 5)
    ops = [_hold(1, "b", "h1", 5, 100, expires=150), _box(2, o1, 200, 5)]
    assert check_history(ops, _state([o1])) == []  # the hold had expired
    live = [_hold(1, "b", "h1", 5, 100), _box(2, o1, 200, 5)]
    assert any("sold to o1 while hold h1 held it" in p for p in check_history(live, _state([o1])))
    unasked = [_box(2, o1, 200, 6)]
    assert any("sold seat 5, never asked for" in p for p in check_history(unasked, _state([o1])))


def _refunded(refunded: int) -> Order:
    order = _order("o1", "h1", 5)
    return msgspec.structs.replace(
        order, tickets=[msgspec.structs.replace(order.tickets[0], refunded=refunded)]
    )


def _refund(op_id: int, t: float, amount: int, outcome: str = "ok") -> Op:
    return Op(op_id, "a", "refund", t, t + 1, outcome, order_id="o1", tickets=("t-o1",),  # type: ignore[arg-type]
              lines=(("t-o1", amount),) if outcome == "ok" else ())  # fmt: skip


def test_checker_catches_a_refund_beyond_the_price_or_lost() -> None:
    base = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", _refunded(0), 200)]
    assert check_history([*base, _refund(3, 300, 60), _refund(4, 400, 40)], _state([_refunded(100)])) == []
    too_much = check_history([*base, _refund(3, 300, 60), _refund(4, 400, 60)], _state([_refunded(120)]))
    assert any("refunded 120, paid 100" in p for p in too_much)
    lost = check_history([*base, _refund(3, 300, 60)], _state([_refunded(0)]))
    assert any("refunded 0 in Redis, 60 acknowledged" in p for p in lost)
    maybe = [*base, _refund(3, 300, 60), _refund(4, 400, 0, "unknown")]
    assert check_history(maybe, _state([_refunded(100)])) == []


def _exchanged(whole: bool) -> Order:
    order = _order("o1", "h1", 5)
    old = msgspec.structs.replace(
        order.tickets[0], status="exchanged" if whole else "valid", exchanged_for="t-x"
    )
    new = Ticket("t-x", "std", 100, "valid", seat=6, exchanged_from="t-o1")
    record = Exchange("x1", "xk", 300, ["t-o1"], ["t-x"], 0, 0)
    return msgspec.structs.replace(order, tickets=[old, new], exchanges=[record])


def test_checker_catches_a_half_done_or_refused_exchange() -> None:
    def ops(outcome: str) -> list[Op]:
        return [_hold(1, "a", "h1", 5, 100), _commit(2, "a", _order("o1", "h1", 5), 200),
                Op(3, "a", "exchange", 300, 301, outcome, order_id="o1", tickets=("t-o1",), seats=(6,),  # type: ignore[arg-type]
                   idem_key="xk")]  # fmt: skip

    assert check_history(ops("ok"), _state([_exchanged(True)])) == []
    assert any("is half done" in p for p in check_history(ops("ok"), _state([_exchanged(False)])))
    assert any(
        "refused exchange xk is in Redis" in p for p in check_history(ops("fail"), _state([_exchanged(True)]))
    )
    missing = check_history(ops("ok"), _state([_order("o1", "h1", 5)]))
    assert any("acknowledged exchange xk is not in Redis" in p for p in missing)


def _resale(resale_id: str, listing: str, revision: int, key: str) -> Resale:
    return Resale(resale_id, key, "o1", "t-o1", listing, "rh", "a", Buyer(), Buyer(), 1000, "EUR", 900,
                  revision, 0, 0, 0)  # fmt: skip


def test_checker_catches_a_listing_sold_twice_and_a_lost_resale() -> None:
    base = [_hold(1, "a", "h1", 5, 100), _commit(2, "a", _moved(2), 200)]
    sells = [Op(3 + i, "a", "resale", 300 + i, 301 + i, "ok", order_id="o1", tickets=("t-o1",), idem_key=k,
                resale_id=r) for i, (k, r) in enumerate((("k1", "rs1"), ("k2", "rs2")))]  # fmt: skip
    good = [_resale("rs1", "l1", 1, "k1"), _resale("rs2", "l2", 2, "k2")]
    assert check_history([*base, *sells], _state([_moved(2)]), good) == []
    twice = [_resale("rs1", "l1", 1, "k1"), _resale("rs2", "l1", 1, "k2")]
    problems = check_history([*base, *sells], _state([_moved(2)]), twice)
    assert any("one listing sold twice" in p for p in problems)
    assert any("two resales made one revision" in p for p in problems)
    lost = check_history([*base, *sells], _state([_moved(2)]), good[:1])
    assert any("acknowledged resale rs2" in p for p in lost)


def test_checker_catches_a_hold_of_a_channels_seat_without_access() -> None:
    allocate = Op(1, "org", "allocate", 100, 101, "ok", seats=(5,), channel="pre0")
    without = _hold(2, "a", "h1", 5, 200)
    assert check_history([allocate, without], _state([])) != []
    with_access = Op(2, "a", "hold", 200, 201, "ok", "h1", (5,), expires_ms=10_000, channel="pre0")
    assert check_history([allocate, with_access], _state([])) == []
    close = Op(3, "org", "close", 150, 151, "ok", channel="pre0")
    assert check_history([allocate, close, without], _state([])) == []  # closed before: general again
