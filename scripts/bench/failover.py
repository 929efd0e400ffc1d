"""Primary kills mid on-sale on a 3-master/3-replica Redis Cluster, audited afterwards.

    uv run --frozen python -m scripts.bench.failover [--failovers 10] [--replica-acks 1] [--compare]
                                                     [--buyers 16] [--smoke]

A local cluster (``tests/cluster.py``: 3 masters, one replica each, a 1 s
``cluster-node-timeout``) and seatwise in this process (``create_server`` over
``Stores.open(redis+cluster://...)``, ticket changes acknowledged once
``--replica-acks`` replicas have them). Buyers (asyncio tasks over gRPC) hold
seats (best available) and GA places of one event and commit each hold with an
idempotency key, retrying an ``UNAVAILABLE`` commit with the same key; every
commit whose answer arrived is recorded. Then, repeatedly: the replica of the
event's master is paused (SIGSTOP) and its link closed on the master (what a
paused replica's socket already holds still reaches it, so the pause alone
loses nothing) until a commit is refused for want of its
confirmation (or, without the setting, until commits were acknowledged that
it does not have), the master is killed (SIGKILL), the replica resumed; once
the cluster reports the replica serving the event's slot the killed node is
started again (it rejoins as a replica) and the sale goes on. Afterwards the
audit of ``loadtest/audit.py`` (every acknowledged order present with its
seats and places, no seat sold twice, GA within capacity, Redis's own records
consistent) and the process's availability mirror compared with a fresh
snapshot. Every wait is on something observed, each with a bound.

Printed: failovers, acknowledged orders, lost orders (must be 0 with the
setting), seats acknowledged to two orders (double sales, 0), the audit, the
mirror, and unavailability per failover (from the kill to the acknowledgement
of the first commit sent after it). ``--compare`` runs without the setting too
(``--replica-acks 0``), on a fresh cluster, to show the loss it prevents.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from seatwise.v1 import events_pb2, sales_pb2, seatmap_pb2

from holds import keys
from holds.availability import decode_snapshot
from holds.durability import Durability
from loadtest.audit import AuditReport, audit_event
from loadtest.recording import Ack
from server.app import create_server, run_loop
from server.config import Config
from server.context import Stores
from tests.api import Api
from tests.cluster import LocalCluster
from tests.server.maps import small_map

ADMIN_KEY = "sw_admin_failover-bench-secret"
NODE_TIMEOUT_MS = 1000
ACK_TIMEOUT_MS = 300
CALL_TIMEOUT_S = 2.0
COMMIT_ATTEMPTS = 60  # retries of one commit with its key (~0.1 s apart): outlasts a failover
WAIT_S = 60.0  # the bound of every wait on observed progress
SOLD_OUT_AFTER = 10  # holds of a kind refused in a row: that kind is sold out
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class Outcome:
    replica_acks: int
    failovers: int = 0
    acknowledged: int = 0
    lost: int = 0  # acknowledged orders not in Redis (or not with their seats)
    double_sales: int = 0  # seats acknowledged to two orders, or with valid tickets in two
    commits_unavailable: int = 0  # UNAVAILABLE answers to commits (each retried with its key)
    retried_then_acknowledged: int = 0
    unavailable_s: list[float] = field(default_factory=list)  # per failover: kill -> first ack sent after
    audit: AuditReport | None = None
    mirror_equal: bool = False
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_sales == 0 and self.audit is not None and self.audit.ok

    def lines(self) -> list[str]:
        unavailable = self.unavailable_s or [float("nan")]
        audit = "PASSED" if self.audit is not None and self.audit.ok else "FAILED"
        failed = (
            [f"{c.name}: {c.total}" for c in self.audit.checks if not c.ok] if self.audit is not None else []
        )
        return [
            f"replica acks {self.replica_acks}: failovers {self.failovers}, acknowledged orders"
            f" {self.acknowledged}, lost orders {self.lost}, double sales {self.double_sales}",
            f"  commits answered UNAVAILABLE {self.commits_unavailable} (retried with their key;"
            f" {self.retried_then_acknowledged} acknowledged on a retry)",
            f"  audit {audit}{' (' + ', '.join(failed) + ')' if failed else ''};"
            f" mirror equal to Redis: {self.mirror_equal}",
            "  unavailability per failover (kill -> a commit sent after it acknowledged), s: "
            + " ".join(f"{s:.1f}" for s in self.unavailable_s)
            + f"  (median {statistics.median(unavailable):.1f}, max {max(unavailable):.1f})",
            f"  elapsed {self.elapsed_s:.0f} s",
        ]


class Sale:
    """Buyers of one event over gRPC, recording every acknowledged commit."""

    def __init__(self, api: Api, event_id: str, buyers: int, seed: int = 7) -> None:
        self.api = api
        self.event_id = event_id
        self.buyers = buyers
        self.acks: list[Ack] = []
        # (sent, answered): monotonic times of the acknowledged attempt of each ack
        self.ack_times: list[tuple[float, float]] = []
        self.commits_unavailable = 0
        self.retried_then_acknowledged = 0
        self.sold_out = {"seats": False, "ga": False}
        self._stop = asyncio.Event()
        self._random = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []
        self._keys = 0
        self._refused: Counter[str] = Counter()  # holds refused in a row, by kind

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._buyer(k)) for k in range(self.buyers)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    @property
    def done(self) -> bool:
        return all(self.sold_out.values())

    async def _buyer(self, k: int) -> None:
        while not self._stop.is_set() and not self.done:
            kind = "ga" if self.sold_out["seats"] or (k % 2 and not self.sold_out["ga"]) else "seats"
            try:
                token = await self._hold(kind)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:  # no seats or places left (a few times running)
                    self._refused[kind] += 1
                    self.sold_out[kind] = self._refused[kind] >= SOLD_OUT_AFTER
                await asyncio.sleep(0.05)
                continue
            self._refused[kind] = 0
            await self._commit(token)

    async def _hold(self, kind: str) -> str:
        quantity = self._random.choice((1, 2))
        md, t = self.api.metadata, CALL_TIMEOUT_S
        if kind == "seats":
            request = sales_pb2.HoldBestAvailableRequest(event_id=self.event_id, quantity=quantity)
            return str(
                (await self.api.holds.HoldBestAvailable(request, metadata=md, timeout=t)).hold.hold_token
            )
        ga = sales_pb2.HoldGeneralAdmissionRequest(event_id=self.event_id, area_id="floor", quantity=quantity)
        return str((await self.api.holds.HoldGeneralAdmission(ga, metadata=md, timeout=t)).hold.hold_token)

    async def _commit(self, token: str) -> None:
        self._keys += 1
        key = f"pay-{self._keys}"
        request = sales_pb2.CommitHoldRequest(hold_token=token, idempotency_key=key)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            sent = time.monotonic()
            try:
                reply = await self.api.orders.CommitHold(
                    request, metadata=self.api.metadata, timeout=CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    return  # e.g. the hold was lost with a failover: never acknowledged
                self.commits_unavailable += 1
                await asyncio.sleep(0.1)
                continue
            order = reply.order
            self.acks.append(
                Ack(
                    event_id=self.event_id,
                    order_id=order.order_id,
                    seat_ids=[t.seat_id for t in order.tickets if t.seat_id],
                    ga=dict(Counter(t.ga_area_id for t in order.tickets if t.ga_area_id)),
                    idempotency_key=key,
                    hold_token=token,
                    replayed=reply.replayed,
                    attempts=attempt,
                    ts_ms=int(time.time() * 1000),
                )
            )
            self.ack_times.append((sent, time.monotonic()))
            self.retried_then_acknowledged += attempt > 1
            return

    def first_ack_sent_after(self, moment: float) -> float | None:
        """When the first commit sent after ``moment`` was acknowledged."""
        return min((answered for sent, answered in self.ack_times if sent > moment), default=None)


async def until(condition: Callable[[], bool], what: str, within_s: float = WAIT_S) -> None:
    """Wait for observed progress; the bound only turns a hang into an error."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"never happened: {what}")
        await asyncio.sleep(0.02)


