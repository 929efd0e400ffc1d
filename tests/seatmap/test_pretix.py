"""Importing pretix seating plans."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from seatmap.bestavailable import BestAvailableRequest, best_available
from seatmap.errors import SeatMapDecodeError, StageNotFound
from seatmap.index import SeatIndex
from seatmap.model import Point, SeatMap, iter_seats, json_decoder, json_encoder
from seatmap.pretix import from_pretix, import_pretix
from seatmap.validation import validate

FIXTURE = Path(__file__).parent / "data" / "pretix_small.json"
IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def _plan() -> dict[str, Any]:
    plan: dict[str, Any] = json.loads(FIXTURE.read_text())
    return plan


def _import(plan: dict[str, Any]) -> SeatMap:
    return from_pretix(json.dumps(plan).encode())


def test_fixture_imports_and_validates() -> None:
    seatmap = from_pretix(FIXTURE.read_bytes())
    assert validate(seatmap).ok
    assert json_decoder.decode(json_encoder.encode(seatmap)) == seatmap  # schema-valid output
    assert seatmap.name == "Studiobühne am Markt"
    assert len(iter_seats(seatmap)) == 5 * 11 + 2 * 6 + 2 * 6


def test_zones_become_sections_and_seatless_zones_become_areas() -> None:
    seatmap = from_pretix(FIXTURE.read_bytes())
    assert [(s.id, s.label) for s in seatmap.sections] == [
        ("parkett", "Parkett"),
        ("rang-links", "Rang links"),
        ("rang-rechts", "Rang rechts"),
    ]
    assert [r.id for r in seatmap.sections[0].rows] == [f"parkett-{n}" for n in range(1, 6)]
    # The "Bühne" zone: its rectangle is drawn (the text on it is its label) and is the stage.
    [stage] = seatmap.areas
    assert (stage.id, stage.label, stage.kind, stage.color) == ("stage", "Bühne", "stage", "#333333")
    assert [(p.x, p.y) for p in stage.outline] == [(300, 20), (700, 20), (700, 100), (300, 100)]
    assert seatmap.focal_point == Point(500, 60)


def test_categories_are_slugified_and_keep_their_names() -> None:
    seatmap = from_pretix(FIXTURE.read_bytes())
    assert [(c.key, c.label, c.color) for c in seatmap.categories] == [
        ("parkett", "Parkett", "#2f6690"),
        ("parkett-premium", "Parkett Premium", "#f5a623"),
        ("rang", "Rang", "#81c3d7"),
    ]
    first = seatmap.sections[0].rows[0].seats[0]
    assert first.category == "parkett-premium"


def test_positions_are_zone_plus_row_plus_seat() -> None:
    plan = _plan()
    zone = plan["zones"][1]
    row = zone["rows"][3]
    seat = row["seats"][4]
    expected = (
        zone["position"]["x"] + row["position"]["x"] + seat["position"]["x"],
        zone["position"]["y"] + row["position"]["y"] + seat["position"]["y"],
    )
    imported = {p.seat.id: p.seat for p in iter_seats(_import(plan))}[seat["seat_guid"]]
    assert (imported.position.x, imported.position.y) == expected
    assert imported.label == seat["seat_number"]


def test_seat_radius_becomes_size() -> None:
    seatmap = from_pretix(FIXTURE.read_bytes())
    assert seatmap.seat_size == 20
    rang = seatmap.sections[1]
    assert rang.rows[1].seats[0].size == 24
    assert rang.rows[0].seats[0].size is None


def test_guids_are_sanitised_deterministically_without_collisions() -> None:
    plan = _plan()
    row = plan["zones"][1]["rows"][0]
    # Three guids that sanitise alike, and one valid guid that looks like a sanitised one.
    for seat, guid in zip(row["seats"], ["a b", "a/b", "a_b", "a:b"], strict=False):
        seat["seat_guid"] = guid
    first = [p.seat.id for p in iter_seats(_import(plan))]
    assert first == [p.seat.id for p in iter_seats(_import(plan))]
    assert len(set(first)) == len(first)
    assert all(IDENTIFIER.match(i) for i in first)
    assert first[:4] == [first[0], first[1], "a_b", "a:b"]
    assert first[0].startswith("a_b.")
    assert first[1].startswith("a_b.")


def test_guid_collision_with_a_real_guid_is_avoided() -> None:
    plan = _plan()
    seats = plan["zones"][1]["rows"][0]["seats"]
    seats[0]["seat_guid"] = "x y"
    probe = iter_seats(_import(plan))[0].seat.id
    seats[1]["seat_guid"] = probe  # now a valid guid equals the id "x y" would get
    ids = [p.seat.id for p in iter_seats(_import(plan))]
    assert probe.startswith("x_y.")
    assert ids[1] == probe
    assert len(set(ids)) == len(ids)
    # The hash suffix grew to step around the taken id.
    assert ids[0].startswith("x_y.")
    assert len(ids[0]) > len(probe)


def test_long_guids_fit_the_identifier_pattern() -> None:
    plan = _plan()
    plan["zones"][1]["rows"][0]["seats"][0]["seat_guid"] = "ä" * 200
    ids = [p.seat.id for p in iter_seats(_import(plan))]
    assert all(IDENTIFIER.match(i) for i in ids)


def test_outline_comes_from_a_background_area_else_the_seats() -> None:
    seatmap = from_pretix(FIXTURE.read_bytes())
    parkett = shapely.Polygon([(p.x, p.y) for p in seatmap.sections[0].outline])
    # The fixture's Parkett background rectangle: zone (300, 180) + (-20, -20), 400 x 180.
    assert parkett.bounds == (280.0, 160.0, 680.0, 340.0)
    rang = shapely.Polygon([(p.x, p.y) for p in seatmap.sections[1].outline])
    seats = seatmap.sections[1].rows
    xs = [s.position.x for r in seats for s in r.seats]
    assert rang.bounds[0] < min(xs) - 10
    assert rang.bounds[2] > max(xs) + 10


def test_distant_areas_do_not_stretch_the_outline() -> None:
    plan = _plan()
    plan["zones"][2]["areas"] = [
        {"shape": "circle", "position": {"x": 5000, "y": 5000}, "circle": {"radius": 50}},
        {
            "shape": "text",
            "position": {"x": 0, "y": 0},
            "text": {"text": "Rang", "position": {"x": 0, "y": 0}},
        },
    ]
    outline = _import(plan).sections[1].outline
    assert max(p.x for p in outline) < 1000


def test_rotated_area_geometry() -> None:
    plan = _plan()
    # A 100 x 10 bar rotated 90° clockwise around its corner hangs down from the first seat.
    plan["zones"][2]["areas"] = [
        {
            "shape": "rectangle",
            "position": {"x": 10, "y": 0},
            "rotation": 90,
            "rectangle": {"width": 300, "height": 10},
        }
    ]
    outline = shapely.Polygon([(p.x, p.y) for p in _import(plan).sections[1].outline])
    assert outline.bounds[3] == pytest.approx(420 + 300)


def test_unknown_category_is_reported_by_validation() -> None:
    plan = _plan()
    plan["zones"][1]["rows"][0]["seats"][0]["category"] = "Loge"
    report = validate(_import(plan))
    assert [(v.code, v.element_id) for v in report.violations] == [("unknown_category", "parkett-1-1")]
    assert "unknown:loge" in report.violations[0].message


def test_duplicate_guids_are_left_for_validation() -> None:
    plan = _plan()
    seats = plan["zones"][1]["rows"][0]["seats"]
    seats[1]["seat_guid"] = seats[0]["seat_guid"]
    assert {v.code for v in validate(_import(plan)).violations} == {"duplicate_seat_id"}


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (b"not json", "$"),
        (b"[]", "$"),
        (b'{"name": "x", "categories": []}', "$"),
        (
            b'{"name": "x", "categories": [], "zones": [{"rows": [{"row_number": "1", "seats": [{}]}]}]}',
            "$.zones[0].rows[0].seats[0]",
        ),
        (b'{"name": "x", "categories": [{"name": 3}], "zones": []}', "$.categories[0].name"),
        (
            b'{"name": "x", "categories": [], "zones": [{"position": {"x": 1e999, "y": 0}, "rows": []}]}',
            "$.zones[0].position.x",
        ),
    ],
)
def test_malformed_plans_raise_decode_errors(data: bytes, path: str) -> None:
    with pytest.raises(SeatMapDecodeError) as info:
        from_pretix(data)
    assert info.value.path == path


def _number_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, child in value.items() for p in _number_paths(child, (*prefix, key))]
    if isinstance(value, list):
        return [p for index, child in enumerate(value) for p in _number_paths(child, (*prefix, index))]
    return [prefix] if isinstance(value, int | float) and not isinstance(value, bool) else []


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_numbers_import_or_raise_decode_errors(data: st.DataObject) -> None:
    plan = _plan()
    paths = _number_paths(plan)
    numbers = st.floats(-1e300, 1e300) | st.integers(-(2**40), 2**40) | st.sampled_from([0, -1, 1e-300])
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=6)):
        parent: Any = plan
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(numbers)
    with contextlib.suppress(SeatMapDecodeError):
        validate(_import(plan))


# --- the stage and the focal point -----------------------------------------------------------


def _hall(stage: str, *, name: str = "Bühne", text: str = "") -> dict[str, Any]:
    """A sports-hall block of 6 rows x 12 seats with the stage at its ``top``, ``bottom`` or ``left``.

    Rows run parallel to the stage; a small bar is drawn too. The block is centred on
    (300, 300) and the stage lies 100 px beyond its edge.
    """
    side = stage == "left"
    rows = []
    for r in range(6):
        seats = []
        for k in range(12):
            along, across = k * 25 - 137.5, r * 30 - 75
            x, y = (across, along) if side else (along, across)
            seats.append(
                {"seat_guid": f"r{r}s{k}", "seat_number": str(k + 1), "position": {"x": x, "y": y},
                 "category": "Standard"}
            )  # fmt: skip
        rows.append({"row_number": str(r + 1), "position": {"x": 0, "y": 0}, "seats": seats})
    stage_rect = {
        "top": ({"x": 100, "y": 40}, 400, 80),
        "bottom": ({"x": 100, "y": 480}, 400, 80),
        "left": ({"x": 40, "y": 100}, 80, 400),
    }[stage]
    position, width, height = stage_rect
    stage_areas: list[dict[str, Any]] = [
        {"shape": "rectangle", "position": position, "rectangle": {"width": width, "height": height}}
    ]
    if text:
        centre = {"x": position["x"] + width / 2, "y": position["y"] + height / 2}
        stage_areas.append({"shape": "text", "position": centre, "text": {"text": text}})
    block = {"name": "Block A", "position": {"x": 300, "y": 300}, "rows": rows, "areas": []}
    bar = {"name": "Bar", "position": {"x": 0, "y": 0}, "rows": [], "areas": [
        {"shape": "circle", "position": {"x": 560, "y": 560}, "circle": {"radius": 15}}
    ]}  # fmt: skip
    return {
        "name": "Sporthalle",
        "categories": [{"name": "Standard", "color": "#336699"}],
        "zones": [{"name": name, "position": {"x": 0, "y": 0}, "rows": [], "areas": stage_areas}, block, bar],
    }


def _first_pick_rows(seatmap: SeatMap) -> set[str]:
    index = SeatIndex(seatmap)
    free = np.ones(len(index), dtype=np.bool_)
    best = best_available(index, free, BestAvailableRequest(quantity=4))[0]
    return {index.placed[o].group_id for o in best.ordinals}


@pytest.mark.parametrize(
    ("stage", "name", "text"),
    [
        ("top", "Bühne", ""),  # named in German
        ("bottom", "Zone 1", "STAGE"),  # the zone has no useful name; the text on it does
        ("left", "", ""),  # no name at all: the only large drawn area
    ],
)
def test_best_available_starts_at_the_row_nearest_the_stage(stage: str, name: str, text: str) -> None:
    imported = import_pretix(json.dumps(_hall(stage, name=name, text=text)).encode())
    seatmap = imported.seatmap
    assert validate(seatmap).ok
    assert imported.warnings == []
    assert [a.kind for a in seatmap.areas] == ["stage", "other"]  # the bar is drawn, not the stage
    assert seatmap.focal_point == {
        "top": Point(300, 80), "bottom": Point(300, 520), "left": Point(80, 300)
    }[stage]  # fmt: skip
    nearest_row = {"top": "block-a-1", "bottom": "block-a-6", "left": "block-a-1"}[stage]
    assert _first_pick_rows(seatmap) == {nearest_row}


def test_without_the_stage_the_middle_of_the_block_sells_first() -> None:
    """What every import did before: no focal point, so best available aims at the map's centre."""
    plan = _hall("top", name="Zone 1")
    plan["zones"][0]["areas"][0]["rectangle"] = {"width": 40, "height": 20}  # too small to guess
    imported = import_pretix(json.dumps(plan).encode())
    assert imported.seatmap.focal_point is None
    assert imported.stage is None
    [warning] = imported.warnings
    assert "no stage recognised among 2 drawn area(s) (areas: 'Bar', 'Zone 1')" in warning
    assert _first_pick_rows(imported.seatmap) <= {"block-a-3", "block-a-4"}


