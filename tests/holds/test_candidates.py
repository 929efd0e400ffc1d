"""Candidate pools: shared searches never propose seats that are taken now."""

from __future__ import annotations

import random

import numpy as np

from holds.availability import HELD, EventMirror, GaCount, Snapshot
from holds.candidates import CandidatePools
from seatmap.bestavailable import BestAvailableRequest
from seatmap.generate import theatre
from seatmap.index import SeatIndex


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
