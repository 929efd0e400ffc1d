"""Import a pretix seating plan (the JSON of pretix's seating module) as a native seat map.

The pretix format is described by ``src/pretix/static/seating/seating-plan.schema.json``
in pretix/pretix; seat positions are resolved the way pretix itself does it in
``SeatingPlan.iter_all_seats`` (``src/pretix/base/models/seating.py``): a seat's
absolute position is ``zone.position + row.position + seat.position``.

Mapping (pretix -> native):

* ``name`` -> ``name``. ``size`` is not needed (our maps have no canvas) and is ignored.
* ``categories[].name`` -> ``Category.key`` (slugified: lowercase ASCII, ``-`` between
  words, de-duplicated with ``-2``, ``-3``... in order) and ``Category.label`` (the name
  as is); ``color`` is kept when it is ``#rgb``/``#rrggbb``, else a palette colour.
* ``zones[]`` -> ``sections[]``; id from ``zone_id`` or ``name`` (slugified), label from
  ``name``. The shapes of zones without seats (stages, bars), and shapes of seated zones
  that do not touch their seats, become drawn ``areas[]``, labelled with the text written
  on them or their zone's name.
* The stage: the area named by the caller, else the largest area named like a stage or
  pitch in a common language (:data:`STAGE_WORDS`), else the only area covering at least
  :data:`LARGE_AREA_SHARE` of the seats' bounding box. It gets ``kind="stage"`` and its
  centroid becomes the ``focal_point`` unless the caller gives one; with no focal point
  :func:`import_pretix` warns (best available would aim at the centre of the map).
* ``zones[].rows[]`` -> ``rows[]``; label ``row_number``, id ``<section id>-<row number>``.
  Rows without seats are dropped.
* ``rows[].seats[]`` -> ``seats[]``; ``seat_guid`` -> ``id`` (kept when it is already a
  valid identifier, else sanitised and suffixed with a hash of the guid, so the result is
  deterministic and cannot collide), ``seat_number`` -> ``label``, ``category`` -> the
  category's key (an undefined name maps to ``unknown:<slug>``, which validation reports),
  ``radius`` (pretix default 10) -> ``size = 2 * radius``; the map's ``seat_size`` is 20.
* A section's outline is the convex hull of its seat circles (padded by ``OUTLINE_PAD``)
  together with every shape in ``zones[].areas[]`` that touches them, so a background
  drawn around the seats becomes the outline while a distant stage does not stretch it.
  Area geometry: ``position`` is relative to the zone; a rectangle's position is its
  top-left corner, a circle's or ellipse's its centre, a polygon's points are relative
  to it; ``rotation`` is in degrees clockwise around ``position``. Text is ignored.
  Legacy areas with ``width``/``height`` and no ``shape`` are rectangles.

The schema is decoded with lenient Structs (unknown fields such as ``uuid`` or
``start_direction`` are ignored); anything malformed, or a seat beyond the native
coordinate cap, raises :class:`SeatMapDecodeError`.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
import shapely

from seatmap.errors import SeatMapDecodeError, StageNotFound
from seatmap.limits import DEFAULT_LIMITS
from seatmap.model import Area, Category, Point, Row, Seat, SeatMap, Section, centroid

PRETIX_SEAT_RADIUS = 10.0  # the schema's documented default
OUTLINE_PAD = 5.0  # room between the outermost seat circle and the derived outline
# Beyond the native format's coordinate cap a plan cannot be valid, and huge values
# overflow the outline geometry: such plans are rejected as malformed.
MAX_COORDINATE = DEFAULT_LIMITS.max_coordinate
_LABEL_MAX = 64
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_.:\-]+")
_HEX_COLOR = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


class _Position(msgspec.Struct):
    x: float
    y: float


class _Category(msgspec.Struct):
    name: str
    color: str | None = None


class _Seat(msgspec.Struct):
    seat_guid: str
    seat_number: str | int
    position: _Position
    category: str
    radius: float | None = None


class _Row(msgspec.Struct):
    row_number: str | int
    seats: list[_Seat]
    position: _Position | None = None


class _Points(msgspec.Struct):
    points: list[_Position]


class _Rectangle(msgspec.Struct):
    width: float
    height: float


class _Circle(msgspec.Struct):
    radius: float


class _Ellipse(msgspec.Struct):
    radius: _Position


class _Text(msgspec.Struct):
    text: str = ""


class _Area(msgspec.Struct):
    shape: str | None = None
    color: str | None = None
    text: _Text | None = None
    position: _Position | None = None
    rotation: float | None = None
    polygon: _Points | None = None
    rectangle: _Rectangle | None = None
    circle: _Circle | None = None
    ellipse: _Ellipse | None = None
    width: float | None = None  # schema 0.0.1: every area was a rectangle
    height: float | None = None


class _Zone(msgspec.Struct):
    rows: list[_Row]
    name: str = ""
    zone_id: str | None = None
    position: _Position | None = None
    areas: list[_Area] = []


class _Plan(msgspec.Struct):
    name: str
    categories: list[_Category]
    zones: list[_Zone]


_decoder = msgspec.json.Decoder(_Plan)


class PretixImport(msgspec.Struct, frozen=True):
    """An imported plan, the stage recognised in it (its label) and what the organizer should check."""

    seatmap: SeatMap
    stage: str | None
    warnings: list[str]


def from_pretix(data: bytes, *, focal_point: Point | None = None, stage_area: str | None = None) -> SeatMap:
    """Convert a pretix seating-plan JSON document; raise :class:`SeatMapDecodeError` if malformed."""
    return import_pretix(data, focal_point=focal_point, stage_area=stage_area).seatmap


def import_pretix(
    data: bytes, *, focal_point: Point | None = None, stage_area: str | None = None
) -> PretixImport:
    """:func:`from_pretix` with the stage it found and warnings (no focal point found, areas dropped).

    ``stage_area`` names the stage (a zone name, the text written on an area, or an area id)
    instead of recognising it; :class:`StageNotFound` when nothing has that name.
    ``focal_point`` overrides the focal point taken from the stage.
    """
    try:
        plan = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        message = str(exc)
        at = message.rfind(" - at `")
        path = message[at + 7 : -1] if at >= 0 and message.endswith("`") else "$"
        raise SeatMapDecodeError(f"not a pretix seating plan: {message}", path) from exc
    except msgspec.DecodeError as exc:
        raise SeatMapDecodeError(f"not a pretix seating plan: {exc}", "$") from exc
    keys = _category_keys(plan.categories)
    categories: dict[str, Category] = {}
    for i, c in enumerate(plan.categories):
        key = keys[c.name]
        categories.setdefault(key, Category(key=key, label=_label(c.name, key), color=_color(c.color, i)))
    seat_ids = _seat_ids(plan)
    area_ids = _Unique()  # sections and drawn areas share the native id namespace
    row_ids = _Unique()
    sections = []
    drawn: list[_Drawn] = []
    for zi, zone in enumerate(plan.zones):
        if any(row.seats for row in zone.rows):
            section, leftover = _section(zone, zi, keys, seat_ids, area_ids, row_ids)
            sections.append(section)
            drawn += _drawn(zone, zi, leftover, seated=True)
        else:
            zx, zy = _xy(zone.position)
            shapes = [(area, _area_shape(area, zx, zy)) for area in zone.areas]
            drawn += _drawn(zone, zi, shapes, seated=False)
    warnings: list[str] = []
    drawn = [d for d in drawn if _usable(d, warnings)]
    stage = _find_stage(drawn, sections, stage_area)
    areas = [
        Area(
            id=area_ids(_slug(d.zone_id or d.label or d.zone_name, "area")),
            outline=d.outline,
            label=_label(d.label, "")[:_LABEL_MAX],
            kind="stage" if d is stage else "other",
            color=_color(d.color, 0) if d.color and _HEX_COLOR.match(d.color.strip()) else None,
        )
        for d in drawn
    ]
    if focal_point is None and stage is not None:
        focal_point = centroid(stage.outline)
    if focal_point is None:
        names = sorted({d.label or d.zone_name for d in drawn} - {""})
        listed = f" (areas: {', '.join(repr(n) for n in names)})" if names else ""
        warnings.append(
            f"no stage recognised among {len(drawn)} drawn area(s){listed} and no focal point given: "
            "best available will rank seats by distance to the centre of the map"
        )
    seatmap = SeatMap(
        name=_label(plan.name, "Imported seating plan"),
        categories=list(categories.values()),
        sections=sections,
        areas=areas,
        focal_point=focal_point,
        seat_size=2 * PRETIX_SEAT_RADIUS,
    )
    return PretixImport(seatmap, stage.label or stage.zone_name if stage else None, warnings)


class _Unique:
    """Hands out slug ids, suffixing ``-2``, ``-3``... on repeats (deterministic: input order)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def __call__(self, wanted: str) -> str:
        candidate, n = wanted, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{wanted[: _LABEL_MAX - 1 - len(str(n))]}-{n}"
        self.taken.add(candidate)
        return candidate


