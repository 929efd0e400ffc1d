"""Ticket types and promo codes: their definitions and the discount math.

Pure (no I/O): ``holds/offers.py`` stores these definitions per event (or per
organizer for an organizer-wide promo code) and ``commit.lua`` /
``box_office.lua`` apply them inside the selling script; the Lua mirrors
:func:`discount` exactly (``tests/holds/test_offers.py`` checks the two agree).

The discount rule (docs/selling.md): a promo code takes a discount off *each
ticket* of the order, never off the order as a whole, so each ticket's price,
fee split and refunds stay per ticket as before.

- ``percent``: ``bps`` basis points of the ticket's price, rounded half to even
  (:func:`rules.money.div_round_half_even`, the service's one rounding rule);
- ``amount``: a fixed ``amount`` in minor units off each ticket;

either capped at the ticket's price: a discount never makes a price negative.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from rules.errors import InvalidAmount, InvalidOffer
from rules.money import div_round_half_even

BPS_DENOMINATOR = 10_000
# The largest price the selling scripts take (Lua numbers are exact below 2^53: holds/lua/_inventory.lua).
MAX_MINOR = 10**12
Channel = Literal["storefront", "box_office"]
CHANNELS: tuple[Channel, ...] = ("storefront", "box_office")
PromoKind = Literal["percent", "amount"]
PromoScope = Literal["event", "organizer"]

# Ids of ticket types and promo codes: what a storefront types and a buyer reads.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_TYPES_PER_EVENT = 64
MAX_NAME = 100


class TicketType(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A kind of ticket an event sells (adult, child, concession, ...) with its own
    price per seat category. A place sold without a type pays the event's plain
    category price (the type ``""``).

    ``max_per_order`` 0: no limit. ``channels``: where it is sold. ``access_code``:
    "" for a public type; otherwise the type is hidden (not listed, not sellable)
    unless the buyer gives this code (a presale)."""

    type_id: str
    name: str
    prices: dict[str, int]  # category -> price in minor units
    max_per_order: int = 0
    channels: list[Channel] = msgspec.field(default_factory=lambda: list(CHANNELS))
    access_code: str = ""
    disabled: bool = False


class PromoCode(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A discount a buyer names at checkout. ``valid_from_ms``/``valid_until_ms`` 0:
    unbounded; ``max_uses``/``max_uses_per_buyer`` 0: unlimited (a use is one order).
    ``scope`` organizer: valid at every event of the organizer (stored once per
    organizer; its uses counted as docs/selling.md says)."""

    code: str
    kind: PromoKind
    bps: int = 0  # percent: basis points off each ticket (1..10000)
    amount: int = 0  # amount: minor units off each ticket
    valid_from_ms: int = 0
    valid_until_ms: int = 0
    min_quantity: int = 0  # places in the order
    max_uses: int = 0
    max_uses_per_buyer: int = 0
    scope: PromoScope = "event"
    disabled: bool = False


def check_id(value: str, field: str) -> str:
    """An id of a type or a code (InvalidOffer naming ``field`` otherwise)."""
    if not _ID.match(value):
        raise InvalidOffer(field, "1-32 characters: letters, digits, '_', '.', '-' (first a letter or digit)")
    return value


def check_type(t: TicketType) -> TicketType:
    """A type's definition is whole and sane; InvalidOffer names the field at fault."""
    check_id(t.type_id, "type_id")
    if not 1 <= len(t.name) <= MAX_NAME:
        raise InvalidOffer("name", f"1-{MAX_NAME} characters")
    if not t.prices:
        raise InvalidOffer("prices", "at least one category")
    for category, price in t.prices.items():
        if not category:
            raise InvalidOffer("prices", "a category is required")
        if not 0 <= price <= MAX_MINOR:
            raise InvalidOffer(f"prices[{category}]", f"0-{MAX_MINOR} minor units")
    if not 0 <= t.max_per_order <= 10_000:
        raise InvalidOffer("max_per_order", "0 (no limit) to 10000")
    if not t.channels or len(set(t.channels)) != len(t.channels):
        raise InvalidOffer("channels", "at least one, each once")
    if t.access_code and not _ID.match(t.access_code):
        raise InvalidOffer("access_code", "1-32 characters: letters, digits, '_', '.', '-'")
    return t


def check_promo(p: PromoCode) -> PromoCode:
    """A promo code's definition is whole and sane; InvalidOffer names the field at fault."""
    check_id(p.code, "code")
    if p.kind == "percent":
        if not 1 <= p.bps <= BPS_DENOMINATOR or p.amount:
            raise InvalidOffer("bps", f"a percent code takes 1-{BPS_DENOMINATOR} basis points and no amount")
    elif not 1 <= p.amount <= MAX_MINOR or p.bps:
        raise InvalidOffer("amount", f"an amount code takes 1-{MAX_MINOR} minor units and no bps")
    if p.valid_from_ms < 0 or p.valid_until_ms < 0:
        raise InvalidOffer("valid_from", "times after 1970")
    if p.valid_until_ms and p.valid_until_ms <= p.valid_from_ms:
        raise InvalidOffer("valid_until", "must be after valid_from")
    for name in ("min_quantity", "max_uses", "max_uses_per_buyer"):
        if not 0 <= getattr(p, name) <= 1_000_000_000:
            raise InvalidOffer(name, "0 (none) to 10^9")
    return p


def discount(price: int, promo: PromoCode) -> int:
    """What ``promo`` takes off one ticket of ``price`` minor units: never negative,
    never more than the price."""
    if price < 0:
        raise InvalidAmount(f"a price is never negative, got {price}")
    wanted = (
        div_round_half_even(price * promo.bps, BPS_DENOMINATOR) if promo.kind == "percent" else promo.amount
    )
    return min(wanted, price)


def discounted(price: int, promo: PromoCode | None) -> int:
    """The price a buyer pays for one ticket of ``price`` with ``promo`` (None: no code)."""
    return price if promo is None else price - discount(price, promo)


def promo_window(promo: PromoCode, now_ms: int) -> Literal["active", "not_yet", "expired", "disabled"]:
    """Whether ``promo`` can be used at ``now_ms`` (the Lua checks the same on Redis's clock)."""
    if promo.disabled:
        return "disabled"
    if promo.valid_from_ms and now_ms < promo.valid_from_ms:
        return "not_yet"
    if promo.valid_until_ms and now_ms >= promo.valid_until_ms:
        return "expired"
    return "active"


ticket_type_decoder = msgspec.json.Decoder(TicketType)
promo_decoder = msgspec.json.Decoder(PromoCode)
