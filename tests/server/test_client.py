"""seatwise.client: the same results over unary calls and over sales sessions, and
retries only where they cannot apply an operation twice."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.message import Message
from redis.asyncio.cluster import RedisCluster
from seatwise import client as client_module
from seatwise.client import BACKOFF_MAX_S, SeatwiseClient, SeatwiseError, backoff_s, retry_safe
from seatwise.v1 import aftersale_pb2, sales_pb2, seasons_pb2

from holds.errors import StoreUnavailable
from holds.redis_client import AnyRedis
from holds.sales import Sales
from server.context import Stores
from server.servicers import sessions as session_servicer
from tests.api import Api
from tests.server.conftest import Streams
from tests.server.events import make_event

TRANSPORTS = {"unary": (0, True), "sessions": (2, True), "sessions-unbatched": (2, False)}
# Redis paused far longer than the 0.5 s deadline under test, yet shorter than the client's
# 60 s timeout there and the server's 30 s cap on a call's budget: were the deadline ignored,
# the call would outlive the pause (and succeed)
PAUSE_MS = 20_000
# how a call ends at its deadline: a unary call's server answers UNAVAILABLE just before the
# caller's deadline (server/deadlines.py), unless gRPC's own DEADLINE_EXCEEDED comes first
EXPIRED = {
    "unary": {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED},
    "sessions": {grpc.StatusCode.DEADLINE_EXCEEDED},
    "sessions-unbatched": {grpc.StatusCode.DEADLINE_EXCEEDED},
}


@pytest.fixture
async def stores(redis_url: str, redis_client: AnyRedis) -> AsyncIterator[Stores]:
    """The server's stores as `seatwise serve` opens them (server/app.py): no socket timeout per
    Redis read, each call bounded by its deadline instead; so a stalled Redis holds a call for as
    long as the deadline the client sent (the suite's default, 5 s per read, would end it sooner)."""
    opened = Stores.open(redis_url, read_timeout=False)
    yield opened
    await opened.close()


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
    assert calls == 2
    assert committed.replayed
    orders = await organizer.orders.ListOrders(
        sales_pb2.ListOrdersRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [o.order_id for o in orders.orders] == [committed.order.order_id]


async def test_a_plain_hold_caught_in_a_dropped_session_fails_while_a_commit_is_retried(
    organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await make_event(organizer)
    hold_seats, commit = Sales.hold_seats, Sales.commit
    hold_applied, commit_applied = asyncio.Event(), asyncio.Event()
    holds = commits = 0

    async def hold_applied_then_stuck(self: Sales, *args: Any, **kwargs: Any) -> Any:
        nonlocal holds
        holds += 1
        result = await hold_seats(self, *args, **kwargs)
        if holds == 2:  # the first made the hold to commit; the second is caught in the drop
            hold_applied.set()
            await asyncio.Event().wait()
        return result

    async def commit_applied_then_stuck(self: Sales, *args: Any, **kwargs: Any) -> Any:
        nonlocal commits
        commits += 1
        result = await commit(self, *args, **kwargs)
        if commits == 1:
            commit_applied.set()
            await asyncio.Event().wait()
        return result

    monkeypatch.setattr(Sales, "hold_seats", hold_applied_then_stuck)
    monkeypatch.setattr(Sales, "commit", commit_applied_then_stuck)
    async with SeatwiseClient(organizer.target, key, sessions=1) as c:
        token = (await c.hold_seats(event_id, ["r0-0"])).hold.hold_token
        # one turn: both go out over the one session, and both are applied but unanswered
        plain_hold = asyncio.create_task(c.hold_seats(event_id, ["r0-1"]))
        paying = asyncio.create_task(c.commit_hold(token, "pay-1"))
        await asyncio.wait_for(asyncio.gather(hold_applied.wait(), commit_applied.wait()), timeout=30)
        c._sessions[0]._call.cancel()  # the connection drops with both in flight
        error = await _failure(asyncio.wait_for(plain_hold, timeout=30))
        committed = await asyncio.wait_for(paying, timeout=30)
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert "may or may not have been applied" in error.message
    assert holds == 2  # the caught hold was sent once: a retry could have held seats twice
    assert commits == 2
    assert committed.replayed
    orders = await organizer.orders.ListOrders(
        sales_pb2.ListOrdersRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [o.order_id for o in orders.orders] == [committed.order.order_id]


@asynccontextmanager
async def _writes_paused(redis_client: AnyRedis, redis_url: str) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Every Redis primary refuses to run writes and scripts (``CLIENT PAUSE WRITE``: reads and
    ``CLIENT UNPAUSE`` still pass) for far longer than any deadline below; yields one probe per
    primary, a PUBLISH that stays unanswered while that pause lasts. Unpaused on the way out."""
    urls = [redis_url]
    if isinstance(redis_client, RedisCluster):
        urls = [f"redis://{n.host}:{n.port}" for n in redis_client.get_primaries()]
    nodes: list[AnyRedis] = [aioredis.Redis.from_url(url) for url in urls]
    probes: list[AnyRedis] = [aioredis.Redis.from_url(url) for url in urls]
    tasks: list[asyncio.Task[Any]] = []
    try:
        for node in nodes:
            await node.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
        for probe in probes:
            await probe.ping()  # connected before the probe proper, so the PUBLISH is what waits
            tasks.append(asyncio.create_task(probe.publish("probe", "x")))
        yield tasks
    finally:
        for node in nodes:
            await node.execute_command("CLIENT", "UNPAUSE")
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in (*nodes, *probes):
            await conn.aclose()


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_the_client_deadline_holds(
    transport: str, organizer: Api, redis_client: AnyRedis, redis_url: str
) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    sessions, batching = TRANSPORTS[transport]
    event_id = await make_event(organizer)
    async with SeatwiseClient(
        organizer.target, key, sessions=sessions, connections=2, batching=batching, timeout_s=60
    ) as c:
        await c.hold_seats(event_id, ["r0-0"])  # connected, sessions open
        async with _writes_paused(redis_client, redis_url) as probes:
            # the hold's script waits on Redis: only deadline_s can end the call before the pause does
            error = await _failure(c.hold_seats(event_id, ["r0-1"], deadline_s=0.5))
            assert error.code in EXPIRED[transport], error
            assert not any(p.done() for p in probes)  # it gave up while Redis was still paused
        held = await c.hold_seats(event_id, ["r0-2"])  # the client goes on
    assert list(held.hold.seat_ids) == ["r0-2"]


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


# (op, request, whether a resend cannot apply it twice)
RETRY_SAFE_CASES: list[tuple[str, Message, bool]] = [
    ("commit_hold", sales_pb2.CommitHoldRequest(hold_token="h", idempotency_key="pay-1"), True),
    ("commit_season_hold", seasons_pb2.CommitSeasonHoldRequest(idempotency_key="pay-1"), True),
    ("commit_listing", aftersale_pb2.CommitListingRequest(hold_token="h", resale_key="r-1"), True),
    ("extend_hold", sales_pb2.ExtendHoldRequest(hold_token="h"), True),
    ("get_hold", sales_pb2.GetHoldRequest(hold_token="h"), True),
    ("extend_season_hold", seasons_pb2.ExtendSeasonHoldRequest(season_hold_token="s"), True),
    ("get_season_hold", seasons_pb2.SeasonHoldRequest(season_hold_token="s"), True),
    ("hold_seats", sales_pb2.HoldSeatsRequest(event_id="e", seat_ids=["a"]), False),
    ("hold_seats", sales_pb2.HoldSeatsRequest(event_id="e", seat_ids=["a"], request_id="r-1"), True),
    ("hold_best_available", sales_pb2.HoldBestAvailableRequest(event_id="e", quantity=2), False),
    ("hold_best_available", sales_pb2.HoldBestAvailableRequest(quantity=2, request_id="r-1"), True),
    ("hold_general_admission", sales_pb2.HoldGeneralAdmissionRequest(area_id="f", quantity=1), False),
    ("hold_general_admission", sales_pb2.HoldGeneralAdmissionRequest(quantity=1, request_id="r"), True),
    ("hold_season_seats", seasons_pb2.HoldSeasonSeatsRequest(season_id="s", seat_ids=["a"]), False),
    ("hold_season_seats", seasons_pb2.HoldSeasonSeatsRequest(season_id="s", request_id="r-1"), True),
    # a listing's hold has no request id: a lost answer may have held the listing
    ("hold_listing", aftersale_pb2.HoldListingRequest(listing_id="l"), False),
    # a release sent again may release seats re-held since under the same token
    ("release_hold", sales_pb2.ReleaseHoldRequest(hold_token="h", seat_ids=["a"]), False),
    ("release_season_hold", seasons_pb2.SeasonHoldRequest(season_hold_token="s"), False),
]


@pytest.mark.parametrize(
    ("op", "request_", "safe"),
    RETRY_SAFE_CASES,
    ids=[f"{op}-{'retried' if safe else 'never'}" for op, _, safe in RETRY_SAFE_CASES],
)
def test_retry_safe_allows_only_what_cannot_apply_twice(op: str, request_: Message, safe: bool) -> None:
    assert retry_safe(op, request_) is safe


def test_retry_safe_has_a_case_for_every_operation() -> None:
    # a new operation must be classified here, not retried (or not) by accident
    assert {op for op, _, _ in RETRY_SAFE_CASES} == set(client_module._UNARY)


def _record_pause_bounds(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The upper bound of every backoff pause the client draws from now on; each pause is 0."""
    bounds: list[float] = []

    class NoJitter:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            bounds.append(high)
            return low

    monkeypatch.setattr(client_module, "random", NoJitter)
    return bounds


async def test_a_failing_sessions_reconnect_pauses_grow_and_stop_at_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bounds = _record_pause_bounds(monkeypatch)
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{closed.getsockname()[1]}"
        async with SeatwiseClient(target, "sw_x", sessions=1, max_attempts=1) as c:
            session = c._sessions[0]
            for failures in range(10):
                assert session.failures == failures
                error = await _failure(c.get_hold("h", deadline_s=30))
                assert error.code is grpc.StatusCode.UNAVAILABLE
                assert session._reader is not None
                await asyncio.wait_for(session._reader, timeout=30)  # it saw the stream end: +1 failure
    # the first attempt had no failure behind it; then doubling from 50 ms, capped at 2 s
    assert bounds == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])


def test_the_backoff_stays_at_its_cap_however_long_the_failures_last() -> None:
    assert [backoff_s(n) for n in (7, 8, 100, 1025, 10**6)] == [BACKOFF_MAX_S] * 5


async def test_a_session_reconnects_after_a_long_run_of_failures(
    organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await make_event(organizer)
    bounds = _record_pause_bounds(monkeypatch)
    async with SeatwiseClient(organizer.target, key, sessions=1) as c:
        # a long outage under steady traffic: each attempt's stream ended unanswered (2**1999
        # does not fit in a float: without the capped exponent this raised OverflowError forever)
        c._sessions[0].failures = 2000
        held = await c.hold_seats(event_id, ["r0-0"], deadline_s=30)
        assert c._sessions[0].failures == 0  # answered: the backoff starts over
    assert list(held.hold.seat_ids) == ["r0-0"]
    assert bounds == [BACKOFF_MAX_S]


@pytest.mark.parametrize(("connections", "peers"), [(1, 1), (2, 2)])
async def test_sessions_are_spread_over_distinct_connections(
    connections: int, peers: int, organizer: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await make_event(organizer, ga=20)
    seen: list[str] = []

    class Recorded(session_servicer.SessionStream):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            seen.append(args[-1].peer())  # its context: the client's address and port

    monkeypatch.setattr(session_servicer, "SessionStream", Recorded)
    async with SeatwiseClient(organizer.target, key, sessions=2, connections=connections) as c:
        for _ in range(2):  # two turns: one per session
            await c.hold_general_admission(event_id, "floor", 1)
    assert len(seen) == 2
    assert len(set(seen)) == peers  # (1, 1): the observable does tell shared connections apart