def _slug(text: str, fallback: str, length: int = 48) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:length].strip("-")
    return slug or fallback


def _label(text: str, fallback: str) -> str:
    text = text.strip()
    return (text or fallback)[:_LABEL_MAX]


def _color(color: str | None, index: int) -> str:
    if color and _HEX_COLOR.match(color.strip()):
        digits = color.strip()[1:]
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return f"#{digits.lower()}"
    return _PALETTE[index % len(_PALETTE)]


def _category_keys(categories: list[_Category]) -> dict[str, str]:
    """pretix category name -> native key; a repeated name is the same category."""
    unique = _Unique()
    keys: dict[str, str] = {}
    for category in categories:
        if category.name not in keys:
            keys[category.name] = unique(_slug(category.name, "category"))
    return keys


def _seat_ids(plan: _Plan) -> dict[str, str]:
    """seat_guid -> seat id. Valid guids are kept; others get a sanitised, hash-suffixed id.

    A repeated guid keeps one id, so validation reports the duplicate as pretix would.
    """
    guids = [seat.seat_guid for zone in plan.zones for row in zone.rows for seat in row.seats]
    ids = {g: g for g in guids if _IDENTIFIER.match(g)}
    taken = set(ids)
    for guid in guids:
        if guid in ids:
            continue
        base = _NOT_IDENTIFIER.sub("_", guid)[:40] or "seat"
        digest = hashlib.sha256(guid.encode()).hexdigest()
        for length in (8, 16, 23):
            candidate = f"{base}.{digest[:length]}"
            if candidate not in taken:
                break
        else:
            raise SeatMapDecodeError(
                f"seat_guid {guid!r} cannot be given an id that is not already taken", "$"
            )
        ids[guid] = candidate
        taken.add(candidate)
    return ids


