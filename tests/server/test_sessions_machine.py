"""A hypothesis state machine drives one on-sale event through a running server, each
step over a transport it draws: ``seatwise.client`` sending unary RPCs, or multiplexing
over two ``SalesService.Session`` streams. So one hold is often made over one transport
and added to, released or committed over the other, and both act on the same seats.

Each example has a fresh event (eight seats, a GA floor of three, at most four places per
hold and three per named buyer). Rules hold seats (new holds, or added to a live, released
or committed one; within the limits or not), hold GA places, extend, get, release (whole,
one place, or a seat not in the hold) and commit with a fresh idempotency key (a live,
released or committed hold), and send an earlier commit's key again over the other
transport (its own hold: the same order back; another hold: refused). Every answer is
checked against a plain model: the reply, or the status code the unary API documents (and
the seats, limit or hold state it names).
After every step the availability the API reports is the model's, and Redis holds
exactly the model's orders and idempotency keys, no seat in two orders (plus the
invariants of :func:`tests.holds.factories.check_consistent`).

The server and both clients live on the test's event loop (grpc.aio binds them to it),
so hypothesis runs in a worker thread and each rule hands its calls to that loop.
Holds last an hour: nothing expires during a run.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import events_pb2, sales_pb2

from holds import seatvalues
from holds.redis_client import AnyRedis
from tests.api import Api
from tests.holds.factories import check_consistent, read_state
from tests.server.events import make_event

ROWS, PER_ROW, GA_CAP, PER_HOLD, PER_BUYER = 2, 4, 3, 4, 3
SEATS = [f"r{r}-{n}" for r in range(ROWS) for n in range(PER_ROW)]  # index: the seat's ordinal
GA = "floor"
BUYERS = ("ann", "bob", "")  # "": anonymous, no per-buyer limit
TRANSPORTS = ("unary", "sessions")
TRANSPORT = st.sampled_from(TRANSPORTS)
CALL_S = 30.0  # a bound against a hang on a loaded machine, not a timing
UNKNOWN = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE})
Code = grpc.StatusCode
REFUSED = {  # why a hold is refused -> its status code
    "gone": Code.FAILED_PRECONDITION,  # added to a released or committed hold
    "seats": Code.FAILED_PRECONDITION,
    "ga": Code.ABORTED,
    "seats_per_hold": Code.RESOURCE_EXHAUSTED,
    "seats_per_buyer": Code.RESOURCE_EXHAUSTED,
}
STATUS = {"held": events_pb2.SEAT_STATUS_HELD, "sold": events_pb2.SEAT_STATUS_SOLD}
T = TypeVar("T")


@dataclass
class MHold:
    buyer: str
    seats: list[str]
    ga: int = 0
    expires_ms: int = 0

    @property
    def count(self) -> int:
        return len(self.seats) + self.ga


@dataclass(frozen=True)
class MOrder:
    token: str
    key: str
    transport: str  # the commit's
    seats: tuple[str, ...]
    ga: int
    buyer: str


class SessionsMachine(RuleBasedStateMachine):
    """Set by the test: the loop serving the server and the clients, and what runs on it."""

    loop: ClassVar[asyncio.AbstractEventLoop]
    organizer: ClassVar[Api]
    clients: ClassVar[dict[str, SeatwiseClient]]
    redis: ClassVar[AnyRedis]

    def __init__(self) -> None:
        super().__init__()
        self.event_id = self.run(
            make_event(
                self.organizer, rows=ROWS, seats_per_row=PER_ROW, ga=GA_CAP, hold_ttl=Duration(seconds=3600),
                max_seats_per_hold=PER_HOLD, max_seats_per_buyer=PER_BUYER,
            )
        )  # fmt: skip
        # the model
        self.seat: dict[str, tuple[str, str]] = {s: ("free", "") for s in SEATS}  # state, hold token | order
        self.holds: dict[str, MHold] = {}  # live, by token
        self.gone: dict[str, tuple[str, MHold]] = {}  # token -> ("released" | "committed", the hold)
        self.orders: dict[str, MOrder] = {}
        self.made: list[str] = []  # every hold's token, in the order made
        self.keys = itertools.count()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=2 * CALL_S)

    def call(self, transport: str, op: str, *args: Any, **kwargs: Any) -> Any:
        """The reply, or the :class:`SeatwiseError` it failed with (never an unknown outcome:
        the server is healthy and the calls have time)."""
        try:
            return self.run(getattr(self.clients[transport], op)(*args, deadline_s=CALL_S, **kwargs))
        except SeatwiseError as exc:
            error = exc
        assert error.code not in UNKNOWN, f"{op} over {transport}: {error}"
        return error

    @staticmethod
    def expect(answer: Any, code: grpc.StatusCode | None, what: str) -> None:
        if code is None:
            assert not isinstance(answer, SeatwiseError), f"{what}: {answer}"
        else:
            assert isinstance(answer, SeatwiseError), f"{what}: expected {code.name}, it succeeded"
            assert answer.code is code, f"{what}: expected {code.name}, got {answer}"

    def expect_gone(self, answer: Any, token: str, what: str) -> None:
        """A released or committed hold: FAILED_PRECONDITION, saying which."""
        self.expect(answer, Code.FAILED_PRECONDITION, what)
        assert self.gone[token][0] in answer.message, f"{what}: {answer}"

    # -- the model's arithmetic -------------------------------------------------
    def ga_used(self) -> int:
        return sum(h.ga for h in self.holds.values()) + sum(o.ga for o in self.orders.values())

    def places_of(self, buyer: str) -> int:
        """Held and bought: what the per-buyer limit counts."""
        held = sum(h.count for h in self.holds.values() if h.buyer == buyer)
        return held + sum(len(o.seats) + o.ga for o in self.orders.values() if o.buyer == buyer)

    def refusal(self, hold: MHold | None, buyer: str, seats: list[str], ga: int) -> str | None:
        """Why hold.lua refuses the request, in its order of checks (None: it holds)."""
        if any(self.seat[s][0] != "free" for s in seats):
            return "seats"
        if ga and self.ga_used() + ga > GA_CAP:
            return "ga"
        if (hold.count if hold else 0) + len(seats) + ga > PER_HOLD:
            return "seats_per_hold"
        if buyer and self.places_of(buyer) + len(seats) + ga > PER_BUYER:
            return "seats_per_buyer"
        return None

    def pick(self, data: st.DataObject) -> str:
        """A hold: mostly a live one, else any made so far (released or committed too). Drawn
        by the order made, never by the tokens' random text (or hypothesis, replaying a
        prefix, would pick another hold)."""
        live = [t for t in self.made if t in self.holds]
        if live and data.draw(st.integers(0, 3), label="live") > 0:
            return data.draw(st.sampled_from(live), label="hold")
        return data.draw(st.sampled_from(self.made), label="hold")

    # -- rules ------------------------------------------------------------------
    def take(self, transport: str, token: str, buyer: str, seats: list[str], ga: int) -> None:
        """Hold ``seats`` or ``ga`` places, in a new hold (``token`` "") or added to ``token``."""
        live = self.holds.get(token)
        why = "gone" if token and live is None else self.refusal(live, buyer, seats, ga)
        if ga:
            answer = self.call(
                transport, "hold_general_admission", self.event_id, GA, ga, hold_token=token, buyer_id=buyer
            )
        else:
            answer = self.call(
                transport, "hold_seats", self.event_id, seats, hold_token=token, buyer_id=buyer
            )
        what = f"hold {seats or ga} over {transport} (into {token or 'a new hold'})"
        self.expect(answer, None if why is None else REFUSED[why], what)
        if why == "gone":
            self.expect_gone(answer, token, what)
        elif why == "seats":  # the refusal names exactly the seats that are not free
            failure = error_details_pb2.PreconditionFailure()
            assert any(d.Unpack(failure) for d in answer.details), answer
            taken = sorted(s for s in seats if self.seat[s][0] != "free")
            assert sorted(v.subject for v in failure.violations) == taken, answer
        elif why in ("seats_per_hold", "seats_per_buyer"):  # and which limit it would pass
            quota = error_details_pb2.QuotaFailure()
            assert any(d.Unpack(quota) for d in answer.details), answer
            assert [v.subject for v in quota.violations] == [why], answer
        if why is not None:
            return
        hold = answer.hold
        assert not answer.replayed
        if token:
            assert hold.hold_token == token
        else:
            assert hold.hold_token not in [*self.holds, *self.gone]
            self.holds[hold.hold_token] = MHold(buyer, [])
            self.made.append(hold.hold_token)
        model = self.holds[hold.hold_token]
        model.seats += seats
        model.ga += ga
        model.expires_ms = hold.expires_at.ToMilliseconds()
        for s in seats:
            self.seat[s] = ("held", hold.hold_token)
        self.check_hold(hold, model)

    @staticmethod
    def check_hold(hold: sales_pb2.Hold, model: MHold) -> None:
        assert sorted(hold.seat_ids) == sorted(model.seats), (hold, model)
        assert dict(hold.general_admission) == ({GA: model.ga} if model.ga else {}), (hold, model)
        assert hold.buyer_id == model.buyer

    @rule(
        transport=TRANSPORT,
        buyer=st.sampled_from(BUYERS),
        seats=st.lists(st.sampled_from(SEATS), min_size=1, max_size=3, unique=True),
    )
    def hold_seats(self, transport: str, buyer: str, seats: list[str]) -> None:
        self.take(transport, "", buyer, seats, 0)

    @precondition(lambda self: self.made)
    @rule(
        transport=TRANSPORT,
        data=st.data(),
        seats=st.lists(st.sampled_from(SEATS), min_size=1, max_size=2, unique=True),
    )
    def add_seats(self, transport: str, data: st.DataObject, seats: list[str]) -> None:
        token = self.pick(data)
        buyer = self.holds[token].buyer if token in self.holds else self.gone[token][1].buyer
        self.take(transport, token, buyer, seats, 0)

    @rule(transport=TRANSPORT, buyer=st.sampled_from(BUYERS), quantity=st.integers(1, 3), data=st.data())
    def hold_general_admission(self, transport: str, buyer: str, quantity: int, data: st.DataObject) -> None:
        mine = [t for t in self.made if t in self.holds and self.holds[t].buyer == buyer]
        token = data.draw(st.sampled_from(["", *mine]), label="into")
        self.take(transport, token, buyer, [], quantity)

    @precondition(lambda self: self.made)
    @rule(transport=TRANSPORT, data=st.data())
    def extend(self, transport: str, data: st.DataObject) -> None:
        token = self.pick(data)
        answer = self.call(transport, "extend_hold", token)
        model = self.holds.get(token)
        if model is None:
            self.expect_gone(answer, token, f"extend over {transport}")
            return
        self.expect(answer, None, f"extend over {transport}")
        assert answer.hold.expires_at.ToMilliseconds() >= model.expires_ms
        model.expires_ms = answer.hold.expires_at.ToMilliseconds()
        self.check_hold(answer.hold, model)

    @precondition(lambda self: self.made)
    @rule(transport=TRANSPORT, data=st.data())
    def get_hold(self, transport: str, data: st.DataObject) -> None:
        token = self.pick(data)
        answer = self.call(transport, "get_hold", token)
        model = self.holds.get(token)
        if model is None:
            self.expect_gone(answer, token, f"get over {transport}")
            return
        self.expect(answer, None, f"get over {transport}")
        assert answer.hold.hold_token == token
        assert answer.hold.expires_at.ToMilliseconds() == model.expires_ms
        self.check_hold(answer.hold, model)

    @precondition(lambda self: self.made)
    @rule(transport=TRANSPORT, data=st.data(), part=st.sampled_from(["whole", "one", "stray"]))
    def release(self, transport: str, data: st.DataObject, part: str) -> None:
        """The whole hold, one of its places, or one of its seats with a seat it does not hold."""
        token = self.pick(data)
        model = self.holds.get(token)
        seat_ids: list[str] = []
        ga: dict[str, int] = {}
        if model is not None and part == "one":
            place = data.draw(
                st.sampled_from(sorted(model.seats) + ([GA] if model.ga else [])), label="place"
            )
            seat_ids, ga = ([], {GA: 1}) if place == GA else ([place], {})
        elif model is not None and part == "stray" and model.seats:
            stray = data.draw(st.sampled_from([s for s in SEATS if s not in model.seats]), label="stray")
            seat_ids = [model.seats[0], stray]
        answer = self.call(transport, "release_hold", token, seat_ids=seat_ids, general_admission=ga)
        what = f"release {seat_ids or ga or 'all'} over {transport}"
        if model is None:
            self.expect_gone(answer, token, what)
            return
        if len(seat_ids) == 2:  # all-or-nothing: nothing released
            self.expect(answer, Code.INVALID_ARGUMENT, what)
            return
        self.expect(answer, None, what)
        released = seat_ids if seat_ids or ga else list(model.seats)
        model.seats = [s for s in model.seats if s not in released]
        model.ga -= ga.get(GA, 0) if seat_ids or ga else model.ga
        assert answer.remaining == model.count
        for s in released:
            self.seat[s] = ("free", "")
        if model.count == 0:
            self.gone[token] = ("released", self.holds.pop(token))

    @precondition(lambda self: self.made)
    @rule(transport=TRANSPORT, data=st.data())
    def commit(self, transport: str, data: st.DataObject) -> None:
        token = self.pick(data)
        key = f"pay-{next(self.keys)}"
        answer = self.call(transport, "commit_hold", token, key, buyer=sales_pb2.BuyerDetails(name="Ann"))
        model = self.holds.pop(token, None)
        if model is None:
            self.expect_gone(answer, token, f"commit over {transport}")
            return
        self.expect(answer, None, f"commit over {transport}")
        order = answer.order
        assert not answer.replayed
        assert order.order_id not in self.orders
        assert order.idempotency_key == key
        assert sorted(t.seat_id for t in order.tickets if t.seat_id) == sorted(model.seats)
        assert sum(1 for t in order.tickets if t.ga_area_id == GA) == model.ga
        self.orders[order.order_id] = MOrder(
            token, key, transport, tuple(sorted(model.seats)), model.ga, model.buyer
        )
        self.gone[token] = ("committed", model)
        for s in model.seats:
            self.seat[s] = ("sold", order.order_id)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), same_hold=st.booleans())
    def commit_again_over_the_other_transport(self, data: st.DataObject, same_hold: bool) -> None:
        """A checkout sending its payment's key again (a retry landing elsewhere): its own hold's
        order, whatever became of the hold; another hold's commit under the key is refused."""
        order_id = data.draw(st.sampled_from(list(self.orders)), label="order")  # in commit order
        order = self.orders[order_id]
        other = next(t for t in TRANSPORTS if t != order.transport)
        others = [t for t in self.made if t != order.token]
        token = order.token if same_hold or not others else data.draw(st.sampled_from(others), label="other")
        answer = self.call(other, "commit_hold", token, order.key, buyer=sales_pb2.BuyerDetails(name="Bob"))
        if token != order.token:
            self.expect(answer, Code.INVALID_ARGUMENT, f"key {order.key} of another hold over {other}")
            return
        self.expect(answer, None, f"commit again over {other}")
        assert answer.replayed
        assert answer.order.order_id == order_id
        assert tuple(sorted(t.seat_id for t in answer.order.tickets if t.seat_id)) == order.seats

    # -- invariants: the API and Redis agree with the model after every step --------
    @invariant()
    def redis_has_the_models_orders_and_availability_follows(self) -> None:
        state = self.run(read_state(self.redis, self.event_id))
        check_consistent(state)
        owner: dict[str, str] = {}
        for order in state.orders.values():
            for ticket in order.tickets:
                if ticket.seat is not None:
                    seat = SEATS[ticket.seat]
                    assert seat not in owner, f"{seat} is in orders {owner[seat]} and {order.order_id}"
                    owner[seat] = order.order_id
        assert owner == {s: o for s, (state_, o) in self.seat.items() if state_ == "sold"}
        assert sorted(state.orders) == sorted(self.orders)
        assert state.idem == {o.key: order_id for order_id, o in self.orders.items()}
        held = {s: seatvalues.decode(state.seats.get(i))[0] for i, s in enumerate(SEATS)}
        assert held == {s: state_ for s, (state_, _) in self.seat.items()}
        self.run(self.availability_is_the_models(state.seq))

    async def availability_is_the_models(self, seq: int) -> None:
        """Once the API's availability has followed the change stream up to ``seq`` (Redis's
        now), it reports the model's seats and GA counts."""
        request = events_pb2.GetAvailabilityRequest(event_id=self.event_id, include_seats=True)
        async with asyncio.timeout(CALL_S):
            while True:
                reply = await self.organizer.events.GetAvailability(request, metadata=self.organizer.metadata)
                if reply.sequence >= seq:
                    break
                await asyncio.sleep(0.01)  # the mirror follows the change stream asynchronously
        assert {s.seat_id: s.status for s in reply.seats} == {
            s: STATUS[state] for s, (state, _) in self.seat.items() if state != "free"
        }
        held = sum(h.ga for h in self.holds.values())
        sold = sum(o.ga for o in self.orders.values())
        (ga,) = reply.general_admission
        assert (ga.area_id, ga.capacity, ga.held, ga.sold, ga.available) == (
            GA, GA_CAP, held, sold, GA_CAP - held - sold
        )  # fmt: skip


async def test_sessions_and_unary_calls_on_one_event_follow_the_model(
    organizer: Api, clients: dict[str, SeatwiseClient], redis_client: AnyRedis
) -> None:
    SessionsMachine.loop = asyncio.get_running_loop()
    SessionsMachine.organizer = organizer
    SessionsMachine.clients = clients
    SessionsMachine.redis = redis_client
    machine_settings = settings(  # as tests/holds/machines.py's, but for the counts
        max_examples=30,
        stateful_step_count=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
        report_multiple_bugs=False,
        phases=[Phase.generate, Phase.shrink],
    )
    await asyncio.to_thread(run_state_machine_as_test, SessionsMachine, settings=machine_settings)
