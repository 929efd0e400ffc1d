"""Sales sessions (SalesService.Session) end to end: the unary RPCs' replies and
errors per message, out-of-order answers, budgets, overload, caps and
backpressure, hostile messages, revocation and graceful shutdown. Runs on a
single Redis and on a cluster (tests/server/conftest.py)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from seatwise.v1 import events_pb2, sales_pb2, session_pb2, tenancy_pb2

from holds.errors import InvalidRequest
from holds.redis_client import AnyRedis
from holds.sales import Sales
from server.app import create_server, stop_server
from server.config import Config
from server.context import Stores
from server.deadlines import DEFAULT_BUDGET_S, call_budget
from server.servicers.sessions import BATCH_HEADER, STOPPING_MESSAGE, _budget_s
from tests.api import Api, status_of, without_request_info
from tests.conftest import ADMIN_KEY
from tests.holds.factories import check_consistent, read_state
from tests.server.conftest import Streams
from tests.server.events import make_event

METHOD = "/seatwise.v1.SalesService/Session"


async def until(predicate: Callable[[], bool], what: str, within_s: float = 30.0) -> None:
    """Wait for observed progress (no timing is asserted; the bound only stops a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


class Session:
    """One open session of ``api``'s key: write requests, read answers."""

    def __init__(self, api: Api) -> None:
        self.call = api.sessions.Session(metadata=api.metadata)
        self._ids = (f"c{n}" for n in range(1_000_000))
        self._writing = asyncio.Lock()  # a call takes one write at a time

    def next_id(self) -> str:
        return next(self._ids)

    async def send(self, correlation_id: str, budget_ms: int = 0, **op: Message) -> None:
        request = session_pb2.SessionRequest(correlation_id=correlation_id, **op)  # type: ignore[arg-type]
        if budget_ms:
            request.budget.FromMilliseconds(budget_ms)
        async with self._writing:
            await self.call.write(request)

    async def read(self) -> session_pb2.SessionResponse:
        answer = await asyncio.wait_for(self.call.read(), timeout=30)
        assert answer is not grpc.aio.EOF, "the stream ended"
        return answer  # type: ignore[return-value]

    async def ask(self, **op: Message) -> session_pb2.SessionResponse:
        """One operation alone in flight: its answer."""
        correlation_id = self.next_id()
        await self.send(correlation_id, **op)
        answer = await self.read()
        assert answer.correlation_id == correlation_id
        return answer


def result_of(answer: session_pb2.SessionResponse) -> Message:
    kind = answer.WhichOneof("result")
    assert kind is not None, answer
    return getattr(answer, kind)  # type: ignore[no-any-return]


UNARY = {
    "hold_seats": ("holds", "HoldSeats"),
    "hold_best_available": ("holds", "HoldBestAvailable"),
    "hold_general_admission": ("holds", "HoldGeneralAdmission"),
    "extend_hold": ("holds", "ExtendHold"),
    "release_hold": ("holds", "ReleaseHold"),
    "get_hold": ("holds", "GetHold"),
    "commit_hold": ("orders", "CommitHold"),
}


async def unary(api: Api, op: str, request: Message) -> Message:
    """The unary RPC's reply, or the rich status it failed with."""
    service, method = UNARY[op]
    try:
        return await getattr(getattr(api, service), method)(request, metadata=api.metadata)  # type: ignore[no-any-return]
    except grpc.aio.AioRpcError as exc:
        return status_of(exc)


@pytest.fixture
async def session(organizer: Api) -> AsyncIterator[Session]:
    s = Session(organizer)
    yield s
    s.call.cancel()


class Gate:
    """Holds every GetHold (in holds.sales) until opened."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waiting = 0


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate()
    original = Sales.get_hold

    async def get_hold(self: Sales, tenant: str, token: str) -> Any:
        g.waiting += 1
        await g.opened.wait()
        return await original(self, tenant, token)

    monkeypatch.setattr(Sales, "get_hold", get_hold)
    yield g
    g.opened.set()


def get_hold(token: str) -> dict[str, Message]:
    return {"get_hold": sales_pb2.GetHoldRequest(hold_token=token)}


# -- the unary path's replies and errors, per message --------------------------------------------


async def test_every_error_is_the_unary_status(organizer: Api, session: Session) -> None:
    event_id = await make_event(organizer)
    held = await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-1"]))
    released = await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-5"]))
    await session.ask(release_hold=sales_pb2.ReleaseHoldRequest(hold_token=released.hold.hold.hold_token))
    gone = released.hold.hold.hold_token
    ga = sales_pb2.HoldGeneralAdmissionRequest
    best = sales_pb2.HoldBestAvailableRequest
    twice = [f"r1-{n}" for n in range(6)] * 2
    cases: list[tuple[str, Message]] = [
        ("hold_seats", sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0", "r0-1"])),
        ("hold_seats", sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["nope"])),
        ("hold_seats", sales_pb2.HoldSeatsRequest(event_id="ev_nope", seat_ids=["r0-0"])),
        ("hold_seats", sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=twice)),
        ("hold_best_available", best(event_id=event_id, quantity=0)),
        ("hold_best_available", best(event_id=event_id, quantity=2, adjacency=9)),
        ("hold_general_admission", ga(event_id=event_id, area_id="floor", quantity=6)),
        ("hold_general_admission", ga(event_id=event_id, area_id="nope", quantity=1)),
        ("extend_hold", sales_pb2.ExtendHoldRequest(hold_token="garbage")),
        ("extend_hold", sales_pb2.ExtendHoldRequest(hold_token=gone)),
        ("release_hold", sales_pb2.ReleaseHoldRequest()),
        ("get_hold", sales_pb2.GetHoldRequest(hold_token=gone)),
        ("commit_hold", sales_pb2.CommitHoldRequest(hold_token=held.hold.hold.hold_token)),
        ("commit_hold", sales_pb2.CommitHoldRequest(hold_token=gone, idempotency_key="k")),
    ]  # fmt: skip
    seen = set()
    for op, request in cases:
        expected = await unary(organizer, op, request)
        assert isinstance(expected, status_pb2.Status), (op, expected)
        answer = await session.ask(**{op: request})
        assert answer.WhichOneof("result") == "error"
        assert without_request_info(answer.error) == without_request_info(expected), (op, answer.error)
        seen.add(expected.code)
    assert {code_pb2.FAILED_PRECONDITION, code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND} <= seen
    assert code_pb2.ABORTED in seen or code_pb2.RESOURCE_EXHAUSTED in seen


async def test_every_reply_is_the_unary_reply(organizer: Api, session: Session) -> None:
    event_id = await make_event(organizer)
    hold = result_of(
        await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0", "r0-1"]))
    )
    assert isinstance(hold, sales_pb2.HoldResponse)
    token = hold.hold.hold_token
    assert sorted(hold.hold.seat_ids) == ["r0-0", "r0-1"]
    assert result_of(await session.ask(**get_hold(token))) == await unary(
        organizer, "get_hold", get_hold(token)["get_hold"]
    )
    best = result_of(
        await session.ask(
            hold_best_available=sales_pb2.HoldBestAvailableRequest(
                event_id=event_id, quantity=2, hold_token=token
            )
        )
    )
    assert isinstance(best, sales_pb2.HoldResponse)
    assert len(best.hold.seat_ids) == 4
    ga = result_of(
        await session.ask(
            hold_general_admission=sales_pb2.HoldGeneralAdmissionRequest(
                event_id=event_id, area_id="floor", quantity=2, hold_token=token
            )
        )
    )
    assert isinstance(ga, sales_pb2.HoldResponse)
    assert ga.hold.general_admission["floor"] == 2
    extended = result_of(await session.ask(extend_hold=sales_pb2.ExtendHoldRequest(hold_token=token)))
    assert isinstance(extended, sales_pb2.HoldResponse)
    assert extended.hold.expires_at.ToMilliseconds() >= hold.hold.expires_at.ToMilliseconds()
    released = result_of(
        await session.ask(release_hold=sales_pb2.ReleaseHoldRequest(hold_token=token, seat_ids=["r0-0"]))
    )
    assert released == sales_pb2.ReleaseHoldResponse(remaining=5)
    commit = sales_pb2.CommitHoldRequest(
        hold_token=token, idempotency_key="pay-1", buyer=sales_pb2.BuyerDetails(name="Ann")
    )
    first = result_of(await session.ask(commit_hold=commit))
    assert isinstance(first, sales_pb2.CommitHoldResponse)
    assert not first.replayed
    replay_unary = await unary(organizer, "commit_hold", commit)
    replay_session = result_of(await session.ask(commit_hold=commit))
    assert replay_session == replay_unary
    assert isinstance(replay_session, sales_pb2.CommitHoldResponse)
    assert replay_session.replayed
    assert replay_session.order == first.order


async def test_answers_come_in_completion_order(organizer: Api, session: Session, gate: Gate) -> None:
    event_id = await make_event(organizer)
    token = (
        await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
    ).hold.hold.hold_token
    await session.send("slow", **get_hold(token))
    await until(lambda: gate.waiting == 1, "the GetHold is in flight")
    await session.send("fast", extend_hold=sales_pb2.ExtendHoldRequest(hold_token=token))
    first = await session.read()
    assert first.correlation_id == "fast"
    assert first.WhichOneof("result") == "hold"
    gate.opened.set()
    second = await session.read()
    assert second.correlation_id == "slow"
    assert second.hold.hold.hold_token == token


async def test_a_message_over_its_budget_is_deadline_exceeded(
    organizer: Api, session: Session, gate: Gate
) -> None:
    event_id = await make_event(organizer)
    token = (
        await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
    ).hold.hold.hold_token
    await session.send("late", budget_ms=100, **get_hold(token))
    answer = await session.read()
    assert answer.correlation_id == "late"
    assert answer.error.code == code_pb2.DEADLINE_EXCEEDED
    # the stream goes on
    assert (await session.ask(extend_hold=sales_pb2.ExtendHoldRequest(hold_token=token))).WhichOneof(
        "result"
    ) == "hold"
    bad = await session.ask(budget=Duration(seconds=-1), **get_hold(token))
    assert bad.error.code == code_pb2.INVALID_ARGUMENT
    assert "budget" in bad.error.message


async def test_overload_is_answered_per_message(organizer: Api, session: Session, stores: Stores) -> None:
    event_id = await make_event(organizer)
    token = (
        await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
    ).hold.hold.hold_token
    stores.admission.max_inflight = 0  # every sheddable call is shed
    request = sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-1"])
    shed = await session.ask(hold_seats=request)
    assert shed.error.code == code_pb2.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in shed.error.details)
    assert without_request_info(shed.error) == without_request_info(
        await unary(organizer, "hold_seats", request)
    )
    # a buyer who holds seats can still pay
    committed = await session.ask(
        commit_hold=sales_pb2.CommitHoldRequest(hold_token=token, idempotency_key="k")
    )
    assert committed.WhichOneof("result") == "commit"
    stores.admission.max_inflight = 128
    assert (await session.ask(hold_seats=request)).WhichOneof("result") == "hold"


async def test_correlation_ids_are_checked(organizer: Api, session: Session, gate: Gate) -> None:
    event_id = await make_event(organizer)
    token = (
        await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
    ).hold.hold.hold_token
    await session.send("same", **get_hold(token))
    await until(lambda: gate.waiting == 1, "the first GetHold is in flight")
    await session.send("same", **get_hold(token))
    dup = await session.read()
    assert dup.correlation_id == "same"
    assert dup.error.code == code_pb2.INVALID_ARGUMENT
    assert "correlation_id" in dup.error.message
    gate.opened.set()
    original = await session.read()
    assert original.correlation_id == "same"
    assert original.WhichOneof("result") == "hold"
    # answered: the id may be used again
    assert (await session.ask(**get_hold(token))).WhichOneof("result") == "hold"
    for bad in ("", "x" * 129):
        await session.send(bad, **get_hold(token))
        answer = await session.read()
        assert answer.correlation_id == bad
        assert answer.error.code == code_pb2.INVALID_ARGUMENT
        assert "correlation_id" in answer.error.message


def _string_field(number: int, value: bytes) -> bytes:
    assert len(value) < 128
    return bytes([number << 3 | 2, len(value)]) + value


async def test_garbage_and_unknown_operations(organizer: Api) -> None:
    event_id = await make_event(organizer)
    call = organizer.channel.stream_stream(METHOD)(metadata=organizer.metadata)

    async def answer() -> session_pb2.SessionResponse:
        raw = await asyncio.wait_for(call.read(), timeout=30)
        assert raw is not grpc.aio.EOF
        return session_pb2.SessionResponse.FromString(raw)

    unknown = _string_field(1, b"u1") + _string_field(9, b"from the future")
    await call.write(unknown)
    a = await answer()
    assert (a.correlation_id, a.error.code) == ("u1", code_pb2.INVALID_ARGUMENT)
    assert "op" in a.error.message
    none = session_pb2.SessionRequest(correlation_id="n1").SerializeToString()
    await call.write(none)
    a = await answer()
    assert (a.correlation_id, a.error.code) == ("n1", code_pb2.INVALID_ARGUMENT)
    invalid_utf8 = _string_field(1, b"bad-utf8") + _string_field(10, _string_field(1, b"\xff\xfe"))
    await call.write(invalid_utf8)
    a = await answer()
    assert (a.correlation_id, a.error.code) == ("bad-utf8", code_pb2.INVALID_ARGUMENT)
    assert "not a valid message" in a.error.message
    ok = session_pb2.SessionRequest(
        correlation_id="ok", hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"])
    )
    await call.write(ok.SerializeToString())
    a = await answer()
    assert (a.correlation_id, a.WhichOneof("result")) == ("ok", "hold")
    await call.write(b"\xff\xff\xff\xff")  # not even the correlation id can be read: the stream ends
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call.read(), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- caps and backpressure -----------------------------------------------------------------------


async def test_a_stream_at_its_cap_stops_reading(
    organizer: Api, session: Session, gate: Gate, stores: Stores, streams: Streams
) -> None:
    stores.admission.max_session_stream_inflight = 4
    event_id = await make_event(organizer)
    token = (
        await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
    ).hold.hold.hold_token
    for n in range(24):
        await session.send(f"g{n}", **get_hold(token))  # small: gRPC buffers them all
    (stream,) = streams
    await until(lambda: gate.waiting == 4, "four messages in flight")
    await asyncio.sleep(0.2)  # nothing more is read while those four are unanswered
    assert stream.read == 5  # the hold, then four GetHolds
    assert gate.waiting == 4
    gate.opened.set()
    answers = [await session.read() for _ in range(24)]
    assert sorted(a.correlation_id for a in answers) == sorted(f"g{n}" for n in range(24))
    assert all(a.WhichOneof("result") == "hold" for a in answers)
    assert stream.max_outstanding <= 4


async def test_the_process_cap_spans_streams(
    organizer: Api, gate: Gate, stores: Stores, streams: Streams
) -> None:
    stores.admission.max_session_inflight = 3
    event_id = await make_event(organizer)
    hold = await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]), metadata=organizer.metadata
    )
    token = hold.hold.hold_token
    a, b = Session(organizer), Session(organizer)
    for s in (a, b):
        for n in range(3):
            await s.send(f"m{n}", **get_hold(token))
    await until(lambda: gate.waiting == 3, "three messages in flight")
    await asyncio.sleep(0.2)
    assert sum(s.read for s in streams) == 3
    gate.opened.set()
    for s in (a, b):
        got = sorted([(await s.read()).correlation_id for _ in range(3)])
        assert got == ["m0", "m1", "m2"]
        s.call.cancel()


async def test_a_client_that_never_reads_is_held_back(
    organizer: Api, stores: Stores, streams: Streams
) -> None:
    """Answers nobody reads fill gRPC's flow-control window; then the server stops
    reading and the client's writes stop completing: memory stays bounded."""
    stores.admission.max_session_stream_inflight = 8
    event_id = await make_event(organizer)
    hold = await organizer.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]), metadata=organizer.metadata
    )
    request = session_pb2.SessionRequest(correlation_id="x", **get_hold(hold.hold.hold_token))
    # no BDP probing: the flow-control windows stay at their initial size
    small = Api(organizer.target, None)
    await small.channel.close()
    small.channel = grpc.aio.insecure_channel(organizer.target, options=[("grpc.http2.bdp_probe", 0)])
    small.metadata = organizer.metadata
    small.sessions = type(organizer.sessions)(small.channel)
    session = Session(small)
    flood = 200_000
    written = 0

    async def write() -> None:
        nonlocal written
        for n in range(flood):
            request.correlation_id = f"f{n}"
            await session.call.write(request)
            written = n + 1

    writer = asyncio.create_task(write())
    await until(lambda: len(streams) == 1 and streams[0].read > 100, "the server reads")
    (stream,) = streams
    last = -1
    while stream.read != last:  # until the server stops reading (observed, not timed)
        last = stream.read
        await asyncio.sleep(0.5)
    assert not writer.done()
    assert written < flood
    assert stream.max_outstanding <= 8
    assert stream.outstanding <= 8
    writer.cancel()
    session.call.cancel()
    await small.channel.close()


