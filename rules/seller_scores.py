"""Resale sellers' scores: how reliably a seller delivers, and the fee rate it earns.

The model is a ticket exchange's seller metrics (docs/sellers.md
states the rules with worked examples). A seller's orders are scored as of a
moment ``as_of``; only what was known then counts (an outcome decided, a
delivery made after ``as_of`` is not), so a score as of a past moment never
changes when it is recomputed later.

**Window.** Orders placed in ``[as_of - 365 days, as_of - 10 days)``: the last
10 days are left out (orders still being settled). No score before the seller
has ``min_orders`` (25) orders placed in the last 90 days of that window.

**Components** (points; a component with no order to judge earns its maximum:
nothing was failed):

=====================  ===  ===================================================
fill rate               40  orders placed more than 3 days before their event:
                            half the points by count, half by value, each
                            ``accepted / (accepted + w_r * rejected + w_b * busted)``
near-term fill rate     10  the same over orders placed 3 days or less before
delivery rate           20  accepted or busted orders whose delivery was due by
                            ``as_of``: the share delivered by the due time
processing time         10  the average time from order to decision: full points
                            at or under ``processing_full_s``, none at or over
                            ``processing_zero_s``, linear between
platform criteria       20  the platform's own criteria, each worth its points
                            times the seller's rating on it (0 to 1); with no
                            criteria configured, all 20
=====================  ===  ===================================================

``w_r`` and ``w_b`` are the penalty multipliers: a rejected order counts
``rejected_weight`` times (default 1), a busted one (accepted, then not
honoured) ``busted_weight`` times (default 4, at most 8). A rejected or busted
order counts at its full value in the value rate, times the same multiplier.

**Total and fee.** Points are exact fractions; the total is rounded half-even
to 2 decimals, and that rounded total picks the fee rate from the platform's
table: the row with the highest ``min_score`` at or below it. A seller with no
score pays ``unscored_fee_bps``. The fee is locked per quarter (the score as of
the quarter's first instant, UTC); the score is recomputed weekly (as of the
week's Monday 00:00 UTC) for information.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Annotated, Final, Literal

import msgspec

from rules.errors import InvalidScoring

DAY_MS: Final = 86_400_000
NEAR_TERM_MS: Final = 3 * DAY_MS  # placed this close to the event (or closer): near-term
MAX_PENALTY: Final = 8

Outcome = Literal["pending", "accepted", "rejected", "busted"]
Component = Literal[
    "fill_rate", "near_term_fill_rate", "delivery_rate", "processing_time", "platform_criteria"
]
MAX_POINTS: Final[dict[Component, int]] = {
    "fill_rate": 40,
    "near_term_fill_rate": 10,
    "delivery_rate": 20,
    "processing_time": 10,
    "platform_criteria": 20,
}
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class SellerOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One order a seller received: placed, then accepted or rejected; an accepted
    order is delivered (by its due time, or late), or busted (not honoured)."""

    order_id: str
    placed_ms: NonNegative
    event_starts_ms: NonNegative
    value_minor: NonNegative
    outcome: Outcome = "pending"
    decided_ms: NonNegative = 0  # accepted or rejected at (0: pending)
    busted_ms: NonNegative = 0  # an accepted order found not honoured at (outcome busted)
    delivery_due_ms: NonNegative = 0  # 0: no delivery expected (rejected)
    delivered_ms: NonNegative = 0  # 0: not delivered


class Criterion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    points: Annotated[int, msgspec.Meta(ge=1, le=20)]


class FeeStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_score: Annotated[int, msgspec.Meta(ge=0, le=100)]
    fee_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000)]


DEFAULT_FEES: Final = (
    FeeStep(0, 1_000),
    FeeStep(50, 800),
    FeeStep(70, 600),
    FeeStep(85, 400),
    FeeStep(95, 275),
)


class ScoringRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A platform's configuration of the score (every field has a default)."""

    window_days: Annotated[int, msgspec.Meta(ge=1, le=3_650)] = 365
    settle_days: Annotated[int, msgspec.Meta(ge=0, le=90)] = 10
    min_orders: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 25
    min_orders_days: Annotated[int, msgspec.Meta(ge=1, le=3_650)] = 90
    rejected_weight: Annotated[int, msgspec.Meta(ge=1, le=MAX_PENALTY)] = 1
    busted_weight: Annotated[int, msgspec.Meta(ge=1, le=MAX_PENALTY)] = 4
    processing_full_s: Annotated[int, msgspec.Meta(ge=0)] = 3_600
    processing_zero_s: Annotated[int, msgspec.Meta(ge=1)] = 86_400
    criteria: tuple[Criterion, ...] = ()
    fees: tuple[FeeStep, ...] = DEFAULT_FEES
    unscored_fee_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 1_000


