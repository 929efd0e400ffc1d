"""Fee plans, the split of each ticket's price, refund reversals, who owes whom.

The rules (``docs/money.md`` states them with worked examples):

**Split.** A ticket's price ``p`` (integer minor units) is split into the
platform's fees and the organizer's share. Each fee kind has a rate part,
``round_half_even(p * bps / 10_000)`` in exact integer arithmetic, and a fixed
part from the plan's prices in the ticket's currency. The payment-processing
fee applies only when the platform's payment account collected the money (an
organizer collecting with its own account pays its processor directly). Fees
never exceed the price: the parts are taken from the price in the order of
:data:`COMPONENTS`, each at most what is left, so a free ticket carries no fee
and the organizer's share is never negative. 5 % + 1.00 on 100.00 is
5.00 + 1.00 = 6.00 to the platform and 94.00 to the organizer.

**Reversal.** A refund of ``r`` after ``b`` already refunded (``b + r <= p``)
gives back fees in proportion to the price refunded, computed cumulatively:
``reversed(c) = round_half_even(F * c / p)`` where ``F`` is the reversible fee
(all of it under the ``full`` policy, the rate parts only under
``keep_fixed``), and the refund reverses ``reversed(b + r) - reversed(b)``.
That amount is attributed to the parts in :data:`COMPONENTS` order, each up to
its original amount. Hence: every reversal is itself a valid split (fees
between 0 and the refund), the reversals of a ticket add up to at most its
original fees, and a full refund (one or many) reverses exactly ``F``.

**Settlement.** The collector holds the buyer's money: when the platform
collected, the platform owes the organizer its share; when the organizer
collected, the organizer owes the platform its fees. :func:`settlement` is that
amount signed from the organizer's side (positive: the platform owes it).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Final, Literal

import msgspec

from rules.errors import InvalidAmount, InvalidPlan, NoPriceInCurrency, RefundExceedsPaid
from rules.money import CURRENCY_EXPONENTS, CurrencyCode, check_minor, div_round_half_even, exponent

BPS_DENOMINATOR: Final = 10_000  # basis points: 500 bps = 5 %

RefundPolicy = Literal["full", "keep_fixed"]  # reverse every fee, or keep the fixed parts
Collector = Literal["platform", "organizer"]  # whose payment account took the buyer's money
TicketFeeKind = Literal["ticket_fee", "processing_fee"]
FeeKind = Literal["ticket_fee", "processing_fee", "setup_fee", "monthly_fee"]
FEE_KINDS: Final[tuple[FeeKind, ...]] = ("ticket_fee", "processing_fee", "setup_fee", "monthly_fee")

# The fee parts of a split, in the order they are taken from the price (and reversed).
COMPONENTS: Final = ("ticket_fee_rate", "ticket_fee_fixed", "processing_fee_rate", "processing_fee_fixed")

Bps = Annotated[int, msgspec.Meta(ge=0, le=BPS_DENOMINATOR)]
Minor = Annotated[int, msgspec.Meta(ge=0)]


class PlanPrices(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A plan's fixed amounts in one currency (minor units)."""

    setup_fee: Minor = 0
    monthly_fee: Minor = 0
    ticket_fee_fixed: Minor = 0  # per ticket, on top of ticket_fee_bps
    processing_fee_fixed: Minor = 0  # per ticket, on top of processing_fee_bps


LimitName = Literal["events_per_month", "seats_per_map", "active_events", "tickets_per_month"]
LIMIT_NAMES: Final[tuple[LimitName, ...]] = (
    "events_per_month",
    "seats_per_map",
    "active_events",
    "tickets_per_month",
)


class PlanLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What an organizer on the plan may do; 0: no limit. Per billing period (a calendar
    month, UTC): events created, tickets sold. At any time: events not closed, and the
    places (seats and general-admission capacity) of one seat map."""

    events_per_month: Minor = 0
    seats_per_map: Minor = 0
    active_events: Minor = 0
    tickets_per_month: Minor = 0


def threshold_crossed(before: int, after: int, limit: int) -> tuple[int, ...]:
    """The thresholds (80, 100 percent of ``limit``) that usage going from ``before`` to
    ``after`` crosses: 80 when ``after`` reaches 80 % (``after * 100 >= 80 * limit``) and
    ``before`` had not, 100 likewise at ``limit``. The same rule ``plan_usage.lua`` applies."""
    if limit <= 0:
        return ()
    crossed: tuple[int, ...] = ()
    if before * 100 < 80 * limit <= after * 100:
        crossed += (80,)
    if before < limit <= after:
        crossed += (100,)
    return crossed


class PlanFeatures(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What the plan includes beyond selling (both by default, as before plans had features):
    the organizer's own branding profile (else its storefronts show the platform's), and
    sales collected by the organizer's own payment account (else the platform collects)."""

    own_branding: bool = True
    own_payment_account: bool = True