async def provision(target: str, seats: tuple[int, int], ga_capacity: int) -> tuple[Api, str]:
    async with Api(target, ADMIN_KEY) as admin:
        key = await admin.new_tenant_key("acme")
    api = Api(target, key)
    md = api.metadata
    content = small_map(seats[0], seats[1], ga_capacity)
    sm = (
        await api.seatmaps.UploadSeatMap(seatmap_pb2.UploadSeatMapRequest(content=content), metadata=md)
    ).seat_map
    await api.seatmaps.PublishSeatMap(
        seatmap_pb2.PublishSeatMapRequest(seat_map_id=sm.seat_map_id, version=1), metadata=md
    )
    created = await api.events.CreateEvent(
        events_pb2.CreateEventRequest(
            seat_map_id=sm.seat_map_id,
            name="Failover night",
            currency="EUR",
            status=events_pb2.EVENT_STATUS_ON_SALE,
            prices=[
                events_pb2.CategoryPrice(category=c, amount_minor=1000) for c in ("front", "back", "floor")
            ],
        ),
        metadata=md,
    )
    return api, created.event.event_id


async def fail_over(cluster: LocalCluster, sale: Sale, event_id: str, outcome: Outcome) -> None:
    """One round: the replica made to lag, its master killed, the replica promoted,
    the killed node back as a replica; then the sale goes on."""
    slot = cluster.slot_of(keys.event_key(event_id, "seq"))
    master = cluster.master_of(slot)
    replica = cluster.replica_of(master)
    refused, acked = sale.commits_unavailable, len(sale.acks)
    cluster.pause(replica)
    try:
        cluster.cut_replication(master)  # from now on the replica lags: it will miss what follows
        if outcome.replica_acks:  # a commit refused for want of the replica's confirmation
            await until(lambda: sale.commits_unavailable > refused, "a commit waited for the paused replica")
        else:  # commits acknowledged that the replica does not have
            await until(lambda: len(sale.acks) >= acked + 5, "commits acknowledged without the replica")
        killed_at = time.monotonic()
        cluster.kill(master)
    finally:
        cluster.resume(replica)
    await asyncio.to_thread(cluster.wait_slot_served_by, slot, replica, WAIT_S)
    cluster.restart(master)
    await asyncio.to_thread(cluster.wait_replica_online, replica, master, WAIT_S)
    await until(
        lambda: sale.first_ack_sent_after(killed_at) is not None or sale.done,
        "a commit acknowledged after the kill",
    )
    first = sale.first_ack_sent_after(killed_at)
    if first is not None:
        outcome.unavailable_s.append(first - killed_at)
    outcome.failovers += 1


