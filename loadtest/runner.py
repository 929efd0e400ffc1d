"""Run one on-sale scenario end to end on this machine, then audit it.

    python -m loadtest.runner --scenario stadium-spike --users 2000 --spawn-rate 500 \\
        --duration 60 --workers 2 --server-workers 2

1. boots its own Redis (:class:`server.redis_process.EmbeddedRedis` in a temp
   dir, unix socket only, AOF with ``appendfsync always``);
2. starts ``seatwise serve --workers N`` on a free 127.0.0.1 port against it;
3. provisions tenant, keys, venue and an on-sale event (:mod:`loadtest.provision`);
4. runs Locust headless: one master and ``--workers`` worker processes, for a
   bounded time, with ``--csv``/``--csv-full-history``/``--html`` reports,
   while a monitor thread samples availability twice a second;
5. lets the reaper tidy for a moment, audits the event (:mod:`loadtest.audit`),
   writes ``summary.json``, prints the table, draws plots if matplotlib is
   installed, and stops everything it started.

Exit status: 0 when the audit passes, 1 when it fails, 2 when the run itself
could not be completed. Every wait is bounded; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from seatwise.v1 import events_pb2, events_pb2_grpc

from holds.inspection import EventChanged
from loadtest import summary as summarize
from loadtest.audit import AuditReport, run_audit
from loadtest.config import (
    ENV_CHANNELS,
    ENV_OUT,
    ENV_SCENARIO,
    ENV_SESSIONS,
    ENV_SETUP,
    ENV_SHAPE,
    SetupInfo,
    save_setup,
)
from loadtest.provision import VENUES, provision
from loadtest.recording import read_raw
from loadtest.scenarios import SCENARIOS, SHAPE_NAMES
from server.redis_process import EmbeddedRedis

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 60.0
WORKERS_CONNECT_TIMEOUT_S = 60
LOCUST_EXTRA_TIMEOUT_S = 90.0  # beyond --duration: workers connecting, stopping users, reports
STOP_TIMEOUT_S = 15.0
MONITOR_INTERVAL_S = 0.5


def log(message: str) -> None:
    print(f"[loadtest] {message}", file=sys.stderr, flush=True)


@dataclass
class RunOptions:
    scenario: str
    users: int
    spawn_rate: float
    duration_s: float
    workers: int = 2
    server_workers: int = 2
    venue: str | None = None  # default: the scenario's
    hold_ttl_s: float | None = None  # default: the scenario's
    shape: str | None = None  # default: the scenario's
    out_dir: Path | None = None
    channels: int = 8  # gRPC connections per Locust worker
    sessions: int = 4  # sales sessions per Locust worker's gateway (stadium-gateway)
    settle_s: float = 3.0  # after the load, before the audit: the reaper tidies
    keep_redis: bool = False


@dataclass
class RunResult:
    exit_code: int
    out_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    audit: AuditReport | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc), to stop forked server workers by id."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Child:
    """A process this runner started, its output in a log file."""

    def __init__(self, label: str, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.label = label
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self.descendants: list[int] = []

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def remember_children(self) -> None:
        self.descendants = _children_of(self.process.pid)

    def wait(self, timeout_s: float) -> bool:
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait, SIGKILL; then any forked children it left behind, by pid."""
        if self.running:
            self.process.terminate()
            if not self.wait(timeout_s):
                log(f"{self.label} did not stop in {timeout_s:.0f}s: killing it")
                self.process.kill()
                self.process.wait()
        for pid in self.descendants:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_serving(target: str, server: Child, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not server.running:
                raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.tail()}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"the server was not SERVING within {timeout_s:.0f}s:\n{server.tail()}")


