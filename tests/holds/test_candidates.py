"""Candidate pools: shared searches never propose seats that are taken now."""

from __future__ import annotations

import random

import numpy as np

from holds.availability import HELD, Delta, EventMirror, GaCount, Snapshot
from holds.candidates import REFRESH_S, CandidatePools
from seatmap.bestavailable import BestAvailableRequest
from seatmap.generate import theatre
from seatmap.index import SeatIndex
from tests.clock import Clock


def _mirror(index: SeatIndex) -> EventMirror:
    states = np.zeros(len(index), dtype=np.int8)
    return EventMirror("ev", len(index), Snapshot(0, states, {"floor": GaCount(10, 0, 0)}))


def test_takes_are_disjoint_and_follow_the_mirror() -> None:
    index = SeatIndex(theatre())
    mirror = _mirror(index)
    pools = CandidatePools()
    rng = random.Random(7)
    request = BestAvailableRequest(quantity=2)
    taken: set[int] = set()
    for _ in range(200):
        candidate = pools.take(mirror, index, request, rng)
        assert candidate is not None
        assert not taken & set(candidate.ordinals)  # never a seat proposed before
        taken |= set(candidate.ordinals)
        mirror.snapshot.states[list(candidate.ordinals)] = HELD  # as the change stream would
    assert len(taken) == 400


def test_seats_taken_elsewhere_are_never_proposed_from_the_pool() -> None:
    index = SeatIndex(theatre())
    mirror = _mirror(index)
    pools = CandidatePools()
    rng = random.Random(1)
    request = BestAvailableRequest(quantity=4)
    first = pools.take(mirror, index, request, rng)
    assert first is not None
    # another process sells every seat of the next best blocks (the pool does not know)
    mirror.snapshot.states[: len(index) // 2] = HELD
    for _ in range(20):
        candidate = pools.take(mirror, index, request, rng)
        assert candidate is not None
        assert all(mirror.snapshot.states[o] == 0 for o in candidate.ordinals)
        mirror.snapshot.states[list(candidate.ordinals)] = HELD


def test_sold_out_gives_none() -> None:
    index = SeatIndex(theatre())
    mirror = _mirror(index)
    mirror.snapshot.states[:] = HELD
    assert CandidatePools().take(mirror, index, BestAvailableRequest(quantity=2), random.Random(0)) is None


def test_a_pool_is_not_searched_again_while_seats_are_only_taken() -> None:
    index = SeatIndex(theatre())
    mirror = _mirror(index)
    clock = Clock()
    pools = CandidatePools(clock)
    rng = random.Random(3)
    request = BestAvailableRequest(quantity=2)
    for seq in range(1, 41):
        candidate = pools.take(mirror, index, request, rng)
        assert candidate is not None
        mirror.apply(Delta(seq, "held", "held", candidate.ordinals, "", 0))  # its hold, from the stream
        clock.now += 10 * REFRESH_S
    assert pools.searches == 1  # 40 takes from one search's 64 candidates


def test_seats_freed_since_the_search_are_searched_for_once_the_refresh_time_has_passed() -> None:
    index = SeatIndex(theatre())
    mirror = _mirror(index)
    clock = Clock()
    pools = CandidatePools(clock)
    request = BestAvailableRequest(quantity=2)
    rng = random.Random(5)

    def proposed() -> set[int]:
        return {o for c in pools._pools[(request, "")].candidates for o in c.ordinals}

    first = pools.take(mirror, index, request, rng)
    assert first is not None
    mirror.apply(Delta(1, "held", "held", first.ordinals, "", 0))
    mirror.apply(Delta(2, "released", "free", first.ordinals, "", 0))  # its buyer walked away
    clock.now += REFRESH_S / 2
    second = pools.take(mirror, index, request, rng)
    assert second is not None
    assert second.ordinals != first.ordinals
    assert pools.searches == 1  # too soon after the search: the pool does not know it yet
    assert not proposed() & set(first.ordinals)
    mirror.apply(Delta(3, "held", "held", second.ordinals, "", 0))
    clock.now += REFRESH_S / 2
    third = pools.take(mirror, index, request, rng)
    assert pools.searches == 2  # seats came free since the search, which is now REFRESH_S old
    assert third is not None
    # the freed seats are proposed again (in the candidates, or in the one just drawn)
    assert (proposed() | set(third.ordinals)) & set(first.ordinals)
