"""What one server process keeps per event it has served: memory, file descriptors,
Redis connections and reaper work as it touches thousands of events in a row.

A ``seatwise serve`` child process (one worker, its own scratch Redis) gets one
seat map and N events; each event is then touched once, one after another,
with GetAvailability, HoldBestAvailable and ReleaseHold, as a platform's
storefronts touch its many events over months. Every ``--every`` events the
script prints the server's RSS, its open file descriptors, Redis' connected
clients and how many events the reaper's set holds.

    python -m scripts.bench.live_events --events 5000
    python -m scripts.bench.live_events --events 5000 --checkout /tmp/base   # a baseline worktree's server
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import grpc
import psutil
import redis.asyncio as aioredis
from seatwise.v1 import (
    events_pb2,
    events_pb2_grpc,
    sales_pb2,
    sales_pb2_grpc,
    seatmap_pb2,
    seatmap_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
)

from holds import keys
from scripts.bench.harness import ChildServer, free_port, seatwise_env, wait_serving
from seatmap.generate import theatre
from seatmap.model import json_encoder
from server.redis_process import EmbeddedRedis

ADMIN_KEY = "sw_admin_bench-live-events"


async def touch_events(target: str, redis_url: str, server: psutil.Process, events: int, every: int) -> None:
    admin = [("authorization", f"Bearer {ADMIN_KEY}")]
    async with grpc.aio.insecure_channel(target) as channel:
        tenancy = tenancy_pb2_grpc.TenantServiceStub(channel)
        await tenancy.CreateTenant(
            tenancy_pb2.CreateTenantRequest(tenant_id="live", name="Live"), metadata=admin
        )
        key = (
            await tenancy.CreateApiKey(
                tenancy_pb2.CreateApiKeyRequest(tenant_id="live", role=tenancy_pb2.ROLE_ORGANIZER),
                metadata=admin,
            )
        ).api_key
        auth = [("authorization", f"Bearer {key}")]
        seatmaps = seatmap_pb2_grpc.SeatMapServiceStub(channel)
        uploaded = await seatmaps.UploadSeatMap(
            seatmap_pb2.UploadSeatMapRequest(content=json_encoder.encode(theatre())), metadata=auth
        )
        seat_map_id, version = uploaded.seat_map.seat_map_id, uploaded.seat_map.version
        await seatmaps.PublishSeatMap(
            seatmap_pb2.PublishSeatMapRequest(seat_map_id=seat_map_id, version=version), metadata=auth
        )
        event_stub = events_pb2_grpc.EventServiceStub(channel)
        holds = sales_pb2_grpc.HoldServiceStub(channel)
        store = aioredis.Redis.from_url(redis_url)
        print(f"{'events':>7} {'RSS MB':>8} {'open fds':>9} {'Redis clients':>14} {'reaper set':>11}")
        try:
            for n in range(1, events + 1):
                created = await event_stub.CreateEvent(
                    events_pb2.CreateEventRequest(
                        seat_map_id=seat_map_id,
                        name=f"Night {n}",
                        currency="EUR",
                        status=events_pb2.EVENT_STATUS_ON_SALE,
                    ),
                    metadata=auth,
                )
                event_id = created.event.event_id
                await event_stub.GetAvailability(
                    events_pb2.GetAvailabilityRequest(event_id=event_id), metadata=auth
                )
                hold = await holds.HoldBestAvailable(
                    sales_pb2.HoldBestAvailableRequest(event_id=event_id, quantity=2), metadata=auth
                )
                await holds.ReleaseHold(
                    sales_pb2.ReleaseHoldRequest(hold_token=hold.hold.hold_token), metadata=auth
                )
                if n % every == 0 or n == events:
                    rss = server.memory_info().rss / 2**20
                    clients = len(await store.client_list())
                    active = await store.scard(keys.ACTIVE_EVENTS)
                    print(f"{n:>7} {rss:>8.0f} {server.num_fds():>9} {clients:>14} {active:>11}", flush=True)
        finally:
            await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--every", type=int, default=500, help="print a line every this many events")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: 60 events")
    parser.add_argument(
        "--checkout", type=Path, help="serve from this checkout (a git worktree with its .venv)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.events, args.every = 60, 20
    with tempfile.TemporaryDirectory(prefix="bench-live-") as workdir:
        redis = EmbeddedRedis(Path(workdir) / "redis", appendfsync="no")
        redis.start()
        port = free_port()
        env = seatwise_env(
            {"port": str(port), "redis_url": redis.url, "admin_key": ADMIN_KEY, "data_dir": workdir}
        )
        child = ChildServer(
            "seatwise", "server.cli", ["serve"], Path(workdir) / "server.log", env, args.checkout
        )
        try:
            target = f"127.0.0.1:{port}"
            asyncio.run(wait_serving(target, child))
            asyncio.run(
                touch_events(target, redis.url, psutil.Process(child.process.pid), args.events, args.every)
            )
        finally:
            child.stop()
            redis.stop()


if __name__ == "__main__":
    main()
