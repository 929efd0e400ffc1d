"""Prometheus metrics (served on the configured metrics port, off by default)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RPC_LATENCY = Histogram(
    "seatwise_rpc_seconds",
    "Latency of each RPC, by method",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RPC_OUTCOMES = Counter("seatwise_rpc_total", "RPCs by method and outcome", ["method", "outcome"])


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
