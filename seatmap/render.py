"""Render a seat map to SVG (and to PNG when the optional ``cairosvg`` is installed).

The SVG is for people and for front-ends: every seat is a ``<circle>`` with
``id="seat-{seat id}"``, ``data-seat`` (the seat id) and ``data-ordinal``, so
a storefront can style and wire it up without re-deriving the layout. Sections,
tables and general-admission areas are ``<g>`` elements with ``data-section``,
``data-table`` and ``data-ga``. Colours come from CSS classes declared once in
a ``<style>`` block (``cat-{n}`` per category, ``st-{status}`` per status),
which keeps a 90k-seat stadium to a few megabytes.

Two colourings: by price category (the default), or by inventory status when
``status`` is given (seats missing from it are ``free``, as in the inventory).
Labels, names and ids are user input: all text is XML-escaped and stripped of
characters XML cannot carry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, Literal, get_args

import numpy as np
import shapely

from seatmap.index import SeatIndex
from seatmap.model import Point, SeatMap, focal_point

SeatStatus = Literal["free", "held", "sold", "blocked", "not_for_sale"]
STATUSES: tuple[SeatStatus, ...] = get_args(SeatStatus)
STATUS_COLORS: dict[SeatStatus, str] = {
    "free": "#2ca02c",
    "held": "#ff7f0e",
    "sold": "#7f7f7f",
    "blocked": "#d62728",
    "not_for_sale": "#d9d9d9",
}
STATUS_LABELS: dict[SeatStatus, str] = {
    "free": "Free",
    "held": "Held",
    "sold": "Sold",
    "blocked": "Blocked",
    "not_for_sale": "Not for sale",
}
UNKNOWN_CATEGORY_COLOR = "#bbbbbb"
# Sequential, colour-blind safe (viridis samples): earliest to latest in a heat map by time.
SHADE_COLORS = ("#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725")
UNSHADED_COLOR = "#e6e6e6"


@dataclass(frozen=True)
class Shading:
    """Seats coloured by a bucket instead of a status (a heat map by time of sale):
    ``buckets`` maps seat ordinals to 0..len(labels)-1 (at most len(SHADE_COLORS)),
    ``labels`` names each bucket in the legend; other seats are drawn grey as
    ``unshaded``."""

    buckets: Mapping[int, int]
    labels: tuple[str, ...]
    unshaded: str = "Not sold"


# Seats by ordinal or by id (or both) -> a SeatStatus; Mapping keys are invariant, hence the union.
StatusMap = Mapping[int, str] | Mapping[str, str] | Mapping[int | str, str]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Characters XML 1.0 cannot represent even escaped (a NUL in a label would make the file unparsable).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_AREA_FILL = {"stage": "#4d4d4d", "other": "#e0e0e0"}  # an area's colour unless it has its own
DEFAULT_PIXELS = 2400  # the longer side of a PNG or PDF when no size is asked for
MAX_PIXELS = 10_000  # per side: bounds the memory of one raster (10,000² pixels is 400 MB)


class RenderError(ValueError):
    """The render request itself is wrong (e.g. an unknown status)."""


class RenderUnavailable(RuntimeError):
    """PNG and PDF output need the optional ``cairosvg`` package, which is not installed."""


def xml_text(value: str) -> str:
    """``value`` made safe for XML text and attribute values."""
    return escape(_NOT_XML.sub("", value), quote=True)


def _num(v: float) -> str:
    return f"{v:.7g}"


def render_svg(
    source: SeatMap | SeatIndex,
    status: StatusMap | None = None,
    *,
    row_labels: bool = True,
    legend: bool = True,
    width: int | None = None,
    height: int | None = None,
    shading: Shading | None = None,
) -> str:
    """The map as an SVG document; ``status`` maps seat ordinals or seat ids to a :data:`SeatStatus`.

    Pass the version's cached :class:`SeatIndex` rather than the map to skip rebuilding it.
    ``width``/``height`` (pixels) give the document a size (see :func:`output_size`); by
    default it has only a ``viewBox`` and scales to wherever it is shown.
    """
    index = source if isinstance(source, SeatIndex) else SeatIndex(source)
    layout = _Layout(index, legend, status is not None, shading)
    size = ""
    if width is not None or height is not None:
        w, h = output_size(layout.width, layout.height, width, height)
        size = f' width="{w}" height="{h}"'
    return _svg(index, layout, status, row_labels, legend, size, shading)


def output_size(
    view_width: float, view_height: float, width: int | None = None, height: int | None = None
) -> tuple[int, int]:
    """Pixels for a drawing of ``view_width`` x ``view_height`` units, keeping its proportions.

    Both given: the largest size that fits in the box. One given: the other follows.
    Neither: the longer side is :data:`DEFAULT_PIXELS`. Each side is 1 to :data:`MAX_PIXELS`.
    """
    for name, value in (("width", width), ("height", height)):
        if value is not None and not 1 <= value <= MAX_PIXELS:
            raise RenderError(f"{name} must be 1-{MAX_PIXELS} pixels, not {value}")
    view_width, view_height = max(view_width, 1e-9), max(view_height, 1e-9)
    if width is None and height is None:
        scale = DEFAULT_PIXELS / max(view_width, view_height)
    elif height is None:
        scale = width / view_width if width is not None else 1.0
    elif width is None:
        scale = height / view_height
    else:
        scale = min(width / view_width, height / view_height)
    # A very long, thin map asked for by its short side: shrink until both sides fit.
    scale = min(scale, MAX_PIXELS / view_width, MAX_PIXELS / view_height)
    return max(1, min(MAX_PIXELS, round(view_width * scale))), max(
        1, min(MAX_PIXELS, round(view_height * scale))
    )


def render_png(
    source: SeatMap | SeatIndex,
    status: StatusMap | None = None,
    *,
    width: int | None = None,
    row_labels: bool = True,
    legend: bool = True,
    height: int | None = None,
    shading: Shading | None = None,
) -> bytes:
    """:func:`render_svg` rasterised by ``cairosvg`` on white, sized by :func:`output_size`."""
    cairosvg = _cairosvg("PNG")
    svg = _sized_svg(source, status, width, height, row_labels, legend, shading)
    png: bytes = cairosvg.svg2png(bytestring=svg.encode("utf-8"), background_color="white")
    return png


def render_pdf(
    source: SeatMap | SeatIndex,
    status: StatusMap | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    row_labels: bool = True,
    legend: bool = True,
) -> bytes:
    """:func:`render_svg` as a one-page PDF (vector; the page is sized like the PNG, in pixels)."""
    cairosvg = _cairosvg("PDF")
    svg = _sized_svg(source, status, width, height, row_labels, legend)
    pdf: bytes = cairosvg.svg2pdf(bytestring=svg.encode("utf-8"))
    return pdf


def _cairosvg(what: str) -> Any:
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: cairosvg present, libcairo missing
        raise RenderUnavailable(
            f"{what} rendering needs the optional 'cairosvg' package (and the cairo library); "
            "install it or use render_svg"
        ) from exc
    return cairosvg


def _sized_svg(
    source: SeatMap | SeatIndex,
    status: StatusMap | None,
    width: int | None,
    height: int | None,
    row_labels: bool,
    legend: bool,
    shading: Shading | None = None,
) -> str:
    """The SVG with a pixel size: the default one when neither side is given."""
    index = source if isinstance(source, SeatIndex) else SeatIndex(source)
    layout = _Layout(index, legend, status is not None, shading)
    w, h = output_size(layout.width, layout.height, width, height)
    return _svg(index, layout, status, row_labels, legend, f' width="{w}" height="{h}"', shading)


class _Layout:
    """The drawing's extent in map units (the map, a margin and the legend below it)."""

    def __init__(
        self, index: SeatIndex, legend: bool, by_status: bool, shading: Shading | None = None
    ) -> None:
        unit = index.seatmap.seat_size
        x0, y0, x1, y1 = index.bounds
        margin = 2 * unit
        self.x0, self.y0, self.x1, self.y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
        self.items = _legend_items(index, by_status) if shading is None else _shade_items(shading)
        self.width = self.x1 - self.x0
        self.font = max(unit, self.width / 60)
        legend_height = 2 * self.font * len(self.items) + self.font if legend else 0.0
        self.height = self.y1 - self.y0 + legend_height


