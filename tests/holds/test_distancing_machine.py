"""A hypothesis state machine for minimum-distance seating against a real Redis.

Each example starts from a flushed Redis and a fresh event (3 rows of 6 seats) under
one rule (1 or 2 seats in the row, or 1 m: the row's neighbours, the seats in front and
behind and the diagonals). Rules hold seats for new groups and add seats to live
holds, sell at the counter, commit, release, expire holds and cancel orders; a plain
model predicts every answer exactly (taken, held, too close: which seats, in the order
asked). After every step Redis's seats equal the model's, and no two seats of
different live groups are neighbours: the distance holds whatever the history.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)

from holds import seatvalues
from holds.distancing import SeatOrdinalsDistanced, script_args
from holds.inventory import SeatOrdinalsHeld, SeatOrdinalsUnavailable
from holds.records import Buyer, Sale
from seatmap.distancing import DistancingRule, Neighbourhoods, neighbourhoods
from tests.holds.factories import (
    TestEvent,
    expire_hold_sync,
    make_event,
    read_state_sync,
)
from tests.holds.machines import StoreMachine, run_machine

ROWS, PER_ROW = 3, 6
SEATS = ROWS * PER_ROW
COUNTER = Sale(collector="organizer", payment_method="cash", channel="box_office")


class DistancingMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.inv = self.stores.inventory
        self.ev: TestEvent = self.run(
            make_event(self.stores.seatmaps, self.stores.events, rows=ROWS, seats_per_row=PER_ROW,
                       ga_capacity=0, max_seats_per_hold=SEATS)
        )  # fmt: skip
        self.rule = ""
        self.near: Neighbourhoods | None = None
        self.owner: dict[int, str] = {}  # seat -> "h:<hold>" | "s:<order>" (live groups only)
        # live groups in the order they were made (ids are random: never sort by them, or a
        # replayed example would pick other groups)
        self.holds: dict[str, None] = {}
        self.orders: dict[str, None] = {}
        self.keys = itertools.count()

    @initialize(rule=st.sampled_from(["row:1", "row:2", "m:1.0@100.0"]))
    def set_rule(self, rule: str) -> None:
        ref = self.run(self.stores.events.read_ref(self.ev.event_id))
        self.run(self.stores.events.update(ref, {"vip", "std", "ga"}, changes={"distancing": rule}))
        self.rule = rule
        self.near = neighbourhoods(self.ev.loaded.index, DistancingRule.parse(rule))

    def args(self, seats: list[int]) -> list[Any]:
        return script_args(self.rule, self.near, seats)

    def too_close(self, seats: list[int], own: str) -> list[int]:
        assert self.near is not None
        return [o for o in seats if any(self.owner.get(n, own) != own for n in self.near.of(o))]

    def check(self, result: Any, expected: tuple[type[Exception], list[int]] | None) -> None:
        if expected is None:
            assert not isinstance(result, Exception), result
            return
        kind, seats = expected
        assert isinstance(result, kind), (result, expected)
        assert result.ordinals == seats

    def attempt(self, coro: Any) -> Any:
        try:
            return self.run(coro)
        except (SeatOrdinalsUnavailable, SeatOrdinalsDistanced, SeatOrdinalsHeld) as exc:
            return exc

    @rule(seats=st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True), add=st.booleans())
    def hold(self, seats: list[int], add: bool) -> None:
        target = next(iter(self.holds)) if add and self.holds else None
        own = f"h:{target}" if target else "h:new"
        taken = [o for o in seats if o in self.owner]
        close = self.too_close(seats, own)
        expected = (
            (SeatOrdinalsUnavailable, taken) if taken else (SeatOrdinalsDistanced, close) if close else None
        )
        result = self.attempt(
            self.inv.hold(
                self.ev.event_id, seats=self.ev.seats(*seats), hold_id=target, rule_args=self.args(seats)
            )
        )
        self.check(result, expected)
        if expected is None:
            self.holds[result.hold_id] = None
            self.owner |= dict.fromkeys(seats, f"h:{result.hold_id}")

    @rule(seats=st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True))
    def sell_at_the_counter(self, seats: list[int]) -> None:
        taken = [o for o in seats if self.owner.get(o, "h").startswith("s:")]
        held = [o for o in seats if o in self.owner and o not in taken]
        close = self.too_close(seats, "s:new")
        expected = (
            (SeatOrdinalsUnavailable, taken) if taken
            else (SeatOrdinalsHeld, held) if held
            else (SeatOrdinalsDistanced, close) if close
            else None
        )  # fmt: skip
        result = self.attempt(
            self.inv.box_office(
                self.ev.event_id, seats=self.ev.seats(*seats), ga={}, idempotency_key=f"k{next(self.keys)}",
                buyer=Buyer(name="walk-in"), sale=COUNTER, fingerprint="f", rule_args=self.args(seats),
            )
        )  # fmt: skip
        self.check(result, expected)
        if expected is None:
            self.orders[result.order.order_id] = None
            self.owner |= dict.fromkeys(seats, f"s:{result.order.order_id}")

    def group_seats(self, group: str) -> list[int]:
        return [o for o, g in self.owner.items() if g == group]

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), how=st.sampled_from(["commit", "release", "expire"]))
    def end_hold(self, data: st.DataObject, how: str) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        seats = self.group_seats(f"h:{hold_id}")
        del self.holds[hold_id]
        for o in seats:
            del self.owner[o]
        if how == "commit":
            order = self.run(self.inv.commit(self.ev.event_id, hold_id, f"k{next(self.keys)}", Buyer())).order
            self.orders[order.order_id] = None
            self.owner |= dict.fromkeys(seats, f"s:{order.order_id}")
        elif how == "release":
            self.run(self.inv.release(self.ev.event_id, hold_id))
        else:
            expire_hold_sync(self.sync, self.ev.event_id, hold_id)

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(list(self.orders)))
        del self.orders[order_id]
        for o in self.group_seats(f"s:{order_id}"):
            del self.owner[o]
        self.run(self.inv.cancel(self.ev.event_id, order_id, ticket_ids=[], to="free", reason=""))

    @invariant()
    def the_distance_holds_and_redis_agrees(self) -> None:
        if self.near is None:
            return
        for o, group in self.owner.items():
            assert all(self.owner.get(n, group) == group for n in self.near.of(o)), (o, group)
        state = read_state_sync(self.sync, self.ev.event_id)
        live = {o: g for o, g in self.owner.items()}
        stored = {}
        for o in range(SEATS):
            value = state.seats.get(o)
            if value is None:
                continue
            kind, who = seatvalues.decode(value)
            if kind == "held" and who not in self.holds:
                continue  # an expired hold not yet purged: free to every script
            stored[o] = f"{'h' if kind == 'held' else 's'}:{who}"
        assert stored == live


@pytest.mark.slow
def test_distancing_state_machine(redis_url: str) -> None:
    run_machine(DistancingMachine, redis_url, examples=25, steps=25)
