"""The run summary: throughput, exact latency percentiles, errors, sales and sell-out.

Computed from the raw per-request records (:mod:`loadtest.recording`), the
runner's availability samples and the audited orders, never from Locust's
rounded percentiles. Status codes are split into *refusals* (the service said
no for a business reason: FAILED_PRECONDITION, ABORTED, RESOURCE_EXHAUSTED,
NOT_FOUND) and *errors* (everything else that is not OK). Calls named
``... (lost reply)`` are the buyers' deliberate 1 ms deadlines and are
counted apart.
"""

from __future__ import annotations

import csv
import importlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.recording import RawRow

REFUSALS = frozenset({"FAILED_PRECONDITION", "ABORTED", "RESOURCE_EXHAUSTED", "NOT_FOUND"})
UNARY = "grpc"
SESSION = "session"  # an operation sent over a sales session (loadtest/gateway.py)
STREAM = "grpc-stream"
CALLS = frozenset({UNARY, SESSION})
SIMULATED = "(lost reply)"


@dataclass(frozen=True)
class Sample:
    """One availability reading by the runner's monitor (epoch seconds)."""

    t: float
    free: int
    held: int
    sold: int
    ga_available: int
    ga_held: int
    ga_sold: int


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    arr = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(arr.max()), 2),
    }


def _classify(status: str, name: str) -> str:
    if status == "OK":
        return "ok"
    if name.endswith(SIMULATED):
        return "simulated"
    return "refusal" if status in REFUSALS else "error"


def _key(row: RawRow) -> str:
    """A call's row in the table: the method, prefixed ``session:`` when sent over a session."""
    return row.name if row.request_type == UNARY else f"{row.request_type}:{row.name}"


def requests_summary(rows: Sequence[RawRow]) -> dict[str, Any]:
    """Throughput, latency and status breakdown of the calls (unary, and operations over
    sessions as ``session:<method>``), by method and overall."""
    unary = [r for r in rows if r.request_type in CALLS]
    if not unary:
        return {"calls": 0, "rps": 0.0, "window_s": 0.0, "methods": {}, "errors": {}, "refusals": {}}
    start = min(r.end_s - r.response_ms / 1000 for r in unary)
    end = max(r.end_s for r in unary)
    window = max(end - start, 1e-3)
    by_method: dict[str, list[RawRow]] = defaultdict(list)
    for r in unary:
        by_method[_key(r)].append(r)
    methods: dict[str, Any] = {}
    errors: dict[str, dict[str, int]] = {}
    refusals: dict[str, dict[str, int]] = {}
    for name, calls in sorted(by_method.items()):
        kinds = Counter(_classify(r.status, name) for r in calls)
        statuses = Counter(r.status for r in calls if r.status != "OK")
        methods[name] = {
            "calls": len(calls),
            "rps": round(len(calls) / window, 1),
            "ok": kinds["ok"],
            "refusals": kinds["refusal"],
            "errors": kinds["error"],
            "simulated": kinds["simulated"],
            **_percentiles([r.response_ms for r in calls]),
        }
        for status, count in statuses.items():
            kind = _classify(status, name)
            if kind == "error":
                errors.setdefault(name, {})[status] = count
            elif kind == "refusal":
                refusals.setdefault(name, {})[status] = count
    ok_latencies = [r.response_ms for r in unary if not r.name.endswith(SIMULATED)]
    return {
        "calls": len(unary),
        "window_s": round(window, 2),
        "start_epoch_s": round(start, 3),
        "rps": round(len(unary) / window, 1),
        "errors_total": sum(sum(v.values()) for v in errors.values()),
        "refusals_total": sum(sum(v.values()) for v in refusals.values()),
        **_percentiles(ok_latencies),
        "methods": methods,
        "errors": errors,
        "refusals": refusals,
    }


def streams_summary(rows: Sequence[RawRow]) -> dict[str, Any]:
    ended = [r for r in rows if r.request_type == STREAM]
    return {
        "streams": len(ended),
        "messages": sum(r.length for r in ended),
        "errors": dict(Counter(r.status for r in ended if r.status != "OK")),
        "time_to_first_message": _percentiles(
            [
                r.response_ms
                for r in rows
                if r.request_type == UNARY and r.name.startswith("WatchAvailability")
            ]
        ),
    }


