"""seatwise's asyncio client for storefronts: one API over unary calls or sales sessions.

    async with SeatwiseClient("seatwise:50051", api_key, sessions=2, connections=2) as client:
        held = await client.hold_seats(event_id, ["A-1", "A-2"], buyer_id="b-17")
        order = await client.commit_hold(held.hold.hold_token, idempotency_key="pay-17")

``sessions=0`` (the default) sends each operation as its unary RPC; ``sessions=N``
multiplexes every operation of the process over N ``SalesService.Session``
streams spread over ``connections`` TCP connections. Arguments, results (the
unary replies) and errors (:class:`SeatwiseError`, same status codes, messages
and details) are the same either way.

Batches (``batching=True``, the default): the operations a session has ready
in the same event-loop turn go out in one stream message, and the server
sends the answers it has ready together, so gRPC's per-message cost is paid
once for them; each operation keeps its own budget and answer. Every
operation of one turn goes over the same session and the next turn's over the
next one, so a turn's operations make one batch however many sessions there
are. Fewer, fuller sessions cost the server less per operation: one session
per server process behind ``target`` (``sessions = connections``) is the
configuration to start from (figures in docs/performance.md).

Retries: an operation is sent again only when doing so cannot apply it twice,
and only while its deadline lasts: a commit (its idempotency key returns the
same order), an extend or a get, and a hold that carries a ``request_id``;
never a plain hold or a release. They are retried when the answer is
``UNAVAILABLE`` or, over sessions, when the stream ended before answering (a
server stopping ends its streams ``UNAVAILABLE`` after answering what it had;
each session reconnects with exponential backoff and jitter). Other
operations caught in a lost stream fail with ``UNAVAILABLE``: they may or may
not have been applied.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

from seatwise.v1 import (
    aftersale_pb2,
    aftersale_pb2_grpc,
    sales_pb2,
    sales_pb2_grpc,
    seasons_pb2,
    seasons_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)

__all__ = ["SeatwiseClient", "SeatwiseError", "TurnRotation"]

DEFAULT_TIMEOUT_S = 10.0
TENANT_HEADER = "x-seatwise-tenant"
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 2.0
BATCH_HEADER = "seatwise-batch"  # answers batched too (server/servicers/sessions.py)
_CODES = {code.value[0]: code for code in grpc.StatusCode}
# op -> (unary service, unary method)
_UNARY = {
    "hold_seats": ("holds", "HoldSeats"),
    "hold_best_available": ("holds", "HoldBestAvailable"),
    "hold_general_admission": ("holds", "HoldGeneralAdmission"),
    "extend_hold": ("holds", "ExtendHold"),
    "release_hold": ("holds", "ReleaseHold"),
    "get_hold": ("holds", "GetHold"),
    "commit_hold": ("orders", "CommitHold"),
    # seasons and bundles
    "hold_season_seats": ("seasons", "HoldSeasonSeats"),
    "extend_season_hold": ("seasons", "ExtendSeasonHold"),
    "release_season_hold": ("seasons", "ReleaseSeasonHold"),
    "get_season_hold": ("seasons", "GetSeasonHold"),
    "commit_season_hold": ("seasons", "CommitSeasonHold"),
    # resale purchases
    "hold_listing": ("after_sale", "HoldListing"),
    "commit_listing": ("after_sale", "CommitListing"),
}
_IDEMPOTENT = frozenset(
    {"extend_hold", "get_hold", "commit_hold", "extend_season_hold", "get_season_hold", "commit_season_hold"}
    | {"commit_listing"}  # retried with its resale key
)
_HOLDS = frozenset({"hold_seats", "hold_best_available", "hold_general_admission", "hold_season_seats"})


class SeatwiseError(Exception):
    """An operation failed: its gRPC status ``code``, ``message`` and ``details``
    (``google.protobuf.Any``: ``BadRequest``, ``PreconditionFailure``, ``RetryInfo`` ...)."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Sequence[any_pb2.Any] = ()) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = list(details)

    @classmethod
    def from_status(cls, status: status_pb2.Status) -> SeatwiseError:
        return cls(_CODES.get(status.code, grpc.StatusCode.UNKNOWN), status.message, status.details)

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> SeatwiseError:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        if status is not None:
            return cls.from_status(status)
        return cls(error.code(), error.details() or "")

    @property
    def status(self) -> status_pb2.Status:
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=self.details)


