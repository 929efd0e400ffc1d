"""The native thread pool the load generator gives gRPC's gevent mode (loadtest.gevent_grpc).

No monkey-patching here (that would leak into the rest of the session): the
pool's functions block the native thread they run in, as gRPC's completion
queue waits do, while greenlets of this thread's hub wait for them.
"""

from __future__ import annotations

import threading
import time

import gevent
import pytest

from loadtest.gevent_grpc import NativeWaits


def _blocking_double(x: int) -> tuple[int, int]:
    time.sleep(0.01)  # a real (unpatched) sleep: blocks this native thread only
    return x * 2, threading.get_ident()


def _blocking_together(barrier: threading.Barrier, x: int) -> tuple[int, int]:
    """Blocks its native thread until ``barrier.parties`` calls wait at once: it only
    returns when they all run concurrently (one after another, it breaks)."""
    barrier.wait(timeout=30)
    return x * 2, threading.get_ident()


def test_blocking_calls_run_concurrently_in_native_threads() -> None:
    pool = NativeWaits(gevent.get_hub())
    together = threading.Barrier(20)
    waits = [gevent.spawn(pool.apply, _blocking_together, (together, i)) for i in range(20)]
    gevent.joinall(waits, timeout=60, raise_error=True)
    assert [w.value[0] for w in waits] == [i * 2 for i in range(20)]  # all 20 waited at once
    assert threading.get_ident() not in {w.value[1] for w in waits}
    assert pool.threads == 20  # one thread per wait in flight

    again = [gevent.spawn(pool.apply, _blocking_double, (i,)) for i in range(5)]
    gevent.joinall(again, timeout=10, raise_error=True)
    assert pool.threads == 20  # idle threads are reused


def test_an_exception_reaches_the_waiting_greenlet() -> None:
    pool = NativeWaits(gevent.get_hub())

    def fail() -> None:
        raise ValueError("no seats")

    with pytest.raises(ValueError, match="no seats"):
        gevent.spawn(pool.apply, fail).get(timeout=5)
    assert gevent.spawn(pool.apply, _blocking_double, (4,)).get(timeout=5)[0] == 8  # still serving
