"""A randomized concurrent history over a running server, sessions and unary calls mixed.

Eight buyers share one event (ten seats, a GA floor of three, a 1 s lease)
through two ``seatwise.client`` clients of one storefront key: one sending
unary RPCs, one multiplexing over two ``SalesService.Session`` streams. Every
call picks its transport at random, so one hold is often made over a session,
added to and released over unary calls and committed over either; a retry of
an unknown outcome (a deadline too short to answer) goes out with the same
request id or idempotency key over whichever transport comes up, and a quarter
of the acknowledged holds are sent again at once over the other one (a
gateway's duplicate). The history is recorded as tests/holds/history.py's
:class:`Op` and checked by its :func:`check_history` against the final Redis
state; no timing is asserted (the run goes on until it covered what the
checker is about, bounded only against a hang).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import sales_pb2

from holds.redis_client import AnyRedis
from holds.sales import parse_token
from server.context import Stores
from tests.api import Api
from tests.holds.factories import check_consistent, read_state
from tests.holds.history import Op, check_history
from tests.server.conftest import settle_calls
from tests.server.events import make_event

ROWS, PER_ROW = 2, 5  # ten seats: r<row>-<n>, ordinal row * PER_ROW + n
GA_AREA, GA_CAPACITY = "floor", 3
RUN_S = 3.0  # at least this long, then on until the run covered what the checker is about
GIVE_UP_S = 60.0  # a safety bound only (below the test's timeout)
BUYERS = 8
SHORT_S = 0.001  # a deadline a call can rarely meet: its outcome is unknown
NORMAL_S = 5.0
UNKNOWN = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE})


def seat_id(ordinal: int) -> str:
    return f"r{ordinal // PER_ROW}-{ordinal % PER_ROW}"


def ordinal(seat: str) -> int:
    row, n = seat[1:].split("-")
    return int(row) * PER_ROW + int(n)


def _error_name(kind: str, error: SeatwiseError) -> str:
    """The inventory's name for a refusal, as tests/holds/history.py reads it."""
    if kind == "hold" and error.code is grpc.StatusCode.FAILED_PRECONDITION and "seat" in error.message:
        return "SeatsUnavailable"
    if kind == "hold" and error.code is grpc.StatusCode.ABORTED:
        return "GeneralAdmissionUnavailable"
    return error.code.name


