"""Bundle prices split over a season's orders: the sum is exact, no part is negative and
each part is within one unit of its proportional share (the rounding remainder on the first)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.bundles import MAX_MINOR, check_bundle_prices, split_bundle
from rules.errors import InvalidAmount

amounts = st.one_of(st.sampled_from([0, 1, 2, 99, 100, 10_000]), st.integers(0, MAX_MINOR))
weights = st.lists(
    st.one_of(st.sampled_from([0, 1, 3, 2500, 9900]), st.integers(0, MAX_MINOR)), min_size=1, max_size=100
)


@given(amounts, weights)
def test_the_parts_sum_to_the_bundle_exactly_and_none_is_negative(amount: int, ws: list[int]) -> None:
    parts = split_bundle(amount, ws)
    assert len(parts) == len(ws)
    assert sum(parts) == amount
    assert all(p >= 0 for p in parts)


@given(amounts, weights)
def test_each_part_is_within_one_unit_of_its_share(amount: int, ws: list[int]) -> None:
    parts = split_bundle(amount, ws)
    total = sum(ws) or len(ws)
    for part, w in zip(parts, ws if sum(ws) else [1] * len(ws), strict=True):
        assert abs(part - Fraction(amount * w, total)) < 1


@given(amounts, weights)
def test_only_the_first_part_rounds_up(amount: int, ws: list[int]) -> None:
    """Every part after the first is its share rounded down or up by the cumulative rule;
    the first takes what is left, so a remainder lands there and nowhere else first."""
    parts = split_bundle(amount, ws)
    total = sum(ws) or len(ws)
    rest = sum(parts[1:])
    exact_rest = Fraction(amount * (sum(ws[1:]) if sum(ws) else len(ws) - 1), total)
    assert rest <= exact_rest < rest + 1


def test_examples() -> None:
    assert split_bundle(10_000, [6_000, 6_000]) == [5_000, 5_000]
    assert split_bundle(100, [1, 1, 1]) == [34, 33, 33]
    assert split_bundle(7, [0, 0]) == [4, 3]  # free events: an equal split
    assert split_bundle(5, [0, 10]) == [0, 5]
    assert split_bundle(0, [5, 5]) == [0, 0]


@pytest.mark.parametrize(
    ("amount", "ws"), [(-1, [1]), (1, []), (1, [-1, 2]), (True, [1]), (1.0, [1]), (1, [1.5])]
)
def test_bad_input_is_refused(amount: object, ws: list[object]) -> None:
    with pytest.raises(InvalidAmount):
        split_bundle(amount, ws)  # type: ignore[arg-type]


def test_bundle_prices_are_checked_against_the_categories() -> None:
    cats = {"premium", "standard"}
    assert check_bundle_prices({"premium": 1, "standard": MAX_MINOR}, cats) is None
    assert check_bundle_prices({"balcony": 1}, cats) == "balcony"
    assert check_bundle_prices({"premium": -1}, cats) == "premium"
    assert check_bundle_prices({"premium": MAX_MINOR + 1}, cats) == "premium"
