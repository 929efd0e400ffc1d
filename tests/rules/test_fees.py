from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.errors import InvalidAmount, InvalidPlan, NoPriceInCurrency, RefundExceedsPaid
from rules.fees import (
    COMPONENTS,
    Collector,
    FeePlan,
    MonthPart,
    PlanPrices,
    Split,
    cancel,
    check_plan,
    month_part_left,
    plan_charge,
    prorated_change,
    reverse,
    reversible,
    settlement,
    split_ticket,
)
from rules.money import to_minor
from tests.rules.strategies import CURRENCIES, plans, prices, refund_amounts

collectors = st.sampled_from(["platform", "organizer"])
FIVE_PERCENT_PLUS_ONE = FeePlan(
    plan_id="standard",
    default_currency="EUR",
    prices={
        "EUR": PlanPrices(ticket_fee_fixed=100, setup_fee=9900, monthly_fee=2900),
        "CHF": PlanPrices(ticket_fee_fixed=100),
    },
    ticket_fee_bps=500,
)


def test_worked_example_five_percent_plus_one_on_one_hundred() -> None:
    split = split_ticket(to_minor("100.00", "EUR"), "EUR", FIVE_PERCENT_PLUS_ONE, "platform")
    assert (split.ticket_fee_rate, split.ticket_fee_fixed) == (500, 100)
    assert split.platform == to_minor("6.00", "EUR")
    assert split.organizer == to_minor("94.00", "EUR")
    assert split.by_kind() == {"ticket_fee": 600, "processing_fee": 0}


@pytest.mark.parametrize(("price", "rate"), [(10, 0), (30, 2), (50, 2), (70, 4), (11, 1), (9, 0)])
def test_rate_part_rounds_half_to_even(price: int, rate: int) -> None:
    # 5 % of 0.10 is 0.005 -> 0.00; of 0.30 -> 0.015 -> 0.02; of 0.50 -> 0.025 -> 0.02
    plan = FeePlan("p", "EUR", {"EUR": PlanPrices()}, ticket_fee_bps=500)
    assert split_ticket(price, "EUR", plan, "platform").ticket_fee_rate == rate


def test_fees_never_exceed_the_price() -> None:
    cheap = split_ticket(50, "EUR", FIVE_PERCENT_PLUS_ONE, "platform")
    assert (cheap.ticket_fee_rate, cheap.ticket_fee_fixed, cheap.organizer) == (2, 48, 0)
    free = split_ticket(0, "EUR", FIVE_PERCENT_PLUS_ONE, "platform")
    assert (free.platform, free.organizer) == (0, 0)


def test_processing_fee_only_when_the_platform_collects() -> None:
    plan = FeePlan("p", "EUR", {"EUR": PlanPrices(processing_fee_fixed=25)}, processing_fee_bps=140)
    assert split_ticket(10000, "EUR", plan, "platform").processing_fee == 140 + 25
    assert split_ticket(10000, "EUR", plan, "organizer").processing_fee == 0


def test_plans_price_in_several_currencies() -> None:
    assert FIVE_PERCENT_PLUS_ONE.billing_currency("CHF") == "CHF"
    assert FIVE_PERCENT_PLUS_ONE.billing_currency("SEK") == "EUR"
    assert FIVE_PERCENT_PLUS_ONE.billing_currency(None) == "EUR"
    assert plan_charge(FIVE_PERCENT_PLUS_ONE, "setup_fee", "SEK") == 9900
    assert plan_charge(FIVE_PERCENT_PLUS_ONE, "monthly_fee", "CHF") == 0
    with pytest.raises(NoPriceInCurrency):
        split_ticket(10000, "USD", FIVE_PERCENT_PLUS_ONE, "platform")


def test_plan_rules() -> None:
    assert check_plan(FIVE_PERCENT_PLUS_ONE) is FIVE_PERCENT_PLUS_ONE
    bad = FeePlan(
        "p", "EUR", {"USD": PlanPrices(ticket_fee_fixed=-1), "XXX": PlanPrices()}, ticket_fee_bps=10001
    )
    with pytest.raises(InvalidPlan) as caught:
        check_plan(bad)
    assert len(caught.value.problems) == 4
    with pytest.raises(msgspec.ValidationError):  # decoding checks ranges too
        msgspec.json.decode(
            b'{"plan_id":"p","default_currency":"EUR","prices":{},"ticket_fee_bps":-1}', type=FeePlan
        )


def test_refund_reversal_full_and_keep_fixed() -> None:
    split = split_ticket(10000, "EUR", FIVE_PERCENT_PLUS_ONE, "platform")
    full = reverse(split, 10000)
    assert (full.platform, full.organizer) == (600, 9400)
    kept = reverse(msgspec.structs.replace(split, refund_policy="keep_fixed"), 10000)
    assert (kept.platform, kept.organizer) == (500, 9500)  # the platform keeps its 1.00


def test_partial_refunds_reverse_in_proportion_and_add_up() -> None:
    split = split_ticket(10000, "EUR", FIVE_PERCENT_PLUS_ONE, "platform")
    first = reverse(split, 2500)
    second = reverse(split, 2500, refunded_before=2500)
    rest = cancel(split, refunded_before=5000)
    assert [r.platform for r in (first, second, rest)] == [150, 150, 300]
    assert first.platform + second.platform + rest.platform == split.platform
    with pytest.raises(RefundExceedsPaid):
        reverse(split, 1, refunded_before=10000)
    with pytest.raises(RefundExceedsPaid):
        reverse(split, 10001)
    with pytest.raises(InvalidAmount):
        reverse(split, -1)
    with pytest.raises(InvalidAmount):
        split_ticket(-1, "EUR", FIVE_PERCENT_PLUS_ONE, "platform")


