"""Exports of a sold-out stadium in bounded memory: the server's peak RSS during
ExportService.Export of every ticket of a ~89,000-seat event.

A ``seatwise serve`` child process (one worker, its own scratch Redis) gets the
stadium map (``seatmap.generate.stadium``) and one event; the event is then sold
out *in bulk*: orders of 4 seats with a buyer each are written straight into
the event's keys (the ``orders``, ``orders_z``, ``tickets`` and ``seats``
hashes, in the shape ``commit.lua`` writes them), pipelined, because selling
89,000 seats through the API would take minutes and measure the sales path,
not the export. The server then loads the event (GetAvailability), and each
export is read by a client that counts and drops the bytes while a thread
samples the server's RSS every 10 ms.

    python -m scripts.bench.exports            # the stadium
    python -m scripts.bench.exports --smoke    # a theatre, a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import threading
import time
from pathlib import Path

import grpc
import msgspec
import psutil
import redis.asyncio as aioredis
from seatwise.v1 import (
    events_pb2,
    events_pb2_grpc,
    reports_pb2,
    reports_pb2_grpc,
    seatmap_pb2,
    seatmap_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
)

from holds import keys
from holds.records import Buyer, Order, Ticket
from scripts.bench.harness import ChildServer, free_port, seatwise_env, wait_serving
from seatmap.generate import stadium, theatre
from seatmap.index import SeatIndex
from seatmap.model import SeatMap, json_encoder

ADMIN_KEY = "sw_admin_bench-exports"
SEATS_PER_ORDER = 4
PIPELINE = 2_000


class PeakRss:
    """The process' RSS, sampled every ``every_s`` in a thread, and its peak."""

    def __init__(self, process: psutil.Process, every_s: float = 0.01) -> None:
        self._p = process
        self._every = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._p.memory_info().rss)
            time.sleep(self._every)

    def __enter__(self) -> PeakRss:
        self.peak = self._p.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def sell_out(
    redis_url: str, event_id: str, seatmap: SeatMap, price: int, sold: float = 1.0
) -> tuple[int, int]:
    """Every seat (or the first ``sold`` of them) sold in orders of SEATS_PER_ORDER,
    written in bulk, over a 15-minute on-sale that starts with a rush: (orders, tickets)."""
    index = SeatIndex(seatmap)
    category = index.category_keys
    codes = index.category_code.tolist()
    rng = random.Random(7)
    store = aioredis.Redis.from_url(redis_url)
    ek = {name: keys.event_key(event_id, name) for name in ("orders", "orders_z", "tickets", "seats")}
    encoder = msgspec.json.Encoder()
    start_ms = int(time.time() * 1000) - 3_600_000
    selling = int(len(index) * sold)
    total_orders = max(1, -(-selling // SEATS_PER_ORDER))
    orders = tickets = 0
    try:
        pipe = store.pipeline(transaction=False)
        for first in range(0, selling, SEATS_PER_ORDER):
            orders += 1
            order_id = f"o{orders:07d}"
            seats = range(first, min(first + SEATS_PER_ORDER, selling))
            created = start_ms + int(900_000 * (orders / total_orders) ** 2)  # a rush, then a tail
            order = Order(
                order_id=order_id,
                hold_id=f"h{orders}",
                idempotency_key=f"k{orders}",
                buyer=Buyer(
                    name=f"Buyer Nummer {orders} Ümlaut",
                    email=f"buyer{orders}@example.com",
                    marketing_consent=rng.random() < 0.4,
                    payment_reference=f"pay_{orders:010d}",
                ),
                tickets=[Ticket(f"t{s:06d}", category[codes[s]], price, "valid", seat=s) for s in seats],
                total=price * len(seats),
                currency="EUR",
                status="committed",
                created_ms=created,
                updated_ms=created,
                buyer_id=f"b{orders}",
            )
            pipe.hset(ek["orders"], order_id, encoder.encode(order))
            pipe.zadd(ek["orders_z"], {order_id: created})
            pipe.hset(ek["tickets"], mapping={f"t{s:06d}": order_id for s in seats})
            pipe.hset(ek["seats"], mapping={str(s): f"s:{order_id}" for s in seats})
            tickets += len(seats)
            if orders % PIPELINE == 0:
                await pipe.execute()
                pipe = store.pipeline(transaction=False)
        await pipe.execute()
    finally:
        await store.aclose()
    return orders, tickets


async def run(
    target: str, redis_url: str, server: psutil.Process, seatmap: SeatMap, sold: float, images: bool
) -> dict[str, bytes]:
    """Prints the figures; returns the chart and heat maps (PNG, by file name) if ``images``."""
    admin = [("authorization", f"Bearer {ADMIN_KEY}")]
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        tenancy = tenancy_pb2_grpc.TenantServiceStub(channel)
        await tenancy.CreateTenant(tenancy_pb2.CreateTenantRequest(tenant_id="x", name="X"), metadata=admin)
        key = (
            await tenancy.CreateApiKey(
                tenancy_pb2.CreateApiKeyRequest(tenant_id="x", role=tenancy_pb2.ROLE_ORGANIZER),
                metadata=admin,
            )
        ).api_key
        auth = [("authorization", f"Bearer {key}")]
        seatmaps = seatmap_pb2_grpc.SeatMapServiceStub(channel)
        uploaded = await seatmaps.UploadSeatMap(
            seatmap_pb2.UploadSeatMapRequest(content=json_encoder.encode(seatmap)), metadata=auth, timeout=600
        )
        sm = uploaded.seat_map
        await seatmaps.PublishSeatMap(
            seatmap_pb2.PublishSeatMapRequest(seat_map_id=sm.seat_map_id, version=sm.version), metadata=auth
        )
        events = events_pb2_grpc.EventServiceStub(channel)
        prices = [events_pb2.CategoryPrice(category=c.key, amount_minor=4500) for c in seatmap.categories]
        created = await events.CreateEvent(
            events_pb2.CreateEventRequest(
                seat_map_id=sm.seat_map_id, name="Cup final", currency="EUR", prices=prices
            ),
            metadata=auth,
        )
        event_id = created.event.event_id
        began = time.perf_counter()
        orders, tickets = await sell_out(redis_url, event_id, seatmap, 4500, sold)
        print(
            f"sold out in bulk: {orders:,} orders, {tickets:,} tickets in {time.perf_counter() - began:.1f} s"
        )
        await events.GetAvailability(events_pb2.GetAvailabilityRequest(event_id=event_id), metadata=auth)
        exports = reports_pb2_grpc.ExportServiceStub(channel)
        print(
            f"{'export':<18} {'rows':>8} {'MB out':>8} {'seconds':>8} {'RSS before MB':>14} "
            f"{'peak MB':>8} {'+MB':>6}"
        )
        for label, kind, fmt in (
            ("orders csv", reports_pb2.EXPORT_KIND_ORDERS, reports_pb2.EXPORT_FORMAT_CSV),
            ("tickets csv", reports_pb2.EXPORT_KIND_TICKETS, reports_pb2.EXPORT_FORMAT_CSV),
            ("tickets jsonl", reports_pb2.EXPORT_KIND_TICKETS, reports_pb2.EXPORT_FORMAT_JSONL),
            ("contacts csv", reports_pb2.EXPORT_KIND_CONTACTS, reports_pb2.EXPORT_FORMAT_CSV),
        ):
            request = reports_pb2.ExportRequest(kind=kind, format=fmt, event_id=event_id)
            before = server.memory_info().rss
            size = rows = 0
            began = time.perf_counter()
            with PeakRss(server) as peak:
                async for chunk in exports.Export(request, metadata=auth):
                    size += len(chunk.data)
                    rows = chunk.rows_so_far
            elapsed = time.perf_counter() - began
            mb = 2**20
            print(
                f"{label:<18} {rows:>8,} {size / mb:>8.1f} {elapsed:>8.1f} {before / mb:>14.0f} "
                f"{peak.peak / mb:>8.0f} {(peak.peak - before) / mb:>6.0f}",
                flush=True,
            )
        report = reports_pb2_grpc.ReportServiceStub(channel)
        before = server.memory_info().rss
        began = time.perf_counter()
        with PeakRss(server) as peak:
            figures = await report.GetEventReport(
                reports_pb2.GetEventReportRequest(event_id=event_id), metadata=auth, timeout=600
            )
        print(
            f"GetEventReport: {figures.tickets_sold:,} tickets in {time.perf_counter() - began:.1f} s, "
            f"peak RSS +{(peak.peak - before) / 2**20:.0f} MB"
        )
        out: dict[str, bytes] = {}
        if images:
            chart = await report.RenderSalesChart(
                reports_pb2.RenderSalesChartRequest(event_id=event_id), metadata=auth, timeout=600
            )
            out["sales.png"] = chart.content
            for name, colouring in (
                ("heatmap-status.png", reports_pb2.HEAT_MAP_COLOURING_STATUS),
                ("heatmap-time.png", reports_pb2.HEAT_MAP_COLOURING_TIME_OF_SALE),
            ):
                image = await report.RenderHeatMap(
                    reports_pb2.RenderHeatMapRequest(event_id=event_id, colouring=colouring, width=1600),
                    metadata=auth,
                    timeout=600,
                )
                out[name] = image.content
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds: a theatre, not a stadium")
    parser.add_argument("--sold", type=float, default=1.0, help="the share of seats sold (default: all)")
    parser.add_argument("--images", type=Path, help="also write the sales chart and heat maps (PNG) here")
    args = parser.parse_args()
    seatmap = theatre() if args.smoke else stadium()
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as workdir:
        from server.redis_process import EmbeddedRedis

        redis = EmbeddedRedis(Path(workdir) / "redis", appendfsync="no")
        redis.start()
        port = free_port()
        env = seatwise_env(
            {"port": str(port), "redis_url": redis.url, "admin_key": ADMIN_KEY, "data_dir": workdir}
        )
        child = ChildServer("seatwise", "server.cli", ["serve"], Path(workdir) / "server.log", env)
        try:
            target = f"127.0.0.1:{port}"
            asyncio.run(wait_serving(target, child))
            process = psutil.Process(child.process.pid)
            images = asyncio.run(run(target, redis.url, process, seatmap, args.sold, args.images is not None))
            for name, content in images.items():
                args.images.mkdir(parents=True, exist_ok=True)
                (args.images / name).write_bytes(content)
                print(f"wrote {args.images / name}")
        finally:
            child.stop()
            redis.stop()


if __name__ == "__main__":
    main()