async def sales_go_on(sale: Sale, acks: int) -> None:
    await until(lambda: len(sale.acks) >= acks or sale.done, "sales between failovers")


async def mirror_settles(stores: Stores, tenant: str, event_id: str) -> bool:
    """Whether the process's mirror comes to equal a fresh snapshot (the feed settles)."""
    live = await stores.live.get(tenant, event_id)
    mirror = await stores.live.mirror(live)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        fresh = decode_snapshot(await stores.inventory.snapshot(event_id), mirror.seat_count)
        ga = {a: (c.capacity, c.held, c.sold) for a, c in fresh.ga.items()}
        mine = {a: (c.capacity, c.held, c.sold) for a, c in mirror.snapshot.ga.items()}
        if mirror.seq == fresh.seq and (mirror.snapshot.states == fresh.states).all() and ga == mine:
            return True
        await asyncio.sleep(0.05)
    return False


def double_sales(acks: list[Ack]) -> int:
    """Seats acknowledged to two different orders."""
    owner: dict[str, str] = {}
    doubles = 0
    for ack in acks:
        for seat in ack.seat_ids:
            if owner.setdefault(seat, ack.order_id) != ack.order_id:
                doubles += 1
    return doubles


async def run(
    cluster: LocalCluster,
    data_dir: Path,
    *,
    failovers: int,
    replica_acks: int,
    buyers: int = 16,
    seats: tuple[int, int] = (40, 50),
    ga_capacity: int = 3000,
    progress: Callable[[str], None] = lambda _line: None,
) -> Outcome:
    """``failovers`` rounds against the event's master while buyers buy, then the audit."""
    outcome = Outcome(replica_acks)
    started = time.monotonic()
    stores = Stores.open(cluster.url, timeout_s=1.0)
    if replica_acks:
        stores.scripts.use_durability(Durability(replica_acks, ACK_TIMEOUT_MS))
    await stores.tenants.put_bootstrap_key(ADMIN_KEY)
    server, port, _health = create_server(Config(port=0, data_dir=data_dir, admin_key=ADMIN_KEY), stores)
    await server.start()
    api: Api | None = None
    try:
        api, event_id = await provision(f"127.0.0.1:{port}", seats, ga_capacity)
        tenant = (await stores.events.read_ref(event_id)).tenant_id
        await stores.live.mirror(await stores.live.get(tenant, event_id))  # followed from the start
        sale = Sale(api, event_id, buyers)
        sale.start()
        for round_ in range(failovers):
            await sales_go_on(sale, len(sale.acks) + 20)
            if sale.done:
                progress(f"sold out after {outcome.failovers} failovers")
                break
            await fail_over(cluster, sale, event_id, outcome)
            progress(f"failover {round_ + 1}: {len(sale.acks)} acknowledged so far")
        await sale.stop()
        outcome.acknowledged = len(sale.acks)
        outcome.commits_unavailable = sale.commits_unavailable
        outcome.retried_then_acknowledged = sale.retried_then_acknowledged
        report = await audit_event(stores.redis, event_id, sale.acks)
        outcome.audit = report
        outcome.lost = report.check("acks").total
        outcome.double_sales = double_sales(sale.acks) + report.check("no_double_sale").total
        outcome.mirror_equal = await mirror_settles(stores, tenant, event_id)
    finally:
        if api is not None:
            await api.__aexit__()
        await server.stop(None)
        await stores.close()
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def replicated_cluster(data_dir: Path) -> LocalCluster:
    return LocalCluster(data_dir, replicas=1, node_timeout_ms=NODE_TIMEOUT_MS)


