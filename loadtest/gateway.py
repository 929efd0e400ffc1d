"""A storefront gateway: one per Locust process, multiplexing its buyers over sales sessions.

A real storefront fleet does not open a gRPC call per buyer operation: each
backend process keeps a few ``SalesService.Session`` streams open and sends
every buyer's hold, release and commit over them (docs/api.md, "Sales
sessions"). :class:`Gateway` is that backend for the users of one Locust
process, on gRPC's sync API in gevent mode (:mod:`loadtest.gevent_grpc`):

* each :class:`GatewaySession` is one stream-stream call whose request
  iterator is fed from a gevent queue (gRPC's own sender greenlet takes from
  it, putting what has queued up meanwhile in one batch) and whose answers
  (batched by the server too) are read by one reader greenlet that resolves the
  waiting buyer's :class:`gevent.event.AsyncResult` by correlation id;
* a stream that ends fails its unanswered operations with ``UNAVAILABLE``
  (:class:`SessionError`; they may or may not have been applied) and is
  reopened by the next operation, after an exponential backoff with full
  jitter while it keeps failing (as ``seatwise.client`` does);
* :class:`SessionError` is a :class:`grpc.RpcError` that looks like a failed
  unary call (``code()``, ``details()``, and the ``google.rpc.Status`` in
  its trailing metadata), so the buyer journeys of :mod:`loadtest.buyers`,
  their retries and their reading of ``PreconditionFailure`` details run
  unchanged: :func:`session_stubs` swaps the ``holds`` and ``orders`` stubs
  of a user for session-backed look-alikes; browsing stays unary.

Retries follow the client's safe-retry rules: the journeys send a hold again
only with its ``request_id`` and a commit only with its idempotency key, and
never a release. Each operation is reported to Locust's ``request`` event as
request type ``session`` (:data:`SESSION_TYPE`) named after its unary method
(``HoldBestAvailable``, ``CommitHold``, ``... (lost reply)``); the streams
themselves are not reported.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.queue
import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from locust.env import Environment
from seatwise.v1 import session_pb2, session_pb2_grpc

from loadtest.config import ENV_SESSIONS, SetupInfo
from loadtest.grpc_user import GrpcStatusError, GrpcUser, Stubs, _Reporter, channel_pool

SESSION_TYPE = "session"
DEFAULT_SESSIONS = 4
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 2.0
BATCH_HEADER = "seatwise-batch"
MAX_BATCH = 64
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# unary method -> session op
HOLDS_OPS = {
    "HoldSeats": "hold_seats",
    "HoldBestAvailable": "hold_best_available",
    "HoldGeneralAdmission": "hold_general_admission",
    "ExtendHold": "extend_hold",
    "ReleaseHold": "release_hold",
    "GetHold": "get_hold",
}
ORDERS_OPS = {"CommitHold": "commit_hold"}
_END = object()


def sessions_from_env(default: int = DEFAULT_SESSIONS) -> int:
    raw = os.environ.get(ENV_SESSIONS)
    return max(1, int(raw)) if raw else default


class SessionError(grpc.RpcError):
    """An operation's failure, shaped like a failed unary call (what the journeys catch)."""

    def __init__(self, status: status_pb2.Status) -> None:
        self.status = status
        self._code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        super().__init__(f"{self._code.name}: {status.message}")

    @classmethod
    def of(cls, code: grpc.StatusCode, message: str) -> SessionError:
        return cls(status_pb2.Status(code=code.value[0], message=message))

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return str(self.status.message)

    def trailing_metadata(self) -> Any:  # ((key, the serialized google.rpc.Status),)
        return ((_STATUS_DETAILS_KEY, self.status.SerializeToString()),)


