"""The one harness of the benchmarks in :mod:`scripts.bench`.

* Processes: :func:`free_port`; :class:`ChildServer`, a server in its own OS
  process (the echo server and profiled seatwise of :mod:`scripts.bench.servers`,
  or ``seatwise serve``), and :func:`wait_serving` until its health service
  answers SERVING; :func:`seatwise_env`; :func:`run_with_scratch_redis`, a
  throwaway embedded Redis for the in-process benchmarks.
* Timing: :func:`samples` (wall clock per run), :func:`per_call` (wall clock
  per call of a tight loop), :func:`cpu_per_call` (CPU of this process per call,
  N in flight) and :class:`CpuMeter` (CPU of other processes).
* Load: one :class:`LoadGenerator` drives any unary method with pre-serialized
  request bytes (no protobuf work on the client's hot path) from N coroutines
  spread over a few channels, each its own TCP connection; the same generator
  drives the bare echo server and seatwise, so their ratio compares like with
  like. Its phases print as a table (:func:`format_table`) and JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

ECHO_METHOD = "/bench.Echo/Echo"
CALL_TIMEOUT_S = 30.0

# A request source returns the next serialized request, or None when it has run dry.
Source = Callable[[], bytes | None]
OnOk = Callable[[bytes, bytes], None]


@dataclass
class PhaseResult:
    """One measured phase: completed calls, errors by status code and raw latencies."""

    name: str
    target: str  # "echo" or "seatwise"
    concurrency: int
    elapsed_s: float
    ok: int
    errors: dict[str, int]
    latencies_ms: np.ndarray[Any, np.dtype[np.float64]] = field(repr=False)
    ran_dry: bool = False
    notes: str = ""
    # CPU used during the phase per process ("client", "server", "redis"), in cores (1.0 = one core busy)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms.size else float("nan")

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)


@dataclass
class Row:
    """A line of the final table: one phase and its ratios to the echo baseline."""

    figure: str
    concurrency: int
    calls: int
    errors: int
    rps: float
    rps_x_echo: float | None
    p50_ms: float
    p99_ms: float
    p50_x_echo: float | None
    p99_x_echo: float | None
    cpu: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    @classmethod
    def of(cls, figure: str, result: PhaseResult, echo: PhaseResult | None, notes: str = "") -> Row:
        def ratio(a: float, b: float | None) -> float | None:
            return a / b if b else None

        return cls(
            figure=figure,
            concurrency=result.concurrency,
            calls=result.ok,
            errors=sum(result.errors.values()),
            rps=result.rps,
            rps_x_echo=ratio(result.rps, echo.rps if echo else None),
            p50_ms=result.p50,
            p99_ms=result.p99,
            p50_x_echo=ratio(result.p50, echo.p50 if echo else None),
            p99_x_echo=ratio(result.p99, echo.p99 if echo else None),
            cpu=result.cpu,
            notes=notes or result.notes,
        )


class CpuMeter:
    """CPU seconds used so far by this process and by other processes (Linux /proc), by label."""

    def __init__(self, pids: dict[str, int] | None = None) -> None:
        self.pids = dict(pids or {})

    def _of(self, pid: int) -> float | None:
        """CPU of ``pid`` and its live descendants (the workers of a multi-process server)."""
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        used = 0.0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                used += times.user + times.system
        return used

    def sample(self) -> dict[str, float]:
        out = {"client": time.process_time()}
        for label, pid in self.pids.items():
            used = self._of(pid)
            if used is not None:
                out[label] = used
        return out

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float], elapsed_s: float) -> dict[str, float]:
        return {k: (after[k] - before[k]) / elapsed_s for k in after if k in before and elapsed_s > 0}


class LoadGenerator:
    """N coroutines over ``channels`` connections to one target, calling one unary method."""

    def __init__(self, target: str, channels: int = 4, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self.target = target
        self.metadata = tuple(metadata)
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # a distinct TCP connection per channel
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
        self._channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(None)

    async def call(self, method: str, request: bytes) -> bytes:
        """One call on the first channel (setup work, not measured)."""
        fn = self._channels[0].unary_unary(method, None, None)
        reply: bytes = await fn(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)
        return reply

    async def run(
        self,
        name: str,
        method: str,
        source: Source,
        *,
        concurrency: int,
        duration_s: float,
        target_label: str = "",
        on_ok: OnOk | None = None,
        cpu: CpuMeter | None = None,
    ) -> PhaseResult:
        """Call ``method`` from ``concurrency`` coroutines until ``duration_s`` passes or the source dries."""
        calls = [channel.unary_unary(method, None, None) for channel in self._channels]
        samples: list[float] = []
        errors: Counter[str] = Counter()
        dry = False
        metadata = self.metadata
        cpu_before = cpu.sample() if cpu else {}
        started = time.perf_counter()
        deadline = started + duration_s

        async def worker(k: int) -> None:
            nonlocal dry
            fn = calls[k % len(calls)]
            clock = time.perf_counter
            while clock() < deadline:
                request = source()
                if request is None:
                    dry = True
                    return
                t0 = clock()
                try:
                    reply = await fn(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] += 1
                    continue
                samples.append(clock() - t0)
                if on_ok is not None:
                    on_ok(request, reply)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_used = CpuMeter.cores(cpu_before, cpu.sample(), elapsed) if cpu else {}
        return PhaseResult(
            name=name,
            target=target_label or self.target,
            concurrency=concurrency,
            elapsed_s=elapsed,
            ok=len(samples),
            errors=dict(errors),
            latencies_ms=np.asarray(samples, dtype=np.float64) * 1000.0,
            ran_dry=dry,
            cpu=cpu_used,
        )


# -- servers as child processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def seatwise_env(settings: dict[str, str]) -> dict[str, str]:
    """This process' environment without its SEATWISE_* settings, plus ``settings`` (``{"port": ...}``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATWISE_")}
    return env | {f"SEATWISE_{k.upper()}": v for k, v in settings.items()}