def _svg(
    index: SeatIndex,
    layout: _Layout,
    status: StatusMap | None,
    row_labels: bool,
    legend: bool,
    size: str,
    shading: Shading | None = None,
) -> str:
    seatmap = index.seatmap
    unit = seatmap.seat_size
    seat_classes = _seat_classes(index, status) if shading is None else _shade_classes(index, shading)
    x0, y0, y1 = layout.x0, layout.y0, layout.y1
    # Smallest label size: legible (about 16 px) at the default raster size.
    min_font = max(layout.width, layout.height) / 150
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg"{size} '
        f'viewBox="{_num(x0)} {_num(y0)} {_num(layout.width)} {_num(layout.height)}">',
        f"<title>{xml_text(seatmap.name)}</title>",
        _style(index, unit, min_font),
    ]
    out += _areas(index)
    out += _sections(index)
    out += _ga_areas(index, status is None and shading is None)
    out += _tables(index, unit)
    out.append('<g class="seats">')
    out += _seats(index, seat_classes)
    out.append("</g>")
    if row_labels:
        out += _row_labels(index, unit)
    focal = focal_point(seatmap)
    if focal is not None:
        out += _focal(focal, unit, named=not any(a.kind == "stage" for a in seatmap.areas))
    out += _labels(index, layout, min_font)
    if legend:
        out += _legend(layout.items, x0 + layout.font, y1 + layout.font, layout.font)
    out.append("</svg>")
    return "\n".join(out)


