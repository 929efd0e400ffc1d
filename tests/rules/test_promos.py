"""Promo-code math: a discount never makes a price negative, never exceeds it, and
rounds by the money rule (half to even)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.errors import InvalidOffer
from rules.promos import (
    BPS_DENOMINATOR,
    MAX_MINOR,
    PromoCode,
    TicketType,
    check_promo,
    check_type,
    discount,
    discounted,
    promo_window,
)

prices = st.one_of(st.sampled_from([0, 1, 2, 3, 5, 99, 100, 10_000]), st.integers(0, MAX_MINOR))
percent_codes = st.builds(
    PromoCode, code=st.just("P"), kind=st.just("percent"), bps=st.integers(1, BPS_DENOMINATOR)
)
amount_codes = st.builds(
    PromoCode, code=st.just("A"), kind=st.just("amount"), amount=st.integers(1, MAX_MINOR)
)
codes = st.one_of(percent_codes, amount_codes)


@given(prices, codes)
def test_a_discount_is_never_negative_nor_more_than_the_price(price: int, promo: PromoCode) -> None:
    off = discount(price, promo)
    assert 0 <= off <= price
    assert 0 <= discounted(price, promo) <= price
    assert discounted(price, promo) + off == price


@given(prices, percent_codes)
def test_a_percent_discount_rounds_half_to_even(price: int, promo: PromoCode) -> None:
    exact = Fraction(price * promo.bps, BPS_DENOMINATOR)
    off = discount(price, promo)
    assert abs(off - exact) <= Fraction(1, 2)
    if abs(off - exact) == Fraction(1, 2):
        assert off % 2 == 0


@given(prices, amount_codes)
def test_an_amount_code_takes_its_amount_or_the_whole_price(price: int, promo: PromoCode) -> None:
    assert discount(price, promo) == min(price, promo.amount)


@given(prices)
def test_no_code_and_a_full_percent(price: int) -> None:
    assert discounted(price, None) == price
    assert discounted(price, PromoCode(code="F", kind="percent", bps=BPS_DENOMINATOR)) == 0


def test_half_cent_examples() -> None:
    ten = PromoCode(code="T", kind="percent", bps=1000)
    assert discount(5, ten) == 0  # 0.5 -> 0
    assert discount(15, ten) == 2  # 1.5 -> 2
    assert discount(25, ten) == 2  # 2.5 -> 2


@pytest.mark.parametrize(
    ("promo", "field"),
    [
        (PromoCode(code="", kind="percent", bps=10), "code"),
        (PromoCode(code="X", kind="percent", bps=0), "bps"),
        (PromoCode(code="X", kind="percent", bps=10_001), "bps"),
        (PromoCode(code="X", kind="amount", amount=0), "amount"),
        (PromoCode(code="X", kind="amount", amount=5, bps=3), "amount"),
        (PromoCode(code="X", kind="amount", amount=5, valid_from_ms=10, valid_until_ms=5), "valid_until"),
        (PromoCode(code="X", kind="amount", amount=5, max_uses=-1), "max_uses"),
    ],
)
def test_bad_promo_definitions_name_their_field(promo: PromoCode, field: str) -> None:
    with pytest.raises(InvalidOffer) as raised:
        check_promo(promo)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("ttype", "field"),
    [
        (TicketType(type_id="a b", name="x", prices={"a": 1}), "type_id"),
        (TicketType(type_id="c", name="", prices={"a": 1}), "name"),
        (TicketType(type_id="c", name="Child", prices={}), "prices"),
        (TicketType(type_id="c", name="Child", prices={"a": -1}), "prices[a]"),
        (TicketType(type_id="c", name="Child", prices={"a": 1}, channels=[]), "channels"),
        (TicketType(type_id="c", name="Child", prices={"a": 1}, max_per_order=-2), "max_per_order"),
    ],
)
def test_bad_type_definitions_name_their_field(ttype: TicketType, field: str) -> None:
    with pytest.raises(InvalidOffer) as raised:
        check_type(ttype)
    assert raised.value.field == field


def test_the_window() -> None:
    p = PromoCode(code="W", kind="amount", amount=1, valid_from_ms=100, valid_until_ms=200)
    assert [promo_window(p, t) for t in (99, 100, 199, 200)] == ["not_yet", "active", "active", "expired"]