class FeePlan(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a platform charges an organizer. Rates apply in any currency; fixed
    amounts come from ``prices`` in the ticket's currency, which must include
    ``default_currency``."""

    plan_id: str
    default_currency: CurrencyCode
    prices: dict[CurrencyCode, PlanPrices]
    ticket_fee_bps: Bps = 0
    processing_fee_bps: Bps = 0
    refund_policy: RefundPolicy = "full"
    limits: PlanLimits = PlanLimits()
    features: PlanFeatures = PlanFeatures()

    def billing_currency(self, organizer_currency: str | None) -> str:
        """An organizer pays in its country's currency when the plan prices it, else the default."""
        if organizer_currency is not None and organizer_currency in self.prices:
            return organizer_currency
        return self.default_currency

    def prices_in(self, currency: str) -> PlanPrices:
        try:
            return self.prices[currency]
        except KeyError:
            raise NoPriceInCurrency(self.plan_id, currency) from None


def check_plan(plan: FeePlan) -> FeePlan:
    """``plan`` if it keeps the rules that decoding alone does not check; else :class:`InvalidPlan`."""
    problems = []
    if plan.default_currency not in plan.prices:
        problems.append(f"default currency {plan.default_currency} has no prices")
    problems += [f"unsupported currency {code}" for code in plan.prices if code not in CURRENCY_EXPONENTS]
    for name in ("ticket_fee_bps", "processing_fee_bps"):
        value = getattr(plan, name)
        if type(value) is not int or not 0 <= value <= BPS_DENOMINATOR:
            problems.append(f"{name} must be an integer from 0 to {BPS_DENOMINATOR}")
    for code, prices in plan.prices.items():
        for field in prices.__struct_fields__:
            value = getattr(prices, field)
            if type(value) is not int or value < 0:
                problems.append(f"prices[{code}].{field} must be a non-negative integer")
    for name in LIMIT_NAMES:
        value = getattr(plan.limits, name)
        if type(value) is not int or value < 0:
            problems.append(f"limits.{name} must be a non-negative integer (0: no limit)")
    if problems:
        raise InvalidPlan(problems)
    return plan


class Split(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A ticket's price and the platform's fee parts, recorded with the order.

    The same shape records a reversal: ``price`` is then the amount refunded and
    the parts are the fees given back. ``refund_policy`` is the plan's at the
    time of sale, so a later change of plan never rewrites old orders.
    """

    currency: CurrencyCode
    price: Minor
    ticket_fee_rate: Minor = 0
    ticket_fee_fixed: Minor = 0
    processing_fee_rate: Minor = 0
    processing_fee_fixed: Minor = 0
    refund_policy: RefundPolicy = "full"

    @property
    def ticket_fee(self) -> int:
        return self.ticket_fee_rate + self.ticket_fee_fixed

    @property
    def processing_fee(self) -> int:
        return self.processing_fee_rate + self.processing_fee_fixed

    @property
    def platform(self) -> int:
        """Everything the platform takes: the sum of the fee parts."""
        return self.ticket_fee + self.processing_fee

    @property
    def organizer(self) -> int:
        """The organizer's share: the price less the fees (never negative)."""
        return self.price - self.platform

    def by_kind(self) -> dict[TicketFeeKind, int]:
        return {"ticket_fee": self.ticket_fee, "processing_fee": self.processing_fee}

    def parts(self) -> tuple[int, int, int, int]:
        """The fee parts in :data:`COMPONENTS` order."""
        return (
            self.ticket_fee_rate,
            self.ticket_fee_fixed,
            self.processing_fee_rate,
            self.processing_fee_fixed,
        )


def rate_part(price: int, bps: int) -> int:
    """``price * bps / 10_000`` rounded half to even, in integers."""
    return div_round_half_even(price * bps, BPS_DENOMINATOR)


def _take(wanted: tuple[int, ...], available: int) -> list[int]:
    """Take each amount in order, each at most what is left of ``available``."""
    taken = []
    for amount in wanted:
        part = min(amount, available)
        taken.append(part)
        available -= part
    return taken


def split_ticket(price: int, currency: str, plan: FeePlan, collector: Collector) -> Split:
    """Split one ticket's ``price`` (minor units of ``currency``) under ``plan``.

    Raises :class:`NoPriceInCurrency` when the plan has no fixed amounts in ``currency``.
    """
    if check_minor(price) < 0:
        raise InvalidAmount("a ticket price is never negative")
    exponent(currency)
    prices = plan.prices_in(currency)
    processing = collector == "platform"
    wanted = (
        rate_part(price, plan.ticket_fee_bps),
        prices.ticket_fee_fixed,
        rate_part(price, plan.processing_fee_bps) if processing else 0,
        prices.processing_fee_fixed if processing else 0,
    )
    t_rate, t_fixed, p_rate, p_fixed = _take(wanted, price)
    return Split(currency, price, t_rate, t_fixed, p_rate, p_fixed, plan.refund_policy)


def reversible(split: Split) -> tuple[int, int, int, int]:
    """The fee parts a full refund gives back under the split's policy."""
    t_rate, t_fixed, p_rate, p_fixed = split.parts()
    if split.refund_policy == "keep_fixed":
        return (t_rate, 0, p_rate, 0)
    return (t_rate, t_fixed, p_rate, p_fixed)


def _reversed_so_far(split: Split, refunded: int) -> list[int]:
    """The fee parts given back once ``refunded`` of the price has been refunded in total."""
    pool = reversible(split)
    if split.price == 0:
        return [0] * len(pool)
    total = div_round_half_even(sum(pool) * refunded, split.price)
    return _take(pool, total)


def reverse(split: Split, amount: int, *, refunded_before: int = 0) -> Split:
    """The reversal of refunding ``amount`` of a ticket of which ``refunded_before`` was refunded already.

    Returns a :class:`Split` whose ``price`` is ``amount`` and whose parts are the
    fees given back (see the module docstring). :class:`RefundExceedsPaid` when
    ``refunded_before + amount`` is more than the price.
    """
    check_minor(amount)
    check_minor(refunded_before)
    if amount < 0 or refunded_before < 0:
        raise InvalidAmount("refund amounts are never negative")
    if refunded_before + amount > split.price:
        raise RefundExceedsPaid(amount, max(split.price - refunded_before, 0))
    after = _reversed_so_far(split, refunded_before + amount)
    before = _reversed_so_far(split, refunded_before)
    t_rate, t_fixed, p_rate, p_fixed = (a - b for a, b in zip(after, before, strict=True))
    return Split(split.currency, amount, t_rate, t_fixed, p_rate, p_fixed, split.refund_policy)


def cancel(split: Split, *, refunded_before: int = 0) -> Split:
    """The reversal of cancelling a ticket: everything not yet refunded is refunded."""
    return reverse(split, split.price - refunded_before, refunded_before=refunded_before)


def settlement(split: Split, collector: Collector) -> int:
    """What this sale moves between the two, signed from the organizer's side.

    Platform collected: ``+organizer share`` (the platform owes it to the organizer).
    Organizer collected: ``-platform fees`` (the organizer owes them to the platform).
    For a reversal, negate: the refund undoes the sale's settlement in part.
    """
    return split.organizer if collector == "platform" else -split.platform


def plan_charge(
    plan: FeePlan, kind: Literal["setup_fee", "monthly_fee"], organizer_currency: str | None
) -> int:
    """The setup or monthly fee in the organizer's billing currency (see :meth:`FeePlan.billing_currency`)."""
    prices = plan.prices_in(plan.billing_currency(organizer_currency))
    return prices.setup_fee if kind == "setup_fee" else prices.monthly_fee


class MonthPart(msgspec.Struct, frozen=True):
    """The part of a calendar month (UTC) left from a moment on: ``days_left`` of
    ``days_in_month``, the moment's own day counted as left (it goes to the new plan)."""

    days_left: int
    days_in_month: int


def month_part_left(at_ms: int) -> MonthPart:
    """The days left in the UTC calendar month of ``at_ms``, its own day included."""
    day = datetime.datetime.fromtimestamp(at_ms / 1000, datetime.UTC).date()
    first_of_next = (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    days_in_month = (first_of_next - day.replace(day=1)).days
    return MonthPart(days_in_month - day.day + 1, days_in_month)


def prorated_change(old_fee: int, new_fee: int, part: MonthPart) -> int:
    """What a plan change owes for the rest of the month: the monthly fee difference
    ``(new − old) × days_left / days_in_month``, rounded half to even (rules/money.py's
    one rule). Positive: the organizer owes more (an upgrade); negative: it is credited
    (a downgrade). Fees in minor units of one currency."""
    check_minor(old_fee)
    check_minor(new_fee)
    if not 1 <= part.days_in_month <= 31 or not 0 <= part.days_left <= part.days_in_month:
        raise InvalidAmount(f"{part.days_left} days left of {part.days_in_month} is not a part of a month")
    return div_round_half_even((new_fee - old_fee) * part.days_left, part.days_in_month)
