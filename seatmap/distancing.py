"""Minimum-distance seating: each seat's neighbourhood under an event's rule.

A rule keeps a distance free around every sold or held group of seats: either
a distance in metres (seat centres closer than it, on the seat map's plane) or
N seats in the row (the N seats on each side along the row, or around the
table). Which seats are blocked depends on who holds what, so it is never
stored: a free seat is blocked for a buyer when one of its neighbours is held
or sold to another group. This module only says who is whose neighbour; it is
pure (numpy and shapely's STRtree, through :class:`~seatmap.index.SeatIndex`).

Neighbourhoods are symmetric (a is b's neighbour exactly when b is a's) and
never contain the seat itself, so "no seat of the group has an occupied
neighbour" is the same as "the group keeps the distance from every other".

Rules have one canonical text, which is also their fingerprint: ``""`` (none),
``"row:N"``, ``"m:<metres>@<units per metre>"``. The inventory script compares
it with the event's stored rule before it trusts the neighbourhoods it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from seatmap.index import SeatIndex

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

MAX_SEATS_IN_ROW = 50
MAX_METRES = 50.0
# Layout units are whatever the organizer drew in; the generators draw centimetres.
DEFAULT_UNITS_PER_METRE = 100.0
MAX_UNITS_PER_METRE = 1_000_000.0
# Neighbour pairs one event's rule may make (per process, kept with the event): a rule
# whose neighbourhoods would be larger is refused when it is set (check_size).
MAX_PAIRS = 6_000_000
SIZE_SAMPLE = 256  # seats a metre rule's size is estimated from


class InvalidRule(ValueError):
    """A distancing rule that cannot be applied; ``field`` names the part at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class DistancingRule:
    """``kind`` "none", "row" (``seats`` each side) or "metres" (``metres``, at
    ``units_per_metre`` layout units per metre)."""

    kind: Literal["none", "row", "metres"] = "none"
    seats: int = 0
    metres: float = 0.0
    units_per_metre: float = DEFAULT_UNITS_PER_METRE

    @staticmethod
    def of(seats_in_row: int = 0, metres: float = 0.0, units_per_metre: float = 0.0) -> DistancingRule:
        """The rule the API's fields describe (all zero: none), checked."""
        if seats_in_row and metres:
            raise InvalidRule("distancing", "give either metres or seats_in_row, not both")
        if seats_in_row:
            if not 1 <= seats_in_row <= MAX_SEATS_IN_ROW:
                raise InvalidRule("distancing.seats_in_row", f"must be 1-{MAX_SEATS_IN_ROW}")
            if units_per_metre:
                raise InvalidRule("distancing.layout_units_per_metre", "only applies to a rule in metres")
            return DistancingRule("row", seats=seats_in_row)
        if metres:
            if not (math.isfinite(metres) and 0 < metres <= MAX_METRES):
                raise InvalidRule("distancing.metres", f"must be more than 0 and at most {MAX_METRES:g}")
            upm = units_per_metre or DEFAULT_UNITS_PER_METRE
            if not (math.isfinite(upm) and 0 < upm <= MAX_UNITS_PER_METRE and metres * upm > 0):
                why = f"must be more than 0 and at most {MAX_UNITS_PER_METRE:g}"
                raise InvalidRule("distancing.layout_units_per_metre", why)
            return DistancingRule("metres", metres=float(metres), units_per_metre=float(upm))
        if units_per_metre:
            raise InvalidRule("distancing.layout_units_per_metre", "only applies to a rule in metres")
        return DistancingRule()

    @property
    def text(self) -> str:
        """The canonical text (stored in the event's meta and used as the fingerprint)."""
        if self.kind == "row":
            return f"row:{self.seats}"
        if self.kind == "metres":
            return f"m:{self.metres!r}@{self.units_per_metre!r}"
        return ""

    @staticmethod
    def parse(text: str) -> DistancingRule:
        """The rule of a canonical text (``InvalidRule`` for anything else)."""
        if not text:
            return DistancingRule()
        kind, _, value = text.partition(":")
        try:
            if kind == "row":
                rule = DistancingRule.of(seats_in_row=int(value))
            elif kind == "m":
                metres, _, upm = value.partition("@")
                rule = DistancingRule.of(metres=float(metres), units_per_metre=float(upm))
            else:
                raise InvalidRule("distancing", f"unknown rule {text!r}")
        except ValueError as exc:
            if isinstance(exc, InvalidRule):
                raise
            raise InvalidRule("distancing", f"unknown rule {text!r}") from exc
        if rule.text != text:  # only canonical texts are stored
            raise InvalidRule("distancing", f"unknown rule {text!r}")
        return rule


