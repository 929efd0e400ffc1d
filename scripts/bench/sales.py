"""Throughput and latency of seatwise's sales RPCs, each next to a bare grpc.aio echo baseline.

    uv run --frozen python -m scripts.bench.sales [--duration 4] [--concurrency 32] [--quick] [--smoke]
                                                  [--json out.json] [--profile-server out.prof]

One run starts an embedded redis-server, seatwise (``seatwise serve --redis-url``)
and a bare grpc.aio echo server, each in its own OS process, uploads the ~90k-seat
stadium of ``seatmap.generate`` and measures from this process, with one load
generator (N coroutines over a few connections, pre-serialized requests) for
both servers:

* echo: a generic async handler returning its request (a HoldSeats-sized
  message, with the same metadata), at the fixed concurrency, at the start and
  again at the end (their union is the baseline of the fixed-concurrency rows);
* the ceiling (scripts/bench/ceiling.py): HoldSeats-shaped handlers of the echo
  server doing no work, then only one Redis round trip: what gRPC, protobuf and
  a round trip cost before any code of ours runs; then the read ceiling served
  by seatwise's process, bare and behind seatwise's wrapper: what the process
  and the wrapper (authentication, admission, budget, metrics) add to a call;
* HoldSeats of distinct random adjacent pairs (``--seats-per-hold``), on events
  replaced before they could run out of seats;
* HoldBestAvailable, quantity 2, on an empty stadium and on one 90% unavailable
  (blocked in runs of 1-6 seats, so the free 10% is fragmented all over the bowl);
* CommitHold of holds created beforehand;
* a concurrency sweep of HoldSeats with echo at each level, and HoldSeats
  latency at half the concurrency where throughput saturates.

Every ratio is to echo measured in the same run: RPS/echo < 1 is the share of
the bare transport's throughput left; p50/echo > 1 is how many times slower.
The machine's cores are shared by the server, Redis and the load generator, so
absolute numbers are those of this box; the ratios travel better.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis as redis_lib
from seatwise.v1 import events_pb2, sales_pb2, seatmap_pb2, tenancy_pb2

from scripts.bench.ceiling import (
    SHAPED_METHOD,
    SHAPED_REDIS_METHOD,
    SHAPED_WRITE_METHOD,
    WRAPPED_METHOD,
    WRAPPED_WRITE_METHOD,
)
from scripts.bench.harness import (
    ECHO_METHOD,
    ChildServer,
    CpuMeter,
    LoadGenerator,
    PhaseResult,
    Row,
    Source,
    format_table,
    free_port,
    seatwise_env,
    wait_serving,
    write_json,
)
from seatmap.generate import stadium
from seatmap.model import iter_seats, json_encoder
from server.redis_process import EmbeddedRedis

ADMIN_KEY = "sw_admin_bench-bootstrap-secret"
HOLD_SEATS = "/seatwise.v1.HoldService/HoldSeats"
HOLD_BEST = "/seatwise.v1.HoldService/HoldBestAvailable"
HOLD_GA = "/seatwise.v1.HoldService/HoldGeneralAdmission"
COMMIT = "/seatwise.v1.OrderService/CommitHold"
PRICES = {"cat1": 9000, "cat2": 7000, "cat3": 5000, "cat4": 3000}
SET_STATUS_CHUNK = 1_000  # seat ids per SetSeatStatus call (the service's per-request cap)
MAX_PREPARED_HOLDS = 40_000
SERVERS = "scripts.bench.servers"  # the module the benchmark's servers run as
SATURATION_SHARE = 0.8  # the knee: the lowest concurrency reaching this share of the peak RPS


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Settings:
    duration_s: float
    sweep_s: float
    warmup_s: float
    concurrency: int
    channels: int
    levels: list[int]
    seats_per_hold: int
    fill: float
    appendfsync: str
    seed: int
    json_path: Path | None
    profile_path: Path | None
    keep_workdir: bool
    server_workers: int = 1
    hot_path_only: bool = False


# -- the venue -----------------------------------------------------------------------------------


@dataclass
class Venue:
    content: bytes
    seat_count: int
    rows: list[list[str]]  # seat ids of each row, in order


def build_venue() -> Venue:
    seatmap = stadium()
    rows: dict[tuple[str, str], list[str]] = {}
    placed = iter_seats(seatmap)
    for p in placed:
        rows.setdefault((p.section_id, p.group_id), []).append(p.seat.id)
    return Venue(json_encoder.encode(seatmap), len(placed), list(rows.values()))


def fragmented_fill(rows: Sequence[list[str]], fill: float, rng: random.Random) -> list[str]:
    """Seats to block: each row cut in runs of 1-6 seats, each run taken with probability ``fill``."""
    taken: list[str] = []
    for row in rows:
        i = 0
        while i < len(row):
            run = rng.randint(1, 6)
            if rng.random() < fill:
                taken.extend(row[i : i + run])
            i += run
    return taken


class SeatGroups:
    """Distinct groups of adjacent seats of one event, in random order; replaced by a new event when low."""

    def __init__(self, rows: Sequence[list[str]], size: int, rng: random.Random) -> None:
        self._groups = [row[i : i + size] for row in rows for i in range(0, len(row) - size + 1, size)]
        self._rng = rng
        self.event_id = ""
        self._cursor = len(self._groups)
        self.events_used = 0

    def reset(self, event_id: str) -> None:
        self._rng.shuffle(self._groups)
        self.event_id = event_id
        self._cursor = 0
        self.events_used += 1

    @property
    def remaining(self) -> int:
        return len(self._groups) - self._cursor

    def next_request(self) -> bytes | None:
        if self._cursor >= len(self._groups):
            return None
        seats = self._groups[self._cursor]
        self._cursor += 1
        return sales_pb2.HoldSeatsRequest(event_id=self.event_id, seat_ids=seats).SerializeToString()


def limited(source: Source, count: int) -> Source:
    left = count

    def next_request() -> bytes | None:
        nonlocal left
        if left <= 0:
            return None
        left -= 1
        return source()

    return next_request


def constant(request: bytes) -> Source:
    return lambda: request


# -- setup through the public API ----------------------------------------------------------------


class Setup:
    """Tenant, keys, the stadium and events, made through the API like an organizer would."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.admin = LoadGenerator(target, channels=1, metadata=[("authorization", f"Bearer {ADMIN_KEY}")])
        self.organizer: LoadGenerator | None = None
        self.organizer_key = ""
        self.storefront_key = ""
        self.seat_map_id = ""

    async def close(self) -> None:
        await self.admin.close()
        if self.organizer is not None:
            await self.organizer.close()

    async def keys(self) -> None:
        await self.admin.call(
            "/seatwise.v1.TenantService/CreateTenant",
            tenancy_pb2.CreateTenantRequest(tenant_id="bench", name="Bench").SerializeToString(),
        )
        for role in (tenancy_pb2.ROLE_ORGANIZER, tenancy_pb2.ROLE_STOREFRONT):
            reply = await self.admin.call(
                "/seatwise.v1.TenantService/CreateApiKey",
                tenancy_pb2.CreateApiKeyRequest(tenant_id="bench", role=role).SerializeToString(),
            )
            key = tenancy_pb2.CreateApiKeyResponse.FromString(reply).api_key
            if role == tenancy_pb2.ROLE_ORGANIZER:
                self.organizer_key = key
            else:
                self.storefront_key = key
        self.organizer = LoadGenerator(
            self.target, channels=1, metadata=[("authorization", f"Bearer {self.organizer_key}")]
        )

    async def _org(self, method: str, request: Any) -> bytes:
        assert self.organizer is not None
        return await self.organizer.call(method, request.SerializeToString())

    async def upload(self, content: bytes) -> None:
        reply = await self._org(
            "/seatwise.v1.SeatMapService/UploadSeatMap", seatmap_pb2.UploadSeatMapRequest(content=content)
        )
        info = seatmap_pb2.UploadSeatMapResponse.FromString(reply).seat_map
        await self._org(
            "/seatwise.v1.SeatMapService/PublishSeatMap",
            seatmap_pb2.PublishSeatMapRequest(seat_map_id=info.seat_map_id, version=info.version),
        )
        self.seat_map_id = info.seat_map_id

    async def event(self, name: str) -> str:
        request = events_pb2.CreateEventRequest(
            seat_map_id=self.seat_map_id,
            name=name,
            currency="EUR",
            status=events_pb2.EVENT_STATUS_ON_SALE,
            prices=[events_pb2.CategoryPrice(category=c, amount_minor=a) for c, a in PRICES.items()],
        )
        reply = await self._org("/seatwise.v1.EventService/CreateEvent", request)
        return events_pb2.CreateEventResponse.FromString(reply).event.event_id

    async def block(self, event_id: str, seat_ids: list[str], parallel: int = 8) -> None:
        chunks = [seat_ids[i : i + SET_STATUS_CHUNK] for i in range(0, len(seat_ids), SET_STATUS_CHUNK)]
        gate = asyncio.Semaphore(parallel)

        async def one(chunk: list[str]) -> None:
            async with gate:
                await self._org(
                    "/seatwise.v1.EventService/SetSeatStatus",
                    events_pb2.SetSeatStatusRequest(
                        event_id=event_id,
                        selection=events_pb2.SeatSelection(seat_ids=chunk),
                        status=events_pb2.SEAT_STATUS_BLOCKED,
                    ),
                )

        await asyncio.gather(*(one(c) for c in chunks))


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    settings: Settings
    venue: Venue
    setup: Setup
    sw: LoadGenerator
    echo: LoadGenerator
    groups: SeatGroups
    echo_payload: bytes = b""
    cpu_echo: CpuMeter | None = None
    cpu_sw: CpuMeter | None = None
    phases: list[PhaseResult] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    hold_rps_seen: float = 0.0
    ceiling_read: PhaseResult | None = None  # set by ceilings()
    ceiling_write: PhaseResult | None = None
    wrapped_write: PhaseResult | None = None  # set by seatwise_ceilings()

    @property
    def hold_rps_estimate(self) -> float:
        return self.hold_rps_seen or 3000.0

    async def measure(
        self,
        gen: LoadGenerator,
        name: str,
        method: str,
        source: Source,
        concurrency: int,
        duration_s: float,
        **kw: Any,
    ) -> PhaseResult:
        label = "echo" if gen is self.echo else "seatwise"
        cpu = self.cpu_echo if gen is self.echo else self.cpu_sw
        result = await gen.run(
            name,
            method,
            source,
            concurrency=concurrency,
            duration_s=duration_s,
            target_label=label,
            cpu=cpu,
            **kw,
        )
        errs = f", errors {result.errors}" if result.errors else ""
        dry = " (source ran dry)" if result.ran_dry else ""
        log(
            f"{name} c={concurrency}: {result.rps:,.0f} rps, p50 {result.p50:.2f} ms, "
            f"p99 {result.p99:.2f} ms{errs}{dry}"
        )
        self.phases.append(result)
        return result

    async def echo_phase(self, name: str, concurrency: int, duration_s: float) -> PhaseResult:
        payload = constant(self.echo_payload)
        return await self.measure(self.echo, name, ECHO_METHOD, payload, concurrency, duration_s)

    async def ceiling_phase(self, name: str, method: str) -> PhaseResult:
        """A HoldSeats-shaped method of the echo server (scripts/bench/ceiling.py), same request bytes."""
        s = self.settings
        source = constant(self.echo_payload)
        return await self.measure(self.echo, name, method, source, s.concurrency, s.duration_s)

    async def ceilings(self, echo: PhaseResult) -> list[Row]:
        """The three ceiling phases; the read ceiling (the goals') and the durable-write one
        are kept as ``ceiling_read`` and ``ceiling_write``."""
        shaped = await self.ceiling_phase("ceiling: HoldShaped", SHAPED_METHOD)
        read = await self.ceiling_phase("ceiling: HoldShapedRedis", SHAPED_REDIS_METHOD)
        write = await self.ceiling_phase("ceiling: HoldShapedRedisWrite", SHAPED_WRITE_METHOD)
        self.ceiling_read, self.ceiling_write = read, write
        return [
            Row.of("ceiling: HoldSeats-shaped reply, no work", shaped, echo, "decode + encode only"),
            Row.of("ceiling: ... + one Redis round trip", read, echo, "the least a hold can cost"),
            Row.of("ceiling: ... + one durable Redis write", write, echo, "the least a durable hold costs"),
        ]

    async def seatwise_ceilings(self, echo: PhaseResult) -> list[Row]:
        """The read ceiling in seatwise's process (``--with-ceiling``), bare and wrapped, and
        the durable-write ceiling wrapped (kept as ``wrapped_write``: the unary bound)."""
        s = self.settings
        source = constant(self.echo_payload)
        bare = await self.measure(
            self.sw, "seatwise: HoldShapedRedis", SHAPED_REDIS_METHOD, source, s.concurrency, s.duration_s
        )
        wrapped = await self.measure(
            self.sw, "seatwise: HoldShapedRedisWrapped", WRAPPED_METHOD, source, s.concurrency, s.duration_s
        )
        wrapped_write = await self.measure(
            self.sw,
            "seatwise: HoldShapedRedisWriteWrapped",
            WRAPPED_WRITE_METHOD,
            source,
            s.concurrency,
            s.duration_s,
        )
        self.wrapped_write = wrapped_write
        return [
            Row.of("ceiling in seatwise's process", bare, echo, "the read ceiling, served by seatwise"),
            Row.of("... behind seatwise's wrapper", wrapped, echo, "auth, admission, budget, metrics"),
            Row.of("... durable write, behind the wrapper", wrapped_write, echo, "no hold logic"),
        ]

    async def ensure_groups(self, duration_s: float) -> None:
        """A fresh event when the current one might run out of seats within ``duration_s``."""
        needed = int(self.hold_rps_estimate * duration_s * 1.5) + 200
        if self.groups.remaining < needed:
            self.groups.reset(await self.setup.event(f"holds {self.groups.events_used + 1}"))

    async def hold_phase(self, name: str, concurrency: int, duration_s: float) -> PhaseResult:
        await self.ensure_groups(duration_s)
        source = self.groups.next_request
        result = await self.measure(self.sw, name, HOLD_SEATS, source, concurrency, duration_s)
        self.hold_rps_seen = max(self.hold_rps_seen, result.rps)
        return result


