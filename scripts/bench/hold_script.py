"""Redis' own time per hold script, by part. Prints figures; asserts nothing.

    uv run --frozen python -m scripts.bench.hold_script [--calls 2000] [--rounds 3] [--smoke]

An embedded Redis (``appendfsync no``: the figures are Redis' CPU in the script,
not its fsyncs) and an on-sale event on a 100k-seat grid. One real
``Inventory.hold`` of two adjacent seats gives the hold script's keys and
arguments; then the script, and copies of it cut short at each part's end,
run ``--calls`` times each over fresh seat pairs (32 pipelined), alternating
``--rounds`` times. Each figure is ``INFO commandstats``' time per ``EVALSHA``,
the best round:

* ``EVALSHA floor``: ``return 1`` with the same keys and arguments (Redis'
  per-call cost of a script: the lookup, KEYS and ARGV as Lua tables);
* ``+ prelude``: the reply codes and helpers every hold carries (Lua has no
  imports: ``holds/scripts.py`` prepends them; each call defines them again);
* ``+ checks``: the clock, the sale's settings, the expiry purge, the seats,
  channels, distancing and limits;
* ``whole script``: and the writes (seats, the change feed entry, the hold
  record, its expiry).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any, cast

from holds.events import EventSettings
from holds.replies import Reply
from holds.script_channel import EncodableArg
from holds.scripts import script_source
from scripts.bench.harness import run_with_scratch_redis
from scripts.bench.seatmap import grid_venue
from server.context import Stores

TENANT = "bench"
PIPELINE = 32
# hold.lua's arguments: hold id, mode, buyer, ..., then the seats' ordinals and categories
HOLD_ID, BUYER, N_SEATS = 0, 2, 6
WHOLE = "whole script (+ the writes)"


def variants() -> dict[str, str]:
    """The hold script, and copies that return at the end of each part."""
    whole = script_source("hold")
    body = whole.index("local hold_id = ARGV[1]")
    checks_end = whole.index("-- apply\nlocal token")
    return {
        "EVALSHA floor (return 1)": "return 1",
        "+ prelude (reply codes, helpers)": whole[:body] + "do return 1 end\n" + whole[body:],
        "+ checks (clock, settings, purge, seats, limits)": (
            whole[:checks_end] + "do return 1 end\n" + whole[checks_end:]
        ),
        WHOLE: whole,
    }


def check_reply(variant: str, reply: Any) -> None:
    """Each figure is of what it names: the whole script took its seats, a cut one returned."""
    took = isinstance(reply, list) and reply[0] == Reply.OK
    if not (took if variant == WHOLE else reply == 1):
        raise SystemExit(f"{variant}: unexpected reply {reply!r}")


class Recorder:
    """Stands in for the registry's hold script once, to keep the keys and arguments."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.calls: list[tuple[list[str], list[EncodableArg]]] = []

    async def __call__(self, keys: Sequence[str], args: Sequence[EncodableArg]) -> Any:
        self.calls.append((list(keys), list(args)))
        return await self.script(keys, args)


async def bench(redis_url: str, calls: int, rounds: int, sections: int) -> None:
    stores = Stores.open(redis_url, read_timeout=False)
    try:
        venue = grid_venue(sections=sections)
        version = await stores.seatmaps.put(TENANT, "", venue)
        await stores.seatmaps.publish(TENANT, version.seat_map_id, version.version)
        loaded = await stores.seatmaps.load(TENANT, version.seat_map_id, version.version)
        settings = EventSettings(name="bench", status="on_sale", prices={"std": 1000}, max_seats_per_hold=10)
        event = await stores.events.create(TENANT, loaded, "EUR", settings)
        seats = [(p.ordinal, p.seat.category) for p in loaded.index.placed]
        registry = stores.inventory._scripts  # the one call to record
        recorder = Recorder(registry.hold)
        registry.hold = cast(Any, recorder)
        await stores.inventory.hold(event.ref.event_id, seats=seats[:2], buyer="b0")
        registry.hold = recorder.script
        keys, template = recorder.calls[0]
        pairs = iter(range(1, len(seats) // 2))
        shas = {name: await stores.redis.script_load(src) for name, src in variants().items()}
        best: dict[str, list[float]] = {name: [] for name in shas}
        for _ in range(rounds):
            for name, sha in shas.items():
                await stores.redis.config_resetstat()
                for _ in range(calls // PIPELINE):
                    pipe = stores.redis.pipeline(transaction=False)
                    for _ in range(PIPELINE):
                        i = next(pairs)
                        args = list(template)
                        args[HOLD_ID], args[BUYER] = f"hbench{i:010d}", f"b{i}"
                        args[N_SEATS + 1 : N_SEATS + 5] = [
                            seats[2 * i][0], seats[2 * i + 1][0], seats[2 * i][1], seats[2 * i + 1][1]
                        ]  # fmt: skip
                        pipe.evalsha(sha, len(keys), *keys, *args)
                    for reply in await pipe.execute(raise_on_error=False):
                        check_reply(name, reply)
                stats = await stores.redis.info("commandstats")
                best[name].append(float(stats["cmdstat_evalsha"]["usec_per_call"]))
        print(f"Redis' own time per hold script, µs: best of {rounds} (median), {calls:,} calls each")
        previous = 0.0
        for name, figures in best.items():
            low = min(figures)
            print(f"  {name:<50} {low:7.1f}  ({statistics.median(figures):.1f})  +{low - previous:.1f}")
            previous = low
    finally:
        await stores.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.hold_script", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=2_000, help="scripts per variant and round [2000]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is shown [3]")
    parser.add_argument(
        "--smoke", action="store_true", help="a second or two: few calls, figures meaningless"
    )
    a = parser.parse_args(argv)
    calls, rounds = (64, 1) if a.smoke else (a.calls, a.rounds)
    sections = 4 if a.smoke else 100  # 4k or 100k seats: enough pairs for every call
    needed = calls // PIPELINE * PIPELINE * rounds * len(variants()) * 2
    if needed > sections * 1_000:
        parser.error(f"--calls × --rounds needs {needed:,} seats; the venue has {sections * 1_000:,}")
    run_with_scratch_redis("seatwise-bench-hold-script-", lambda url: bench(url, calls, rounds, sections))


if __name__ == "__main__":
    main()
