"""Seat-map benchmark (issue: foundation and seat maps). Prints figures; asserts nothing.

    uv run --frozen python -m scripts.bench.seatmap [--repeat 5] [--smoke]

For the generated ~90k-seat stadium and a 100k-seat grid venue it measures, in
one run, in process: decode+validate, and the seat-overlap search on two
pathological maps (index builds and rendering: ``scripts.bench.seatmap_spatial``); then through a real
server (a `seatwise serve` child process with its own embedded Redis, so client
and server do not share an interpreter): UploadSeatMap (decode, validate and store), PublishSeatMap,
the first QuerySeats (loads the map and builds its spatial index), and warm
region and nearest-seat queries. Medians over --repeat runs, with the minimum.
``--smoke`` runs a 4k-seat grid instead, once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import grpc
import numpy as np
from seatwise.v1 import common_pb2, seatmap_pb2, seatmap_pb2_grpc, tenancy_pb2, tenancy_pb2_grpc

from scripts.bench.harness import ChildServer, free_port, samples, seatwise_env, wait_serving
from seatmap.formats import parse_and_validate
from seatmap.generate import stadium
from seatmap.model import Category, Point, Row, Seat, SeatMap, Section, json_encoder
from seatmap.validation import overlap_partners

ADMIN_KEY = "sw_admin_bench-only-secret"


def grid_venue(sections: int = 100, rows: int = 40, seats: int = 25) -> SeatMap:
    """A plain 100k-seat venue: sections of rows x seats on a 60-unit pitch."""
    out = []
    for s in range(sections):
        ox, oy = (s % 10) * 2000.0, (s // 10) * 3000.0
        out.append(
            Section(
                id=f"S{s}",
                label=f"Section {s}",
                outline=[Point(ox + dx, oy + dy) for dx, dy in ((0, 0), (1700, 0), (1700, 2600), (0, 2600))],
                rows=[
                    Row(
                        id=f"S{s}-R{r}",
                        label=str(r + 1),
                        seats=[
                            Seat(id=f"S{s}-R{r}-{n}", label=str(n + 1),
                                 position=Point(ox + 100 + 60 * n, oy + 100 + 60 * r), category="std")
                            for n in range(seats)
                        ],
                    )
                    for r in range(rows)
                ],
            )
        )  # fmt: skip
    return SeatMap(
        name="grid", categories=[Category("std", "Standard")], sections=out, focal_point=Point(10000, -500)
    )


def pathological_overlaps(repeat: int, *, smoke: bool) -> list[tuple[str, str, float, float]]:
    """The seat-overlap search on maps drawn wrong: every seat on one point, and a dense
    grid where a few seats got a radius a hundred times too large."""
    n = 4_000 if smoke else 100_000
    side = 60 if smoke else 300
    gx, gy = np.meshgrid(np.arange(float(side)), np.arange(float(side)))
    radius = np.full(gx.size, 25.0)
    radius[::997] = 2500.0
    stacked = partial(overlap_partners, np.zeros(n), np.zeros(n), np.full(n, 25.0))
    dense = partial(overlap_partners, gx.ravel(), gy.ravel(), radius)
    return [
        ("overlaps", f"overlap search, {n:,} seats on one point", *timed(stacked, repeat)),
        ("overlaps", f"overlap search, {gx.size:,}-seat grid, huge radii", *timed(dense, repeat)),
    ]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and minimum seconds of ``repeat`` runs."""
    runs = samples(fn, repeat)
    return statistics.median(runs), min(runs)


def start_server(data_dir: Path) -> tuple[ChildServer, str]:
    """``seatwise serve`` with its own embedded Redis in ``data_dir``, once it answers SERVING."""
    port = free_port()
    env = seatwise_env(
        {
            "data_dir": str(data_dir / "data"),
            "port": str(port),
            "admin_key": ADMIN_KEY,
            "log_level": "warning",
        }
    )
    server = ChildServer("seatwise", "server.cli", ["serve"], data_dir / "seatwise.log", env)
    target = f"127.0.0.1:{port}"
    try:
        asyncio.run(wait_serving(target, server, timeout_s=30.0))
    except BaseException:
        server.stop()
        raise
    return server, target