def merge(name: str, parts: Sequence[PhaseResult]) -> PhaseResult:
    errors: dict[str, int] = {}
    for p in parts:
        for code, n in p.errors.items():
            errors[code] = errors.get(code, 0) + n
    return PhaseResult(
        name=name,
        target=parts[0].target,
        concurrency=parts[0].concurrency,
        elapsed_s=sum(p.elapsed_s for p in parts),
        ok=sum(p.ok for p in parts),
        errors=errors,
        latencies_ms=np.concatenate([p.latencies_ms for p in parts]),
        cpu={
            k: sum(p.cpu.get(k, 0.0) * p.elapsed_s for p in parts) / sum(p.elapsed_s for p in parts)
            for k in parts[0].cpu
        },
    )


async def best_available(run: Run, fill: float, concurrency: int | None = None) -> tuple[PhaseResult, str]:
    s = run.settings
    concurrency = concurrency or s.concurrency
    event_id = await run.setup.event(f"best available {fill:.0%}")
    free = run.venue.seat_count
    if fill > 0:
        taken = fragmented_fill(run.venue.rows, fill, random.Random(s.seed + 1))
        started = time.perf_counter()
        await run.setup.block(event_id, taken)
        free -= len(taken)
        elapsed = time.perf_counter() - started
        log(f"blocked {len(taken):,} of {run.venue.seat_count:,} seats in {elapsed:.1f}s")
    request = sales_pb2.HoldBestAvailableRequest(event_id=event_id, quantity=2).SerializeToString()
    await run.sw.call(HOLD_BEST, request)  # builds the server's availability mirror of the event
    free -= 2
    before = 1 - free / run.venue.seat_count
    result = await run.measure(
        run.sw,
        f"HoldBestAvailable q=2 @{fill:.0%}",
        HOLD_BEST,
        constant(request),
        concurrency,
        s.duration_s,
    )
    after = 1 - (free - 2 * result.ok) / run.venue.seat_count
    note = f"unavailable {before:.1%} -> {after:.1%}"
    result.notes = note
    return result, note


