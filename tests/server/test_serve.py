"""`seatwise serve` as a user runs it: embedded Redis, admin key file, health, graceful stop."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import grpc
from seatwise.v1 import tenancy_pb2, tenancy_pb2_grpc

from tests.processes import free_port, spawn_serve, wait_serving


def test_serve_starts_embedded_redis_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = spawn_serve({"data_dir": str(tmp_path / "data"), "port": str(port), "log_format": "json"})
    try:
        target = f"127.0.0.1:{port}"
        wait_serving(target)
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        assert oct((tmp_path / "data" / "admin.key").stat().st_mode & 0o777) == "0o600"
        with grpc.insecure_channel(target) as channel:
            me = tenancy_pb2_grpc.TenantServiceStub(channel).WhoAmI(
                tenancy_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {key}")], timeout=5
            )
        assert (
            me.role == tenancy_pb2.ROLE_ROOT_ADMIN
        )  # the bootstrap key is the root admin (docs/platform.md)
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
    port = free_port()
    proc = spawn_serve({"data_dir": str(tmp_path / "data"), "port": str(port), "workers": "2"})
    try:
        target = f"127.0.0.1:{port}"
        wait_serving(target)
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        for _ in range(8):  # separate connections: the kernel spreads them over the workers
            with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                me = tenancy_pb2_grpc.TenantServiceStub(channel).WhoAmI(
                    tenancy_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {key}")], timeout=5
                )
                assert (
                    me.role == tenancy_pb2.ROLE_ROOT_ADMIN
                )  # the bootstrap key is the root admin (docs/platform.md)
        workers = [p for p in _children(proc.pid) if "redis" not in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, workers
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output.decode()
    assert output.decode().count("server.stopped") == 2
