"""seatwise.v1.SalesService.Session: many buyers' sales operations over one stream.

A storefront process opens a few long-lived sessions and multiplexes its
buyers' holds, extends, releases and commits over them, paying gRPC's per-call
price once per stream. Each message is served by the very servicer method of
its unary RPC (``HoldServicer``/``OrderServicer``), so replies, errors and
invariants are the unary path's, and new request fields flow through untouched.

Per stream (the wrapper authenticates it once, sets the principal for its task
and reads the key from Redis again every second: a key revoked by any process
ends it UNAUTHENTICATED):

* a reader takes one message at a time while the stream has fewer than
  ``max_session_stream_inflight`` and the process fewer than
  ``max_session_inflight`` messages read but not yet answered; at a cap it
  stops reading, so a client that never reads its answers is held back by
  gRPC's flow control instead of filling memory;
* each message is checked (correlation id, operation, budget), authorized with
  its unary method's roles and admitted like that unary call (the same
  :class:`~server.admission.Admission`: ``RESOURCE_EXHAUSTED`` + ``RetryInfo``
  for that message when overloaded), then runs in its own task under its own
  budget (``DEADLINE_EXCEEDED`` past it);
* one writer loop sends the answers in completion order; a message's slot is
  freed once its answer has been handed to gRPC.

**Batches.** gRPC's own cost per stream message (a read or write batch through
its completion queue, a wake-up of the event loop) is most of what a session
message costs the server. So a client may put the requests it has ready into
one message (``SessionRequest.batch``: each element a whole request, taking its
own slots and answered on its own), and a stream opened with the metadata
``seatwise-batch: 1`` gets the answers ready at the same moment in one message
(``SessionResponse.batch``, at most 64). Batching changes nothing else: the
same checks, budgets, admission and answers per request.

A message that is not a ``SessionRequest`` is answered ``INVALID_ARGUMENT``
under its correlation id when that can still be read; otherwise the stream
stops reading, answers what is in flight and ends ``INVALID_ARGUMENT``. When
the server stops (``Stores.stopping``), every stream stops reading, answers
what is in flight and ends ``UNAVAILABLE`` so its client moves elsewhere.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from seatwise.v1 import session_pb2, session_pb2_grpc

from holds.errors import InvalidRequest
from holds.records import RoleName
from server import metrics, request_ids
from server.admission import Admission, Admit
from server.auth import SALES, authorize, current_principal
from server.deadlines import DEFAULT_BUDGET_S, Budgets, call_budget
from server.declarations import MethodRule, ServiceDeclaration
from server.errors import clip, internal, to_status
from server.servicers import Context
from server.servicers.aftersale import SERVICE as AFTER_SALE_SERVICE
from server.servicers.aftersale import AfterSaleServicer
from server.servicers.sales import HOLD_SERVICE, ORDER_SERVICE, HoldServicer, OrderServicer
from server.servicers.seasons import SERVICE as SEASON_SERVICE
from server.servicers.seasons import SeasonServicer

if TYPE_CHECKING:
    from server.context import Stores

log = structlog.get_logger("seatwise.session")

SERVICE_NAME = "seatwise.v1.SalesService"
METHOD = f"/{SERVICE_NAME}/Session"
MAX_CORRELATION_ID = 128
BATCH_HEADER = "seatwise-batch"  # "1": the client reads batched answers (SessionResponse.batch)
MAX_BATCH_ANSWERS = 64
STOPPING_MESSAGE = "server stopping; open a new session (another process will answer)"


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a session: the unary method that serves it and its rule."""

    name: str  # the SessionRequest oneof field, e.g. "hold_seats"
    path: str  # the unary method, e.g. "/seatwise.v1.HoldService/HoldSeats"
    serve: Callable[[Any, Context], Awaitable[Message]]
    roles: frozenset[RoleName]
    sheddable: bool
    result: str  # the SessionResponse oneof field of its reply
    metric: str


# op field -> (service declaration, unary method, reply field)
_OPERATIONS: dict[str, tuple[ServiceDeclaration[Any], str, str]] = {
    "hold_seats": (HOLD_SERVICE, "HoldSeats", "hold"),
    "hold_best_available": (HOLD_SERVICE, "HoldBestAvailable", "hold"),
    "hold_general_admission": (HOLD_SERVICE, "HoldGeneralAdmission", "hold"),
    "extend_hold": (HOLD_SERVICE, "ExtendHold", "hold"),
    "release_hold": (HOLD_SERVICE, "ReleaseHold", "release"),
    "get_hold": (HOLD_SERVICE, "GetHold", "hold"),
    "commit_hold": (ORDER_SERVICE, "CommitHold", "commit"),
    # seasons and bundles
    "hold_season_seats": (SEASON_SERVICE, "HoldSeasonSeats", "season_hold"),
    "extend_season_hold": (SEASON_SERVICE, "ExtendSeasonHold", "season_hold"),
    "release_season_hold": (SEASON_SERVICE, "ReleaseSeasonHold", "season_release"),
    "get_season_hold": (SEASON_SERVICE, "GetSeasonHold", "season_hold"),
    "commit_season_hold": (SEASON_SERVICE, "CommitSeasonHold", "season_order"),
    # resale purchases
    "hold_listing": (AFTER_SALE_SERVICE, "HoldListing", "listing_hold"),
    "commit_listing": (AFTER_SALE_SERVICE, "CommitListing", "listing_commit"),
}