def backoff_s(failures: int) -> float:
    """The longest pause before the next attempt after ``failures`` (>= 1) consecutive
    failures: doubling from ``BACKOFF_BASE_S`` up to ``BACKOFF_MAX_S``; the pause itself is
    drawn uniformly below it (full jitter)."""
    # the exponent is bounded first: past ~1024 failures 2**n no longer fits in a float
    # (OverflowError), which would leave a long-failing session unable to ever reconnect
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** min(max(failures - 1, 0), 64))


def retry_safe(op: str, request: Message) -> bool:
    """Whether sending ``request`` again cannot apply it twice."""
    if op in _IDEMPOTENT:
        return True
    return op in _HOLDS and bool(getattr(request, "request_id", ""))


class _StreamLost(Exception):
    """The session ended before answering (it may or may not have served the request)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"session ended: {code.name}: {details}")
        self.code = code
        self.details = details


class TurnRotation:
    """One of ``count`` places (sessions, streams) per event-loop turn: every pick in a turn
    gets the same one, so the turn's operations make one batch; the next turn the next."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._index = 0
        self._turning = False

    def pick(self, usable: Callable[[int], bool] | None = None) -> int:
        """This turn's place; at a turn's first pick, places ``usable`` rejects are passed
        over while another is usable."""
        if not self._turning:
            self._turning = True
            asyncio.get_running_loop().call_soon(self._next_turn)
            if usable is not None:
                for k in range(self._count):
                    index = (self._index + k) % self._count
                    if usable(index):
                        self._index = index
                        break
        return self._index

    def _next_turn(self) -> None:
        self._index = (self._index + 1) % self._count
        self._turning = False