class ChildServer:
    """``python -m <module> <args>`` in its own OS process, its output to a log file."""

    def __init__(
        self,
        label: str,
        module: str,
        args: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        checkout: Path | None = None,
    ) -> None:
        """``checkout``: run another checkout's code (its own ``.venv``), e.g. a
        baseline commit in a git worktree, for a before/after in the same run."""
        self.label = label
        self.log_path = log_path
        self._log = log_path.open("wb")
        python = str(checkout / ".venv" / "bin" / "python") if checkout else sys.executable
        self.process = subprocess.Popen(
            [python, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=checkout,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and wait (the server drains and, if profiled, writes its profile)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


async def wait_serving(target: str, child: ChildServer, timeout_s: float = 60.0) -> None:
    """Poll the standard health service until it answers SERVING."""
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.label} exited with {child.process.returncode}:\n{child.tail()}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.label} did not become SERVING within {timeout_s:.0f}s:\n{child.tail()}")


def run_with_scratch_redis(prefix: str, main: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """``main(redis_url)`` on seatwise's event loop against a throwaway embedded Redis
    with ``appendfsync no``: in-process benchmarks measure our CPU, not Redis' fsyncs."""
    from server.app import run_loop
    from server.redis_process import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        redis = EmbeddedRedis(Path(workdir) / "redis", appendfsync="no")
        redis.start()
        try:
            run_loop(main(redis.url))
        finally:
            redis.stop()


# -- timing ------------------------------------------------------------------------------------

T = TypeVar("T")


def samples(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of each of ``repeat`` runs of ``fn``."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return runs


def per_call(fn: Callable[[], object], repeat: int) -> float:
    """Wall-clock seconds per call of ``fn`` over ``repeat`` calls in a tight loop (for µs-sized work)."""
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


async def cpu_per_call(call: Callable[[T], Awaitable[Any]], items: Iterable[T], in_flight: int) -> float:
    """CPU seconds of this process per ``call(item)``, ``in_flight`` calls at a time."""
    work = list(items)
    pending = iter(work)

    async def worker() -> None:
        for item in pending:
            await call(item)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return (time.process_time() - started) / max(len(work), 1)


# -- output --------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return format(value, spec)


def _cpu(cpu: dict[str, float]) -> str:
    return "/".join(f"{cpu[k] * 100:.0f}" if k in cpu else "-" for k in ("client", "server", "redis"))


def format_table(rows: Sequence[Row]) -> str:
    header = (
        f"{'figure':<44} {'conc':>4} {'calls':>7} {'err':>5} {'RPS':>8} {'RPS/echo':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'p50/echo':>8} {'p99/echo':>8}  {'CPU% cli/srv/redis':>18}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.figure:<44} {r.concurrency:>4} {r.calls:>7} {r.errors:>5} {r.rps:>8.0f} "
            f"{_fmt(r.rps_x_echo, '>7.2f') + 'x':>8} {_fmt(r.p50_ms, '>7.2f')} {_fmt(r.p99_ms, '>7.2f')} "
            f"{_fmt(r.p50_x_echo, '>7.2f') + 'x':>8} {_fmt(r.p99_x_echo, '>7.2f') + 'x':>8}"
            f"  {_cpu(r.cpu):>18}  {r.notes}".rstrip()
        )
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], rows: Sequence[Row], phases: Sequence[PhaseResult]) -> None:
    doc = {
        "meta": meta,
        "rows": [asdict(r) for r in rows],
        "phases": [
            {
                "name": p.name,
                "target": p.target,
                "concurrency": p.concurrency,
                "elapsed_s": round(p.elapsed_s, 4),
                "ok": p.ok,
                "errors": p.errors,
                "rps": round(p.rps, 1),
                "p50_ms": round(p.p50, 3) if p.ok else None,
                "p90_ms": round(p.percentile(90), 3) if p.ok else None,
                "p99_ms": round(p.p99, 3) if p.ok else None,
                "max_ms": round(float(p.latencies_ms.max()), 3) if p.ok else None,
                "ran_dry": p.ran_dry,
                "cpu_cores": {k: round(v, 3) for k, v in p.cpu.items()},
                "notes": p.notes,
            }
            for p in phases
        ],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
