"""Moving a sold-out event to another version of its seat map: how long Redis serves nothing else.

A move is made in chunks (``remap_begin.lua``, ``remap_step.lua``: docs/selling.md, "Moving
an event to a new seat-map version"); the whole move in one script (``remap.lua``, still the
dry run's) is measured beside it. This runs both on the stadium (``seatmap.generate.stadium``,
~89,000 seats) sold out in bulk as ``scripts/bench/exports.py`` sells it (orders of 4 seats
written straight into the event's keys), moved to a version whose first section comes last
and back (every seat keeps its id, every ordinal changes, so every seat, order and ticket is
rewritten: the worst case). Reported per way of moving: the wall clock, the longest single
script in Redis (SLOWLOG: how long the shard served nothing else at a stretch), their sum,
the number of scripts, the CPU Redis' main thread spent (INFO cpu: on a busy machine the
wall clock also counts the time Redis waited for a core), the slowest hold + release of
ANOTHER event on the same Redis meanwhile (from this process, so it also counts this
process's own stalls) and the slowest PING from a thread of its own (how long the shard
answered nobody), and how many calls Redis refused BUSY. On a scratch Redis.

Second, what the seat-map version fence costs every hold (``holds/lua/_layout.lua``: the
caller's version as the last argument, one HGET of meta inside the script): ``hold.lua``
called with the version and unfenced (``''``), alternating phases, each a hold of one seat
and its release; Redis' own microseconds per call (INFO commandstats) of EVALSHA.

    python -m scripts.bench.seatmap_move             # the stadium, sold out
    python -m scripts.bench.seatmap_move --sold 0.5  # half of it
    python -m scripts.bench.seatmap_move --smoke     # a theatre, a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import msgspec
import redis
import redis.exceptions

from holds.errors import StoreFault
from holds.events import EventSettings
from holds.remap import MoveReport
from scripts.bench.exports import sell_out
from scripts.bench.harness import run_with_scratch_redis
from seatmap.generate import stadium, theatre
from seatmap.model import SeatMap
from server.context import Stores
from tests.holds.factories import make_event

TENANT = "bench"
T = TypeVar("T")


def _rotated(seatmap: SeatMap) -> SeatMap:
    """The same seats, the first section last: every ordinal moves."""
    return msgspec.structs.replace(seatmap, sections=[*seatmap.sections[1:], seatmap.sections[0]])


async def run(redis_url: str, smoke: bool, sold: float) -> None:  # noqa: C901 - one bench, told top to bottom
    seatmap = theatre() if smoke else stadium()
    stores = Stores.open(redis_url, read_timeout=False)
    try:
        v1 = await stores.seatmaps.put(TENANT, "", seatmap)
        await stores.seatmaps.publish(TENANT, v1.seat_map_id, v1.version)
        loaded = await stores.seatmaps.load(TENANT, v1.seat_map_id, v1.version)
        prices = {c.key: 5000 for c in seatmap.categories}
        event = await stores.events.create(TENANT, loaded, "EUR", EventSettings("Move", prices=prices))
        event_id = event.ref.event_id
        orders, tickets = await sell_out(redis_url, event_id, seatmap, 5000, sold)
        v2 = await stores.seatmaps.put(TENANT, v1.seat_map_id, _rotated(seatmap))
        await stores.seatmaps.publish(TENANT, v1.seat_map_id, v2.version)
        print(f"{len(loaded.index):,} seats, {orders:,} orders, {tickets:,} tickets sold")

        await stores.redis.config_set("slowlog-log-slower-than", 0)
        await stores.redis.config_set("slowlog-max-len", 100_000)
        other = await make_event(stores.seatmaps, stores.events, tenant=TENANT, rows=2, seats_per_row=4)

        async def scripts_ms() -> list[float]:
            """Each script's own time in Redis since the last reset (SLOWLOG: microseconds)."""
            out = []
            for entry in await stores.redis.slowlog_get(100_000):
                command = entry["command"]
                text = command.decode() if isinstance(command, bytes) else str(command)
                if text.startswith(("EVALSHA", "EVAL ")):
                    out.append(float(entry["duration"]) / 1000)
            return out

        async def redis_cpu_ms() -> float:
            info = await stores.redis.info("cpu")
            return float(info["used_cpu_user_main_thread"] + info["used_cpu_sys_main_thread"]) * 1000

        async def measured(name: str, move: Callable[[], Awaitable[MoveReport]]) -> MoveReport:
            """Run ``move`` while another event holds and releases a seat in a loop."""
            done = asyncio.Event()
            waits: list[float] = []
            busy: list[int] = []

            async def other_event() -> None:
                """Hold and release a seat of another event, again and again; a BUSY refusal
                (a script ran past busy-reply-threshold) is retried: the wait counts it."""
                while not done.is_set():
                    started = time.perf_counter()
                    held = await busy_retried(
                        partial(stores.inventory.hold, other.event_id, seats=other.seats(0))
                    )
                    await busy_retried(partial(stores.inventory.release, other.event_id, held.hold_id))
                    waits.append(time.perf_counter() - started)

            async def busy_retried(call: Callable[[], Awaitable[T]]) -> T:
                while True:
                    try:
                        return await call()
                    except StoreFault as exc:
                        if "BUSY" not in str(exc):
                            raise
                        busy.append(1)
                        await asyncio.sleep(0.001)

            pings: list[float] = []
            stop = threading.Event()

            def ping() -> None:
                """PING from a thread of its own: how long the shard answered nobody at a stretch
                (the other event's figure also counts this process's own stalls)."""
                client = redis.Redis.from_url(redis_url)
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        client.ping()
                    except redis.exceptions.TimeoutError:  # no answer within the client's timeout
                        pass
                    except redis.exceptions.ResponseError:  # BUSY: a script past the threshold
                        busy.append(1)
                        time.sleep(0.001)
                        continue
                    pings.append(time.perf_counter() - started)
                client.close()

            await stores.redis.slowlog_reset()
            cpu = await redis_cpu_ms()
            started = time.perf_counter()
            beside = asyncio.create_task(other_event())
            pinger = threading.Thread(target=ping)
            pinger.start()
            try:
                report = await move()
            finally:
                done.set()
                await beside
                stop.set()
                await asyncio.to_thread(pinger.join)
            wall = time.perf_counter() - started
            cpu_ms = await redis_cpu_ms() - cpu
            ms = [m for m in await scripts_ms()]
            rows.append(
                (
                    name,
                    f"{wall * 1000:.0f}",
                    f"{max(ms):.1f}",
                    f"{sorted(ms)[len(ms) // 2]:.1f}",
                    f"{sum(ms):.0f}",
                    f"{len(ms)}",
                    f"{cpu_ms:.0f}",
                    f"{max(waits) * 1000:.1f}" if waits else "-",
                    f"{max(pings) * 1000:.1f}" if pings else "-",
                    f"{len(busy)}",
                )
            )
            return report

        for script in (stores.scripts.remap, stores.scripts.remap_begin, stores.scripts.remap_step):
            await stores.redis.script_load(script.source)  # measured: the runs, not a first compile
        rows: list[tuple[str, ...]] = [
            (
                "step",
                "wall ms",
                "longest ms",
                "median ms",
                "sum ms",
                "scripts",
                "Redis CPU ms",
                "other max ms",
                "PING max ms",
                "BUSY",
            )
        ]
        started = time.perf_counter()
        await stores.moves.plan(TENANT, event_id, v2.version, {})
        rows.append(("plan (load versions, mapping)", f"{(time.perf_counter() - started) * 1000:.0f}"))
        rows[-1] += ("-",) * 8
        dry = await measured(
            "dry run (one script)", lambda: stores.moves.move(TENANT, event_id, v2.version, dry_run=True)
        )
        once = await measured(
            "move in one script (before)",
            lambda: stores.moves.move(TENANT, event_id, v2.version, at_once=True),
        )
        chunks = stores.moves.chunks
        steps = await measured(
            f"move in chunks ({chunks.seats} seats, {chunks.records} records)",
            lambda: stores.moves.move(TENANT, event_id, v1.version),
        )
        assert dry.seats_moved == once.seats_moved == steps.seats_moved == tickets, (dry, once, steps)
        assert once.tickets == steps.tickets == tickets
        for row in rows:
            print(f"{row[0]:<40}" + "".join(f"{cell:>13}" for cell in row[1:]))
        moved = f"{steps.seats_moved:,} seats, {steps.tickets:,} tickets in {steps.orders:,} orders"
        print(f"moved {moved} each way")
    finally:
        await stores.close()


