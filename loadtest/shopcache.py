"""A storefront's own view of an on-sale: its catalogue and an availability cache.

Pure (no gRPC, no gevent, no asyncio): the storefront gateway of
:mod:`loadtest.storefront` feeds :class:`AvailabilityCache` from its one
``WatchAvailability`` stream, and its buyers browse counts and pick seats from
it instead of asking the service (what a storefront fleet's cache is for).

* :class:`Catalogue`: which category and section each seat is in, and each
  section's rows in seat order (adjacency follows it). Built from the venue's
  seat map, which a storefront fetches once and keeps (the load test generates
  it locally: the venues are deterministic, see :mod:`loadtest.provision`).
* :class:`AvailabilityCache`: which seats are not free (the stream's snapshot,
  then its deltas) and the free / held counts per category and per section,
  kept up to date seat by seat.
* :func:`choose`: what a buyer does with what the cache shows (buy what they
  wanted, settle for fewer seats or any category, wait for returns, or stop).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from seatwise.v1 import events_pb2

from seatmap.model import SeatMap

QUANTITIES = (1, 2, 2, 2, 2, 3, 4, 4, 5, 6)  # pairs are the most common basket
FREE = events_pb2.SEAT_STATUS_FREE
HELD = events_pb2.SEAT_STATUS_HELD


@dataclass(frozen=True)
class Catalogue:
    """Where each seat is: its category and section, and every section's rows."""

    category_of: dict[str, str]
    section_of: dict[str, str]
    rows_of: dict[str, list[list[str]]]  # section -> rows (tables too), seat ids in order
    sections_of: dict[str, list[str]]  # category -> sections holding some of its seats

    @classmethod
    def of(cls, seatmap: SeatMap) -> Catalogue:
        category_of: dict[str, str] = {}
        section_of: dict[str, str] = {}
        rows_of: dict[str, list[list[str]]] = {}
        sections_of: dict[str, list[str]] = {}
        for section in seatmap.sections:
            groups = [row.seats for row in section.rows] + [table.seats for table in section.tables]
            rows_of[section.id] = [[s.id for s in group] for group in groups if group]
            for seat in (seat for group in groups for seat in group):
                category_of[seat.id] = seat.category
                section_of[seat.id] = section.id
                holders = sections_of.setdefault(seat.category, [])
                if not holders or holders[-1] != section.id:
                    holders.append(section.id)
        return cls(category_of, section_of, rows_of, sections_of)


class AvailabilityCache:
    """The seats that are not free, and free / held counts by category and section."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.not_free: dict[str, int] = {}
        self.free: dict[str, int] = {}  # category or section id -> free seats
        self.held: dict[str, int] = {}
        self.free_total = 0
        self.held_total = 0
        self.sequence = 0
        self.has_snapshot = False

    def apply(self, update: events_pb2.AvailabilityUpdate) -> None:
        """One message of a ``WatchAvailability`` stream (seat list encoding)."""
        kind = update.WhichOneof("update")
        if kind == "snapshot":
            self._snapshot(update.snapshot)
        elif kind == "delta":
            self._delta(update.delta)
        elif kind == "deltas":
            for delta in update.deltas.deltas:
                self._delta(delta)
        self.sequence = update.sequence  # a resync is followed by a snapshot: nothing to do

    def _snapshot(self, snapshot: events_pb2.GetAvailabilityResponse) -> None:
        self.not_free = {s.seat_id: s.status for s in snapshot.seats}
        self.free = {c.key: c.free for c in snapshot.by_category}
        self.held = {c.key: c.held for c in snapshot.by_category}
        for counts in snapshot.by_section:
            self.free[counts.key] = counts.free
            self.held[counts.key] = counts.held
        self.free_total = sum(c.free for c in snapshot.by_category)
        self.held_total = sum(c.held for c in snapshot.by_category)
        self.has_snapshot = True

    def _delta(self, delta: events_pb2.AvailabilityDelta) -> None:
        if delta.seat_ids:
            self.set_status(delta.seat_ids, delta.status)

    def set_status(self, seat_ids: Iterable[str], status: int) -> None:
        """Record ``status`` for these seats, moving them between the counts."""
        not_free = self.not_free
        category_of, section_of = self.catalogue.category_of, self.catalogue.section_of
        for seat_id in seat_ids:
            old = not_free.get(seat_id, FREE)
            if old == status:
                continue
            if status == FREE:
                del not_free[seat_id]
            else:
                not_free[seat_id] = status
            category, section = category_of.get(seat_id), section_of.get(seat_id)
            if category is None or section is None:
                continue  # not in the catalogue: nothing counted for it
            for counts, moved, total in ((self.free, FREE, "free"), (self.held, HELD, "held")):
                step = (status == moved) - (old == moved)
                if step:
                    counts[category] = counts.get(category, 0) + step
                    counts[section] = counts.get(section, 0) + step
                    if total == "free":
                        self.free_total += step
                    else:
                        self.held_total += step

    def mark_taken(self, seat_ids: Iterable[str]) -> None:
        """Seats a refused hold named (or that a buyer just held): taken, until the stream says otherwise."""
        self.set_status([s for s in seat_ids if s not in self.not_free], HELD)

    def free_in(self, key: str) -> int:
        return max(self.free.get(key, 0), 0)


# -- what buyers do with it -------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """Hold ``quantity`` seats in ``category`` ("": any); or wait for returns; or stop (sold out)."""

    action: str  # "hold" | "wait" | "stop"
    quantity: int = 0
    category: str = ""


def choose(cache: AvailabilityCache, quantity: int, category: str = "", claimed: int = 0) -> Choice:
    """What a buyer wanting ``quantity`` seats (in ``category``, if set) does now, while
    the gateway's other buyers are trying for ``claimed`` seats.

    The wanted category while it has enough; else any category; else fewer seats
    (what is left). Nothing free: wait for returns while seats are held, stop
    when nothing is held either (sold out). The gateway's own waiting room: no
    more seats are tried for at once than the cache shows free, so a few returned
    seats are not stormed by every waiting buyer (each try would be refused but
    one, and refusals cost the service as much as sales).
    """
    if cache.free_total <= 0:
        return Choice("wait") if cache.held_total > 0 else Choice("stop")
    left = cache.free_total - claimed
    if left <= 0:
        return Choice("wait")
    if category and quantity <= left and cache.free_in(category) >= quantity:
        return Choice("hold", quantity, category)
    return Choice("hold", min(quantity, left), "")


def pick_section(cache: AvailabilityCache, category: str, quantity: int, rng: random.Random) -> str | None:
    """A section of ``category`` (any when "") that shows at least ``quantity`` free seats."""
    catalogue = cache.catalogue
    categories = [category] if category else list(catalogue.sections_of)
    sections = [s for c in categories for s in catalogue.sections_of.get(c, ())]
    fits = [s for s in sections if cache.free_in(s) >= quantity]
    return rng.choice(fits) if fits else None


def free_run(
    rows: Sequence[Sequence[str]],
    quantity: int,
    not_free: Mapping[str, int],
    rng: random.Random | None = None,
) -> list[str] | None:
    """``quantity`` adjacent seats that look free, from a random row that has them."""
    rng = rng or random.Random()
    order = list(range(len(rows)))
    rng.shuffle(order)
    for r in order:
        row = rows[r]
        runs: list[int] = []
        length = 0
        for i, seat_id in enumerate(row):
            length = 0 if seat_id in not_free else length + 1
            if length >= quantity:
                runs.append(i - quantity + 1)
        if runs:
            start = rng.choice(runs)
            return list(row[start : start + quantity])
    return None
