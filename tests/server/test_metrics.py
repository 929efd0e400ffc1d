"""The Prometheus metrics move as real calls through gRPC against real Redis say they
should; the endpoint serves them; the Grafana dashboard queries only metrics that exist."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis.exceptions
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import _async as health_aio
from prometheus_client import REGISTRY, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from seatwise.v1 import feed_pb2, feed_pb2_grpc, sales_pb2

from holds.errors import StoreFault, StoreUnavailable
from holds.redis_client import wrap_errors
from server import metrics
from server.app import watch_health
from server.context import Stores
from server.reaper import reap_once
from tests.api import Api
from tests.server.events import make_event

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "seatwise.json"
WAIT_S = 30.0  # a safety net against a hang, never a measured time


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait for observed progress (the safety net only guards against a hang)."""
    async with asyncio.timeout(WAIT_S):
        while not check():  # noqa: ASYNC110 - a metric has no event to wait on
            await asyncio.sleep(0.01)
    assert check(), what


async def _hold(api: Api, event_id: str, *seats: str) -> sales_pb2.Hold:
    request = sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=list(seats))
    return (await api.holds.HoldSeats(request, metadata=api.metadata)).hold


async def _commit(api: Api, token: str, key: str) -> sales_pb2.Order:
    request = sales_pb2.CommitHoldRequest(hold_token=token, idempotency_key=key)
    return (await api.orders.CommitHold(request, metadata=api.metadata)).order


async def test_holds_commits_and_conflicts_are_counted_once_each(organizer: Api) -> None:
    event_id = await make_event(organizer)
    holds, commits = value("seatwise_holds_total"), value("seatwise_commits_total", via="hold")
    taken = value("seatwise_conflicts_total", reason="seats_unavailable")
    scripts = value("seatwise_redis_script_seconds_count", script="hold")
    rpcs = value("seatwise_rpc_total", method="/seatwise.v1.HoldService/HoldSeats", outcome="OK")

    hold = await _hold(organizer, event_id, "r0-0", "r0-1")
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await _hold(organizer, event_id, "r0-1", "r0-2")
    assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    order = await _commit(organizer, hold.hold_token, "pay-1")
    assert (await _commit(organizer, hold.hold_token, "pay-1")).order_id == order.order_id  # a replay

    assert value("seatwise_holds_total") == holds + 1
    assert value("seatwise_conflicts_total", reason="seats_unavailable") == taken + 1
    assert value("seatwise_commits_total", via="hold") == commits + 1  # the replay created nothing
    assert value("seatwise_redis_script_seconds_count", script="hold") == scripts + 2
    assert value("seatwise_redis_script_seconds_sum", script="hold") > 0
    assert value("seatwise_rpc_total", method="/seatwise.v1.HoldService/HoldSeats", outcome="OK") == rpcs + 1


async def test_holds_the_reaper_purges_are_counted_as_expiries(organizer: Api, stores: Stores) -> None:
    event_id = await make_event(organizer, hold_ttl=Duration(seconds=1))
    await _hold(organizer, event_id, "r0-0")
    await _hold(organizer, event_id, "r0-1")
    before = value("seatwise_holds_expired_total")
    purged = 0
    async with asyncio.timeout(WAIT_S):
        while purged < 2:  # until both holds have expired (Redis's clock) and been purged
            purged += await reap_once(stores, sweep=True)
            await asyncio.sleep(0.05)
    assert value("seatwise_holds_expired_total") == before + purged == before + 2


