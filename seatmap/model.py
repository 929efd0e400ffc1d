"""The venue layout as msgspec Structs: the native seat-map format.

Coordinates are in abstract layout units on a plane whose origin is the
top-left corner, x growing to the right and y growing *down* (the SVG
convention, so a map renders without flipping). A unit is whatever the
organizer drew in; the generators use one unit = 1 cm. Seats are circles:
``position`` is the centre and ``size`` the diameter (defaulting to the map's
``seat_size``).

The JSON form of every Struct is the wire format documented in
``docs/seatmap-format.md``; unknown fields are rejected so a typo never goes
unnoticed. Structs are frozen: a seat map version, once decoded, is a value.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec

FORMAT_VERSION = 1

# Identifiers are used in Redis keys, URLs and error messages: keep them short
# and free of separators that could be confused with our own.
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Label = Annotated[str, msgspec.Meta(max_length=64)]
Color = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$")]
# Integers are 64-bit signed everywhere they go (protobuf int64, Redis, msgpack):
# msgspec alone would also take 2^63..2^64-1.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class Point(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A point ``[x, y]`` in layout units (array-encoded: maps are mostly points)."""

    x: float
    y: float


class Category(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A price category; events put a price on each key."""

    key: Identifier
    label: Label
    color: Color = "#1f77b4"


class Seat(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One bookable seat. ``id`` is stable across versions of a map."""

    id: Identifier
    label: Label
    position: Point
    category: Identifier
    size: float | None = None
    wheelchair: bool = False  # a wheelchair space (often no chair at all)
    companion: bool = False  # a companion seat next to a wheelchair space
    restricted_view: bool = False
    aisle: bool = False


class Row(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Seats in their physical order along the row (adjacency follows this order)."""

    id: Identifier
    label: Label
    seats: list[Seat]


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A table with seats around it, sold either whole or seat by seat."""

    id: Identifier
    label: Label
    center: Point
    radius: float
    seats: list[Seat]
    book_whole: bool = False


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A block of the venue: an outline polygon holding rows and tables."""

    id: Identifier
    label: Label
    outline: list[Point]
    rows: list[Row] = []
    tables: list[Table] = []


class GeneralAdmissionArea(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Standing room or unnumbered seating: sold by quantity up to ``capacity``."""

    id: Identifier
    label: Label
    outline: list[Point]
    capacity: Int64
    category: Identifier


AreaKind = Literal["stage", "other"]


class Area(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Something drawn that is not sold: a stage, a pitch, a bar, a mixing desk.

    ``kind="stage"`` marks what the audience watches (a stage, pitch, court or ring):
    without an explicit ``focal_point`` best available ranks seats by distance to it.
    """

    id: Identifier
    outline: list[Point]
    label: Label = ""
    kind: AreaKind = "other"
    color: Color | None = None  # the renderer's default for the kind when None


class SeatMap(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A whole venue layout: the unit that is validated, stored and versioned."""

    name: Label
    categories: list[Category]
    sections: list[Section] = []
    ga_areas: list[GeneralAdmissionArea] = []
    areas: list[Area] = []  # drawn, never sold
    focal_point: Point | None = None  # the stage; best-available ranks by distance to it
    seat_size: float = 50.0
    format_version: Int64 = FORMAT_VERSION


# Encoders and decoders are built once (msgspec's own performance advice).
json_decoder = msgspec.json.Decoder(SeatMap)
json_encoder = msgspec.json.Encoder()
msgpack_decoder = msgspec.msgpack.Decoder(SeatMap)
msgpack_encoder = msgspec.msgpack.Encoder()


SeatPlacement = Literal["row", "table"]


class PlacedSeat(msgspec.Struct, frozen=True):
    """A seat with where it sits; ``ordinal`` is its position in :func:`iter_seats` order.

    The ordinal is what the inventory stores per seat: it is stable for one
    published version of a map.
    """

    ordinal: int
    seat: Seat
    section_id: str
    placement: SeatPlacement
    group_id: str  # the row id or table id
    index_in_group: int


def iter_seats(seatmap: SeatMap) -> list[PlacedSeat]:
    """Every seat in canonical order: sections, then each section's rows, then its tables."""
    placed: list[PlacedSeat] = []
    for section in seatmap.sections:
        for row in section.rows:
            for i, seat in enumerate(row.seats):
                placed.append(PlacedSeat(len(placed), seat, section.id, "row", row.id, i))
        for table in section.tables:
            for i, seat in enumerate(table.seats):
                placed.append(PlacedSeat(len(placed), seat, section.id, "table", table.id, i))
    return placed


def centroid(outline: list[Point]) -> Point:
    """The centroid of a polygon (the mean of its vertices when it encloses no area)."""
    if not outline:
        return Point(0.0, 0.0)
    # Relative to the first vertex: far-off coordinates keep their precision.
    ox, oy = outline[0].x, outline[0].y
    twice_area = cx = cy = 0.0
    for a, b in zip(outline, [*outline[1:], outline[0]], strict=True):
        ax, ay, bx, by = a.x - ox, a.y - oy, b.x - ox, b.y - oy
        cross = ax * by - bx * ay
        twice_area += cross
        cx += (ax + bx) * cross
        cy += (ay + by) * cross
    if twice_area == 0 or not math.isfinite(twice_area):
        n = len(outline)
        return Point(sum(p.x for p in outline) / n, sum(p.y for p in outline) / n)
    return Point(ox + cx / (3 * twice_area), oy + cy / (3 * twice_area))


def focal_point(seatmap: SeatMap) -> Point | None:
    """What best available ranks by: ``focal_point``, else the centroid of the first stage area."""
    if seatmap.focal_point is not None:
        return seatmap.focal_point
    for area in seatmap.areas:
        if area.kind == "stage" and area.outline:
            return centroid(area.outline)
    return None
