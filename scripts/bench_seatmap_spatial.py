"""Timings of the seat-map index, spatial queries, best-available and SVG rendering at stadium scale.

    uv run --frozen python -m scripts.bench_seatmap_spatial [--repeat 200]

Uses the ~90k-seat stadium of ``seatmap.generate`` when that module provides
one, else a synthetic bowl of the same size built here. "x% sold" marks a
random x% of seats unavailable (uniform: the most fragmented, hence hardest,
pattern for best-available).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from seatmap.bestavailable import BestAvailableRequest, best_available, choose
from seatmap.index import SeatIndex
from seatmap.model import Category, Point, Row, Seat, SeatMap, Section
from seatmap.render import render_svg


def synthetic_stadium(sections: int = 60, rows: int = 50, seats_per_row: int = 30) -> SeatMap:
    """A bowl of ``sections`` wedges around an elliptic pitch; rows curve around it (1 unit = 1 cm)."""
    built = []
    sector = 2 * math.pi / sections
    for k in range(sections):
        a0 = k * sector + sector * 0.05
        a1 = (k + 1) * sector - sector * 0.05
        section_rows = []
        for r in range(rows):
            radius = 6000 + r * 80
            seats = []
            for i in range(seats_per_row):
                a = a0 + (a1 - a0) * (i + 0.5) / seats_per_row
                seats.append(
                    Seat(
                        id=f"{k}-{r}-{i}",
                        label=str(i + 1),
                        position=Point(1.4 * radius * math.cos(a), radius * math.sin(a)),
                        category="a" if r < 15 else "b" if r < 35 else "c",
                    )
                )
            section_rows.append(Row(id=f"r{r}", label=str(r + 1), seats=seats))
        outer, inner = 6000 + rows * 80, 5950
        outline = [
            Point(1.4 * inner * math.cos(a0), inner * math.sin(a0)),
            Point(1.4 * outer * math.cos(a0), outer * math.sin(a0)),
            Point(1.4 * outer * math.cos(a1), outer * math.sin(a1)),
            Point(1.4 * inner * math.cos(a1), inner * math.sin(a1)),
        ]
        built.append(Section(id=f"S{k}", label=f"Block {k}", outline=outline, rows=section_rows))
    categories = [Category("a", "Lower"), Category("b", "Middle"), Category("c", "Upper")]
    return SeatMap(name="Synthetic stadium", categories=categories, sections=built, focal_point=Point(0, 0))


def stadium() -> tuple[SeatMap, str]:
    try:
        from seatmap import generate
    except ImportError:
        return synthetic_stadium(), "synthetic bowl (seatmap.generate not available)"
    make: Callable[..., Any] | None = getattr(generate, "stadium", None)
    if make is None:
        return synthetic_stadium(), "synthetic bowl (seatmap.generate has no stadium())"
    return make(), "seatmap.generate.stadium()"


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and 95th percentile in milliseconds."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    repeat: int = args.repeat

    seatmap, origin = stadium()
    t0 = time.perf_counter()
    index = SeatIndex(seatmap)
    build_ms = (time.perf_counter() - t0) * 1000
    print(
        f"map: {origin}: {len(index)} seats, {len(index.section_ids)} sections, {len(index.group_start)} rows"
    )
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
        med, p95 = timed(lambda n=n: index.nearest(sx, sy, n), repeat)  # type: ignore[misc]
        print(f"nearest n={n:<4d}                     median {med:6.3f} ms   p95 {p95:6.3f} ms")

    rng = np.random.default_rng(7)
    chooser = random.Random(7)
    for sold in (0.0, 0.5, 0.9, 0.99):
        available = rng.random(len(index)) >= sold
        for quantity, adjacency in ((2, "required"), (4, "required"), (8, "preferred")):
            request = BestAvailableRequest(quantity=quantity, adjacency=adjacency)  # type: ignore[arg-type]
            found = best_available(index, available, request)
            med, p95 = timed(lambda r=request, a=available: best_available(index, a, r), repeat)  # type: ignore[misc]
            tier = found[0].tier if found else "-"
            print(
                f"best_available {sold:4.0%} sold q={quantity} {adjacency:<9s} "
                f"median {med:6.3f} ms   p95 {p95:6.3f} ms   ({len(found)} candidates, tier {tier})"
            )
            choose(found, chooser)

    status = {o: "sold" for o in np.flatnonzero(rng.random(len(index)) < 0.5).tolist()}
    t0 = time.perf_counter()
    svg = render_svg(index, status)
    render_ms = (time.perf_counter() - t0) * 1000
    print(f"render_svg (50% sold)             {render_ms:8.1f} ms   {len(svg) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
