"""A Locust user speaking seatwise's gRPC API, timing every call.

gRPC's sync API blocks in C unless told to cooperate with gevent, which is
what Locust runs its users on: :func:`grpc.experimental.gevent.init_gevent`
must run after the standard library is monkey-patched (importing ``locust``
does that) and before the first channel exists, so this module does both in
that order, at import. Channels are shared by the users of one Locust process
(a small pool, one TCP connection each, so ``seatwise serve --workers N`` on
SO_REUSEPORT sees several connections), and every user wraps them with its own
:class:`LocustInterceptor`.

Every unary call is reported to Locust's ``request`` event: request_type
``grpc``, name = the method (``HoldSeats``), the response time in ms, and on
a non-OK status an exception :class:`GrpcStatusError` whose text is the status
code (so Locust's failure table groups by method and code). A server stream is
reported twice: as ``grpc`` when its first message arrives (time to first
message), and as ``grpc-stream`` when it ends (response_time = how long it
was open, response_length = messages read).

To write a new kind of user (box office, scanning, ...), subclass
:class:`GrpcUser`, set ``role`` and use ``self.stubs``.
"""

from __future__ import annotations

# isort: split
import locust  # first: importing locust monkey-patches the standard library for gevent

# isort: split
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import grpc
from google.protobuf.message import Message
from locust.env import Environment
from seatwise.v1 import events_pb2_grpc, sales_pb2_grpc, seatmap_pb2_grpc, tenancy_pb2_grpc

from loadtest.config import SetupInfo, channels_from_env, setup_from_env

REQUEST_TYPE = "grpc"
STREAM_TYPE = "grpc-stream"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_gevent_lock = threading.Lock()
_gevent_ready = False


def init_gevent() -> None:
    """Make gRPC cooperate with gevent (once per process; before any channel)."""
    global _gevent_ready
    with _gevent_lock:
        if not _gevent_ready:
            from grpc.experimental import gevent as grpc_gevent  # type: ignore[attr-defined]

            grpc_gevent.init_gevent()
            _gevent_ready = True


init_gevent()


class GrpcStatusError(Exception):
    """A non-OK status, as Locust sees it: the text is the status code name."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(code.name)
        self.code = code
        self.details = details


def status_code(error: BaseException) -> grpc.StatusCode | None:
    """The status code of a failed call (a sync call's RpcError is also its Call)."""
    if isinstance(error, GrpcStatusError):
        return error.code
    if isinstance(error, grpc.RpcError):
        return cast(grpc.Call, error).code()
    return None


class ChannelPool:
    """A few channels per target and process, handed out round-robin."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._channels: dict[str, list[grpc.Channel]] = {}
        self._next: dict[str, Iterator[int]] = {}

    def get(self, target: str) -> grpc.Channel:
        if target not in self._channels:
            options = [
                ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 60_000),
            ]
            self._channels[target] = [
                grpc.insecure_channel(target, options=options) for _ in range(self.size)
            ]
            self._next[target] = itertools.cycle(range(self.size))
        return self._channels[target][next(self._next[target])]

    def close(self) -> None:
        for channels in self._channels.values():
            for channel in channels:
                channel.close()
        self._channels.clear()


_pool: ChannelPool | None = None


def channel_pool() -> ChannelPool:
    global _pool
    if _pool is None:
        _pool = ChannelPool(channels_from_env())
    return _pool


def _method_name(full: str | bytes) -> str:
    text = full.decode() if isinstance(full, bytes) else full
    return text.rsplit("/", 1)[-1]


class _Reporter:
    """Fires Locust request events; ``name_override`` renames the calls made meanwhile."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.name_override: str | None = None

    def name(self, method: str) -> str:
        return self.name_override or method

    def fire(
        self,
        request_type: str,
        name: str,
        started: float,
        length: int,
        error: BaseException | None,
    ) -> None:
        exception: Exception | None = None
        if error is not None:
            code = status_code(error)
            exception = GrpcStatusError(code) if code is not None else Exception(type(error).__name__)
        hook: Any = self.environment.events.request
        hook.fire(
            request_type=request_type,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            response=None,
            context={},
            exception=exception,
        )


class _TimedStream:
    """A server-stream call that reports its first message and its end (see module doc)."""

    def __init__(self, call: grpc.CallIterator[Any], reporter: _Reporter, name: str, started: float) -> None:
        self._call = call
        self._iter = iter(call)
        self._reporter = reporter
        self._name = name
        self._started = started
        self._messages = 0
        self._cancelled = False
        self._done = False

    def __iter__(self) -> _TimedStream:
        return self

    def __next__(self) -> Any:
        try:
            message = next(self._iter)
        except StopIteration:
            self._end(None)
            raise
        except grpc.RpcError as exc:
            cancelled = self._cancelled and status_code(exc) == grpc.StatusCode.CANCELLED
            self._end(None if cancelled else exc)
            raise
        if self._messages == 0:
            self._reporter.fire(REQUEST_TYPE, self._name, self._started, _size(message), None)
        self._messages += 1
        return message

    def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if self._messages == 0 and error is not None:  # never opened: a failed call
            self._reporter.fire(REQUEST_TYPE, self._name, self._started, 0, error)
        self._reporter.fire(STREAM_TYPE, self._name, self._started, self._messages, error)

    def cancel(self) -> bool:
        self._cancelled = True
        if not self._done:
            self._end(None)
        cancelled: bool = cast(Any, self._call).cancel()
        return cancelled

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._call, attr)


