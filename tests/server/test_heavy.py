"""Heavy organizer work: it runs in other processes, each tenant has a limit of
calls in flight (counted until the job finishes), and a crashed pool process
costs one call, not the pool. Every wait is on observed progress."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from seatwise.v1 import seatmap_pb2

from server.context import Stores
from server.errors import to_status
from server.heavy import HeavyLimitReached, HeavyWork
from tests.api import Api, status_of
from tests.server.maps import small_map

WAIT_S = 60.0


def _wait_for(path: str, started: str = "") -> int:
    """A job that runs until ``path`` exists (having created ``started``); returns its process id."""
    if started:
        Path(started).touch()
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def _crash() -> None:
    os._exit(3)


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@pytest.fixture
async def heavy() -> object:
    work = HeavyWork(workers=3, per_tenant=2)
    yield work
    await work.close()


async def test_jobs_run_in_another_process_and_tenants_have_a_limit(heavy: HeavyWork, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    first = asyncio.create_task(heavy.run("acme", _wait_for, str(gate)))
    second = asyncio.create_task(heavy.run("acme", _wait_for, str(gate)))
    await _until(lambda: heavy.inflight("acme") == 2, "two calls counted")
    with pytest.raises(HeavyLimitReached) as refused:
        await heavy.run("acme", _wait_for, str(gate))
    assert "2" in str(refused.value)
    assert "SEATWISE_HEAVY_PER_TENANT" in str(refused.value)
    with pytest.raises(HeavyLimitReached):  # the check a handler makes before reading the upload
        heavy.check("acme")
    heavy.check("initech")
    other = asyncio.create_task(heavy.run("initech", _wait_for, str(gate)))  # another tenant: not refused
    gate.touch()
    pids = await asyncio.gather(first, second, other)
    assert os.getpid() not in pids
    await _until(lambda: heavy.inflight("acme") == 0, "the calls released")


async def test_an_abandoned_call_counts_until_its_job_finishes(heavy: HeavyWork, tmp_path: Path) -> None:
    gate, started = tmp_path / "go", tmp_path / "started"
    call = asyncio.create_task(heavy.run("acme", _wait_for, str(gate), str(started)))
    await _until(started.exists, "the job runs")
    call.cancel()  # the caller gives up (its deadline); the job runs on
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.05)
    assert heavy.inflight("acme") == 1
    gate.touch()
    await _until(lambda: heavy.inflight("acme") == 0, "released once the job finished")


async def test_a_crashed_pool_process_fails_one_call_and_the_next_works(
    heavy: HeavyWork, tmp_path: Path
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        await heavy.run("acme", _crash)
    (tmp_path / "go").touch()
    assert await heavy.run("acme", _wait_for, str(tmp_path / "go")) != os.getpid()
    await _until(lambda: heavy.inflight("acme") == 0, "released")


def test_the_limit_is_resource_exhausted_with_retry_info() -> None:
    status = to_status(HeavyLimitReached("acme", 2))
    assert status is not None
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    quota = error_details_pb2.QuotaFailure()
    assert any(d.Unpack(retry) for d in status.details)
    assert retry.retry_delay.seconds >= 1
    assert any(d.Unpack(quota) for d in status.details)
    assert quota.violations[0].subject == "heavy_calls_per_tenant"


async def test_validate_past_the_limit_is_refused_and_others_are_served(
    organizer: Api, admin: Api, server: str, stores: Stores, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    held = [asyncio.create_task(stores.heavy.run("acme", _wait_for, str(gate))) for _ in range(2)]
    await _until(lambda: stores.heavy.inflight("acme") == 2, "acme at its limit")
    request = seatmap_pb2.ValidateSeatMapRequest(content=small_map())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seatmaps.ValidateSeatMap(request, metadata=organizer.metadata)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "heavy call" in (err.value.details() or "")
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status_of(err.value).details)
    key = await admin.new_tenant_key("initech")
    async with Api(server, key) as other:
        gate.touch()  # the default pool has one process: initech's call runs after acme's jobs
        reply = await other.seatmaps.ValidateSeatMap(request, metadata=other.metadata)
    assert reply.valid
    await asyncio.gather(*held)
