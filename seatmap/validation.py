"""Rules a seat map must satisfy before it can be published, and the checks that enforce them.

:func:`validate` never stops at the first problem: it reports every violation it
finds (the list capped at ``Limits.max_violations``, ``total`` counting all), so
an organizer can fix a map in one round trip. Values that would poison geometry
(NaN, infinities, out-of-range coordinates, non-positive sizes) are reported and
then kept away from shapely.

Decisions worth knowing (also in ``docs/seatmap-format.md``):

* Id namespaces: seat ids are unique across the map; row and table ids share one
  namespace (both are a seat's ``group_id``); section, GA-area and area ids share another.
* Seats are circles; touching is fine, any overlap is not. Each overlapping seat is
  reported once, naming one seat it overlaps, so the count stays linear in the seats.
* Areas (a stage, a bar) are only drawn: they need a sound outline within the coordinate
  cap and an id in the section / GA-area namespace, and may overlap anything (a thrust
  stage into a standing floor is fine). There is no canvas, so no other bound applies.
* A GA area may not overlap a section or another GA area (the floor space would be
  sold twice). Sections may overlap each other (a box drawn inside a balcony outline),
  since their seats are checked for overlap anyway.
* When the seat count is over ``Limits.max_seats`` the seat geometry checks are
  skipped: the cap exists to bound exactly that work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import msgspec
import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from seatmap.limits import DEFAULT_LIMITS, Limits
from seatmap.model import FORMAT_VERSION, Point, Row, SeatMap, Section, Table
from seatmap.text import FORBIDDEN, control_character, is_blank

ViolationCode = Literal[
    "upload_too_large",
    "unsupported_format_version",
    "empty_map",
    "too_many_seats",
    "too_many_sections",
    "too_many_rows",
    "too_many_tables",
    "too_many_seats_in_row",
    "too_many_vertices",
    "too_many_ga_areas",
    "too_many_areas",
    "too_many_categories",
    "duplicate_category_key",
    "duplicate_area_id",
    "duplicate_group_id",
    "duplicate_seat_id",
    "duplicate_row_label",
    "duplicate_table_label",
    "duplicate_seat_label",
    "empty_label",
    "control_character",
    "unknown_category",
    "empty_section",
    "empty_row",
    "empty_table",
    "non_finite_coordinate",
    "coordinate_out_of_range",
    "seat_size_invalid",
    "table_radius_invalid",
    "ga_capacity_invalid",
    "invalid_polygon",
    "seat_outside_section",
    "table_outside_section",
    "seats_overlap",
    "ga_area_overlap",
]
VIOLATION_CODES: frozenset[str] = frozenset(get_args(ViolationCode))

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Relative slack for float comparisons: seats drawn exactly touching must pass.
_EPS = 1e-9
# Query points per STRtree call: bounds the memory of one batch of candidate pairs.
_QUERY_CHUNK = 16_384


class Violation(msgspec.Struct, frozen=True, omit_defaults=True):
    """One broken rule, pinned to the element that breaks it."""

    code: str  # a ViolationCode: short, stable, snake_case
    path: str  # e.g. "sections[2].rows[5].seats[7]"; "" for the document as a whole
    message: str  # a sentence naming the element by id and label
    element_id: str | None = None


class ValidationReport(msgspec.Struct, frozen=True):
    """The outcome of :func:`validate`."""

    violations: list[Violation]
    total: int  # all violations found, including those beyond the cap

    @property
    def ok(self) -> bool:
        return self.total == 0


@dataclass
class _Collector:
    cap: int
    violations: list[Violation] = field(default_factory=list)
    total: int = 0

    def add(self, code: ViolationCode, path: str, message: str, element_id: str | None = None) -> None:
        self.total += 1
        if len(self.violations) < self.cap:
            self.violations.append(Violation(code, path, message, element_id))


@dataclass
class _Seats:
    """Every seat flattened into parallel arrays, in canonical (``iter_seats``) order."""

    ids: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    explicit_size: list[bool] = field(default_factory=list)
    # Where each seat sits, to build its path and name only when it is reported.
    section: list[int] = field(default_factory=list)
    in_table: list[bool] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    section_slices: list[tuple[int, int]] = field(default_factory=list)


class _Context:
    """What the individual checks share: the map, the caps, the collector, the flat seats."""

    def __init__(self, seatmap: SeatMap, limits: Limits) -> None:
        self.map = seatmap
        self.limits = limits
        self.out = _Collector(limits.max_violations)
        self.seats = _Seats()
        self.category_keys: set[str] = set()
        # Filled by _check_seat_values: positions and radii as arrays.
        self.x: FloatArray = np.empty(0)
        self.y: FloatArray = np.empty(0)
        self.radius: FloatArray = np.empty(0)

    def seat_path(self, i: int) -> str:
        s = self.seats
        kind = "tables" if s.in_table[i] else "rows"
        return f"sections[{s.section[i]}].{kind}[{s.group[i]}].seats[{s.index[i]}]"

    def seat_name(self, i: int) -> str:
        s = self.seats
        section = self.map.sections[s.section[i]]
        group = section.tables[s.group[i]] if s.in_table[i] else section.rows[s.group[i]]
        kind = "table" if s.in_table[i] else "row"
        return f"seat '{s.ids[i]}' (section '{section.label}', {kind} '{group.label}', seat '{s.labels[i]}')"


def validate(seatmap: SeatMap, limits: Limits = DEFAULT_LIMITS) -> ValidationReport:
    """Check ``seatmap`` against every rule and return all violations found."""
    ctx = _Context(seatmap, limits)
    # Valid but degenerate geometry (an edge 1e-300 long) makes GEOS divide by zero; the
    # resulting NaN distances fail every ">= radius" test, so such seats are reported, not missed.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _check_header(ctx)
        _check_categories(ctx)
        section_polygons = _check_sections(ctx)
        ga_polygons = _check_ga_areas(ctx)
        _check_drawn_areas(ctx)
        _check_seat_references(ctx)
        usable = _check_seat_values(ctx)
        if len(ctx.seats.ids) <= limits.max_seats:
            _check_seats_inside(ctx, section_polygons, usable)
            _check_seat_overlaps(ctx, usable)
        _check_area_overlaps(ctx, section_polygons, ga_polygons)
    return ValidationReport(ctx.out.violations, ctx.out.total)


# --- map-level checks -------------------------------------------------------------------------


def _check_header(ctx: _Context) -> None:
    m, lim, out = ctx.map, ctx.limits, ctx.out
    if m.format_version != FORMAT_VERSION:
        out.add(
            "unsupported_format_version",
            "format_version",
            f"format_version {m.format_version} is not supported (expected {FORMAT_VERSION})",
        )
    _check_text(ctx, m.name, "", "the seat map", None, field="name")
    if not m.sections and not m.ga_areas:
        out.add("empty_map", "", f"seat map '{m.name}' has no sections and no general-admission areas")
    caps: tuple[tuple[ViolationCode, str, int, int], ...] = (
        ("too_many_sections", "sections", len(m.sections), lim.max_sections),
        ("too_many_ga_areas", "ga_areas", len(m.ga_areas), lim.max_ga_areas),
        ("too_many_areas", "areas", len(m.areas), lim.max_areas),
        ("too_many_categories", "categories", len(m.categories), lim.max_categories),
    )
    for code, path, count, cap in caps:
        if count > cap:
            out.add(code, path, f"the map has {count} {path.replace('_', ' ')}; the limit is {cap}")
    seats = sum(len(r.seats) for s in m.sections for r in s.rows) + sum(
        len(t.seats) for s in m.sections for t in s.tables
    )
    if seats > lim.max_seats:
        out.add("too_many_seats", "sections", f"the map has {seats} seats; the limit is {lim.max_seats}")
    if not (math.isfinite(m.seat_size) and 0 < m.seat_size <= lim.max_coordinate):
        out.add(
            "seat_size_invalid", "seat_size", f"the default seat_size {m.seat_size} is not a positive size"
        )
    if m.focal_point is not None:
        _check_point(ctx, m.focal_point, "focal_point", "the focal point")


def _check_point(ctx: _Context, point: Point, path: str, what: str, element_id: str | None = None) -> bool:
    """Report a non-finite or out-of-range point; True when it is usable."""
    if not (math.isfinite(point.x) and math.isfinite(point.y)):
        ctx.out.add("non_finite_coordinate", path, f"{what} has a non-finite coordinate", element_id)
        return False
    cap = ctx.limits.max_coordinate
    if abs(point.x) > cap or abs(point.y) > cap:
        ctx.out.add("coordinate_out_of_range", path, f"{what} lies beyond ±{cap:g}", element_id)
        return False
    return True


def _check_categories(ctx: _Context) -> None:
    for i, category in enumerate(ctx.map.categories):
        if category.key in ctx.category_keys:
            ctx.out.add(
                "duplicate_category_key",
                f"categories[{i}].key",
                f"category key '{category.key}' (label '{category.label}') is defined twice",
                category.key,
            )
        ctx.category_keys.add(category.key)
        _check_text(ctx, category.label, f"categories[{i}]", f"category '{category.key}'", category.key)


def _check_label(ctx: _Context, label: str, path: str, what: str, element_id: str) -> None:
    _check_text(ctx, label, path, f"{what} '{element_id}'", element_id)


def _check_text(
    ctx: _Context, label: str, path: str, name: str, element_id: str | None, field: str = "label"
) -> None:
    """A blank label (only whitespace or invisible characters), or one with a control character."""
    if is_blank(label):
        ctx.out.add("empty_label", f"{path}.{field}".lstrip("."), f"{name} has an empty {field}", element_id)
        return
    bad = control_character(label)
    if bad is not None:
        message = f"{name} has a control character ({bad}) in its {field}"
        ctx.out.add("control_character", f"{path}.{field}".lstrip("."), message, element_id)


def _check_polygon(
    ctx: _Context, outline: list[Point], path: str, what: str, element_id: str
) -> shapely.Polygon | None:
    """Report what is wrong with an outline; return it as a polygon only when it is sound."""
    out, lim = ctx.out, ctx.limits
    n = len(outline)
    if n > lim.max_vertices_per_polygon:
        message = f"{what} has {n} outline vertices; the limit is {lim.max_vertices_per_polygon}"
        out.add("too_many_vertices", f"{path}.outline", message, element_id)
        return None
    for k, point in enumerate(outline):
        if not _check_point(ctx, point, f"{path}.outline[{k}]", f"vertex {k} of {what}", element_id):
            return None
    if n < 3:
        message = f"{what} has {n} outline vertices; a polygon needs at least 3"
        out.add("invalid_polygon", f"{path}.outline", message, element_id)
        return None
    polygon = shapely.Polygon([(p.x, p.y) for p in outline])
    if not polygon.is_valid:
        reason = shapely.is_valid_reason(polygon)
        out.add(
            "invalid_polygon", f"{path}.outline", f"the outline of {what} is invalid: {reason}", element_id
        )
        return None
    if polygon.area <= 0:
        out.add("invalid_polygon", f"{path}.outline", f"the outline of {what} encloses no area", element_id)
        return None
    shapely.prepare(polygon)
    return polygon


# --- sections, rows, tables -------------------------------------------------------------------


def _check_sections(ctx: _Context) -> list[shapely.Polygon | None]:
    """Walk the section tree: structure, ids, labels, caps; flatten the seats on the way."""
    area_ids: dict[str, str] = {}
    group_ids: dict[str, str] = {}
    polygons: list[shapely.Polygon | None] = []
    for si, section in enumerate(ctx.map.sections):
        path = f"sections[{si}]"
        what = f"section '{section.id}' ('{section.label}')"
        _check_unique(ctx, area_ids, section.id, path, "duplicate_area_id", what)
        _check_label(ctx, section.label, path, "section", section.id)
        polygons.append(_check_polygon(ctx, section.outline, path, what, section.id))
        _check_section_shape(ctx, section, path, what)
        start = len(ctx.seats.ids)
        _walk_groups(ctx, si, section, group_ids)
        ctx.seats.section_slices.append((start, len(ctx.seats.ids)))
        _check_tables(ctx, si, section, polygons[-1])
    return polygons


def _check_unique(
    ctx: _Context, seen: dict[str, str], element_id: str, path: str, code: ViolationCode, what: str
) -> None:
    first = seen.setdefault(element_id, path)
    if first != path:
        ctx.out.add(code, f"{path}.id", f"{what} reuses the id of {first}", element_id)


def _check_section_shape(ctx: _Context, section: Section, path: str, what: str) -> None:
    lim, out = ctx.limits, ctx.out
    if not section.rows and not section.tables:
        out.add("empty_section", path, f"{what} has no rows and no tables", section.id)
    if len(section.rows) > lim.max_rows_per_section:
        message = f"{what} has {len(section.rows)} rows; the limit is {lim.max_rows_per_section}"
        out.add("too_many_rows", f"{path}.rows", message, section.id)
    if len(section.tables) > lim.max_tables_per_section:
        message = f"{what} has {len(section.tables)} tables; the limit is {lim.max_tables_per_section}"
        out.add("too_many_tables", f"{path}.tables", message, section.id)
    _check_group_labels(ctx, "row", section.rows, path, what)
    _check_group_labels(ctx, "table", section.tables, path, what)


def _check_group_labels(
    ctx: _Context, kind: str, groups: Sequence[Row | Table], path: str, what: str
) -> None:
    code: ViolationCode = "duplicate_row_label" if kind == "row" else "duplicate_table_label"
    seen: dict[str, int] = {}
    for gi, group in enumerate(groups):
        first = seen.setdefault(group.label, gi)
        if first != gi:
            message = (
                f"{kind} '{group.id}' in {what} reuses label '{group.label}' of {kind} '{groups[first].id}'"
            )
            ctx.out.add(code, f"{path}.{kind}s[{gi}].label", message, group.id)


def _walk_groups(ctx: _Context, si: int, section: Section, group_ids: dict[str, str]) -> None:
    s, default = ctx.seats, ctx.map.seat_size
    groups: list[tuple[bool, int, Row | Table]] = [(False, gi, g) for gi, g in enumerate(section.rows)]
    groups += [(True, gi, t) for gi, t in enumerate(section.tables)]
    for in_table, gi, group in groups:
        kind = "table" if in_table else "row"
        path = f"sections[{si}].{kind}s[{gi}]"
        what = f"{kind} '{group.id}' ('{group.label}') of section '{section.id}'"
        _check_unique(ctx, group_ids, group.id, path, "duplicate_group_id", what)
        _check_label(ctx, group.label, path, kind, group.id)
        seats = group.seats
        n = len(seats)
        if n == 0:
            ctx.out.add("empty_table" if in_table else "empty_row", path, f"{what} has no seats", group.id)
        elif n > ctx.limits.max_seats_per_row:
            message = f"{what} has {n} seats; the limit is {ctx.limits.max_seats_per_row}"
            ctx.out.add("too_many_seats_in_row", f"{path}.seats", message, group.id)
        start = len(s.ids)
        s.ids.extend([seat.id for seat in seats])
        labels = [seat.label for seat in seats]
        s.labels.extend(labels)
        s.categories.extend([seat.category for seat in seats])
        s.xs.extend([seat.position.x for seat in seats])
        s.ys.extend([seat.position.y for seat in seats])
        sizes = [seat.size for seat in seats]
        s.sizes.extend([default if z is None else z for z in sizes])
        s.explicit_size.extend([z is not None for z in sizes])
        s.section.extend([si] * n)
        s.in_table.extend([in_table] * n)
        s.group.extend([gi] * n)
        s.index.extend(range(n))
        joined = "".join(labels)
        if (
            len(set(labels)) != n
            or not all(map(str.strip, labels))
            or not joined.isascii()  # maybe zero-width only: look closer
            or FORBIDDEN.search(joined)
        ):
            _check_seat_labels(ctx, labels, start, what)


def _check_seat_labels(ctx: _Context, labels: list[str], start: int, what: str) -> None:
    seen: dict[str, int] = {}
    for k, label in enumerate(labels):
        i = start + k
        if is_blank(label) or control_character(label):
            _check_text(ctx, label, ctx.seat_path(i), ctx.seat_name(i), ctx.seats.ids[i])
            continue
        first = seen.setdefault(label, i)
        if first != i:
            message = f"{ctx.seat_name(i)} in {what} reuses the label of seat '{ctx.seats.ids[first]}'"
            ctx.out.add("duplicate_seat_label", f"{ctx.seat_path(i)}.label", message, ctx.seats.ids[i])


def _check_tables(ctx: _Context, si: int, section: Section, polygon: shapely.Polygon | None) -> None:
    cap = ctx.limits.max_coordinate
    for ti, table in enumerate(section.tables):
        path = f"sections[{si}].tables[{ti}]"
        what = f"table '{table.id}' ('{table.label}') of section '{section.id}'"
        centre_ok = _check_point(ctx, table.center, f"{path}.center", f"the centre of {what}", table.id)
        if not (math.isfinite(table.radius) and 0 < table.radius <= cap):
            message = f"{what} has radius {table.radius}; it must be a positive size"
            ctx.out.add("table_radius_invalid", f"{path}.radius", message, table.id)
        elif centre_ok and polygon is not None and not _circle_inside(polygon, table.center, table.radius):
            message = f"{what} is not inside the outline of section '{section.id}' ('{section.label}')"
            ctx.out.add("table_outside_section", path, message, table.id)


def _circle_inside(polygon: shapely.Polygon, centre: Point, radius: float) -> bool:
    point = shapely.Point(centre.x, centre.y)
    return bool(polygon.contains(point)) and polygon.exterior.distance(point) >= radius * (1 - _EPS)


# --- general admission ------------------------------------------------------------------------


def _check_ga_areas(ctx: _Context) -> list[shapely.Polygon | None]:
    area_ids = {s.id: f"sections[{i}]" for i, s in reversed(list(enumerate(ctx.map.sections)))}
    polygons: list[shapely.Polygon | None] = []
    for gi, area in enumerate(ctx.map.ga_areas):
        path = f"ga_areas[{gi}]"
        what = f"general-admission area '{area.id}' ('{area.label}')"
        _check_unique(ctx, area_ids, area.id, path, "duplicate_area_id", what)
        _check_label(ctx, area.label, path, "general-admission area", area.id)
        polygons.append(_check_polygon(ctx, area.outline, path, what, area.id))
        if not 1 <= area.capacity <= ctx.limits.max_ga_capacity:
            message = (
                f"{what} has capacity {area.capacity}; it must be between 1 and {ctx.limits.max_ga_capacity}"
            )
            ctx.out.add("ga_capacity_invalid", f"{path}.capacity", message, area.id)
        if area.category not in ctx.category_keys:
            message = f"{what} refers to category '{area.category}', which the map does not define"
            ctx.out.add("unknown_category", f"{path}.category", message, area.id)
    return polygons


def _check_drawn_areas(ctx: _Context) -> None:
    """Areas are only drawn: a sound outline and an id of their own; they may overlap anything."""
    taken = [(s.id, f"sections[{i}]") for i, s in enumerate(ctx.map.sections)]
    taken += [(a.id, f"ga_areas[{i}]") for i, a in enumerate(ctx.map.ga_areas)]
    area_ids = dict(reversed(taken))  # the first element to use an id keeps it
    for ai, area in enumerate(ctx.map.areas):
        path = f"areas[{ai}]"
        what = f"area '{area.id}'" + (f" ('{area.label}')" if area.label else "")
        _check_unique(ctx, area_ids, area.id, path, "duplicate_area_id", what)
        _check_polygon(ctx, area.outline, path, what, area.id)


# --- seats ------------------------------------------------------------------------------------


def _check_seat_references(ctx: _Context) -> None:
    s = ctx.seats
    if len(set(s.ids)) != len(s.ids):
        first: dict[str, int] = {}
        for i, seat_id in enumerate(s.ids):
            j = first.setdefault(seat_id, i)
            if j != i:
                message = f"{ctx.seat_name(i)} reuses the id of the seat at {ctx.seat_path(j)}"
                ctx.out.add("duplicate_seat_id", f"{ctx.seat_path(i)}.id", message, seat_id)
    unknown = set(s.categories) - ctx.category_keys
    if unknown:
        for i, category in enumerate(s.categories):
            if category in unknown:
                message = f"{ctx.seat_name(i)} refers to category '{category}', which the map does not define"
                ctx.out.add("unknown_category", f"{ctx.seat_path(i)}.category", message, s.ids[i])


def _check_seat_values(ctx: _Context) -> BoolArray:
    """Report unusable positions and sizes; return the mask of seats fit for geometry."""
    s, cap = ctx.seats, ctx.limits.max_coordinate
    x = np.asarray(s.xs, dtype=np.float64)
    y = np.asarray(s.ys, dtype=np.float64)
    size = np.asarray(s.sizes, dtype=np.float64)
    explicit = np.asarray(s.explicit_size, dtype=np.bool_)
    finite = np.isfinite(x) & np.isfinite(y)
    in_range = finite & (np.abs(x) <= cap) & (np.abs(y) <= cap)
    size_ok = np.isfinite(size) & (size > 0) & (size <= cap)
    for i in np.flatnonzero(~finite).tolist():
        ctx.out.add(
            "non_finite_coordinate",
            f"{ctx.seat_path(i)}.position",
            f"{ctx.seat_name(i)} has a non-finite position",
            s.ids[i],
        )
    for i in np.flatnonzero(finite & ~in_range).tolist():
        message = f"{ctx.seat_name(i)} lies beyond ±{cap:g}"
        ctx.out.add("coordinate_out_of_range", f"{ctx.seat_path(i)}.position", message, s.ids[i])
    # A bad map-wide default is reported once, by _check_header, not once per seat.
    for i in np.flatnonzero(~size_ok & explicit).tolist():
        message = f"{ctx.seat_name(i)} has size {size[i]}; it must be a positive size"
        ctx.out.add("seat_size_invalid", f"{ctx.seat_path(i)}.size", message, s.ids[i])
    ctx.x, ctx.y, ctx.radius = x, y, size / 2
    return in_range & size_ok


def _check_seats_inside(ctx: _Context, polygons: list[shapely.Polygon | None], usable: BoolArray) -> None:
    """Each seat's circle must lie inside its section's outline (touching the edge is fine)."""
    x, y, radius = ctx.x, ctx.y, ctx.radius
    for si, (start, end) in enumerate(ctx.seats.section_slices):
        polygon = polygons[si]
        if polygon is None or start == end:
            continue
        idx = start + np.flatnonzero(usable[start:end])
        inside = shapely.contains_xy(polygon, x[idx], y[idx])
        # Distance to the boundary only for centres inside; most seats pass a cheap
        # inner-buffer test first (buffered a little further than needed, so it only accepts).
        inner = polygon.buffer(-float(radius[idx].max(initial=0.0)) * 1.01)
        if not inner.is_empty:
            shapely.prepare(inner)
            undecided = inside & ~shapely.contains_xy(inner, x[idx], y[idx])
        else:
            undecided = inside
        cand = idx[undecided]
        if len(cand):
            gap = shapely.distance(polygon.exterior, shapely.points(x[cand], y[cand]))
            inside[undecided] = gap >= radius[cand] * (1 - _EPS)
        section = ctx.map.sections[si]
        for i in idx[~inside].tolist():
            message = (
                f"{ctx.seat_name(i)} is not inside the outline of section '{section.id}' ('{section.label}')"
            )
            ctx.out.add("seat_outside_section", ctx.seat_path(i), message, ctx.seats.ids[i])


def _check_seat_overlaps(ctx: _Context, usable: BoolArray) -> None:
    idx = np.flatnonzero(usable)
    partner = overlap_partners(ctx.x[idx], ctx.y[idx], ctx.radius[idx])
    for k in np.flatnonzero(partner >= 0):
        i, j = int(idx[k]), int(idx[partner[k]])
        message = f"{ctx.seat_name(i)} overlaps {ctx.seat_name(j)}"
        ctx.out.add("seats_overlap", ctx.seat_path(i), message, ctx.seats.ids[i])


def overlap_partners(x: FloatArray, y: FloatArray, radius: FloatArray) -> IntArray:
    """For each circle, the index of one circle it overlaps, or -1 (touching is not overlapping).

    A plain "all pairs within 2·r_max" query explodes on exactly the maps that need
    reporting most: every seat stacked on one point, coordinates in metres with sizes
    in centimetres, one seat with a typo'd size of 5000. So:

    * circles are split into classes whose radii are within a factor of two, and a
      class is only ever queried against itself and the classes of larger circles,
      with a reach set by that larger class;
    * inside a class, circles sharing a grid cell of side ``r_min·√2`` certainly
      overlap: they are paired at once and only one representative per cell goes
      into the class's STRtree, which bounds every query's candidates by the cell
      density. A circle left unpaired that reaches a crowded cell is checked
      against that cell's members.
    """
    n = len(x)
    partner = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return partner
    points = shapely.points(x, y)
    klass = np.floor(np.log2(radius)).astype(np.int64)
    classes = [_Cells(np.flatnonzero(klass == c), points, x, y, radius, partner) for c in np.unique(klass)]
    for a, small in enumerate(classes):
        for large in classes[a:]:
            for lo in range(0, len(small.members), _QUERY_CHUNK):
                large.pair_with(small.members[lo : lo + _QUERY_CHUNK], points, x, y, radius, partner)
    return partner


class _Cells:
    """One radius class: its members bucketed into grid cells, one STRtree entry per cell."""

    def __init__(
        self,
        members: IntArray,
        points: npt.NDArray[np.object_],
        x: FloatArray,
        y: FloatArray,
        radius: FloatArray,
        partner: IntArray,
    ) -> None:
        self.members = members
        r_min = float(radius[members].min())
        self.r_max = float(radius[members].max())
        side = r_min * math.sqrt(2) * (1 - 1e-6)  # two centres in one cell are < 2·r_min apart
        cx, cy = np.floor(x[members] / side), np.floor(y[members] / side)
        if max(float(np.abs(cx).max()), float(np.abs(cy).max())) >= 2.0**50:
            cx = cy = np.arange(len(members), dtype=np.float64)  # too fine to index: one cell each
        order = np.lexsort((cy, cx))
        self.sorted = members[order]
        starts = np.ones(len(order), dtype=np.bool_)
        starts[1:] = (cx[order][1:] != cx[order][:-1]) | (cy[order][1:] != cy[order][:-1])
        self.cell_start = np.flatnonzero(starts)
        self.cell_len = np.diff(np.append(self.cell_start, len(order)))
        self.reps = self.sorted[self.cell_start]
        self.crowded = self.cell_len > 1
        # Pair everyone in a crowded cell with its representative (and it with the second).
        head = self.sorted[np.repeat(self.cell_start, self.cell_len)]
        followers = ~starts
        partner[self.sorted[followers]] = head[followers]
        crowded_starts = self.cell_start[self.crowded]
        partner[self.sorted[crowded_starts]] = self.sorted[crowded_starts + 1]
        # A circle overlapping a non-representative lies within one cell diagonal more.
        self.reach = self.r_max + (2 * r_min if self.crowded.any() else 0.0)
        self.tree = STRtree(points[self.reps])

    def pair_with(
        self,
        q: IntArray,
        points: npt.NDArray[np.object_],
        x: FloatArray,
        y: FloatArray,
        radius: FloatArray,
        partner: IntArray,
    ) -> None:
        """Find overlaps between circles ``q`` (of this class or a smaller one) and this class."""
        hits = self.tree.query(points[q], predicate="dwithin", distance=radius[q] + self.reach)
        i, cell = q[hits[0]], hits[1]
        j = self.reps[cell]
        hit = (i != j) & _overlapping(i, j, x, y, radius)
        _assign(i[hit], j[hit], partner)
        todo = ~hit & self.crowded[cell] & (partner[i] < 0)
        if todo.any():
            i, cell = i[todo], cell[todo]
            counts = self.cell_len[cell]
            ii = np.repeat(i, counts)
            offsets = np.arange(len(ii)) - np.repeat(np.cumsum(counts) - counts, counts)
            jj = self.sorted[np.repeat(self.cell_start[cell], counts) + offsets]
            hit = (ii != jj) & _overlapping(ii, jj, x, y, radius)
            _assign(ii[hit], jj[hit], partner)


def _overlapping(i: IntArray, j: IntArray, x: FloatArray, y: FloatArray, radius: FloatArray) -> BoolArray:
    result: BoolArray = np.hypot(x[i] - x[j], y[i] - y[j]) < (radius[i] + radius[j]) * (1 - _EPS)
    return result


def _assign(i: IntArray, j: IntArray, partner: IntArray) -> None:
    """Record each overlap for both circles, keeping a partner already found."""
    for a, b in ((i, j), (j, i)):
        free = partner[a] < 0
        partner[a[free]] = b[free]


# --- areas ------------------------------------------------------------------------------------


def _check_area_overlaps(
    ctx: _Context, sections: list[shapely.Polygon | None], ga_areas: list[shapely.Polygon | None]
) -> None:
    """A GA area's interior may not meet a section's or another GA area's interior."""
    named = [("ga", i, p) for i, p in enumerate(ga_areas) if p is not None]
    if not named:
        return
    named += [("section", i, p) for i, p in enumerate(sections) if p is not None]
    geoms = np.array([p for _, _, p in named], dtype=object)
    tree = STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right  # GA areas come first, so `left` is always a GA area
    keep &= np.array([named[a][0] == "ga" for a in left], dtype=np.bool_)
    left, right = left[keep], right[keep]
    interiors = shapely.relate_pattern(geoms[left], geoms[right], "T********")
    for a, b in zip(left[interiors], right[interiors], strict=True):
        area = ctx.map.ga_areas[named[a][1]]
        kind, index, _ = named[b]
        other = ctx.map.ga_areas[index] if kind == "ga" else ctx.map.sections[index]
        other_kind = "general-admission area" if kind == "ga" else "section"
        message = (
            f"general-admission area '{area.id}' ('{area.label}') overlaps "
            f"{other_kind} '{other.id}' ('{other.label}')"
        )
        ctx.out.add("ga_area_overlap", f"ga_areas[{named[a][1]}]", message, area.id)
