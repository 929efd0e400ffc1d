"""Exceptions raised by the seat-map domain.

::

    SeatMapError                 base of everything seatmap raises on bad input
    ├── SeatMapDecodeError       not JSON, or JSON that does not fit the schema
    │                            (carries msgspec's JSON path, e.g. ``$.sections[0].id``)
    ├── SeatMapInvalid           well-formed, but breaks the rules of a seat map
    │                            (carries the violations and how many there were)
    └── StageNotFound            a pretix import was told a stage name the plan does not have

Callers (the gRPC layer) map each class to one status; nothing else escapes
:func:`seatmap.formats.parse_and_validate` or :func:`seatmap.pretix.from_pretix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seatmap.validation import Violation


class SeatMapError(Exception):
    """Base class of seat-map errors."""


class SeatMapDecodeError(SeatMapError):
    """The document could not be decoded into the schema."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class SeatMapInvalid(SeatMapError):
    """The document decoded but violates the seat-map rules.

    ``violations`` is capped (see ``Limits.max_violations``); ``total`` counts all found.
    """

    def __init__(self, violations: Sequence[Violation], total: int) -> None:
        self.violations = list(violations)
        self.total = total
        first = f": {self.violations[0].message}" if self.violations else ""
        more = f" (and {total - 1} more)" if total > 1 else ""
        super().__init__(f"seat map is invalid{first}{more}")


class StageNotFound(SeatMapError):
    """:func:`seatmap.pretix.import_pretix` was asked for a stage area the plan does not have."""
