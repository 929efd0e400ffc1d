from __future__ import annotations

import math
import random

import msgspec
import numpy as np
import pytest

from seatmap.index import (
    MAX_NEAREST,
    InvalidQuery,
    InvalidRegion,
    SeatIndex,
    SeatIndexError,
    UnknownCategory,
    UnknownRow,
    UnknownSeat,
    UnknownSection,
)
from seatmap.model import Area, Category, Point, Row, Seat, SeatMap, Section, iter_seats
from tests.seatmap.maps import PITCH, ROW_PITCH, ga_map, grid_map, table_map


@pytest.fixture(scope="module")
def grid() -> SeatIndex:
    return SeatIndex(grid_map(rows=3, seats_per_row=5, sections=2, categories_by_section=["std", "vip"]))


def test_arrays_follow_iter_seats_order(grid: SeatIndex) -> None:
    placed = iter_seats(grid.seatmap)
    assert [p.seat.id for p in grid.placed] == [p.seat.id for p in placed]
    for p in placed:
        o = p.ordinal
        assert grid.ordinal_of[p.seat.id] == o
        assert (grid.x[o], grid.y[o]) == (p.seat.position.x, p.seat.position.y)
        assert grid.category_keys[grid.category_code[o]] == p.seat.category
        assert grid.section_ids[grid.section_code[o]] == p.section_id
    assert grid.radius[0] == grid.seatmap.seat_size / 2


