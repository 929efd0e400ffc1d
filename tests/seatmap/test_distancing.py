"""Distancing neighbourhoods: symmetric, never the seat itself, row rules stay in their row."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seatmap.distancing import DistancingRule, InvalidRule, check_size, neighbourhoods
from seatmap.index import SeatIndex
from tests.seatmap.maps import PITCH, ROW_PITCH, grid_map, table_map

rules = st.one_of(
    st.builds(lambda n: DistancingRule.of(seats_in_row=n), st.integers(1, 6)),
    st.builds(
        lambda m, u: DistancingRule.of(metres=m, units_per_metre=u),
        st.floats(0.1, 4.0),
        st.sampled_from([0.0, 100.0, 50.0]),
    ),
)
maps = st.one_of(
    st.builds(
        lambda r, s, k: grid_map(r, s, sections=k), st.integers(1, 4), st.integers(1, 9), st.integers(1, 2)
    ),
    st.builds(lambda whole, n: table_map(book_whole=whole, count=n), st.booleans(), st.integers(2, 8)),
)


@settings(max_examples=60, deadline=None)
@given(maps, rules)
def test_neighbourhoods_are_symmetric_and_never_the_seat_itself(seatmap, rule) -> None:
    index = SeatIndex(seatmap)
    near = neighbourhoods(index, rule)
    pairs = set()
    for o in range(len(index)):
        around = near.of(o)
        assert o not in around
        assert around == sorted(set(around))
        pairs |= {(o, b) for b in around}
    assert pairs == {(b, a) for a, b in pairs}


@settings(max_examples=60, deadline=None)
@given(maps, st.integers(1, 6))
def test_a_row_rule_keeps_to_the_row_and_its_width(seatmap, n) -> None:
    index = SeatIndex(seatmap)
    near = neighbourhoods(index, DistancingRule.of(seats_in_row=n))
    for o in range(len(index)):
        group = int(index.group_of[o])
        size = int(index.group_size[group])
        for b in near.of(o):
            assert index.group_of[b] == group  # same row (or table), never the row behind
            steps = abs(b - o)
            if index.group_is_table[group]:
                steps = min(steps, size - steps)  # around the table
            assert 1 <= steps <= n
        if not index.group_is_table[group]:  # all n each side that the row has
            start, end = int(index.group_start[group]), int(index.group_end[group])
            assert near.of(o) == [b for b in range(max(start, o - n), min(end, o + n + 1)) if b != o]


@settings(max_examples=60, deadline=None)
@given(maps, st.floats(0.1, 4.0))
def test_a_metre_rule_is_exactly_the_seats_closer_than_the_distance(seatmap, metres) -> None:
    index = SeatIndex(seatmap)
    near = neighbourhoods(index, DistancingRule.of(metres=metres))
    d = metres * 100.0
    for o in range(len(index)):
        gaps = np.hypot(index.x - index.x[o], index.y - index.y[o])
        expected = [b for b in range(len(index)) if b != o and gaps[b] < d]
        assert near.of(o) == expected


@settings(max_examples=40, deadline=None)
@given(maps, rules, st.data())
def test_blocked_is_the_union_of_the_occupied_seats_neighbourhoods(seatmap, rule, data) -> None:
    index = SeatIndex(seatmap)
    near = neighbourhoods(index, rule)
    flags = data.draw(st.lists(st.booleans(), min_size=len(index), max_size=len(index)))
    occupied = np.array(flags, dtype=bool)
    expected = {b for o in np.flatnonzero(occupied) for b in near.of(int(o))}
    assert set(np.flatnonzero(near.blocked(occupied)).tolist()) == expected


def test_one_metre_in_a_grid_blocks_the_seats_in_reach() -> None:
    index = SeatIndex(grid_map(3, 6))  # seats 50 apart in a row, rows 60 apart, 1 unit = 1 cm
    near = neighbourhoods(index, DistancingRule.of(metres=1.0))
    middle = index.ordinal("s0-1-2")
    names = {index.placed[o].seat.id for o in near.of(middle)}
    # within a row: 50 (blocked); 100 is not closer than 1 m; diagonals: hypot(50, 60) < 100
    assert names == {"s0-1-1", "s0-1-3", "s0-0-1", "s0-0-2", "s0-0-3", "s0-2-1", "s0-2-2", "s0-2-3"}
    assert (PITCH, ROW_PITCH) == (50.0, 60.0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"seats_in_row": 2, "metres": 1.0}, "distancing"),
        ({"seats_in_row": 51}, "distancing.seats_in_row"),
        ({"seats_in_row": -1}, "distancing.seats_in_row"),
        ({"metres": -1.0}, "distancing.metres"),
        ({"metres": math.inf}, "distancing.metres"),
        ({"metres": math.nan}, "distancing.metres"),
        ({"metres": 51.0}, "distancing.metres"),
        ({"metres": 1.0, "units_per_metre": -3.0}, "distancing.layout_units_per_metre"),
        ({"seats_in_row": 1, "units_per_metre": 100.0}, "distancing.layout_units_per_metre"),
        ({"units_per_metre": 100.0}, "distancing.layout_units_per_metre"),
    ],
)
def test_bad_rules_name_their_field(fields, field) -> None:
    with pytest.raises(InvalidRule) as info:
        DistancingRule.of(**fields)
    assert info.value.field == field


@given(rules)
def test_the_text_of_a_rule_reads_back_as_the_rule(rule) -> None:
    assert DistancingRule.parse(rule.text) == rule
    assert DistancingRule.parse("").text == ""


@pytest.mark.parametrize("text", ["x:1", "row:", "row:x", "m:1", "m:a@b", "row:0"])
def test_unknown_texts_are_refused(text) -> None:
    with pytest.raises(InvalidRule):
        DistancingRule.parse(text)


def test_a_rule_too_large_for_the_map_is_refused_when_set() -> None:
    index = SeatIndex(grid_map(40, 60))  # 2,400 seats 50 apart, rows 60 apart (cm)
    check_size(index, DistancingRule.of(metres=1.0))  # ~8 each
    check_size(index, DistancingRule.of(seats_in_row=50))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("seatmap.distancing.MAX_PAIRS", 2_400 * 20)
        with pytest.raises(InvalidRule) as info:
            check_size(index, DistancingRule.of(metres=5.0))  # ~250 each
        assert info.value.field == "distancing.metres"
        assert "more than the allowed 20 seats free around each seat" in info.value.reason
        with pytest.raises(InvalidRule) as info:
            check_size(index, DistancingRule.of(seats_in_row=12))  # up to 24 each, 21.8 on average
        assert info.value.field == "distancing.seats_in_row"
        check_size(index, DistancingRule.of(seats_in_row=9))


@settings(max_examples=30, deadline=None)
@given(maps, st.integers(1, 6))
def test_the_size_of_a_row_rule_is_exact(seatmap, n) -> None:
    index = SeatIndex(seatmap)
    near = neighbourhoods(index, DistancingRule.of(seats_in_row=n))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("seatmap.distancing.MAX_PAIRS", len(near.indices))
        check_size(index, near.rule)  # exactly at the limit: allowed
        if len(near.indices):
            patch.setattr("seatmap.distancing.MAX_PAIRS", len(near.indices) - 1)
            with pytest.raises(InvalidRule):
                check_size(index, near.rule)