async def commit_holds(run: Run) -> tuple[PhaseResult, str]:
    s = run.settings
    wanted = min(int(run.hold_rps_estimate * s.duration_s * 1.3) + 200, MAX_PREPARED_HOLDS)
    tokens: list[str] = []

    def keep(_request: bytes, reply: bytes) -> None:
        tokens.append(sales_pb2.HoldResponse.FromString(reply).hold.hold_token)

    await run.ensure_groups(wanted / max(run.hold_rps_estimate, 1.0))
    started = time.perf_counter()
    await run.sw.run(
        "prepare holds",
        HOLD_SEATS,
        limited(run.groups.next_request, wanted),
        concurrency=max(s.concurrency, 32),
        duration_s=120.0,
        on_ok=keep,
    )
    log(f"prepared {len(tokens):,} holds in {time.perf_counter() - started:.1f}s")
    buyer = sales_pb2.BuyerDetails(name="Bench Buyer", email="buyer@example.com", payment_reference="psp-1")
    commits = iter(
        sales_pb2.CommitHoldRequest(hold_token=t, idempotency_key=f"k{i}", buyer=buyer).SerializeToString()
        for i, t in enumerate(tokens)
    )
    result = await run.measure(
        run.sw, "CommitHold", COMMIT, lambda: next(commits, None), s.concurrency, s.duration_s
    )
    note = f"{len(tokens):,} holds prepared"
    if result.ran_dry:
        note += "; all committed before the time was up"
    result.notes = note
    return result, note


