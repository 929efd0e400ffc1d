"""Storefront gateways: each Locust worker process drives one asyncio gateway process.

The gateway (:mod:`loadtest.storefront`) is what a storefront backend is: its
buyers are coroutines over ``seatwise.client`` with batched sales sessions,
browsing an availability cache fed by one ``WatchAvailability`` stream. It runs
in a process of its own because the Locust process is gevent-patched (gRPC's
asyncio API does not complete calls there) and because gRPC's sync API in
gevent mode costs the load generator as much CPU as the server.

Here, on the Locust side:

* one :class:`GatewayBuyer` Locust user is one buyer in the gateway: starting
  and stopping users (``--users``, ``--spawn-rate``, the shape) only changes
  how many buyer coroutines the gateway runs (a count written to its stdin,
  coalesced over a spawn burst); the user itself idles;
* :class:`StorefrontProcess` starts the gateway with this process's
  environment, replays the operations it reports (batches on its stdout, see
  :mod:`loadtest.oplog`) into Locust's ``request`` event (request type
  ``session``, named after the unary method, with the operation's own end
  time for the raw records), and at test stop tells it to stop and waits for
  it: a waited-for child's CPU time is counted in this process's children's,
  which the runner counts as the load generator's.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Any

import gevent
import gevent.event
import grpc
from locust import User, constant, task
from locust.env import Environment

from loadtest.grpc_user import GrpcStatusError
from loadtest.oplog import STOP, Op, buyers_command, decode_ops

STOP_TIMEOUT_S = 20.0
COALESCE_S = 0.05  # a spawn burst becomes one count
_CODES = {code.name: code for code in grpc.StatusCode}
_NO_CONTEXT: dict[str, Any] = {}


def _exception(status: str) -> Exception | None:
    if not status:
        return None
    code = _CODES.get(status)
    return GrpcStatusError(code) if code is not None else Exception(status)


class StorefrontProcess:
    """The gateway process of this Locust worker, its command pipe and its report pipe."""

    def __init__(self, environment: Environment) -> None:
        self._hook: Any = environment.events.request
        self.process: subprocess.Popen[bytes] | None = None
        self.buyers = 0
        self._sent = 0
        self._changed = gevent.event.Event()
        self._reader: gevent.Greenlet[Any] | None = None
        # starting the process yields to other greenlets (gevent's Popen): users that start
        # meanwhile are counted, and the count is sent once it runs
        self._writer = gevent.spawn(self._start_and_write_counts)

    def add_buyers(self, count: int) -> None:
        self.buyers += count
        self._changed.set()

    def _start_and_write_counts(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loadtest.storefront"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._reader = gevent.spawn(self._read, self.process)
        stdin: Any = self.process.stdin
        while True:
            self._changed.wait()
            gevent.sleep(COALESCE_S)
            self._changed.clear()
            if self.buyers != self._sent:
                self._sent = self.buyers
                stdin.write(buyers_command(self.buyers))
                stdin.flush()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        stdout: Any = process.stdout
        for line in stdout:
            for op in decode_ops(line):
                self._fire(op)

    def _fire(self, op: Op) -> None:
        self._hook.fire(
            request_type=op.request_type,
            name=op.name,
            response_time=op.response_ms,
            response_length=op.length,
            response=None,
            context=_NO_CONTEXT,
            exception=_exception(op.status),
            end_epoch_s=op.end_s,
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the gateway to stop, replay its last reports, wait for it (bounded)."""
        self._writer.kill()
        process = self.process
        if process is None:
            return  # never started
        stdin: Any = process.stdin
        with contextlib.suppress(OSError, ValueError):
            stdin.write(STOP)
            stdin.close()
        if self._reader is not None:
            self._reader.join(timeout=timeout_s)
            self._reader.kill(block=False)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_storefront: StorefrontProcess | None = None
_hooked: list[Environment] = []


def storefront(environment: Environment) -> StorefrontProcess:
    """This process's gateway (started with its first buyer; stopped when the test stops)."""
    global _storefront
    if _storefront is None:
        _storefront = StorefrontProcess(environment)
        if environment not in _hooked:
            _hooked.append(environment)
            hooks: Any = environment.events
            hooks.test_stop.add_listener(_stop_storefront)
            hooks.quitting.add_listener(_stop_storefront)
    return _storefront


def _stop_storefront(**_: Any) -> None:
    global _storefront
    if _storefront is not None:
        gateway, _storefront = _storefront, None
        gateway.stop()


class GatewayBuyer(User):
    """One buyer in this process's storefront gateway (the journey runs there, not here)."""

    abstract = True
    wait_time = constant(3600)  # idle: stopping a waiting user is immediate

    def on_start(self) -> None:
        storefront(self.environment).add_buyers(1)

    def on_stop(self) -> None:
        if _storefront is not None:
            _storefront.add_buyers(-1)

    @task
    def shop(self) -> None:
        pass
