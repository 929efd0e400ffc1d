"""`seatwise serve` as a child process, the way an operator runs it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports_in_a_row(count: int) -> int:
    """A port p with p .. p + count - 1 all free now (worker i serves metrics on p + i)."""
    for _ in range(100):
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for k in range(1, count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", first + k))
            except OSError:
                continue
        return first
    raise RuntimeError(f"no {count} free ports in a row")


def spawn_serve(
    settings: dict[str, str], *, stdout: int = subprocess.PIPE, stderr: int | None = subprocess.STDOUT
) -> subprocess.Popen[bytes]:
    """Start `python -m server.cli serve` with only these SEATWISE_* settings.

    Output is piped by default: read it with ``communicate()``, which also closes the pipes.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATWISE_")}
    env |= {f"SEATWISE_{k.upper()}": v for k, v in settings.items()}
    command = [sys.executable, "-m", "server.cli", "serve"]
    return subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)


def wait_serving(target: str, within_s: float = 20.0) -> None:
    """Until the health service says SERVING (Redis reachable, server up)."""
    deadline = time.monotonic() + within_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{target} never reported SERVING")
