"""FreshCache: records kept for a fixed time, each with the moment it stops being fresh."""

from __future__ import annotations

from holds import fresh
from holds.fresh import FreshCache
from tests.clock import Clock


def test_a_value_is_fresh_until_its_ttl_and_says_until_when() -> None:
    clock = Clock()
    cache: FreshCache[str, int | None] = FreshCache(5.0, clock)
    assert cache.put("k", None) == 1005.0
    clock.now = 1004.9
    assert cache.get("k") == (None, 1005.0)  # a known absence is a value too
    clock.now = 1005.0
    assert cache.get("k") is None


def test_drop_forgets_the_value_and_bumps_the_generation() -> None:
    cache: FreshCache[str, int] = FreshCache(5.0, Clock())
    cache.put("k", 1)
    cache.drop("k")
    cache.drop("never-cached")
    assert cache.get("k") is None
    assert cache.generation == 2


def test_the_cache_is_bounded(monkeypatch: object) -> None:
    cache: FreshCache[int, int] = FreshCache(5.0, Clock())
    for i in range(fresh.MAX_ENTRIES + 1):
        cache.put(i, i)
    assert cache.get(fresh.MAX_ENTRIES) is not None
    assert cache.get(0) is None  # started over


def test_a_cache_takes_its_own_bound() -> None:
    cache: FreshCache[int, int] = FreshCache(5.0, Clock(), max_entries=3)
    for i in range(4):
        cache.put(i, i)
    assert [cache.get(i) is not None for i in range(4)] == [False, False, False, True]
