"""Several server processes on one port (SO_REUSEPORT), sharing nothing but Redis.

The parent forks before any gRPC object exists (gRPC's core does not survive
a fork with live channels or servers), then only supervises: it forwards
SIGINT/SIGTERM to the workers and exits when they have all stopped. The
kernel spreads new connections across the workers' listening sockets.

A worker that dies while nobody asked it to stop (a crash, the OOM killer) is
forked again in its place, so an on-sale does not go on at a fraction of its
capacity with nothing but a log line to say so. A worker that keeps dying
(``MAX_RESTARTS`` restarts within ``RESTART_WINDOW_S``: a port taken, a bad
setting) makes the supervisor stop the others and exit 1, for the service
manager to see.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator

import structlog

from server.config import Config

log = structlog.get_logger("seatwise.workers")

MAX_RESTARTS = 5  # restarts within RESTART_WINDOW_S before the supervisor gives up
RESTART_WINDOW_S = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_workers(
    config: Config, serve_one: Callable[[int], None], other_exited: Callable[[int, int], None] | None = None
) -> None:
    """``config.workers`` processes, each running ``serve_one(index)`` (one ordinary
    single-process server, given by ``server.app``) on ``config.port``; ``other_exited(pid,
    code)`` hears of this process's other children (the embedded Redis) exiting."""
    if config.port == 0:
        raise ValueError("--workers needs a fixed --port: each worker binds the same port")
    supervise(config.workers, serve_one, port=config.port, other_exited=other_exited)


def _fork(index: int, body: Callable[[int], None]) -> int:
    """A child running ``body(index)``; returns its pid (in the parent)."""
    pid = os.fork()
    if pid != 0:
        return pid
    code = 0
    try:
        for signum in STOP_SIGNALS:  # not the parent's forwarding handler: the body sets its own
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held by the forking parent
        body(index)
    except Exception:
        log.exception("worker.crashed", worker=index)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class RestartBudget:
    """At most MAX_RESTARTS restarts within any RESTART_WINDOW_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._recent: deque[float] = deque()

    def take(self) -> bool:
        """Whether one more restart is allowed now (then it counts)."""
        now = self._clock()
        while self._recent and self._recent[0] <= now - RESTART_WINDOW_S:
            self._recent.popleft()
        if len(self._recent) >= MAX_RESTARTS:
            return False
        self._recent.append(now)
        return True


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered at the end) in this thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def supervise(
    count: int,
    body: Callable[[int], None],
    *,
    port: int,
    other_exited: Callable[[int, int], None] | None = None,
) -> None:
    """Fork ``count`` children running ``body(index)`` (which binds ``port`` with
    SO_REUSEPORT), fork again one that dies unasked, forward SIGINT/SIGTERM to them and
    wait for them all; exit 1 when one failed to stop cleanly or kept dying. Another
    child's exit goes to ``other_exited(pid, code)``."""
    children: dict[int, int] = {}  # pid -> index
    stopping = False
    restarts = RestartBudget()

    def stop_all(signum: int) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    # a stop signal while the workers are forked waits until every one is known
    with _stop_signals_held():
        for index in range(count):
            children[_fork(index, body)] = index
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda received, _frame: stop_all(received))
    log.info("workers.started", workers=len(children), pids=list(children), port=port)
    failed = 0
    while children:
        pid, status = os.wait()
        code = os.waitstatus_to_exitcode(status)
        if pid not in children:  # another child of this process (the embedded Redis)
            if other_exited is not None and not stopping:
                other_exited(pid, code)
            continue
        # a stop signal now would miss a replacement not yet in ``children``: it waits
        with _stop_signals_held():
            index = children.pop(pid)
            if stopping:
                # asked to stop: a clean exit, or the stop signal itself (a worker still starting)
                if code != 0 and -code not in STOP_SIGNALS:
                    failed += 1
                continue
            if not restarts.take():
                log.error("workers.giving_up", worker=index, code=code, restarts=MAX_RESTARTS)
                failed += 1
                stop_all(signal.SIGTERM)
                continue
            replacement = _fork(index, body)
            children[replacement] = index
            log.warning("worker.restarted", worker=index, died=pid, code=code, pid=replacement)
    log.info("workers.stopped", failed=failed)
    if failed:
        raise SystemExit(1)