def _section(
    zone: _Zone,
    zi: int,
    keys: dict[str, str],
    seat_ids: dict[str, str],
    section_ids: _Unique,
    row_ids: _Unique,
) -> tuple[Section, list[tuple[_Area, shapely.Polygon | None]]]:
    """The zone's section, and its areas that are not part of the section's outline."""
    zx, zy = _xy(zone.position)
    section_id = section_ids(_slug(zone.zone_id or zone.name, f"zone-{zi + 1}"))
    rows = []
    circles: list[tuple[float, float, float]] = []
    for ri, row in enumerate(zone.rows):
        if not row.seats:
            continue
        rx, ry = _xy(row.position)
        row_label = _label(str(row.row_number), str(ri + 1))
        seats = []
        for si, seat in enumerate(row.seats):
            x, y = zx + rx + seat.position.x, zy + ry + seat.position.y
            radius = PRETIX_SEAT_RADIUS if seat.radius is None else seat.radius
            if max(abs(x), abs(y), abs(radius)) > MAX_COORDINATE:
                path = f"$.zones[{zi}].rows[{ri}].seats[{si}]"
                raise SeatMapDecodeError(f"seat {seat.seat_guid!r} lies beyond ±{MAX_COORDINATE:g}", path)
            circles.append((x, y, radius))
            category = keys.get(seat.category) or f"unknown:{_slug(seat.category, 'category')}"
            seats.append(
                Seat(
                    id=seat_ids[seat.seat_guid],
                    label=_label(str(seat.seat_number), str(si + 1)),
                    position=Point(x, y),
                    category=category,
                    size=None if radius == PRETIX_SEAT_RADIUS else 2 * radius,
                )
            )
        row_id = row_ids(f"{section_id}-{_slug(row_label, str(ri + 1), 16)}")
        rows.append(Row(id=row_id, label=row_label, seats=seats))
    shapes = [(area, _area_shape(area, zx, zy)) for area in zone.areas]
    outline, used = _outline(circles, [a for _, a in shapes if a is not None])
    if len(outline) < 3:  # cannot happen with bounded coordinates; never emit a broken section
        raise SeatMapDecodeError(f"zone {zone.name!r} has no usable outline", f"$.zones[{zi}]")
    leftover = [(area, shape) for area, shape in shapes if shape is None or shape not in used]
    section = Section(id=section_id, label=_label(zone.name, f"Zone {zi + 1}"), outline=outline, rows=rows)
    return section, leftover