def bench_api(
    name: str,
    venue: SeatMap,
    content: bytes,
    target: str,
    repeat: int,
    rows: list[tuple[str, str, float, float]],
) -> None:
    opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=opts) as channel:
        admin = (("authorization", f"Bearer {ADMIN_KEY}"),)
        tenants = tenancy_pb2_grpc.TenantServiceStub(channel)
        tenant = f"bench{time.monotonic_ns()}"
        tenants.CreateTenant(tenancy_pb2.CreateTenantRequest(tenant_id=tenant, name="bench"), metadata=admin)
        key = tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(tenant_id=tenant, role=tenancy_pb2.ROLE_ORGANIZER), metadata=admin
        ).api_key
        auth = (("authorization", f"Bearer {key}"),)
        maps = seatmap_pb2_grpc.SeatMapServiceStub(channel)
        uploaded: list[seatmap_pb2.SeatMapInfo] = []

        def upload() -> None:
            request = seatmap_pb2.UploadSeatMapRequest(content=content)
            uploaded.append(maps.UploadSeatMap(request, metadata=auth, timeout=60).seat_map)

        rows.append((name, "UploadSeatMap (decode+validate+store, RPC)", *timed(upload, repeat)))
        info = uploaded[-1]
        publish = seatmap_pb2.PublishSeatMapRequest(seat_map_id=info.seat_map_id, version=info.version)
        rows.append(
            (name, "PublishSeatMap (RPC)", *timed(lambda: maps.PublishSeatMap(publish, metadata=auth), 1))
        )
        first = venue.sections[0].rows[0].seats[0].position
        nearest = seatmap_pb2.QuerySeatsRequest(
            seat_map_id=info.seat_map_id,
            nearest=seatmap_pb2.Nearest(point=common_pb2.Point(x=first.x, y=first.y), count=10),
        )
        rows.append(
            (
                name,
                "first QuerySeats (load + index build)",
                *timed(lambda: maps.QuerySeats(nearest, metadata=auth), 1),
            )
        )
        rows.append(
            (
                name,
                "QuerySeats nearest 10 (warm)",
                *timed(lambda: maps.QuerySeats(nearest, metadata=auth), repeat * 20),
            )
        )
        box = [common_pb2.Point(x=p.x, y=p.y) for p in venue.sections[0].outline]  # lasso one section
        region = seatmap_pb2.QuerySeatsRequest(
            seat_map_id=info.seat_map_id, region=seatmap_pb2.Region(polygon=box)
        )
        count = len(maps.QuerySeats(region, metadata=auth).seats)
        rows.append((name, f"QuerySeats region ({count} seats, warm)",
                     *timed(lambda: maps.QuerySeats(region, metadata=auth), repeat * 20)))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.seatmap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a few seconds: a 4k-seat grid, once")
    args = parser.parse_args(argv)
    if args.smoke:
        venues, args.repeat = {"grid-4k": grid_venue(sections=4)}, 1
    else:
        venues = {"stadium": stadium(), "grid-100k": grid_venue()}
    rows: list[tuple[str, str, float, float]] = []
    contents = {}
    for name, venue in venues.items():
        content = json_encoder.encode(venue)
        contents[name] = content
        seats = sum(len(r.seats) for s in venue.sections for r in s.rows)
        print(f"{name}: {seats:,} seats, {len(content) / 1e6:.1f} MB of JSON", flush=True)
        rows.append(
            (
                name,
                "decode+validate (in process)",
                *timed(partial(parse_and_validate, content, "native"), args.repeat),
            )
        )
    rows.extend(pathological_overlaps(args.repeat, smoke=args.smoke))
    with tempfile.TemporaryDirectory(prefix="seatwise-bench-seatmap-") as tmp:
        server, target = start_server(Path(tmp))
        try:
            for name, content in contents.items():
                bench_api(name, venues[name], content, target, args.repeat, rows)
        finally:
            server.stop()
    print(f"\n{'venue':<10} {'figure':<48} {'median':>10} {'min':>10}")
    for venue_name, figure, median, best in rows:
        print(f"{venue_name:<10} {figure:<48} {median * 1000:>8.1f}ms {best * 1000:>8.1f}ms")


if __name__ == "__main__":
    main()