def sales_summary(sales: Sequence[tuple[int, int]], start_s: float, sellable: int) -> dict[str, Any]:
    """Tickets per second from the orders' commit times (Redis clock, ms)."""
    if not sales:
        return {"orders": 0, "tickets": 0, "tickets_per_s": 0.0, "peak_tickets_per_s": 0, "per_second": []}
    tickets = sum(n for _, n in sales)
    first, last = sales[0][0] / 1000, sales[-1][0] / 1000
    per_second: Counter[int] = Counter()
    for created_ms, n in sales:
        per_second[max(0, int(created_ms / 1000 - start_s))] += n
    timeline = [per_second.get(s, 0) for s in range(max(per_second) + 1)]
    return {
        "orders": len(sales),
        "tickets": tickets,
        "sellable": sellable,
        "sold_share": round(tickets / sellable, 4) if sellable else None,
        "tickets_per_s": round(tickets / max(last - first, 1.0), 1),
        "peak_tickets_per_s": max(timeline),
        "first_sale_s": round(first - start_s, 2),
        "last_sale_s": round(last - start_s, 2),
        "per_second": timeline,
    }


def sell_out(
    samples: Sequence[Sample], sales: Sequence[tuple[int, int]], start_s: float, sellable: int
) -> dict[str, Any]:
    """When nothing was free any more and when everything was sold (monitor), and when the
    last place sold (orders, if all did)."""
    has_ga = any(s.ga_available or s.ga_held or s.ga_sold for s in samples)
    nothing_free = next((s.t for s in samples if s.free == 0 and (not has_ga or s.ga_available == 0)), None)
    all_sold_at = next(
        (
            s.t
            for s in samples
            if s.sold > 0 and s.free == 0 and s.held == 0 and (not has_ga or s.ga_available == s.ga_held == 0)
        ),
        None,
    )
    ga_full = next((s.t for s in samples if has_ga and s.ga_available == 0), None)
    sold = sum(n for _, n in sales)
    all_sold = sellable > 0 and sold >= sellable
    return {
        "nothing_free_s": round(nothing_free - start_s, 2) if nothing_free is not None else None,
        "ga_full_s": round(ga_full - start_s, 2) if ga_full is not None else None,
        "all_sold_s": round(all_sold_at - start_s, 2) if all_sold_at is not None else None,
        "last_place_sold_s": round(sales[-1][0] / 1000 - start_s, 2) if all_sold and sales else None,
        "sold_out": all_sold,
    }


def cpu_summary(
    server_s: float, redis_s: float, load_generator_s: float, window_s: float, tickets: int
) -> dict[str, Any]:
    """CPU-seconds used over the load (psutil), and per 1,000 tickets sold: the figures that
    carry from machine to machine better than requests per second."""

    def per_1000(used: float) -> float | None:
        return round(used * 1000 / tickets, 3) if tickets else None

    return {
        "server_s": round(server_s, 2),
        "redis_s": round(redis_s, 2),
        "load_generator_s": round(load_generator_s, 2),
        "window_s": round(window_s, 2),
        "tickets": tickets,
        "server_s_per_1000_tickets": per_1000(server_s),
        "redis_s_per_1000_tickets": per_1000(redis_s),
        "load_generator_s_per_1000_tickets": per_1000(load_generator_s),
    }


