"""`seatwise serve` as a user runs it: embedded Redis, admin key file, health, graceful stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis as syncredis
from prometheus_client.parser import text_string_to_metric_families
from seatwise.v1 import tenancy_pb2, tenancy_pb2_grpc

from server.redis_process import EmbeddedRedis
from server.workers import MAX_RESTARTS
from tests.processes import free_port, free_ports_in_a_row, spawn_serve, wait_serving

WAIT_S = 60.0  # a safety net against a hang, never a measured time


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


def _metrics(metrics_port: int) -> str:
    """The metrics page on ``metrics_port``, once its worker serves it: a worker forked
    after the first answered may not listen yet (the wait is a safety net, not a timing)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                return str(response.read().decode())
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _who_am_i_calls(metrics_port: int) -> float:
    """WhoAmI calls answered OK by the worker serving metrics on ``metrics_port``."""
    text = _metrics(metrics_port)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "seatwise_rpc_total"
        and sample.labels == {"method": "/seatwise.v1.TenantService/WhoAmI", "outcome": "OK"}
    )


def test_serve_with_workers_shares_one_port(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_ports_in_a_row(2)
    log_path = tmp_path / "serve.log"
    settings = {"data_dir": str(tmp_path / "data"), "port": str(port), "workers": "2"}
    with _serving(settings | {"metrics_port": str(metrics_port)}, log_path) as proc:
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
        assert len(_workers(proc)) == 2
        # each worker serves its own metrics, worker i on the metrics port + i
        assert _who_am_i_calls(metrics_port) + _who_am_i_calls(metrics_port + 1) == 8
        log = _stopped(proc, log_path)
    assert proc.returncode == 0, log
    assert log.count("server.stopped") == 2


def _wait_for_lines(log_path: Path, text: str, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the processes have written ``text`` to the log ``count`` times (the deadline
    is a safety net, not a timing)."""
    deadline = time.monotonic() + WAIT_S
    while log_path.read_text().count(text) < count:
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, f"never logged {text!r}: {log_path.read_text()}"
        time.sleep(0.05)


@contextlib.contextmanager
def _serving(settings: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`seatwise serve` with these settings, its output in ``log_path``; killed at the end
    should the test leave it running."""
    with log_path.open("wb") as log_file:
        proc = spawn_serve(settings, stdout=log_file.fileno())
    try:
        yield proc
    except AssertionError as failed:  # with what the server said
        raise AssertionError(f"{failed}\n--- seatwise serve's log ---\n{log_path.read_text()}") from failed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stopped(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    """SIGTERM, then the process's log once it has exited."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=WAIT_S)
    return log_path.read_text()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_signal_during_startup_ends_the_process_cleanly(tmp_path: Path, workers: int) -> None:
    """SIGTERM while startup waits on Redis (paused here): every process gives startup up
    and exits 0 with "server.stopped", rather than dying of the signal half-started."""
    redis = EmbeddedRedis(tmp_path / "redis")
    redis.start()
    try:
        syncredis.Redis.from_url(redis.url).execute_command("CLIENT", "PAUSE", 600_000, "ALL")
        log_path = tmp_path / "serve.log"
        settings = {"data_dir": str(tmp_path / "data"), "redis_url": redis.url, "port": str(free_port())}
        with _serving(settings | {"workers": str(workers)}, log_path) as proc:
            # each server process logs this as its startup begins, then waits on Redis
            _wait_for_lines(log_path, "ticket_keys.unencrypted", workers, proc)
            log = _stopped(proc, log_path)
        assert proc.returncode == 0, log
        assert log.count("server.stopped") == workers, log
        assert "server.started" not in log
    finally:
        redis.stop()


def _workers(proc: subprocess.Popen[bytes]) -> list[int]:
    return [p for p in _children(proc.pid) if "redis" not in Path(f"/proc/{p}/cmdline").read_text()]


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    settings = {"data_dir": str(tmp_path / "data"), "port": str(port), "workers": "2"}
    with _serving(settings, log_path) as proc:
        target = f"127.0.0.1:{port}"
        wait_serving(target)
        _wait_for_lines(log_path, "server.started", 2, proc)
        first = _workers(proc)
        assert len(first) == 2, first
        os.kill(first[0], signal.SIGKILL)  # the OOM killer, say
        _wait_for_lines(log_path, "worker.restarted", 1, proc)
        _wait_for_lines(log_path, "server.started", 3, proc)  # the replacement serves
        now = _workers(proc)
        assert len(now) == 2, now
        assert first[0] not in now
        assert first[1] in now
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        for _ in range(8):  # separate connections, spread over both workers by the kernel
            with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                tenancy_pb2_grpc.TenantServiceStub(channel).WhoAmI(
                    tenancy_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {key}")], timeout=5
                )
        log = _stopped(proc, log_path)
    assert proc.returncode == 0, log  # stopped as asked; the replaced worker was not a failure
    assert log.count("server.stopped") == 2, log


def test_a_worker_that_keeps_dying_stops_the_service(tmp_path: Path) -> None:
    """Worker 1 cannot serve its metrics (the port is taken): it dies at every start. The
    supervisor restarts it a few times, then stops worker 0 and exits 1."""
    port, metrics_port = free_port(), free_ports_in_a_row(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", metrics_port + 1))
        taken.listen()
        log_path = tmp_path / "serve.log"
        settings = {"data_dir": str(tmp_path / "data"), "port": str(port), "workers": "2"}
        with _serving(settings | {"metrics_port": str(metrics_port)}, log_path) as proc:
            proc.wait(timeout=WAIT_S)
    log = log_path.read_text()
    assert proc.returncode == 1, log
    assert log.count("worker.restarted") == MAX_RESTARTS, log
    assert "workers.giving_up" in log
    assert log.count("worker.crashed") == MAX_RESTARTS + 1, log


def _redis_pid(proc: subprocess.Popen[bytes]) -> int | None:
    redis_children = [p for p in _children(proc.pid) if "redis" in Path(f"/proc/{p}/cmdline").read_text()]
    return redis_children[0] if redis_children else None


@pytest.mark.parametrize("workers", [1, 2])
def test_an_embedded_redis_that_dies_is_started_again(tmp_path: Path, workers: int) -> None:
    """kill -9 of the embedded Redis: it comes back with its data (every key written before
    the kill) and the service answers again."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    settings = {"data_dir": str(tmp_path / "data"), "port": str(port), "workers": str(workers)}
    with _serving(settings, log_path) as proc:
        target = f"127.0.0.1:{port}"
        wait_serving(target)
        socket_path = str(tmp_path / "data" / "redis" / "redis.sock")
        before = set(syncredis.Redis(unix_socket_path=socket_path).keys())
        assert before  # the admin key's record, at least
        killed = _redis_pid(proc)
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        _wait_for_lines(log_path, "redis.embedded_restarted", 1, proc)
        restarted = _redis_pid(proc)
        assert restarted not in (None, killed)
        assert before <= set(syncredis.Redis(unix_socket_path=socket_path).keys())
        wait_serving(target, within_s=WAIT_S)
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        with grpc.insecure_channel(target) as channel:
            me = tenancy_pb2_grpc.TenantServiceStub(channel).WhoAmI(
                tenancy_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {key}")], timeout=10
            )
        assert me.role == tenancy_pb2.ROLE_ROOT_ADMIN
        log = _stopped(proc, log_path)
    assert proc.returncode == 0, log
    assert "redis.embedded_stopped" in log
    assert not Path(f"/proc/{restarted}").exists()  # the Redis started again went with the service