def operations(
    holds: HoldServicer,
    orders: OrderServicer,
    seasons: SeasonServicer | None = None,
    after_sale: AfterSaleServicer | None = None,
) -> dict[str, Operation]:
    """``seasons``, ``after_sale``: None serves none of their operations (answered as unknown)."""
    out = {}
    servicers: dict[str, Any] = {
        HOLD_SERVICE.name: holds,
        ORDER_SERVICE.name: orders,
        SEASON_SERVICE.name: seasons,
        AFTER_SALE_SERVICE.name: after_sale,
    }
    for name, (service, method, result) in _OPERATIONS.items():
        rule = service.methods[method]
        servicer = servicers[service.name]
        if servicer is None:
            continue
        out[name] = Operation(
            name=name,
            path=f"/{service.name}/{method}",
            serve=getattr(servicer, method),
            roles=rule.roles,
            sheddable=rule.admission is Admit.SHEDDABLE,
            result=result,
            metric=f"{METHOD}/{name}",
        )
    return out


# -- decoding: an undecodable message is answered under its id when that can be read ----------


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes that are not a SessionRequest; ``correlation_id`` None when unreadable too."""

    correlation_id: str | None
    error: str


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def correlation_id_of(data: bytes) -> str | None:
    """Field 1 (``correlation_id``) of a message's bytes, walking its top-level fields only."""
    i = 0
    try:
        while i < len(data):
            key, i = _varint(data, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(data, i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size, i = _varint(data, i)
                if i + size > len(data):
                    return None
                if field == 1:
                    return data[i : i + size].decode()
                i += size
            else:
                return None
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return None


def requests_of(message: session_pb2.SessionRequest | Garbled) -> list[session_pb2.SessionRequest | Garbled]:
    """The requests one message carries: itself, or the elements of its batch."""
    if isinstance(message, Garbled) or not message.batch:
        return [message]
    if message.correlation_id or message.WhichOneof("op") is not None:
        return [Garbled(message.correlation_id, "a message carries one operation or a batch, not both")]
    return [
        Garbled(element.correlation_id, "batches do not nest") if element.batch else element
        for element in message.batch
    ]


def decode_request(data: bytes) -> session_pb2.SessionRequest | Garbled:
    try:
        return session_pb2.SessionRequest.FromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        return Garbled(correlation_id_of(data), str(exc) or type(exc).__name__)


# -- the servicer -------------------------------------------------------------------------------


def _status(code: int, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code, message=message)


def message_error(status: status_pb2.Status, correlation_id: str) -> status_pb2.Status:
    """A message's error as a unary call's: one ``google.rpc.RequestInfo`` detail, with the
    stream's request id (server/request_ids.py: the id on its log lines and in its
    metadata) and, as ``serving_data``, ``correlation_id=<the message's>`` (any
    RequestInfo the status had is replaced by this one)."""
    info = error_details_pb2.RequestInfo(
        request_id=request_ids.current(), serving_data=f"correlation_id={clip(correlation_id, 200)}"
    )
    out = status_pb2.Status(code=status.code, message=status.message)
    out.details.extend(d for d in status.details if not d.Is(error_details_pb2.RequestInfo.DESCRIPTOR))
    out.details.add().Pack(info)
    return out


def _budget_s(request: session_pb2.SessionRequest, context: Context) -> float:
    """The message's own budget (default and cap: 30 s), within the stream's deadline."""
    seconds = DEFAULT_BUDGET_S
    if request.HasField("budget"):
        b = request.budget
        if b.seconds < 0 or b.nanos < 0 or b.nanos >= 1_000_000_000 or (b.seconds == 0 and b.nanos == 0):
            raise InvalidRequest("budget", "must be positive (unset: 30 s)")
        seconds = min(b.seconds + b.nanos / 1e9, DEFAULT_BUDGET_S)
    remaining = context.time_remaining()
    if remaining is not None:
        seconds = min(seconds, remaining)
    return call_budget(seconds)


class SessionServicer(session_pb2_grpc.SalesServiceServicer):
    def __init__(self, stores: Stores) -> None:
        self._ops = operations(
            HoldServicer(stores.sales, stores.rate_limits),
            OrderServicer(stores.sales),
            SEASON_SERVICE.factory(stores),
            AFTER_SALE_SERVICE.factory(stores),
        )
        self._admission = stores.admission
        self._budgets = stores.budgets
        self._stopping = stores.stopping
        self._process_slots: asyncio.Semaphore | None = None
        self._streams: weakref.WeakSet[SessionStream] = weakref.WeakSet()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def streams(self) -> list[SessionStream]:
        """The open streams (for tests and diagnostics)."""
        return list(self._streams)

    async def Session(
        self, request_iterator: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[session_pb2.SessionResponse]:
        if self._stopping.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING_MESSAGE)
        if self._process_slots is None:
            self._process_slots = asyncio.Semaphore(self._admission.max_session_inflight)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._stop_streams_when_stopping())
        stream = SessionStream(self._ops, self._admission, self._budgets, self._process_slots, context)
        self._streams.add(stream)
        async for answer in stream.run(request_iterator):
            yield answer

    async def _stop_streams_when_stopping(self) -> None:
        await self._stopping.wait()
        for stream in list(self._streams):
            stream.stop_reading(grpc.StatusCode.UNAVAILABLE, STOPPING_MESSAGE)


class SessionStream:
    """One open session: a reader, a task per message, and the writer (:meth:`run`)."""

    def __init__(
        self,
        ops: dict[str, Operation],
        admission: Admission,
        budgets: Budgets,
        process_slots: asyncio.Semaphore,
        context: Context,
    ) -> None:
        self._ops = ops
        self._admission = admission
        self._budgets = budgets
        self._process_slots = process_slots
        self._slots = asyncio.Semaphore(admission.max_session_stream_inflight)
        self._context = context
        self._principal = current_principal()
        metadata = dict(context.invocation_metadata() or ())
        self._batch_answers = metadata.get(BATCH_HEADER) == "1"
        # answers ready to write: (correlation id, answer, whether it owns the id), None: reader done
        self._answers: asyncio.Queue[tuple[str, session_pb2.SessionResponse, bool] | None] = asyncio.Queue()
        self._open_ids: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._ended: tuple[grpc.StatusCode, str] | None = None
        self._failure: BaseException | None = None
        self.outstanding = 0  # messages read and not yet answered (each holds both slots)
        self.read = 0  # messages read so far
        self.max_outstanding = 0

    def stop_reading(self, code: grpc.StatusCode, message: str) -> None:
        """Read nothing more; answer what is in flight; then end the stream with ``code``."""
        if self._ended is None:
            self._ended = (code, message)
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()

    async def run(self, requests: AsyncIterator[Any]) -> AsyncIterator[session_pb2.SessionResponse]:
        if self._ended is None:  # else the server began stopping before the stream started
            self._reader = asyncio.create_task(self._read(requests))
        else:
            self._answers.put_nowait(None)
        try:
            reading = True
            while reading or self.outstanding:
                item = await self._answers.get()
                if item is None:
                    reading = False
                    continue
                ready = [item]
                # the answers ready at this moment go out in one message, for a client that reads batches
                while self._batch_answers and len(ready) < MAX_BATCH_ANSWERS and not self._answers.empty():
                    more = self._answers.get_nowait()
                    if more is None:
                        reading = False
                        break
                    ready.append(more)
                if len(ready) == 1:
                    yield item[1]
                else:
                    yield session_pb2.SessionResponse(batch=[answer for _, answer, _ in ready])
                for correlation_id, _, owns in ready:
                    if owns:
                        self._open_ids.discard(correlation_id)
                    self._release()
        finally:
            await self._close()
        if self._failure is not None:
            raise self._failure
        if self._ended is not None:
            await self._context.abort(*self._ended)

    def _release(self) -> None:
        self.outstanding -= 1
        self._slots.release()
        self._process_slots.release()

    async def _close(self) -> None:
        """Stop the reader and the message tasks; give back the process's slots still held."""
        pending = [t for t in (self._reader, *self._tasks) if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for _ in range(self.outstanding):
            self._process_slots.release()
        self.outstanding = 0

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        iterator = aiter(requests)
        held = 0  # slots taken for the next message
        try:
            while True:
                await self._slots.acquire()
                held = 1
                await self._process_slots.acquire()
                held = 2
                try:
                    message = await anext(iterator)
                except StopAsyncIteration:
                    return
                for index, request in enumerate(requests_of(message)):
                    if index:  # each request of a batch takes its slots, as a message does
                        await self._take_slots()
                    held = 0
                    self.outstanding += 1
                    self.read += 1
                    self.max_outstanding = max(self.max_outstanding, self.outstanding)
                    if not self._start(request):
                        return
        except asyncio.CancelledError:
            pass  # stop_reading, or the stream is closing
        except Exception as exc:  # the request stream broke: end the stream after the answers
            self._failure = exc
        finally:
            if held >= 1:
                self._slots.release()
            if held == 2:
                self._process_slots.release()
            self._answers.put_nowait(None)

    async def _take_slots(self) -> None:
        """Both slots of one more request of a batch (none held if cancelled)."""
        await self._slots.acquire()
        try:
            await self._process_slots.acquire()
        except asyncio.CancelledError:
            self._slots.release()
            raise

    def _answer_error(self, correlation_id: str, status: status_pb2.Status, owns: bool = False) -> None:
        answer = session_pb2.SessionResponse(correlation_id=correlation_id)
        answer.error.CopyFrom(message_error(status, correlation_id))
        self._answers.put_nowait((correlation_id, answer, owns))

    def _refuse(self, correlation_id: str, exc: Exception) -> None:
        status = to_status(exc)
        assert status is not None, exc
        self._answer_error(correlation_id, status)

    def _start(self, message: Any) -> bool:
        """Answer or start one message; False: unreadable, stop reading."""
        if not isinstance(message, session_pb2.SessionRequest):
            correlation_id = message.correlation_id if isinstance(message, Garbled) else None
            error = getattr(message, "error", "undecodable")
            if correlation_id is None:
                self.outstanding -= 1
                self._slots.release()
                self._process_slots.release()
                self._ended = (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"a message is not a SessionRequest and its correlation_id cannot be read: {error}",
                )
                return False
            self._refuse(correlation_id, InvalidRequest("request", f"not a valid message: {error}"))
            return True
        correlation_id = message.correlation_id
        try:
            op = self._check(message, correlation_id)
            budget_s = _budget_s(message, self._context)
            authorize(op.path, op.roles, self._principal)
            self._admission.enter(op.sheddable)
        except Exception as exc:
            self._refuse(correlation_id, exc)
            return True
        self._open_ids.add(correlation_id)
        request = getattr(message, op.name)
        task = asyncio.create_task(self._serve(op, correlation_id, request, budget_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _check(self, message: session_pb2.SessionRequest, correlation_id: str) -> Operation:
        if not correlation_id:
            raise InvalidRequest("correlation_id", "required")
        if len(correlation_id) > MAX_CORRELATION_ID:
            raise InvalidRequest("correlation_id", f"at most {MAX_CORRELATION_ID} characters")
        if correlation_id in self._open_ids:
            raise InvalidRequest("correlation_id", "already used by an unanswered request of this stream")
        name = message.WhichOneof("op")
        op = self._ops.get(name) if name is not None else None
        if op is None:
            raise InvalidRequest("op", "unknown or missing operation")
        return op

    async def _serve(self, op: Operation, correlation_id: str, request: Any, budget_s: float) -> None:
        started = time.perf_counter()
        answer = session_pb2.SessionResponse(correlation_id=correlation_id)
        outcome = "OK"
        try:
            reply = await self._budgets.within(budget_s, op.serve(request, self._context))
            getattr(answer, op.result).CopyFrom(reply)
        except TimeoutError:
            outcome = "DeadlineExceeded"
            answer.error.CopyFrom(
                message_error(
                    _status(code_pb2.DEADLINE_EXCEEDED, f"{op.name}: not done within its budget"),
                    correlation_id,
                )
            )
        except Exception as exc:
            outcome = type(exc).__name__
            status = to_status(exc)
            if status is None:
                log.exception("rpc.internal_error", method=op.metric)
                status = internal()
            answer.error.CopyFrom(message_error(status, correlation_id))
        finally:
            self._admission.leave()
        self._answers.put_nowait((correlation_id, answer, True))
        metrics.observe_rpc(op.metric, outcome, time.perf_counter() - started)


def _add_to_server(servicer: SessionServicer, server: Any) -> None:
    """The generated ``add_SalesServiceServicer_to_server``, but with a decoder that
    turns bytes that are not a SessionRequest into :class:`Garbled` (answered per message)."""
    handlers = {
        "Session": grpc.stream_stream_rpc_method_handler(
            servicer.Session,
            request_deserializer=decode_request,
            response_serializer=session_pb2.SessionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


SERVICE = ServiceDeclaration(
    descriptor=session_pb2.DESCRIPTOR.services_by_name["SalesService"],
    add_to_server=_add_to_server,
    factory=SessionServicer,
    # the stream is never shed: each message is admitted by its operation's own rule
    methods={"Session": MethodRule(SALES, Admit.ALWAYS)},
)
