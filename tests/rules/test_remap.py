"""rules/remap.py: the mapping of a move to another seat-map version, property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.remap import NO_TARGET, InvalidMapping, derive

seat_ids = st.lists(st.text("ABCDEFGH0123456789-", min_size=1, max_size=4), unique=True, max_size=30)


@st.composite
def versions(draw: st.DrawFn) -> tuple[list[str], list[str], dict[str, str]]:
    """Two versions' seat ids and a valid explicit mapping between them."""
    old, new = draw(seat_ids), draw(seat_ids)
    if not old or not new:
        return old, new, {}
    sources = draw(st.lists(st.sampled_from(old), unique=True, max_size=len(new)))
    targets = draw(st.permutations(new))[: len(sources)]
    return old, new, dict(zip(sources, targets, strict=False))


@given(versions())
def test_the_mapping_is_injective_honours_explicit_pairs_and_otherwise_keeps_ids(
    case: tuple[list[str], list[str], dict[str, str]],
) -> None:
    old, new, explicit = case
    mapping = derive(old, new, explicit)
    assert len(mapping.targets) == len(old)
    hit = [t for t in mapping.targets if t != NO_TARGET]
    assert len(hit) == len(set(hit)), "two old seats share a new one"
    assert all(0 <= t < len(new) for t in hit)
    for o, seat_id in enumerate(old):
        target = mapping.targets[o]
        if seat_id in explicit:
            assert new[target] == explicit[seat_id]
        elif target != NO_TARGET:
            assert new[target] == seat_id  # derived: the seat with its own id
        else:  # no seat of that id, or an explicit pair took it
            assert seat_id not in new or seat_id in explicit.values()
    assert mapping.explicit == len(explicit)
    assert mapping.explicit + mapping.derived == len(hit)
    assert mapping.unmapped == [o for o, t in enumerate(mapping.targets) if t == NO_TARGET]


@given(seat_ids)
def test_the_same_ids_map_to_themselves(ids: list[str]) -> None:
    mapping = derive(ids, list(reversed(ids)), {})
    assert [len(ids) - 1 - t for t in mapping.targets] == list(range(len(ids)))


def test_a_row_renumbered_by_one_needs_its_pairs_and_explicit_wins_over_ids() -> None:
    old = ["r1-1", "r1-2", "r1-3"]
    new = ["r1-1", "r1-2", "r1-3", "r1-4"]
    shifted = derive(old, new, {"r1-1": "r1-2", "r1-2": "r1-3", "r1-3": "r1-4"})
    assert shifted.targets == (1, 2, 3)
    partial = derive(old, new, {"r1-1": "r1-2"})
    assert partial.targets == (1, NO_TARGET, 2)  # r1-2's own id went to r1-1


@pytest.mark.parametrize(
    ("explicit", "field", "reason"),
    [
        ({"x": "a"}, "mapping[x]", "no such seat in the event's current version"),
        ({"a": "x"}, "mapping[a]", "no seat 'x' in the target version"),
        ({"a": "c", "b": "c"}, "mapping[b]", "seat 'c' is also the target of 'a'"),
    ],
)
def test_bad_explicit_pairs_are_named(explicit: dict[str, str], field: str, reason: str) -> None:
    with pytest.raises(InvalidMapping) as info:
        derive(["a", "b"], ["c", "d"], explicit)
    assert (info.value.field, info.value.reason) == (field, reason)
