from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency
from rules.money import CURRENCY_EXPONENTS, Money, div_round_half_even, exponent, format_minor, to_minor


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6) | st.integers(-(10**6), -1))
def test_div_round_half_even_is_python_round_of_the_exact_fraction(numerator: int, denominator: int) -> None:
    assert div_round_half_even(numerator, denominator) == round(Fraction(numerator, denominator))


def test_ties_go_to_even() -> None:
    assert [div_round_half_even(n, 2) for n in (-3, -1, 1, 3, 5)] == [-2, 0, 0, 2, 2]


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("100.00", "EUR", 10000),
        ("94", "EUR", 9400),
        ("-0.5", "EUR", -50),
        ("1200", "JPY", 1200),
        ("1.5", "BHD", 1500),
    ],
)
def test_decimal_text_parses_exactly(text: str, currency: str, minor: int) -> None:
    assert to_minor(text, currency) == minor


@given(st.integers(-(10**15), 10**15), st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_format_and_parse_round_trip(amount: int, currency: str) -> None:
    text = format_minor(amount, currency)
    assert to_minor(text, currency) == amount
    assert len(text.partition(".")[2]) == exponent(currency)


@pytest.mark.parametrize(
    ("text", "currency"), [("1.001", "EUR"), ("1.5", "JPY"), ("1e3", "EUR"), ("", "EUR"), ("1,00", "EUR")]
)
def test_amounts_that_would_need_rounding_or_guessing_are_refused(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(text, currency)


def test_money_refuses_floats_unknown_currencies_and_mixing() -> None:
    with pytest.raises(InvalidAmount):
        Money(1.0, "EUR")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money(True, "EUR")
    with pytest.raises(UnknownCurrency):
        Money(1, "XXX")
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")
    assert str(Money.parse("94", "EUR") - Money(1, "EUR")) == "93.99 EUR"
    assert str(-Money(5, "JPY")) == "-5 JPY"


def test_money_json_is_strict_about_types() -> None:
    assert msgspec.json.decode(b'{"amount": 600, "currency": "EUR"}', type=Money) == Money(600, "EUR")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"amount": 6.0, "currency": "EUR"}', type=Money)
