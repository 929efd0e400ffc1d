"""Races on one event between the two transports of ``seatwise.client``: the same storefront
key over unary calls and over sales sessions (two streams). Each round both contenders' calls
are in flight together, the transport of the side that starts first alternating and the other
side starting 0-2 event-loop turns later, so that either may reach the server first.

The assertions are about outcomes that a missing fence would break, never timings: the
same commit sent over both makes one order that both answers name; a commit racing a
release of its hold has exactly one winner and leaves no seat sold without an order; two
buyers after the same seats, one winner; one buyer holding over both at once stays within
the event's per-buyer limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from typing import TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import events_pb2, sales_pb2

from holds import seatvalues
from holds.inspection import EventDump
from holds.redis_client import AnyRedis
from holds.sales import parse_token
from tests.api import Api
from tests.holds.factories import check_consistent, read_state
from tests.server.events import make_event

ROWS, PER_ROW, GA_CAP = 10, 10, 20
GA = "floor"
ROUNDS = 12
T = TypeVar("T")


def seat(ordinal: int) -> str:
    return f"r{ordinal // PER_ROW}-{ordinal % PER_ROW}"


def ordinal(seat_id: str) -> int:
    row, n = seat_id[1:].split("-")
    return int(row) * PER_ROW + int(n)


def sides(clients: dict[str, SeatwiseClient], r: int) -> tuple[SeatwiseClient, SeatwiseClient]:
    """Round ``r``'s two contenders: one transport each, the first side alternating."""
    unary, sessions = clients["unary"], clients["sessions"]
    return (unary, sessions) if r % 2 == 0 else (sessions, unary)


async def outcome(call: Awaitable[T]) -> T | SeatwiseError:
    try:
        return await call
    except SeatwiseError as exc:
        return exc


async def race(first: Awaitable[T], *others: Awaitable[T], lag: int = 0) -> list[T | SeatwiseError]:
    """The outcomes of ``first``, started now, and of ``others``, started ``lag`` event-loop
    turns later: which reaches the server first depends on each transport's own overhead,
    so rounds vary the lag to let either side win some."""

    async def later(call: Awaitable[T]) -> T | SeatwiseError:
        for _ in range(lag):
            await asyncio.sleep(0)
        return await outcome(call)

    return list(await asyncio.gather(outcome(first), *(later(c) for c in others)))


def refused_seats(error: SeatwiseError) -> list[str]:
    """The seats a SEATS_UNAVAILABLE refusal names."""
    failure = error_details_pb2.PreconditionFailure()
    assert any(d.Unpack(failure) for d in error.details), error
    return sorted(v.subject for v in failure.violations)


def sold_seats(state: EventDump) -> dict[str, str]:
    """Seat id -> the order Redis has it sold to."""
    out = {}
    for o, value in state.seats.items():
        kind, owner = seatvalues.decode(value)
        if kind == "sold":
            out[seat(o)] = owner
    return out


def check_orders(state: EventDump, acknowledged: dict[str, list[str]]) -> None:
    """Redis holds exactly the acknowledged orders with their seats: a seat is sold to the
    order it was acknowledged in, none to two, none without one."""
    check_consistent(state)
    assert sorted(state.orders) == sorted(acknowledged)
    for order_id, seats in acknowledged.items():
        order = state.orders[order_id]
        assert sorted(seat(t.seat) for t in order.tickets if t.seat is not None) == sorted(seats)
    seats_sold = [(s, order) for order, seats in acknowledged.items() for s in seats]
    by_seat = dict(seats_sold)
    assert len(by_seat) == len(seats_sold), f"a seat is in two acknowledged orders: {sorted(seats_sold)}"
    assert sold_seats(state) == by_seat


@pytest.fixture
async def event_id(organizer: Api, clients: dict[str, SeatwiseClient]) -> str:
    """An hour's leases (nothing expires mid-race), and both transports connected first."""
    created = await make_event(
        organizer, rows=ROWS, seats_per_row=PER_ROW, ga=GA_CAP, hold_ttl=Duration(seconds=3600)
    )
    for client in (clients["unary"], clients["sessions"]):
        for _ in range(2):  # each of its two connections / sessions
            with pytest.raises(SeatwiseError):
                await client.get_hold("not-a-token")
    return created


async def test_the_same_commit_over_both_transports_makes_one_order(
    clients: dict[str, SeatwiseClient], redis_client: AnyRedis, event_id: str
) -> None:
    acknowledged: dict[str, list[str]] = {}
    for r in range(ROUNDS):
        first, second = sides(clients, r)
        seats = [seat(2 * r), seat(2 * r + 1)]
        held = await first.hold_seats(event_id, seats, buyer_id=f"b{r}")
        token = held.hold.hold_token
        await second.hold_general_admission(event_id, GA, 1, hold_token=token, buyer_id=f"b{r}")
        buyer = sales_pb2.BuyerDetails(name=f"b{r}")
        answers = await race(
            *(c.commit_hold(token, f"pay-{r}", buyer=buyer) for c in (first, second)), lag=r % 3
        )
        assert all(isinstance(a, sales_pb2.CommitHoldResponse) for a in answers), f"round {r}: {answers}"
        commits = [a for a in answers if isinstance(a, sales_pb2.CommitHoldResponse)]
        orders = {c.order.order_id for c in commits}
        assert len(orders) == 1, f"round {r}: two orders {orders}"
        assert sorted(c.replayed for c in commits) == [False, True]  # one made it, one replayed it
        acknowledged[orders.pop()] = seats
    state = await read_state(redis_client, event_id)
    check_orders(state, acknowledged)
    assert Counter(o.hold_id for o in state.orders.values()).most_common(1)[0][1] == 1
    assert len(state.idem) == ROUNDS
    assert state.ga_sold == {GA: ROUNDS}