class _Session:
    """One ``SalesService.Session`` stream, reopened on demand after it ends."""

    def __init__(
        self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], batching: bool
    ) -> None:
        self._stub = session_pb2_grpc.SalesServiceStub(channel)
        self._metadata = (*metadata, (BATCH_HEADER, "1")) if batching else metadata
        self._batching = batching
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[session_pb2.SessionResponse]] = {}
        self._ids = itertools.count()
        self._writing = asyncio.Lock()  # a call takes one write at a time
        self._outbox: list[session_pb2.SessionRequest] = []  # batching: requests not yet written
        self._sender: asyncio.Task[None] | None = None
        self.failures = 0  # consecutive ends without an answer: the backoff's exponent

    def _open(self) -> Any:
        if self._call is None:
            call = self._stub.Session(metadata=self._metadata)  # type: ignore[call-arg]  # write() feeds it
            self._call = call
            self._reader = asyncio.create_task(self._read(call))
        return self._call

    def _answered(self, answer: session_pb2.SessionResponse) -> None:
        future = self._pending.pop(answer.correlation_id, None)
        if future is not None and not future.done():
            future.set_result(answer)

    async def _read(self, call: Any) -> None:
        code, details = grpc.StatusCode.UNAVAILABLE, "the server closed the session"
        try:
            async for answer in call:
                self.failures = 0
                if answer.batch:
                    for each in answer.batch:
                        self._answered(each)
                else:
                    self._answered(answer)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
        except asyncio.CancelledError:
            code, details = grpc.StatusCode.CANCELLED, "the client closed the session"
        finally:
            if self._call is call:
                self._call = None
                self.failures += 1
            self._fail_pending(_StreamLost(code, details), list(self._pending))

    def _fail_pending(self, lost: _StreamLost, correlation_ids: Sequence[str]) -> None:
        for correlation_id in correlation_ids:
            future = self._pending.pop(correlation_id, None)
            if future is not None and not future.done():
                future.set_exception(lost)

    async def _write(self, call: Any, message: session_pb2.SessionRequest) -> None:
        try:
            async with self._writing:
                await call.write(message)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            if self._call is call:  # the reader has not seen the end yet
                call.cancel()
            raise _StreamLost(grpc.StatusCode.UNAVAILABLE, f"could not send: {exc}") from None

    async def _send_batches(self, call: Any) -> None:
        """Writes what the outbox holds, one message per write, until it is empty: the
        requests made while a write is under way go out together in the next."""
        while self._outbox:
            ready, self._outbox = self._outbox, []
            message = ready[0] if len(ready) == 1 else session_pb2.SessionRequest(batch=ready)
            try:
                await self._write(call, message)
            except _StreamLost as lost:
                self._fail_pending(lost, [r.correlation_id for r in ready])

    async def request(self, op: str, request: Message, budget_s: float) -> session_pb2.SessionResponse:
        call = self._open()
        correlation_id = str(next(self._ids))
        message = session_pb2.SessionRequest(correlation_id=correlation_id)
        getattr(message, op).CopyFrom(request)
        message.budget.FromMilliseconds(max(int(budget_s * 1000), 1))
        future: asyncio.Future[session_pb2.SessionResponse] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            async with asyncio.timeout(budget_s):
                if self._batching:
                    self._outbox.append(message)
                    if self._sender is None or self._sender.done():  # it starts after this turn's requests
                        self._sender = asyncio.create_task(self._send_batches(call))
                else:
                    await self._write(call, message)
                return await future
        except TimeoutError:
            raise SeatwiseError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{op}: no answer in time") from None
        finally:
            self._pending.pop(correlation_id, None)

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        tasks = [t for t in (self._reader, self._sender) if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class SeatwiseClient:
    """Sales operations of a storefront process; see the module's docstring."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        sessions: int = 0,
        connections: int = 1,
        tenant: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = 4,
        channel_options: Sequence[tuple[str, Any]] = (),
        credentials: grpc.ChannelCredentials | None = None,  # TLS: grpc.ssl_channel_credentials(...)
        batching: bool = True,
    ) -> None:
        if sessions < 0 or connections < 1 or max_attempts < 1:
            raise ValueError("sessions >= 0, connections >= 1 and max_attempts >= 1")
        options = [("grpc.use_local_subchannel_pool", 1), *channel_options]  # a connection per channel
        self._channels = [
            grpc.aio.insecure_channel(target, options=options)
            if credentials is None
            else grpc.aio.secure_channel(target, credentials, options=options)
            for _ in range(connections)
        ]
        metadata = [("authorization", f"Bearer {api_key}")]
        if tenant:
            metadata.append((TENANT_HEADER, tenant))
        self._metadata = tuple(metadata)
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._stubs = [
            {
                "holds": sales_pb2_grpc.HoldServiceStub(c),
                "orders": sales_pb2_grpc.OrderServiceStub(c),
                "seasons": seasons_pb2_grpc.SeasonServiceStub(c),
                "after_sale": aftersale_pb2_grpc.AfterSaleServiceStub(c),
            }
            for c in self._channels
        ]
        self._sessions = [
            _Session(self._channels[i % connections], self._metadata, batching) for i in range(sessions)
        ]
        self._turn = itertools.count()  # unary calls: round robin over the connections
        self._session_turns = TurnRotation(len(self._sessions))

    @property
    def uses_sessions(self) -> bool:
        return bool(self._sessions)

    async def __aenter__(self) -> SeatwiseClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()
        for channel in self._channels:
            await channel.close(None)

    # -- the operations: the unary RPCs' arguments and replies ------------------------------------

    async def hold_seats(
        self,
        event_id: str,
        seat_ids: Sequence[str],
        *,
        hold_token: str = "",
        buyer_id: str = "",
        deadline_s: float | None = None,
        **fields: Any,
    ) -> sales_pb2.HoldResponse:
        request = sales_pb2.HoldSeatsRequest(
            event_id=event_id, seat_ids=seat_ids, hold_token=hold_token, buyer_id=buyer_id, **fields
        )
        reply: sales_pb2.HoldResponse = await self.call("hold_seats", request, deadline_s)
        return reply

    async def hold_best_available(
        self,
        event_id: str,
        quantity: int,
        *,
        categories: Sequence[str] = (),
        section_ids: Sequence[str] = (),
        accessible: int = 0,
        adjacency: int = sales_pb2.ADJACENCY_REQUIRED,
        hold_token: str = "",
        buyer_id: str = "",
        deadline_s: float | None = None,
        **fields: Any,
    ) -> sales_pb2.HoldResponse:
        request = sales_pb2.HoldBestAvailableRequest(
            event_id=event_id,
            quantity=quantity,
            categories=categories,
            section_ids=section_ids,
            accessible=accessible,
            adjacency=adjacency,  # type: ignore[arg-type]
            hold_token=hold_token,
            buyer_id=buyer_id,
            **fields,
        )
        reply: sales_pb2.HoldResponse = await self.call("hold_best_available", request, deadline_s)
        return reply

    async def hold_general_admission(
        self,
        event_id: str,
        area_id: str,
        quantity: int,
        *,
        hold_token: str = "",
        buyer_id: str = "",
        deadline_s: float | None = None,
        **fields: Any,
    ) -> sales_pb2.HoldResponse:
        request = sales_pb2.HoldGeneralAdmissionRequest(
            event_id=event_id,
            area_id=area_id,
            quantity=quantity,
            hold_token=hold_token,
            buyer_id=buyer_id,
            **fields,
        )
        reply: sales_pb2.HoldResponse = await self.call("hold_general_admission", request, deadline_s)
        return reply

    async def extend_hold(
        self, hold_token: str, *, deadline_s: float | None = None
    ) -> sales_pb2.HoldResponse:
        request = sales_pb2.ExtendHoldRequest(hold_token=hold_token)
        reply: sales_pb2.HoldResponse = await self.call("extend_hold", request, deadline_s)
        return reply

    async def release_hold(
        self,
        hold_token: str,
        *,
        seat_ids: Sequence[str] = (),
        general_admission: dict[str, int] | None = None,
        deadline_s: float | None = None,
    ) -> sales_pb2.ReleaseHoldResponse:
        request = sales_pb2.ReleaseHoldRequest(
            hold_token=hold_token, seat_ids=seat_ids, general_admission=general_admission or {}
        )
        reply: sales_pb2.ReleaseHoldResponse = await self.call("release_hold", request, deadline_s)
        return reply

    async def get_hold(self, hold_token: str, *, deadline_s: float | None = None) -> sales_pb2.HoldResponse:
        reply: sales_pb2.HoldResponse = await self.call(
            "get_hold", sales_pb2.GetHoldRequest(hold_token=hold_token), deadline_s
        )
        return reply

    async def commit_hold(
        self,
        hold_token: str,
        idempotency_key: str,
        *,
        buyer: sales_pb2.BuyerDetails | None = None,
        deadline_s: float | None = None,
    ) -> sales_pb2.CommitHoldResponse:
        request = sales_pb2.CommitHoldRequest(hold_token=hold_token, idempotency_key=idempotency_key)
        if buyer is not None:
            request.buyer.CopyFrom(buyer)
        reply: sales_pb2.CommitHoldResponse = await self.call("commit_hold", request, deadline_s)
        return reply

    # -- seasons and bundles: the same seats across a season's events (docs/selling.md) -------------

    async def hold_season_seats(
        self,
        season_id: str,
        seat_ids: Sequence[str],
        *,
        event_ids: Sequence[str] = (),
        buyer_id: str = "",
        request_id: str = "",
        deadline_s: float | None = None,
        **fields: Any,
    ) -> seasons_pb2.SeasonHoldResponse:
        """Retried only with a ``request_id`` (as the single-event holds): without one, a lost
        answer may have held the seats. ``fields``: e.g. ``channel_access``."""
        request = seasons_pb2.HoldSeasonSeatsRequest(
            season_id=season_id, seat_ids=seat_ids, event_ids=event_ids, buyer_id=buyer_id,
            request_id=request_id, **fields,
        )  # fmt: skip
        reply: seasons_pb2.SeasonHoldResponse = await self.call("hold_season_seats", request, deadline_s)
        return reply

    async def get_season_hold(
        self, season_hold_token: str, *, deadline_s: float | None = None
    ) -> seasons_pb2.SeasonHoldResponse:
        request = seasons_pb2.SeasonHoldRequest(season_hold_token=season_hold_token)
        reply: seasons_pb2.SeasonHoldResponse = await self.call("get_season_hold", request, deadline_s)
        return reply

    async def extend_season_hold(
        self, season_hold_token: str, *, deadline_s: float | None = None
    ) -> seasons_pb2.SeasonHoldResponse:
        request = seasons_pb2.ExtendSeasonHoldRequest(season_hold_token=season_hold_token)
        reply: seasons_pb2.SeasonHoldResponse = await self.call("extend_season_hold", request, deadline_s)
        return reply

    async def release_season_hold(
        self, season_hold_token: str, *, deadline_s: float | None = None
    ) -> seasons_pb2.ReleaseSeasonHoldResponse:
        request = seasons_pb2.SeasonHoldRequest(season_hold_token=season_hold_token)
        reply: seasons_pb2.ReleaseSeasonHoldResponse = await self.call(
            "release_season_hold", request, deadline_s
        )
        return reply

    async def commit_season_hold(
        self,
        season_hold_token: str,
        idempotency_key: str,
        *,
        buyer: sales_pb2.BuyerDetails | None = None,
        ticket_types: Mapping[str, str] | None = None,
        promo_code: str = "",
        access_code: str = "",
        deadline_s: float | None = None,
    ) -> seasons_pb2.SeasonOrderResponse:
        """``ticket_types``: seat id -> ticket type, the same type in every event of the hold."""
        typed = [
            sales_pb2.TicketTypeChoice(seat_id=s, ticket_type=t) for s, t in (ticket_types or {}).items()
        ]
        request = seasons_pb2.CommitSeasonHoldRequest(
            season_hold_token=season_hold_token, idempotency_key=idempotency_key, ticket_types=typed,
            promo_code=promo_code, access_code=access_code,
        )  # fmt: skip
        if buyer is not None:
            request.buyer.CopyFrom(buyer)
        reply: seasons_pb2.SeasonOrderResponse = await self.call("commit_season_hold", request, deadline_s)
        return reply

    # -- resale purchases: a buyer holds a listed ticket, then pays for it (docs/selling.md) ----------

    async def hold_listing(
        self,
        event_id: str,
        ticket_id: str,
        listing_id: str,
        *,
        buyer_id: str = "",
        deadline_s: float | None = None,
    ) -> aftersale_pb2.HoldListingResponse:
        """Never retried: a lost answer may have held the listing (it then expires with its lease)."""
        request = aftersale_pb2.HoldListingRequest(
            event_id=event_id, ticket_id=ticket_id, listing_id=listing_id, buyer_id=buyer_id
        )
        reply: aftersale_pb2.HoldListingResponse = await self.call("hold_listing", request, deadline_s)
        return reply

    async def commit_listing(
        self,
        hold_token: str,
        resale_key: str,
        *,
        buyer: sales_pb2.BuyerDetails | None = None,
        deadline_s: float | None = None,
    ) -> aftersale_pb2.CommitListingResponse:
        """Retried while the outcome is unknown: the same ``resale_key`` answers the same resale."""
        request = aftersale_pb2.CommitListingRequest(hold_token=hold_token, resale_key=resale_key)
        if buyer is not None:
            request.buyer.CopyFrom(buyer)
        reply: aftersale_pb2.CommitListingResponse = await self.call("commit_listing", request, deadline_s)
        return reply

    # -- transport -----------------------------------------------------------------------------------

    async def call(self, op: str, request: Message, deadline_s: float | None = None) -> Any:
        """Run one operation (a ``SessionRequest`` op name and its request) within
        ``deadline_s`` seconds (default: the client's), retrying only what
        :func:`retry_safe` allows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._timeout_s if deadline_s is None else deadline_s)
        safe = retry_safe(op, request)
        for attempt in itertools.count():
            left = deadline - loop.time()
            if left <= 0:
                raise SeatwiseError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{op}: no answer in time")
            try:
                return await (
                    self._over_session(op, request, left)
                    if self._sessions
                    else self._unary(op, request, left)
                )
            except _StreamLost as lost:
                if lost.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    raise SeatwiseError(lost.code, lost.details) from None
                failure = SeatwiseError(
                    grpc.StatusCode.UNAVAILABLE, f"{op}: {lost}; it may or may not have been applied"
                )
            except SeatwiseError as exc:
                if exc.code is not grpc.StatusCode.UNAVAILABLE:
                    raise
                failure = exc
            if not safe or attempt + 1 >= self._max_attempts:
                raise failure
            delay = random.uniform(0, backoff_s(attempt + 1))  # full jitter
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
        raise AssertionError("unreachable")

    async def _unary(self, op: str, request: Message, budget_s: float) -> Any:
        service, method = _UNARY[op]
        stub = self._stubs[next(self._turn) % len(self._stubs)][service]
        try:
            return await getattr(stub, method)(request, metadata=self._metadata, timeout=budget_s)
        except grpc.aio.AioRpcError as exc:
            raise SeatwiseError.from_rpc_error(exc) from None

    def _session_of_this_turn(self) -> _Session:
        """The session of every operation started in this event-loop turn (one batch); the
        next turn takes the next one, passing over a session that is reconnecting after its
        stream ended (backing off) while another is up."""
        return self._sessions[self._session_turns.pick(self._session_up)]

    def _session_up(self, index: int) -> bool:
        return not self._sessions[index].failures

    async def _over_session(self, op: str, request: Message, budget_s: float) -> Any:
        session = self._session_of_this_turn()
        if session.failures:  # reconnecting: exponential backoff with full jitter
            pause = random.uniform(0, backoff_s(session.failures))
            pause = min(pause, budget_s / 2)
            await asyncio.sleep(pause)
            budget_s -= pause
        answer = await session.request(op, request, max(budget_s, 0.001))
        kind = answer.WhichOneof("result")
        if kind == "error":
            raise SeatwiseError.from_status(answer.error)
        if kind is None:
            raise SeatwiseError(grpc.StatusCode.UNKNOWN, f"{op}: an answer without a result")
        return getattr(answer, kind)