@dataclass(frozen=True)
class Neighbourhoods:
    """Every seat's neighbours under one rule, as CSR arrays over seat ordinals:
    the neighbours of seat ``o`` are ``indices[indptr[o]:indptr[o + 1]]`` (ascending)."""

    rule: DistancingRule
    indptr: IntArray
    indices: IntArray

    def of(self, ordinal: int) -> list[int]:
        start, end = int(self.indptr[ordinal]), int(self.indptr[ordinal + 1])
        return [int(o) for o in self.indices[start:end]]

    def around(self, ordinals: IntArray) -> IntArray:
        """The neighbours of every seat in ``ordinals`` (with repeats), in one numpy pass."""
        ordinals = np.asarray(ordinals, dtype=np.intp)
        if len(ordinals) == 0:
            return np.zeros(0, dtype=np.intp)
        starts = self.indptr[ordinals]
        lengths = self.indptr[ordinals + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.intp)
        # positions starts[i] .. starts[i] + lengths[i] - 1, concatenated
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        out: IntArray = self.indices[offsets + np.arange(total, dtype=np.intp)]
        return out

    def blocked(self, occupied: BoolArray) -> BoolArray:
        """Seats with at least one occupied neighbour (occupied seats included if so)."""
        mask = np.zeros(len(occupied), dtype=np.bool_)
        mask[self.around(np.flatnonzero(occupied))] = True
        return mask


def check_size(index: SeatIndex, rule: DistancingRule) -> None:
    """Refuse a rule whose neighbourhoods on this map would exceed :data:`MAX_PAIRS`
    (``InvalidRule`` naming the field, saying how many seats each would keep free)."""
    n = len(index)
    if n == 0 or rule.kind == "none":
        return
    if rule.kind == "row":
        at = np.arange(n, dtype=np.intp) - index.group_start[index.group_of]
        size = index.group_size[index.group_of]
        in_row = np.minimum(rule.seats, at) + np.minimum(rule.seats, size - 1 - at)
        around_table = np.minimum(2 * rule.seats, size - 1)
        pairs = float(np.where(index.group_is_table[index.group_of], around_table, in_row).sum())
        field = "distancing.seats_in_row"
    else:
        sample = np.unique(np.linspace(0, n - 1, min(n, SIZE_SAMPLE)).astype(np.intp)).tolist()
        budget = MAX_PAIRS / n * len(sample)  # what the sample may find in all
        found = 0
        for o in sample:  # seat by seat, stopping once over: a huge rule costs one seat's query
            found += index.neighbours_within(o, rule.metres * rule.units_per_metre) - 1
            if found > budget:
                break
        pairs = found / len(sample) * n
        field = "distancing.metres"
    if pairs > MAX_PAIRS:
        raise InvalidRule(
            field,
            f"too large for this seat map: it would keep more than the allowed {MAX_PAIRS / n:.0f} "
            "seats free around each seat on average",
        )


def neighbourhoods(index: SeatIndex, rule: DistancingRule) -> Neighbourhoods:
    """Each seat's neighbours under ``rule`` (no seat is its own neighbour)."""
    n = len(index)
    if rule.kind == "row":
        pairs = _row_pairs(index, rule.seats)
    elif rule.kind == "metres":
        pairs = _metre_pairs(index, rule.metres * rule.units_per_metre)
    else:
        pairs = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
    a, b = pairs
    keep = a != b
    a, b = a[keep], b[keep]
    # symmetric by construction, made explicit (a ring table wraps onto itself)
    src = np.concatenate((a, b))
    dst = np.concatenate((b, a))
    if len(src):  # sorted by seat then neighbour, each pair once (a sort: cheaper than np.unique's hash)
        pair_ids = src.astype(np.int64) * n + dst
        pair_ids.sort()
        pair_ids = pair_ids[np.concatenate(([True], pair_ids[1:] != pair_ids[:-1]))]
        src, dst = np.divmod(pair_ids, n)
        src, dst = src.astype(np.intp, copy=False), dst.astype(np.intp, copy=False)
    indptr = np.zeros(n + 1, dtype=np.intp)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    indptr.flags.writeable = False
    dst.flags.writeable = False
    return Neighbourhoods(rule, indptr, dst)


def _row_pairs(index: SeatIndex, seats: int) -> tuple[IntArray, IntArray]:
    """(seat, neighbour) for the ``seats`` seats on each side along the row (around a table)."""
    n = len(index)
    origin = np.arange(n, dtype=np.intp)
    src: list[IntArray] = []
    dst: list[IntArray] = []
    for step in (index.left, index.right):
        at = origin
        for _ in range(seats):
            at = np.where(at >= 0, step[np.maximum(at, 0)], -1)
            ok = at >= 0
            src.append(origin[ok])
            dst.append(at[ok])
    if not src:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    return np.concatenate(src), np.concatenate(dst)


def _metre_pairs(index: SeatIndex, distance: float) -> tuple[IntArray, IntArray]:
    """(seat, neighbour) for seat centres closer than ``distance`` layout units."""
    return index.pairs_closer_than(distance)
