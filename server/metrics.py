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


def observe_rpc(method: str, outcome: str, seconds: float) -> None:
    RPC_LATENCY.labels(method).observe(seconds)
    RPC_OUTCOMES.labels(method, outcome).inc()
