"""Ticket changes acknowledged only once a replica has them (WAIT, group commit)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from holds.durability import Durability, NotReplicated, connected_replicas, resolve
from holds.errors import StoreUnavailable
from holds.records import Buyer
from server.context import Stores
from server.redis_process import EmbeddedRedis
from tests.holds.factories import GA_AREA, make_event
from tests.processes import free_port


@dataclass
class Pair:
    primary: EmbeddedRedis
    replica: EmbeddedRedis

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.primary.port}/0"

    def pause_replica(self) -> None:
        assert self.replica.pid is not None
        os.kill(self.replica.pid, signal.SIGSTOP)

    def resume_replica(self) -> None:
        assert self.replica.pid is not None
        os.kill(self.replica.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A primary on TCP with one replica (single topology only: the cluster case is
    the failover test's)."""
    base = tmp_path_factory.mktemp("replicated")
    port = free_port()
    primary = EmbeddedRedis(base / "primary", port=port)
    replica = EmbeddedRedis(base / "replica", port=free_port(), replica_of=("127.0.0.1", port))
    primary.start()
    replica.start()
    yield Pair(primary, replica)
    replica.stop()
    primary.stop()


async def _replica_online(stores: Stores) -> bool:
    info = await stores.redis.info("replication")
    return await connected_replicas(stores.redis) >= 1 and "online" in str(info.get("slave0", ""))


@pytest.fixture
async def replicated(pair: Pair, redis_topology: str) -> AsyncIterator[Stores]:
    if redis_topology != "single":
        pytest.skip("a primary with a replica: single topology")
    stores = Stores.open(pair.url)
    await stores.redis.flushall()
    deadline = time.monotonic() + 30
    while not await _replica_online(stores):  # the replica's sync, observed
        assert time.monotonic() < deadline, "the replica never connected"
        await asyncio.sleep(0.05)
    stores.scripts.use_durability(await resolve(stores.redis, -1, timeout_ms=300))
    yield stores
    await stores.close()


async def test_auto_durability_asks_one_replica_when_there_is_one(replicated: Stores) -> None:
    assert replicated.scripts.durability == Durability(1, 300)


async def test_a_commit_is_acknowledged_once_the_replica_has_it(replicated: Stores, pair: Pair) -> None:
    ev = await make_event(replicated.seatmaps, replicated.events, ga_capacity=10)
    held = await replicated.inventory.hold(ev.event_id, ga={GA_AREA: 2})
    result = await replicated.inventory.commit(ev.event_id, held.hold_id, "pay-1", Buyer(name="Ada"))
    assert not result.replayed


async def test_a_commit_the_replica_does_not_confirm_is_unavailable_and_safe_to_retry(
    replicated: Stores, pair: Pair
) -> None:
    ev = await make_event(replicated.seatmaps, replicated.events, ga_capacity=10)
    held = await replicated.inventory.hold(ev.event_id, ga={GA_AREA: 2})
    pair.pause_replica()  # a lagging replica
    try:
        with pytest.raises(NotReplicated) as err:
            await replicated.inventory.commit(ev.event_id, held.hold_id, "pay-2", Buyer(name="Ada"))
        assert isinstance(err.value, StoreUnavailable)  # UNAVAILABLE: retry
        assert "retry with the same idempotency key" in str(err.value)
    finally:
        pair.resume_replica()
    # the replica caught up (observed: it acknowledged every write so far), so the retry's own
    # wait is met however slowly the resumed replica got going on a loaded machine
    assert await replicated.redis.execute_command("WAIT", 1, 30_000) >= 1
    # the commit had been applied on the primary; the retry returns that very order
    retried = await replicated.inventory.commit(ev.event_id, held.hold_id, "pay-2", Buyer(name="Ada"))
    assert retried.replayed
    orders, _ = await replicated.inventory.list_orders(ev.event_id, 0, 10)
    assert [o.order_id for o in orders] == [retried.order.order_id]


async def test_a_burst_of_commits_shares_its_waits(replicated: Stores) -> None:
    ev = await make_event(replicated.seatmaps, replicated.events, ga_capacity=200)
    holds = [await replicated.inventory.hold(ev.event_id, ga={GA_AREA: 1}) for _ in range(50)]
    results = await asyncio.gather(
        *(
            replicated.inventory.commit(ev.event_id, h.hold_id, f"burst-{i}", Buyer(name="Ada"))
            for i, h in enumerate(holds)
        )
    )
    assert len({r.order.order_id for r in results}) == 50
    writes = replicated.scripts._replication.writes
    assert writes is not None
    waits = sum(group.waits for group in writes._groups.values())
    assert 1 <= waits < 50  # one WAIT per event-loop turn's commits, not one each


async def test_cancellations_are_replicated_too(replicated: Stores, pair: Pair) -> None:
    ev = await make_event(replicated.seatmaps, replicated.events, ga_capacity=10)
    held = await replicated.inventory.hold(ev.event_id, ga={GA_AREA: 1})
    order = (await replicated.inventory.commit(ev.event_id, held.hold_id, "pay-3", Buyer())).order
    pair.pause_replica()
    try:
        with pytest.raises(NotReplicated):
            await replicated.inventory.cancel(ev.event_id, order.order_id)
    finally:
        pair.resume_replica()


async def test_without_replicas_nothing_waits(stores: Stores, tmp_path: Path) -> None:
    assert await resolve(stores.redis, -1) == Durability(0)
    assert stores.scripts.durability == Durability(0)


async def test_over_redis_py_wait_follows_the_command_on_its_connection(
    replicated: Stores, pair: Pair
) -> None:
    """Where no channel can be had (TLS), redis-py pipelines the WAIT after the command."""
    writes = replicated.scripts._replication.writes
    assert writes is not None
    writes._channels = None
    ev = await make_event(replicated.seatmaps, replicated.events, ga_capacity=10)
    first = await replicated.inventory.hold(ev.event_id, ga={GA_AREA: 1})
    await replicated.inventory.commit(ev.event_id, first.hold_id, "tls-1", Buyer())
    second = await replicated.inventory.hold(ev.event_id, ga={GA_AREA: 1})
    pair.pause_replica()
    try:
        with pytest.raises(NotReplicated):
            await replicated.inventory.commit(ev.event_id, second.hold_id, "tls-2", Buyer())
    finally:
        pair.resume_replica()