def check_rules(rules: ScoringRules) -> ScoringRules:
    """``rules`` if consistent; else :class:`InvalidScoring` naming every problem."""
    problems = []
    if rules.processing_full_s >= rules.processing_zero_s:
        problems.append("processing_full_s must be below processing_zero_s")
    if rules.min_orders_days > rules.window_days - rules.settle_days:
        problems.append("min_orders_days must fit in the window less its settle_days")
    names = [c.name for c in rules.criteria]
    if len(set(names)) != len(names):
        problems.append("criteria names must be unique")
    if any(not n or len(n) > 64 for n in names):
        problems.append("criteria names must be 1 to 64 characters")
    if rules.criteria and sum(c.points for c in rules.criteria) != MAX_POINTS["platform_criteria"]:
        problems.append("criteria points must add up to 20")
    if not rules.fees or rules.fees[0].min_score != 0:
        problems.append("fees must start at min_score 0")
    for before, after in zip(rules.fees, rules.fees[1:], strict=False):
        if after.min_score <= before.min_score:
            problems.append("fees' min_score must increase")
            break
        if after.fee_bps > before.fee_bps:
            problems.append("a higher score must never pay a higher fee")
            break
    if problems:
        raise InvalidScoring(problems)
    return rules


def order_problems(order: SellerOrder) -> list[str]:
    """What makes an order's record inconsistent in itself (empty: nothing)."""
    problems = []
    decided = order.outcome != "pending"
    if decided != (order.decided_ms > 0):
        problems.append("decided_at must be set exactly when the outcome is decided")
    if decided and order.decided_ms < order.placed_ms:
        problems.append("decided_at must not be before placed_at")
    if (order.outcome == "busted") != (order.busted_ms > 0):
        problems.append("busted_at must be set exactly when the outcome is busted")
    if order.busted_ms and order.busted_ms < order.decided_ms:
        problems.append("busted_at must not be before decided_at")
    if order.outcome in ("pending", "rejected", "busted") and order.delivered_ms:
        problems.append(f"a {order.outcome} order has no delivered_at")
    if order.outcome in ("accepted", "busted") and order.delivery_due_ms < order.placed_ms:
        problems.append("an accepted order needs a delivery_due_at, not before placed_at")
    if order.delivered_ms and order.delivered_ms < order.decided_ms:
        problems.append("delivered_at must not be before decided_at")
    return problems


class Part(msgspec.Struct, frozen=True):
    """One component: its points and the numbers behind them."""

    component: Component
    points: Fraction
    max_points: int
    orders: int = 0  # the orders it judged
    good: int = 0  # accepted (fill rates), delivered on time, decided (processing)
    rejected: int = 0
    busted: int = 0
    value_good: int = 0  # minor units (fill rates)
    value_weighted_bad: int = 0  # rejected and busted values times their multipliers
    average_ms: int = 0  # processing time


class Score(msgspec.Struct, frozen=True):
    as_of_ms: int
    scored: bool  # False: too few orders (fee: unscored_fee_bps)
    total: Decimal  # 0.00 to 100.00 (0 when not scored)
    fee_bps: int
    parts: tuple[Part, ...]
    orders_in_window: int
    recent_orders: int  # placed in the last min_orders_days of the window


def _fill(component: Component, orders: list[SellerOrder], rules: ScoringRules) -> Part:
    accepted = [o for o in orders if o.outcome == "accepted"]
    rejected = [o for o in orders if o.outcome == "rejected"]
    busted = [o for o in orders if o.outcome == "busted"]
    top = MAX_POINTS[component]
    good_value = sum(o.value_minor for o in accepted)
    bad_value = rules.rejected_weight * sum(o.value_minor for o in rejected) + rules.busted_weight * sum(
        o.value_minor for o in busted
    )
    bad_count = rules.rejected_weight * len(rejected) + rules.busted_weight * len(busted)
    judged = len(accepted) + len(rejected) + len(busted)
    if judged == 0:
        points = Fraction(top)
    else:
        by_count = Fraction(len(accepted), len(accepted) + bad_count)
        by_value = Fraction(good_value, good_value + bad_value) if good_value + bad_value else Fraction(1)
        points = Fraction(top, 2) * (by_count + by_value)
    return Part(
        component, points, top, judged, len(accepted), len(rejected), len(busted), good_value, bad_value
    )