def ga_venue() -> bytes:
    """One general-admission floor of a million places, every category of PRICES defined."""
    doc = {
        "name": "Single quota",
        "categories": [{"key": c, "label": c} for c in PRICES],
        "ga_areas": [{"id": "floor", "label": "Floor", "capacity": 1_000_000, "category": "cat1",
                      "outline": [[0, 0], [10000, 0], [10000, 10000], [0, 10000]]}],
    }  # fmt: skip
    return json.dumps(doc).encode()


async def single_quota(run: Run) -> PhaseResult:
    """Single-quota on-sale: each order is HoldGeneralAdmission(1) then CommitHold.

    Holds are taken for the phase's duration, then committed; orders/s is the
    number of orders over the time both steps took (the same server work as
    interleaving them per buyer).
    """
    s = run.settings
    stadium_map = run.setup.seat_map_id
    await run.setup.upload(ga_venue())
    event_id = await run.setup.event("single quota")
    run.setup.seat_map_id = stadium_map
    tokens: list[str] = []
    hold = sales_pb2.HoldGeneralAdmissionRequest(
        event_id=event_id, area_id="floor", quantity=1
    ).SerializeToString()
    holds = await run.measure(
        run.sw,
        "single quota: HoldGeneralAdmission",
        HOLD_GA,
        constant(hold),
        s.concurrency,
        s.duration_s,
        on_ok=lambda _req, reply: tokens.append(sales_pb2.HoldResponse.FromString(reply).hold.hold_token),
    )
    commits = iter(
        sales_pb2.CommitHoldRequest(hold_token=t, idempotency_key=f"q{i}").SerializeToString()
        for i, t in enumerate(tokens)
    )
    committed = await run.measure(
        run.sw, "single quota: CommitHold", COMMIT, lambda: next(commits, None), s.concurrency, 120.0
    )
    orders = merge("single-quota orders (hold + commit)", [holds, committed])
    orders.ok = committed.ok
    orders.notes = f"{committed.ok:,} orders, {committed.ok / orders.elapsed_s:,.0f} orders/s"
    return orders