def _size(message: object) -> int:
    return message.ByteSize() if isinstance(message, Message) else 0


class LocustInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Times every call made through the channel it wraps."""

    def __init__(self, reporter: _Reporter) -> None:
        self._reporter = reporter

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        name = self._reporter.name(_method_name(client_call_details.method))
        started = time.perf_counter()
        outcome = continuation(client_call_details, request)
        error = outcome.exception()
        length = 0 if error is not None else _size(outcome.result())
        self._reporter.fire(REQUEST_TYPE, name, started, length, error)
        return outcome

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        name = self._reporter.name(_method_name(client_call_details.method))
        started = time.perf_counter()
        return _TimedStream(continuation(client_call_details, request), self._reporter, name, started)


@dataclass(frozen=True)
class Stubs:
    """Every seatwise service on one (intercepted) channel."""

    tenants: tenancy_pb2_grpc.TenantServiceStub
    seatmaps: seatmap_pb2_grpc.SeatMapServiceStub
    events: events_pb2_grpc.EventServiceStub
    holds: sales_pb2_grpc.HoldServiceStub
    orders: sales_pb2_grpc.OrderServiceStub

    @classmethod
    def on(cls, channel: grpc.Channel) -> Stubs:
        return cls(
            tenants=tenancy_pb2_grpc.TenantServiceStub(channel),
            seatmaps=seatmap_pb2_grpc.SeatMapServiceStub(channel),
            events=events_pb2_grpc.EventServiceStub(channel),
            holds=sales_pb2_grpc.HoldServiceStub(channel),
            orders=sales_pb2_grpc.OrderServiceStub(channel),
        )


def timed_stubs(environment: Environment, target: str, name: str | None = None) -> Stubs:
    """Stubs on a pooled channel whose calls are reported to ``environment`` (as ``name`` if given)."""
    reporter = _Reporter(environment)
    reporter.name_override = name
    return Stubs.on(grpc.intercept_channel(channel_pool().get(target), LocustInterceptor(reporter)))


class GrpcUser(locust.User):
    """Base of every seatwise user: the setup, an API key, timed stubs.

    ``self.stubs.<service>.<Method>(request, metadata=self.metadata, timeout=...)``
    is timed and reported; ``with self.named("CommitHold (lost reply)"):``
    reports the calls inside under another name.
    """

    abstract = True
    role: ClassVar[Literal["storefront", "organizer"]] = "storefront"
    call_timeout_s: ClassVar[float] = 10.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.setup: SetupInfo = setup_from_env()
        key = self.setup.storefront_key if self.role == "storefront" else self.setup.organizer_key
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {key}"),)
        self._reporter = _Reporter(environment)
        channel = grpc.intercept_channel(
            channel_pool().get(self.setup.target), LocustInterceptor(self._reporter)
        )
        self.stubs = Stubs.on(channel)

    @contextmanager
    def named(self, name: str) -> Iterator[None]:
        previous = self._reporter.name_override
        self._reporter.name_override = name
        try:
            yield
        finally:
            self._reporter.name_override = previous
