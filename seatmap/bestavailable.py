"""Best-available: pick the best free seats for a quantity, as a storefront's "best seats" button.

The search is pure: it reads a :class:`~seatmap.index.SeatIndex` and an
``available`` mask (one bool per seat ordinal, True = free for sale, built by
the caller from the live inventory) and returns ranked candidate groups of
seat ordinals. Holding one of them is the caller's business; when the hold
fails because someone was faster, the caller searches again with a fresh mask.

Eligible seats
    Free seats matching the ``categories`` and ``sections`` filters. A request
    with ``accessible = k`` needs exactly ``k`` wheelchair spaces among its
    seats; wheelchair spaces are never offered to a request with ``k = 0``.
    Seats of a table sold whole come only as that whole table (when the
    quantity equals its size). General-admission areas are sold by quantity
    and are not searched here.

Ranking (contiguous groups, the first tier)
    A group is a block of ``quantity`` consecutive eligible seats of one row
    (or around one table). Blocks are ranked by, in order:

    1. orphans: how many free seats the block would strand as a lone seat
       between it and a taken seat or the row end (0, 1 or 2); a block that
       strands nobody always beats one that does;
    2. accessibility fit: with ``accessible > 0``, how many of the other seats
       are not companion seats (companions next to the wheelchair spaces are
       preferred); with ``accessible = 0``, how many companion seats the block
       uses up;
    3. mean distance of the seats to the focal point (the stage; the centre of
       the map when none is drawn), nearest first;
    4. lowest first ordinal, so equal inputs always give equal outputs.

Relaxations (only with ``adjacency="preferred"``; each is tried only when all before it found nothing)
    2. ``two_rows``: the group split over two consecutive rows of one section
       (consecutive in the section's list, which is front to back), the second
       block centred behind the first block's middle seat or one seat to either
       side (seat behind seat, via the index's nearest-seat-in-next-row table);
       the most even split first, a less even one only when no even split
       fits; ranked as above, with the orphans of both blocks counted;
    3. ``section``: scattered seats in one section: the section's eligible
       seat nearest the focal point (a wheelchair space when some are
       requested) plus the eligible seats nearest to that seat (companions
       first when wheelchair spaces are requested); one candidate per section,
       ranked by accessibility fit, then mean focal distance (the orphans such
       a group leaves are reported, not ranked);
    4. ``anywhere``: the same over all eligible seats, as a single candidate.

    With ``adjacency="required"`` only contiguous groups are returned.

Output
    Up to ``limit`` (16) candidates, best first, pairwise disjoint: every
    candidate is a different set of seats, so buyers sent to different
    candidates cannot collide. An empty list means nothing fits.

Spread (:func:`choose`)
    On an on-sale thousands of buyers ask at once with the same mask; if all
    took the best block, all but one hold would fail and retry. ``choose``
    picks among the first :data:`SPREAD` candidates that are as good as the
    best (same tier and penalty) and whose mean distance is within
    :data:`SPREAD_TOLERANCE` of the best's, with weights ``1/(rank + 1)``: the
    best stays the most likely (about 41 % with six in the pool), while
    concurrent buyers fan out over several equally good, disjoint blocks. A
    worse tier or penalty is never drawn while a better candidate exists.

Cost
    The contiguous search is a handful of numpy passes over the seats: prefix
    sums of the eligible mask find every block of ``quantity`` free seats at
    once (the row structure and the prefix sums of distances and flags are
    precomputed in the index), then only the best few blocks are sorted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np

from seatmap.index import BoolArray, FloatArray, IntArray, SeatIndex, prefix_counts

MAX_QUANTITY = 100
DEFAULT_CANDIDATES = 16
MAX_CANDIDATES = 256
SPREAD = 6  # choose() draws among at most this many candidates
SPREAD_TOLERANCE = 0.15  # ... whose mean focal distance is at most 15 % worse than the best's
_TIE = 1e-3  # distances closer than this (layout units) are equal for ranking
_SHIFTED_ANDS_UP_TO = 12  # block sizes whose window test is q - 1 ANDs (cheaper than a cumsum)
_GATHER_BELOW = 8  # valid row blocks under 1/8 of the window: computed at them, not over it

Adjacency = Literal["required", "preferred"]
Tier = Literal["row", "two_rows", "section", "anywhere"]


class BestAvailableError(ValueError):
    """Base of the errors of this module; ``field`` names the input at fault (a
    :class:`BestAvailableRequest` field, or ``available`` / ``limit``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class InvalidRequest(BestAvailableError):
    def __init__(self, field: str, reason: str) -> None:
        self.reason = reason
        super().__init__(field, f"invalid best-available request: {reason}")


class BestAvailableRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What the buyer asks for; checked on construction and on decoding."""

    quantity: int
    categories: frozenset[str] | None = None  # category keys; None = any
    sections: frozenset[str] | None = None  # section ids; None = any
    accessible: int = 0  # wheelchair spaces among ``quantity``
    adjacency: Adjacency = "required"

    def __post_init__(self) -> None:
        if not 1 <= self.quantity <= MAX_QUANTITY:
            raise InvalidRequest("quantity", f"quantity must be in 1..{MAX_QUANTITY}")
        if not 0 <= self.accessible <= self.quantity:
            raise InvalidRequest("accessible", "accessible must be in 0..quantity")
        if self.adjacency not in ("required", "preferred"):
            raise InvalidRequest("adjacency", "adjacency must be 'required' or 'preferred'")
        if self.categories is not None and not self.categories:
            raise InvalidRequest("categories", "empty categories filter (omit it to allow all)")
        if self.sections is not None and not self.sections:
            raise InvalidRequest("sections", "empty sections filter (omit it to allow all)")


class Candidate(msgspec.Struct, frozen=True):
    """One group of seats; ``ordinals`` in seat order (front row first for ``two_rows``)."""

    ordinals: tuple[int, ...]
    tier: Tier
    penalty: int  # orphans * (quantity + 1) + accessibility misfit; lower is better
    orphans: int
    mean_distance: float


def best_available(
    index: SeatIndex,
    available: BoolArray,
    request: BestAvailableRequest,
    *,
    limit: int = DEFAULT_CANDIDATES,
) -> list[Candidate]:
    """Ranked, pairwise disjoint candidate groups for ``request`` (see the module docstring)."""
    if available.shape != (len(index),) or available.dtype != np.bool_:
        raise InvalidRequest("available", f"available must be a bool array of shape ({len(index)},)")
    if not 1 <= limit <= MAX_CANDIDATES:
        raise InvalidRequest("limit", f"limit must be in 1..{MAX_CANDIDATES}")
    search = _Search.start(index, available, request, limit)
    if search is None:
        return []
    found = search.in_row()
    if found or request.adjacency == "required":
        return found
    return search.two_rows() or search.same_section() or search.anywhere()


def choose(
    candidates: Sequence[Candidate],
    rng: random.Random,
    *,
    spread: int = SPREAD,
    tolerance: float = SPREAD_TOLERANCE,
) -> Candidate | None:
    """Draw one of the best candidates, favouring the best (see "Spread" in the module docstring)."""
    if not candidates:
        return None
    best = candidates[0]
    ceiling = best.mean_distance * (1 + tolerance)
    pool = [
        c
        for c in candidates[:spread]
        if c.tier == best.tier and c.penalty == best.penalty and c.mean_distance <= ceiling
    ]
    return rng.choices(pool, weights=[1 / (rank + 1) for rank in range(len(pool))])[0]


@dataclass(slots=True)
class _Search:
    index: SeatIndex
    q: int
    accessible: int
    limit: int
    eligible: BoolArray
    free: BoolArray  # ``available`` plus a trailing False, so ordinal -1 (no neighbour) reads "taken"
    span: float  # exceeds every distance: penalty * span + distance sorts by penalty first

    @classmethod
    def start(
        cls, index: SeatIndex, available: BoolArray, request: BestAvailableRequest, limit: int
    ) -> _Search | None:
        eligible = available & ~index.wheelchair if request.accessible == 0 else available.copy()
        if request.categories is not None:
            wanted = np.zeros(len(index.category_keys), dtype=np.bool_)
            wanted[index.category_codes(request.categories)] = True
            eligible &= wanted[index.category_code]
        if request.sections is not None:
            wanted = np.zeros(len(index.section_ids), dtype=np.bool_)
            wanted[index.section_codes(request.sections)] = True
            eligible &= wanted[index.section_code]
        if np.count_nonzero(eligible) < request.quantity:
            return None
        if request.accessible and np.count_nonzero(eligible & index.wheelchair) < request.accessible:
            return None
        free = np.zeros(len(index) + 1, dtype=np.bool_)
        free[:-1] = available
        span = float(index.focal_sorted[-1]) + 1.0
        return cls(index, request.quantity, request.accessible, limit, eligible, free, span)

    # -- tier 1: contiguous in one row or around one table ---------------------

    def in_row(self) -> list[Candidate]:
        q, walk = self.q, self.index.walk
        ok = self.eligible if walk.identity else self.eligible[walk.ordinal]
        # Only the walk positions from the first eligible seat to the last can start a
        # block (a category or section filter often leaves a fraction of the map).
        lo = int(ok.argmax())
        hi = len(ok) - int(ok[::-1].argmax())
        m = hi - lo - q + 1
        if m <= 0:
            return []
        # Which blocks are valid is computed for all m starts with slices (cheap); the
        # rest is gathered at the starts of the valid blocks only.
        at = slice(lo, lo + m)
        if q <= _SHIFTED_ANDS_UP_TO:  # q eligible in a row: q - 1 ANDs of shifted flags
            valid = ok[at].copy()
            for k in range(1, q):
                valid &= ok[lo + k : lo + k + m]
        else:  # a count over each window, from prefix counts
            cs = prefix_counts(ok[lo:hi])
            valid = (cs[q:] - cs[:m]) == q
        valid &= walk.cap[at] >= q
        if not walk.identity:
            valid &= ~walk.exact[at] | (walk.cap[at] == q)
        if self.accessible:
            valid &= (walk.wheel_cs[lo + q : lo + q + m] - walk.wheel_cs[at]) == self.accessible
        rel = np.flatnonzero(valid)
        if not len(rel):
            return []
        p = rel + lo
        # Few valid starts (a filled or filtered map): gather at them. Many (an empty
        # map): slices over the window are cheaper than gathers at most of it.
        few = len(p) * _GATHER_BELOW < m
        if not walk.identity:
            orphans = self._orphans(walk.ordinal[p], walk.ordinal[p + q - 1])
        elif few:
            orphans = self._row_orphans_at(p)
        else:
            lone_before, lone_after = self._lone_flags()
            orphans = lone_before[p].astype(np.intp) + lone_after[p + q - 1]
        if few:
            companions = walk.companion_cs[p + q] - walk.companion_cs[p]
            dist = (walk.dist_cs[p + q] - walk.dist_cs[p]) / q
        else:
            companions = (walk.companion_cs[lo + q : lo + q + m] - walk.companion_cs[at])[rel]
            dist = (walk.dist_cs[lo + q : lo + q + m] - walk.dist_cs[at])[rel] / q
        penalty = orphans * (q + 1) + self._misfit(companions)
        return self._disjoint(lambda i: walk.ordinal[p[i] : p[i] + q], "row", penalty, orphans, dist, p)

    def _lone_flags(self) -> tuple[BoolArray, BoolArray]:
        """Per seat (rows only): its left neighbour is free and that neighbour's own left one
        is not (``lone_before``); the same to the right (``lone_after``). A block from a to b
        strands ``lone_before[a] + lone_after[b]`` seats."""
        free, has_left, has_right = self.free[:-1], self.index.has_left, self.index.has_right
        left_free = np.zeros(len(free), dtype=np.bool_)
        left_free[1:] = free[:-1] & has_left[1:]
        lone_before = left_free.copy()
        lone_before[1:] &= ~left_free[:-1]  # ... and the seat beyond it is not free
        right_free = np.zeros(len(free), dtype=np.bool_)
        right_free[:-1] = free[1:] & has_right[:-1]
        lone_after = right_free.copy()
        lone_after[:-1] &= ~right_free[1:]
        return lone_before, lone_after

    def _row_orphans_at(self, starts: IntArray) -> IntArray:
        """:meth:`_lone_flags` at the blocks at ``starts`` only (rows only: a seat's neighbours are
        the ordinals beside it, where ``has_left``/``has_right`` say it has one). ``free``'s
        trailing False answers for the neighbour of the first and the last seat."""
        free, has_left, has_right = self.free, self.index.has_left, self.index.has_right
        ends = starts + self.q - 1
        # the seat before the block is free, and the one before it is not (for the first
        # seat, has_left is False; free[-1] is the trailing False)
        left_free = free[starts - 1] & has_left[starts]
        lone_before = left_free & ~(free[starts - 2] & has_left[starts - 1])
        # the seat after the block is free, and the one after it is not
        right_free = free[ends + 1] & has_right[ends]
        beyond = np.minimum(ends + 1, len(has_right) - 1)  # the last seat: right_free is False
        lone_after = right_free & ~(free[beyond + 1] & has_right[beyond])
        orphans: IntArray = lone_before.astype(np.intp) + lone_after
        return orphans

    # -- tier 2: split over two consecutive rows -------------------------------

    def two_rows(self) -> list[Candidate]:
        cs = prefix_counts(self.eligible)
        longest = self._longest_row_run()
        for big in range((self.q + 1) // 2, min(self.q - 1, longest) + 1):
            small = self.q - big
            splits = [(big, small)] if big == small else [(big, small), (small, big)]
            pairs = [self._row_pairs(cs, front, back) for front, back in splits]
            found = self._rank_pairs([pair for pair in pairs if len(pair[0])])
            if found:
                return found
        return []

    def _longest_row_run(self) -> int:
        ix = self.index
        rows = self.eligible & (ix.row_room > 0)
        if not rows.any():
            return 0
        continues = np.zeros(len(rows), dtype=np.bool_)
        continues[1:] = rows[:-1] & rows[1:] & (ix.group_of[1:] == ix.group_of[:-1])
        starts = np.flatnonzero(rows & ~continues)
        ends = np.flatnonzero(rows & ~np.append(continues[1:], False))
        return int((ends - starts).max()) + 1

    def _row_pairs(self, cs: IntArray, front: int, back: int) -> tuple[IntArray, IntArray, int, int]:
        """Block starts ``(F, B)``: ``front`` seats from F, ``back`` seats from B in the next row."""
        ix = self.index
        m = len(self.eligible) - front + 1
        f = np.flatnonzero(((cs[front:] - cs[:m]) == front) & (ix.row_room[:m] >= front))
        behind = ix.seat_behind[f + (front - 1) // 2]
        f, behind = f[behind >= 0], behind[behind >= 0]
        row_first = ix.group_start[ix.group_of[behind]]
        fronts: list[IntArray] = []
        backs: list[IntArray] = []
        for shift in (0, -1, 1):  # centred behind, else one seat either way
            b = behind - (back - 1) // 2 + shift
            safe = np.clip(b, row_first, len(self.eligible) - 1)
            ok = (b == safe) & (ix.row_room[safe] >= back)  # in the back row, with room
            ok &= (cs[np.minimum(safe + back, len(cs) - 1)] - cs[safe]) == back
            fronts.append(f[ok])
            backs.append(b[ok])
        return np.concatenate(fronts), np.concatenate(backs), front, back

    def _rank_pairs(self, pairs: list[tuple[IntArray, IntArray, int, int]]) -> list[Candidate]:
        if not pairs:
            return []
        ix, q = self.index, self.q
        f = np.concatenate([p[0] for p in pairs])
        b = np.concatenate([p[1] for p in pairs])
        fn = np.concatenate([np.full(len(p[0]), p[2], dtype=np.intp) for p in pairs])
        bn = q - fn
        wheel = ix.wheel_cs[f + fn] - ix.wheel_cs[f] + ix.wheel_cs[b + bn] - ix.wheel_cs[b]
        keep = wheel == self.accessible
        f, b, fn, bn = f[keep], b[keep], fn[keep], bn[keep]
        orphans = self._orphans(f, f + fn - 1) + self._orphans(b, b + bn - 1)
        comp = ix.companion_cs[f + fn] - ix.companion_cs[f] + ix.companion_cs[b + bn] - ix.companion_cs[b]
        penalty = orphans * (q + 1) + self._misfit(comp)
        dist = (ix.dist_cs[f + fn] - ix.dist_cs[f] + ix.dist_cs[b + bn] - ix.dist_cs[b]) / q
        return self._disjoint(
            lambda i: np.r_[f[i] : f[i] + fn[i], b[i] : b[i] + bn[i]],
            "two_rows",
            penalty,
            orphans,
            dist,
            f * (len(ix) + 1) + b,
        )

    # -- tiers 3 and 4: scattered ----------------------------------------------

    def same_section(self) -> list[Candidate]:
        usable = self.eligible & ~self._whole_table_seats()
        per_section = np.bincount(self.index.section_code[usable], minlength=len(self.index.section_ids))
        pool = np.flatnonzero(usable & (per_section >= self.q)[self.index.section_code])
        return self._clusters(pool, self.index.section_code[pool], "section")

    def anywhere(self) -> list[Candidate]:
        pool = np.flatnonzero(self.eligible & ~self._whole_table_seats())
        return self._clusters(pool, np.zeros(len(pool), dtype=np.intp), "anywhere")

    def _whole_table_seats(self) -> BoolArray:
        ix = self.index
        return ix.group_book_whole[ix.group_of]

    def _clusters(self, pool: IntArray, region: IntArray, tier: Tier) -> list[Candidate]:
        """Per region: its eligible seat nearest the focal point (the seed) and the seats nearest the seed.

        ``pool`` holds eligible ordinals (ascending) and ``region`` a region code for
        each. All regions are served at once with sorts, no loop over regions.
        With wheelchair spaces requested, the seed is a wheelchair space and
        companions are pulled in first: a non-companion seat counts as if it
        were two seat widths further away.
        """
        ix, q, a = self.index, self.q, self.accessible
        if not len(pool):
            return []
        wheel = ix.wheelchair[pool]
        # Regions are contiguous in ``pool`` (sections are ordinal ranges): the seed of
        # each region is the first seat of its segment at the segment's minimum distance.
        seedable = np.flatnonzero(wheel) if a else np.arange(len(pool))
        if not len(seedable):
            return []
        focal = ix.focal_distance[pool[seedable]]
        segments = np.flatnonzero(np.r_[True, np.diff(region[seedable]) != 0])
        at_min = focal == np.repeat(
            np.minimum.reduceat(focal, segments), np.diff(np.r_[segments, len(focal)])
        )
        firsts = np.flatnonzero(at_min)
        firsts = firsts[np.r_[True, np.diff(region[seedable[firsts]]) != 0]]
        seed_of = np.full(int(region.max()) + 1, -1, dtype=np.intp)
        seed_of[region[seedable[firsts]]] = pool[seedable[firsts]]
        seed = seed_of[region]
        has_seed = seed >= 0
        pool, region, wheel, seed = pool[has_seed], region[has_seed], wheel[has_seed], seed[has_seed]
        d = np.hypot(ix.x[pool] - ix.x[seed], ix.y[pool] - ix.y[seed])
        if a:
            d += np.where(wheel | ix.companion[pool], 0.0, 4 * ix.radius[pool])
        # Rank seats within each (region, wheelchair?) group by distance (ties: lower
        # ordinal, as the stable sort keeps pool order); keep the a nearest
        # wheelchair spaces and the q - a nearest other seats.
        group = region * 2 + wheel
        big = float(d.max()) + 1.0
        order = np.argsort(group * big + d, kind="stable")
        group = group[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        take = order[rank < np.where(wheel[order], a, q - a)]
        per_region = np.bincount(region[take], minlength=len(seed_of))
        take = take[per_region[region[take]] == q]  # regions short of seats drop out
        if not len(take):
            return []
        take = np.sort(take)  # pool is ascending: this groups by region, seats ascending
        chosen = pool[take].reshape(-1, q)  # one row of q ordinals per region, ascending
        misfit = self._misfit(np.count_nonzero(ix.companion[chosen], axis=1))
        dist = ix.focal_distance[chosen].mean(axis=1)
        best = np.lexsort((chosen[:, 0], np.round(dist, 4), misfit))[: self.limit]
        found = []
        for i in best.tolist():
            orphans = self._scattered_orphans(chosen[i])
            penalty = orphans * (q + 1) + int(misfit[i])
            found.append(Candidate(tuple(chosen[i].tolist()), tier, penalty, orphans, float(dist[i])))
        return found

    # -- scoring helpers ----------------------------------------------------------

    def _orphans(self, first: IntArray, last: IntArray) -> IntArray:
        """Free seats left alone next to blocks ``first..last`` (vectorised over blocks)."""
        left, right, free = self.index.left, self.index.right, self.free
        before, after = left[first], right[last]
        lone_before = free[before] & ~free[left[before]]
        lone_after = free[after] & ~free[right[after]]
        # Around a table of quantity + 1 seats, both sides are the same seat.
        same = before == after
        return np.where(same, free[before], lone_before.astype(np.intp) + lone_after)

    def _scattered_orphans(self, chosen: IntArray) -> int:
        """Free seats that taking ``chosen`` would leave with no free neighbour."""
        ix, free = self.index, self.free
        free[chosen] = False  # try the hold on our private copy of the mask, then undo it
        near = np.concatenate((ix.left[chosen], ix.right[chosen]))
        near = np.unique(near[free[near]])
        lone = np.count_nonzero(~free[ix.left[near]] & ~free[ix.right[near]])
        free[chosen] = True
        return int(lone)

    def _misfit(self, companions: IntArray) -> IntArray:
        if self.accessible:
            return (self.q - self.accessible) - companions
        return companions

    def _ranked(self, penalty: IntArray, dist: FloatArray, tiebreak: IntArray) -> Iterator[int]:
        """Indices in rank order, sorting only as far as the caller reads."""
        key = penalty * self.span + dist
        head = max(64, 2 * self.q * self.limit)
        first = np.arange(len(key))
        if head < len(key):
            # Cheap guess of a cut-off: blocks of the best penalty no further than the
            # 4*head-th seat nearest the focal point. A partition when it misses.
            focal = self.index.focal_sorted
            guess = penalty.min() * self.span + focal[min(len(focal) - 1, 4 * head)]
            first = np.flatnonzero(key <= guess)
            if not head <= len(first) <= 16 * head:
                first = np.flatnonzero(key <= key[np.argpartition(key, head - 1)[head - 1]] + _TIE)
        # Prefix-sum rounding makes mirror-image blocks differ by ~1e-10: round so
        # that they tie and the lower ordinal wins, as documented.
        yield from first[np.lexsort((tiebreak[first], np.round(key[first], 4)))].tolist()
        if len(first) < len(key):
            rest = np.flatnonzero(key > key[first].max())
            yield from rest[np.lexsort((tiebreak[rest], np.round(key[rest], 4)))].tolist()

    def _disjoint(
        self,
        block: Callable[[int], IntArray],
        tier: Tier,
        penalty: IntArray,
        orphans: IntArray,
        dist: FloatArray,
        tiebreak: IntArray,
    ) -> list[Candidate]:
        """The best ``limit`` candidates that share no seat (``block(i)``: the seats of candidate i)."""
        used: set[int] = set()
        found: list[Candidate] = []
        for i in self._ranked(penalty, dist, tiebreak):
            seats = tuple(block(i).tolist())
            if not used.isdisjoint(seats):
                continue
            used.update(seats)
            found.append(Candidate(seats, tier, int(penalty[i]), int(orphans[i]), float(dist[i])))
            if len(found) == self.limit:
                break
        return found
