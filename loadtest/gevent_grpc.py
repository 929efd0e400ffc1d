"""gRPC's sync API under gevent, made cheap enough for a load generator.

:func:`init_gevent` runs :func:`grpc.experimental.gevent.init_gevent` (after the
standard library is monkey-patched, before any channel exists) and then
replaces two things that cost the load generator CPU on every request, CPU
that the server under test shares on a small machine:

* **The native thread pool.** In gevent mode gRPC waits for each blocking
  call's completion in a native thread (``g_gevent_threadpool.apply``; one
  thread per call in flight, one more per channel with open streams). gevent's
  hub pool builds a ``ThreadResult`` with its own libev async watcher per call
  and hands tasks over through Python-level queues and conditions, and it
  stops at 10 threads, so calls queued behind each other (and behind the
  streams) inside Locust. :class:`NativeWaits` gives each wait to an idle
  thread through a C ``SimpleQueue`` and wakes the waiting greenlets through
  one shared async watcher; it grows to as many threads as waits in flight.
* **The 0.1 s stream poll.** A stream reader waits on a condition with a 0.1 s
  timeout so that a main thread could take signals; greenlets need no such
  poll (the hub handles signals), and a few hundred readers polling cost a
  noticeable share of a core. Readers are still woken at once by every message
  and by ``cancel()``; only the idle re-checks become rarer.

Both are private seams of grpcio (``cygrpc.g_gevent_threadpool``,
``grpc._common.MAXIMUM_WAIT_TIMEOUT``); when a grpcio release no longer has
them, gRPC's own behaviour is kept and a warning says so.
"""

from __future__ import annotations

import _queue
import collections
import threading
import warnings
from collections.abc import Callable
from typing import Any

import gevent
import gevent.monkey
from gevent.hub import Hub, Waiter

STREAM_WAIT_POLL_S = 5.0

_start_native_thread: Callable[..., int] = gevent.monkey.get_original("_thread", "start_new_thread")
_lock = threading.Lock()
_ready = False


class NativeWaits:
    """Runs blocking functions in native threads for the greenlets of one hub (gRPC's ``apply``).

    Only the hub's thread calls :meth:`apply`, so the counters need no lock;
    worker threads touch only the task queue, the results deque (both
    thread-safe) and the async watcher's ``send``.
    """

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._tasks: Any = _queue.SimpleQueue()
        self._results: collections.deque[tuple[Waiter, bool, Any]] = collections.deque()
        self._wakeup: Any = hub.loop.async_()
        self._wakeup.ref = False  # never keeps the hub alive by itself
        self._wakeup.start(self._deliver)
        self._in_flight = 0
        self.threads = 0

    def apply(self, func: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        waiter = Waiter(self._hub)
        self._in_flight += 1
        try:
            if self._in_flight > self.threads:  # every thread is busy: one more
                self.threads += 1
                _start_native_thread(self._work, ())
            self._tasks.put((func, args, kwargs or {}, waiter))
            return waiter.get()
        finally:
            self._in_flight -= 1

    def _work(self) -> None:
        take, results, wake = self._tasks.get, self._results, self._wakeup.send
        while True:
            func, args, kwargs, waiter = take()
            try:
                results.append((waiter, True, func(*args, **kwargs)))
            except BaseException as exc:
                results.append((waiter, False, exc))
            wake()

    def _deliver(self) -> None:  # in the hub
        results = self._results
        while results:
            waiter, ok, value = results.popleft()
            if ok:
                waiter.switch(value)
            else:
                waiter.throw(value)


def init_gevent() -> None:
    """Make gRPC cooperate with gevent, cheaply (once per process; before any channel)."""
    global _ready
    with _lock:
        if _ready:
            return
        from grpc import _common as grpc_common
        from grpc._cython import cygrpc  # type: ignore[attr-defined]
        from grpc.experimental import gevent as grpc_gevent  # type: ignore[attr-defined]

        grpc_gevent.init_gevent()
        if hasattr(cygrpc, "g_gevent_threadpool"):
            cygrpc.g_gevent_threadpool = NativeWaits(gevent.get_hub())
        else:
            warnings.warn("grpcio has no g_gevent_threadpool: keeping gevent's pool", stacklevel=2)
        if hasattr(grpc_common, "MAXIMUM_WAIT_TIMEOUT"):
            grpc_common.MAXIMUM_WAIT_TIMEOUT = STREAM_WAIT_POLL_S
        else:
            warnings.warn("grpcio has no MAXIMUM_WAIT_TIMEOUT: streams poll as before", stacklevel=2)
        _ready = True
