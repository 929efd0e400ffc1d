"""Records read from Redis and kept in-process for a fixed time: API keys, organizers,
platforms, events' rate limits.

Each entry knows when it stops being fresh, so a result derived from several
of them (the wrapper's cached principals, ``server/principals.py``) can be kept
exactly as long as the freshest guarantee allows and no longer: a revocation
still takes effect within ``ttl_s``. ``generation`` counts what this process
dropped on purpose (a key revoked, an organizer suspended here), so derived
results are dropped with them at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_ENTRIES = 10_000  # by default; unknown ids must not grow memory: past this the cache starts over


class FreshCache(Generic[K, V]):
    def __init__(
        self, ttl_s: float, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self.generation = 0

    def get(self, key: K) -> tuple[V, float] | None:
        """The value and the monotonic time it stops being fresh; None when absent or stale."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1], entry[0]

    def put(self, key: K, value: V) -> float:
        """Keep ``value`` for ``ttl_s``; returns when it stops being fresh."""
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        fresh_until = self._clock() + self.ttl_s
        self._entries[key] = (fresh_until, value)
        return fresh_until

    def drop(self, key: K) -> None:
        """Forget ``key`` (changed by this process) and whatever was derived from this cache."""
        self._entries.pop(key, None)
        self.generation += 1
