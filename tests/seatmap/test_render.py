from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET

import msgspec
import pytest

from seatmap.index import SeatIndex, UnknownSeat
from seatmap.model import Area, Category, GeneralAdmissionArea, Point, Row, Seat, SeatMap, Section
from seatmap.render import (
    DEFAULT_PIXELS,
    MAX_PIXELS,
    STATUS_COLORS,
    RenderError,
    RenderUnavailable,
    output_size,
    render_pdf,
    render_png,
    render_svg,
)
from tests.seatmap.maps import CATEGORIES, ga_map, grid_map, table_map

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def seats(root: ET.Element) -> dict[str, ET.Element]:
    return {el.attrib["data-seat"]: el for el in root.iter(f"{SVG}circle") if "data-seat" in el.attrib}


def texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter(f"{SVG}text")]


def test_every_seat_is_an_addressable_circle() -> None:
    seatmap = grid_map(rows=2, seats_per_row=3, sections=2, categories_by_section=["std", "vip"])
    root = parse(render_svg(seatmap))
    circles = seats(root)
    index = SeatIndex(seatmap)
    assert set(circles) == set(index.ordinal_of)
    first = circles["s0-0-0"]
    assert first.attrib["id"] == "seat-s0-0-0"
    assert first.attrib["data-ordinal"] == "0"
    assert (float(first.attrib["cx"]), float(first.attrib["cy"]), float(first.attrib["r"])) == (25, 100, 25)
    assert "cat-0" in first.attrib["class"].split()
    assert "cat-1" in circles["s1-0-0"].attrib["class"].split()
    style = root.find(f"{SVG}style")
    assert style is not None
    assert ".cat-1{fill:#d62728}" in (style.text or "")
    assert "VIP" in texts(root)  # category legend


def test_viewbox_covers_the_map() -> None:
    index = SeatIndex(grid_map(rows=2, seats_per_row=3))
    x, y, w, h = map(float, parse(render_svg(index)).attrib["viewBox"].split())
    x0, y0, x1, y1 = index.bounds
    assert x < x0
    assert y < y0
    assert x + w > x1
    assert y + h > y1


def test_sections_rows_tables_ga_and_stage() -> None:
    root = parse(render_svg(table_map()))
    assert any(el.attrib.get("data-section") == "hall" for el in root.iter(f"{SVG}g"))
    assert {el.attrib["data-table"] for el in root.iter(f"{SVG}g") if "data-table" in el.attrib} == {
        "T1",
        "T2",
    }
    all_text = texts(root)
    assert {"HALL", "Table 1", "Table 2", "A", "Stage"} <= set(all_text)
    row_label = next(el for el in root.iter(f"{SVG}text") if el.attrib.get("data-row") == "R0")
    assert float(row_label.attrib["x"]) < 25  # before the first seat, along the row
    ga = parse(render_svg(ga_map()))
    assert "Floor (1200)" in texts(ga)
    assert "Stage" not in texts(ga)  # no focal point drawn, none rendered
    area = next(el for el in ga.iter(f"{SVG}g") if "data-ga" in el.attrib)
    assert area.attrib == {"data-ga": "floor", "data-capacity": "1200"}


def test_status_colouring_with_legend() -> None:
    seatmap = grid_map(rows=1, seats_per_row=4)
    status: dict[int | str, str] = {0: "sold", "s0-0-1": "held", 3: "not_for_sale"}
    root = parse(render_svg(seatmap, status))
    classes = {sid: el.attrib["class"].split() for sid, el in seats(root).items()}
    assert "st-sold" in classes["s0-0-0"]
    assert "st-held" in classes["s0-0-1"]
    assert "st-free" in classes["s0-0-2"]  # not in the mapping: free
    assert "st-not_for_sale" in classes["s0-0-3"]
    style = root.find(f"{SVG}style")
    assert style is not None
    assert f".st-sold{{fill:{STATUS_COLORS['sold']}}}" in (style.text or "")
    assert {"Free", "Held", "Sold", "Blocked", "Not for sale"} <= set(texts(root))
    assert "Standard" not in texts(root)


def test_bad_status_requests() -> None:
    seatmap = grid_map(rows=1, seats_per_row=2)
    with pytest.raises(RenderError, match="unknown seat status"):
        render_svg(seatmap, {0: "reserved"})
    with pytest.raises(UnknownSeat):
        render_svg(seatmap, {"nope": "sold"})
    with pytest.raises(UnknownSeat):
        render_svg(seatmap, {7: "sold"})


HOSTILE = "<script>alert(\"x\")</script> & 'quotes' ]]> \x00\x1b"


def test_hostile_labels_are_escaped() -> None:
    # Built directly (not decoded), so nothing upstream has filtered these strings.
    seat = Seat(id='a"><script>', label=HOSTILE, position=Point(100, 100), category="evil")
    section = Section(
        id="s",
        label=HOSTILE,
        outline=[Point(0, 0), Point(200, 0), Point(200, 200), Point(0, 200)],
        rows=[Row(id="r", label=HOSTILE, seats=[seat])],
    )
    ga = GeneralAdmissionArea(
        id="g",
        label=HOSTILE,
        outline=[Point(0, 300), Point(100, 300), Point(100, 400)],
        capacity=5,
        category="std",
    )
    seatmap = SeatMap(
        name=HOSTILE,
        categories=[*CATEGORIES, Category("evil", HOSTILE, "red;}svg{display:none")],
        sections=[section],
        ga_areas=[ga],
    )
    svg = render_svg(seatmap)
    root = parse(svg)
    assert not list(root.iter("script"))
    assert not list(root.iter(f"{SVG}script"))
    clean = HOSTILE.replace("\x00", "").replace("\x1b", "")
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == clean
    assert texts(root).count(clean) >= 3  # section, row and legend labels, verbatim
    assert f"{clean} (5)" in texts(root)
    assert seats(root)['a"><script>'].attrib["id"] == 'seat-a"><script>'
    assert "display:none" not in svg  # an invalid colour never reaches the stylesheet