class Recorder:
    """Runs client calls and records them as :class:`Op` (with the transport used)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.transport: dict[int, str] = {}
        self._ids = itertools.count()

    def op(self, client: str, kind: Any, transport: str, **fields: Any) -> Op:
        op = Op(next(self._ids), client, kind, time.time() * 1000, **fields)
        self.transport[op.id] = transport
        return op

    async def run(self, op: Op, call: Awaitable[Any]) -> Any:
        self.ops.append(op)
        result: Any = None
        try:
            result = await call
        except SeatwiseError as exc:
            op.outcome = "unknown" if exc.code in UNKNOWN else "fail"
            op.error = "" if op.outcome == "unknown" else _error_name(op.kind, exc)
        else:
            op.outcome = "ok"
        op.complete_ms = time.time() * 1000
        if op.outcome != "ok":
            return None
        if isinstance(result, sales_pb2.HoldResponse):
            op.hold_id = parse_token(result.hold.hold_token)[1]
            op.expires_ms = result.hold.expires_at.ToMilliseconds()
            op.replayed = result.replayed
        elif isinstance(result, sales_pb2.CommitHoldResponse):
            op.order_id = result.order.order_id
        return result


@dataclass(frozen=True)
class Request:
    seats: tuple[int, ...]
    ga: int
    token: str  # adding to this hold ("" : a new hold)
    request_id: str


async def _cancel(api: Api, request: sales_pb2.CancelOrderRequest, timeout_s: float) -> Any:
    """The box office's unary CancelOrder, failing as the client's calls do."""
    try:
        return await api.orders.CancelOrder(request, metadata=api.metadata, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        raise SeatwiseError.from_rpc_error(exc) from None


class _Shopper:
    def __init__(
        self, name: str, clients: dict[str, SeatwiseClient], api: Api, rec: Recorder, event_id: str, seed: int
    ) -> None:
        self.name, self.clients, self.api, self.rec, self.event_id = name, clients, api, rec, event_id
        self.orders: list[tuple[str, list[str]]] = []  # (order id, ticket ids) it bought
        self.rng = random.Random(seed)
        self.mine: dict[str, set[int]] = {}  # hold token -> seats it believes it holds
        self.retry: list[tuple[str, str]] = []  # (token, key) of commits with an unknown outcome
        self.retry_holds: list[Request] = []
        self.requests = itertools.count()

    def transport(self) -> str:
        return self.rng.choice(sorted(self.clients))

    def deadline(self) -> float:
        return SHORT_S if self.rng.random() < 0.06 else NORMAL_S

    async def run(self, stop_at: float, covered: Callable[[], bool]) -> None:
        give_up_at = stop_at + GIVE_UP_S
        while time.time() < give_up_at and (time.time() < stop_at or not covered()):
            r = self.rng.random()
            if self.orders and r < 0.12:
                await self.cancel()  # seats come back for the others
            elif self.retry and r < 0.3:
                await self.commit(*self.retry.pop(), NORMAL_S)
            elif self.retry_holds and r < 0.5:
                await self.send_hold(self.retry_holds.pop(), NORMAL_S)
            elif not self.mine or r < 0.5:
                await self.hold_new()
            elif r < 0.6:
                token = self.rng.choice(sorted(self.mine))
                seats = (self.rng.randrange(ROWS * PER_ROW),)
                await self.send_hold(Request(seats, 0, token, self.request_id()), self.deadline())
            elif r < 0.7:
                await self.release()
            else:
                token = self.rng.choice(sorted(self.mine))
                if self.rng.random() < 0.15:
                    await asyncio.sleep(self.rng.uniform(0.9, 1.1))  # pays slowly: the lease may run out
                await self.commit(token, f"{self.name}-{next(self.requests)}", self.deadline())
            await asyncio.sleep(self.rng.uniform(0, 0.02))

    def request_id(self) -> str:
        return f"{self.name}-r{next(self.requests)}"

    async def hold_new(self) -> None:
        if self.rng.random() < 0.2:
            request = Request((), 1, "", self.request_id())
        else:
            seats = tuple(sorted(self.rng.sample(range(ROWS * PER_ROW), self.rng.randint(1, 3))))
            request = Request(seats, 0, "", self.request_id())
        await self.send_hold(request, self.deadline())

    async def send_hold(self, req: Request, deadline: float, duplicate: bool = True) -> None:
        transport = self.transport()
        client = self.clients[transport]
        hold_id = parse_token(req.token)[1] if req.token else ""
        op = self.rec.op(
            self.name,
            "hold",
            transport,
            hold_id=hold_id,
            seats=req.seats,
            ga=req.ga,
            request_id=req.request_id,
        )
        if req.ga:
            call = client.hold_general_admission(
                self.event_id, GA_AREA, req.ga, hold_token=req.token, buyer_id=self.name,
                request_id=req.request_id, deadline_s=deadline,
            )  # fmt: skip
        else:
            call = client.hold_seats(
                self.event_id, [seat_id(s) for s in req.seats], hold_token=req.token, buyer_id=self.name,
                request_id=req.request_id, deadline_s=deadline,
            )  # fmt: skip
        result = await self.rec.run(op, call)
        if result is not None:
            self.mine.setdefault(result.hold.hold_token, set()).update(req.seats)
            if duplicate and self.rng.random() < 0.25:
                await self.send_hold(req, NORMAL_S, duplicate=False)
        elif op.outcome == "unknown":
            self.retry_holds.append(req)

    async def release(self) -> None:
        token = self.rng.choice(sorted(self.mine))
        held = sorted(self.mine[token])
        part = held[:1] if self.rng.random() < 0.5 and len(held) > 1 else []
        transport = self.transport()
        op = self.rec.op(
            self.name, "release", transport, hold_id=parse_token(token)[1], seats=tuple(part), all=not part
        )
        call = self.clients[transport].release_hold(
            token, seat_ids=[seat_id(s) for s in part], deadline_s=self.deadline()
        )
        await self.rec.run(op, call)
        if part:
            self.mine[token] -= set(part)
        else:
            self.mine.pop(token)

    async def commit(self, token: str, key: str, deadline: float) -> None:
        transport = self.transport()
        op = self.rec.op(self.name, "commit", transport, hold_id=parse_token(token)[1], idem_key=key)
        buyer = sales_pb2.BuyerDetails(name=self.name)
        call = self.clients[transport].commit_hold(token, key, buyer=buyer, deadline_s=deadline)
        result = await self.rec.run(op, call)
        if result is not None:
            self.orders.append((result.order.order_id, [t.ticket_id for t in result.order.tickets]))
        if op.outcome == "unknown":
            self.retry.append((token, key))  # a real client retries with the same key
        self.mine.pop(token, None)

    async def cancel(self) -> None:
        order_id, tickets = self.rng.choice(self.orders)
        some = self.rng.sample(tickets, 1) if self.rng.random() < 0.5 and len(tickets) > 1 else []
        op = self.rec.op(self.name, "cancel", "unary", order_id=order_id, tickets=tuple(some), all=not some)
        request = sales_pb2.CancelOrderRequest(event_id=self.event_id, order_id=order_id, ticket_ids=some)
        await self.rec.run(op, _cancel(self.api, request, self.deadline()))
        if not some:
            self.orders.remove((order_id, tickets))


def _coverage(rec: Recorder) -> list[str]:
    """What the run has not exercised yet of what the checker is about."""
    ops = rec.ops
    seen = Counter((op.kind, op.outcome, rec.transport[op.id]) for op in ops)
    by_id = {op.hold_id: op for op in ops if op.kind == "hold" and op.outcome == "ok" and not op.replayed}
    crossed = sum(
        1
        for op in ops
        if op.kind == "commit"
        and op.outcome == "ok"
        and op.hold_id in by_id
        and rec.transport[by_id[op.hold_id].id] != rec.transport[op.id]
    )
    wanted = {
        "5 commits over each transport": all(seen[("commit", "ok", t)] >= 5 for t in ("unary", "sessions")),
        "5 refused holds over each transport": all(
            seen[("hold", "fail", t)] >= 5 for t in ("unary", "sessions")
        ),
        "3 holds committed over the other transport": crossed >= 3,
        "3 calls of unknown outcome": sum(1 for op in ops if op.outcome == "unknown") >= 3,
        "3 replayed holds": sum(op.replayed for op in ops) >= 3,
        "3 cancels": seen[("cancel", "ok", "unary")] >= 3,
        "2 releases over each transport": all(seen[("release", "ok", t)] >= 2 for t in ("unary", "sessions")),
    }
    return [name for name, done in wanted.items() if not done]


@pytest.mark.slow
async def test_a_history_mixing_sessions_and_unary_calls_is_valid(
    organizer: Api, clients: dict[str, SeatwiseClient], redis_client: AnyRedis, stores: Stores
) -> None:
    event_id = await make_event(
        organizer, rows=ROWS, seats_per_row=PER_ROW, ga=GA_CAPACITY, hold_ttl=Duration(seconds=1)
    )
    rec = Recorder()
    stop_at = time.time() + RUN_S
    await asyncio.gather(
        *(
            _Shopper(f"b{i}", clients, organizer, rec, event_id, 2000 + i).run(
                stop_at, lambda: not _coverage(rec)
            )
            for i in range(BUYERS)
        )
    )
    await settle_calls(stores)  # calls abandoned by a deadline too
    final = await read_state(redis_client, event_id)
    check_consistent(final)
    for op in rec.ops:  # the acknowledged orders as Redis has them (a missing one fails below)
        if op.kind == "commit" and op.outcome == "ok":
            op.order = final.orders.get(op.order_id)
            assert op.order is not None, f"acknowledged order {op.order_id} is missing from Redis"
    assert check_history(rec.ops, final) == []
    outcomes = Counter((op.kind, op.outcome, op.error) for op in rec.ops)
    assert _coverage(rec) == [], f"the run did not exercise what the checker is about: {outcomes}"