def _xy(position: _Position | None) -> tuple[float, float]:
    return (0.0, 0.0) if position is None else (position.x, position.y)


def _area_shape(area: _Area, zx: float, zy: float) -> shapely.Polygon | None:
    """The area as a polygon in absolute coordinates, or None for text and unknown shapes."""
    px, py = _xy(area.position)
    shape = area.shape or ("rectangle" if area.width is not None and area.height is not None else None)
    if shape == "rectangle":
        width, height = (
            (area.rectangle.width, area.rectangle.height) if area.rectangle else (area.width, area.height)
        )
        if width is None or height is None:
            return None
        local = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    elif shape == "polygon" and area.polygon is not None:
        local = [(p.x, p.y) for p in area.polygon.points]
    elif shape == "circle" and area.circle is not None:
        r = area.circle.radius
        local = _ellipse(r, r)
    elif shape == "ellipse" and area.ellipse is not None:
        local = _ellipse(area.ellipse.radius.x, area.ellipse.radius.y)
    else:
        return None
    angle = math.radians(area.rotation or 0.0)
    cos, sin = math.cos(angle), math.sin(angle)
    # y grows downwards, so this standard rotation turns clockwise on screen (SVG's rotate()).
    ring = [(zx + px + x * cos - y * sin, zy + py + x * sin + y * cos) for x, y in local]
    # Areas are only a hint for the outline: drop what cannot be one rather than fail.
    if len(ring) < 3 or any(not abs(v) <= MAX_COORDINATE for point in ring for v in point):
        return None
    polygon = shapely.Polygon(ring)
    return polygon if polygon.is_valid and polygon.area > 0 else None


def _ellipse(rx: float, ry: float, segments: int = 32) -> list[tuple[float, float]]:
    # Vertices on the ellipse: the polygon is slightly inside it, fine for an outline hint.
    return [
        (rx * math.cos(2 * math.pi * k / segments), ry * math.sin(2 * math.pi * k / segments))
        for k in range(segments)
    ]


def _outline(
    circles: Iterable[tuple[float, float, float]], areas: list[shapely.Polygon]
) -> tuple[list[Point], list[shapely.Polygon]]:
    """Convex hull of the padded seat circles and of the areas that touch them (also returned)."""
    circles = list(circles)
    centres = shapely.MultiPoint([(x, y) for x, y, _ in circles])
    reach = max(0.0, *(r for _, _, r in circles)) + OUTLINE_PAD
    # A mitred buffer of the hull contains every circle of radius `reach` around the centres;
    # square caps do the same for the degenerate hulls of one seat or a straight row.
    seats = shapely.convex_hull(centres).buffer(reach, join_style="mitre", cap_style="square")
    touching = [a for a in areas if a.intersects(seats)]
    hull = shapely.convex_hull(shapely.union_all([seats, *touching]))
    if not isinstance(hull, shapely.Polygon):
        return [], touching
    return _points(hull), touching


def _points(polygon: shapely.Polygon) -> list[Point]:
    return [Point(round(x, 3), round(y, 3)) for x, y in list(polygon.exterior.coords)[:-1]]


# --- drawn areas and the stage ----------------------------------------------------------------