def format_table(summary: dict[str, Any]) -> str:
    req = summary["requests"]
    lines = [
        f"{'method':<34} {'calls':>8} {'RPS':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>9} {'refused':>8} {'errors':>7}",
    ]
    lines.append("-" * len(lines[0]))

    def ms(value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.1f}"

    for name, m in req.get("methods", {}).items():
        lines.append(
            f"{name:<34} {m['calls']:>8} {m['rps']:>8.1f} {ms(m['p50_ms']):>8} {ms(m['p95_ms']):>8} "
            f"{ms(m['p99_ms']):>8} {ms(m['max_ms']):>9} {m['refusals']:>8} {m['errors']:>7}"
        )
    lines.append("-" * len(lines[0]))
    lines.append(
        f"{'all calls':<34} {req['calls']:>8} {req['rps']:>8.1f} {ms(req.get('p50_ms')):>8} "
        f"{ms(req.get('p95_ms')):>8} {ms(req.get('p99_ms')):>8} {ms(req.get('max_ms')):>9} "
        f"{req.get('refusals_total', 0):>8} {req.get('errors_total', 0):>7}"
    )
    sales, out, streams = summary["sales"], summary["sell_out"], summary["streams"]
    lines.append("")
    lines.append(
        f"sales: {sales['tickets']} tickets in {sales['orders']} orders"
        + (f" ({sales['sold_share'] * 100:.1f}% of {sales['sellable']})" if sales.get("sold_share") else "")
        + f"; {sales['tickets_per_s']} tickets/s average, {sales['peak_tickets_per_s']} peak"
    )
    lines.append(
        f"sell-out: nothing free after {out['nothing_free_s']} s; GA full after {out['ga_full_s']} s; "
        + (f"last place sold at {out['last_place_sold_s']} s" if out["sold_out"] else "not everything sold")
        + (f" (all sold by the monitor's count at {out['all_sold_s']} s)" if out.get("all_sold_s") else "")
    )
    lines.append(
        f"streams: {streams['streams']} closed, {streams['messages']} messages read, "
        f"errors {streams['errors'] or 'none'}"
    )
    cpu = summary.get("cpu")
    if cpu:
        lines.append(
            f"cpu: server {cpu['server_s']} s, redis {cpu['redis_s']} s, load generator "
            f"{cpu['load_generator_s']} s over {cpu['window_s']} s; CPU-seconds per 1,000 tickets "
            f"sold: server {cpu['server_s_per_1000_tickets']}, redis {cpu['redis_s_per_1000_tickets']}, "
            f"load generator {cpu.get('load_generator_s_per_1000_tickets')}"
        )
    if req.get("errors"):
        lines.append(f"errors by method and status: {req['errors']}")
    if req.get("refusals"):
        lines.append(f"refusals by method and status: {req['refusals']}")
    return "\n".join(lines)


@dataclass
class History:
    """Locust's stats history, per second: aggregated throughput and each unary method's percentiles."""

    t: list[float]
    users: list[float]
    rps: list[float]
    failures: list[float]
    p95_by_method: dict[str, list[tuple[float, float]]]


def _number(raw: str | None) -> float:
    return float(raw) if raw not in (None, "", "N/A") else math.nan


def read_history(history_csv: Path) -> History:
    """Aggregated rows for RPS; per-method rows of type ``grpc`` for latency (the aggregate
    mixes in the streams' open durations)."""
    history = History([], [], [], [], defaultdict(list))
    t0: float | None = None
    with history_csv.open() as f:
        for row in csv.DictReader(f):
            t = float(row["Timestamp"])
            t0 = t if t0 is None else t0
            if row.get("Name") == "Aggregated":
                history.t.append(t - t0)
                history.users.append(_number(row.get("User Count")))
                history.rps.append(_number(row.get("Requests/s")))
                history.failures.append(_number(row.get("Failures/s")))
            elif row.get("Type") in CALLS and not row["Name"].endswith(SIMULATED):
                name = row["Name"] if row["Type"] == UNARY else f"{row['Type']}:{row['Name']}"
                history.p95_by_method[name].append((t - t0, _number(row.get("95%"))))
    return history


def write_plots(history_csv: Path, out_dir: Path) -> list[Path] | str:
    """rps.png and latency.png from Locust's stats history; a reason string when not possible."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return "matplotlib is not installed: no plots (the CSV and HTML reports have the same data)"
    if not history_csv.exists():
        return f"{history_csv} is missing: no plots"
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    history = read_history(history_csv)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(history.t, history.rps, label="requests/s")
    ax.plot(history.t, history.failures, label="failures/s (incl. refusals)")
    ax.set_xlabel("s")
    ax.legend(loc="upper left")
    users = ax.twinx()
    users.plot(history.t, history.users, color="grey", linestyle=":")
    users.set_ylabel("users (dotted)")
    fig.tight_layout()
    rps_png = out_dir / "rps.png"
    fig.savefig(rps_png)
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, points in sorted(history.p95_by_method.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], label=f"{name} p95")
    ax.set_xlabel("s")
    ax.set_ylabel("ms (Locust, rounded)")
    ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    latency_png = out_dir / "latency.png"
    fig.savefig(latency_png)
    plt.close("all")
    return [rps_png, latency_png]
