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
from html import escape
from typing import Literal, get_args

import numpy as np
import shapely

from seatmap.index import SeatIndex
from seatmap.model import Point, SeatMap

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

# Seats by ordinal or by id (or both) -> a SeatStatus; Mapping keys are invariant, hence the union.
StatusMap = Mapping[int, str] | Mapping[str, str] | Mapping[int | str, str]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Characters XML 1.0 cannot represent even escaped (a NUL in a label would make the file unparsable).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class RenderError(ValueError):
    """The render request itself is wrong (e.g. an unknown status)."""


class RenderUnavailable(RuntimeError):
    """PNG output needs the optional ``cairosvg`` package, which is not installed."""


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
) -> str:
    """The map as an SVG document; ``status`` maps seat ordinals or seat ids to a :data:`SeatStatus`.

    Pass the version's cached :class:`SeatIndex` rather than the map to skip rebuilding it.
    """
    index = source if isinstance(source, SeatIndex) else SeatIndex(source)
    seatmap = index.seatmap
    unit = seatmap.seat_size
    x0, y0, x1, y1 = index.bounds
    margin = 2 * unit
    x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
    seat_classes = _seat_classes(index, status)
    legend_items = _legend_items(index, status is not None)
    font = max(unit, (x1 - x0) / 60)
    legend_height = 2 * font * len(legend_items) + font if legend else 0.0

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="{_num(x0)} {_num(y0)} {_num(x1 - x0)} {_num(y1 - y0 + legend_height)}">',
        f"<title>{xml_text(seatmap.name)}</title>",
        _style(index, unit),
    ]
    out += _sections(index, unit)
    out += _ga_areas(index, unit)
    out += _tables(index, unit)
    out.append('<g class="seats">')
    out += _seats(index, seat_classes)
    out.append("</g>")
    if row_labels:
        out += _row_labels(index, unit)
    if seatmap.focal_point is not None:
        out += _focal(seatmap.focal_point, unit)
    if legend:
        out += _legend(legend_items, x0 + font, y1 + font, font)
    out.append("</svg>")
    return "\n".join(out)


def render_png(
    source: SeatMap | SeatIndex,
    status: StatusMap | None = None,
    *,
    width: int | None = None,
    row_labels: bool = True,
    legend: bool = True,
) -> bytes:
    """:func:`render_svg` rasterised by ``cairosvg`` (``width`` in pixels, default: the viewBox's)."""
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: cairosvg present, libcairo missing
        raise RenderUnavailable(
            "PNG rendering needs the optional 'cairosvg' package (and the cairo library); "
            "install it or use render_svg"
        ) from exc
    svg = render_svg(source, status, row_labels=row_labels, legend=legend)
    png: bytes = cairosvg.svg2png(bytestring=svg.encode("utf-8"), output_width=width)
    return png


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


def _legend_items(index: SeatIndex, by_status: bool) -> list[tuple[str, str]]:
    """``(css class, label)`` pairs."""
    if by_status:
        return [(f"st-{s}", STATUS_LABELS[s]) for s in STATUSES]
    labels = {c.key: c.label for c in index.seatmap.categories}
    return [(f"cat-{i}", labels.get(key, key)) for i, key in enumerate(index.category_keys)]


def _style(index: SeatIndex, unit: float) -> str:
    colors = {c.key: c.color for c in index.seatmap.categories}
    rules = [
        "text{font-family:sans-serif;text-anchor:middle;dominant-baseline:middle;fill:#333}",
        f".seat{{stroke:#fff;stroke-width:{_num(unit * 0.04)}}}",
        f".section,.ga,.table{{fill:#f4f4f4;stroke:#999;stroke-width:{_num(unit * 0.06)}}}",
        ".ga{fill:#e8eef7}",
        ".focal{fill:#333}",
        ".legend text{text-anchor:start}",
    ]
    for i, key in enumerate(index.category_keys):
        color = colors.get(key, UNKNOWN_CATEGORY_COLOR)
        rules.append(f".cat-{i}{{fill:{color if _COLOR.match(color) else UNKNOWN_CATEGORY_COLOR}}}")
    rules += [f".st-{s}{{fill:{STATUS_COLORS[s]}}}" for s in STATUSES]
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


def _points(outline: list[Point]) -> str:
    return " ".join(f"{_num(p.x)},{_num(p.y)}" for p in outline)


def _sections(index: SeatIndex, unit: float) -> list[str]:
    out = ['<g class="sections">']
    for section in index.seatmap.sections:
        x, y = _label_point(section.outline)
        out.append(
            f'<g data-section="{xml_text(section.id)}">'
            f'<polygon class="section" points="{_points(section.outline)}"/>'
            f'<text class="section-label" x="{_num(x)}" y="{_num(y)}" font-size="{_num(unit * 1.2)}" '
            f'opacity="0.5">{xml_text(section.label)}</text></g>'
        )
    out.append("</g>")
    return out


def _ga_areas(index: SeatIndex, unit: float) -> list[str]:
    out = ['<g class="ga-areas">']
    for area in index.seatmap.ga_areas:
        x, y = _label_point(area.outline)
        out.append(
            f'<g data-ga="{xml_text(area.id)}" data-capacity="{area.capacity}">'
            f'<polygon class="ga" points="{_points(area.outline)}"/>'
            f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(unit * 1.2)}">'
            f"{xml_text(area.label)} ({area.capacity})</text></g>"
        )
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


def _focal(point: Point, unit: float) -> list[str]:
    x, y = _num(point.x), _num(point.y)
    return [
        f'<g class="focal"><circle cx="{x}" cy="{y}" r="{_num(unit * 0.3)}"/>'
        f'<text x="{x}" y="{_num(point.y - unit)}" font-size="{_num(unit * 0.8)}">Stage</text></g>'
    ]


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