class GatewaySession:
    """One ``SalesService.Session`` stream, reopened on demand after it ends."""

    def __init__(self, channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = session_pb2_grpc.SalesServiceStub(channel)
        self._metadata = (*metadata, (BATCH_HEADER, "1"))  # answers batched too
        self._outbox: gevent.queue.Queue[Any] | None = None
        self._call: Any = None
        self._pending: dict[str, gevent.event.AsyncResult] = {}
        self._ids = itertools.count()
        self.failures = 0  # consecutive ends without an answer: the backoff's exponent
        self.opened = 0

    @staticmethod
    def _drain(outbox: gevent.queue.Queue[Any]) -> Iterator[Any]:
        """The stream's requests: what the buyers queued while the last write was under
        way goes out in one batch (as ``seatwise.client`` does)."""
        while True:
            ready = [outbox.get()]
            while len(ready) < MAX_BATCH and not outbox.empty():
                ready.append(outbox.get_nowait())
            ended = _END in ready
            ready = [m for m in ready if m is not _END]
            if len(ready) == 1:
                yield ready[0]
            elif ready:
                yield session_pb2.SessionRequest(batch=ready)
            if ended:
                return

    def _open(self) -> gevent.queue.Queue[Any]:
        if self._outbox is None:
            outbox: gevent.queue.Queue[Any] = gevent.queue.Queue()
            call = self._stub.Session(self._drain(outbox), metadata=self._metadata)
            self._outbox, self._call = outbox, call
            self.opened += 1
            gevent.spawn(self._read, call, outbox)
        return self._outbox

    def _read(self, call: Any, outbox: gevent.queue.Queue[Any]) -> None:
        code, details = grpc.StatusCode.UNAVAILABLE, "the server closed the session"
        try:
            for message in call:
                self.failures = 0
                for answer in message.batch or (message,):
                    result = self._pending.pop(answer.correlation_id, None)
                    if result is not None:
                        result.set(answer)
        except grpc.RpcError as exc:
            code, details = call.code(), call.details() or str(exc)
        finally:
            if self._call is call:
                self._outbox, self._call = None, None
                self.failures += 1
            outbox.put(_END)
            lost = SessionError.of(
                grpc.StatusCode.UNAVAILABLE, f"session ended ({code.name}: {details}) before answering"
            )
            pending, self._pending = self._pending, {}
            for result in pending.values():
                result.set_exception(lost)

    def request(self, op: str, request: Message, timeout_s: float) -> session_pb2.SessionResponse:
        """Send one operation and wait up to ``timeout_s`` for its answer (its budget too)."""
        if self.failures:  # reconnecting: exponential backoff with full jitter
            pause = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (self.failures - 1)))
            pause = min(pause, timeout_s / 2)
            gevent.sleep(pause)
            timeout_s = max(timeout_s - pause, 0.001)
        outbox = self._open()
        correlation_id = str(next(self._ids))
        message = session_pb2.SessionRequest(correlation_id=correlation_id)
        getattr(message, op).CopyFrom(request)
        message.budget.FromMilliseconds(max(int(timeout_s * 1000), 1))
        result = gevent.event.AsyncResult()
        self._pending[correlation_id] = result
        outbox.put(message)
        try:
            answer: session_pb2.SessionResponse = result.get(timeout=timeout_s)
        except gevent.Timeout:
            raise SessionError.of(grpc.StatusCode.DEADLINE_EXCEEDED, f"{op}: no answer in time") from None
        finally:
            self._pending.pop(correlation_id, None)
        return answer

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()


class Gateway:
    """The storefront backend of one Locust process: a few sessions, used in turn."""

    def __init__(self, setup: SetupInfo, sessions: int) -> None:
        metadata = (("authorization", f"Bearer {setup.storefront_key}"),)
        pool = channel_pool()
        self.sessions = [GatewaySession(pool.get(setup.target), metadata) for _ in range(sessions)]
        self._turn = itertools.cycle(range(sessions))

    def call(self, op: str, request: Message, timeout_s: float) -> Any:
        """One operation's unary reply; a :class:`SessionError` when it failed."""
        session = self.sessions[next(self._turn)]
        answer = session.request(op, request, timeout_s)
        kind = answer.WhichOneof("result")
        if kind == "error":
            raise SessionError(answer.error)
        if kind is None:
            raise SessionError.of(grpc.StatusCode.UNKNOWN, f"{op}: an answer without a result")
        return getattr(answer, kind)

    def close(self) -> None:
        for session in self.sessions:
            session.close()


_gateway: Gateway | None = None


def gateway(environment: Environment, setup: SetupInfo) -> Gateway:
    """This process's gateway (made on first use; its streams are cancelled when the test stops)."""
    global _gateway
    if _gateway is None:
        _gateway = Gateway(setup, sessions_from_env())
        hook: Any = environment.events.test_stop
        hook.add_listener(lambda **_: _close_gateway())
    return _gateway


def _close_gateway() -> None:
    global _gateway
    if _gateway is not None:
        _gateway.close()
        _gateway = None


class _SessionMethod:
    """``method(request, timeout=..., metadata=...)`` over the gateway, timed and reported."""

    __slots__ = ("_gateway", "_name", "_op", "_reporter")

    def __init__(self, gw: Gateway, op: str, name: str, reporter: _Reporter) -> None:
        self._gateway = gw
        self._op = op
        self._name = name
        self._reporter = reporter

    def __call__(self, request: Message, timeout: float | None = None, metadata: Any = None) -> Any:
        # ``metadata`` is the buyer's key: a session is authenticated once, with the gateway's
        reporter = self._reporter
        name = reporter.name_override or self._name
        started = time.perf_counter()
        try:
            reply = self._gateway.call(self._op, request, timeout or 10.0)
        except SessionError as exc:
            reporter.fire(SESSION_TYPE, name, started, 0, GrpcStatusError(exc.code()))
            raise
        reporter.fire(SESSION_TYPE, name, started, reply.ByteSize(), None)
        return reply


class _SessionService:
    def __init__(self, gw: Gateway, ops: dict[str, str], reporter: _Reporter) -> None:
        for name, op in ops.items():
            setattr(self, name, _SessionMethod(gw, op, name, reporter))


def session_stubs(stubs: Stubs, gw: Gateway, reporter: _Reporter) -> Stubs:
    """``stubs`` with holds and orders going over ``gw``'s sessions (the rest stays unary)."""
    holds: Any = _SessionService(gw, HOLDS_OPS, reporter)
    orders: Any = _SessionService(gw, ORDERS_OPS, reporter)
    return dataclasses.replace(stubs, holds=holds, orders=orders)


class GatewayUser(GrpcUser):
    """A buyer whose holds, releases and commits go through its process's gateway.

    Mix in before a journey of :mod:`loadtest.buyers`:
    ``class GatewayBuyer(GatewayUser, BestAvailableBuyer)``.
    """

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.stubs = session_stubs(self.stubs, gateway(environment, self.setup), self._reporter)