def _seat_classes(index: SeatIndex, status: StatusMap | None) -> list[str]:
    """The CSS class of each seat ordinal."""
    if status is None:
        names = [f"cat-{i}" for i in range(len(index.category_keys))]
        return [names[c] for c in index.category_code.tolist()]
    codes = np.zeros(len(index), dtype=np.intp)  # 0 = free
    code_of: dict[str, int] = {s: i for i, s in enumerate(STATUSES)}
    for key, value in status.items():
        ordinal = index.check_ordinal(key) if isinstance(key, int) else index.ordinal(key)
        try:
            codes[ordinal] = code_of[value]
        except KeyError:
            raise RenderError(f"unknown seat status {value!r}; expected one of {STATUSES}") from None
    names = [f"st-{s}" for s in STATUSES]
    return [names[c] for c in codes.tolist()]


def _shade_classes(index: SeatIndex, shading: Shading) -> list[str]:
    if len(shading.labels) > len(SHADE_COLORS):
        raise RenderError(f"at most {len(SHADE_COLORS)} shades, not {len(shading.labels)}")
    classes = ["unshaded"] * len(index)
    for ordinal, bucket in shading.buckets.items():
        if not 0 <= bucket < len(shading.labels):
            raise RenderError(f"shade {bucket} of seat {ordinal} has no label")
        classes[index.check_ordinal(ordinal)] = f"sh-{bucket}"
    return classes


def _shade_items(shading: Shading) -> list[tuple[str, str]]:
    return [(f"sh-{i}", label) for i, label in enumerate(shading.labels)] + [("unshaded", shading.unshaded)]


def _legend_items(index: SeatIndex, by_status: bool) -> list[tuple[str, str]]:
    """``(css class, label)`` pairs."""
    if by_status:
        return [(f"st-{s}", STATUS_LABELS[s]) for s in STATUSES]
    labels = {c.key: c.label for c in index.seatmap.categories}
    return [(f"cat-{i}", labels.get(key, key)) for i, key in enumerate(index.category_keys)]


def _style(index: SeatIndex, unit: float, font: float) -> str:
    colors = {c.key: c.color for c in index.seatmap.categories}
    rules = [
        "text{font-family:sans-serif;text-anchor:middle;dominant-baseline:middle;fill:#333}",
        f".seat{{stroke:#fff;stroke-width:{_num(unit * 0.04)}}}",
        f".section,.ga,.table,.area{{fill:#f4f4f4;stroke:#999;stroke-width:{_num(unit * 0.06)}}}",
        ".ga{fill:#e8eef7}",
        ".ga.cat{fill-opacity:0.35}",
        f".area{{fill:{_AREA_FILL['other']}}}",
        f".area.stage{{fill:{_AREA_FILL['stage']};stroke:#333}}",
        ".focal{fill:#333}",
        ".labels text{font-weight:bold}",
        f".labels .halo{{fill:none;stroke:#fff;stroke-width:{_num(font * 0.2)};stroke-linejoin:round;"
        "stroke-opacity:0.85}",
        ".labels .on-dark{fill:#fff}",
        ".labels .on-dark.halo{fill:none;stroke:#333}",
        ".legend text{text-anchor:start}",
    ]
    for i, key in enumerate(index.category_keys):
        color = colors.get(key, UNKNOWN_CATEGORY_COLOR)
        rules.append(f".cat-{i}{{fill:{color if _COLOR.match(color) else UNKNOWN_CATEGORY_COLOR}}}")
    rules += [f".st-{s}{{fill:{STATUS_COLORS[s]}}}" for s in STATUSES]
    rules += [f".sh-{i}{{fill:{c}}}" for i, c in enumerate(SHADE_COLORS)] + [
        f".unshaded{{fill:{UNSHADED_COLOR}}}"
    ]
    return "<style>" + "".join(rules) + "</style>"


