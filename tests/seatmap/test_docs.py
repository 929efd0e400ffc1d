"""docs/seatmap-format.md cannot rot: its example validates, its tables match the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from seatmap.formats import parse_and_validate
from seatmap.limits import DEFAULT_LIMITS
from seatmap.model import iter_seats
from seatmap.validation import VIOLATION_CODES

DOC = (Path(__file__).parents[2] / "docs" / "seatmap-format.md").read_text()


def _example() -> bytes:
    match = re.search(r"<!-- example: valid -->\s*```json\n(.*?)```", DOC, re.DOTALL)
    assert match, "the example block is missing"
    return match.group(1).encode()


def test_example_validates() -> None:
    seatmap = parse_and_validate(_example())
    assert len(iter_seats(seatmap)) == 10
    assert seatmap.ga_areas
    assert seatmap.sections[0].tables


def test_every_violation_code_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOC, re.MULTILINE))
    assert not VIOLATION_CODES - documented


def test_limits_table_matches_the_defaults() -> None:
    rows = dict(re.findall(r"^\| `(max_[a-z_]+)` \| (\S+)", DOC, re.MULTILINE))
    for field in dataclasses.fields(DEFAULT_LIMITS):
        assert float(rows[field.name]) == getattr(DEFAULT_LIMITS, field.name), field.name
