"""Prometheus metrics of the inventory and the store, counted where the fact is known.

Each is incremented by the layer that learns the fact anyway: a script's reply
(holds taken, orders created, conflicts) in :mod:`holds.inventory`, a purge in
the reaper, a driver error in :func:`holds.redis_client.wrap_errors`, a script
call's time in :class:`holds.scripts.Script`, a change applied to a mirror in
:mod:`holds.changefeed`. None of them costs a Redis round trip. Labels are
bounded by the code, never by the data: no event, buyer, seat or key ids (an
on-sale's figures are the process's; a per-event label would grow with every
event ever sold). They are served with the server's (``server/metrics.py``),
and docs/deployment.md lists them all.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram, disable_created_metrics

# No ``*_created`` series beside every counter and histogram: rate() does not need
# them and they double what a scrape carries. Set before any metric exists (this
# module is imported before server/metrics.py defines the transport's).
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

HOLDS = Counter(
    "seatwise_holds_total",
    "Holds taken or added to (hold.lua said OK; a replayed request id is not counted)",
)
COMMITS = Counter(
    "seatwise_commits_total",
    "Orders created (a replayed idempotency key is not counted), by how: a storefront hold or the box office",
    ["via"],
)
CONFLICTS = Counter(
    "seatwise_conflicts_total",
    "Sales refused by the state of the inventory: seats taken, a GA area full, a hold that lost its seats",
    ["reason"],
)
HOLDS_EXPIRED = Counter(
    "seatwise_holds_expired_total",
    "Expired holds purged by the reaper (those purged on the way by other scripts are not counted)",
)
REDIS_ERRORS = Counter(
    "seatwise_redis_errors_total",
    "Redis failures: unavailable (connection, timeout, failover) or fault (an error reply)",
    ["kind"],
)
SCRIPT_SECONDS = Histogram(
    "seatwise_redis_script_seconds",
    "Time from sending a Lua script call to its reply, by script (for the ticket changes, commit, cancel,"
    " scan, box_office and refund, the replicas' WAIT is included when replica acks are on)",
    ["script"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
MIRROR_LAG = Histogram(
    "seatwise_mirror_lag_seconds",
    "Time from a change's write in Redis (Redis's clock) to its application to this process's"
    " availability mirror, once per stream per read",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MIRROR_RESYNCS = Counter(
    "seatwise_mirror_resyncs_total",
    "Availability mirrors started over from a snapshot (a gap or a rollback in the stream, an outage,"
    " a failover)",
    ["reason"],
)

# the children that never change, bound once (labels() takes a lock and builds a key per call)
COMMITS_VIA_HOLD = COMMITS.labels("hold")
COMMITS_AT_BOX_OFFICE = COMMITS.labels("box_office")
SEATS_UNAVAILABLE = CONFLICTS.labels("seats_unavailable")
SEATS_HELD = CONFLICTS.labels("seats_held")  # the box office without its override
GA_UNAVAILABLE = CONFLICTS.labels("ga_unavailable")
HOLD_LOST = CONFLICTS.labels("hold_lost")  # a commit whose hold no longer holds all of its seats
REDIS_UNAVAILABLE = REDIS_ERRORS.labels("unavailable")
REDIS_FAULT = REDIS_ERRORS.labels("fault")
RESYNC_REASONS = {  # the reasons changefeed.py gives; anything else is "other"
    "gap in the change stream": "gap",
    "the change stream was rolled back": "rollback",
    "store was unavailable": "unavailable",
    "another primary serves the event (failover)": "failover",
}


def mirror_applied(at_us: str) -> None:
    """A change written at ``at_us`` (Redis's clock, microseconds) was just applied."""
    if at_us.isdigit():
        MIRROR_LAG.observe(max(time.time() - int(at_us) / 1e6, 0.0))


def mirror_resynced(reason: str) -> None:
    MIRROR_RESYNCS.labels(RESYNC_REASONS.get(reason, "other")).inc()