def _label_point(outline: list[Point]) -> tuple[float, float]:
    """Inside the polygon when it is a usable one (a concave outline's centroid can lie outside)."""
    if len(outline) >= 3:
        polygon = shapely.Polygon([(p.x, p.y) for p in outline])
        if shapely.is_valid(polygon) and not polygon.is_empty:
            point = polygon.point_on_surface()
            return float(point.x), float(point.y)
    if not outline:
        return 0.0, 0.0
    return sum(p.x for p in outline) / len(outline), sum(p.y for p in outline) / len(outline)


def _dark(color: str) -> bool:
    """Whether white text reads better than dark text on ``color`` (``#rrggbb``)."""
    if not _COLOR.match(color):
        return False
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b < 128


def _room(outline: list[Point], x: float, y: float) -> tuple[float, float]:
    """The outline's horizontal and vertical extent through (x, y): room for a label there."""
    if len(outline) < 3:
        return 0.0, 0.0
    polygon = shapely.Polygon([(p.x, p.y) for p in outline])
    if not shapely.is_valid(polygon):
        return 0.0, 0.0
    x0, y0, x1, y1 = polygon.bounds
    point = shapely.Point(x, y)
    room = []
    for line in (shapely.LineString([(x0, y), (x1, y)]), shapely.LineString([(x, y0), (x, y1)])):
        pieces = shapely.get_parts(polygon.intersection(line))
        room.append(
            max(
                (float(p.length) for p in pieces if p.distance(point) < 1e-6 * (1 + abs(x) + abs(y))),
                default=0.0,
            )
        )
    return room[0], room[1]


def _points(outline: list[Point]) -> str:
    return " ".join(f"{_num(p.x)},{_num(p.y)}" for p in outline)


def _areas(index: SeatIndex) -> list[str]:
    out = ['<g class="areas">']
    for area in index.seatmap.areas:
        fill = f' style="fill:{area.color}"' if area.color and _COLOR.match(area.color) else ""
        out.append(
            f'<g data-area="{xml_text(area.id)}" data-kind="{xml_text(area.kind)}">'
            f'<polygon class="area {xml_text(area.kind)}" points="{_points(area.outline)}"{fill}/></g>'
        )
    out.append("</g>")
    return out


def _sections(index: SeatIndex) -> list[str]:
    out = ['<g class="sections">']
    for section in index.seatmap.sections:
        out.append(
            f'<g data-section="{xml_text(section.id)}">'
            f'<polygon class="section" points="{_points(section.outline)}"/></g>'
        )
    out.append("</g>")
    return out


def _ga_areas(index: SeatIndex, by_category: bool) -> list[str]:
    code = {key: i for i, key in enumerate(index.category_keys)}
    out = ['<g class="ga-areas">']
    for area in index.seatmap.ga_areas:
        colour = f" cat cat-{code[area.category]}" if by_category and area.category in code else ""
        out.append(
            f'<g data-ga="{xml_text(area.id)}" data-capacity="{area.capacity}">'
            f'<polygon class="ga{colour}" points="{_points(area.outline)}"/></g>'
        )
    out.append("</g>")
    return out


def _labels(index: SeatIndex, layout: _Layout, min_font: float) -> list[str]:
    """Names of sections, GA and other areas, above the seats: bold, haloed, sized to fit."""
    seatmap = index.seatmap
    # No bigger than two seats (they would hide the seats) unless that is too small to read.
    max_font = max(min_font, 2 * seatmap.seat_size)
    named: list[tuple[str, list[Point], str, str]] = [
        ("", a.outline, a.label, "on-dark" if _dark(a.color or _AREA_FILL[a.kind]) else "")
        for a in seatmap.areas
        if a.label.strip()
    ]
    named += [("section", s.outline, s.label, "") for s in seatmap.sections]
    named += [("ga", a.outline, f"{a.label} ({a.capacity})", "") for a in seatmap.ga_areas]
    out = ['<g class="labels">']
    for kind, outline, text, extra in named:
        x, y = _label_point(outline)
        across, down = _room(outline, x, y)
        fit = min(across / (0.65 * max(len(text), 1)), down / 2)
        font = _num(min(max(fit, min_font), max_font if kind else max(max_font, fit)))
        attrs = f'x="{_num(x)}" y="{_num(y)}" font-size="{font}"'
        cls = " ".join(c for c in (f"{kind}-label" if kind else "", extra) if c)
        label = xml_text(text)
        # A white outline first, the text on it: readable on top of seats of any colour.
        out.append(f'<text class="{f"halo {cls}".strip()}" {attrs}>{label}</text>')
        out.append(f'<text class="{cls}" {attrs}>{label}</text>' if cls else f"<text {attrs}>{label}</text>")
    out.append("</g>")
    return out