async def _main(args: argparse.Namespace) -> bool:
    ok = True
    for acks in (args.replica_acks, 0) if args.compare else (args.replica_acks,):
        with (
            tempfile.TemporaryDirectory(prefix="seatwise-failover-") as tmp,
            replicated_cluster(Path(tmp) / "cluster") as cluster,
        ):
            outcome = await run(
                cluster,
                Path(tmp),
                failovers=args.failovers,
                replica_acks=acks,
                buyers=args.buyers,
                progress=lambda line: print("  " + line, flush=True),
            )
        print("\n".join(outcome.lines()), flush=True)
        if acks:
            ok = ok and outcome.ok and outcome.mirror_equal
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.failover", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--failovers", type=int, default=10)
    parser.add_argument("--replica-acks", type=int, default=1, help="SEATWISE_REPLICA_ACKS (0: asynchronous)")
    parser.add_argument("--compare", action="store_true", help="then again with --replica-acks 0")
    parser.add_argument("--buyers", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="one failover")
    args = parser.parse_args()
    if args.smoke:
        args.failovers = 1
    print(
        f"failover: 3 masters + 3 replicas, cluster-node-timeout {NODE_TIMEOUT_MS} ms, {args.buyers} buyers"
    )
    ok = False

    async def go() -> None:
        nonlocal ok
        ok = await _main(args)

    run_loop(go())
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
