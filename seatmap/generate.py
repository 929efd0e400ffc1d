"""Deterministic synthetic venues for tests, demos and load tests.

Every generator returns a map that passes :func:`seatmap.validation.validate`;
the same seed always yields the same map, and the seed only moves details
(which seats a pillar or roof support obstructs, which rows are production kills),
never the seat count range. Units are centimetres: seats are 50 cm circles at a
55 cm pitch, rows 80-90 cm deep, wheelchair spaces 90 cm.

Blocks of seats are annular sectors: rows are arcs around a centre, one section
per block, its outline the sector padded so every seat circle lies inside it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from seatmap.model import Area, Category, GeneralAdmissionArea, Point, Row, Seat, SeatMap, Section, Table

SEAT_SIZE = 50.0
WHEELCHAIR_SIZE = 90.0
PITCH = 55.0  # seat centre to seat centre along a row
WHEELCHAIR_PITCH = 100.0  # wheelchair space and companion seat, alternating
MARGIN = 15.0  # clearance between the outermost seat and its section's outline
AISLE = 120.0  # walkway between neighbouring blocks, at their front row
_ARC_STEP = math.radians(3)  # outline arcs are sampled at least this finely


class Style(NamedTuple):
    """How one seat is sold: its category and whether its view is obstructed."""

    category: str
    restricted_view: bool = False


# (row index, seat index, seats in row) -> Style
Styler = Callable[[int, int, int], Style]


@dataclass(frozen=True)
class Block:
    """An annular sector of seats: rows are arcs around ``centre``."""

    section_id: str
    label: str
    centre: tuple[float, float]
    first_radius: float
    row_depth: float
    rows: int
    start_angle: float  # radians; seat centres stay within [start_angle, end_angle]
    end_angle: float
    lettered_rows: bool = False  # rows A, B, C... instead of 1, 2, 3...
    aisle_ends: tuple[bool, bool] = (True, True)  # is there an aisle at the row's first/last seat?
    accessible_pairs: int = 0  # wheelchair space + companion seat pairs in an extra back row
    accessible_category: str = ""
    skipped_rows: int = 0  # front rows not built (production kills); labels keep counting


def build_block(block: Block, style: Styler) -> Section:
    """The section for one block: its rows of seats and a sector outline around them."""
    rows = [_row(block, r, style) for r in range(block.skipped_rows, block.rows)]
    outer = block.first_radius + (block.rows - 1) * block.row_depth + SEAT_SIZE / 2
    widest = SEAT_SIZE
    if block.accessible_pairs:
        rows.append(_accessible_row(block))
        outer = _accessible_radius(block) + WHEELCHAIR_SIZE / 2
        widest = WHEELCHAIR_SIZE
    inner = block.first_radius + block.skipped_rows * block.row_depth - SEAT_SIZE / 2
    pad = math.asin((widest / 2 + MARGIN) / block.first_radius)
    outline = sector_outline(
        block.centre, inner - MARGIN, outer + MARGIN, block.start_angle - pad, block.end_angle + pad
    )
    return Section(id=block.section_id, label=block.label, outline=outline, rows=rows)


def sector_outline(
    centre: tuple[float, float], inner: float, outer: float, start: float, end: float
) -> list[Point]:
    """A polygon containing the annular sector (the outer arc's chords pushed out to cover it)."""
    steps = max(2, math.ceil((end - start) / _ARC_STEP))
    step = (end - start) / steps
    outer /= math.cos(step / 2)  # chords of the inner arc fall outside the sector anyway
    cx, cy = centre
    angles = [start + k * step for k in range(steps + 1)]
    ring = [(cx + outer * math.cos(a), cy + outer * math.sin(a)) for a in angles]
    ring += [(cx + inner * math.cos(a), cy + inner * math.sin(a)) for a in reversed(angles)]
    return [Point(round(x, 1), round(y, 1)) for x, y in ring]


def _arc_angles(
    radius: float, start: float, end: float, pitch: float, limit: int | None = None
) -> list[float]:
    """Angles of seats at ``pitch`` along the arc, centred in [start, end]."""
    step = pitch / radius
    count = int((end - start) / step) + 1
    if limit is not None:
        count = min(count, limit)
    first = (start + end) / 2 - (count - 1) * step / 2
    return [first + k * step for k in range(count)]


def _row_label(block: Block, r: int) -> str:
    return _letters(r) if block.lettered_rows else str(r + 1)


def _letters(n: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (theatre row lettering)."""
    text = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        text = chr(ord("A") + rest) + text
    return text


def _row(block: Block, r: int, style: Styler) -> Row:
    label = _row_label(block, r)
    row_id = f"{block.section_id}-{label}" if block.lettered_rows else f"{block.section_id}-R{label}"
    radius = block.first_radius + r * block.row_depth
    cx, cy = block.centre
    angles = _arc_angles(radius, block.start_angle, block.end_angle, PITCH)
    n = len(angles)
    seats = []
    for k, a in enumerate(angles):
        category, restricted = style(r, k, n)
        seats.append(
            Seat(
                id=f"{row_id}-{k + 1}",
                label=str(k + 1),
                position=Point(round(cx + radius * math.cos(a), 1), round(cy + radius * math.sin(a), 1)),
                category=category,
                restricted_view=restricted,
                aisle=(k == 0 and block.aisle_ends[0]) or (k == n - 1 and block.aisle_ends[1]),
            )
        )
    return Row(id=row_id, label=label, seats=seats)


def _accessible_radius(block: Block) -> float:
    # Behind the last row, far enough back for the wider wheelchair spaces.
    last = block.first_radius + (block.rows - 1) * block.row_depth
    return last + block.row_depth + (WHEELCHAIR_SIZE - SEAT_SIZE) / 2


def _accessible_row(block: Block) -> Row:
    row_id = f"{block.section_id}-WC"
    radius = _accessible_radius(block)
    cx, cy = block.centre
    angles = _arc_angles(
        radius, block.start_angle, block.end_angle, WHEELCHAIR_PITCH, limit=2 * block.accessible_pairs
    )
    seats = []
    for k, a in enumerate(angles):
        wheelchair = k % 2 == 0
        number = k // 2 + 1
        label = f"W{number}" if wheelchair else f"C{number}"
        seats.append(
            Seat(
                id=f"{row_id}-{label}",
                label=label,
                position=Point(round(cx + radius * math.cos(a), 1), round(cy + radius * math.sin(a), 1)),
                category=block.accessible_category,
                size=WHEELCHAIR_SIZE if wheelchair else None,
                wheelchair=wheelchair,
                companion=not wheelchair,
            )
        )
    return Row(id=row_id, label="WC", seats=seats)


def _gap(first_radius: float, widest: float = WHEELCHAIR_SIZE) -> float:
    """Angle between neighbouring blocks: both outline paddings plus an aisle."""
    return 2 * math.asin((widest / 2 + MARGIN) / first_radius) + AISLE / first_radius


def _obstructions(rng: random.Random, blocks: int, rows: int, count: int) -> set[tuple[int, int, float]]:
    """Where pillars or roof supports stand: (block, row, fraction along the row)."""
    return {(rng.randrange(blocks), rng.randrange(rows), rng.random()) for _ in range(count)}


def _obstructed(spots: set[tuple[int, int, float]], block: int, r: int, k: int, n: int) -> bool:
    # The seat in front of the support and its two neighbours cannot see past it.
    return any(b == block and row == r and abs(k - int(f * n)) <= 1 for b, row, f in spots)


# --- theatre ----------------------------------------------------------------------------------


def theatre(seed: int = 0) -> SeatMap:
    """A proscenium theatre: curved stalls in three blocks, a balcony, eight boxes, ~1,200 seats."""
    rng = random.Random(seed)
    stage = (2400.0, 500.0)
    centre = (stage[0], stage[1] - 800)  # rows curve around a point behind the stage front
    down = math.pi / 2  # y grows downwards, so the audience sits at angles around 90°
    inner, side_from, side_to = math.radians(11), math.radians(20), math.radians(40)
    pillars = _obstructions(rng, 3, 8, 3)

    def stalls_style(block: str) -> Styler:
        def style(r: int, k: int, n: int) -> Style:
            if block == "C":
                return Style("premium" if r < 8 else "standard")
            # Sharp angle to the stage: the two outermost seats of the front rows.
            outermost = k < 2 if block == "R" else k >= n - 2
            if r < 5 and outermost:
                return Style("restricted", restricted_view=True)
            return Style("standard")

        return style

    def balcony_style(block: int) -> Styler:
        def style(r: int, k: int, n: int) -> Style:
            if _obstructed(pillars, block, r, k, n):
                return Style("restricted", restricted_view=True)
            return Style("standard" if r < 3 else "economy")

        return style

    sections = []
    for prefix, label, first, rows, extra in (("S", "Stalls", 1150.0, 18, 4), ("B", "Balcony", 3100.0, 8, 0)):
        blocks = (
            # Angles grow clockwise on screen: the "right" block (from the audience) is at smaller angles.
            (f"{prefix}R", f"{label} Right", down - side_to, down - side_from, (False, True)),
            (f"{prefix}C", f"{label} Centre", down - inner, down + inner, (True, True)),
            (f"{prefix}L", f"{label} Left", down + side_from, down + side_to, (True, False)),
        )
        for index, (sid, name, start, end, aisles) in enumerate(blocks):
            block = Block(
                sid,
                name,
                centre,
                first,
                90.0,
                rows,
                start,
                end,
                lettered_rows=True,
                aisle_ends=aisles,
                accessible_pairs=extra if sid[1] == "C" else 0,
                accessible_category="standard",
            )
            style = stalls_style(sid[1]) if prefix == "S" else balcony_style(index)
            sections.append(build_block(block, style))
    sections += [
        _box(side, i, x, 500.0 + 260.0 * i) for side, x in (("L", 300.0), ("R", 4500.0)) for i in range(4)
    ]
    return SeatMap(
        name="Synthetic Theatre",
        categories=[
            Category("premium", "Premium", "#d62728"),
            Category("standard", "Standard", "#1f77b4"),
            Category("economy", "Economy", "#2ca02c"),
            Category("restricted", "Restricted view", "#7f7f7f"),
        ],
        sections=sections,
        # The focal point is the front of the stage, not its centre: it stays explicit.
        areas=[
            Area(
                "STAGE",
                _rectangle(stage[0] - 800, stage[1] - 450, stage[0] + 800, stage[1]),
                "Stage",
                "stage",
            )
        ],
        focal_point=Point(*stage),
        seat_size=SEAT_SIZE,
    )


def _box(side: str, i: int, x: float, y: float) -> Section:
    """A box at the side wall: a small section holding one table of four, sold whole."""
    box_id = f"BOX-{side}{i + 1}"
    table_radius, ring = 40.0, 75.0
    half = ring + SEAT_SIZE / 2 + MARGIN
    seats = [
        Seat(
            id=f"{box_id}-{k + 1}",
            label=str(k + 1),
            position=Point(round(x + ring * math.cos(a), 1), round(y + ring * math.sin(a), 1)),
            category="premium",
        )
        for k, a in enumerate(math.pi / 4 + j * math.pi / 2 for j in range(4))
    ]
    table = Table(
        id=f"{box_id}-T",
        label=f"Box {side}{i + 1}",
        center=Point(x, y),
        radius=table_radius,
        seats=seats,
        book_whole=True,
    )
    outline = [
        Point(x - half, y - half),
        Point(x + half, y - half),
        Point(x + half, y + half),
        Point(x - half, y + half),
    ]
    return Section(id=box_id, label=f"Box {side}{i + 1}", outline=outline, tables=[table])


# --- arena ------------------------------------------------------------------------------------


def arena(seed: int = 0) -> SeatMap:
    """An end-stage arena: a standing floor and two tiers of blocks around it, ~17,000 seats."""
    rng = random.Random(seed)
    cx, cy = 9000.0, 9000.0
    # The stage sits at the top end of the floor; no seats behind it.
    stage_gap = math.radians(35)
    start, end = -math.pi / 2 + stage_gap, 3 * math.pi / 2 - stage_gap
    tiers = (
        # (number prefix, sections, first row radius, rows, row depth)
        (100, 14, 2750.0, 20, 85.0),
        (200, 18, 4700.0, 26, 85.0),
    )
    kills = {rng.randrange(14) for _ in range(2)}  # blocks losing their front row to camera platforms
    supports = _obstructions(rng, 18, 26, 6)
    sections = []
    for prefix, count, first, rows, depth in tiers:
        width, gap = (end - start) / count, _gap(first)
        for i in range(count):
            a0 = start + i * width + gap / 2
            a1 = a0 + width - gap
            mid = (a0 + a1) / 2
            lower = prefix == 100
            long_side = abs(math.cos(mid)) > math.cos(math.radians(50))
            category = ("premium" if long_side else "lower") if lower else "upper"
            block = Block(
                f"{prefix + i + 1}",
                f"Block {prefix + i + 1}",
                (cx, cy),
                first,
                depth,
                rows,
                a0,
                a1,
                accessible_pairs=3 if lower and i % 3 == 1 else 0,
                accessible_category=category,
                skipped_rows=1 if lower and i in kills else 0,
            )
            sections.append(build_block(block, _tier_style(category, supports if not lower else set(), i)))
    floor = GeneralAdmissionArea(
        id="FLOOR",
        label="Floor (standing)",
        outline=[
            Point(cx - 1600, cy - 1400),
            Point(cx + 1600, cy - 1400),
            Point(cx + 1600, cy + 2000),
            Point(cx - 1600, cy + 2000),
        ],
        capacity=3200,
        category="floor",
    )
    return SeatMap(
        name="Synthetic Arena",
        categories=[
            Category("floor", "Floor standing", "#9467bd"),
            Category("premium", "Lower tier, long sides", "#d62728"),
            Category("lower", "Lower tier", "#1f77b4"),
            Category("upper", "Upper tier", "#2ca02c"),
        ],
        sections=sections,
        ga_areas=[floor],
        areas=[Area("STAGE", _rectangle(cx - 1200, cy - 2300, cx + 1200, cy - 1500), "Stage", "stage")],
        focal_point=Point(cx, cy - 1500),
        seat_size=SEAT_SIZE,
    )


def _tier_style(category: str, supports: set[tuple[int, int, float]], block: int) -> Styler:
    def style(r: int, k: int, n: int) -> Style:
        if _obstructed(supports, block, r, k, n):
            return Style(category, restricted_view=True)
        return Style(category)

    return style


# --- stadium ----------------------------------------------------------------------------------


def stadium(seed: int = 0) -> SeatMap:
    """A football stadium: three tiers of curved blocks all round the pitch, ~89,000 seats."""
    rng = random.Random(seed)
    cx, cy = 16000.0, 16000.0  # the centre spot; the 105 x 68 m pitch lies within 6,255 cm of it
    tiers = (
        # (number prefix, sections, first row radius, rows, row depth)
        (100, 24, 6800.0, 26, 80.0),
        (200, 28, 9300.0, 22, 85.0),
        (300, 32, 11600.0, 34, 90.0),
    )
    supports = _obstructions(rng, 32, 32, 12)  # roof columns in the top tier
    sections = []
    for prefix, count, first, rows, depth in tiers:
        width, gap = 2 * math.pi / count, _gap(first)
        for i in range(count):
            a0 = -math.pi + i * width + gap / 2
            a1 = a0 + width - gap
            # The long sides of the pitch face up and down the screen.
            long_side = abs(math.sin((a0 + a1) / 2)) > math.sin(math.radians(40))
            category = _stadium_category(prefix, long_side)
            block = Block(
                f"S{prefix + i + 1}",
                f"Section {prefix + i + 1}",
                (cx, cy),
                first,
                depth,
                rows,
                a0,
                a1,
                accessible_pairs=4 if prefix == 100 and i % 4 == 0 else 0,
                accessible_category=category,
            )
            sections.append(
                build_block(block, _tier_style(category, supports if prefix == 300 else set(), i))
            )
    return SeatMap(
        name="Synthetic Stadium",
        categories=[
            Category("cat1", "Category 1", "#d62728"),
            Category("cat2", "Category 2", "#ff7f0e"),
            Category("cat3", "Category 3", "#1f77b4"),
            Category("cat4", "Category 4", "#2ca02c"),
        ],
        sections=sections,
        areas=[
            Area("PITCH", _rectangle(cx - 5250, cy - 3400, cx + 5250, cy + 3400), "Pitch", "stage", "#8fbf7f")
        ],
        focal_point=Point(cx, cy),
        seat_size=SEAT_SIZE,
    )


def _stadium_category(tier: int, long_side: bool) -> str:
    if long_side:
        return "cat1" if tier == 200 else "cat2"
    return "cat4" if tier == 300 else "cat3"


GENERATORS: dict[str, Callable[[], SeatMap]] = {
    "theatre": theatre,
    "arena": arena,
    "stadium": stadium,
}


def _rectangle(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [Point(x0, y0), Point(x1, y0), Point(x1, y1), Point(x0, y1)]