@pytest.mark.parametrize(
    "name", ["Stage", "Hauptbühne", "Buehne", "Scène", "Escenario", "Palco", "Scena", "Podium", "Spielfeld"]
)
def test_stage_names_in_common_languages(name: str) -> None:
    plan = _hall("top", name=name)
    plan["zones"][0]["areas"][0]["rectangle"] = {"width": 40, "height": 20}  # small: only the name tells
    imported = import_pretix(json.dumps(plan).encode())
    assert imported.stage == name
    assert imported.seatmap.areas[0].kind == "stage"


def test_the_organizer_names_the_stage_or_sets_the_focal_point() -> None:
    data = json.dumps(_hall("top", name="Bühne")).encode()
    bar = import_pretix(data, stage_area="bar")  # case-insensitive: the zone named "Bar"
    assert bar.stage == "Bar"
    assert [a.kind for a in bar.seatmap.areas] == ["other", "stage"]
    assert bar.seatmap.focal_point == Point(560, 560)
    pinned = import_pretix(data, focal_point=Point(1, 2))
    assert pinned.seatmap.focal_point == Point(1, 2)
    assert pinned.seatmap.areas[0].kind == "stage"  # still drawn as the stage
    with pytest.raises(StageNotFound, match=r"no drawn area is named 'Orchestra'.*'Bar', 'Bühne'"):
        import_pretix(data, stage_area="Orchestra")


def test_areas_of_a_seated_zone_away_from_its_seats_are_drawn() -> None:
    plan = _hall("top")
    stage_zone = plan["zones"].pop(0)
    block = plan["zones"][0]
    # One zone holding both: the stage rectangle is relative to the block's position.
    block["areas"] = [
        {**area, "position": {"x": area["position"]["x"] - 300, "y": area["position"]["y"] - 300}}
        for area in stage_zone["areas"]
    ] + [{"shape": "text", "position": {"x": 0, "y": -220}, "text": {"text": "BÜHNE"}}]
    imported = import_pretix(json.dumps(plan).encode())
    assert imported.stage == "BÜHNE"
    assert imported.seatmap.focal_point == Point(300, 80)
    assert max(p.y for p in imported.seatmap.sections[0].outline) > 370  # the outline is still the seats'
    assert min(p.y for p in imported.seatmap.sections[0].outline) > 200
