"""Moving a sold-out event to another version of its seat map: how long the one script runs.

``remap.lua`` checks and rewrites the whole event in one script (docs/selling.md, "Moving
an event to a new seat-map version"), and Redis serves nothing else of its core meanwhile.
This measures it on the stadium (``seatmap.generate.stadium``, ~89,000 seats) sold out in
bulk as ``scripts/bench/exports.py`` sells it (orders of 4 seats written straight into the
event's keys), moved to a version whose first section comes last: every seat keeps its id,
every ordinal changes, so every seat, order and ticket is rewritten (the worst case).
Reported: the Python side (loading both versions, deriving the mapping), a dry run (the
check alone) and the move, wall clock, and each script's own time in Redis (its SLOWLOG
entry: how long the shard serves nothing else) with the CPU Redis' main thread spent on it
(INFO cpu: on a busy machine the wall clock also counts the time Redis waited for a core),
on a scratch Redis.

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
import time

import msgspec

from holds.events import EventSettings
from scripts.bench.exports import sell_out
from scripts.bench.harness import run_with_scratch_redis
from seatmap.generate import stadium, theatre
from seatmap.model import SeatMap
from server.context import Stores
from tests.holds.factories import make_event

TENANT = "bench"


def _rotated(seatmap: SeatMap) -> SeatMap:
    """The same seats, the first section last: every ordinal moves."""
    return msgspec.structs.replace(seatmap, sections=[*seatmap.sections[1:], seatmap.sections[0]])


async def run(redis_url: str, smoke: bool, sold: float) -> None:
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

        async def in_redis_ms() -> float:
            """The last remap script's own time in Redis (SLOWLOG: microseconds)."""
            entries = await stores.redis.slowlog_get(32)
            for entry in entries:
                command = entry["command"]
                text = command.decode() if isinstance(command, bytes) else str(command)
                if text.startswith(("EVALSHA", "EVAL")):
                    return float(entry["duration"]) / 1000
            return float("nan")

        async def redis_cpu_ms() -> float:
            info = await stores.redis.info("cpu")
            return float(info["used_cpu_user_main_thread"] + info["used_cpu_sys_main_thread"]) * 1000

        started = time.perf_counter()
        await stores.moves.plan(TENANT, event_id, v2.version, {})
        planned = time.perf_counter() - started
        await stores.redis.slowlog_reset()
        cpu = await redis_cpu_ms()
        started = time.perf_counter()
        dry = await stores.moves.move(TENANT, event_id, v2.version, dry_run=True)
        checked = time.perf_counter() - started
        dry_cpu = await redis_cpu_ms() - cpu
        dry_redis = await in_redis_ms()
        await stores.redis.slowlog_reset()
        cpu = await redis_cpu_ms()
        started = time.perf_counter()
        moved = await stores.moves.move(TENANT, event_id, v2.version)
        applied = time.perf_counter() - started
        move_cpu = await redis_cpu_ms() - cpu
        move_redis = await in_redis_ms()
        assert dry.seats_moved == moved.seats_moved == tickets, (dry, moved)
        assert moved.tickets == tickets
        rows = [
            ("step", "wall ms", "in Redis ms", "Redis CPU ms"),
            ("plan (load versions, mapping)", f"{planned * 1000:.0f}", "-", "-"),
            ("dry run (plan + check script)", f"{checked * 1000:.0f}", f"{dry_redis:.0f}", f"{dry_cpu:.0f}"),
            (
                "move (plan + check and rewrite)",
                f"{applied * 1000:.0f}",
                f"{move_redis:.0f}",
                f"{move_cpu:.0f}",
            ),
        ]
        for step, wall, inside, cpu_ms in rows:
            print(f"{step:<34}{wall:>10}{inside:>13}{cpu_ms:>14}")
        print(f"moved {moved.seats_moved:,} seats, {moved.tickets:,} tickets in {moved.orders:,} orders")
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