def _tables(index: SeatIndex, unit: float) -> list[str]:
    out = ['<g class="tables">']
    for section in index.seatmap.sections:
        for t in section.tables:
            cx, cy = _num(t.center.x), _num(t.center.y)
            out.append(
                f'<g data-table="{xml_text(t.id)}" data-section="{xml_text(section.id)}">'
                f'<circle class="table" cx="{cx}" cy="{cy}" r="{_num(t.radius)}"/>'
                f'<text x="{cx}" y="{cy}" font-size="{_num(unit * 0.5)}">{xml_text(t.label)}</text></g>'
            )
    out.append("</g>")
    return out


def _seats(index: SeatIndex, classes: list[str]) -> list[str]:
    # The hot loop of a stadium render: plain lists, one f-string per seat.
    xs = [_num(v) for v in index.x.tolist()]
    ys = [_num(v) for v in index.y.tolist()]
    rs = [_num(v) for v in index.radius.tolist()]
    return [
        f'<circle id="seat-{sid}" data-seat="{sid}" data-ordinal="{o}" class="seat {cls}" '
        f'cx="{x}" cy="{y}" r="{r}"/>'
        for o, (sid, cls, x, y, r) in enumerate(
            zip((xml_text(p.seat.id) for p in index.placed), classes, xs, ys, rs, strict=True)
        )
    ]


def _row_labels(index: SeatIndex, unit: float) -> list[str]:
    """Each row's label one seat width before its first seat, along the row's direction."""
    out = ['<g class="row-labels">']
    groups = np.flatnonzero(~index.group_is_table)
    labels = [row.label for section in index.seatmap.sections for row in section.rows]  # group order
    keep = index.group_size[groups] > 0
    groups = groups[keep]
    labels = [label for label, k in zip(labels, keep.tolist(), strict=True) if k]
    first = index.group_start[groups]
    second = np.where(index.group_size[groups] > 1, first + 1, first)
    dx = index.x[first] - index.x[second]
    dy = index.y[first] - index.y[second]
    length = np.hypot(dx, dy)
    single = length == 0  # one-seat rows: put the label to the left
    dx, dy, length = np.where(single, 1.0, dx), np.where(single, 0.0, dy), np.where(single, 1.0, length)
    step = index.radius[first] + unit * 0.6
    lx = (index.x[first] + dx / length * step).tolist()
    ly = (index.y[first] + dy / length * step).tolist()
    font = _num(unit * 0.5)
    for g, label, x, y in zip(groups.tolist(), labels, lx, ly, strict=True):
        section_id, row_id = index.group_ids[g]
        out.append(
            f'<text data-row="{xml_text(row_id)}" data-section="{xml_text(section_id)}" '
            f'x="{_num(x)}" y="{_num(y)}" font-size="{font}">{xml_text(label)}</text>'
        )
    out.append("</g>")
    return out


def _focal(point: Point, unit: float, *, named: bool) -> list[str]:
    x, y = _num(point.x), _num(point.y)
    name = (
        f'<text x="{x}" y="{_num(point.y - unit)}" font-size="{_num(unit * 0.8)}">Stage</text>'
        if named
        else ""
    )
    return [f'<g class="focal"><circle cx="{x}" cy="{y}" r="{_num(unit * 0.3)}"/>{name}</g>']


def _legend(items: list[tuple[str, str]], x: float, y: float, font: float) -> list[str]:
    out = ['<g class="legend">']
    for i, (cls, label) in enumerate(items):
        top = y + i * 2 * font
        out.append(
            f'<rect class="{cls}" x="{_num(x)}" y="{_num(top)}" width="{_num(font * 1.5)}" '
            f'height="{_num(font * 1.5)}"/>'
            f'<text x="{_num(x + font * 2.2)}" y="{_num(top + font * 0.75)}" font-size="{_num(font)}">'
            f"{xml_text(label)}</text>"
        )
    out.append("</g>")
    return out