async def sweep(run: Run) -> int:
    """HoldSeats and echo at each level; returns the saturating level."""
    s = run.settings
    holds: dict[int, PhaseResult] = {}
    echoes: dict[int, PhaseResult] = {}
    for c in s.levels:
        echoes[c] = await run.echo_phase("echo sweep", c, s.sweep_s)
        holds[c] = await run.hold_phase("HoldSeats sweep", c, s.sweep_s)
    best = max(r.rps for r in holds.values())
    knee = min(c for c, r in holds.items() if r.rps >= SATURATION_SHARE * best)
    for c in s.levels:
        mark = "<- saturation (>= 80% of peak RPS: the curve is flat past it, and noisy)" if c == knee else ""
        figure = f"  sweep: HoldSeats, {s.seats_per_hold} seats"
        run.rows.append(Row.of(figure, holds[c], echoes[c], mark))
    return knee


async def bench(
    settings: Settings, venue: Venue, sw_target: str, echo_target: str, pids: dict[str, int]
) -> Run:
    s = settings
    setup = Setup(sw_target)
    await setup.keys()
    started = time.perf_counter()
    await setup.upload(venue.content)
    log(
        f"uploaded and published the stadium ({venue.seat_count:,} seats, {len(venue.content) / 1e6:.1f} MB) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    metadata = [("authorization", f"Bearer {setup.storefront_key}")]
    sw = LoadGenerator(sw_target, s.channels, metadata)
    echo = LoadGenerator(echo_target, s.channels, metadata)
    run = Run(s, venue, setup, sw, echo, SeatGroups(venue.rows, s.seats_per_hold, random.Random(s.seed)))
    run.cpu_echo = CpuMeter({"server": pids["echo"], "redis": pids["redis"]})
    run.cpu_sw = CpuMeter({"server": pids["seatwise"], "redis": pids["redis"]})
    try:
        await run.ensure_groups(1.0)
        run.echo_payload = run.groups.next_request() or b""
        gc.collect()
        gc.freeze()  # the venue's objects stay out of the collector's way during the load
        await (_hot_path(run) if s.hot_path_only else _fixed_and_sweep(run))
    finally:
        await sw.close()
        await echo.close()
        await setup.close()
    return run


async def _warm_up(run: Run) -> None:
    s = run.settings
    await run.echo_phase("warm-up echo", s.concurrency, s.warmup_s)
    await run.hold_phase("warm-up HoldSeats", s.concurrency, s.warmup_s)
    run.phases = [p for p in run.phases if not p.name.startswith("warm-up")]


async def _hot_path(run: Run) -> None:
    """HoldSeats and single-quota orders between two echo phases: a quick A/B of the hot path."""
    s = run.settings
    await _warm_up(run)
    echo_start = await run.echo_phase("echo (start)", s.concurrency, s.duration_s)
    holds = await run.hold_phase("HoldSeats", s.concurrency, s.duration_s)
    quota = await single_quota(run)
    echo_end = await run.echo_phase("echo (end)", s.concurrency, s.duration_s)
    echo = merge("echo (start+end)", [echo_start, echo_end])
    run.rows += [
        Row.of("echo: baseline (start+end)", echo, echo),
        *await run.ceilings(echo),
        *await run.seatwise_ceilings(echo),
        Row.of(f"HoldSeats, {s.seats_per_hold} random adjacent seats", holds, echo),
        Row.of("single-quota orders/s (GA hold 1 + commit)", quota, echo),
    ]
    if run.ceiling_read is not None and run.wrapped_write is not None:
        read = run.ceiling_read.rps
        print(
            f"[bench] HoldSeats / read ceiling {holds.rps / read:.2f}; a durable write behind "
            f"seatwise's wrapper (no hold logic) / read ceiling {run.wrapped_write.rps / read:.2f}",
            file=sys.stderr,
        )


async def _fixed_and_sweep(run: Run) -> None:
    s = run.settings
    c = s.concurrency
    await _warm_up(run)
    echo_start = await run.echo_phase("echo (start)", c, s.duration_s)
    holds = await run.hold_phase("HoldSeats", c, s.duration_s)
    best0, _ = await best_available(run, 0.0)
    best90, _ = await best_available(run, s.fill)
    commit, _ = await commit_holds(run)
    quota = await single_quota(run)
    echo_end = await run.echo_phase("echo (end)", c, s.duration_s)
    echo = merge("echo (start+end)", [echo_start, echo_end])
    run.rows += [
        Row.of("echo: bare grpc.aio, start", echo_start, echo),
        Row.of("echo: bare grpc.aio, end", echo_end, echo),
        Row.of("echo: baseline (start+end)", echo, echo),
        *await run.ceilings(echo),
        *await run.seatwise_ceilings(echo),
        Row.of(f"HoldSeats, {s.seats_per_hold} random adjacent seats", holds, echo),
        Row.of("HoldBestAvailable q=2, empty stadium", best0, echo),
        Row.of(f"HoldBestAvailable q=2, ~{s.fill:.0%} sold", best90, echo),
        Row.of(f"CommitHold ({s.seats_per_hold}-seat holds)", commit, echo),
        Row.of("single-quota orders/s (GA hold 1 + commit)", quota, echo),
    ]
    knee = await sweep(run)
    half = max(1, knee // 2)
    echo_half = await run.echo_phase("echo at half saturation", half, s.duration_s)
    hold_half = await run.hold_phase("HoldSeats at half saturation", half, s.duration_s)
    run.rows.append(Row.of(f"HoldSeats latency @ half saturation (c={knee}/2)", hold_half, echo_half))
    best_half, _ = await best_available(run, s.fill, half)
    run.rows.append(Row.of(f"HoldBestAvailable latency @ ~{s.fill:.0%} sold, c={half}", best_half, echo_half))
    # overload: far past saturation the service must shed clearly and recover
    flood = max(knee * 16, 256)
    over = await run.hold_phase("HoldSeats overload", flood, s.duration_s)
    shed = over.errors.get("RESOURCE_EXHAUSTED", 0)
    over.notes = f"{shed:,} shed (RESOURCE_EXHAUSTED), other errors {sum(over.errors.values()) - shed:,}"
    after = await run.hold_phase("HoldSeats after overload", half, s.duration_s)
    run.rows.append(Row.of(f"HoldSeats overload (c={flood}): admitted calls", over, echo_half))
    run.rows.append(Row.of(f"HoldSeats right after overload (c={half})", after, echo_half))


# -- processes -----------------------------------------------------------------------------------


def start_servers(s: Settings, workdir: Path, redis_url: str) -> tuple[ChildServer, str, ChildServer, str]:
    echo_port, sw_port = free_port(), free_port()
    workers = ["--workers", str(s.server_workers)]
    echo_args = ["echo", "--port", str(echo_port), "--redis-url", redis_url, *workers]
    echo = ChildServer("echo server", SERVERS, echo_args, workdir / "echo.log")
    env = seatwise_env({"admin_key": ADMIN_KEY, "log_level": "warning"})
    profile = ["--profile", str(s.profile_path)] if s.profile_path else []
    serve = [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(sw_port),
        "--redis-url",
        redis_url,
        "--data-dir",
        str(workdir / "seatwise"),
        "--log-level",
        "warning",
        *(workers if s.server_workers > 1 else []),
    ]
    sw_args = ["seatwise", *profile, "--with-ceiling", "--", *serve]
    sw = ChildServer("seatwise", SERVERS, sw_args, workdir / "seatwise.log", env)
    return echo, f"127.0.0.1:{echo_port}", sw, f"127.0.0.1:{sw_port}"


def redis_pid(server: EmbeddedRedis) -> int:
    client = redis_lib.Redis(unix_socket_path=str(server.socket_path))
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def print_profile(path: Path, top: int = 35) -> None:
    import pstats

    if not path.exists():
        log(f"no server profile at {path}")
        return
    print(f"\nseatwise server profile ({path}), top {top} by own time:")
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("tottime").print_stats(top)


def report(run: Run, meta: dict[str, Any]) -> None:
    s = run.settings
    print()
    print(
        f"seatwise sales benchmark: {meta['seats']:,}-seat stadium, {os.cpu_count()} CPU(s), "
        f"redis appendfsync={s.appendfsync}, {s.channels} connections, {s.duration_s:g}s per phase "
        f"({s.sweep_s:g}s per sweep level)"
    )
    print(
        "RPS/echo: share of the bare echo server's throughput at the same concurrency; "
        "p50/echo, p99/echo: times the echo latency.\nCPU%: busy share of one core of the load "
        "generator, the server under test and Redis during the phase.\n"
    )
    print(format_table(run.rows))
    errors = [f"  {p.name}: {p.errors}" for p in run.phases if p.errors]
    if errors:
        print("\nerrors by status:\n" + "\n".join(errors))
    if s.json_path:
        write_json(s.json_path, meta, run.rows, run.phases)
        print(f"\nwrote {s.json_path}")


def main(argv: Sequence[str] | None = None) -> None:
    s = parse_args(argv)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="seatwise-bench-"))
    redis = EmbeddedRedis(workdir / "redis", appendfsync=s.appendfsync)
    redis.start()
    children: list[ChildServer] = []
    try:
        echo, echo_target, sw, sw_target = start_servers(s, workdir, redis.url)
        children += [echo, sw]
        venue = build_venue()
        asyncio.run(_wait(sw, sw_target, echo, echo_target))
        pids = {"echo": echo.process.pid, "seatwise": sw.process.pid, "redis": redis_pid(redis)}
        run = asyncio.run(bench(s, venue, sw_target, echo_target, pids))
    except BaseException:
        log(f"failed; server and Redis logs are in {workdir}")
        raise
    finally:
        for child in children:
            child.stop()
        redis.stop()
    meta = {
        "seats": venue.seat_count,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(s).items()},
        "wall_s": round(time.perf_counter() - started, 1),
        "hold_events_used": run.groups.events_used,
    }
    report(run, meta)
    if s.keep_workdir:
        log(f"done in {meta['wall_s']}s; server and Redis logs and data are in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        log(f"done in {meta['wall_s']}s")
    if s.profile_path:
        print_profile(s.profile_path)


async def _wait(sw: ChildServer, sw_target: str, echo: ChildServer, echo_target: str) -> None:
    await asyncio.gather(wait_serving(sw_target, sw), wait_serving(echo_target, echo))


def parse_args(argv: Sequence[str] | None) -> Settings:
    p = argparse.ArgumentParser(
        prog="python -m scripts.bench.sales", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--duration", type=float, default=4.0, help="seconds per measured phase [4]")
    p.add_argument("--sweep-duration", type=float, default=1.5, help="seconds per sweep level [1.5]")
    p.add_argument("--concurrency", type=int, default=32, help="in-flight calls of the fixed phases [32]")
    p.add_argument("--channels", type=int, default=4, help="client connections [4]")
    p.add_argument("--levels", default="1,2,4,8,16,32,64", help="sweep concurrencies [1,2,4,8,16,32,64]")
    p.add_argument("--seats-per-hold", type=int, default=2, choices=(1, 2, 3, 4), help="HoldSeats size [2]")
    p.add_argument("--fill", type=float, default=0.9, help="unavailable share for the sold-out case [0.9]")
    p.add_argument(
        "--appendfsync",
        choices=("always", "everysec", "no"),
        default="always",
        help="Redis AOF fsync policy [always, the service's default]",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a ~20 s run: short phases, fewer levels")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: --hot-path-only with phases of a fraction of a second (figures meaningless)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument(
        "--profile-server",
        type=Path,
        default=None,
        help="run seatwise under cProfile, write stats here and print the top functions "
        "(slows the server: figures of such a run are not comparable)",
    )
    p.add_argument("--keep-workdir", action="store_true", help="keep the logs and Redis data of the run")
    p.add_argument(
        "--hot-path-only",
        action="store_true",
        help="only echo, HoldSeats, single-quota orders, echo: a quick A/B of the hot path",
    )
    p.add_argument(
        "--server-workers",
        type=int,
        default=1,
        help="processes of seatwise (serve --workers) and, alike, of the echo server [1]",
    )
    a = p.parse_args(argv)
    if a.server_workers < 1 or (a.server_workers > 1 and a.profile_server):
        p.error("--server-workers must be at least 1, and 1 with --profile-server")
    quick: Callable[[Any, Any], Any] = lambda full, short: short if a.quick else full  # noqa: E731
    smoke: Callable[[Any, Any], Any] = lambda other, short: short if a.smoke else other  # noqa: E731
    return Settings(
        duration_s=smoke(quick(a.duration, min(a.duration, 1.0)), 0.3),
        sweep_s=quick(a.sweep_duration, min(a.sweep_duration, 0.5)),
        warmup_s=smoke(quick(1.0, 0.3), 0.1),
        concurrency=a.concurrency,
        channels=a.channels,
        levels=quick(sorted({int(x) for x in a.levels.split(",")}), [1, 4, 16, 64]),
        seats_per_hold=a.seats_per_hold,
        fill=a.fill,
        appendfsync=a.appendfsync,
        seed=a.seed,
        json_path=a.json,
        profile_path=a.profile_server,
        server_workers=a.server_workers,
        keep_workdir=a.keep_workdir,
        hot_path_only=a.hot_path_only or a.smoke,
    )


if __name__ == "__main__":
    main()