async def fence_cost(redis_url: str, calls: int) -> None:
    stores = Stores.open(redis_url, read_timeout=False)
    try:
        ev = await make_event(stores.seatmaps, stores.events, rows=4, seats_per_row=10)
        per_call: dict[str, list[float]] = {"fenced": [], "unfenced": []}
        for phase in ("unfenced", "fenced") * 3:
            layout = ev.loaded.version.version if phase == "fenced" else 0
            await stores.redis.config_resetstat()
            for i in range(calls):
                held = await stores.inventory.hold(
                    ev.event_id, seats=ev.seats(i % ev.seat_count), layout=layout
                )
                await stores.inventory.release(ev.event_id, held.hold_id, layout=layout)
            stats = await stores.redis.info("commandstats")
            per_call[phase].append(float(stats["cmdstat_evalsha"]["usec_per_call"]))
        print(f"{'hold + release script':<34}{'Redis us/call (3 phases each)':>32}")
        for phase, values in per_call.items():
            print(f"{phase:<34}{' '.join(f'{v:6.1f}' for v in values):>32}")
    finally:
        await stores.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a theatre, a few seconds")
    parser.add_argument("--sold", type=float, default=1.0, help="the share of seats sold (0-1)")
    args = parser.parse_args()
    run_with_scratch_redis("sw-move-", lambda url: run(url, args.smoke, args.sold))
    run_with_scratch_redis("sw-fence-", lambda url: fence_cost(url, 500 if args.smoke else 5_000))


if __name__ == "__main__":
    main()
