"""Tiny hand-built seat maps for the index, best-available and render tests.

Built directly from the model Structs (not from ``seatmap.generate``) so these
tests pin the behaviour of one module at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from seatmap.model import Category, GeneralAdmissionArea, Point, Row, Seat, SeatMap, Section, Table

PITCH = 50.0  # seat spacing along a row (the default seat size: seats touch)
ROW_PITCH = 60.0
CATEGORIES = [Category("std", "Standard", "#1f77b4"), Category("vip", "VIP", "#d62728")]

SeatFlags = Mapping[tuple[int, int], Mapping[str, Any]]


def grid_section(
    section_id: str,
    rows: int,
    seats_per_row: int,
    *,
    x0: float = 0.0,
    y0: float = 100.0,
    category: str = "std",
    flags: SeatFlags | None = None,
    tables: list[Table] | None = None,
) -> Section:
    """Straight rows one behind the other; row ``r`` is at ``y0 + r * ROW_PITCH``.

    Seat ids are ``{section}-{row}-{seat}`` (0-based), row ids ``R{row}``.
    ``flags`` maps ``(row, seat)`` to extra Seat fields (``wheelchair=True``...).
    """
    flags = flags or {}
    built = []
    for r in range(rows):
        seats = [
            Seat(
                id=f"{section_id}-{r}-{i}",
                label=str(i + 1),
                position=Point(x0 + PITCH / 2 + i * PITCH, y0 + r * ROW_PITCH),
                category=category,
                **dict(flags.get((r, i), {})),
            )
            for i in range(seats_per_row)
        ]
        built.append(Row(id=f"R{r}", label=chr(ord("A") + r % 26), seats=seats))
    width = seats_per_row * PITCH
    outline = [
        Point(x0, y0 - ROW_PITCH / 2),
        Point(x0 + width, y0 - ROW_PITCH / 2),
        Point(x0 + width, y0 + rows * ROW_PITCH),
        Point(x0, y0 + rows * ROW_PITCH),
    ]
    return Section(id=section_id, label=section_id.upper(), outline=outline, rows=built, tables=tables or [])


def grid_map(
    rows: int = 4,
    seats_per_row: int = 10,
    *,
    sections: int = 1,
    flags: SeatFlags | None = None,
    focal: Point | None = None,
    categories_by_section: list[str] | None = None,
) -> SeatMap:
    """``sections`` grids side by side (200 units apart), focal point centred in front of them."""
    width = seats_per_row * PITCH
    built = [
        grid_section(
            f"s{k}",
            rows,
            seats_per_row,
            x0=k * (width + 200.0),
            category=categories_by_section[k] if categories_by_section else "std",
            flags=flags if k == 0 else None,
        )
        for k in range(sections)
    ]
    total = sections * width + (sections - 1) * 200.0
    return SeatMap(
        name="Grid",
        categories=CATEGORIES,
        sections=built,
        focal_point=focal if focal is not None else Point(total / 2, 0.0),
    )


def table_seats(table_id: str, cx: float, cy: float, count: int, radius: float = 80.0) -> list[Seat]:
    return [
        Seat(
            id=f"{table_id}-{i}",
            label=str(i + 1),
            position=Point(
                cx + radius * math.cos(2 * math.pi * i / count),
                cy + radius * math.sin(2 * math.pi * i / count),
            ),
            category="vip",
        )
        for i in range(count)
    ]


def table_map(*, book_whole: bool = False, count: int = 6) -> SeatMap:
    """One row of 4 seats and two tables of ``count`` seats (the second maybe sold whole)."""
    tables = [
        Table(
            id="T1",
            label="Table 1",
            center=Point(200, 400),
            radius=50,
            seats=table_seats("T1", 200, 400, count),
        ),
        Table(
            id="T2",
            label="Table 2",
            center=Point(500, 400),
            radius=50,
            seats=table_seats("T2", 500, 400, count),
            book_whole=book_whole,
        ),
    ]
    section = grid_section("hall", 1, 4, tables=tables)
    return SeatMap(name="Gala", categories=CATEGORIES, sections=[section], focal_point=Point(100, 0))


def ga_map() -> SeatMap:
    ga = GeneralAdmissionArea(
        id="floor",
        label="Floor",
        outline=[Point(0, 500), Point(500, 500), Point(500, 800), Point(0, 800)],
        capacity=1200,
        category="std",
    )
    return SeatMap(
        name="Club",
        categories=CATEGORIES,
        sections=[grid_section("s0", 2, 5)],
        ga_areas=[ga],
    )