# -- the key, shutdown ---------------------------------------------------------------------------


async def test_a_revoked_key_ends_its_sessions(organizer: Api) -> None:
    event_id = await make_event(organizer)
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    async with Api(organizer.target, created.api_key) as shop:
        session = Session(shop)
        held = await session.ask(hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
        assert held.WhichOneof("result") == "hold"
        await organizer.tenants.RevokeApiKey(
            tenancy_pb2.RevokeApiKeyRequest(key_id=created.key.key_id), metadata=organizer.metadata
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:  # quiet: ends on the next check
            await asyncio.wait_for(session.call.read(), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_session_needs_a_sales_key(server: str) -> None:
    async with Api(server, "sw_nope_nope") as anonymous:
        session = Session(anonymous)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(session.call.read(), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_graceful_shutdown_answers_then_ends_unavailable(
    stores: Stores, tmp_path: Path, gate: Gate
) -> None:
    await stores.tenants.put_bootstrap_key(ADMIN_KEY)
    grpc_server, port, _ = create_server(Config(port=0, data_dir=tmp_path, admin_key=ADMIN_KEY), stores)
    await grpc_server.start()
    stopping: asyncio.Task[None] | None = None
    try:
        async with Api(f"127.0.0.1:{port}", ADMIN_KEY) as admin:
            key = await admin.new_tenant_key("acme")
            async with Api(admin.target, key) as api:
                event_id = await make_event(api)
                session = Session(api)
                held = await session.ask(
                    hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"])
                )
                token = held.hold.hold.hold_token
                await session.send("in-flight", **get_hold(token))
                await until(lambda: gate.waiting == 1, "the GetHold is in flight")
                stopping = asyncio.create_task(stop_server(grpc_server, stores, 10.0))
                await until(lambda: stores.stopping.is_set(), "the server is stopping")
                gate.opened.set()
                answer = await session.read()
                assert answer.correlation_id == "in-flight"
                assert answer.WhichOneof("result") == "hold"
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await asyncio.wait_for(session.call.read(), timeout=30)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        if stopping is None:
            await grpc_server.stop(None)
        else:
            await stopping


async def test_a_session_opened_while_the_server_stops_is_sent_elsewhere(
    organizer: Api, stores: Stores
) -> None:
    stores.stopping.set()  # stop_server's first step, before gRPC itself refuses new calls
    try:
        session = Session(organizer)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(session.call.read(), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details() == STOPPING_MESSAGE
    finally:
        stores.stopping.clear()


class _Deadline:
    """What ``_budget_s`` reads of a stream's context: the time left before its deadline."""

    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining


def _with_budget(seconds: float | None) -> session_pb2.SessionRequest:
    request = session_pb2.SessionRequest(correlation_id="c")
    if seconds is not None:
        request.budget.FromNanoseconds(int(seconds * 1e9))
    return request


@pytest.mark.parametrize(
    ("asked_s", "stream_left_s", "budget_s"),
    [
        (None, None, call_budget(DEFAULT_BUDGET_S)),  # unset: the default
        (120.0, None, call_budget(DEFAULT_BUDGET_S)),  # capped at the default
        (2.0, None, call_budget(2.0)),
        (20.0, 1.5, call_budget(1.5)),  # within the stream's own deadline
        (None, 0.4, call_budget(0.4)),
    ],
)
def test_a_messages_budget_is_its_own_within_the_streams_deadline(
    asked_s: float | None, stream_left_s: float | None, budget_s: float
) -> None:
    context: Any = _Deadline(stream_left_s)
    assert _budget_s(_with_budget(asked_s), context) == pytest.approx(budget_s)


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_budget_that_is_not_positive_is_refused(seconds: float) -> None:
    context: Any = _Deadline(None)
    with pytest.raises(InvalidRequest) as err:
        _budget_s(_with_budget(seconds), context)
    assert err.value.field == "budget"


# -- sessions and unary calls on one event ---------------------------------------------------------


async def _buyer(
    n: int, rng: random.Random, event_id: str, call: Callable[[str, Message], Awaitable[Message]]
) -> int:
    """Hold two adjacent seats or a GA place, then commit; the tickets bought."""
    if rng.random() < 0.2:
        held = await call(
            "hold_general_admission",
            sales_pb2.HoldGeneralAdmissionRequest(event_id=event_id, area_id="floor", quantity=1),
        )
    else:
        row, seat = rng.randrange(4), rng.randrange(9)
        request = sales_pb2.HoldSeatsRequest(
            event_id=event_id, seat_ids=[f"r{row}-{seat}", f"r{row}-{seat + 1}"]
        )
        held = await call("hold_seats", request)
    if not isinstance(held, sales_pb2.HoldResponse):
        return 0
    commit = sales_pb2.CommitHoldRequest(hold_token=held.hold.hold_token, idempotency_key=f"b{n}")
    committed = await call("commit_hold", commit)
    if not isinstance(committed, sales_pb2.CommitHoldResponse):
        return 0
    return len(committed.order.tickets)


@pytest.mark.slow
async def test_sessions_and_unary_calls_on_one_event_never_sell_a_seat_twice(
    organizer: Api, redis_client: AnyRedis
) -> None:
    event_id = await make_event(organizer, rows=4, seats_per_row=10, ga=10)
    streams = [Session(organizer) for _ in range(2)]
    waiting: dict[str, asyncio.Future[session_pb2.SessionResponse]] = {}

    async def read(s: Session) -> None:
        while True:
            answer = await s.call.read()
            if answer is grpc.aio.EOF:
                return
            waiting.pop(answer.correlation_id).set_result(answer)  # type: ignore[union-attr]

    readers = [asyncio.create_task(read(s)) for s in streams]
    ids = iter(range(1_000_000))
    acknowledged: list[sales_pb2.Order] = []  # every order a buyer was told it has

    def noted(answer: Message) -> Message:
        if isinstance(answer, sales_pb2.CommitHoldResponse):
            acknowledged.append(answer.order)
        return answer

    async def over_session(op: str, request: Message) -> Message:
        n = next(ids)
        s = streams[n % 2]
        correlation_id = f"b{n}"
        waiting[correlation_id] = asyncio.get_running_loop().create_future()
        await s.send(correlation_id, **{op: request})
        return noted(result_of(await waiting[correlation_id]))

    async def over_unary(op: str, request: Message) -> Message:
        return noted(await unary(organizer, op, request))

    rng = random.Random(7)
    buyers = [_buyer(n, rng, event_id, over_session if n % 2 else over_unary) for n in range(120)]
    tickets = sum(await asyncio.gather(*buyers))
    for s in streams:
        await s.call.done_writing()
    await asyncio.gather(*readers)
    state = await read_state(redis_client, event_id)
    check_consistent(state)  # a sold seat points at the one order with a valid ticket for it
    # Redis has exactly the acknowledged orders, each with the seats (ordinal: row * 10 + n) and
    # GA places it was acknowledged with; no seat is in two of them; the seats sold are theirs
    assert tickets == sum(len(o.tickets) for o in acknowledged) > 0
    assert {o.order_id: sorted((t.seat_id, t.ga_area_id) for t in o.tickets) for o in acknowledged} == {
        order_id: sorted(
            (f"r{t.seat // 10}-{t.seat % 10}" if t.seat is not None else "", t.ga_area or "")
            for t in o.tickets
        )
        for order_id, o in state.orders.items()
    }
    seats_sold = [(t.seat_id, o.order_id) for o in acknowledged for t in o.tickets if t.seat_id]
    sold = dict(seats_sold)
    assert len(sold) == len(seats_sold), f"a seat is in two orders: {sorted(seats_sold)}"
    # every hold was paid for: no seat is left held
    assert sorted(f"r{o // 10}-{o % 10}" for o in state.seats) == sorted(sold)
    # the API says so too, once its availability has followed the change stream this far
    request = events_pb2.GetAvailabilityRequest(event_id=event_id, include_seats=True)
    async with asyncio.timeout(30):
        while True:
            available = await organizer.events.GetAvailability(request, metadata=organizer.metadata)
            if available.sequence >= state.seq:
                break
            await asyncio.sleep(0.01)  # the mirror follows the change stream asynchronously
    sold_by_api = [a.seat_id for a in available.seats if a.status == events_pb2.SEAT_STATUS_SOLD]
    assert sorted(sold_by_api) == sorted(sold)


# -- batches: requests in one message, answers in one message for a client that asks -----------


def _request(correlation_id: str, **op: Any) -> session_pb2.SessionRequest:
    return session_pb2.SessionRequest(correlation_id=correlation_id, **op)


def _hold(event_id: str, *seat_ids: str) -> sales_pb2.HoldSeatsRequest:
    return sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=seat_ids)


def _flatten(answers: list[session_pb2.SessionResponse]) -> list[session_pb2.SessionResponse]:
    out: list[session_pb2.SessionResponse] = []
    for answer in answers:
        out.extend(answer.batch or [answer])
    return out


class BatchingSession(Session):
    """A session opened with ``seatwise-batch: 1``."""

    def __init__(self, api: Api) -> None:
        self.call = api.sessions.Session(metadata=(*api.metadata, (BATCH_HEADER, "1")))
        self._ids = (f"c{n}" for n in range(1_000_000))
        self._writing = asyncio.Lock()

    async def send_batch(self, *requests: session_pb2.SessionRequest) -> None:
        async with self._writing:
            await self.call.write(session_pb2.SessionRequest(batch=requests))

    async def answers(self, count: int) -> tuple[int, dict[str, session_pb2.SessionResponse]]:
        """Reads until ``count`` answers came: how many messages carried them, and each by id."""
        messages = 0
        by_id: dict[str, session_pb2.SessionResponse] = {}
        while len(by_id) < count:
            message = await self.read()
            messages += 1
            for answer in _flatten([message]):
                assert answer.correlation_id not in by_id, "answered twice"
                by_id[answer.correlation_id] = answer
        assert len(by_id) == count
        return messages, by_id


async def test_each_request_of_a_batch_is_answered_as_if_sent_alone(organizer: Api) -> None:
    event_id = await make_event(organizer)
    session = Session(organizer)  # answers one per message: the client did not ask for batches
    try:
        async with session._writing:
            await session.call.write(
                session_pb2.SessionRequest(
                    batch=[
                        _request(
                            "a", hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"])
                        ),
                        _request(
                            "b", hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["nope"])
                        ),
                        _request("c", **get_hold("not-a-token")),
                    ]
                )
            )
        answers = [await session.read() for _ in range(3)]
    finally:
        session.call.cancel()
    assert all(not a.batch for a in answers)
    by_id = {a.correlation_id: a for a in answers}
    assert by_id["a"].WhichOneof("result") == "hold"
    assert list(by_id["a"].hold.hold.seat_ids) == ["r0-0"]
    assert by_id["b"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "nope" in by_id["b"].error.message
    assert by_id["c"].WhichOneof("result") == "error"


async def test_answers_ready_together_come_in_one_message(organizer: Api) -> None:
    session = BatchingSession(organizer)
    try:
        # ten requests without an operation: each is refused as it is read, so all ten
        # answers are ready before the writer runs
        await session.send_batch(*(_request(f"x{n}") for n in range(10)))
        messages, by_id = await session.answers(10)
    finally:
        session.call.cancel()
    assert messages == 1
    assert sorted(by_id) == sorted(f"x{n}" for n in range(10))
    assert {a.error.code for a in by_id.values()} == {grpc.StatusCode.INVALID_ARGUMENT.value[0]}
    assert all("op" in a.error.message for a in by_id.values())


async def test_a_batch_with_an_operation_of_its_own_or_nested_is_refused(organizer: Api) -> None:
    event_id = await make_event(organizer)
    session = BatchingSession(organizer)
    hold = sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"])
    try:
        both = _request("both", hold_seats=hold)
        both.batch.append(_request("inner", hold_seats=hold))
        async with session._writing:
            await session.call.write(both)
        _, first = await session.answers(1)
        nested = _request("nested")
        nested.batch.append(_request("deeper", hold_seats=hold))
        await session.send_batch(_request("fine", hold_seats=hold), nested)
        _, rest = await session.answers(2)
    finally:
        session.call.cancel()
    assert first["both"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "batch" in first["both"].error.message
    assert rest["nested"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "nest" in rest["nested"].error.message
    # nothing of the refused messages was applied: only "fine" holds the seat
    assert rest["fine"].WhichOneof("result") == "hold"


async def test_a_batch_larger_than_the_stream_cap_is_served_within_it(
    organizer: Api, gate: Gate, stores: Stores, streams: Streams
) -> None:
    stores.admission.max_session_stream_inflight = 4
    event_id = await make_event(organizer)
    session = BatchingSession(organizer)
    try:
        await session.send_batch(
            _request("h", hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]))
        )
        _, held = await session.answers(1)
        token = held["h"].hold.hold.hold_token
        await session.send_batch(*(_request(f"g{n}", **get_hold(token)) for n in range(12)))
        (stream,) = streams
        await until(lambda: gate.waiting == 4, "four requests of the batch in flight")
        await asyncio.sleep(0.2)  # the rest of the batch waits for slots
        assert gate.waiting == 4
        assert stream.read == 5
        gate.opened.set()
        _, by_id = await session.answers(12)
    finally:
        session.call.cancel()
    assert sorted(by_id) == sorted(f"g{n}" for n in range(12))
    assert all(a.WhichOneof("result") == "hold" for a in by_id.values())
    assert stream.max_outstanding <= 4


def _message_request_info(status: status_pb2.Status) -> error_details_pb2.RequestInfo:
    info = error_details_pb2.RequestInfo()
    found = [d for d in status.details if d.Unpack(info)]
    assert len(found) == 1, status
    return info


async def test_a_messages_error_carries_the_streams_request_id_and_its_correlation_id(
    organizer: Api, gate: Gate
) -> None:
    event_id = await make_event(organizer)
    call = organizer.sessions.Session(metadata=[*organizer.metadata, ("x-request-id", "storefront-run-7")])
    try:
        hold = session_pb2.SessionRequest(
            correlation_id="h", hold_seats=sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"])
        )
        await call.write(hold)
        held = await asyncio.wait_for(call.read(), timeout=30)
        token = held.hold.hold.hold_token  # type: ignore[union-attr]
        late = session_pb2.SessionRequest(
            correlation_id="late", get_hold=sales_pb2.GetHoldRequest(hold_token=token)
        )
        late.budget.FromMilliseconds(100)
        await call.write(late)  # held by the gate past its budget
        answer = await asyncio.wait_for(call.read(), timeout=30)
        assert answer.correlation_id == "late"  # type: ignore[union-attr]
        assert answer.error.code == code_pb2.DEADLINE_EXCEEDED  # type: ignore[union-attr]
        info = _message_request_info(answer.error)  # type: ignore[union-attr]
        assert (info.request_id, info.serving_data) == ("storefront-run-7", "correlation_id=late")
        # any other per-message error alike: a refusal before it runs, an error of the operation
        taken = sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"])
        for correlation_id, request in (
            ("bad", session_pb2.SessionRequest(correlation_id="bad")),  # no operation
            ("taken", session_pb2.SessionRequest(correlation_id="taken", hold_seats=taken)),
        ):
            await call.write(request)
            refused = await asyncio.wait_for(call.read(), timeout=30)
            assert refused.correlation_id == correlation_id  # type: ignore[union-attr]
            assert refused.error.code in (code_pb2.INVALID_ARGUMENT, code_pb2.FAILED_PRECONDITION)  # type: ignore[union-attr]
            info = _message_request_info(refused.error)  # type: ignore[union-attr]
            assert (info.request_id, info.serving_data) == (
                "storefront-run-7",
                f"correlation_id={correlation_id}",
            )
    finally:
        gate.opened.set()
        call.cancel()
