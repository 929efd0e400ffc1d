"""Callers already resolved, kept as long as the records they came from are fresh.

Resolving a caller (its key verified, its organizer read, a suspension checked)
costs a unary HoldSeats about a tenth of its server CPU, though what it reads
changes rarely (measured: docs/performance.md). The wrapper
(``server/wrapping.py``) keeps each resolved principal under a digest of the
credentials that produced it (the authorization and tenant headers; never the
raw secret) until the first of its records stops being fresh, or until this
process changes a key, organizer or platform itself (their stores'
``generation``). So a revocation takes effect exactly as soon as before.

Only successes are kept: a refused key is resolved again on every call.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import NamedTuple

from server.auth import Principal

MAX_ENTRIES = 10_000  # bounded; past this the cache starts over


class _Known(NamedTuple):
    fresh_until: float
    generation: int
    principal: Principal


class KnownPrincipals:
    def __init__(self, generation: Callable[[], int], clock: Callable[[], float] = time.monotonic) -> None:
        self._generation = generation
        self._clock = clock
        self._known: dict[bytes, _Known] = {}

    @staticmethod
    def digest(authorization: str, acting_on: str) -> bytes:
        """What a principal is kept under: a hash of the caller's credentials and the
        organizer it names (a tenant header changes who the same key acts as)."""
        # length-prefixed: no two (authorization, acting_on) pairs share a text
        return hashlib.sha256(f"{len(authorization)}:{authorization}{acting_on}".encode()).digest()

    def generation(self) -> int:
        """Read before resolving: a change made meanwhile makes the result stale at once."""
        return self._generation()

    def get(self, digest: bytes) -> Principal | None:
        known = self._known.get(digest)
        if known is None:
            return None
        if known.fresh_until <= self._clock() or known.generation != self._generation():
            del self._known[digest]
            return None
        return known.principal

    def put(self, digest: bytes, principal: Principal, fresh_until: float, generation: int) -> None:
        if len(self._known) >= MAX_ENTRIES:
            self._known.clear()
        self._known[digest] = _Known(fresh_until, generation, principal)