# Words naming what the audience watches, slugified (lowercase ASCII): English, German,
# French, Spanish, Italian, Portuguese, Dutch, Polish, Czech, Swedish, Danish/Norwegian,
# Finnish, Hungarian, Turkish; and the pitch, court or ring of sports venues.
STAGE_WORDS = frozenset(
    {
        "stage", "buhne", "buehne", "scene", "escenario", "palco", "palcoscenico", "scena",
        "podium", "podio", "toneel", "scen", "scenen", "lava", "szinpad", "sahne",
        "estrado", "tarima", "pitch", "field", "court", "spielfeld", "spielflache", "spielflaeche",
        "feld", "rink", "ring", "campo", "cancha", "veld", "boisko", "hriste", "kentta",
    }
)  # fmt: skip
# Long enough to be recognised inside compound words ("Hauptbühne", "Bühnenrand").
_COMPOUND = tuple(w for w in STAGE_WORDS if len(w) >= 5)
# Without a name, the stage is the only drawn area at least this share of the seats' bounding box.
LARGE_AREA_SHARE = 0.04


@dataclass(eq=False)
class _Drawn:
    """A pretix area that is not part of a section outline: drawn, and perhaps the stage."""

    zone_name: str
    zone_id: str | None
    label: str  # text written inside it, else the name of its seatless zone
    outline: list[Point]
    polygon: shapely.Polygon
    color: str | None


def _drawn(
    zone: _Zone, zi: int, shapes: list[tuple[_Area, shapely.Polygon | None]], *, seated: bool
) -> list[_Drawn]:
    texts = [
        (area.text.text.strip(), shapely.Point(*_xy(area.position)))
        for area, shape in shapes
        if shape is None and area.text is not None and area.text.text.strip()
    ]
    zx, zy = _xy(zone.position)
    texts = [(t, shapely.Point(p.x + zx, p.y + zy)) for t, p in texts]
    out = []
    for area, shape in shapes:
        if shape is None:
            continue
        written = " ".join(t for t, point in texts if shape.covers(point))
        label = written or ("" if seated else zone.name.strip())
        out.append(_Drawn(zone.name.strip(), zone.zone_id, label, _points(shape), shape, area.color))
    return out


def _usable(drawn: _Drawn, warnings: list[str]) -> bool:
    """Rounded to 3 decimals the outline must still be a polygon of at most the vertex cap."""
    name = drawn.label or drawn.zone_name or "an unnamed area"
    if len(drawn.outline) > DEFAULT_LIMITS.max_vertices_per_polygon:
        warnings.append(
            f"area {name!r} has more than {DEFAULT_LIMITS.max_vertices_per_polygon} vertices: dropped"
        )
        return False
    polygon = shapely.Polygon([(p.x, p.y) for p in drawn.outline])
    if len(drawn.outline) < 3 or not polygon.is_valid or polygon.area <= 0:
        warnings.append(f"area {name!r} is too small or malformed to draw: dropped")
        return False
    return True


def _names(drawn: _Drawn) -> set[str]:
    return {n.casefold() for n in (drawn.label, drawn.zone_name, drawn.zone_id or "") if n}


def _is_stage_name(name: str) -> bool:
    words = _slug(name, "", 64).split("-")
    return any(w in STAGE_WORDS or w.startswith(_COMPOUND) or w.endswith(_COMPOUND) for w in words if w)


def _find_stage(drawn: list[_Drawn], sections: list[Section], wanted: str | None) -> _Drawn | None:
    """The named area; else the largest area named like a stage; else the only large area."""
    if wanted is not None:
        named = [d for d in drawn if wanted.strip().casefold() in _names(d)]
        if not named:
            names = sorted({d.label or d.zone_name for d in drawn} - {""})
            listed = ", ".join(repr(n) for n in names) or "none has a name"
            raise StageNotFound(f"no drawn area is named {wanted!r}; the plan's areas: {listed}")
        return max(named, key=lambda d: d.polygon.area)
    by_name = [d for d in drawn if any(_is_stage_name(n) for n in _names(d))]
    if by_name:
        return max(by_name, key=lambda d: d.polygon.area)
    xs = [p.x for s in sections for p in s.outline]
    ys = [p.y for s in sections for p in s.outline]
    seats_box = (max(xs) - min(xs)) * (max(ys) - min(ys)) if xs else 0.0
    large = [d for d in drawn if d.polygon.area >= LARGE_AREA_SHARE * seats_box]
    return large[0] if len(large) == 1 else None
