"""Sales sessions next to unary calls, measured in one run: holds/s, server CPU per
hold, single-quota orders/s against echo/2, and session latency at half saturation.

    uv run --frozen python -m scripts.bench.sessions [--duration 4] [--streams 1] [--depth 96] [--smoke]

The processes and the setup are those of :mod:`scripts.bench.sales` (embedded
Redis with ``appendfsync always``, ``seatwise serve``, the bare echo server with
the HoldSeats-shaped ceiling, the stadium uploaded through the API). Unary phases
use its load generator (pre-serialized requests, N coroutines over 4
connections); session phases use :class:`SessionLoad`: ``--streams`` sessions over
the same 4 connections (default one: the server under test is one process, and one
full session per server process costs it least per request; ``--streams 4 --depth 24``
spreads the same 96 requests in flight over four), ``--depth`` requests in flight
on each, requests pre-serialized but for their correlation id, answers matched by
slicing the id off their bytes. Each session phase runs twice: one request per
stream message, and batched as ``seatwise.client`` does by default (the requests
made in one event-loop turn in one message, answers batched by the server); the goals use
the batched figures. The goals of issue 15 are printed as same-run ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from seatwise.client import TurnRotation
from seatwise.v1 import sales_pb2, session_pb2

from scripts.bench import sales
from scripts.bench.harness import CpuMeter, LoadGenerator, PhaseResult, Row, format_table, write_json
from server.redis_process import EmbeddedRedis
from server.servicers.sessions import BATCH_HEADER

SESSION = "/seatwise.v1.SalesService/Session"
HOLD_SEATS_TAG = b"\x52"  # SessionRequest.hold_seats = 10, length-delimited
HOLD_GA_TAG = b"\x62"  # hold_general_admission = 12
COMMIT_TAG = b"\x82\x01"  # commit_hold = 16
ERROR_TAG = 0x6A  # SessionResponse.error = 13
REQUEST_BATCH_TAG = b"\x1a"  # SessionRequest.batch = 3
RESPONSE_BATCH_TAG = b"\x12"  # SessionResponse.batch = 2
CALL_TIMEOUT_S = 30.0


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def op_bytes(tag: bytes, request: bytes) -> bytes:
    """The ``op`` part of a SessionRequest (everything but the correlation id)."""
    return tag + _varint(len(request)) + request


class _Stream:
    def __init__(self, call: Any, batching: bool = False) -> None:
        self.call = call
        self.pending: dict[bytes, asyncio.Future[bytes]] = {}
        self.writing = asyncio.Lock()  # a call takes one write at a time
        self.ids = 0
        self.batching = batching  # as seatwise.client does: this turn's requests in one message
        self.outbox: list[bytes] = []
        self.sender: asyncio.Task[None] | None = None
        self.reader = asyncio.create_task(self._read())

    def _answered(self, answer: bytes) -> None:
        size = answer[1]  # correlation ids here are < 128 bytes: one length byte
        future = self.pending.pop(answer[2 : 2 + size], None)
        if future is not None:
            future.set_result(answer)

    async def _read(self) -> None:
        async for answer in self.call:
            if answer[:1] == RESPONSE_BATCH_TAG:
                for each in split_batch(answer):
                    self._answered(each)
            else:
                self._answered(answer)

    async def _send(self) -> None:
        while self.outbox:
            ready, self.outbox = self.outbox, []
            data = (
                ready[0]
                if len(ready) == 1
                else b"".join(REQUEST_BATCH_TAG + _varint(len(m)) + m for m in ready)
            )
            async with self.writing:
                await self.call.write(data)

    async def request(self, op: bytes) -> bytes:
        self.ids += 1
        cid = str(self.ids).encode()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[cid] = future
        message = b"\x0a" + bytes([len(cid)]) + cid + op
        if self.batching:
            self.outbox.append(message)
            if self.sender is None or self.sender.done():
                self.sender = asyncio.create_task(self._send())
        else:
            async with self.writing:
                await self.call.write(message)
        return await future


class TurnRouter:
    """Sends each request over one of the streams, chosen as ``seatwise.client`` chooses its
    sessions (:class:`~seatwise.client.TurnRotation`): every request of one event-loop turn
    over the same stream, the next turn's over the next, so each turn's requests travel in
    one batch and their answers come back together, while the streams share the load."""

    def __init__(self, streams: Sequence[_Stream]) -> None:
        self._streams = streams
        self._turns = TurnRotation(len(streams))

    async def request(self, op: bytes) -> bytes:
        return await self._streams[self._turns.pick()].request(op)


def split_batch(data: bytes) -> list[bytes]:
    """The answers of a ``SessionResponse`` that carries only ``batch`` (field 2)."""
    out, i = [], 0
    while i < len(data):
        i += 1  # the tag
        size = shift = 0
        while True:
            byte = data[i]
            i += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        out.append(data[i : i + size])
        i += size
    return out


def failed(answer: bytes) -> str | None:
    """The status code name of an error answer, None for a reply."""
    if answer[2 + answer[1]] != ERROR_TAG:
        return None
    code = session_pb2.SessionResponse.FromString(answer).error.code
    return {c.value[0]: c.name for c in grpc.StatusCode}.get(code, str(code))


class SessionLoad:
    """``streams`` sales sessions over ``channels`` connections; workers share them."""

    def __init__(
        self,
        target: str,
        metadata: Sequence[tuple[str, str]],
        streams: int,
        channels: int = 4,
        *,
        batching: bool = False,
    ) -> None:
        options = [("grpc.use_local_subchannel_pool", 1)]
        self._channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
        self._metadata = (*metadata, (BATCH_HEADER, "1")) if batching else tuple(metadata)
        self._batching = batching
        self._count = streams
        self.streams: list[_Stream] = []

    async def open(self) -> None:
        for i in range(self._count):
            method = self._channels[i % len(self._channels)].stream_stream(SESSION, None, None)
            call = method(metadata=self._metadata)  # type: ignore[call-arg]  # fed by write()
            self.streams.append(_Stream(call, self._batching))

    async def close(self) -> None:
        for s in self.streams:
            s.call.cancel()
        await asyncio.gather(*(s.reader for s in self.streams), return_exceptions=True)
        for channel in self._channels:
            await channel.close(None)

    async def run(
        self,
        name: str,
        worker: Callable[[TurnRouter], Any],
        *,
        depth: int,
        duration_s: float,
        cpu: CpuMeter | None,
    ) -> PhaseResult:
        """``depth`` workers per stream, each ``await worker(router)`` (its requests sent as
        :class:`TurnRouter` routes them): (error name or None, seconds), or None when its
        source ran dry."""
        samples: list[float] = []
        errors: Counter[str] = Counter()
        dry = False
        before = cpu.sample() if cpu else {}
        started = time.perf_counter()
        deadline = started + duration_s

        router = TurnRouter(self.streams)

        async def loop() -> None:
            nonlocal dry
            while time.perf_counter() < deadline:
                outcome = await worker(router)
                if outcome is None:
                    dry = True
                    return
                error, seconds = outcome
                if error is None:
                    samples.append(seconds)
                else:
                    errors[error] += 1

        await asyncio.gather(*(loop() for _ in range(depth * len(self.streams))))
        elapsed = time.perf_counter() - started
        return PhaseResult(
            name=name,
            target="seatwise",
            concurrency=depth * len(self.streams),
            elapsed_s=elapsed,
            ok=len(samples),
            errors=dict(errors),
            latencies_ms=np.asarray(samples, dtype=np.float64) * 1000.0,
            ran_dry=dry,
            cpu=CpuMeter.cores(before, cpu.sample(), elapsed) if cpu else {},
        )


@dataclass
class Options:
    duration_s: float
    warmup_s: float
    streams: int
    depth: int
    concurrency: int
    levels: list[int]
    json_path: Path | None


def _say(result: PhaseResult) -> PhaseResult:
    errs = f", errors {result.errors}" if result.errors else ""
    log(
        f"{result.name} c={result.concurrency}: {result.rps:,.0f}/s, "
        f"p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms{errs}"
    )
    return result


async def session_holds(
    run: sales.Run, load: SessionLoad, name: str, depth: int, duration_s: float
) -> PhaseResult:
    await run.ensure_groups(duration_s * 3)

    async def hold(stream: TurnRouter) -> tuple[str | None, float] | None:
        request = run.groups.next_request()
        if request is None:
            return None
        t0 = time.perf_counter()
        answer = await stream.request(op_bytes(HOLD_SEATS_TAG, request))
        return failed(answer), time.perf_counter() - t0

    result = await load.run(name, hold, depth=depth, duration_s=duration_s, cpu=run.cpu_sw)
    run.phases.append(_say(result))
    return result


async def session_single_quota(
    run: sales.Run, load: SessionLoad, name: str, depth: int, duration_s: float
) -> PhaseResult:
    """Each buyer: HoldGeneralAdmission(1), then CommitHold of that hold; one order each."""
    stadium_map = run.setup.seat_map_id
    await run.setup.upload(sales.ga_venue())
    event_id = await run.setup.event(name)
    run.setup.seat_map_id = stadium_map
    hold = op_bytes(
        HOLD_GA_TAG,
        sales_pb2.HoldGeneralAdmissionRequest(
            event_id=event_id, area_id="floor", quantity=1
        ).SerializeToString(),
    )
    keys = iter(range(10**9))

    async def order(stream: TurnRouter) -> tuple[str | None, float] | None:
        t0 = time.perf_counter()
        answer = await stream.request(hold)
        error = failed(answer)
        if error is not None:
            return error, 0.0
        token = session_pb2.SessionResponse.FromString(answer).hold.hold.hold_token
        commit = sales_pb2.CommitHoldRequest(hold_token=token, idempotency_key=f"s{next(keys)}")
        answer = await stream.request(op_bytes(COMMIT_TAG, commit.SerializeToString()))
        return failed(answer), time.perf_counter() - t0

    result = await load.run(name, order, depth=depth, duration_s=duration_s, cpu=run.cpu_sw)
    run.phases.append(_say(result))
    return result


def _cpu_us(result: PhaseResult) -> float:
    return result.cpu.get("server", float("nan")) / result.rps * 1e6 if result.rps else float("nan")


async def bench(
    o: Options, s: sales.Settings, venue: sales.Venue, sw_target: str, echo_target: str, pids: dict[str, int]
) -> tuple[list[Row], list[PhaseResult], list[str]]:
    setup = sales.Setup(sw_target)
    await setup.keys()
    await setup.upload(venue.content)
    metadata = [("authorization", f"Bearer {setup.storefront_key}")]
    sw = LoadGenerator(sw_target, s.channels, metadata)
    echo = LoadGenerator(echo_target, s.channels, metadata)
    run = sales.Run(
        s, venue, setup, sw, echo, sales.SeatGroups(venue.rows, s.seats_per_hold, random.Random(s.seed))
    )
    run.cpu_echo = CpuMeter({"server": pids["echo"], "redis": pids["redis"]})
    run.cpu_sw = CpuMeter({"server": pids["seatwise"], "redis": pids["redis"]})
    load = SessionLoad(sw_target, metadata, o.streams, s.channels)
    batched = SessionLoad(sw_target, metadata, o.streams, s.channels, batching=True)
    await load.open()
    await batched.open()
    rows: list[Row] = []
    try:
        await run.ensure_groups(1.0)
        run.echo_payload = run.groups.next_request() or b""
        gc.collect()
        gc.freeze()
        await run.hold_phase("warm-up HoldSeats", o.concurrency, o.warmup_s)
        await session_holds(run, load, "warm-up session holds", o.depth, o.warmup_s)
        await session_holds(run, batched, "warm-up batched session holds", o.depth, o.warmup_s)
        run.phases.clear()
        c = o.concurrency
        echo_start = await run.echo_phase("echo (start)", c, o.duration_s)
        unary = await run.hold_phase("HoldSeats (unary)", c, o.duration_s)
        plain = await session_holds(run, load, "HoldSeats over sessions, unbatched", o.depth, o.duration_s)
        over = await session_holds(run, batched, "HoldSeats over sessions, batched", o.depth, o.duration_s)
        quota_unary = await sales.single_quota(run)
        quota_plain = await session_single_quota(
            run, load, "single quota over sessions, unbatched", o.depth, o.duration_s
        )
        quota = await session_single_quota(
            run, batched, "single quota over sessions, batched", o.depth, o.duration_s
        )
        echo_end = await run.echo_phase("echo (end)", c, o.duration_s)
        baseline = sales.merge("echo (start+end)", [echo_start, echo_end])
        ceilings = await run.ceilings(baseline)
        ceiling, ceiling_write = run.ceiling_read, run.ceiling_write
        assert ceiling is not None
        assert ceiling_write is not None
        ceilings += await run.seatwise_ceilings(baseline)
        bound = run.wrapped_write
        assert bound is not None
        sweep: dict[int, PhaseResult] = {}
        for level in o.levels:
            depth = max(1, level // o.streams)
            sweep[level] = await session_holds(run, batched, "session holds sweep", depth, o.duration_s / 2)
        peak = max(r.rps for r in sweep.values())
        knee = min(level for level, r in sweep.items() if r.rps >= sales.SATURATION_SHARE * peak)
        half_depth = max(1, knee // 2 // o.streams)
        half = await session_holds(run, batched, "session holds @ half saturation", half_depth, o.duration_s)
        sessions = f"{o.streams} session{'s' if o.streams != 1 else ''}"
        rows += [
            Row.of("echo: baseline (start+end)", baseline, baseline),
            *ceilings,
            Row.of(f"HoldSeats unary, {s.seats_per_hold} seats", unary, baseline),
            Row.of(f"HoldSeats over {sessions} x {o.depth}, unbatched", plain, baseline),
            Row.of(f"HoldSeats over {sessions} x {o.depth}, batched", over, baseline),
            Row.of("single-quota orders/s, unary", quota_unary, baseline),
            Row.of(f"single-quota orders/s, {sessions}, unbatched", quota_plain, baseline),
            Row.of(f"single-quota orders/s, {sessions}, batched", quota, baseline),
            *(
                Row.of("  sweep: session holds", sweep[lv], baseline, "<- knee" if lv == knee else "")
                for lv in o.levels
            ),
            Row.of(f"session holds @ half saturation ({half.concurrency})", half, baseline),
        ]
        echo_half = baseline.rps / 2
        goals = [
            (
                "holds/s: sessions / unary HoldSeats",
                over.rps / unary.rps,
                ">= 2.5",
                over.rps / unary.rps >= 2.5,
            ),
            (
                f"server CPU per hold: sessions {_cpu_us(over):.0f} us / unary {_cpu_us(unary):.0f} us",
                _cpu_us(over) / _cpu_us(unary),
                "<= 0.40",
                _cpu_us(over) / _cpu_us(unary) <= 0.40,
            ),
            (
                "single-quota orders/s over sessions / (echo/2)",
                quota.rps / echo_half,
                ">= 1.3",
                quota.rps / echo_half >= 1.3,
            ),
            ("unary single-quota orders/s / (echo/2)", quota_unary.rps / echo_half, "(reference)", True),
            ("holds/s: unbatched sessions / unary", plain.rps / unary.rps, "(reference)", True),
            (
                "server CPU per hold: unbatched sessions / unary",
                _cpu_us(plain) / _cpu_us(unary),
                "(reference)",
                True,
            ),
            (
                "unary HoldSeats / ceiling (decode + 1 Redis trip)",
                unary.rps / ceiling.rps,
                ">= 0.72",
                unary.rps / ceiling.rps >= 0.72,
            ),
            (
                "unary HoldSeats / ceiling with a durable write",
                unary.rps / ceiling_write.rps,
                "(reference)",
                True,
            ),
            (
                "bound: a durable write behind the wrapper / ceiling",
                bound.rps / ceiling.rps,
                "(reference)",
                True,
            ),
            ("p99 ms of a session hold at half saturation", half.p99, "<= 10", half.p99 <= 10),
        ]
        summary = [
            f"{what:<62} {value:8.2f}  goal {goal:<11} {'met' if ok else 'NOT met'}"
            for what, value, goal, ok in goals
        ]
    finally:
        await load.close()
        await batched.close()
        await sw.close()
        await echo.close()
        await setup.close()
    return rows, run.phases, summary


def parse_args(argv: Sequence[str] | None) -> tuple[Options, sales.Settings]:
    p = argparse.ArgumentParser(
        prog="python -m scripts.bench.sessions", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--duration", type=float, default=4.0, help="seconds per measured phase [4]")
    p.add_argument("--concurrency", type=int, default=32, help="unary calls in flight [32]")
    p.add_argument("--streams", type=int, default=1, help="sales sessions [1]")
    p.add_argument("--depth", type=int, default=96, help="requests in flight per session [96]")
    p.add_argument(
        "--levels", default="4,16,48,96", help="session in-flight totals of the sweep [4,16,48,96]"
    )
    p.add_argument("--smoke", action="store_true", help="a few seconds (figures meaningless)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    a = p.parse_args(argv)
    duration = 0.3 if a.smoke else a.duration
    settings = sales.parse_args(
        ["--duration", str(duration), "--hot-path-only", *(["--smoke"] if a.smoke else [])]
    )
    options = Options(
        duration_s=duration,
        warmup_s=0.1 if a.smoke else 1.0,
        streams=a.streams,
        depth=a.depth,
        concurrency=a.concurrency,
        levels=[4, 16] if a.smoke else sorted(int(x) for x in a.levels.split(",")),
        json_path=a.json,
    )
    return options, settings


def main(argv: Sequence[str] | None = None) -> None:
    o, s = parse_args(argv)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="seatwise-bench-sessions-"))
    redis = EmbeddedRedis(workdir / "redis", appendfsync=s.appendfsync)
    redis.start()
    children = []
    try:
        echo, echo_target, sw, sw_target = sales.start_servers(s, workdir, redis.url)
        children += [echo, sw]
        venue = sales.build_venue()
        asyncio.run(sales._wait(sw, sw_target, echo, echo_target))
        pids = {"echo": echo.process.pid, "seatwise": sw.process.pid, "redis": sales.redis_pid(redis)}
        rows, phases, summary = asyncio.run(bench(o, s, venue, sw_target, echo_target, pids))
    except BaseException:
        log(f"failed; server and Redis logs are in {workdir}")
        raise
    finally:
        for child in children:
            child.stop()
        redis.stop()
    print(
        f"\nseatwise sales sessions vs unary: {venue.seat_count:,}-seat stadium, {os.cpu_count()} CPU(s), "
        f"redis appendfsync={s.appendfsync}, {s.channels} connections, {o.duration_s:g}s per phase; "
        f"unary c={o.concurrency}, sessions {o.streams} x depth {o.depth}\n"
    )
    print(format_table(rows))
    print("\ngoals (same-run ratios):")
    print("\n".join(summary))
    if o.json_path:
        meta = {"options": {k: str(v) for k, v in vars(o).items()}, "goals": summary}
        write_json(o.json_path, meta, rows, phases)
        print(f"\nwrote {o.json_path}")
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