async def test_a_commit_racing_a_release_of_its_hold_has_one_winner(
    clients: dict[str, SeatwiseClient], redis_client: AnyRedis, event_id: str
) -> None:
    acknowledged: dict[str, list[str]] = {}
    for r in range(ROUNDS):
        committer, releaser = sides(clients, r)
        seats = [seat(2 * r), seat(2 * r + 1)]
        token = (await releaser.hold_seats(event_id, seats, buyer_id=f"b{r}")).hold.hold_token
        committed, released = await race(
            committer.commit_hold(token, f"pay-{r}"), releaser.release_hold(token), lag=r % 3
        )
        state = await read_state(redis_client, event_id)
        hold_id = parse_token(token)[1]
        orders_of_hold = [o for o in state.orders.values() if o.hold_id == hold_id]
        if isinstance(committed, sales_pb2.CommitHoldResponse):
            assert isinstance(released, SeatwiseError), f"round {r}: committed and released"
            assert released.code is grpc.StatusCode.FAILED_PRECONDITION, released
            assert "committed" in released.message, released
            assert [o.order_id for o in orders_of_hold] == [committed.order.order_id]
            acknowledged[committed.order.order_id] = seats
        else:
            assert isinstance(released, sales_pb2.ReleaseHoldResponse), f"round {r}: neither: {released}"
            assert released.remaining == 0
            assert isinstance(committed, SeatwiseError)
            assert committed.code is grpc.StatusCode.FAILED_PRECONDITION, committed
            assert "released" in committed.message, committed
            assert orders_of_hold == []
            assert all(ordinal(s) not in state.seats for s in seats), f"round {r}: seats left taken"
        check_orders(state, acknowledged)


async def test_two_buyers_racing_for_seats_over_both_transports_one_wins(
    clients: dict[str, SeatwiseClient], redis_client: AnyRedis, event_id: str
) -> None:
    """Overlapping requests (one seat in common): one hold, the other refused naming that
    seat and holding nothing; the winner pays over the other transport, the loser's
    second try is refused too."""
    acknowledged: dict[str, list[str]] = {}
    for r in range(ROUNDS):
        sides_ = sides(clients, r)
        wanted = [[seat(3 * r), seat(3 * r + 1)], [seat(3 * r + 1), seat(3 * r + 2)]]
        answers = await race(
            *(c.hold_seats(event_id, wanted[i], buyer_id=f"b{r}-{i}") for i, c in enumerate(sides_)),
            lag=r % 3,
        )
        won = [i for i, a in enumerate(answers) if isinstance(a, sales_pb2.HoldResponse)]
        assert len(won) == 1, f"round {r}: {answers}"
        (w,) = won
        lost = answers[1 - w]
        winner = answers[w]
        assert isinstance(lost, SeatwiseError)
        assert isinstance(winner, sales_pb2.HoldResponse)
        assert lost.code is grpc.StatusCode.FAILED_PRECONDITION, lost
        assert refused_seats(lost) == [seat(3 * r + 1)]
        state = await read_state(redis_client, event_id)
        only_losers = (set(wanted[1 - w]) - set(wanted[w])).pop()
        assert ordinal(only_losers) not in state.seats, f"round {r}: the loser holds {only_losers}"
        order = await sides_[1 - w].commit_hold(winner.hold.hold_token, f"pay-{r}")
        acknowledged[order.order.order_id] = wanted[w]
        again = await outcome(sides_[1 - w].hold_seats(event_id, wanted[1 - w], buyer_id=f"b{r}-{1 - w}"))
        assert isinstance(again, SeatwiseError)
        assert refused_seats(again) == [seat(3 * r + 1)], again
    check_orders(await read_state(redis_client, event_id), acknowledged)


LIMIT = 3
AT_ONCE = 6  # requests of one place each, half over each transport


async def test_one_buyer_holding_over_both_transports_at_once_stays_within_its_limit(
    organizer: Api, clients: dict[str, SeatwiseClient], redis_client: AnyRedis, event_id: str
) -> None:
    """Seats and GA places, some buyers having bought a place first: exactly what the limit
    leaves is held, the rest refused RESOURCE_EXHAUSTED; the holds are released after."""
    await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, max_seats_per_buyer=LIMIT),
        metadata=organizer.metadata,
    )
    for r in range(ROUNDS):
        buyer = f"p{r}"
        first, second = sides(clients, r)
        bought = r % 2
        base = r * (AT_ONCE + 1)
        if bought:
            held = await second.hold_seats(event_id, [seat(base + AT_ONCE)], buyer_id=buyer)
            await first.commit_hold(held.hold.hold_token, f"pay-{r}")
        calls = [
            (first, second)[i % 2].hold_seats(event_id, [seat(base + i)], buyer_id=buyer)
            if i % 3
            else (first, second)[i % 2].hold_general_admission(event_id, GA, 1, buyer_id=buyer)
            for i in range(AT_ONCE)
        ]
        answers = await race(*calls)
        holds = [a for a in answers if isinstance(a, sales_pb2.HoldResponse)]
        refused = [a for a in answers if isinstance(a, SeatwiseError)]
        assert len(holds) == LIMIT - bought, f"round {r}: {len(holds)} holds with {bought} bought: {answers}"
        assert all(e.code is grpc.StatusCode.RESOURCE_EXHAUSTED for e in refused), refused
        state = await read_state(redis_client, event_id)
        assert state.buyers.get(buyer, 0) + state.bought.get(buyer, 0) == LIMIT
        assert state.bought.get(buyer, 0) == bought
        check_consistent(state)
        for i, h in enumerate(holds):
            await (first, second)[i % 2].release_hold(h.hold.hold_token)