def test_who_owes_whom() -> None:
    split = split_ticket(10000, "EUR", FIVE_PERCENT_PLUS_ONE, "platform")
    assert settlement(split, "platform") == 9400  # the platform holds the money, owes the share
    assert settlement(split, "organizer") == -600  # the organizer holds it, owes the fees


@given(prices, st.sampled_from(CURRENCIES), plans(), collectors)
def test_split_sums_to_the_price_and_follows_the_rule(
    price: int, currency: str, plan: FeePlan, collector: Collector
) -> None:
    split = split_ticket(price, currency, plan, collector)
    assert split.platform + split.organizer == price
    assert 0 <= split.platform <= price
    assert min(split.parts()) >= 0
    fixed = plan.prices[currency]
    platform = collector == "platform"
    wanted = [
        round(Fraction(price * plan.ticket_fee_bps, 10_000)),
        fixed.ticket_fee_fixed,
        round(Fraction(price * plan.processing_fee_bps, 10_000)) if platform else 0,
        fixed.processing_fee_fixed if platform else 0,
    ]
    if sum(wanted) <= price:
        assert list(split.parts()) == wanted
    else:
        assert split.organizer == 0
        assert all(got <= want for got, want in zip(split.parts(), wanted, strict=True))


@given(st.data(), prices, st.sampled_from(CURRENCIES), plans(), collectors)
def test_reversals_never_exceed_the_original(
    data: st.DataObject, price: int, currency: str, plan: FeePlan, collector: Collector
) -> None:
    split = split_ticket(price, currency, plan, collector)
    refunded = 0
    total = [0, 0, 0, 0]
    for amount in data.draw(refund_amounts(price)):
        reversal = reverse(split, amount, refunded_before=refunded)
        refunded += amount
        assert reversal.price == amount
        assert min(reversal.parts()) >= 0  # each reversal is a valid split of its refund
        assert 0 <= reversal.platform <= amount
        total = [t + p for t, p in zip(total, reversal.parts(), strict=True)]
        assert all(t <= r for t, r in zip(total, reversible(split), strict=True))
        # cumulative, so the path does not matter: one refund of the same total reverses the same
        assert sum(total) == reverse(split, refunded).platform
    if refunded == price:
        assert total == list(reversible(split))


def test_components_name_the_split_fields() -> None:
    assert set(COMPONENTS) <= set(Split.__struct_fields__)


# ---- a plan changed mid-month: the monthly fee difference for the days left ------------------

fees = st.integers(0, 10**9)


@st.composite
def month_parts(draw: st.DrawFn) -> MonthPart:
    days = draw(st.integers(28, 31))
    return MonthPart(draw(st.integers(0, days)), days)


def test_proration_worked_examples() -> None:
    # 29.00 -> 99.00 on 16 June (15 of 30 days left, the 16th included): 35.00 more
    assert month_part_left(1_781_568_000_000) == MonthPart(15, 30)  # 2026-06-16T00:00Z
    assert prorated_change(2900, 9900, MonthPart(15, 30)) == 3500
    # back down on 31 January (1 of 31 days): a credit of 70.00 / 31 = 2.258... -> 2.26
    assert prorated_change(9900, 2900, MonthPart(1, 31)) == -226
    # a tie rounds to even: 1 / 2 -> 0, 3 / 2 -> 2
    assert prorated_change(0, 1, MonthPart(14, 28)) == 0
    assert prorated_change(0, 3, MonthPart(14, 28)) == 2
    # the first of the month: the whole difference; a leap February has 29 days
    assert month_part_left(1_769_904_000_000) == MonthPart(28, 28)  # 2026-02-01
    assert month_part_left(1_709_164_800_000) == MonthPart(1, 29)  # 2024-02-29
    assert month_part_left(1_767_225_599_999) == MonthPart(1, 31)  # 2025-12-31T23:59:59.999Z


@given(fees, fees, month_parts())
def test_proration_is_the_difference_for_the_days_left(old: int, new: int, part: MonthPart) -> None:
    got = prorated_change(old, new, part)
    exact = Fraction((new - old) * part.days_left, part.days_in_month)
    assert abs(got - exact) <= Fraction(1, 2)  # rounded to the nearest minor unit
    assert prorated_change(new, old, part) == -got  # half-even is symmetric: up and back is zero
    assert abs(got) <= abs(new - old)
    if part.days_left == part.days_in_month:
        assert got == new - old
    if part.days_left == 0 or old == new:
        assert got == 0


@given(fees, fees, st.data())
def test_proration_grows_with_the_days_left(old: int, new: int, data: st.DataObject) -> None:
    days = data.draw(st.integers(28, 31))
    earlier, later = sorted(data.draw(st.lists(st.integers(0, days), min_size=2, max_size=2)))
    a, b = (
        prorated_change(old, new, MonthPart(earlier, days)),
        prorated_change(old, new, MonthPart(later, days)),
    )
    assert abs(a) <= abs(b)


@given(st.integers(0, 4_102_444_800_000))  # to 2100
def test_month_part_left_counts_the_day_itself(at_ms: int) -> None:
    part = month_part_left(at_ms)
    assert 28 <= part.days_in_month <= 31
    assert 1 <= part.days_left <= part.days_in_month


def test_proration_refuses_what_is_not_a_part_of_a_month() -> None:
    for part in (MonthPart(32, 31), MonthPart(-1, 30), MonthPart(1, 0)):
        with pytest.raises(InvalidAmount):
            prorated_change(100, 200, part)
    with pytest.raises(InvalidAmount):
        prorated_change(1.5, 2, MonthPart(1, 30))  # type: ignore[arg-type]
