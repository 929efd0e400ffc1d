"""Every rule of seatmap.validation, each triggered by a minimal map."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pytest

from seatmap.errors import SeatMapDecodeError, SeatMapInvalid
from seatmap.formats import parse_and_validate
from seatmap.generate import stadium
from seatmap.limits import DEFAULT_LIMITS, Limits
from seatmap.model import SeatMap
from seatmap.validation import VIOLATION_CODES, overlap_partners, validate

Doc = dict[str, Any]


def _seat(seat_id: str, label: str, x: float, y: float, **extra: Any) -> Doc:
    return {"id": seat_id, "label": label, "position": [x, y], "category": "std", **extra}


def _table(table_id: str, label: str, cx: float, cy: float, seats: int = 2) -> Doc:
    ring = [_seat(f"{table_id}-{k}", str(k), cx + 70 * math.cos(k * math.pi), cy) for k in range(seats)]
    return {"id": table_id, "label": label, "center": [cx, cy], "radius": 30, "seats": ring}


def base() -> Doc:
    """One section (a 1000-unit square) with one row of three seats, and a GA area beside it."""
    return {
        "name": "Test Hall",
        "categories": [{"key": "std", "label": "Standard"}],
        "sections": [
            {
                "id": "A",
                "label": "Block A",
                "outline": [[0, 0], [1000, 0], [1000, 1000], [0, 1000]],
                "rows": [
                    {
                        "id": "A-1",
                        "label": "1",
                        "seats": [
                            _seat("A-1-1", "1", 100, 100),
                            _seat("A-1-2", "2", 160, 100),
                            _seat("A-1-3", "3", 220, 100),
                        ],
                    }
                ],
            }
        ],
        "ga_areas": [
            {
                "id": "G",
                "label": "Standing",
                "outline": [[1100, 0], [1500, 0], [1500, 400], [1100, 400]],
                "capacity": 100,
                "category": "std",
            }
        ],
    }


def build(doc: Doc) -> SeatMap:
    # convert (not JSON) so NaN and infinities can reach the validator, as from msgpack.
    return msgspec.convert(doc, SeatMap)


def codes(doc: Doc, limits: Limits = DEFAULT_LIMITS) -> set[str]:
    return {v.code for v in validate(build(doc), limits).violations}


def _seats(doc: Doc) -> list[Doc]:
    seats: list[Doc] = doc["sections"][0]["rows"][0]["seats"]
    return seats


def _add_row(doc: Doc, row_id: str, label: str, y: float = 300) -> None:
    seats = [_seat(f"{row_id}-s{k}", str(k), 100 + 60 * k, y) for k in range(2)]
    doc["sections"][0]["rows"].append({"id": row_id, "label": label, "seats": seats})


def _add_tables(doc: Doc, *tables: Doc) -> None:
    doc["sections"][0]["tables"] = list(tables)


def _add_empty_row(doc: Doc) -> None:
    _add_row(doc, "A-2", "2")
    doc["sections"][0]["rows"][1]["seats"] = []


Mutation = Callable[[Doc], None]

# code -> (mutation, limits)
CASES: dict[str, tuple[Mutation, Limits]] = {
    "unsupported_format_version": (lambda d: d.update(format_version=2), DEFAULT_LIMITS),
    "empty_map": (lambda d: d.update(sections=[], ga_areas=[]), DEFAULT_LIMITS),
    "too_many_seats": (lambda d: None, Limits(max_seats=2)),
    "too_many_sections": (lambda d: None, Limits(max_sections=0)),
    "too_many_rows": (lambda d: None, Limits(max_rows_per_section=0)),
    "too_many_tables": (
        lambda d: _add_tables(d, _table("T1", "T1", 500, 500)),
        Limits(max_tables_per_section=0),
    ),
    "too_many_seats_in_row": (lambda d: None, Limits(max_seats_per_row=2)),
    "too_many_vertices": (lambda d: None, Limits(max_vertices_per_polygon=3)),
    "too_many_ga_areas": (lambda d: None, Limits(max_ga_areas=0)),
    "too_many_areas": (lambda d: d.update(areas=[STAGE]), Limits(max_areas=0)),
    "too_many_categories": (lambda d: None, Limits(max_categories=0)),
    "duplicate_category_key": (
        lambda d: d["categories"].append({"key": "std", "label": "Again"}),
        DEFAULT_LIMITS,
    ),
    "duplicate_area_id": (lambda d: d["ga_areas"][0].update(id="A"), DEFAULT_LIMITS),
    "duplicate_group_id": (lambda d: _add_row(d, "A-1", "2"), DEFAULT_LIMITS),
    "duplicate_seat_id": (lambda d: _seats(d)[1].update(id="A-1-1"), DEFAULT_LIMITS),
    "duplicate_row_label": (lambda d: _add_row(d, "A-2", "1"), DEFAULT_LIMITS),
    "duplicate_table_label": (
        lambda d: _add_tables(d, _table("T1", "T", 500, 500), _table("T2", "T", 500, 800)),
        DEFAULT_LIMITS,
    ),
    "duplicate_seat_label": (lambda d: _seats(d)[1].update(label="1"), DEFAULT_LIMITS),
    "empty_label": (lambda d: _seats(d)[1].update(label=" "), DEFAULT_LIMITS),
    "control_character": (lambda d: _seats(d)[1].update(label="2\x00"), DEFAULT_LIMITS),
    "unknown_category": (lambda d: _seats(d)[1].update(category="vip"), DEFAULT_LIMITS),
    "empty_section": (lambda d: d["sections"][0].update(rows=[]), DEFAULT_LIMITS),
    "empty_row": (_add_empty_row, DEFAULT_LIMITS),
    "empty_table": (lambda d: _add_tables(d, _table("T1", "T1", 500, 500, seats=0)), DEFAULT_LIMITS),
    "non_finite_coordinate": (lambda d: _seats(d)[1].update(position=[math.nan, 100]), DEFAULT_LIMITS),
    "coordinate_out_of_range": (lambda d: _seats(d)[1].update(position=[2e7, 100]), DEFAULT_LIMITS),
    "seat_size_invalid": (lambda d: _seats(d)[1].update(size=-1.0), DEFAULT_LIMITS),
    "table_radius_invalid": (
        lambda d: _add_tables(d, {**_table("T1", "T1", 500, 500), "radius": 0}),
        DEFAULT_LIMITS,
    ),
    "ga_capacity_invalid": (lambda d: d["ga_areas"][0].update(capacity=0), DEFAULT_LIMITS),
    "invalid_polygon": (
        lambda d: d["sections"][0].update(outline=[[0, 0], [1000, 1000], [1000, 0], [0, 1000]]),
        DEFAULT_LIMITS,
    ),
    "seat_outside_section": (lambda d: _seats(d)[2].update(position=[990, 100]), DEFAULT_LIMITS),
    "table_outside_section": (
        lambda d: _add_tables(d, {**_table("T1", "T1", 500, 500), "center": [980, 500]}),
        DEFAULT_LIMITS,
    ),
    "seats_overlap": (lambda d: _seats(d)[1].update(position=[120, 100]), DEFAULT_LIMITS),
    "ga_area_overlap": (
        lambda d: d["ga_areas"][0].update(outline=[[900, 0], [1500, 0], [1500, 400], [900, 400]]),
        DEFAULT_LIMITS,
    ),
}


STAGE: Doc = {"id": "STAGE", "kind": "stage", "outline": [[0, -300], [1000, -300], [1000, -100], [0, -100]]}


def test_areas_are_drawings_that_may_overlap_anything() -> None:
    doc = base()
    thrust = {"id": "THRUST", "label": "", "outline": [[400, -150], [600, -150], [600, 50], [400, 50]]}
    doc["areas"] = [STAGE, thrust]  # the thrust reaches into section A; no label is fine
    assert validate(build(doc)).ok


def test_areas_are_checked_like_outlines_and_share_the_area_ids() -> None:
    doc = base()
    bowtie = {"id": "BAR", "outline": [[0, 2000], [100, 2100], [100, 2000], [0, 2100]]}
    doc["areas"] = [{**STAGE, "id": "G"}, bowtie, {"id": "FAR", "outline": [[0, 0], [2e7, 0], [0, 10]]}]
    report = validate(build(doc))
    assert [(v.code, v.path) for v in report.violations] == [
        ("duplicate_area_id", "areas[0].id"),
        ("invalid_polygon", "areas[1].outline"),
        ("coordinate_out_of_range", "areas[2].outline[1]"),
    ]
    assert "reuses the id of ga_areas[0]" in report.violations[0].message


def test_base_map_is_valid() -> None:
    assert validate(build(base())).ok
    assert _add_tables_valid().ok


def _add_tables_valid() -> Any:
    doc = base()
    _add_tables(doc, _table("T1", "T1", 500, 500), _table("T2", "T2", 500, 800))
    _add_row(doc, "A-2", "2")
    return validate(build(doc))


@pytest.mark.parametrize(
    ("where", "text", "code"),
    [
        ("name", "Hall\x00", "control_character"),
        ("name", "\u200b\u200b", "empty_label"),
        ("name", "", "empty_label"),
        ("section", "Block\nA", "control_character"),
        ("section", "\u2800", "empty_label"),
        ("row", "\u202eA", "control_character"),
        ("seat", "\ufeff", "empty_label"),
        ("seat", "\u3164", "empty_label"),
        ("seat", "7\x1b[31m", "control_character"),
        ("category", "\u00a0", "empty_label"),
        ("ga", "Floor\u2028", "control_character"),
    ],
)
def test_control_characters_and_invisible_labels(where: str, text: str, code: str) -> None:
    doc = base()
    target = {
        "name": doc,
        "section": doc["sections"][0],
        "row": doc["sections"][0]["rows"][0],
        "seat": _seats(doc)[1],
        "category": doc["categories"][0],
        "ga": doc["ga_areas"][0],
    }[where]
    target["name" if where == "name" else "label"] = text
    assert [v.code for v in validate(build(doc)).violations] == [code]


@pytest.mark.parametrize("text", ["Gäste 🎟", "👩\u200d👩\u200d👧", "می\u200cخواهم", "A\u00adB"])
def test_visible_text_with_format_characters_is_fine(text: str) -> None:
    doc = base()
    doc["name"] = text
    _seats(doc)[1]["label"] = text
    assert validate(build(doc)).ok


def test_every_code_has_a_case() -> None:
    assert set(CASES) | {"upload_too_large"} == VIOLATION_CODES


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_violation_is_reported_alone(code: str) -> None:
    mutate, limits = CASES[code]
    doc = base()
    mutate(doc)
    assert codes(doc, limits) == {code}


def test_reports_every_violation_at_once() -> None:
    doc = base()
    wanted = [
        "duplicate_seat_label",
        "unknown_category",
        "seats_overlap",
        "ga_capacity_invalid",
        "non_finite_coordinate",
    ]
    for code in wanted:
        CASES[code][0](doc)
    # The overlap case moved seat 2 onto seat 1; put the NaN on seat 3 instead.
    _seats(doc)[1]["position"] = [120, 100]
    _seats(doc)[2]["position"] = [math.nan, 100]
    assert codes(doc) == set(wanted)


def test_violation_names_the_element() -> None:
    doc = base()
    _seats(doc)[1]["position"] = [120, 100]
    report = validate(build(doc))
    first, second = report.violations
    assert (first.code, first.path, first.element_id) == (
        "seats_overlap",
        "sections[0].rows[0].seats[0]",
        "A-1-1",
    )
    assert second.path == "sections[0].rows[0].seats[1]"
    assert "'A-1-1'" in first.message
    assert "'A-1-2'" in first.message
    assert "row '1'" in first.message


def test_cap_keeps_the_first_violations_and_counts_all() -> None:
    doc = base()
    _seats(doc)[:] = [_seat(f"A-1-{k}", str(k), 500, 500) for k in range(50)]
    report = validate(build(doc), Limits(max_violations=10))
    assert len(report.violations) == 10
    assert report.total == 50
    assert {v.code for v in report.violations} == {"seats_overlap"}


def test_touching_seats_and_edges_are_fine() -> None:
    doc = base()
    _seats(doc)[:] = [
        _seat("A-1-1", "1", 25, 100),
        _seat("A-1-2", "2", 75, 100),
        _seat("A-1-3", "3", 975, 975),
    ]
    doc["ga_areas"][0]["outline"] = [[1000, 0], [1500, 0], [1500, 400], [1000, 400]]
    assert validate(build(doc)).ok


def test_variable_sizes_overlap_exactly() -> None:
    doc = base()
    # Wheelchair space (90) next to a companion seat (50): 70 apart touches, 69 overlaps.
    _seats(doc)[:] = [_seat("W", "W1", 100, 100, size=90.0, wheelchair=True), _seat("C", "C1", 170, 100)]
    assert validate(build(doc)).ok
    _seats(doc)[1]["position"] = [169, 100]
    assert codes(doc) == {"seats_overlap"}


def test_bad_default_seat_size_is_reported_once() -> None:
    doc = base()
    doc["seat_size"] = 0.0
    report = validate(build(doc))
    assert [(v.code, v.path) for v in report.violations] == [("seat_size_invalid", "seat_size")]


def test_non_finite_focal_point() -> None:
    doc = base()
    doc["focal_point"] = [math.inf, 0]
    report = validate(build(doc))
    assert [(v.code, v.path) for v in report.violations] == [("non_finite_coordinate", "focal_point")]


def test_degenerate_polygons() -> None:
    doc = base()
    doc["ga_areas"][0]["outline"] = [[1100, 0], [1500, 0]]
    doc["sections"][0]["outline"] = [[0, 0], [500, 500], [1000, 1000]]
    report = validate(build(doc))
    assert [v.code for v in report.violations] == ["invalid_polygon", "invalid_polygon"]
    assert "at least 3" in report.violations[1].message


def test_decode_and_validate_returns_the_map() -> None:
    seatmap = parse_and_validate(msgspec.json.encode(base()))
    assert seatmap == build(base())


def test_decode_errors_carry_msgspec_path() -> None:
    doc = base()
    doc["sections"][0]["rows"][0]["seats"][2]["id"] = "bad id"
    with pytest.raises(SeatMapDecodeError) as info:
        parse_and_validate(msgspec.json.encode(doc))
    assert info.value.path == "$.sections[0].rows[0].seats[2].id"
    assert "$.sections[0].rows[0].seats[2].id" in info.value.message


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b"null", b'{"name": "x"}', b"\xff\xfe", b'{"name": "x", "categories": [], "x": 1}'],
)
def test_malformed_documents_raise_decode_errors(data: bytes) -> None:
    with pytest.raises(SeatMapDecodeError) as info:
        parse_and_validate(data)
    assert info.value.path.startswith("$")


def test_invalid_maps_raise_with_violations() -> None:
    doc = base()
    CASES["seats_overlap"][0](doc)
    with pytest.raises(SeatMapInvalid) as info:
        parse_and_validate(msgspec.json.encode(doc))
    assert info.value.total == 2
    assert [v.code for v in info.value.violations] == ["seats_overlap", "seats_overlap"]
    assert "overlaps" in str(info.value)


def test_byte_cap_is_checked_before_decoding() -> None:
    with pytest.raises(SeatMapInvalid) as info:
        parse_and_validate(b"{" * 100, "native", Limits(max_upload_bytes=99))
    assert [v.code for v in info.value.violations] == ["upload_too_large"]


def test_caps_skip_seat_geometry() -> None:
    doc = base()
    _seats(doc)[:] = [_seat(f"A-1-{k}", str(k), 500, 500) for k in range(5)]
    assert codes(doc, Limits(max_seats=4)) == {"too_many_seats"}


def test_stadium_validates_clean() -> None:
    # how long it takes is a figure of scripts.bench.seatmap, not an assertion
    report = validate(stadium())
    assert report.ok, report.violations[:3]


def test_broken_stadium_reports_all_and_caps() -> None:
    doc = msgspec.to_builtins(stadium())
    for section in doc["sections"][:3]:
        section["rows"][0]["seats"][0]["position"] = section["rows"][0]["seats"][1]["position"]
    report = validate(msgspec.convert(doc, SeatMap))
    assert report.total == 6
    assert {v.code for v in report.violations} == {"seats_overlap"}


# --- the overlap search itself ----------------------------------------------------------------


def _brute_force(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    overlapping: np.ndarray = d < (r[:, None] + r[None]) * (1 - 1e-9)
    np.fill_diagonal(overlapping, False)
    return overlapping


@pytest.mark.parametrize("seed", range(40))
def test_overlap_partners_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 250))
    spread = float(rng.choice([1.0, 30.0, 300.0, 3000.0]))
    x = np.round(rng.random(n) * spread, int(rng.integers(0, 3)))
    y = np.round(rng.random(n) * spread, int(rng.integers(0, 3)))
    if seed % 3 == 0:  # a stack of seats on one point
        x[: n // 2], y[: n // 2] = x[0], y[0]
    r = rng.choice([0.5, 3.0, 25.0, 45.0, 500.0], size=n) * rng.choice([1.0, 1.3], size=n)
    partner = overlap_partners(x, y, r)
    expected = _brute_force(x, y, r)
    assert np.array_equal(partner >= 0, expected.any(axis=1))
    found = np.flatnonzero(partner >= 0)
    assert expected[found, partner[found]].all()


def test_overlap_search_answers_on_pathological_maps() -> None:
    """Every seat stacked on one point, and a dense grid with a few huge radii: each seat
    finds a partner (how long it takes is a figure of scripts.bench.seatmap)."""
    n = 100_000
    stacked = overlap_partners(np.zeros(n), np.zeros(n), np.full(n, 25.0))
    grid = np.arange(300.0)
    gx, gy = np.meshgrid(grid, grid)
    radius = np.full(gx.size, 25.0)
    radius[::997] = 2500.0  # metres drawn as centimetres, plus a few typo'd sizes
    dense = overlap_partners(gx.ravel(), gy.ravel(), radius)
    assert (stacked >= 0).all()
    assert (dense >= 0).all()
