"""The sales API tests (holds and orders over gRPC) and the platforms API tests run against a single Redis and
against a local Redis Cluster; the other server tests use the single node only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from seatwise.client import SeatwiseClient

from server.context import Stores
from server.servicers import sessions
from tests.api import Api
from tests.conftest import parametrize_redis_topology
from tests.holds.factories import settle
from tests.server.faults import Service

BOTH_TOPOLOGIES = frozenset(
    {
        "tests.server.test_sales_api",
        "tests.server.test_offers_api",  # promo codes' uses: the event's slot and the organizer's
        "tests.server.test_sessions",
        "tests.server.test_client",
        "tests.server.test_feed_api",
        "tests.server.test_exports_api",  # HSCAN walks of an event's hashes on its node
        "tests.server.test_access_api",
        "tests.server.test_aftersale_api",  # transfers, exchanges, resale: three key groups in one slot
        "tests.server.test_rate_limits",  # the limits library's counters on a cluster too
        "tests.server.test_platforms_api",  # platforms' keys in their own slots, audit logs in two
        "tests.server.test_branding_api",  # unique names in installation-wide hashes, profiles in two slots
        "tests.server.test_hub_api",  # pipelined reads of events in many slots
        "tests.server.test_plan_limits_api",  # usage in the organizer's slot, notifications in two
        "tests.server.test_dues_api",  # statements read event by event, states in the organizer's slot
        "tests.server.test_seasons_api",  # a season and its events in one slot, the season index in another
        "tests.server.test_season_sales_api",  # organizer-wide promo uses claimed in the organizer's slot
        "tests.server.test_season_sessions_history",  # a season's slot and the season order records
        "tests.server.test_sessions_history",  # sessions and unary calls mixed on one event, on a cluster too
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__ in BOTH_TOPOLOGIES:
        parametrize_redis_topology(metafunc)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A server in this process on a redis-server of its own (the fault tests kill it)."""
    svc = Service(tmp_path)
    await svc.start()
    yield svc
    await svc.stop()


@pytest.fixture
async def clients(organizer: Api) -> AsyncIterator[dict[str, SeatwiseClient]]:
    """``seatwise.client`` as the organizer over each transport: ``unary`` and ``sessions``
    (the histories mixing both on one event)."""
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    async with (
        SeatwiseClient(organizer.target, key, sessions=0, connections=2) as unary,
        SeatwiseClient(organizer.target, key, sessions=2, connections=2) as sessions,
    ):
        yield {"unary": unary, "sessions": sessions}


async def settle_calls(stores: Stores, timeout_s: float = 60.0) -> None:
    """Return once the in-process server has finished every call it admitted (those
    a client abandoned at its deadline included) and Redis has run what they sent."""
    give_up = time.monotonic() + timeout_s
    while stores.admission.inflight:
        assert time.monotonic() < give_up, f"{stores.admission.inflight} calls still in flight"
        await asyncio.sleep(0.01)
    await settle(stores.redis, stores.scripts)


class Streams(list[sessions.SessionStream]):
    pass


@pytest.fixture
def streams(monkeypatch: pytest.MonkeyPatch) -> Streams:
    """Every server-side stream opened during the test (to observe its counters)."""
    opened = Streams()

    class Recorded(sessions.SessionStream):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            opened.append(self)

    monkeypatch.setattr(sessions, "SessionStream", Recorded)
    return opened
