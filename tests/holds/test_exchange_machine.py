"""A hypothesis state machine over exchanges into another event (holds/exchanges.py).

Each example starts from a flushed Redis with two events of one organizer in two
slots and three orders of two seats in the source. Rules start exchanges into the
target (onto seats that may be taken), some of whose callers crash after a step
of the saga (a fault hook raising after the hold, the lock or the commit), retry
them with their key, end an exchange's hold under it (what its lease running out
looks like), run recovery, refund, transfer and cancel the source's tickets, and
buy the target's seats. After every step, on one read of each event:

* never both: no ticket is usable in the source (valid and not locked) while a
  ticket of the target names it as the one it replaces;
* a ticket is locked exactly while its exchange's record is ``locked``; a locked
  ticket refuses refunds, transfers and cancels, naming the exchange;
* a ``done`` exchange has its old tickets ``exchanged`` for valid new ones;
* both events pass :func:`tests.holds.factories.check_consistent`.

At the end, recovery settles every attempt: never neither (every ticket an
exchange named is valid, or exchanged for a valid ticket, or cancelled by a
refund or cancel), no lock and no exchange's hold left, the pending set empty.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from holds import keys
from holds.errors import PreconditionFailed, StoreError
from holds.exchanges import Saga
from holds.inventory import SeatOrdinalsUnavailable
from holds.records import Buyer, Order
from holds.sales import Sales
from tests.holds.factories import (
    TestEvent,
    check_consistent,
    make_event,
    read_state_sync,
)
from tests.holds.machines import StoreMachine, run_machine

FAR_FUTURE_MS = 2**53
STEPS = [None, "held", "locked", "committed"]


class Crash(Exception):
    pass


class ExchangeMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.after = self.stores.after_sale
        self.cross = self.after.cross
        self.cross.fault = None
        self.sales = Sales(self.stores.live, self.stores.inventory)
        self.src: TestEvent = self.run(
            make_event(self.stores.seatmaps, self.stores.events, max_seats_per_hold=10)
        )
        self.dst: TestEvent = self.run(
            make_event(self.stores.seatmaps, self.stores.events, max_seats_per_hold=10)
        )
        self.order_ids: list[str] = []
        for n in range(3):
            seats = [self.src.loaded.index.placed[o].seat.id for o in (2 * n, 2 * n + 1)]
            _, sold = self.run(self.sales.sell_at_box_office(
                self.src.tenant, self.src.event_id, seats, {}, idempotency_key=f"o{n}",
                buyer=Buyer(name="Ada"), payment_method="cash",
            ))  # fmt: skip
            self.order_ids.append(sold.order.order_id)
        self.sent: dict[str, tuple[str, list[str], list[str]]] = {}  # key -> (order, tickets, seat ids)
        self.keys = itertools.count()

    def order(self, order_id: str) -> Order:
        return read_state_sync(self.sync, self.src.event_id).orders[order_id]

    def record(self, key: str) -> Saga | None:
        return self.run(self.cross.read(self.src.event_id, key))

    def exchange(self, key: str, crash: str | None) -> Any:
        order_id, tickets, seats = self.sent[key]

        async def fault(step: str) -> None:
            if step == crash:
                raise Crash(step)

        self.cross.fault = fault
        try:
            return self.run(self.after.exchange(
                self.src.tenant, self.src.event_id, order_id, tickets, seat_ids=seats, exchange_key=key,
                target_event_id=self.dst.event_id,
            ))  # fmt: skip
        except (StoreError, Crash) as exc:
            return exc
        finally:
            self.cross.fault = None

    # -- rules -------------------------------------------------------------------------
    @rule(data=st.data(), n=st.integers(1, 2), crash=st.sampled_from(STEPS))
    def start(self, data: st.DataObject, n: int, crash: str | None) -> None:
        order_id = data.draw(st.sampled_from(self.order_ids))
        tickets = [t.ticket_id for t in self.order(order_id).tickets][:n]
        ordinals = data.draw(st.lists(st.integers(0, 17), min_size=n, max_size=n, unique=True))
        key = f"x{next(self.keys)}"
        self.sent[key] = (order_id, tickets, [self.dst.loaded.index.placed[o].seat.id for o in ordinals])
        self.exchange(key, crash)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        key = data.draw(st.sampled_from(sorted(self.sent)))
        before = self.record(key)
        result = self.exchange(key, None)
        if before is not None and before.status == "done":
            assert not isinstance(result, BaseException), result
            assert result[1].replayed
            assert result[1].exchange.exchange_id == before.exchange_id

    @rule(data=st.data())
    def end_the_hold(self, data: st.DataObject) -> None:
        locked = [k for k in self.sent if (r := self.record(k)) is not None and r.status == "locked"]
        if not locked:
            return
        rec = self.record(data.draw(st.sampled_from(locked)))
        assert rec is not None
        self.run(self.cross._release(self.dst.event_id, rec.hold_id))

    @rule()
    def recover(self) -> None:
        self.run(self.cross.recover(now_ms=FAR_FUTURE_MS))

    @rule(data=st.data(), how=st.sampled_from(["refund", "transfer", "cancel"]))
    def change_a_ticket(self, data: st.DataObject, how: str) -> None:
        order_id = data.draw(st.sampled_from(self.order_ids))
        ticket = data.draw(st.sampled_from(self.order(order_id).tickets))
        if how == "refund":
            call: Any = self.sales.refund(self.src.tenant, self.src.event_id, order_id, {ticket.ticket_id: 0},
                                          refund_key=f"r{next(self.keys)}", release_to="free")  # fmt: skip
        elif how == "transfer":
            call = self.after.transfer(self.src.tenant, self.src.event_id, order_id, ticket.ticket_id,
                                       ticket.revision, Buyer(name="Bob"))  # fmt: skip
        else:
            call = self.sales.cancel(
                self.src.tenant, self.src.event_id, order_id, [ticket.ticket_id], "free", ""
            )
        if ticket.exchanging:
            with pytest.raises(PreconditionFailed, match="being exchanged"):
                self.run(call)
            return
        with contextlib.suppress(PreconditionFailed):  # cancelled or exchanged already, refunded: refused
            self.run(call)

    @rule(ordinal=st.integers(0, 17))
    def buy_a_target_seat(self, ordinal: int) -> None:
        try:
            held = self.run(self.stores.inventory.hold(self.dst.event_id, seats=self.dst.seats(ordinal)))
            self.run(
                self.stores.inventory.commit(self.dst.event_id, held.hold_id, f"b{next(self.keys)}", Buyer())
            )
        except (StoreError, SeatOrdinalsUnavailable):  # taken: fine
            pass

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def never_both(self) -> None:
        src = read_state_sync(self.sync, self.src.event_id)
        dst = read_state_sync(self.sync, self.dst.event_id)
        replaced = {t.exchanged_from: t for o in dst.orders.values() for t in o.tickets if t.exchanged_from}
        records = {k: self.record(k) for k in self.sent}
        locked_by = {r.exchange_id: r for r in records.values() if r is not None and r.status == "locked"}
        for order in src.orders.values():
            for t in order.tickets:
                if t.status == "valid" and not t.exchanging:
                    assert t.ticket_id not in replaced, f"{t.ticket_id} valid and replaced: both"
                if t.exchanging:
                    assert t.exchanging in locked_by, f"{t.ticket_id} locked by no locked exchange"
                if t.status == "exchanged":
                    assert replaced[t.ticket_id].ticket_id == t.exchanged_for
        for rec in records.values():
            if rec is not None and rec.status == "done":
                order = src.orders[rec.order_id]
                assert all(t.status == "exchanged" for t in order.tickets if t.ticket_id in rec.tickets)
            if rec is not None and rec.status == "locked":
                order = src.orders[rec.order_id]
                assert all(
                    t.exchanging == rec.exchange_id for t in order.tickets if t.ticket_id in rec.tickets
                )
        check_consistent(src)
        check_consistent(dst)

    def teardown(self) -> None:
        self.run(self.cross.recover(now_ms=FAR_FUTURE_MS))
        assert self.sync.zcard(keys.EXCHANGES_PENDING) == 0
        src = read_state_sync(self.sync, self.src.event_id)
        dst = read_state_sync(self.sync, self.dst.event_id)
        replaced = {t.exchanged_from for o in dst.orders.values() for t in o.tickets if t.status == "valid"}
        for order in src.orders.values():
            for t in order.tickets:
                assert not t.exchanging, f"{t.ticket_id} still locked after recovery"
                if t.status == "exchanged":
                    assert t.ticket_id in replaced, f"{t.ticket_id} exchanged for no valid ticket: neither"
        exchange_holds = {h for r, (h, _) in dst.holdreqs.items() if r.startswith("xchg-")}
        assert not exchange_holds & set(dst.holds), "an exchange's hold was left behind"
        check_consistent(src)
        check_consistent(dst)


def test_exchange_state_machine(redis_url: str) -> None:
    run_machine(ExchangeMachine, redis_url, examples=25, steps=15)