class Monitor:
    """Samples the event's availability counts from a thread while the load runs."""

    def __init__(self, setup: SetupInfo) -> None:
        self.samples: list[summarize.Sample] = []
        self._setup = setup
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="availability-monitor", daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait_quiet(self, timeout_s: float) -> bool:
        """Wait (bounded) until a sample taken from now on shows nothing held: the reaper has
        expired the last leases, so the event stops changing under the audit."""
        deadline = time.monotonic() + timeout_s
        seen = len(self.samples)
        while time.monotonic() < deadline and self._thread.is_alive():
            fresh = self.samples[seen:]
            if any(s.held == 0 and s.ga_held == 0 for s in fresh):
                return True
            time.sleep(MONITOR_INTERVAL_S)
        return False

    def _run(self) -> None:
        metadata = (("authorization", f"Bearer {self._setup.storefront_key}"),)
        request = events_pb2.GetAvailabilityRequest(event_id=self._setup.event_id)
        with grpc.insecure_channel(self._setup.target) as channel:
            stub = events_pb2_grpc.EventServiceStub(channel)
            while not self._stop.is_set():
                with contextlib.suppress(grpc.RpcError):
                    reply = stub.GetAvailability(request, metadata=metadata, timeout=2.0)
                    ga = reply.general_admission
                    self.samples.append(
                        summarize.Sample(
                            t=time.time(),
                            free=sum(c.free for c in reply.by_category),
                            held=sum(c.held for c in reply.by_category),
                            sold=sum(c.sold for c in reply.by_category),
                            ga_available=sum(a.available for a in ga),
                            ga_held=sum(a.held for a in ga),
                            ga_sold=sum(a.sold for a in ga),
                        )
                    )
                self._stop.wait(MONITOR_INTERVAL_S)


def process_cpu_s(pid: int | None) -> float:
    """CPU-seconds (user + system) used so far by ``pid`` and its live descendants (psutil)."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    used = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            used += times.user + times.system
    return used


def children_cpu_s() -> float:
    """CPU-seconds of this process's children that have been waited for: the Locust processes,
    with their own waited-for children (the storefront gateways of loadtest/gateway.py)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    """What the server processes, Redis and the load generator (Locust and its gateways) used
    over the load (CPU-seconds)."""

    server_s: float = 0.0
    redis_s: float = 0.0
    load_generator_s: float = 0.0
    window_s: float = 0.0


