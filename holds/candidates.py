"""Best-available candidates shared by the concurrent requests of one process.

Searching a 90,000-seat map costs 1-3 ms of CPU; during an on-sale rush many
requests with the same shape (quantity, filters) arrive between two changes
of availability, and each would run the same search to find the same blocks.
So each shape keeps a pool: one search yields up to POOL_SIZE pairwise
disjoint candidates, best first; every request takes the best ones that are
*still* free in the live mirror (checked per candidate, O(quantity)). Seats
taken since the search need no new search (the check drops their candidates);
seats freed since (a release, an expiry, a cancellation; ``EventMirror.opened``)
may make better blocks the pool does not know, so the pool is searched anew
when it runs dry, or when seats were freed since its search and it is at least
REFRESH_S old: during a rush at most one search per second per shape, and
in a quiet hour a freed seat is offered at the next request.

The pool only proposes seats: the hold script still checks every seat
atomically, so a stale pool costs a retry, never a double sale.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from holds.availability import EventMirror
from seatmap.bestavailable import SPREAD, BestAvailableRequest, Candidate, best_available, choose
from seatmap.index import SeatIndex

POOL_SIZE = 64
REFRESH_S = 1.0  # a pool whose event freed seats since its search is searched anew at most this often
MAX_SHAPES = 256  # pools per event kept at once (distinct request shapes)


@dataclass
class _Pool:
    candidates: list[Candidate]
    opened: int  # the mirror's ``opened`` when it was searched
    searched_at: float


class CandidatePools:
    """The pools of one event in one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # by request shape and the channel whose seats it may take ("": the general pool only)
        self._pools: dict[tuple[BestAvailableRequest, str], _Pool] = {}
        self._clock = clock
        self.searches = 0  # searches run (for tests and diagnostics)

    def take(
        self,
        mirror: EventMirror,
        index: SeatIndex,
        request: BestAvailableRequest,
        rng: random.Random,
        channel: str = "",
    ) -> Candidate | None:
        """A candidate whose seats are free in the mirror now (removed from the pool), or None.
        Distanced seats are not free (``EventMirror.free_mask``): under a distancing rule a
        candidate keeps the distance from every group the mirror knows. Seats allocated to a
        channel are proposed only to a request with access to it (``channel``)."""
        free = mirror.free_mask(channel)
        shape = (request, channel)
        pool = self._pools.get(shape)
        if pool is None or (mirror.opened != pool.opened and self._clock() - pool.searched_at >= REFRESH_S):
            pool = self._search(mirror, index, shape, free)
        live = self._live_head(pool, free)
        if not live:
            pool = self._search(mirror, index, shape, free)
            live = self._live_head(pool, free)
        chosen = choose(live, rng)
        if chosen is not None:
            pool.candidates.remove(chosen)
        return chosen

    @staticmethod
    def _live_head(pool: _Pool, free: npt.NDArray[np.bool_]) -> list[Candidate]:
        """The first SPREAD candidates still free (all ``choose`` looks at); taken ones are dropped."""
        live: list[Candidate] = []
        keep: list[Candidate] = []
        for i, candidate in enumerate(pool.candidates):
            if all(free[o] for o in candidate.ordinals):
                live.append(candidate)
                keep.append(candidate)
                if len(live) == SPREAD:
                    keep += pool.candidates[i + 1 :]
                    break
        pool.candidates = keep
        return live

    def _search(
        self,
        mirror: EventMirror,
        index: SeatIndex,
        shape: tuple[BestAvailableRequest, str],
        free: npt.NDArray[np.bool_],
    ) -> _Pool:
        if len(self._pools) >= MAX_SHAPES:
            self._pools.clear()
        self.searches += 1
        found = best_available(index, free, shape[0], limit=POOL_SIZE)
        pool = self._pools[shape] = _Pool(found, mirror.opened, self._clock())
        return pool
