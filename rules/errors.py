"""Exceptions raised by the pure rules.

::

    RulesError                   base of everything rules/ raises on bad input
    ├── UnknownCurrency          not an ISO-4217 code this service supports
    ├── CurrencyMismatch         two amounts of different currencies combined
    ├── InvalidAmount            not an integer of minor units, or more decimals than the currency has
    ├── InvalidPlan              a fee plan breaks its rules (carries every problem found)
    ├── NoPriceInCurrency        a plan has no fixed amounts in the currency asked for
    ├── RefundExceedsPaid        a refund larger than what is left of the ticket's price
    ├── StatementInputError      a record that cannot be part of the statement asked for
    ├── InvalidBranding          a branding field that breaks its rule (names the field)
    ├── KeyRingError             a key ring that breaks its rules (two active keys, duplicate ids)
    ├── InvalidScoring           a platform's seller-score rules that break their own rules
    ├── InvalidOffer             a ticket type or promo code definition at fault (names the field)
    └── TicketTokenError         a ticket token that does not verify; exactly one of:
        ├── TokenMalformed       not a token at all (encoding, layout, version)
        ├── UnknownKey           signed with a key id the key ring does not know
        ├── RevokedKey           signed with a key that was revoked
        └── BadSignature         the signature does not match the payload

Callers map each class to one status; a scanner shows ``TicketTokenError.reason``.
"""

from __future__ import annotations

from collections.abc import Sequence


class RulesError(Exception):
    """Base class of the rules' errors."""


class UnknownCurrency(RulesError):
    def __init__(self, currency: str) -> None:
        super().__init__(f"unsupported currency {currency!r}")
        self.currency = currency


class CurrencyMismatch(RulesError):
    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"currency mismatch: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


class InvalidAmount(RulesError):
    """An amount that is not integer minor units of its currency."""


class InvalidPlan(RulesError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid fee plan: " + "; ".join(self.problems))


class NoPriceInCurrency(RulesError):
    def __init__(self, plan_id: str, currency: str) -> None:
        super().__init__(f"plan {plan_id!r} has no prices in {currency}")
        self.plan_id = plan_id
        self.currency = currency


class RefundExceedsPaid(RulesError):
    def __init__(self, amount: int, refundable: int) -> None:
        super().__init__(f"refund of {amount} exceeds the {refundable} left to refund")
        self.amount = amount
        self.refundable = refundable


class StatementInputError(RulesError):
    """A record of another organizer or period, or inconsistent in itself."""


class KeyRingError(RulesError):
    """A key ring that breaks its rules."""


class TicketTokenError(RulesError):
    """A token that does not verify; ``reason`` is a stable short code."""

    reason = "invalid"


class TokenMalformed(TicketTokenError):
    reason = "malformed"


class UnknownKey(TicketTokenError):
    reason = "unknown_key"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"unknown signing key {key_id!r}")
        self.key_id = key_id


class RevokedKey(TicketTokenError):
    reason = "revoked_key"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"signing key {key_id!r} was revoked")
        self.key_id = key_id


class BadSignature(TicketTokenError):
    reason = "bad_signature"


class InvalidScoring(RulesError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid seller scoring rules: " + "; ".join(self.problems))


class InvalidBranding(RulesError):
    """A branding field that breaks its rule; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidOffer(RulesError):
    """A ticket type or promo code definition at fault in ``field`` (rules/promos.py)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