def test_png_needs_cairosvg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # makes the import fail
    with pytest.raises(RenderUnavailable, match="cairosvg"):
        render_png(grid_map(rows=1, seats_per_row=2))
    with pytest.raises(RenderUnavailable, match="PDF rendering needs"):
        render_pdf(grid_map(rows=1, seats_per_row=2))


@pytest.mark.skipif(importlib.util.find_spec("cairosvg") is None, reason="cairosvg not installed")
def test_png_when_cairosvg_is_installed() -> None:
    png = render_png(grid_map(rows=1, seats_per_row=2), width=200)
    assert png.startswith(b"\x89PNG")


def test_a_large_map_renders_every_seat() -> None:
    # how long it takes is a figure of scripts.bench.seatmap_spatial, not an assertion
    index = SeatIndex(grid_map(rows=40, seats_per_row=50, sections=10))  # 20k seats
    svg = render_svg(index, {o: "sold" for o in range(0, len(index), 2)})
    assert svg.count("<circle") >= 20_000


needs_cairo = pytest.mark.skipif(
    importlib.util.find_spec("cairosvg") is None, reason="cairosvg not installed"
)


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_output_size_keeps_proportions_within_bounds() -> None:
    assert output_size(30_000, 15_000) == (DEFAULT_PIXELS, DEFAULT_PIXELS // 2)
    assert output_size(15_000, 30_000) == (DEFAULT_PIXELS // 2, DEFAULT_PIXELS)
    assert output_size(300, 150, width=600) == (600, 300)
    assert output_size(300, 150, height=600) == (1200, 600)
    assert output_size(300, 150, width=600, height=100) == (200, 100)  # the largest that fits the box
    assert output_size(1e7, 1, height=5000) == (MAX_PIXELS, 1)  # a sliver stays within the cap
    for bad in ({"width": 0}, {"height": MAX_PIXELS + 1}, {"width": -5}):
        with pytest.raises(RenderError, match="pixels"):
            output_size(100, 100, **bad)


@needs_cairo
def test_png_and_pdf_are_scaled_to_the_requested_size() -> None:
    index = SeatIndex(grid_map(rows=2, seats_per_row=4))
    default = png_size(render_png(index))
    assert max(default) == DEFAULT_PIXELS
    assert png_size(render_png(index, width=300))[0] == 300
    assert png_size(render_png(index, height=300))[1] == 300
    assert render_pdf(index, width=300).startswith(b"%PDF")
    root = parse(render_svg(index, width=300))
    assert root.attrib["width"] == "300"
    assert "width" not in parse(render_svg(index)).attrib  # unsized unless asked


def _far_apart() -> SeatMap:
    """Two one-seat sections in opposite corners of the format's coordinate range."""

    def corner(i: int, x: float, y: float) -> Section:
        seat = Seat(id=f"s{i}", label="1", position=Point(x, y), category="std")
        outline = [Point(x - 60, y - 60), Point(x + 60, y - 60), Point(x + 60, y + 60), Point(x - 60, y + 60)]
        return Section(
            id=f"S{i}", label=f"S{i}", outline=outline, rows=[Row(id=f"r{i}", label="1", seats=[seat])]
        )

    return SeatMap(
        name="Edges",
        categories=CATEGORIES,
        sections=[corner(0, -1e7 + 60, -1e7 + 60), corner(1, 1e7 - 60, 1e7 - 60)],
    )


@needs_cairo
def test_any_valid_map_renders_even_at_the_coordinate_limits() -> None:
    from seatmap.validation import validate

    seatmap = _far_apart()
    assert validate(seatmap).ok
    width, height = png_size(render_png(seatmap))
    assert width <= DEFAULT_PIXELS
    assert height == DEFAULT_PIXELS  # the legend makes it a little taller than wide
    assert render_pdf(seatmap).startswith(b"%PDF")


def test_labels_are_drawn_above_the_seats_and_areas_below() -> None:
    stage = Area(
        "STAGE", [Point(0, -200), Point(500, -200), Point(500, -50), Point(0, -50)], "Bühne", "stage"
    )
    bar = Area("BAR", [Point(600, 0), Point(700, 0), Point(700, 50)], color="#ffcc00")
    seatmap = msgspec.structs.replace(grid_map(rows=2, seats_per_row=4), areas=[stage, bar])
    root = parse(render_svg(seatmap))
    groups = [el.attrib.get("class") for el in root if el.tag == f"{SVG}g"]
    assert groups.index("areas") < groups.index("sections") < groups.index("seats") < groups.index("labels")
    labels = next(el for el in root if el.attrib.get("class") == "labels")
    label_texts = [el.text for el in labels if "halo" not in el.attrib.get("class", "")]
    assert label_texts == ["Bühne", "S0"]  # the bar has no label
    drawn = {
        el.attrib["data-area"]: el.attrib["data-kind"]
        for el in root.iter(f"{SVG}g")
        if "data-area" in el.attrib
    }
    assert drawn == {"STAGE": "stage", "BAR": "other"}
    assert "Stage" not in texts(root)  # the stage area is drawn: no generic "Stage" marker
    bar_polygon = root.find(f".//{SVG}g[@data-area='BAR']/{SVG}polygon")
    assert bar_polygon is not None
    assert bar_polygon.attrib["style"] == "fill:#ffcc00"
