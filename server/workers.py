"""Several server processes on one port (SO_REUSEPORT), sharing nothing but Redis.

The parent forks before any gRPC object exists (gRPC's core does not survive
a fork with live channels or servers), then only supervises: it forwards
SIGINT/SIGTERM to the workers and exits when they have all stopped. The
kernel spreads new connections across the workers' listening sockets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable

import structlog

from server.config import Config

log = structlog.get_logger("seatwise.workers")


def run_workers(config: Config, serve_one: Callable[[int], None]) -> None:
    """``config.workers`` processes, each running ``serve_one(index)`` (one ordinary
    single-process server, given by ``server.app``) on ``config.port``."""
    if config.port == 0:
        raise ValueError("--workers needs a fixed --port: each worker binds the same port")
    supervise(config.workers, serve_one, port=config.port)


def supervise(count: int, body: Callable[[int], None], *, port: int) -> None:
    """Fork ``count`` children running ``body(index)`` (which binds ``port`` with
    SO_REUSEPORT), forward SIGINT/SIGTERM to them and wait for them all."""
    children: list[int] = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                body(index)
            except Exception:
                log.exception("worker.crashed", worker=index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    log.info("workers.started", workers=len(children), pids=children, port=port)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    failed = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            failed += 1
    log.info("workers.stopped", failed=failed)
    if failed:
        raise SystemExit(1)
