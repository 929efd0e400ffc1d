"""The storefront gateway's catalogue, availability cache and buyers' choices (pure)."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from seatwise.v1 import events_pb2

from loadtest.shopcache import (
    FREE,
    HELD,
    AvailabilityCache,
    Catalogue,
    Choice,
    choose,
    free_run,
    pick_section,
)

SOLD = events_pb2.SEAT_STATUS_SOLD
# two sections: A (cat1, two rows of 4), B (cat1 row + cat2 row of 3)
CATALOGUE = Catalogue(
    category_of={
        **{f"A-{r}-{i}": "cat1" for r in (1, 2) for i in range(1, 5)},
        **{f"B-1-{i}": "cat1" for i in range(1, 4)},
        **{f"B-2-{i}": "cat2" for i in range(1, 4)},
    },
    section_of={
        **{f"A-{r}-{i}": "A" for r in (1, 2) for i in range(1, 5)},
        **{f"B-{r}-{i}": "B" for r in (1, 2) for i in range(1, 4)},
    },
    rows_of={
        "A": [[f"A-1-{i}" for i in range(1, 5)], [f"A-2-{i}" for i in range(1, 5)]],
        "B": [[f"B-1-{i}" for i in range(1, 4)], [f"B-2-{i}" for i in range(1, 4)]],
    },
    sections_of={"cat1": ["A", "B"], "cat2": ["B"]},
)
SEATS = sorted(CATALOGUE.category_of)


def snapshot(not_free: Mapping[str, int], sequence: int = 1) -> events_pb2.AvailabilityUpdate:
    """What the server would send for these seats not free (counts by category and section)."""
    counts: dict[str, dict[str, int]] = {}
    for seat in SEATS:
        status = not_free.get(seat, FREE)
        for key in (CATALOGUE.category_of[seat], CATALOGUE.section_of[seat]):
            entry = counts.setdefault(key, {"free": 0, "held": 0})
            entry["free"] += status == FREE
            entry["held"] += status == HELD
    categories = {"cat1", "cat2"}
    by_category = [events_pb2.StatusCounts(key=k, **v) for k, v in counts.items() if k in categories]
    by_section = [events_pb2.StatusCounts(key=k, **v) for k, v in counts.items() if k not in categories]
    seats = [events_pb2.SeatState(seat_id=s, status=v) for s, v in not_free.items()]  # type: ignore[arg-type]
    return events_pb2.AvailabilityUpdate(
        sequence=sequence,
        snapshot=events_pb2.GetAvailabilityResponse(
            seats=seats, by_category=by_category, by_section=by_section
        ),
    )


def counts_of(cache: AvailabilityCache) -> tuple[dict[str, int], dict[str, int], int, int]:
    return (
        {k: v for k, v in cache.free.items() if v},
        {k: v for k, v in cache.held.items() if v},
        cache.free_total,
        cache.held_total,
    )


def test_the_catalogue_of_a_generated_venue() -> None:
    from seatmap.generate import GENERATORS

    venue = GENERATORS["theatre"]()
    catalogue = Catalogue.of(venue)
    seats = [seat for s in venue.sections for r in s.rows for seat in r.seats]
    seats += [seat for s in venue.sections for t in s.tables for seat in t.seats]
    assert len(catalogue.category_of) == len(seats)
    assert sum(len(row) for rows in catalogue.rows_of.values() for row in rows) == len(seats)
    for category, sections in catalogue.sections_of.items():
        for section in sections:
            seats_there = [x for row in catalogue.rows_of[section] for x in row]
            assert category in {catalogue.category_of[x] for x in seats_there}


statuses = st.sampled_from([FREE, HELD, SOLD])
changes = st.lists(st.tuples(st.lists(st.sampled_from(SEATS), min_size=1, max_size=4), statuses), max_size=30)


@given(start=st.dictionaries(st.sampled_from(SEATS), st.sampled_from([HELD, SOLD])), changes=changes)
def test_counts_follow_the_deltas_as_a_fresh_snapshot_would_show_them(
    start: dict[str, int], changes: list[tuple[list[str], int]]
) -> None:
    cache = AvailabilityCache(CATALOGUE)
    cache.apply(snapshot(start))
    truth = dict(start)
    for sequence, (seats, status) in enumerate(changes, start=2):
        delta = events_pb2.AvailabilityDelta(status=status, seat_ids=seats)  # type: ignore[arg-type]
        if sequence % 2:
            cache.apply(events_pb2.AvailabilityUpdate(sequence=sequence, delta=delta))
        else:
            deltas = events_pb2.AvailabilityDeltas(first_sequence=sequence, deltas=[delta])
            cache.apply(events_pb2.AvailabilityUpdate(sequence=sequence, deltas=deltas))
        for seat in seats:
            if status == FREE:
                truth.pop(seat, None)
            else:
                truth[seat] = status
    fresh = AvailabilityCache(CATALOGUE)
    fresh.apply(snapshot(truth))
    assert cache.not_free == truth
    assert counts_of(cache) == counts_of(fresh)
    assert cache.sequence == len(changes) + 1


def test_marked_seats_count_as_held_until_the_stream_says_otherwise() -> None:
    cache = AvailabilityCache(CATALOGUE)
    cache.apply(snapshot({"A-1-1": SOLD}))
    cache.mark_taken(["A-1-1", "A-1-2", "A-1-3"])  # A-1-1 is known sold: left alone
    assert cache.not_free == {"A-1-1": SOLD, "A-1-2": HELD, "A-1-3": HELD}
    assert (cache.free_in("A"), cache.held.get("A"), cache.free_total, cache.held_total) == (5, 2, 11, 2)
    cache.apply(events_pb2.AvailabilityUpdate(sequence=2, delta=events_pb2.AvailabilityDelta(
        status=SOLD, seat_ids=["A-1-2"])))  # fmt: skip
    assert (cache.free_in("A"), cache.held.get("A"), cache.held_total) == (5, 1, 1)


def test_a_buyer_settles_for_another_category_then_fewer_seats_then_waits_then_stops() -> None:
    cache = AvailabilityCache(CATALOGUE)
    cache.apply(snapshot({s: SOLD for s in SEATS if s.startswith("B-2")}))  # cat2 sold out
    assert choose(cache, 2, "cat1") == Choice("hold", 2, "cat1")
    assert choose(cache, 2, "cat2") == Choice("hold", 2, "")  # any category
    rest = {s: SOLD for s in SEATS if s != "A-1-1"} | {"A-2-2": HELD}  # one seat free, one held
    cache.apply(snapshot(rest))
    assert choose(cache, 4, "cat1") == Choice("hold", 1, "")  # what is left
    assert choose(cache, 4, "cat1", claimed=1) == Choice("wait")  # another buyer is trying for it
    cache.apply(snapshot({**rest, "A-1-1": HELD}))
    assert choose(cache, 2) == Choice("wait")  # nothing free, something held: returns may come
    cache.apply(snapshot(dict.fromkeys(SEATS, SOLD)))
    assert choose(cache, 2) == Choice("stop")  # sold out


def test_pickers_go_where_enough_looks_free_and_find_adjacent_seats() -> None:
    cache = AvailabilityCache(CATALOGUE)
    cache.apply(snapshot({"A-1-2": SOLD, "A-2-3": HELD, "B-1-1": SOLD}))
    rng = random.Random(7)
    assert {pick_section(cache, "cat1", 2, rng) for _ in range(50)} == {"A", "B"}
    assert pick_section(cache, "cat2", 6, rng) is None  # B shows 5 free (counts are per section)
    assert pick_section(cache, "", 6, rng) == "A"  # A shows 6 free, B 5
    rows = CATALOGUE.rows_of["A"]
    for _ in range(20):
        run = free_run(rows, 2, cache.not_free, rng)
        assert run in (["A-1-3", "A-1-4"], ["A-2-1", "A-2-2"])
    assert free_run(rows, 3, cache.not_free, rng) is None


@pytest.mark.parametrize("quantity", [1, 2, 3])
def test_free_run_is_adjacent_and_free(quantity: int) -> None:
    rows = CATALOGUE.rows_of["B"]
    run = free_run(rows, quantity, {"B-1-2": SOLD}, random.Random(quantity))
    assert run is not None
    assert len(run) == quantity
    assert "B-1-2" not in run
    row = next(r for r in rows if run[0] in r)
    start = row.index(run[0])
    assert row[start : start + quantity] == run
