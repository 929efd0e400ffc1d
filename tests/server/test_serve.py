"""`seatwise serve` as a user runs it: embedded Redis, admin key file, health, graceful stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from seatwise.v1 import tenancy_pb2, tenancy_pb2_grpc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_serving(target: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError("server never reported SERVING")


def test_serve_starts_embedded_redis_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATWISE_")}
    env |= {
        "SEATWISE_DATA_DIR": str(tmp_path / "data"),
        "SEATWISE_PORT": str(port),
        "SEATWISE_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        target = f"127.0.0.1:{port}"
        _wait_serving(target)
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        assert oct((tmp_path / "data" / "admin.key").stat().st_mode & 0o777) == "0o600"
        with grpc.insecure_channel(target) as channel:
            me = tenancy_pb2_grpc.TenantServiceStub(channel).WhoAmI(
                tenancy_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {key}")], timeout=5
            )
        assert me.role == tenancy_pb2.ROLE_PLATFORM_ADMIN
        assert (tmp_path / "data" / "redis" / "appendonlydir").exists() or list(
            (tmp_path / "data" / "redis").glob("*.aof")
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    log = output.decode()
    assert proc.returncode == 0, log
    assert "server.stopped" in log
    assert "redis.embedded_stopped" in log
    assert key not in log  # secrets never logged


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def test_serve_with_workers_shares_one_port(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATWISE_")}
    env |= {"SEATWISE_DATA_DIR": str(tmp_path / "data"), "SEATWISE_PORT": str(port), "SEATWISE_WORKERS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        target = f"127.0.0.1:{port}"
        _wait_serving(target)
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        for _ in range(8):  # separate connections: the kernel spreads them over the workers
            with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                me = tenancy_pb2_grpc.TenantServiceStub(channel).WhoAmI(
                    tenancy_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {key}")], timeout=5
                )
                assert me.role == tenancy_pb2.ROLE_PLATFORM_ADMIN
        workers = [p for p in _children(proc.pid) if "redis" not in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, workers
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output.decode()
    assert output.decode().count("server.stopped") == 2
