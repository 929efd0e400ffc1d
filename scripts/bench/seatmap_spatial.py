"""Timings of the seat-map index, spatial queries, best-available and SVG rendering at stadium scale.

    uv run --frozen python -m scripts.bench.seatmap_spatial [--repeat 200] [--smoke]

On the ~90k-seat stadium of ``seatmap.generate``. "x% sold" marks a random x%
of seats unavailable (uniform: the most fragmented, hence hardest, pattern for
best-available).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from holds.candidates import POOL_SIZE
from scripts.bench.harness import samples
from seatmap.bestavailable import BestAvailableRequest, best_available, choose
from seatmap.generate import stadium
from seatmap.index import SeatIndex
from seatmap.render import render_svg


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and 95th percentile in milliseconds."""
    runs = sorted(t * 1000 for t in samples(fn, repeat))
    return statistics.median(runs), runs[int(0.95 * (len(runs) - 1))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.seatmap_spatial",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="a few seconds: two runs of each figure")
    args = parser.parse_args(argv)
    repeat: int = 2 if args.smoke else args.repeat

    t0 = time.perf_counter()
    seatmap = stadium()
    generate_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    index = SeatIndex(seatmap)
    build_ms = (time.perf_counter() - t0) * 1000
    print(
        f"map: seatmap.generate.stadium(): {len(index)} seats, {len(index.section_ids)} sections, "
        f"{len(index.group_start)} rows"
    )
    print(f"stadium() generation              {generate_ms:8.1f} ms")
    print(f"index build                       {build_ms:8.1f} ms")

    x0, y0, x1, y1 = index.bounds
    cx = (x0 + x1) / 2
    w, h = (x1 - x0) / 10, (y1 - y0) / 10
    lasso = [(cx - w, y0), (cx + w, y0), (cx + w, y0 + h), (cx - w, y0 + h)]
    hits = len(index.seats_in_region(lasso))
    med, p95 = timed(lambda: index.seats_in_region(lasso), repeat)
    print(f"seats_in_region ({hits:5d} seats)       median {med:6.3f} ms   p95 {p95:6.3f} ms")
    sx, sy = float(index.x[len(index) // 2]), float(index.y[len(index) // 2])
    for n in (1, 10, 100):
        med, p95 = timed(partial(index.nearest, sx, sy, n), repeat)
        print(f"nearest n={n:<4d}                     median {med:6.3f} ms   p95 {p95:6.3f} ms")

    rng = np.random.default_rng(7)
    chooser = random.Random(7)
    for sold in (0.0, 0.5, 0.9, 0.99):
        available = rng.random(len(index)) >= sold
        for quantity, adjacency in ((2, "required"), (4, "required"), (8, "preferred")):
            request = BestAvailableRequest(quantity=quantity, adjacency=adjacency)  # type: ignore[arg-type]
            found = best_available(index, available, request)
            med, p95 = timed(partial(best_available, index, available, request), repeat)
            tier = found[0].tier if found else "-"
            print(
                f"best_available {sold:4.0%} sold q={quantity} {adjacency:<9s} "
                f"median {med:6.3f} ms   p95 {p95:6.3f} ms   ({len(found)} candidates, tier {tier})"
            )
            choose(found, chooser)
    # as a candidate pool searches (holds/candidates.py): a category, POOL_SIZE candidates
    for sold in (0.5, 0.9):
        available = rng.random(len(index)) >= sold
        for category in sorted(index.category_keys):
            request = BestAvailableRequest(quantity=2, categories=frozenset({category}))
            found = best_available(index, available, request, limit=POOL_SIZE)
            med, p95 = timed(partial(best_available, index, available, request, limit=POOL_SIZE), repeat)
            print(
                f"best_available {sold:4.0%} sold q=2 {category:<9s} "
                f"median {med:6.3f} ms   p95 {p95:6.3f} ms   ({len(found)} candidates, pool search)"
            )

    status = {o: "sold" for o in np.flatnonzero(rng.random(len(index)) < 0.5).tolist()}
    t0 = time.perf_counter()
    svg = render_svg(index, status)
    render_ms = (time.perf_counter() - t0) * 1000
    print(f"render_svg (50% sold)             {render_ms:8.1f} ms   {len(svg) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
