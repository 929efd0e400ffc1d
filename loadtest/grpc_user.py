"""A Locust user speaking seatwise's gRPC API, timing every call.

gRPC's sync API blocks in C unless told to cooperate with gevent, which is
what Locust runs its users on: :func:`loadtest.gevent_grpc.init_gevent` (gRPC's
own, made cheaper) must run after the standard library is monkey-patched
(importing ``locust`` does that) and before the first channel exists, so this
module does both in that order, at import. Channels are shared by the users of
one Locust process (a small pool, one TCP connection each, so ``seatwise serve
--workers N`` on SO_REUSEPORT sees several connections); every user calls them
through its own timed stubs (:class:`Stubs`): thin wrappers around method
callables built once per channel and shared by every user of the process.

Every unary call is reported to Locust's ``request`` event: request_type
``grpc``, name = the method (``HoldSeats``), the response time in ms, and on
a non-OK status an exception :class:`GrpcStatusError` whose text is the status
code (so Locust's failure table groups by method and code). A server stream is
reported twice: as ``grpc`` when its first message arrives (time to first
message), and as ``grpc-stream`` when it ends (response_time = how long it
was open, response_length = messages read).

To write a new kind of user (box office, scanning, ...), subclass
:class:`GrpcUser`, set ``role`` and use ``self.stubs``.

Cost per call matters: the load generator shares the machine's cores with the
server and Redis, so every microsecond spent here is taken from the service
under test. Hence no ``grpc.intercept_channel`` (it builds a new method
callable, a call-details tuple and an outcome object per call), no
``ByteSize()`` of every reply (the length is the size of the bytes received,
noted by the deserializer), and gRPC's gevent mode trimmed (:mod:`loadtest.gevent_grpc`).
"""

from __future__ import annotations

# isort: split
import locust  # first: importing locust monkey-patches the standard library for gevent

# isort: split
import itertools
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import gevent
import grpc
from google.protobuf.message import Message
from locust.env import Environment
from seatwise.v1 import events_pb2_grpc, sales_pb2_grpc, seatmap_pb2_grpc, tenancy_pb2_grpc

from loadtest.config import SetupInfo, channels_from_env, setup_from_env
from loadtest.gevent_grpc import init_gevent

REQUEST_TYPE = "grpc"
STREAM_TYPE = "grpc-stream"
# The outcome of a call that failed so is unknown: it may have been applied. Only calls that are
# safe to repeat are sent again (commits by idempotency key, holds by request id).
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

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


_NO_CONTEXT: dict[str, Any] = {}  # Locust's request event wants a context; nobody here writes to it


class _Reporter:
    """Fires Locust request events; ``name_override`` renames the calls made meanwhile."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.name_override: str | None = None
        self._hook: Any = environment.events.request

    def fire(
        self,
        request_type: str,
        name: str,
        started: float,
        length: int,
        error: BaseException | None,
    ) -> None:
        response_time = (time.perf_counter() - started) * 1000.0
        exception: Exception | None = None
        if error is not None:
            code = status_code(error)
            exception = GrpcStatusError(code) if code is not None else Exception(type(error).__name__)
        self._hook.fire(
            request_type=request_type,
            name=name,
            response_time=response_time,
            response_length=length,
            response=None,
            context=_NO_CONTEXT,
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


# The size of the last unary reply deserialized. A blocking call deserializes its reply in the
# calling greenlet right before returning, with no switch in between, so the caller reads its own.
_received = [0]


def _measuring(deserializer: Any) -> Any:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        _received[0] = len(data)
        return deserializer(data)

    return deserialize


class _Method:
    """One RPC on one channel, as gRPC's callable; built once, shared by every user of the process."""

    __slots__ = ("call", "name", "streaming")

    def __init__(self, name: str, call: Any, streaming: bool) -> None:
        self.name = name
        self.call = call
        self.streaming = streaming


class _MethodCollector:
    """Handed to a generated stub's constructor in place of a channel: collects its methods."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel: Any = channel  # the typing stubs do not know ``_registered_method``

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _Method:
        # a unary reply's size is taken as it is deserialized; a stream reports each message's
        deserializer = _measuring(response_deserializer)
        return self._method("unary_unary", method, request_serializer, deserializer, _registered_method)

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _Method:
        response = response_deserializer
        return self._method("unary_stream", method, request_serializer, response, _registered_method)

    def _method(
        self, kind: str, method: str, serializer: Any, deserializer: Any, registered: bool
    ) -> _Method:
        call = getattr(self._channel, kind)(
            method,
            request_serializer=serializer,
            response_deserializer=deserializer,
            _registered_method=registered,
        )
        return _Method(_method_name(method), call, streaming=kind == "unary_stream")


class _Timed:
    """A method of one channel, reported through one user's reporter."""

    __slots__ = ("_call", "_name", "_reporter")

    def __init__(self, method: _Method, reporter: _Reporter) -> None:
        self._call = method.call
        self._name = method.name
        self._reporter = reporter


