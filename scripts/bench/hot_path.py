"""CPU of pieces of the sales hot path, each next to what it replaced.

    uv run --frozen python -m scripts.bench.hot_path [--calls 20000] [--smoke]

* A script call (``EVALSHA`` with an event's keys and a hold's
  arguments) through redis-py's asyncio client and through the
  :class:`~holds.script_channel.ScriptChannel`, at 1 and 32 calls in flight,
  against an embedded Redis (``appendfsync no``: Redis' own cost is not the
  subject). Figures are CPU seconds of this process per call, so a busy
  machine moves them less than throughput.
* Counts-only ``GetAvailability`` replies for the ~90k-seat stadium: counted
  from the state array per request, and from the mirror's incrementally kept
  :class:`~holds.availability.GroupCounts`; plus what keeping them costs per
  change.
* Per-call pieces of every unary RPC, on uvloop: a call budget by
  ``asyncio.timeout`` and by seatwise's sweep (``server.deadlines.Budgets``);
  a script call's error mapping by ``async with wrap_errors`` and inline, as
  seatwise's script calls do; a 2-seat hold reply built with keyword
  constructors and in place (``hold_pb``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from seatwise.v1 import events_pb2, sales_pb2

from holds.availability import HELD, Delta, EventMirror, GroupCounts, Snapshot, count_by_group
from holds.keys import event_keys
from holds.redis_client import connect, raise_store_error, wrap_errors
from holds.sales import HoldInfo
from holds.script_channel import ScriptChannel, ScriptCommands, for_client
from scripts.bench.harness import cpu_per_call, per_call, run_with_scratch_redis
from seatmap.generate import stadium
from seatmap.index import SeatIndex
from server.app import run_loop
from server.deadlines import Budgets
from server.servicers.convert import hold_pb, ts
from server.servicers.events import availability_pb

# returns a reply shaped like hold.lua's: status, hold id, expiry, seq, record
SCRIPT = 'return {0, ARGV[1], 1700000000000, 42, \'{"seats":[1234,1235],"ga":{},"buyer":"b"}\'}'
# hold.lua's arguments for a new hold of two seats without a request id
HOLD_ARGS: list[str | int] = [
    "h0123456789ab",
    "new",
    "buyer-1",
    16,
    "",
    "",
    2,
    1234,
    1235,
    "premium",
    "premium",
    0,
]


async def cpu_per_call_warm(call: Callable[[], Awaitable[Any]], calls: int, in_flight: int) -> float:
    """CPU per call of ``call()``, ``in_flight`` at a time, after a warm-up of as many calls."""
    await cpu_per_call(lambda _: call(), range(calls), in_flight)
    return await cpu_per_call(lambda _: call(), range(calls), in_flight)


async def script_calls(redis_url: str, calls: int) -> None:
    client = connect(redis_url, socket_timeout=None)
    channel = for_client(client)
    assert isinstance(channel, ScriptChannel)  # a single embedded Redis
    sha = await client.script_load(SCRIPT)
    keys = list(event_keys("evBench"))
    commands = ScriptCommands(sha)

    async def via_redis_py() -> Any:
        return await client.evalsha(sha, len(keys), *keys, *HOLD_ARGS)

    async def via_channel() -> Any:
        return await channel.execute(commands.evalsha(keys, HOLD_ARGS))

    assert await via_redis_py() == await via_channel()
    label = f"script call (EVALSHA, {len(keys)} keys, {len(HOLD_ARGS)} args)"
    print(f"{label:<44} {'in flight':>9} {'µs CPU/call':>12}")
    for in_flight in (1, 32):
        for label, call in (("redis-py asyncio client", via_redis_py), ("ScriptChannel", via_channel)):
            used = await cpu_per_call_warm(call, calls, in_flight)
            print(f"  {label:<42} {in_flight:>9} {used * 1e6:>12.1f}")
    await channel.aclose()
    await client.aclose()


def availability_counts(repeat: int) -> None:
    index = SeatIndex(stadium())
    # what availability_pb reads of a LiveEvent: no distancing rule, no mirror of its own
    loaded = SimpleNamespace(index=index)
    ctx = cast(Any, SimpleNamespace(loaded=loaded, event_id="evBench", mirror=None, near=lambda: None))
    rng = np.random.default_rng(1)
    states = rng.choice(np.array([0, 1, 2], dtype=np.int8), size=len(index), p=[0.5, 0.2, 0.3])
    groups = {
        "category": GroupCounts(index.category_code, len(index.category_keys)),
        "section": GroupCounts(index.section_code, len(index.section_ids)),
    }
    mirror = EventMirror("evBench", len(index), Snapshot(1, states, {}), groups)
    none = events_pb2.SEAT_ENCODING_NONE
    kept_rows = {name: counts.rows for name, counts in groups.items()}

    def recounted() -> dict[str, list[list[int]]]:
        return {n: count_by_group(c.codes, c.groups, mirror.snapshot.states) for n, c in groups.items()}

    assert availability_pb(ctx, mirror.snapshot, none, recounted()) == availability_pb(
        ctx, mirror.snapshot, none, kept_rows
    )
    recount = per_call(lambda: availability_pb(ctx, mirror.snapshot, none, recounted()), repeat)
    kept = per_call(lambda: availability_pb(ctx, mirror.snapshot, none, kept_rows), repeat)
    free = [int(o) for o in np.flatnonzero(states == 0)]
    random.Random(1).shuffle(free)
    deltas = [
        Delta(
            seq=mirror.seq + 1 + i,
            kind="held",
            state="held",
            seats=tuple(free[3 * i : 3 * i + 3]),
            ga_area="",
            ga_qty=0,
        )
        for i in range(repeat)
    ]
    started = time.perf_counter()
    for delta in deltas:
        mirror.apply(delta)
    per_change = (time.perf_counter() - started) / repeat
    assert (mirror.snapshot.states[free[: 3 * repeat]] == HELD).all()
    print(f"\n{'counts-only GetAvailability, stadium':<44} {'ms per reply':>22}")
    print(f"  {'counted per request (bincount)':<42} {recount * 1e3:>22.3f}")
    print(f"  {'kept by the mirror (GroupCounts)':<42} {kept * 1e3:>22.3f}")
    print(f"  {'mirror.apply of a 3-seat change, with counts':<42} {per_change * 1e3:>22.3f}")


def hold_reply_by_keywords(info: HoldInfo) -> sales_pb2.HoldResponse:
    """hold_pb as it was: upb's keyword constructors."""
    return sales_pb2.HoldResponse(
        hold=sales_pb2.Hold(
            hold_token=info.token,
            event_id=info.event_id,
            seat_ids=info.seat_ids,
            general_admission=info.ga,
            expires_at=ts(info.expires_ms),
            buyer_id=info.buyer,
            lifetime_capped=info.lifetime_capped,
        )
    )


