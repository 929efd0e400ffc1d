"""Organizer work must not starve the sales path (issue 10). Prints figures; asserts nothing.

    uv run --frozen python -m scripts.bench.organizer_isolation [--seconds 20] [--smoke]

One ``seatwise serve`` child process (one worker, its default heavy-work pool)
on a scratch Redis. Tenant "box" sells: ``--buyers`` coroutines each hold one
random seat of an on-sale event and release it, back to back; the latency of
each hold + release pair is measured. First quietly, then while tenant "org"
(a client process of its own) keeps four ``ValidateSeatMap`` calls of a ~200k-seat map in flight (a refused
call, RESOURCE_EXHAUSTED past the per-tenant limit, is retried after its
RetryInfo delay, so the pool stays busy all phase long). Prints the p50, p99
and max of both phases and the ratio of the p99s (target: at most 2x).
``--checkout DIR`` runs the server from another checkout (e.g. the commit
before the pool, for a before/after on the same machine). ``--smoke``: a
4k-seat map and half a second per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from seatwise.v1 import (
    events_pb2,
    events_pb2_grpc,
    sales_pb2,
    sales_pb2_grpc,
    seatmap_pb2,
    seatmap_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
)

from scripts.bench.harness import ChildServer, free_port, run_with_scratch_redis, seatwise_env, wait_serving
from scripts.bench.seatmap import grid_venue
from seatmap.model import json_encoder

ADMIN_KEY = "sw_admin_bench-only-secret"
VALIDATORS = 4
OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    validations: int = 0
    refused: int = 0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def line(self) -> str:
        errors = sum(self.errors.values())
        return (
            f"{self.name:<34} {len(self.latencies_ms):>7} {errors:>6} {self.pct(50):>8.1f} "
            f"{self.pct(99):>8.1f} {max(self.latencies_ms, default=float('nan')):>8.1f} "
            f"{self.validations:>6} {self.refused:>7}"
        )


def _auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def _setup(channel: grpc.aio.Channel) -> tuple[str, str, str, list[str]]:
    """Tenants "box" (an on-sale event of a 1,000-seat grid) and "org"; their keys, the event, its seats."""
    admin = _auth(ADMIN_KEY)
    tenants = tenancy_pb2_grpc.TenantServiceStub(channel)
    keys = []
    for tenant in ("box", "org"):
        await tenants.CreateTenant(
            tenancy_pb2.CreateTenantRequest(tenant_id=tenant, name=tenant), metadata=admin
        )
        created = await tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(tenant_id=tenant, role=tenancy_pb2.ROLE_ORGANIZER), metadata=admin
        )
        keys.append(created.api_key)
    box = _auth(keys[0])
    venue = grid_venue(sections=1, rows=40, seats=25)
    maps = seatmap_pb2_grpc.SeatMapServiceStub(channel)
    info = (
        await maps.UploadSeatMap(
            seatmap_pb2.UploadSeatMapRequest(content=json_encoder.encode(venue)), metadata=box
        )
    ).seat_map
    await maps.PublishSeatMap(
        seatmap_pb2.PublishSeatMapRequest(seat_map_id=info.seat_map_id, version=info.version), metadata=box
    )
    event = await events_pb2_grpc.EventServiceStub(channel).CreateEvent(
        events_pb2.CreateEventRequest(
            seat_map_id=info.seat_map_id, name="Gig", currency="EUR", status=events_pb2.EVENT_STATUS_ON_SALE,
            prices=[events_pb2.CategoryPrice(category="std", amount_minor=1000)], max_seats_per_hold=1,
        ),
        metadata=box,
    )  # fmt: skip
    seats = [seat.id for section in venue.sections for row in section.rows for seat in row.seats]
    return keys[0], keys[1], event.event.event_id, seats


async def _sell(
    channel: grpc.aio.Channel, key: str, event_id: str, seats: list[str], until: float, phase: Phase
) -> None:
    """Hold one random seat and release it, back to back, until ``until``."""
    holds = sales_pb2_grpc.HoldServiceStub(channel)
    metadata = _auth(key)
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            held = await holds.HoldSeats(
                sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=[random.choice(seats)]),
                metadata=metadata,
                timeout=30,
            )
            await holds.ReleaseHold(
                sales_pb2.ReleaseHoldRequest(hold_token=held.hold.hold_token), metadata=metadata, timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            name = exc.code().name
            phase.errors[name] = phase.errors.get(name, 0) + 1
            continue
        phase.latencies_ms.append((time.perf_counter() - started) * 1000)


def _retry_delay(exc: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return float(info.retry_delay.ToTimedelta().total_seconds())
    return 1.0


async def _validate(target: str, key: str, content: bytes, stop: asyncio.Event, counts: Counter[str]) -> None:
    """ValidateSeatMap of ``content`` back to back until ``stop``; a refusal waits its RetryInfo."""
    async with grpc.aio.insecure_channel(
        target, options=[*OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    ) as ch:
        maps = seatmap_pb2_grpc.SeatMapServiceStub(ch)
        request = seatmap_pb2.ValidateSeatMapRequest(content=content)
        while not stop.is_set():
            try:
                await maps.ValidateSeatMap(request, metadata=_auth(key), timeout=120)
                counts["validations"] += 1
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    counts[f"validate {exc.code().name}"] += 1
                    continue
                counts["refused"] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=_retry_delay(exc))


def _organizer(target: str, key: str, content: bytes, stop: Any, started: Any, results: Any) -> None:
    """The organizer's client, in a process of its own (spawned): its 16 MB requests
    must not stall the event loop that times the sales calls."""

    async def main() -> None:
        counts: Counter[str] = Counter()
        done = asyncio.Event()
        tasks = [
            asyncio.create_task(_validate(target, key, content, done, counts)) for _ in range(VALIDATORS)
        ]
        started.set()
        await asyncio.to_thread(stop.wait)  # a multiprocessing Event: wait in a thread
        done.set()
        await asyncio.gather(*tasks)
        results.put(dict(counts))

    asyncio.run(main())


async def run(redis_url: str, args: argparse.Namespace) -> None:
    seats_wanted = 4_000 if args.smoke else 200_000
    venue = grid_venue(sections=seats_wanted // 1_000, rows=40, seats=25)
    content = json_encoder.encode(venue)
    print(f"organizer map: {seats_wanted:,} seats, {len(content) / 1e6:.1f} MB of JSON", flush=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="seatwise-bench-isolation-") as tmp:
        env = seatwise_env(
            {
                "redis_url": redis_url,
                "port": str(port),
                "admin_key": ADMIN_KEY,
                "data_dir": tmp,
                "log_level": "warning",
            }
        )
        server = ChildServer(
            "seatwise", "server.cli", ["serve"], Path(tmp) / "seatwise.log", env, args.checkout
        )
        target = f"127.0.0.1:{port}"
        try:
            await wait_serving(target, server, timeout_s=60.0)
            phases = await _measure(target, content, args)
        finally:
            server.stop()
    quiet, loaded = phases
    print(f"\n{'phase':<34} {'pairs':>7} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'valid.':>6} {'refused':>7}")  # fmt: skip
    print(quiet.line())
    print(loaded.line())
    for phase in phases:
        if phase.errors:
            print(f"  {phase.name} errors: {phase.errors}")
    ratio = loaded.pct(99) / quiet.pct(99) if quiet.latencies_ms else float("nan")
    print(f"\nhold+release p99: quiet {quiet.pct(99):.1f} ms, with {VALIDATORS} validations "
          f"{loaded.pct(99):.1f} ms: {ratio:.2f}x (target <= 2x)")  # fmt: skip


async def _measure(target: str, content: bytes, args: argparse.Namespace) -> tuple[Phase, Phase]:
    async with grpc.aio.insecure_channel(target, options=OPTIONS) as sales_channel:
        box_key, org_key, event_id, seats = await _setup(sales_channel)
        seconds = 0.5 if args.smoke else args.seconds
        # warm up: the event live in the server, the pool process started
        warm = Phase("warm-up")
        await _sell(sales_channel, box_key, event_id, seats, time.perf_counter() + min(seconds, 3.0), warm)
        quiet = Phase("quiet")
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_sell(sales_channel, box_key, event_id, seats, until, quiet) for _ in range(args.buyers))
        )
        loaded = Phase(f"with {VALIDATORS} ValidateSeatMap")
        spawn = multiprocessing.get_context("spawn")  # never fork a process running gRPC
        stop, started, results = spawn.Event(), spawn.Event(), spawn.Queue()
        organizer = spawn.Process(target=_organizer, args=(target, org_key, content, stop, started, results))
        organizer.start()
        await asyncio.to_thread(started.wait, 60)
        await asyncio.sleep(2.0 if not args.smoke else 0.2)  # the first uploads on their way
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_sell(sales_channel, box_key, event_id, seats, until, loaded) for _ in range(args.buyers))
        )
        stop.set()
        counts = await asyncio.to_thread(results.get, True, 180)
        await asyncio.to_thread(organizer.join, 30)
        loaded.validations, loaded.refused = counts.pop("validations", 0), counts.pop("refused", 0)
        loaded.errors |= counts
        return quiet, loaded


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.organizer_isolation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured phase")
    parser.add_argument("--buyers", type=int, default=8, help="concurrent hold+release loops")
    parser.add_argument("--checkout", help="run the server from this checkout (its own .venv)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: a 4k-seat map, 0.5 s phases")
    args = parser.parse_args(argv)
    args.checkout = Path(args.checkout).resolve() if args.checkout else None
    run_with_scratch_redis("seatwise-bench-isolation-", lambda url: run(url, args))


if __name__ == "__main__":
    main()
