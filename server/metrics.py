"""Prometheus metrics (served on the configured metrics port, off by default).

The transport's own: RPC latency and outcomes by method, refusals under load,
Redis's ping time, the lifecycle feed's subscribers and how far behind they
are. The inventory's and the store's (holds, commits, conflicts, expiries,
Redis errors and script times, mirror lag) are counted in ``holds/metrics.py``,
where those facts are known; both register in prometheus_client's default
registry, which the endpoint serves. Every name is listed in
docs/deployment.md and queried by docs/grafana/seatwise.json (a test checks
the dashboard against :func:`metric_names`).
"""

from __future__ import annotations

import heapq
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import holds.metrics  # noqa: F401 - registers the inventory's and the store's metrics (first)
from holds.feed.reader import FeedProgress

RPC_LATENCY = Histogram(
    "seatwise_rpc_seconds",
    "Latency of each RPC, by method",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RPC_OUTCOMES = Counter("seatwise_rpc_total", "RPCs by method and outcome", ["method", "outcome"])
REFUSALS = Counter(
    "seatwise_refusals_total",
    "Calls refused to protect the service (RESOURCE_EXHAUSTED + RetryInfo), by reason: inflight and"
    " loop_lag (admission), rate_limit_per_key and rate_limit_per_buyer (an event's limits),"
    " heavy_per_tenant (the seat-map pool's quota)",
    ["reason"],
)
REDIS_PING = Gauge(
    "seatwise_redis_ping_seconds", "Round trip of the last health probe's PING to Redis (every primary)"
)
# The feed's subscribers with a label each at most: the furthest behind (a CRM
# integration is one subscriber per organizer; this bounds the series whatever
# the platform's size, and a series goes away with its stream).
FEED_LAG_SERIES = 50


# labels() takes a lock and builds a key on every call; the children never change
_latency_of: dict[str, Histogram] = {}
_outcome_of: dict[tuple[str, str], Counter] = {}


def observe_rpc(method: str, outcome: str, seconds: float) -> None:
    latency = _latency_of.get(method)
    if latency is None:
        latency = _latency_of[method] = RPC_LATENCY.labels(method)
    latency.observe(seconds)
    counter = _outcome_of.get((method, outcome))
    if counter is None:
        counter = _outcome_of[(method, outcome)] = RPC_OUTCOMES.labels(method, outcome)
    counter.inc()


def refused(reason: str) -> None:
    """A call refused for ``reason`` (a fixed word: see REFUSALS)."""
    REFUSALS.labels(reason).inc()


@dataclass(eq=False)
class FeedSubscriber:
    """One open ``FeedService.Subscribe`` stream, for the lag gauges."""

    organizer: str
    key_id: str
    progress: FeedProgress


class FeedLag(Collector):
    """How far behind the newest entry each open feed subscription is, read at scrape time."""

    def __init__(self) -> None:
        self._open: weakref.WeakSet[FeedSubscriber] = weakref.WeakSet()

    def opened(self, subscriber: FeedSubscriber) -> None:
        self._open.add(subscriber)

    def closed(self, subscriber: FeedSubscriber) -> None:
        self._open.discard(subscriber)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now_ms = int(time.time() * 1000)
        lag: dict[tuple[str, str], float] = {}
        for s in list(self._open):
            who = (s.organizer, s.key_id)
            lag[who] = max(lag.get(who, 0.0), s.progress.lag_s(now_ms))
        yield GaugeMetricFamily(
            "seatwise_feed_subscribers", "Open lifecycle feed subscriptions", value=len(self._open)
        )
        yield GaugeMetricFamily(
            "seatwise_feed_lag_max_seconds",
            "The largest lag of any open feed subscription (see seatwise_feed_lag_seconds)",
            value=max(lag.values(), default=0.0),
        )
        family = GaugeMetricFamily(
            "seatwise_feed_lag_seconds",
            "How far behind the newest entry a feed subscriber is: the age of the newest entry it was"
            f" sent, 0 once it has read every stream to its end; the {FEED_LAG_SERIES} furthest behind",
            labels=["organizer", "key_id"],
        )
        for (organizer, key_id), seconds in heapq.nlargest(FEED_LAG_SERIES, lag.items(), key=lambda i: i[1]):
            family.add_metric([organizer, key_id], seconds)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # collected fresh at every scrape (no names to check ahead)


FEED_LAG = FeedLag()
REGISTRY.register(FEED_LAG)


_SAMPLES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def metric_names() -> set[str]:
    """Every series name the service exports, as PromQL names them (a counter's
    ``_total``; a histogram's ``_bucket``, ``_sum`` and ``_count``), whether or
    not it has a sample yet."""
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("seatwise_")
        for suffix in _SAMPLES.get(family.type, ("",))
    }