class _TimedUnary(_Timed):
    """``method(request, metadata=..., timeout=...)``, timed and reported."""

    __slots__ = ()

    def __call__(self, request: Any, timeout: float | None = None, metadata: Any = None, **kw: Any) -> Any:
        reporter = self._reporter
        name = reporter.name_override or self._name
        started = time.perf_counter()
        try:
            response = self._call(request, timeout=timeout, metadata=metadata, **kw)
        except Exception as exc:
            reporter.fire(REQUEST_TYPE, name, started, 0, exc)
            raise
        reporter.fire(REQUEST_TYPE, name, started, _received[0], None)
        return response


class _TimedUnaryStream(_Timed):
    """``method(request, metadata=...)``: a :class:`_TimedStream`."""

    __slots__ = ()

    def __call__(self, request: Any, timeout: float | None = None, metadata: Any = None, **kw: Any) -> Any:
        name = self._reporter.name_override or self._name
        started = time.perf_counter()
        call = self._call(request, timeout=timeout, metadata=metadata, **kw)
        return _TimedStream(call, self._reporter, name, started)


class _TimedService:
    """A generated stub's look-alike whose methods are timed; each is bound on first use."""

    def __init__(self, methods: dict[str, _Method], reporter: _Reporter) -> None:
        self._methods = methods
        self._reporter = reporter

    def __getattr__(self, attr: str) -> Any:
        try:
            method = self._methods[attr]
        except KeyError:
            raise AttributeError(attr) from None
        bound = (_TimedUnaryStream if method.streaming else _TimedUnary)(method, self._reporter)
        setattr(self, attr, bound)  # later look-ups find it without __getattr__
        return bound


_STUB_CLASSES: dict[str, Any] = {
    "tenants": tenancy_pb2_grpc.TenantServiceStub,
    "seatmaps": seatmap_pb2_grpc.SeatMapServiceStub,
    "events": events_pb2_grpc.EventServiceStub,
    "holds": sales_pb2_grpc.HoldServiceStub,
    "orders": sales_pb2_grpc.OrderServiceStub,
}
_methods_by_channel: dict[int, dict[str, dict[str, _Method]]] = {}


def _channel_methods(channel: grpc.Channel) -> dict[str, dict[str, _Method]]:
    """Every service's methods on ``channel`` (built on first use, then shared)."""
    methods = _methods_by_channel.get(id(channel))
    if methods is None:
        collector = _MethodCollector(channel)
        methods = {
            service: {k: v for k, v in vars(stub_class(collector)).items() if isinstance(v, _Method)}
            for service, stub_class in _STUB_CLASSES.items()
        }
        _methods_by_channel[id(channel)] = methods
    return methods


@dataclass(frozen=True)
class Stubs:
    """Every seatwise service, each call timed and reported (typed as the generated stubs)."""

    tenants: tenancy_pb2_grpc.TenantServiceStub
    seatmaps: seatmap_pb2_grpc.SeatMapServiceStub
    events: events_pb2_grpc.EventServiceStub
    holds: sales_pb2_grpc.HoldServiceStub
    orders: sales_pb2_grpc.OrderServiceStub

    @classmethod
    def on(cls, channel: grpc.Channel, reporter: _Reporter) -> Stubs:
        methods = _channel_methods(channel)
        services = {name: cast(Any, _TimedService(methods[name], reporter)) for name in _STUB_CLASSES}
        return cls(**services)


def timed_stubs(environment: Environment, target: str, name: str | None = None) -> Stubs:
    """Stubs on a pooled channel whose calls are reported to ``environment`` (as ``name`` if given)."""
    reporter = _Reporter(environment)
    reporter.name_override = name
    return Stubs.on(channel_pool().get(target), reporter)


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
        self.stubs = Stubs.on(channel_pool().get(self.setup.target), self._reporter)

    def call_retrying(self, method: Any, request: Any, attempts: int, timeout_s: float | None = None) -> Any:
        """``method(request)``, sent again as it is (with backoff) while it fails with
        UNAVAILABLE or DEADLINE_EXCEEDED, ``attempts`` times in all; the last error is raised.
        Only for calls that are safe to repeat (see RETRYABLE)."""
        for attempt in range(attempts):
            try:
                return method(request, metadata=self.metadata, timeout=timeout_s or self.call_timeout_s)
            except grpc.RpcError as exc:
                if status_code(exc) not in RETRYABLE or attempt + 1 >= attempts:
                    raise
                gevent.sleep(min(0.2 * 2**attempt, 2.0) * random.uniform(0.5, 1.5))
        raise ValueError("attempts must be at least 1")

    @contextmanager
    def named(self, name: str) -> Iterator[None]:
        previous = self._reporter.name_override
        self._reporter.name_override = name
        try:
            yield
        finally:
            self._reporter.name_override = previous
