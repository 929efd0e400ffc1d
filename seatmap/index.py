"""The per-version index of a seat map: arrays, row structure and an STRtree.

A :class:`SeatIndex` is built once per published seat-map version and then
shared read-only by every request (best-available, lasso selection, rendering),
so everything that does not depend on the live inventory is computed here, as
numpy arrays indexed by seat *ordinal* (:func:`seatmap.model.iter_seats` order).

Like geopandas' ``sindex``, the STRtree is wrapped in a small class that keeps
its geometries and validates every query before it reaches GEOS; bad input
raises a :class:`SeatIndexError` subclass (a ``ValueError``), never a GEOS or
``KeyError`` surprise::

    SeatIndexError(ValueError)
    ├── UnknownSeat       seat id or ordinal not in this map
    ├── UnknownSection
    ├── UnknownRow        also for tables (``kind``)
    ├── UnknownCategory
    ├── InvalidRegion     lasso polygon unusable (too few points, NaN, self-intersecting, ...)
    └── InvalidQuery      other out-of-range arguments (n, coordinates, distances)

Adjacency: seats are neighbours in the order their row lists them. An
``aisle``-flagged seat stays the physical neighbour of the next seat in the
row (the flag says the seat *borders* an aisle, e.g. at a row end; it does not
split the row); the flags are exposed as :attr:`SeatIndex.aisle` for callers
that want to treat them specially. Table seats are neighbours around the table,
so the first and last seat of a table are adjacent too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import shapely

from seatmap.model import GeneralAdmissionArea, PlacedSeat, Point, SeatMap, focal_point, iter_seats

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MAX_NEAREST = 1_000  # a nearest query returns at most this many seats
MAX_REGION_POINTS = 10_000  # lasso polygons come from browsers: bound the work they can ask for


class SeatIndexError(ValueError):
    """The index was asked about something that is not in this map, or asked badly."""


class UnknownSeat(SeatIndexError):
    def __init__(self, seat: str | int) -> None:
        self.seat = seat
        super().__init__(f"unknown seat {seat!r}")


class UnknownSection(SeatIndexError):
    def __init__(self, section_id: str) -> None:
        self.section_id = section_id
        super().__init__(f"unknown section {section_id!r}")


class UnknownRow(SeatIndexError):
    def __init__(self, section_id: str, row_id: str, kind: str = "row") -> None:
        self.section_id = section_id
        self.row_id = row_id
        self.kind = kind
        super().__init__(f"unknown {kind} {row_id!r} in section {section_id!r}")


class UnknownCategory(SeatIndexError):
    def __init__(self, category: str) -> None:
        self.category = category
        super().__init__(f"unknown category {category!r}")


class InvalidRegion(SeatIndexError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid region: {reason}")


class InvalidQuery(SeatIndexError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid query: {reason}")


def prefix_counts(flags: BoolArray) -> IntArray:
    """Cumulative counts with a leading zero: the count over ``[a, b)`` is ``out[b] - out[a]``."""
    out = np.zeros(len(flags) + 1, dtype=np.intp)
    np.cumsum(flags, out=out[1:])
    return out


def prefix_sums(values: FloatArray) -> FloatArray:
    """Like :func:`prefix_counts`, for floats."""
    out = np.zeros(len(values) + 1, dtype=np.float64)
    np.cumsum(values, out=out[1:])
    return out


@dataclass(frozen=True, slots=True)
class GroupWalk:
    """Rows and tables laid end to end so that every contiguous seat block is a slice.

    Rows appear as they are. A table of ``k`` seats appears followed by its
    first ``k - 1`` seats again, so blocks that wrap around the table are
    slices too. A block of ``q`` seats may start at walk position ``p`` iff
    ``cap[p] >= q`` and, where ``exact[p]`` (tables sold whole), ``cap[p] == q``.
    The prefix sums let best-available score every block in O(1).
    """

    ordinal: IntArray  # walk position -> seat ordinal
    identity: bool  # no tables: walk position == ordinal, skip the gathers
    cap: IntArray  # longest block that may start here (0: none)
    exact: BoolArray  # only a block of exactly ``cap`` seats may start here
    dist_cs: FloatArray  # prefix sums of distance to the focal point
    wheel_cs: IntArray  # prefix sums of wheelchair flags
    companion_cs: IntArray  # prefix sums of companion flags


def _pow2(sizes: IntArray) -> IntArray:
    """The smallest power of two >= each size (sizes > 0)."""
    return np.left_shift(1, np.ceil(np.log2(sizes)).astype(np.intp))


class SeatIndex:
    """Everything about one seat-map version that requests must not recompute.

    Per seat ordinal (numpy arrays of ``len(index)``): ``x``, ``y``, ``radius``,
    ``category_code`` (into ``category_keys``), ``section_code`` (into
    ``section_ids``), the ``wheelchair``/``companion``/``aisle``/``restricted_view``
    flags, ``focal_distance``, ``left``/``right`` neighbours (-1 at a row end),
    ``group_of`` and ``seat_behind`` (nearest seat of the next row, -1 if none).
    Per row or table ("group", in ``iter_seats`` order): ``group_ids`` (section
    id, row/table id), ``group_start``/``group_end``/``group_size`` (a group's
    ordinals are a range), ``group_is_table``, ``group_book_whole``,
    ``group_section`` and ``group_next_row``. Also ``placed``, ``ordinal_of``,
    ``ga_areas``, ``bounds``, ``focal`` and ``walk``. Every request shares these,
    so the arrays are made read-only.
    """

    def __init__(self, seatmap: SeatMap) -> None:
        self.seatmap = seatmap
        self.placed: list[PlacedSeat] = iter_seats(seatmap)
        n = len(self.placed)
        self.ordinal_of: dict[str, int] = {p.seat.id: p.ordinal for p in self.placed}
        if len(self.ordinal_of) != n:
            raise SeatIndexError("seat ids are not unique")
        self.ga_areas: dict[str, GeneralAdmissionArea] = {a.id: a for a in seatmap.ga_areas}

        self.category_keys: tuple[str, ...] = tuple(c.key for c in seatmap.categories)
        self._category_code: dict[str, int] = {k: i for i, k in enumerate(self.category_keys)}
        self.section_ids: tuple[str, ...] = tuple(s.id for s in seatmap.sections)
        if len(set(self.section_ids)) != len(self.section_ids):
            raise SeatIndexError("section ids are not unique")

        self._build_seat_arrays(seatmap)
        self._build_groups(seatmap, n)
        self.bounds = self._compute_bounds(seatmap)
        focal = focal_point(seatmap)  # the focal point, else the stage area's centroid
        if focal is None:  # no stage drawn: rank towards the middle of the venue
            focal = Point((self.bounds[0] + self.bounds[2]) / 2, (self.bounds[1] + self.bounds[3]) / 2)
        self.focal: tuple[float, float] = (focal.x, focal.y)
        self.focal_distance: FloatArray = np.hypot(self.x - focal.x, self.y - focal.y)
        self.focal_sorted: FloatArray = np.sort(self.focal_distance)
        self.dist_cs: FloatArray = prefix_sums(self.focal_distance)
        self.walk = self._build_walk()
        self.seat_behind: IntArray = self._build_behind()

        self._points = shapely.points(np.column_stack((self.x, self.y)))
        self._tree = shapely.STRtree(self._points)
        shared = [*vars(self).values(), *(getattr(self.walk, f.name) for f in fields(self.walk))]
        for value in shared:
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    # -- construction -------------------------------------------------------

    def _build_seat_arrays(self, seatmap: SeatMap) -> None:
        # Column by column with list comprehensions: per-element numpy stores are ~10x slower.
        seats = [p.seat for p in self.placed]
        codes = self._category_code
        for key in sorted({s.category for s in seats} - codes.keys()):  # validation rejects these; stay total
            codes[key] = len(codes)
            self.category_keys += (key,)
        default = seatmap.seat_size
        self.x: FloatArray = np.array([s.position.x for s in seats], dtype=np.float64)
        self.y: FloatArray = np.array([s.position.y for s in seats], dtype=np.float64)
        self.radius: FloatArray = np.array([default if s.size is None else s.size for s in seats]) / 2
        self.category_code: IntArray = np.array([codes[s.category] for s in seats], dtype=np.intp)
        self.wheelchair: BoolArray = np.array([s.wheelchair for s in seats], dtype=np.bool_)
        self.companion: BoolArray = np.array([s.companion for s in seats], dtype=np.bool_)
        self.aisle: BoolArray = np.array([s.aisle for s in seats], dtype=np.bool_)
        self.restricted_view: BoolArray = np.array([s.restricted_view for s in seats], dtype=np.bool_)

    def _build_groups(self, seatmap: SeatMap, n: int) -> None:
        # iter_seats lays out each section's rows then tables contiguously, so a
        # section and each of its rows/tables is a range of ordinals.
        starts: list[int] = []
        sizes: list[int] = []
        is_table: list[bool] = []
        whole: list[bool] = []
        group_section: list[int] = []
        next_row: list[int] = []
        self.group_ids: list[tuple[str, str]] = []
        self._group_of_key: dict[tuple[str, str, bool], int] = {}
        self._section_range: dict[str, tuple[int, int]] = {}
        ordinal = 0
        for s_code, section in enumerate(seatmap.sections):
            section_start = ordinal
            groups = [(r.id, r.seats, False, False) for r in section.rows]
            groups += [(t.id, t.seats, True, t.book_whole) for t in section.tables]
            for i, (gid, seats, table, book_whole) in enumerate(groups):
                key = (section.id, gid, table)
                if key in self._group_of_key:
                    raise SeatIndexError(f"duplicate row/table id {gid!r} in section {section.id!r}")
                self._group_of_key[key] = len(starts)
                self.group_ids.append((section.id, gid))
                starts.append(ordinal)
                sizes.append(len(seats))
                is_table.append(table)
                whole.append(book_whole)
                group_section.append(s_code)
                follows = not table and i + 1 < len(section.rows)
                next_row.append(len(starts) if follows else -1)
                ordinal += len(seats)
            self._section_range[section.id] = (section_start, ordinal)
        assert ordinal == n, "iter_seats order changed"

        self.group_start: IntArray = np.array(starts, dtype=np.intp)
        self.group_size: IntArray = np.array(sizes, dtype=np.intp)
        self.group_end: IntArray = self.group_start + self.group_size
        self.group_is_table: BoolArray = np.array(is_table, dtype=np.bool_)
        self.group_book_whole: BoolArray = np.array(whole, dtype=np.bool_)
        self.group_section: IntArray = np.array(group_section, dtype=np.intp)
        self.group_next_row: IntArray = np.array(next_row, dtype=np.intp)
        self.group_of: IntArray = np.repeat(np.arange(len(starts), dtype=np.intp), self.group_size)
        self.section_code: IntArray = self.group_section[self.group_of]

        first = self.group_start[self.group_size > 0]
        last = self.group_end[self.group_size > 0] - 1
        ring = self.group_is_table[self.group_size > 0] & (first != last)
        left = np.arange(n, dtype=np.intp) - 1
        right = np.arange(n, dtype=np.intp) + 1
        left[first] = np.where(ring, last, -1)
        right[last] = np.where(ring, first, -1)
        self.left: IntArray = left
        self.right: IntArray = right
        self.has_left: BoolArray = left >= 0
        self.has_right: BoolArray = right >= 0
        # Seats left in the row from each seat on (tables: 0), for row-only block searches.
        row_room = self.group_end[self.group_of] - np.arange(n, dtype=np.intp)
        self.row_room: IntArray = np.where(self.group_is_table[self.group_of], 0, row_room)
        self.wheel_cs: IntArray = prefix_counts(self.wheelchair)
        self.companion_cs: IntArray = prefix_counts(self.companion)

    def _compute_bounds(self, seatmap: SeatMap) -> tuple[float, float, float, float]:
        xs: list[float] = []
        ys: list[float] = []
        if len(self.x):
            xs += [float((self.x - self.radius).min()), float((self.x + self.radius).max())]
            ys += [float((self.y - self.radius).min()), float((self.y + self.radius).max())]
        outlines = [s.outline for s in seatmap.sections] + [a.outline for a in seatmap.ga_areas]
        outlines += [a.outline for a in seatmap.areas]
        for outline in outlines:
            xs += [p.x for p in outline]
            ys += [p.y for p in outline]
        for section in seatmap.sections:
            for t in section.tables:
                xs += [t.center.x - t.radius, t.center.x + t.radius]
                ys += [t.center.y - t.radius, t.center.y + t.radius]
        if seatmap.focal_point is not None:
            xs.append(seatmap.focal_point.x)
            ys.append(seatmap.focal_point.y)
        if not xs:
            return (0.0, 0.0, 0.0, 0.0)
        return (min(xs), min(ys), max(xs), max(ys))

    def _build_walk(self) -> GroupWalk:
        n = len(self.placed)
        if not self.group_is_table.any():
            return GroupWalk(
                ordinal=np.arange(n, dtype=np.intp),
                identity=True,
                cap=self.row_room,
                exact=np.zeros(n, dtype=np.bool_),
                dist_cs=self.dist_cs,
                wheel_cs=self.wheel_cs,
                companion_cs=self.companion_cs,
            )
        parts: list[IntArray] = []
        caps: list[IntArray] = []
        exact: list[BoolArray] = []
        for g in range(len(self.group_start)):
            start, size = int(self.group_start[g]), int(self.group_size[g])
            seats = np.arange(start, start + size, dtype=np.intp)
            if not self.group_is_table[g]:
                parts.append(seats)
                caps.append(size - np.arange(size, dtype=np.intp))
                exact.append(np.zeros(size, dtype=np.bool_))
                continue
            whole = bool(self.group_book_whole[g])
            cap = np.zeros(2 * size - 1 if size else 0, dtype=np.intp)
            if whole:
                cap[:1] = size  # the whole table, from its first seat only
            else:
                cap[:size] = size
            parts.append(np.concatenate((seats, seats[: max(size - 1, 0)])))
            caps.append(cap)
            exact.append(np.full(len(cap), whole, dtype=np.bool_))
        ordinal = np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
        return GroupWalk(
            ordinal=ordinal,
            identity=False,
            cap=np.concatenate(caps) if caps else np.zeros(0, dtype=np.intp),
            exact=np.concatenate(exact) if exact else np.zeros(0, dtype=np.bool_),
            dist_cs=prefix_sums(self.focal_distance[ordinal]),
            wheel_cs=prefix_counts(self.wheelchair[ordinal]),
            companion_cs=prefix_counts(self.companion[ordinal]),
        )

    def _build_behind(self) -> IntArray:
        """For each row seat, the nearest seat of the next row of its section (or -1).

        Rows are batched by padded length (powers of two) so that one numpy
        distance tensor serves many row pairs at once.
        """
        behind = np.full(len(self.placed), -1, dtype=np.intp)
        nxt = self.group_next_row
        fronts = np.flatnonzero((nxt >= 0) & (self.group_size > 0))
        fronts = fronts[self.group_size[nxt[fronts]] > 0]
        if not len(fronts) or not len(self.placed):
            return behind
        pad_front = _pow2(self.group_size[fronts])
        pad_back = _pow2(self.group_size[nxt[fronts]])
        last = len(self.placed) - 1
        for a, b in set(zip(pad_front.tolist(), pad_back.tolist(), strict=True)):
            batch = fronts[(pad_front == a) & (pad_back == b)]
            for chunk in np.array_split(batch, -(-len(batch) * a * b // 2_000_000)):
                f = self.group_start[chunk, None] + np.arange(a)
                f_ok = np.arange(a) < self.group_size[chunk, None]
                bk = self.group_start[nxt[chunk], None] + np.arange(b)
                b_ok = np.arange(b) < self.group_size[nxt[chunk], None]
                f, bk = np.minimum(f, last), np.minimum(bk, last)
                d = (self.x[f][:, :, None] - self.x[bk][:, None, :]) ** 2
                d += (self.y[f][:, :, None] - self.y[bk][:, None, :]) ** 2
                d[~np.broadcast_to(b_ok[:, None, :], d.shape)] = np.inf
                nearest = np.take_along_axis(bk, d.argmin(axis=2), axis=1)
                behind[f[f_ok]] = nearest[f_ok]
        return behind

    # -- lookups --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.placed)

    def ordinal(self, seat_id: str) -> int:
        try:
            return self.ordinal_of[seat_id]
        except KeyError:
            raise UnknownSeat(seat_id) from None

    def check_ordinal(self, ordinal: int) -> int:
        if not 0 <= ordinal < len(self.placed):
            raise UnknownSeat(ordinal)
        return ordinal

    def category_codes(self, keys: Sequence[str] | frozenset[str]) -> IntArray:
        try:
            return np.array(sorted(self._category_code[k] for k in keys), dtype=np.intp)
        except KeyError as exc:
            raise UnknownCategory(str(exc.args[0])) from None

    def section_codes(self, section_ids: Sequence[str] | frozenset[str]) -> IntArray:
        codes = {sid: i for i, sid in enumerate(self.section_ids)}
        try:
            return np.array(sorted(codes[s] for s in section_ids), dtype=np.intp)
        except KeyError as exc:
            raise UnknownSection(str(exc.args[0])) from None

    def section_range(self, section_id: str) -> tuple[int, int]:
        """The ordinals of a section are exactly ``range(*section_range(id))``."""
        try:
            return self._section_range[section_id]
        except KeyError:
            raise UnknownSection(section_id) from None

    def seats_by_section(self, section_id: str) -> list[int]:
        return list(range(*self.section_range(section_id)))

    def seats_by_row(self, section_id: str, row_id: str) -> list[int]:
        """The row's ordinals in seat order (the order adjacency follows)."""
        return self._group_seats(section_id, row_id, table=False)

    def seats_by_table(self, section_id: str, table_id: str) -> list[int]:
        return self._group_seats(section_id, table_id, table=True)

    def _group_seats(self, section_id: str, group_id: str, *, table: bool) -> list[int]:
        g = self._group_of_key.get((section_id, group_id, table))
        if g is None:
            self.section_range(section_id)  # the more precise error when the section is unknown
            raise UnknownRow(section_id, group_id, "table" if table else "row")
        return list(range(int(self.group_start[g]), int(self.group_end[g])))

    def row_neighbours(self, ordinal: int) -> tuple[int, int]:
        """``(left, right)`` neighbour ordinals in row (or around table) order; -1 at a row end."""
        self.check_ordinal(ordinal)
        return int(self.left[ordinal]), int(self.right[ordinal])

    def distance_to_focal(self, ordinal: int) -> float:
        return float(self.focal_distance[self.check_ordinal(ordinal)])

    # -- spatial queries ------------------------------------------------------

    def seats_in_region(self, polygon: Sequence[Point] | Sequence[tuple[float, float]]) -> list[int]:
        """Ordinals (ascending) of the seats whose *centre* lies inside the polygon or on its edge.

        Centre-in-polygon is what a lasso user expects: a seat is picked when its
        dot was encircled, not when the lasso merely grazes its rim.
        """
        if len(polygon) > MAX_REGION_POINTS:
            raise InvalidRegion(f"more than {MAX_REGION_POINTS} points")
        try:
            coords = np.array([(p.x, p.y) if isinstance(p, Point) else p for p in polygon], dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidRegion("points must be pairs of numbers") from None
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise InvalidRegion("points must be pairs of numbers")
        if not np.isfinite(coords).all():
            raise InvalidRegion("coordinates must be finite")
        if len(coords) > 1 and (coords[0] == coords[-1]).all():
            coords = coords[:-1]  # accept explicitly closed rings
        if len(np.unique(coords, axis=0)) < 3:
            raise InvalidRegion("a polygon needs at least 3 distinct points")
        region = shapely.Polygon(coords)
        if not shapely.is_valid(region):
            raise InvalidRegion(str(shapely.is_valid_reason(region)))
        if region.area <= 0:
            raise InvalidRegion("the polygon has no area")
        hits = self._tree.query(region, predicate="intersects")
        return [int(o) for o in np.sort(hits)]

    def nearest(self, x: float, y: float, n: int, max_distance: float | None = None) -> list[int]:
        """Up to ``n`` seat ordinals nearest to ``(x, y)``, closest first (ties: lower ordinal).

        The tree is asked for seats within a radius sized from the seat density
        and the radius doubles until it holds ``n`` seats, so a query touches
        about ``n`` seats, not the whole map.
        """
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InvalidQuery("coordinates must be finite")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEAREST:
            raise InvalidQuery(f"n must be an integer in 1..{MAX_NEAREST}")
        if max_distance is not None and not (math.isfinite(max_distance) and max_distance >= 0):
            raise InvalidQuery("max_distance must be a finite number >= 0")
        total = len(self.placed)
        if total == 0:
            return []
        point = shapely.Point(x, y)
        if max_distance is not None:
            hits = self._tree.query(point, predicate="dwithin", distance=max_distance)
        else:
            hits = self._within_growing_radius(point, x, y, min(n, total))
        dist = np.hypot(self.x[hits] - x, self.y[hits] - y)
        order = np.lexsort((hits, dist))[:n]
        return [int(o) for o in hits[order]]

    def neighbours_within(self, ordinal: int, distance: float) -> int:
        """How many seats lie within ``distance`` of seat ``ordinal`` (itself included)."""
        if not (math.isfinite(distance) and distance > 0):
            raise InvalidQuery("distance must be a finite number > 0")
        point = self._points[self.check_ordinal(ordinal)]
        return len(self._tree.query(point, predicate="dwithin", distance=distance))

    def pairs_closer_than(self, distance: float) -> tuple[IntArray, IntArray]:
        """Every ordered pair ``(a, b)`` of seats whose centres are closer than ``distance``
        (a seat with itself included), from one bulk query of the tree."""
        if not (math.isfinite(distance) and distance > 0):
            raise InvalidQuery("distance must be a finite number > 0")
        if not self.placed:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        src, dst = self._tree.query(self._points, predicate="dwithin", distance=distance)
        close = np.hypot(self.x[src] - self.x[dst], self.y[src] - self.y[dst]) < distance
        return src[close].astype(np.intp), dst[close].astype(np.intp)

    def _within_growing_radius(self, point: shapely.Point, x: float, y: float, n: int) -> IntArray:
        x0, y0, x1, y1 = self.bounds
        # Beyond this radius every seat is inside: stop growing there.
        farthest = math.hypot(max(abs(x - x0), abs(x - x1)), max(abs(y - y0), abs(y - y1)))
        area_per_seat = max((x1 - x0) * (y1 - y0), 1e-9) / len(self.placed)
        to_box = math.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1))
        radius = to_box + 1.5 * math.sqrt(n * area_per_seat / math.pi)
        while radius < farthest:
            hits: IntArray = self._tree.query(point, predicate="dwithin", distance=radius)
            if len(hits) >= n:
                return hits
            radius *= 2
        return np.arange(len(self.placed), dtype=np.intp)
