"""Whatever bytes arrive, parse_and_validate raises only its two documented errors."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seatmap.errors import SeatMapDecodeError, SeatMapInvalid
from seatmap.formats import parse_and_validate
from seatmap.limits import Limits

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits(max_upload_bytes=1 << 20)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -1, 1e308, -1e-308, 1e7 + 1, ""])
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


def _valid_doc() -> dict[str, Any]:
    seats = [
        {"id": f"A-1-{k}", "label": str(k), "position": [100 + 60 * k, 100], "category": "std"}
        for k in range(3)
    ]
    table_seats = [
        {"id": f"T-{k}", "label": str(k), "position": [500 + 70 * (-1) ** k, 500], "category": "std"}
        for k in range(2)
    ]
    return {
        "name": "Hall",
        "categories": [{"key": "std", "label": "Standard"}],
        "focal_point": [500, 0],
        "sections": [
            {
                "id": "A",
                "label": "A",
                "outline": [[0, 0], [1000, 0], [1000, 1000], [0, 1000]],
                "rows": [{"id": "A-1", "label": "1", "seats": seats}],
                "tables": [
                    {"id": "T", "label": "T", "center": [500, 500], "radius": 30, "seats": table_seats}
                ],
            }
        ],
        "ga_areas": [
            {
                "id": "G",
                "label": "G",
                "outline": [[1100, 0], [1500, 0], [1500, 400]],
                "capacity": 10,
                "category": "std",
            }
        ],
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _check(data: bytes) -> None:
    with contextlib.suppress(SeatMapDecodeError, SeatMapInvalid):
        parse_and_validate(data, "native", LIMITS)


def test_the_base_document_is_valid() -> None:
    parse_and_validate(msgspec.json.encode(_valid_doc()))


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _check(json.dumps(value).encode())


@SETTINGS
@given(st.data())
def test_mutated_valid_maps(data: st.DataObject) -> None:
    doc = _valid_doc()
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    _check(json.dumps(doc).encode())


@SETTINGS
@given(st.data())
def test_perturbed_numbers(data: st.DataObject) -> None:
    doc = _valid_doc()
    numbers = [
        p
        for p in _paths(doc)
        if p and isinstance(_get(doc, p), int | float) and not isinstance(_get(doc, p), bool)
    ]
    for path in data.draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=6)):
        parent = _get(doc, path[:-1])
        parent[path[-1]] = data.draw(
            st.floats(-2e7, 2e7) | st.integers(-(2**40), 2**40) | st.sampled_from([0, 1e-300, 5e-324])
        )
    _check(json.dumps(doc).encode())


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc
