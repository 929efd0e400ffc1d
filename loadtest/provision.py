"""Provision one on-sale event through the public API and write the setup JSON.

    python -m loadtest.provision --target 127.0.0.1:50051 --admin-key KEY \\
        --venue stadium --hold-ttl 60 --out setup.json

With a platform-admin key: create a tenant, an organizer key and a storefront
key; as the organizer, upload and publish the venue and create an event that
is on sale at once. The venue is generated locally (``seatmap.generate``,
deterministic), so the hot rows written to the setup file are exactly the
uploaded seats.
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration
from seatwise.v1 import (
    events_pb2,
    events_pb2_grpc,
    seatmap_pb2,
    seatmap_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
)

from loadtest.config import HotRow, SetupInfo, save_setup
from seatmap.generate import GENERATORS, stadium
from seatmap.model import Point, SeatMap, json_encoder

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HOT_SECTIONS = 8  # the best sections of the hot category...
HOT_ROWS_PER_SECTION = 2  # ...and their front rows: where everyone wants to sit
SETUP_TIMEOUT_S = 180.0


def stadium_lower() -> SeatMap:
    """The stadium's lower tier only (24 blocks, ~17,000 seats): a smaller bowl for quick runs."""
    full = stadium()
    sections = [s for s in full.sections if s.id.startswith("S1")]
    used = {seat.category for s in sections for r in s.rows for seat in r.seats}
    categories = [c for c in full.categories if c.key in used]
    return SeatMap(
        name="Synthetic Stadium (lower tier)",
        categories=categories,
        sections=sections,
        focal_point=full.focal_point,
        seat_size=full.seat_size,
    )


VENUES: dict[str, Callable[[], SeatMap]] = {**GENERATORS, "stadium-lower": stadium_lower}


def prices_for(seatmap: SeatMap) -> dict[str, int]:
    """A price per category, dearest first in the map's category order (minor units)."""
    return {c.key: max(1000, 9500 - 1500 * i) for i, c in enumerate(seatmap.categories)}


def _distance(a: Point, b: Point) -> float:
    return math.hypot(a.x - b.x, a.y - b.y)


def hot_rows(seatmap: SeatMap, prices: dict[str, int]) -> tuple[str, list[HotRow]]:
    """The dearest seated category and the front rows of its best sections."""
    seated = {seat.category for s in seatmap.sections for r in s.rows for seat in r.seats}
    category = max(seated, key=lambda c: prices.get(c, 0))
    focal = seatmap.focal_point or Point(0.0, 0.0)
    ranked: list[tuple[float, str, list[HotRow]]] = []
    for section in seatmap.sections:
        rows = [r for r in section.rows if r.seats and all(s.category == category for s in r.seats)]
        rows = [r for r in rows if not any(s.wheelchair for s in r.seats)]
        if not rows:
            continue
        by_distance = sorted(rows, key=lambda r: min(_distance(s.position, focal) for s in r.seats))
        front = by_distance[:HOT_ROWS_PER_SECTION]
        best = min(_distance(s.position, focal) for s in front[0].seats)
        ranked.append((best, section.id, [HotRow(section.id, r.id, [s.id for s in r.seats]) for r in front]))
    ranked.sort(key=lambda entry: entry[0])
    return category, [row for _, _, rows in ranked[:HOT_SECTIONS] for row in rows]


def _seat_count(seatmap: SeatMap) -> int:
    return sum(len(r.seats) for s in seatmap.sections for r in s.rows) + sum(
        len(t.seats) for s in seatmap.sections for t in s.tables
    )


def provision(
    target: str,
    admin_key: str,
    venue: str,
    *,
    hold_ttl_s: float = 60.0,
    max_seats_per_hold: int = 10,
    tenant_id: str = "",
    log: Callable[[str], None] = lambda _m: None,
) -> SetupInfo:
    """Create tenant, keys, venue and an on-sale event; return what the users need."""
    seatmap = VENUES[venue]()
    prices = prices_for(seatmap)
    tenant_id = tenant_id or f"lt-{secrets.token_hex(4)}"
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    with grpc.insecure_channel(target, options=options) as channel:
        tenants = tenancy_pb2_grpc.TenantServiceStub(channel)
        admin = (("authorization", f"Bearer {admin_key}"),)
        tenants.CreateTenant(
            tenancy_pb2.CreateTenantRequest(tenant_id=tenant_id, name=f"Load test {tenant_id}"),
            metadata=admin,
            timeout=SETUP_TIMEOUT_S,
        )
        keys = {}
        for role, label in ((tenancy_pb2.ROLE_ORGANIZER, "organizer"), (tenancy_pb2.ROLE_STOREFRONT, "shop")):
            created = tenants.CreateApiKey(
                tenancy_pb2.CreateApiKeyRequest(tenant_id=tenant_id, role=role, label=f"loadtest {label}"),
                metadata=admin,
                timeout=SETUP_TIMEOUT_S,
            )
            keys[label] = created.api_key
        organizer = (("authorization", f"Bearer {keys['organizer']}"),)
        seatmaps = seatmap_pb2_grpc.SeatMapServiceStub(channel)
        content = json_encoder.encode(seatmap)
        started = time.perf_counter()
        uploaded = seatmaps.UploadSeatMap(
            seatmap_pb2.UploadSeatMapRequest(content=content), metadata=organizer, timeout=SETUP_TIMEOUT_S
        ).seat_map
        seatmaps.PublishSeatMap(
            seatmap_pb2.PublishSeatMapRequest(seat_map_id=uploaded.seat_map_id, version=uploaded.version),
            metadata=organizer,
            timeout=SETUP_TIMEOUT_S,
        )
        log(
            f"uploaded and published {venue} ({len(content):,} bytes) in {time.perf_counter() - started:.1f}s"
        )
        ttl = Duration()
        ttl.FromMilliseconds(int(hold_ttl_s * 1000))
        event = (
            events_pb2_grpc.EventServiceStub(channel)
            .CreateEvent(
                events_pb2.CreateEventRequest(
                    seat_map_id=uploaded.seat_map_id,
                    seat_map_version=uploaded.version,
                    name=f"On-sale load test ({venue})",
                    currency="EUR",
                    prices=[events_pb2.CategoryPrice(category=k, amount_minor=v) for k, v in prices.items()],
                    hold_ttl=ttl,
                    max_seats_per_hold=max_seats_per_hold,
                    status=events_pb2.EVENT_STATUS_ON_SALE,
                ),
                metadata=organizer,
                timeout=SETUP_TIMEOUT_S,
            )
            .event
        )
    by_category: dict[str, list[str]] = {}
    for section in seatmap.sections:
        for category in sorted({seat.category for r in section.rows for seat in r.seats}):
            by_category.setdefault(category, []).append(section.id)
    hot_category, rows = hot_rows(seatmap, prices)
    return SetupInfo(
        target=target,
        tenant_id=tenant_id,
        organizer_key=keys["organizer"],
        storefront_key=keys["shop"],
        venue=venue,
        seat_map_id=uploaded.seat_map_id,
        seat_map_version=uploaded.version,
        event_id=event.event_id,
        hold_ttl_s=hold_ttl_s,
        seat_count=_seat_count(seatmap),
        prices=prices,
        sections_by_category=by_category,
        hot_category=hot_category,
        hot_rows=rows,
        ga_areas={a.id: a.capacity for a in seatmap.ga_areas},
        created_ms=int(time.time() * 1000),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.provision", description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--admin-key", required=True, help="a platform-admin API key")
    parser.add_argument("--venue", choices=sorted(VENUES), default="stadium")
    parser.add_argument("--hold-ttl", type=float, default=60.0, help="hold TTL in seconds")
    parser.add_argument("--out", type=Path, required=True, help="the setup JSON to write")
    args = parser.parse_args(argv)
    info = provision(
        args.target,
        args.admin_key,
        args.venue,
        hold_ttl_s=args.hold_ttl,
        log=lambda m: print(m, file=sys.stderr),
    )
    save_setup(info, args.out)
    print(f"event {info.event_id} on {info.venue} ({info.seat_count:,} seats): {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