def test_shared_arrays_are_read_only(grid: SeatIndex) -> None:
    with pytest.raises(ValueError, match="read-only"):
        grid.x[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        grid.walk.cap[0] = 0


def test_sections_and_rows(grid: SeatIndex) -> None:
    assert grid.seats_by_section("s1") == list(range(15, 30))
    assert grid.seats_by_row("s1", "R2") == [25, 26, 27, 28, 29]
    with pytest.raises(UnknownSection):
        grid.seats_by_section("nope")
    with pytest.raises(UnknownSection):
        grid.seats_by_row("nope", "R0")
    with pytest.raises(UnknownRow):
        grid.seats_by_row("s0", "R9")
    with pytest.raises(UnknownRow):
        grid.seats_by_table("s0", "R0")  # a row is not a table


def test_unknown_ids_raise_domain_errors(grid: SeatIndex) -> None:
    with pytest.raises(UnknownSeat) as info:
        grid.ordinal("zz")
    assert info.value.seat == "zz"
    assert isinstance(info.value, ValueError)
    for bad in (-1, len(grid)):
        with pytest.raises(UnknownSeat):
            grid.row_neighbours(bad)
        with pytest.raises(UnknownSeat):
            grid.distance_to_focal(bad)
    with pytest.raises(UnknownCategory):
        grid.category_codes(["gold"])
    with pytest.raises(UnknownSection):
        grid.section_codes(["s9"])


def test_row_neighbours_stop_at_row_ends(grid: SeatIndex) -> None:
    assert grid.row_neighbours(0) == (-1, 1)
    assert grid.row_neighbours(2) == (1, 3)
    assert grid.row_neighbours(4) == (3, -1)
    assert grid.row_neighbours(5) == (-1, 6)  # next row starts afresh


def test_aisle_seats_stay_neighbours() -> None:
    index = SeatIndex(grid_map(1, 4, flags={(0, 1): {"aisle": True}, (0, 2): {"aisle": True}}))
    assert index.row_neighbours(1) == (0, 2)
    assert index.row_neighbours(2) == (1, 3)
    assert index.aisle.tolist() == [False, True, True, False]


def test_table_seats_are_neighbours_around_the_table() -> None:
    index = SeatIndex(table_map(count=4))
    t1 = index.seats_by_table("hall", "T1")
    assert t1 == [4, 5, 6, 7]
    assert index.row_neighbours(4) == (7, 5)
    assert index.row_neighbours(7) == (6, 4)
    assert index.seat_behind[t1].tolist() == [-1] * 4


def test_seat_behind_is_the_same_seat_one_row_back(grid: SeatIndex) -> None:
    assert grid.seat_behind[:10].tolist() == list(range(5, 15))
    assert grid.seat_behind[10:15].tolist() == [-1] * 5  # last row of s0
    assert grid.seat_behind[15] == 20  # s1 pairs within s1


def test_focal_point_and_distances(grid: SeatIndex) -> None:
    assert grid.focal == (grid.seatmap.focal_point.x, grid.seatmap.focal_point.y)  # type: ignore[union-attr]
    o = grid.ordinal("s0-1-2")
    expected = math.hypot(grid.x[o] - grid.focal[0], grid.y[o] - grid.focal[1])
    assert grid.distance_to_focal(o) == pytest.approx(expected)
    assert grid.focal_distance[o] == pytest.approx(expected)


def test_focal_defaults_to_the_centre_of_the_map() -> None:
    index = SeatIndex(ga_map())  # no focal point drawn
    x0, y0, x1, y1 = index.bounds
    assert index.focal == ((x0 + x1) / 2, (y0 + y1) / 2)
    assert index.bounds == (0.0, 70.0, 500.0, 800.0)  # section outline top to GA bottom


def test_ga_areas_by_id() -> None:
    index = SeatIndex(ga_map())
    assert index.ga_areas["floor"].capacity == 1200
    assert index.ga_areas["floor"].category == "std"


def test_region_selects_seat_centres_inside_or_on_the_edge(grid: SeatIndex) -> None:
    # Row 0 of s0 is at y=100, seats at x = 25, 75, 125...: a box over the first two seats.
    box = [(0.0, 90.0), (100.0, 90.0), (100.0, 110.0), (0.0, 110.0)]
    assert grid.seats_in_region(box) == [0, 1]
    on_edge = [(25.0, 100.0), (75.0, 50.0), (125.0, 100.0)]  # seats 0..2 on its base edge
    assert grid.seats_in_region(on_edge) == [0, 1, 2]
    # A lasso grazing a seat's rim but not its centre misses it.
    assert grid.seats_in_region([(0.0, 60.0), (24.0, 60.0), (24.0, 130.0), (0.0, 130.0)]) == []
    closed = [*box, box[0]]
    assert grid.seats_in_region([Point(x, y) for x, y in closed]) == [0, 1]


@pytest.mark.parametrize(
    ("points", "reason"),
    [
        ([(0.0, 0.0), (1.0, 1.0)], "at least 3"),
        ([(0.0, 0.0), (1.0, 1.0), (0.0, 0.0)], "at least 3"),
        ([(0.0, 0.0), (1.0, 0.0), (math.nan, 1.0)], "finite"),
        ([(0.0, 0.0), (1.0, 0.0), (math.inf, 1.0)], "finite"),
        ([(0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)], "Self-intersection"),
        ([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], "Self-intersection"),  # no area
        ([(0.0, 0.0, 1.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0)], "pairs"),
        ([("a", "b"), (1.0, 0.0), (0.0, 1.0)], "pairs"),
    ],
)
def test_invalid_regions_are_rejected(
    grid: SeatIndex, points: list[tuple[float, float]], reason: str
) -> None:
    with pytest.raises(InvalidRegion, match=reason):
        grid.seats_in_region(points)


def test_region_point_count_is_capped(grid: SeatIndex) -> None:
    circle = [(math.cos(t / 2000), math.sin(t / 2000)) for t in range(20_000)]
    with pytest.raises(InvalidRegion, match="more than"):
        grid.seats_in_region(circle)


def test_nearest_sorted_by_distance_ties_by_ordinal(grid: SeatIndex) -> None:
    assert grid.nearest(125.0, 100.0, 3) == [2, 1, 3]
    assert grid.nearest(125.0, 100.0, 1) == [2]
    assert grid.nearest(125.0, 100.0, 5, max_distance=PITCH) == [2, 1, 3]
    assert grid.nearest(125.0, 100.0, 5, max_distance=ROW_PITCH) == [2, 1, 3, 7]  # 7: behind 2
    assert grid.nearest(125.0, 100.0, 5, max_distance=0.0) == [2]
    assert len(grid.nearest(1e6, 1e6, MAX_NEAREST)) == len(grid)  # capped by the map


def test_nearest_matches_brute_force() -> None:
    index = SeatIndex(grid_map(rows=12, seats_per_row=25, sections=3))
    rng = random.Random(3)
    for _ in range(100):
        x, y = rng.uniform(-500, 3000), rng.uniform(-300, 1200)
        n = rng.randint(1, 60)
        d = np.hypot(index.x - x, index.y - y)
        expected = np.lexsort((np.arange(len(index)), d))[:n].tolist()
        assert index.nearest(x, y, n) == expected


@pytest.mark.parametrize(
    ("x", "y", "n", "max_distance"),
    [
        (0.0, 0.0, 0, None),
        (0.0, 0.0, MAX_NEAREST + 1, None),
        (0.0, 0.0, True, None),
        (math.nan, 0.0, 1, None),
        (0.0, math.inf, 1, None),
        (0.0, 0.0, 1, -1.0),
        (0.0, 0.0, 1, math.nan),
    ],
)
def test_invalid_nearest_queries(
    grid: SeatIndex, x: float, y: float, n: int, max_distance: float | None
) -> None:
    with pytest.raises(InvalidQuery):
        grid.nearest(x, y, n, max_distance)


def test_empty_map() -> None:
    index = SeatIndex(SeatMap(name="Empty", categories=[Category("std", "Standard")]))
    assert len(index) == 0
    assert index.nearest(0.0, 0.0, 5) == []
    assert index.seats_in_region([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]) == []
    assert index.bounds == (0.0, 0.0, 0.0, 0.0)


def test_duplicate_seat_ids_are_refused() -> None:
    seat = Seat(id="a", label="1", position=Point(0, 0), category="std")
    row = Row(id="r", label="A", seats=[seat, seat])
    section = Section(id="s", label="S", outline=[Point(0, 0), Point(1, 0), Point(1, 1)], rows=[row])
    with pytest.raises(SeatIndexError, match="unique"):
        SeatIndex(SeatMap(name="Dup", categories=[Category("std", "Standard")], sections=[section]))


def test_walk_lays_tables_out_as_rings() -> None:
    index = SeatIndex(table_map(book_whole=True, count=3))
    walk = index.walk
    assert not walk.identity
    # row (0..3), T1 (4..6 then 4, 5 again), T2 sold whole (7..9 then 7, 8)
    assert walk.ordinal.tolist() == [0, 1, 2, 3, 4, 5, 6, 4, 5, 7, 8, 9, 7, 8]
    assert walk.cap.tolist() == [4, 3, 2, 1, 3, 3, 3, 0, 0, 3, 0, 0, 0, 0]
    assert walk.exact[9:].all()
    assert not walk.exact[:9].any()


def test_a_large_map_is_indexed_whole() -> None:
    # how long the build takes is a figure of scripts.bench.seatmap_spatial, not an assertion
    index = SeatIndex(grid_map(rows=40, seats_per_row=50, sections=10))  # 20k seats
    assert len(index) == 20_000


def test_without_a_focal_point_the_index_ranks_towards_the_stage_area() -> None:
    base = grid_map(rows=4, seats_per_row=10)
    behind = Area("STAGE", [Point(0, 400), Point(500, 400), Point(500, 450), Point(0, 450)], "Stage", "stage")
    index = SeatIndex(msgspec.structs.replace(base, focal_point=None, areas=[behind]))
    assert index.focal == (250, 425)
    assert index.bounds[3] == 450  # areas are part of the drawing
    assert int(np.argmin(index.focal_distance)) // 10 == 3  # the back row is now the front
