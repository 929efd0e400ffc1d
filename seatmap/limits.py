"""Size caps on an uploaded seat map.

Every cap bounds the work (and memory) one upload can cost the service: the
byte cap is checked before decoding, the others by :func:`seatmap.validation.validate`.
The defaults fit the largest real venues (a 100k-seat stadium) with room to spare.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Caps applied to one seat map; build your own to tighten or relax them."""

    # A 90k-seat stadium encodes to about 9 MiB of JSON.
    max_upload_bytes: int = 32 * 1024 * 1024
    max_seats: int = 200_000
    max_sections: int = 2_000
    max_rows_per_section: int = 500
    max_tables_per_section: int = 2_000
    # Applies to rows and to the seats around one table.
    max_seats_per_row: int = 1_000
    max_vertices_per_polygon: int = 4_096
    max_ga_areas: int = 500
    max_ga_capacity: int = 1_000_000
    # Drawn, unsold areas: stages, bars, entrances.
    max_areas: int = 500
    max_categories: int = 256
    # Violations returned in a report; the report still counts all of them.
    max_violations: int = 100
    # |x| and |y| bound; beyond it float precision makes geometry unreliable.
    max_coordinate: float = 1e7


DEFAULT_LIMITS = Limits()
