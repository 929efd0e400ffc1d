"""seatwise.client: the same results over unary calls and over sales sessions, and
retries only where they cannot apply an operation twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import sales_pb2

from holds.errors import StoreUnavailable
from holds.sales import Sales
from tests.api import Api
from tests.server.conftest import Streams
from tests.server.test_sessions import make_event

TRANSPORTS = {"unary": (0, True), "sessions": (2, True), "sessions-unbatched": (2, False)}


@pytest.fixture(params=sorted(TRANSPORTS))
async def client(request: pytest.FixtureRequest, organizer: Api) -> AsyncIterator[SeatwiseClient]:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    sessions, batching = TRANSPORTS[request.param]
    async with SeatwiseClient(
        organizer.target, key, sessions=sessions, connections=2, batching=batching
    ) as c:
        yield c


async def _failure(call: Any) -> SeatwiseError:
    with pytest.raises(SeatwiseError) as err:
        await call
    return err.value


async def _tour(c: SeatwiseClient, event_id: str) -> list[Any]:
    """Every operation once, plus its typical failures; what each returned."""
    out: list[Any] = []
    held = await c.hold_seats(event_id, ["r0-0", "r0-1"], buyer_id="b1")
    token = held.hold.hold_token
    out.append(sorted(held.hold.seat_ids))
    out.append((await c.get_hold(token)).hold.seat_ids == held.hold.seat_ids)
    best = await c.hold_best_available(event_id, 2, categories=["back"], hold_token=token, buyer_id="b1")
    out.append(len(best.hold.seat_ids))
    ga = await c.hold_general_admission(event_id, "floor", 2, hold_token=token, buyer_id="b1")
    out.append(dict(ga.hold.general_admission))
    out.append((await c.extend_hold(token)).hold.hold_token == token)
    out.append((await c.release_hold(token, seat_ids=["r0-0"])).remaining)
    committed = await c.commit_hold(token, "pay-1", buyer=sales_pb2.BuyerDetails(name="Ann"))
    replay = await c.commit_hold(token, "pay-1")
    out.append(
        (committed.replayed, replay.replayed, replay.order == committed.order, len(replay.order.tickets))
    )
    for failing in (
        c.hold_seats(event_id, ["r0-1", "r0-2"]),  # r0-1 is sold
        c.hold_seats(event_id, ["nope"]),
        c.hold_seats("ev_nope", ["r0-0"]),
        c.get_hold("garbage"),
        c.commit_hold(token, "pay-2"),
        c.hold_general_admission(event_id, "floor", 9),
    ):
        error = await _failure(failing)
        out.append(
            (
                error.code,
                error.message.replace(event_id, "<event>").replace(committed.order.order_id, "<order>"),
                [d.type_url for d in error.details],
            )
        )
    return out


async def test_both_transports_give_the_same_results(organizer: Api) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    results = {}
    for name, (sessions, batching) in TRANSPORTS.items():
        event_id = await make_event(organizer)
        async with SeatwiseClient(organizer.target, key, sessions=sessions, batching=batching) as c:
            assert c.uses_sessions == bool(sessions)
            results[name] = await _tour(c, event_id)
    assert results["unary"] == results["sessions"] == results["sessions-unbatched"]
    assert results["unary"][6] == (False, True, True, 5)
    assert results["unary"][7][0] is grpc.StatusCode.FAILED_PRECONDITION


async def test_a_plain_hold_is_never_retried(
    client: SeatwiseClient, organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await make_event(organizer)
    calls = 0

    async def unavailable(self: Sales, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        raise StoreUnavailable("Redis went away")

    monkeypatch.setattr(Sales, "hold_seats", unavailable)
    error = await _failure(client.hold_seats(event_id, ["r0-0"]))
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert calls == 1


async def test_a_commit_answered_unavailable_is_retried_into_one_order(
    client: SeatwiseClient, organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await make_event(organizer)
    token = (await client.hold_seats(event_id, ["r0-0"])).hold.hold_token
    original = Sales.commit
    calls = 0

    async def applied_then_lost(self: Sales, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await original(self, *args, **kwargs)
        if calls == 1:
            raise StoreUnavailable("the reply was lost")  # applied, but the client never heard
        return result

    monkeypatch.setattr(Sales, "commit", applied_then_lost)
    committed = await client.commit_hold(token, "pay-1")
    assert calls == 2
    assert committed.replayed
    orders = await organizer.orders.ListOrders(
        sales_pb2.ListOrdersRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [o.order_id for o in orders.orders] == [committed.order.order_id]


async def test_a_commit_caught_in_a_dropped_session_is_retried_into_one_order(
    organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await make_event(organizer)
    original = Sales.commit
    applied = asyncio.Event()
    calls = 0

    async def applied_then_stuck(self: Sales, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await original(self, *args, **kwargs)
        if calls == 1:
            applied.set()
            await asyncio.Event().wait()  # the stream dies before the answer is sent
        return result

    monkeypatch.setattr(Sales, "commit", applied_then_stuck)
    async with SeatwiseClient(organizer.target, key, sessions=1) as c:
        token = (await c.hold_seats(event_id, ["r0-0"])).hold.hold_token
        commit = asyncio.create_task(c.commit_hold(token, "pay-1"))
        await asyncio.wait_for(applied.wait(), timeout=30)
        c._sessions[0]._call.cancel()  # the connection drops mid-flight
        committed = await asyncio.wait_for(commit, timeout=30)
        # a plain hold in the next dropped session is not retried: it fails UNAVAILABLE
    assert calls == 2
    assert committed.replayed
    orders = await organizer.orders.ListOrders(
        sales_pb2.ListOrdersRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [o.order_id for o in orders.orders] == [committed.order.order_id]


async def test_the_client_deadline_holds(
    client: SeatwiseClient, organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await make_event(organizer)
    token = (await client.hold_seats(event_id, ["r0-0"])).hold.hold_token

    async def stuck(self: Sales, *args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()

    monkeypatch.setattr(Sales, "get_hold", stuck)
    error = await _failure(client.get_hold(token, deadline_s=0.3))
    assert error.code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    assert (await client.extend_hold(token)).hold.hold_token == token  # the client goes on


async def test_the_operations_of_one_turn_go_over_one_session_and_the_next_turns_over_the_next(
    organizer: Api, streams: Streams
) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await make_event(organizer, ga=20)
    async with SeatwiseClient(organizer.target, key, sessions=3, connections=3) as c:
        for n in (3, 1, 2):  # each gather starts its n holds in one event-loop turn
            held = await asyncio.gather(*(c.hold_general_admission(event_id, "floor", 1) for _ in range(n)))
            assert [dict(h.hold.general_admission) for h in held] == [{"floor": 1}] * n
    # three server-side streams, one per session, each read one turn's holds
    assert sorted(s.read for s in streams) == [1, 2, 3]


async def test_a_turn_passes_over_a_session_that_is_reconnecting(organizer: Api, streams: Streams) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await make_event(organizer, ga=20)
    async with SeatwiseClient(organizer.target, key, sessions=3, connections=3) as c:
        c._sessions[1].failures = 1  # its stream ended: it backs off before its next attempt
        for n in (3, 1, 2):
            await asyncio.gather(*(c.hold_general_admission(event_id, "floor", 1) for _ in range(n)))
        assert c._sessions[1].failures == 1  # never used, so never reset
    # the turns went to sessions 0, 2, 0: two server-side streams
    assert sorted(s.read for s in streams) == [1, 5]
