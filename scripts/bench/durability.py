"""The cost of acknowledging commits only once a replica has them (``SEATWISE_REPLICA_ACKS``).

    uv run --frozen python -m scripts.bench.durability [--orders 4000] [--concurrency 32]
                                                       [--appendfsync always] [--smoke]

A primary and one replica (embedded redis-servers on TCP, AOF as shipped:
``appendfsync always``) and the inventory in this process, as the server uses
it (``Stores.open``: script channels, group commit). Each order is a GA hold of
one place and its commit, ``--concurrency`` at a time. The same run measures
replica acks 0 (the primary's reply is the acknowledgement, asynchronous
replication) and 1 (each commit waits for the replica, one WAIT per event-loop
turn's commits), alternating phases 0, 1, 0, 1 so both see the same machine:
orders/s and commit latency (p50, p99, from the first attempt to the
acknowledgement) per setting; a commit its replica did not confirm within the
budget (500 ms) is retried with its key, as a client would, and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from holds.durability import Durability, NotReplicated, connected_replicas
from holds.records import Buyer
from scripts.bench.harness import free_port
from server.app import run_loop
from server.context import Stores
from server.redis_process import EmbeddedRedis
from tests.holds.factories import GA_AREA, make_event


async def _phase(url: str, replicas: int, orders: int, concurrency: int) -> tuple[float, np.ndarray, int]:
    """(orders/s, commit latencies in ms from the first attempt to the acknowledgement,
    commits answered NotReplicated and retried with their key)."""
    stores = Stores.open(url)
    try:
        if replicas:
            stores.scripts.use_durability(Durability(replicas))
        ev = await make_event(stores.seatmaps, stores.events, ga_capacity=orders + 10)
        latencies: list[float] = []
        unconfirmed = [0]
        pending = iter(range(orders))

        async def buyer() -> None:
            for i in pending:
                held = await stores.inventory.hold(ev.event_id, ga={GA_AREA: 1})
                started = time.perf_counter()
                for _attempt in range(10):
                    try:
                        await stores.inventory.commit(ev.event_id, held.hold_id, f"k-{i}", Buyer(name="Ada"))
                        break
                    except NotReplicated:  # as a client would: again, with the same key
                        unconfirmed[0] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(buyer() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        return orders / elapsed, np.asarray(latencies) * 1000.0, unconfirmed[0]
    finally:
        await stores.close()


async def _replica_online(stores: Stores) -> bool:
    """Connected is not enough: WAIT counts a replica only once its full sync is done."""
    info = await stores.redis.info("replication")
    replica = info.get("slave0")
    return (
        await connected_replicas(stores.redis) >= 1
        and isinstance(replica, dict)
        and replica.get("state") == "online"
    )


async def _main(args: argparse.Namespace, url: str) -> None:
    probe = Stores.open(url)
    try:
        deadline = time.monotonic() + 30
        while not await _replica_online(probe):  # the replica's full sync done, observed
            if time.monotonic() > deadline:
                raise SystemExit("the replica never connected")
            await asyncio.sleep(0.05)
    finally:
        await probe.close()
    results: dict[int, list[tuple[float, np.ndarray, int]]] = {0: [], 1: []}
    for replicas in (0, 1) * args.rounds:
        results[replicas].append(await _phase(url, replicas, args.orders, args.concurrency))
    print(
        f"{'replica acks':<13} {'orders':>7} {'orders/s':>9} {'commit p50 ms':>14} {'commit p99 ms':>14}"
        f" {'unconfirmed':>12}"
    )
    for replicas, runs in results.items():
        lat = np.concatenate([r[1] for r in runs])
        rate = sum(r[0] for r in runs) / len(runs)
        p50, p99 = np.percentile(lat, 50), np.percentile(lat, 99)
        retried = sum(r[2] for r in runs)
        print(f"{replicas:<13} {lat.size:>7} {rate:>9.0f} {p50:>14.2f} {p99:>14.2f} {retried:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.durability", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--orders", type=int, default=4000, help="orders per phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="phases per setting, alternating")
    parser.add_argument("--appendfsync", default="always")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.orders, args.rounds = 200, 1
    print(
        f"durability: primary + 1 replica (appendfsync {args.appendfsync}), GA hold + commit,"
        f" concurrency {args.concurrency}, {args.orders} orders per phase"
    )
    with tempfile.TemporaryDirectory(prefix="seatwise-durability-") as tmp:
        port = free_port()
        primary = EmbeddedRedis(Path(tmp) / "primary", appendfsync=args.appendfsync, port=port)
        replica = EmbeddedRedis(
            Path(tmp) / "replica",
            appendfsync=args.appendfsync,
            port=free_port(),
            replica_of=("127.0.0.1", port),
        )
        primary.start()
        replica.start()
        try:
            run_loop(_main(args, f"redis://127.0.0.1:{port}/0"))
        finally:
            replica.stop()
            primary.stop()


if __name__ == "__main__":
    main()