async def test_refusals_are_counted_by_reason(organizer: Api, stores: Stores) -> None:
    event_id = await make_event(organizer, rate_limit_per_key="1/hour")
    await _hold(organizer, event_id, "r0-0")
    rate, lag = (
        value("seatwise_refusals_total", reason="rate_limit_per_key"),
        value("seatwise_refusals_total", reason="loop_lag"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await _hold(organizer, event_id, "r0-1")
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    stores.admission.lag_s = 5.0  # as if the event loop were far behind
    try:
        with pytest.raises(grpc.aio.AioRpcError) as shed:
            await _hold(organizer, event_id, "r0-2")
    finally:
        stores.admission.lag_s = 0.0
    assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert value("seatwise_refusals_total", reason="rate_limit_per_key") == rate + 1
    assert value("seatwise_refusals_total", reason="loop_lag") == lag + 1


async def test_redis_errors_are_counted_by_kind_and_the_ping_is_timed(stores: Stores) -> None:
    unavailable, fault = (
        value("seatwise_redis_errors_total", kind="unavailable"),
        value("seatwise_redis_errors_total", kind="fault"),
    )
    with pytest.raises(StoreUnavailable):
        async with wrap_errors("a read"):
            raise redis.exceptions.ConnectionError("connection refused")
    with pytest.raises(StoreFault):
        async with wrap_errors("a script"):
            await stores.redis.execute_command("NOSUCHCOMMAND")
    assert value("seatwise_redis_errors_total", kind="unavailable") == unavailable + 1
    assert value("seatwise_redis_errors_total", kind="fault") == fault + 1

    metrics.REDIS_PING.set(0)
    probe = asyncio.create_task(watch_health(stores, health_aio.HealthServicer()))
    try:
        await until(lambda: value("seatwise_redis_ping_seconds") > 0, "a health probe's PING timed")
    finally:
        probe.cancel()


async def test_the_mirror_lag_is_observed_as_changes_reach_it(organizer: Api) -> None:
    event_id = await make_event(organizer)
    best = sales_pb2.HoldBestAvailableRequest(event_id=event_id, quantity=1)
    await organizer.holds.HoldBestAvailable(best, metadata=organizer.metadata)  # starts the mirror
    seen = value("seatwise_mirror_lag_seconds_count")
    await _hold(organizer, event_id, "r1-5")  # a change the mirror reads from the stream
    await until(lambda: value("seatwise_mirror_lag_seconds_count") > seen, "the mirror applied the change")
    assert value("seatwise_mirror_lag_seconds_sum") >= 0


async def test_feed_lag_per_subscriber_falls_to_zero_once_it_has_read_everything(organizer: Api) -> None:
    event_id = await make_event(organizer)
    for n in range(3):  # entries written before the subscriber comes
        hold = await _hold(organizer, event_id, f"r0-{n}")
        await _commit(organizer, hold.hold_token, f"pay-{n}")
    subscribers = value("seatwise_feed_subscribers")
    call = feed_pb2_grpc.FeedServiceStub(organizer.channel).Subscribe(
        feed_pb2.SubscribeRequest(), metadata=organizer.metadata
    )
    try:
        received = 0
        async for message in call:
            received += message.HasField("entry")
            if received == 3:
                break
        assert value("seatwise_feed_subscribers") == subscribers + 1
        series = [s for s in _feed_lag() if s.labels["organizer"] == "acme"]
        assert len(series) == 1
        assert series[0].labels["key_id"]  # the key's id, never its secret
        await until(lambda: _acme_lag() == 0.0, "the subscriber caught up")
    finally:
        call.cancel()
    await until(lambda: _acme_lag() is None, "the stream's series went with it")
    assert value("seatwise_feed_subscribers") == subscribers


def _feed_lag() -> list[object]:
    return [s for f in REGISTRY.collect() if f.name == "seatwise_feed_lag_seconds" for s in f.samples]


def _acme_lag() -> float | None:
    found = [s.value for s in _feed_lag() if s.labels["organizer"] == "acme"]  # type: ignore[attr-defined]
    return found[0] if found else None


async def test_the_endpoint_serves_every_metric(organizer: Api) -> None:
    event_id = await make_event(organizer)
    await _hold(organizer, event_id, "r0-0")
    http, thread = start_http_server(0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{http.server_port}/metrics"
        text = (await asyncio.to_thread(_get, url)).decode()
    finally:
        http.shutdown()
        http.server_close()
        thread.join()
    served = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    expected = {"seatwise_holds_total", "seatwise_feed_subscribers", "seatwise_redis_script_seconds_count"}
    assert expected <= served
    assert {n for n in served if n.startswith("seatwise_")} <= metrics.metric_names()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=WAIT_S) as response:
        body: bytes = response.read()
    return body


def _queries(panel_tree: object) -> list[str]:
    """Every PromQL expression of the dashboard, however deep its panels nest."""
    found: list[str] = []
    if isinstance(panel_tree, dict):
        for key, inner in panel_tree.items():
            if key == "expr" and isinstance(inner, str):
                found.append(inner)
            else:
                found += _queries(inner)
    elif isinstance(panel_tree, list):
        for inner in panel_tree:
            found += _queries(inner)
    return found


def test_the_dashboard_queries_only_metrics_that_exist_and_shows_them_all() -> None:
    dashboard = json.loads(DASHBOARD.read_text())  # well-formed JSON
    queries = _queries(dashboard["panels"])
    assert queries
    # every name anywhere in it: the panels' queries and the template variables' too
    used = set(re.findall(r"\bseatwise_[a-z0-9_]+", DASHBOARD.read_text()))
    assert used == {name for q in queries for name in re.findall(r"\bseatwise_[a-z0-9_]+", q)}
    known = metrics.metric_names()
    assert used <= known, sorted(used - known)
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in known}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert families <= shown, sorted(families - shown)  # every metric has a panel
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
