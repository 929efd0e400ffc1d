"""Minimum-distance seating benchmark (issue 14). Prints figures; asserts nothing.

    uv run --frozen python -m scripts.bench.distancing [--repeat 5] [--smoke]

In process, for the generated stadium (~90k seats) and theatre (~1.3k): building
every seat's neighbourhood under a rule of 2 seats in the row and of 1.5 m
(``seatmap.distancing.neighbourhoods``, once per event and rule, in a thread of the
server); the availability mirror's upkeep of distanced seats per change of one seat
(a hold) against recounting them all (what a search would pay per request without
the kept counts); a search's free mask; and the script arguments of a 4-seat hold.
Medians over --repeat runs, with the minimum. ``--smoke``: the theatre only, once.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from holds.availability import HELD, EventMirror, Snapshot, distanced
from holds.distancing import script_args
from scripts.bench.harness import per_call, samples
from seatmap.distancing import DistancingRule, neighbourhoods
from seatmap.generate import stadium, theatre
from seatmap.index import SeatIndex

RULES = ("row:2", "m:1.5@100.0")


def _ms(runs: list[float]) -> str:
    return f"{statistics.median(runs) * 1000:9.2f} ms (min {min(runs) * 1000:.2f})"


def run(name: str, index: SeatIndex, repeat: int) -> None:
    for text in RULES:
        run_rule(name, index, text, repeat)


def run_rule(name: str, index: SeatIndex, text: str, repeat: int) -> None:
    n = len(index)
    rule = DistancingRule.parse(text)
    built = samples(lambda: neighbourhoods(index, rule), repeat)
    near = neighbourhoods(index, rule)
    print(f"{name} ({n} seats) {text}: neighbourhoods {_ms(built)}, {len(near.indices) / n:.1f} per seat")
    states = np.zeros(n, dtype=np.int8)
    states[::3] = HELD  # a third of the house held or sold
    mirror = EventMirror("bench", n, Snapshot(0, states, {}))
    mirror.set_near(near)
    reps = max(repeat * 200, 200)

    def flip() -> None:
        mirror.mark_held([1])  # held, then free again: two changes of one seat
        mirror._set([1], 0)

    kept = per_call(flip, reps) / 2
    print(f"{name} {text}: mirror upkeep per seat change {kept * 1e6:8.1f} us")
    recount = per_call(lambda: distanced(mirror.snapshot.states, near), max(repeat * 5, 5))
    print(f"{name} {text}: recount of distanced seats      {recount * 1e6:8.1f} us")
    mask = per_call(mirror.free_mask, reps)
    print(f"{name} {text}: free mask (kept counts)         {mask * 1e6:8.1f} us")
    args = per_call(lambda: script_args(text, near, [100, 101, 102, 103]), reps)
    print(f"{name} {text}: script arguments of a 4-seat hold {args * 1e6:6.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="the theatre only, once")
    ns = parser.parse_args()
    run("theatre", SeatIndex(theatre()), 1 if ns.smoke else ns.repeat)
    if not ns.smoke:
        run("stadium", SeatIndex(stadium()), ns.repeat)


if __name__ == "__main__":
    main()
