"""Seller scores: worked examples at every threshold (docs/sellers.md), and properties."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.errors import InvalidScoring
from rules.seller_scores import (
    DAY_MS,
    Criterion,
    FeeStep,
    ScoringRules,
    SellerOrder,
    check_rules,
    points_text,
    quarter_start_ms,
    score,
    week_start_ms,
)

NOW = int(dt.datetime(2026, 6, 15, tzinfo=dt.UTC).timestamp() * 1000)
HOUR = 3_600_000
RULES = ScoringRules()
ONE_CRITERION = ScoringRules(criteria=(Criterion("complaints", 20),))


def order(
    i: int,
    *,
    days_ago: float = 20,
    event_in_days: float = 30,
    value: int = 10_000,
    outcome: str = "accepted",
    decide_after_ms: int = 10 * 60_000,
    delivered: bool = True,
    late_ms: int = 0,
) -> SellerOrder:
    placed = NOW - int(days_ago * DAY_MS)
    decided = placed + decide_after_ms if outcome != "pending" else 0
    due = placed + 2 * DAY_MS if outcome in ("accepted", "busted") else 0
    return SellerOrder(
        order_id=f"o{i}",
        placed_ms=placed,
        event_starts_ms=placed + int(event_in_days * DAY_MS),
        value_minor=value,
        outcome=outcome,  # type: ignore[arg-type]
        decided_ms=decided,
        busted_ms=decided + HOUR if outcome == "busted" else 0,
        delivery_due_ms=due,
        delivered_ms=due + late_ms if delivered and outcome == "accepted" else 0,
    )


def good(n: int, start: int = 0, **kw: object) -> list[SellerOrder]:
    return [order(start + i, **kw) for i in range(n)]  # type: ignore[arg-type]


def part(result: object, component: str) -> object:
    return next(p for p in result.parts if p.component == component)  # type: ignore[attr-defined]


def test_a_perfect_seller_scores_100_and_pays_the_lowest_fee() -> None:
    result = score(good(30), NOW, RULES)
    assert (result.scored, result.total, result.fee_bps) == (True, Decimal("100.00"), 275)
    assert [points_text(p.points) for p in result.parts] == ["40.00", "10.00", "20.00", "10.00", "20.00"]


def test_fill_rate_by_count_and_value_with_penalty_multipliers() -> None:
    # 36 accepted, 2 rejected (x1), 2 busted (x4), all of 100.00, far from the event:
    # by count 36 / (36 + 2 + 8) = 36/46, by value the same: 40 * 36/46 = 31.30
    orders = good(36) + good(2, 36, outcome="rejected") + good(2, 38, outcome="busted")
    fill = part(score(orders, NOW, RULES), "fill_rate")
    assert (fill.orders, fill.good, fill.rejected, fill.busted) == (40, 36, 2, 2)  # type: ignore[attr-defined]
    assert fill.value_weighted_bad == 2 * 10_000 + 4 * 2 * 10_000  # type: ignore[attr-defined]
    assert fill.points == Fraction(40 * 36, 46)  # type: ignore[attr-defined]
    assert points_text(fill.points) == "31.30"  # type: ignore[attr-defined]
    # a busted order at the cap counts 8 times: 36 / (36 + 2 + 16)
    capped = part(score(orders, NOW, ScoringRules(busted_weight=8)), "fill_rate")
    assert capped.points == Fraction(40 * 36, 54)  # type: ignore[attr-defined]


def test_value_rate_weighs_expensive_failures_more() -> None:
    # 9 accepted of 50.00 and one rejected of 450.00: by count 9/10, by value 450/900
    orders = [*good(9, value=5_000), order(9, value=45_000, outcome="rejected")]
    fill = part(score(orders, NOW, RULES), "fill_rate")
    assert fill.points == 20 * Fraction(9, 10) + 20 * Fraction(1, 2)  # type: ignore[attr-defined]


def test_three_days_before_the_event_is_near_term() -> None:
    at_three = order(0, event_in_days=3, outcome="rejected")  # exactly 3 days: near-term
    over = SellerOrder(**{**msgspec.structs.asdict(at_three), "order_id": "o1",
                          "event_starts_ms": at_three.event_starts_ms + 1})  # fmt: skip
    result = score([*good(30, 2), at_three], NOW, RULES)
    assert part(result, "near_term_fill_rate").rejected == 1  # type: ignore[attr-defined]
    assert part(result, "fill_rate").rejected == 0  # type: ignore[attr-defined]
    result = score([*good(30, 2), over], NOW, RULES)
    assert part(result, "near_term_fill_rate").orders == 0  # type: ignore[attr-defined]
    assert part(result, "fill_rate").rejected == 1  # type: ignore[attr-defined]


def test_the_window_is_365_days_less_the_last_10() -> None:
    edge_new = order(100, days_ago=10, outcome="rejected")  # placed at as_of - 10 days: left out
    inside_new = SellerOrder(**{**msgspec.structs.asdict(edge_new), "order_id": "o101",
                                "placed_ms": edge_new.placed_ms - 1})  # fmt: skip
    edge_old = order(102, days_ago=365, outcome="rejected")  # placed at as_of - 365 days: counted
    outside_old = SellerOrder(**{**msgspec.structs.asdict(edge_old), "order_id": "o103",
                                 "placed_ms": edge_old.placed_ms - 1})  # fmt: skip
    result = score([*good(30), edge_new, inside_new, edge_old, outside_old], NOW, RULES)
    assert result.orders_in_window == 32
    assert part(result, "fill_rate").rejected == 2  # type: ignore[attr-defined]


def test_no_score_before_25_orders_in_the_last_90_days_of_the_window() -> None:
    old = good(100, 100, days_ago=200)  # many orders, but long ago
    result = score([*old, *good(24)], NOW, RULES)
    assert (result.scored, result.recent_orders, result.fee_bps) == (False, 24, RULES.unscored_fee_bps)
    assert result.total == Decimal("0.00")
    assert score([*old, *good(25)], NOW, RULES).scored
    # the 90 days end where the window does (10 days ago): an order 100 days ago is inside them
    edge = good(1, 50, days_ago=100)
    assert score([*good(24), *edge], NOW, RULES).recent_orders == 25
    assert score([*good(24), *good(1, 50, days_ago=100.01)], NOW, RULES).recent_orders == 24


def test_delivery_rate_counts_what_was_due_delivered_on_time() -> None:
    on_time = good(20)
    at_due = good(5, 20, late_ms=0)
    late = good(4, 25, late_ms=1)  # one millisecond late
    busted = good(1, 29, outcome="busted")  # never delivered
    not_due_yet = good(3, 30, days_ago=11, delivered=False)  # due 2 days after placing: 9 days ago... due
    result = score([*on_time, *at_due, *late, *busted, *not_due_yet], NOW, RULES)
    delivery = part(result, "delivery_rate")
    assert (delivery.orders, delivery.good) == (33, 25)  # type: ignore[attr-defined]
    assert delivery.points == Fraction(20 * 25, 33)  # type: ignore[attr-defined]
    # as of a moment before their due time, undelivered orders are not judged yet
    early = NOW - 10 * DAY_MS  # a placed-11-days-ago order is due 9 days ago, after this moment
    judged = part(score(not_due_yet, early, ScoringRules(settle_days=0, min_orders=0)), "delivery_rate")
    assert judged.orders == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("average_h", "points"),
    [(0, Fraction(10)), (1, Fraction(10)), (12.5, Fraction(5)), (24, Fraction(0)), (30, Fraction(0))],
)
def test_processing_time_full_at_one_hour_none_at_a_day_linear_between(
    average_h: float, points: Fraction
) -> None:
    orders = good(30, decide_after_ms=int(average_h * HOUR))
    processing = part(score(orders, NOW, RULES), "processing_time")
    assert processing.points == points  # type: ignore[attr-defined]
    assert processing.average_ms == int(average_h * HOUR)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("rating", "total", "fee_bps"),
    [
        (Fraction(3, 4), "95.00", 275),  # exactly on a row's min_score: that row
        (Fraction(1499, 2000), "94.99", 400),
        (Fraction(1, 4), "85.00", 400),
        (Fraction(0), "80.00", 600),
    ],
)
def test_the_fee_table_row_at_or_below_the_rounded_total(rating: Fraction, total: str, fee_bps: int) -> None:
    result = score(good(30), NOW, ONE_CRITERION, {"complaints": rating})
    assert (result.total, result.fee_bps) == (Decimal(total), fee_bps)


def test_the_total_is_rounded_half_even_before_the_fee_is_chosen() -> None:
    rules = ScoringRules(criteria=(Criterion("complaints", 20),), fees=(FeeStep(0, 900), FeeStep(95, 300)))
    # 80 + 20 * r = 94.995 exactly: rounds half-even to 95.00 (the 9 before it is odd)
    result = score(good(30), NOW, rules, {"complaints": Fraction(14995, 20000)})
    assert (result.total, result.fee_bps) == (Decimal("95.00"), 300)
    # 94.985 rounds to 94.98
    result = score(good(30), NOW, rules, {"complaints": Fraction(14985, 20000)})
    assert (result.total, result.fee_bps) == (Decimal("94.98"), 900)


def test_platform_criteria_missing_ratings_earn_nothing_and_none_configured_earns_all() -> None:
    two = ScoringRules(criteria=(Criterion("complaints", 15), Criterion("listing_accuracy", 5)))
    result = score(good(30), NOW, two, {"complaints": Fraction(1, 3)})
    assert part(result, "platform_criteria").points == Fraction(5)  # type: ignore[attr-defined]
    assert part(score(good(30), NOW, RULES), "platform_criteria").points == 20  # type: ignore[attr-defined]


def test_only_what_was_known_at_the_moment_counts() -> None:
    moment = NOW - 15 * DAY_MS
    # rejected 20 days after it was placed, 30 days ago: still pending at the moment
    later_decision = order(0, days_ago=30, outcome="rejected", decide_after_ms=20 * DAY_MS)
    bust = order(1, days_ago=30, outcome="busted")  # busted an hour after its acceptance
    found_later = msgspec.structs.replace(order(2, days_ago=30, outcome="busted"), busted_ms=moment + 1)
    result = score([*good(30, 3, days_ago=40), later_decision, bust, found_later], moment, RULES)
    fill = part(result, "fill_rate")
    assert (fill.good, fill.rejected, fill.busted) == (31, 0, 1)  # type: ignore[attr-defined]
    # recomputed later, the moment's score is the one of the orders as they stood then
    as_then = [
        msgspec.structs.replace(later_decision, outcome="pending", decided_ms=0),
        bust,
        msgspec.structs.replace(found_later, outcome="accepted", busted_ms=0),
    ]
    assert result == score([*good(30, 3, days_ago=40), *as_then], moment, RULES)


def test_quarters_and_weeks_start_in_utc() -> None:
    at = int(dt.datetime(2026, 8, 20, 13, 5, tzinfo=dt.UTC).timestamp() * 1000)  # a Thursday
    assert quarter_start_ms(at) == int(dt.datetime(2026, 7, 1, tzinfo=dt.UTC).timestamp() * 1000)
    assert week_start_ms(at) == int(dt.datetime(2026, 8, 17, tzinfo=dt.UTC).timestamp() * 1000)
    first = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    assert quarter_start_ms(first) == first
    assert quarter_start_ms(first - 1) == int(dt.datetime(2025, 10, 1, tzinfo=dt.UTC).timestamp() * 1000)


def test_bad_rules_are_refused_naming_each_problem() -> None:
    bad = ScoringRules(
        processing_full_s=7_200,
        processing_zero_s=3_600,
        criteria=(Criterion("a", 10), Criterion("a", 5)),
        fees=(FeeStep(10, 500), FeeStep(5, 900)),
    )
    with pytest.raises(InvalidScoring) as refused:
        check_rules(bad)
    assert refused.value.problems == [
        "processing_full_s must be below processing_zero_s",
        "criteria names must be unique",
        "criteria points must add up to 20",
        "fees must start at min_score 0",
        "fees' min_score must increase",
    ]
    with pytest.raises(InvalidScoring, match="higher fee"):
        check_rules(ScoringRules(fees=(FeeStep(0, 500), FeeStep(50, 600))))
    with pytest.raises(msgspec.ValidationError, match="busted_weight"):
        msgspec.json.decode(b'{"busted_weight": 9}', type=ScoringRules)
    assert check_rules(RULES) is RULES


outcomes = st.sampled_from(["pending", "accepted", "rejected", "busted"])


@st.composite
def seller_orders(draw: st.DrawFn) -> list[SellerOrder]:
    n = draw(st.integers(0, 60))
    return [
        order(
            i,
            days_ago=draw(st.floats(0, 400)),
            event_in_days=draw(st.floats(0, 10)),
            value=draw(st.integers(0, 100_000)),
            outcome=draw(outcomes),
            decide_after_ms=draw(st.integers(0, 3 * DAY_MS)),
            delivered=draw(st.booleans()),
            late_ms=draw(st.integers(-DAY_MS, DAY_MS)),
        )
        for i in range(n)
    ]


@given(seller_orders(), st.fractions(0, 1))
def test_scores_stay_within_their_bounds(orders: list[SellerOrder], rating: Fraction) -> None:
    result = score(orders, NOW, ONE_CRITERION, {"complaints": rating})
    for p in result.parts:
        assert 0 <= p.points <= p.max_points
    assert Decimal(0) <= result.total <= Decimal(100)
    assert result.fee_bps in {step.fee_bps for step in ONE_CRITERION.fees} | {ONE_CRITERION.unscored_fee_bps}


@given(seller_orders())
def test_one_more_rejection_never_raises_a_score(orders: list[SellerOrder]) -> None:
    base = score(orders, NOW, RULES)
    worse = score([*orders, order(999, outcome="rejected")], NOW, RULES)
    assert part(worse, "fill_rate").points <= part(base, "fill_rate").points  # type: ignore[attr-defined]
