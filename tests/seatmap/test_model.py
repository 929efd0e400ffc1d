"""The wire format: round trips, strictness, and the canonical seat order."""

from __future__ import annotations

import msgspec
import pytest

from seatmap.model import (
    Area,
    Category,
    Point,
    Row,
    Seat,
    SeatMap,
    Section,
    Table,
    centroid,
    focal_point,
    iter_seats,
    json_decoder,
    json_encoder,
    msgpack_decoder,
    msgpack_encoder,
)


def _map() -> SeatMap:
    def seat(seat_id: str, x: float) -> Seat:
        return Seat(id=seat_id, label=seat_id[-1], position=Point(x, 50), category="std")

    section = Section(
        id="A",
        label="Block A",
        outline=[Point(0, 0), Point(400, 0), Point(400, 300), Point(0, 300)],
        rows=[Row("A-1", "1", [seat("A-1-1", 50), seat("A-1-2", 110)]), Row("A-2", "2", [seat("A-2-1", 50)])],
        tables=[Table("A-T", "T", Point(300, 200), 30, [seat("A-T-1", 300)])],
    )
    second = Section(
        id="B",
        label="Block B",
        outline=[Point(500, 0), Point(900, 0), Point(900, 300)],
        rows=[Row("B-1", "1", [seat("B-1-1", 800)])],
    )
    return SeatMap(name="Hall", categories=[Category("std", "Standard")], sections=[section, second])


def test_json_and_msgpack_round_trip() -> None:
    seatmap = _map()
    assert json_decoder.decode(json_encoder.encode(seatmap)) == seatmap
    assert msgpack_decoder.decode(msgpack_encoder.encode(seatmap)) == seatmap


def test_points_are_arrays_and_defaults_are_omitted() -> None:
    encoded = msgspec.json.decode(json_encoder.encode(_map()))
    seat = encoded["sections"][0]["rows"][0]["seats"][0]
    assert seat == {"id": "A-1-1", "label": "1", "position": [50.0, 50.0], "category": "std"}
    assert "ga_areas" not in encoded


def test_unknown_fields_are_rejected() -> None:
    section = {"id": "A", "label": "A", "outline": [], "rowz": []}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.sections\[0\]"):
        json_decoder.decode(msgspec.json.encode({"name": "x", "categories": [], "sections": [section]}))


@pytest.mark.parametrize("bad_id", ["", "a b", "x" * 65, "a/b"])
def test_identifiers_are_constrained(bad_id: str) -> None:
    doc = {"name": "x", "categories": [{"key": bad_id, "label": "L"}]}
    with pytest.raises(msgspec.ValidationError, match=r"categories\[0\]\.key"):
        json_decoder.decode(msgspec.json.encode(doc))


def test_iter_seats_orders_sections_then_rows_then_tables() -> None:
    placed = iter_seats(_map())
    assert [p.seat.id for p in placed] == ["A-1-1", "A-1-2", "A-2-1", "A-T-1", "B-1-1"]
    assert [p.ordinal for p in placed] == list(range(5))
    table_seat = placed[3]
    assert (table_seat.section_id, table_seat.placement, table_seat.group_id, table_seat.index_in_group) == (
        "A",
        "table",
        "A-T",
        0,
    )
    assert (placed[1].placement, placed[1].group_id, placed[1].index_in_group) == ("row", "A-1", 1)


def test_an_area_round_trips_and_old_documents_have_none() -> None:
    stage = Area("STAGE", [Point(0, 0), Point(10, 0), Point(10, 4), Point(0, 4)], "Stage", "stage")
    seatmap = msgspec.structs.replace(_map(), areas=[stage])
    encoded = json_encoder.encode(seatmap)
    assert (
        b'"areas":[{"id":"STAGE","outline":[[0,0],[10,0],[10,4],[0,4]],"label":"Stage","kind":"stage"}]'
        in encoded
    )
    assert json_decoder.decode(encoded) == seatmap
    assert b"areas" not in json_encoder.encode(_map())  # omitted when empty: old maps encode as before
    with pytest.raises(msgspec.ValidationError, match="kind"):
        json_decoder.decode(encoded.replace(b'"stage"', b'"stagee"'))


def test_focal_point_is_explicit_else_the_first_stage_else_none() -> None:
    square = [Point(100, 0), Point(140, 0), Point(140, 20), Point(100, 20)]
    bar = Area("BAR", [Point(0, 0), Point(4, 0), Point(4, 4)])
    stage = Area("STAGE", square, kind="stage")
    assert focal_point(_map()) is None
    assert focal_point(msgspec.structs.replace(_map(), areas=[bar])) is None
    assert focal_point(msgspec.structs.replace(_map(), areas=[bar, stage])) == Point(120, 10)
    explicit = msgspec.structs.replace(_map(), areas=[stage], focal_point=Point(1, 1))
    assert focal_point(explicit) == Point(1, 1)
    assert centroid([Point(1e7, 1e7), Point(1e7 + 3, 1e7), Point(1e7, 1e7 + 3)]) == Point(1e7 + 1, 1e7 + 1)
    assert centroid([Point(0, 0), Point(2, 2), Point(4, 4)]) == Point(2, 2)  # no area: the vertex mean