def _delivery(orders: list[SellerOrder], as_of: int) -> Part:
    due = [
        o for o in orders if o.outcome in ("accepted", "busted") and 0 < o.delivery_due_ms <= as_of
    ]  # busted: never delivered
    on_time = [o for o in due if o.outcome == "accepted" and 0 < o.delivered_ms <= o.delivery_due_ms]
    top = MAX_POINTS["delivery_rate"]
    points = Fraction(top * len(on_time), len(due)) if due else Fraction(top)
    return Part("delivery_rate", points, top, len(due), len(on_time))


def _processing(orders: list[SellerOrder], rules: ScoringRules) -> Part:
    decided = [o for o in orders if o.outcome != "pending"]
    top = MAX_POINTS["processing_time"]
    if not decided:
        return Part("processing_time", Fraction(top), top)
    average = Fraction(sum(o.decided_ms - o.placed_ms for o in decided), len(decided))
    full, zero = rules.processing_full_s * 1000, rules.processing_zero_s * 1000
    share = min(Fraction(1), max(Fraction(0), Fraction(zero - average, zero - full)))
    return Part("processing_time", top * share, top, len(decided), len(decided), average_ms=round(average))


def _criteria(rules: ScoringRules, ratings: dict[str, Fraction]) -> Part:
    top = MAX_POINTS["platform_criteria"]
    if not rules.criteria:
        return Part("platform_criteria", Fraction(top), top)
    points = sum(
        (
            c.points * min(Fraction(1), max(Fraction(0), ratings.get(c.name, Fraction(0))))
            for c in rules.criteria
        ),
        Fraction(0),
    )
    return Part(
        "platform_criteria",
        points,
        top,
        len(rules.criteria),
        sum(1 for c in rules.criteria if c.name in ratings),
    )


def as_known_at(order: SellerOrder, as_of: int) -> SellerOrder:
    """The order as it stood at ``as_of``: later decisions and deliveries not yet made."""
    if order.outcome != "pending" and order.decided_ms > as_of:
        return msgspec.structs.replace(order, outcome="pending", decided_ms=0, busted_ms=0, delivered_ms=0)
    if order.outcome == "busted" and order.busted_ms > as_of:
        return msgspec.structs.replace(order, outcome="accepted", busted_ms=0, delivered_ms=0)
    if order.delivered_ms > as_of:
        return msgspec.structs.replace(order, delivered_ms=0)
    return order


def fee_for(total: Decimal, rules: ScoringRules) -> int:
    return [step.fee_bps for step in rules.fees if step.min_score <= total][-1]


def score(
    orders: list[SellerOrder], as_of_ms: int, rules: ScoringRules, ratings: dict[str, Fraction] | None = None
) -> Score:
    """The seller's score as of ``as_of_ms`` (see the module's rules)."""
    end = as_of_ms - rules.settle_days * DAY_MS
    start = as_of_ms - rules.window_days * DAY_MS
    window = [as_known_at(o, as_of_ms) for o in orders if start <= o.placed_ms < end]
    recent = sum(1 for o in window if o.placed_ms >= end - rules.min_orders_days * DAY_MS)
    far = [o for o in window if o.event_starts_ms - o.placed_ms > NEAR_TERM_MS]
    near = [o for o in window if o.event_starts_ms - o.placed_ms <= NEAR_TERM_MS]
    parts = (
        _fill("fill_rate", far, rules),
        _fill("near_term_fill_rate", near, rules),
        _delivery(window, as_of_ms),
        _processing(window, rules),
        _criteria(rules, ratings or {}),
    )
    if recent < rules.min_orders:
        return Score(as_of_ms, False, Decimal("0.00"), rules.unscored_fee_bps, parts, len(window), recent)
    exact = sum((p.points for p in parts), Fraction(0))
    total = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return Score(as_of_ms, True, total, fee_for(total, rules), parts, len(window), recent)


def points_text(points: Fraction) -> str:
    """Points as shown: 2 decimals, half-even."""
    return str(
        (Decimal(points.numerator) / Decimal(points.denominator)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    )


def quarter_start_ms(at_ms: int) -> int:
    """The first instant (UTC) of the quarter holding ``at_ms``: the fee is locked from it."""
    day = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
    first = dt.datetime(day.year, 3 * ((day.month - 1) // 3) + 1, 1, tzinfo=dt.UTC)
    return int(first.timestamp() * 1000)


def week_start_ms(at_ms: int) -> int:
    """Monday 00:00 UTC of the week holding ``at_ms``: the informational score's moment."""
    day = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).date()
    monday = day - dt.timedelta(days=day.weekday())
    return int(dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.UTC).timestamp() * 1000)