async def _nothing() -> None:
    pass


async def _budget_by_timeout() -> None:
    async with asyncio.timeout(30.0):
        await _nothing()


_BUDGETS = Budgets()


async def _budget_by_sweep() -> None:
    await _BUDGETS.within(30.0, _nothing())


async def _errors_by_context_manager() -> None:
    async with wrap_errors("script hold"):
        await _nothing()


async def _errors_inline() -> None:
    try:
        await _nothing()
    except Exception as exc:
        raise_store_error("script hold", exc)
        raise


async def cpu_per_task(piece: Callable[[], Coroutine[Any, Any, None]], calls: int) -> float:
    """CPU per call of ``piece`` run as grpc.aio runs an RPC: a task each, 32 in flight."""
    return await cpu_per_call_warm(lambda: asyncio.create_task(piece()), calls, 32)


async def per_call_pieces(calls: int) -> None:
    print(f"\n{'per-call pieces (a task per call, 32 in flight)':<56} {'µs CPU/call':>10}")
    pieces = (
        ("a task that awaits nothing (the baseline)", _nothing),
        ("+ call budget: asyncio.timeout", _budget_by_timeout),
        ("+ call budget: Budgets sweep (what seatwise runs)", _budget_by_sweep),
        ("+ script errors: async with wrap_errors", _errors_by_context_manager),
        ("+ script errors: inline raise_store_error (seatwise's)", _errors_inline),
    )
    best = {label: float("inf") for label, _ in pieces}
    for _round in range(5):  # interleaved, best of 5: these are a few µs on a noisy machine
        for label, piece in pieces:
            best[label] = min(best[label], await cpu_per_task(piece, calls))
    for label, used in best.items():
        print(f"  {label:<54} {used * 1e6:>10.1f}")
    info = HoldInfo("ev1~h0123456789ab", "ev1", ["A-1-1", "A-1-2"], {}, 1_800_000_000_000, "b1")
    assert hold_reply_by_keywords(info) == hold_pb(info)
    builders: tuple[tuple[str, Callable[[HoldInfo], sales_pb2.HoldResponse]], ...] = (
        ("hold reply: keyword constructors", hold_reply_by_keywords),
        ("hold reply: in place (hold_pb)", hold_pb),
    )
    for label, build in builders:
        print(f"  {label:<54} {per_call(partial(build, info), calls) * 1e6:>10.1f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.hot_path", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=20_000, help="script calls per measurement [20000]")
    parser.add_argument("--repeat", type=int, default=300, help="availability replies per measurement [300]")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: few calls, figures meaningless")
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.repeat = 320, 3
    run_with_scratch_redis("seatwise-hot-path-", lambda url: script_calls(url, args.calls))
    availability_counts(args.repeat)
    run_loop(per_call_pieces(args.calls))


if __name__ == "__main__":
    main()
