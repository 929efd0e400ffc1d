"""Primary kills mid on-sale on a 3-master/3-replica cluster: nothing acknowledged is lost.

The driver is ``scripts/bench/failover.py`` (its longer run, ten failovers and
more, is in docs/performance.md): buyers over gRPC against seatwise in this
process, ticket changes acknowledged once a replica has them; each round the
replica of the event's master is made to lag (paused, its link closed), the
master killed, the replica promoted and the killed node started again. Then
the audit: every acknowledged order present with its seats and places, no seat
sold twice, GA within capacity, and the process's mirror equal to Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.bench import failover
from tests.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(180)]

FAILOVERS = 2  # in CI; the benchmark runs ten and more


@pytest.fixture(scope="module")
def replicated_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = failover.replicated_cluster(tmp_path_factory.mktemp("replicated-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


async def test_primary_kills_lose_no_acknowledged_order_and_sell_no_seat_twice(
    replicated_cluster: LocalCluster, tmp_path: Path
) -> None:
    outcome = await failover.run(replicated_cluster, tmp_path, failovers=FAILOVERS, replica_acks=1, buyers=8)
    report = "\n".join(outcome.lines())
    assert outcome.failovers == FAILOVERS, report
    assert outcome.acknowledged > 0, report
    assert outcome.commits_unavailable > 0, report  # commits did wait for the lagging replica
    assert outcome.lost == 0, report
    assert outcome.double_sales == 0, report
    assert outcome.audit is not None, report
    assert outcome.audit.ok, outcome.audit.format()  # GA within capacity, records consistent
    assert outcome.mirror_equal, report