@contextlib.contextmanager
def measure_cpu(server_pid: int, redis_pid: int | None) -> Iterator[CpuUse]:
    use = CpuUse()
    started = time.monotonic()
    server0, redis0, children0 = process_cpu_s(server_pid), process_cpu_s(redis_pid), children_cpu_s()
    try:
        yield use
    finally:
        use.server_s = process_cpu_s(server_pid) - server0
        use.redis_s = process_cpu_s(redis_pid) - redis0
        use.load_generator_s = children_cpu_s() - children0
        use.window_s = time.monotonic() - started


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM becomes SystemExit, so every ``finally`` below stops what it started."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _locust_commands(options: RunOptions, out: Path, master_port: int) -> tuple[list[str], list[str]]:
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    master = [
        *locust,
        "--headless",
        "--master",
        "--master-bind-host", HOST,
        "--master-bind-port", str(master_port),
        "--expect-workers", str(options.workers),
        "--expect-workers-max-wait", str(WORKERS_CONNECT_TIMEOUT_S),
        "-u", str(options.users),
        "-r", str(options.spawn_rate),
        "-t", f"{int(options.duration_s)}s",
        "--stop-timeout", "5",
        "--csv", str(out / "locust"),
        "--csv-full-history",
        "--html", str(out / "locust-report.html"),
        "--only-summary",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    worker = [*locust, "--worker", "--master-host", HOST, "--master-port", str(master_port)]
    return master, worker


def run_locust(options: RunOptions, out: Path, env: dict[str, str]) -> None:
    master_cmd, worker_cmd = _locust_commands(options, out, free_port())
    master = Child("locust master", master_cmd, out / "locust-master.log", env)
    workers: list[Child] = []
    try:
        workers = [
            Child(f"locust worker {i}", worker_cmd, out / f"locust-worker-{i}.log", env)
            for i in range(options.workers)
        ]
        limit = options.duration_s + LOCUST_EXTRA_TIMEOUT_S
        if not master.wait(limit):
            raise RuntimeError(f"Locust did not finish within {limit:.0f}s:\n{master.tail()}")
        if master.process.returncode != 0:
            raise RuntimeError(f"the Locust master exited with {master.process.returncode}:\n{master.tail()}")
        for worker in workers:
            worker.wait(STOP_TIMEOUT_S)  # they quit when the master does
    finally:
        for child in (master, *workers):
            child.stop()


def run(options: RunOptions) -> RunResult:
    scenario = SCENARIOS[options.scenario]
    venue = options.venue or scenario.venue
    hold_ttl_s = options.hold_ttl_s or scenario.hold_ttl_s
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (options.out_dir or Path("var/loadtest") / f"{options.scenario}-{stamp}").resolve()
    records = out / "records"
    records.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="seatwise-lt-"))
    redis = EmbeddedRedis(tmp / "redis", appendfsync="always")
    server: Child | None = None
    admin_key = f"sw_admin_{secrets.token_urlsafe(18)}"
    try:
        redis.start()
        log(f"redis on {redis.url} (appendfsync always)")
        port = free_port()
        target = f"{HOST}:{port}"
        env = os.environ | {
            "SEATWISE_REDIS_URL": redis.url,
            "SEATWISE_ADMIN_KEY": admin_key,
            "SEATWISE_DATA_DIR": str(tmp / "data"),
        }
        server_cmd = [
            sys.executable, "-m", "server.cli", "serve",
            "--host", HOST, "--port", str(port), "--workers", str(options.server_workers),
            "--redis-url", redis.url, "--log-format", "json", "--log-level", "warning",
        ]  # fmt: skip
        server = Child("seatwise", server_cmd, out / "server.log", env)
        wait_serving(target, server)
        server.remember_children()
        log(f"seatwise serving on {target} with {options.server_workers} worker process(es)")
        setup = provision(target, admin_key, venue, hold_ttl_s=hold_ttl_s, log=log)
        save_setup(setup, out / "setup.json")
        log(f"event {setup.event_id}: {venue}, {setup.seat_count:,} seats, hold TTL {hold_ttl_s:g}s")
        locust_env = env | {
            ENV_SETUP: str(out / "setup.json"),
            ENV_SCENARIO: options.scenario,
            ENV_OUT: str(records),
            ENV_CHANNELS: str(options.channels),
            ENV_SESSIONS: str(options.sessions),
        }
        if options.shape:
            locust_env[ENV_SHAPE] = options.shape
        log(
            f"{options.scenario}: {options.users} users at {options.spawn_rate:g}/s "
            f"for {options.duration_s:g}s, {options.workers} Locust worker(s); output in {out}"
        )
        with Monitor(setup) as monitor:
            with measure_cpu(server.process.pid, redis.pid) as cpu:
                run_locust(options, out, locust_env)
            time.sleep(options.settle_s)
            report = audit_settled(
                redis.url, setup.event_id, records, lambda: monitor.wait_quiet(hold_ttl_s + QUIET_MARGIN_S)
            )
        (out / "audit.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        result = RunResult(0 if report.ok else 1, out, audit=report)
        result.summary = write_summary(options, setup, out, monitor.samples, report, cpu)
        print(summarize.format_table(result.summary))
        print(report.format())
        return result
    except (RuntimeError, OSError, grpc.RpcError) as exc:
        log(f"run failed: {exc}")
        return RunResult(2, out)
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        if options.keep_redis:
            log(f"redis data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


AUDIT_ATTEMPTS = 5
QUIET_MARGIN_S = 20.0  # beyond the hold TTL: the reaper's own pace


def audit_settled(
    redis_url: str, event_id: str, records: Path, quiet: Callable[[], bool] | None = None
) -> AuditReport:
    """The audit, read again a little later while the reaper keeps changing the event (a
    sale's last leases expire for a while after the load stops). ``quiet`` waits until
    nothing is held any more: after a busy sale (thousands of leases left, expiring over a
    hold TTL) the audit then reads once the reaper is done."""
    for attempt in range(AUDIT_ATTEMPTS):
        try:
            return asyncio.run(run_audit(redis_url, event_id, records))
        except EventChanged as exc:
            log(f"audit: {exc}; reading again")
            if attempt + 1 >= AUDIT_ATTEMPTS:
                raise RuntimeError(f"the audit found no consistent read: {exc}") from None
            if quiet is not None:
                log("audit: waiting until the monitor sees nothing held (the last leases expire)")
                quiet_seen, quiet = quiet(), None
                log("audit: nothing held" if quiet_seen else "audit: still held seats; reading anyway")
            else:
                time.sleep(2.0 * (attempt + 1))
    raise AssertionError("unreachable")


def write_summary(
    options: RunOptions,
    setup: SetupInfo,
    out: Path,
    samples: list[summarize.Sample],
    report: AuditReport,
    cpu: CpuUse | None = None,
) -> dict[str, Any]:
    rows = read_raw(out / "records")
    requests = summarize.requests_summary(rows)
    start = float(requests.get("start_epoch_s") or (samples[0].t if samples else time.time()))
    sellable = setup.seat_count + sum(setup.ga_areas.values()) - int(report.stats.get("seats_blocked", 0))
    doc: dict[str, Any] = {
        "run": asdict(options) | {"out_dir": str(out), "venue": setup.venue, "event_id": setup.event_id},
        "requests": requests,
        "streams": summarize.streams_summary(rows),
        "sales": summarize.sales_summary(report.sales, start, sellable),
        "sell_out": summarize.sell_out(samples, report.sales, start, sellable),
        "availability": [asdict(s) | {"t": round(s.t - start, 2)} for s in samples],
        "audit": report.to_dict(),
    }
    if cpu is not None:
        tickets = sum(n for _, n in report.sales)
        doc["cpu"] = summarize.cpu_summary(
            cpu.server_s, cpu.redis_s, cpu.load_generator_s, cpu.window_s, tickets
        )
    plots = summarize.write_plots(out / "locust_stats_history.csv", out)
    doc["plots"] = [str(p) for p in plots] if isinstance(plots, list) else plots
    if isinstance(plots, str):
        log(plots)
    (out / "summary.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def parse_args(argv: list[str] | None = None) -> RunOptions:
    parser = argparse.ArgumentParser(prog="python -m loadtest.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="stadium-spike")
    parser.add_argument("--users", type=int, default=None, help="peak users (default: the scenario's)")
    parser.add_argument("--spawn-rate", type=float, default=None, help="users started per second")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="Locust worker processes")
    parser.add_argument("--server-workers", type=int, default=2, help="seatwise server processes")
    parser.add_argument("--venue", choices=sorted(VENUES), default=None)
    parser.add_argument("--hold-ttl", type=float, default=None, help="hold TTL in seconds")
    parser.add_argument("--shape", choices=SHAPE_NAMES, default=None)
    parser.add_argument("--channels", type=int, default=8, help="gRPC connections per Locust worker")
    parser.add_argument(
        "--sessions", type=int, default=4, help="sales sessions per Locust worker (gateway scenarios)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory (default var/loadtest/...)")
    parser.add_argument("--keep-redis", action="store_true", help="keep the Redis data directory")
    args = parser.parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    if args.workers < 1 or args.server_workers < 1:
        parser.error("--workers and --server-workers must be at least 1")
    return RunOptions(
        scenario=args.scenario,
        users=args.users or scenario.default_users,
        spawn_rate=args.spawn_rate or scenario.default_spawn_rate,
        duration_s=args.duration or scenario.default_duration_s,
        workers=args.workers,
        server_workers=args.server_workers,
        venue=args.venue,
        hold_ttl_s=args.hold_ttl,
        shape=args.shape,
        out_dir=args.out,
        channels=args.channels,
        sessions=max(1, args.sessions),
        keep_redis=args.keep_redis,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    with _terminate_on_sigterm():
        result = run(options)
    sys.exit(result.exit_code)


if __name__ == "__main__":
    main()
