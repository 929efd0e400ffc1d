"""Synthetic venues: valid, realistically sized and deterministic (their generation time is
measured by ``scripts.bench.seatmap_spatial``, not here)."""

from __future__ import annotations

from collections import Counter

import pytest

from seatmap.generate import GENERATORS, arena, stadium, theatre
from seatmap.model import SeatMap, iter_seats, json_decoder, json_encoder
from seatmap.validation import validate

SEAT_RANGES = {"theatre": (1_000, 1_500), "arena": (15_000, 20_000), "stadium": (85_000, 95_000)}


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def generated(request: pytest.FixtureRequest) -> tuple[str, SeatMap]:
    name: str = request.param
    return name, GENERATORS[name]()


def test_generators_are_registered() -> None:
    assert set(GENERATORS) == {"theatre", "arena", "stadium"}


def test_validates_clean_with_seats_in_range(generated: tuple[str, SeatMap]) -> None:
    name, seatmap = generated
    report = validate(seatmap)
    assert report.violations == []
    assert report.total == 0
    low, high = SEAT_RANGES[name]
    assert low <= len(iter_seats(seatmap)) <= high


def test_output_is_schema_valid(generated: tuple[str, SeatMap]) -> None:
    # Structs built in Python skip msgspec's constraints; a JSON round trip applies them.
    _, seatmap = generated
    assert json_decoder.decode(json_encoder.encode(seatmap)) == seatmap


def test_seat_flags_and_categories_are_realistic(generated: tuple[str, SeatMap]) -> None:
    _, seatmap = generated
    seats = [p.seat for p in iter_seats(seatmap)]
    assert sum(s.wheelchair for s in seats) >= 4
    assert sum(s.companion for s in seats) == sum(s.wheelchair for s in seats)
    assert any(s.aisle for s in seats)
    assert any(s.restricted_view for s in seats)
    used = Counter(s.category for s in seats) | Counter(a.category for a in seatmap.ga_areas)
    assert 3 <= len(used) <= 4
    assert set(used) == {c.key for c in seatmap.categories}
    assert seatmap.focal_point is not None


def test_deterministic_per_seed() -> None:
    for generator in (theatre, arena):
        assert generator(seed=3) == generator(seed=3)
        assert generator(seed=3) != generator(seed=4)
        assert validate(generator(seed=4)).ok


def test_readable_stable_ids() -> None:
    ids = {p.seat.id for p in iter_seats(stadium())}
    assert {"S101-R12-7", "S301-R1-1", "S101-WC-W1", "S101-WC-C1"} <= ids
    theatre_ids = {p.seat.id for p in iter_seats(theatre())}
    assert {"SC-A-1", "BL-H-1", "BOX-L1-1"} <= theatre_ids


def test_theatre_has_boxes_as_tables_and_a_balcony() -> None:
    seatmap = theatre()
    boxes = [s for s in seatmap.sections if s.tables]
    assert len(boxes) == 8
    assert all(t.book_whole for s in boxes for t in s.tables)
    assert any(s.label.startswith("Balcony") for s in seatmap.sections)


def test_arena_has_a_general_admission_floor() -> None:
    (floor,) = arena().ga_areas
    assert floor.capacity > 1_000
