"""Money as integer minor units with an ISO-4217 code; never floats.

Amounts are plain ``int`` in the currency's minor unit (cents for EUR, yen for
JPY, fils for BHD); a :class:`Money` pairs one with its code where the two
travel together. Decimal text is parsed and formatted exactly, digit by digit.
The one rounding rule of the service, round half to even on an exact
fraction, is :func:`div_round_half_even`; nothing here ever sees a float.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from rules.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

# ISO-4217 minor-unit exponents of the currencies the service supports. A code
# absent here is refused rather than guessed: JPY has no minor unit, BHD three.
# fmt: off
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys([
        "AED", "AUD", "BGN", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF",
        "ILS", "INR", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RON", "SAR", "SEK", "SGD", "THB",
        "TRY", "USD", "ZAR",
    ], 2),
    **dict.fromkeys(["CLP", "ISK", "JPY", "KRW", "PYG", "UGX", "VND", "XAF", "XOF"], 0),
    **dict.fromkeys(["BHD", "JOD", "KWD", "OMR", "TND"], 3),
}
# fmt: on

CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]

_DECIMAL = re.compile(r"^(-?)(\d+)(?:\.(\d+))?$")


def exponent(currency: str) -> int:
    """The number of decimals of ``currency``; :class:`UnknownCurrency` if unsupported."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(currency) from None


def check_minor(amount: object) -> int:
    """``amount`` if it is an ``int`` (not a bool, not a float), else :class:`InvalidAmount`."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidAmount(f"amounts are integer minor units, got {type(amount).__name__} {amount!r}")
    return amount


def div_round_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, ties to even.

    Exact integer arithmetic (``divmod``), any signs; ``denominator`` must not be 0.
    This is the service's one rounding rule: 0.5 → 0, 1.5 → 2, 2.5 → 2, -0.5 → 0.
    """
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)  # 0 <= remainder < denominator
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def _scale(places: int) -> int:
    return int(10**places)


def to_minor(text: str, currency: str) -> int:
    """Parse decimal text (``"100.00"``, ``"-3.5"``, ``"1200"``) into minor units, exactly.

    More decimals than the currency has is :class:`InvalidAmount` (no silent rounding).
    """
    places = exponent(currency)
    match = _DECIMAL.match(text.strip())
    if match is None:
        raise InvalidAmount(f"not a decimal amount: {text!r}")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if len(fraction) > places:
        raise InvalidAmount(f"{text!r} has more than {places} decimals for {currency}")
    minor = int(whole) * _scale(places) + (int(fraction.ljust(places, "0")) if places else 0)
    return -minor if sign else minor


def format_minor(amount: int, currency: str) -> str:
    """Minor units as decimal text with exactly the currency's decimals: ``9400`` EUR → ``"94.00"``."""
    places = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(check_minor(amount)), _scale(places))
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An amount in minor units and its currency; combining two currencies raises."""

    amount: int
    currency: CurrencyCode

    def __post_init__(self) -> None:
        check_minor(self.amount)
        exponent(self.currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        return cls(to_minor(text, currency), currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __str__(self) -> str:
        return f"{format_minor(self.amount, self.currency)} {self.currency}"
