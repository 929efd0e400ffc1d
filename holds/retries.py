"""Retry-safe holds: the client's request id and the fingerprint of its request.

A hold request may carry a client-chosen ``request_id``. ``hold.lua`` records
``request id -> (hold, fingerprint)`` in the event's ``holdreqs`` hash when the
hold is made, and answers a request id it already knows *before* looking at
seats or limits: the same fingerprint gets the hold the first attempt made, as
it is now (or why that hold is gone), never a second hold; another fingerprint
is :class:`~holds.errors.InvalidRequest` on ``request_id``. The mapping lives as
long as the hold and then as long as its tombstone (a day), so a late retry
hears "committed" or "expired" instead of taking seats again.

The fingerprint is the canonical request as the API received it (kind, event,
buyer, the hold added to, and the seats, best-available shape or GA area and
quantity), not what the script was asked to take: a retried best-available
request names the shape, whichever seats a new search would propose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from holds.errors import InvalidRequest

MAX_REQUEST_ID = 128


def check_request_id(request_id: str) -> str:
    """'' (not retry-safe) or 1-128 printable ASCII characters."""
    if len(request_id) > MAX_REQUEST_ID or not (request_id.isascii() and request_id.isprintable()):
        raise InvalidRequest("request_id", f"must be at most {MAX_REQUEST_ID} printable ASCII characters")
    return request_id


def fingerprint(kind: str, event_id: str, buyer: str, hold_id: str, parts: Mapping[str, object]) -> str:
    """A digest of one canonical hold request (lists in ``parts`` must already be sorted)."""
    canonical = json.dumps(
        {"kind": kind, "event": event_id, "buyer": buyer, "hold": hold_id, **parts},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
