"""Hypothesis strategies for the rules' inputs: plans, prices, refund sequences."""

from __future__ import annotations

from hypothesis import strategies as st

from rules.fees import BPS_DENOMINATOR, FeePlan, PlanPrices

CURRENCIES = ("EUR", "CHF", "JPY", "BHD")

fixed_amounts = st.one_of(st.just(0), st.integers(0, 500), st.integers(0, 100_000))
plan_prices = st.builds(
    PlanPrices,
    setup_fee=fixed_amounts,
    monthly_fee=fixed_amounts,
    ticket_fee_fixed=fixed_amounts,
    processing_fee_fixed=fixed_amounts,
)
bps = st.one_of(st.sampled_from([0, 1, 250, 500, 999, BPS_DENOMINATOR]), st.integers(0, BPS_DENOMINATOR))


@st.composite
def plans(draw: st.DrawFn) -> FeePlan:
    """Plans that price every currency of :data:`CURRENCIES` (a ticket's currency must be priced)."""
    return FeePlan(
        plan_id=draw(st.text("abcdef", min_size=1, max_size=6)),
        default_currency=draw(st.sampled_from(CURRENCIES)),
        prices={code: draw(plan_prices) for code in CURRENCIES},
        ticket_fee_bps=draw(bps),
        processing_fee_bps=draw(bps),
        refund_policy=draw(st.sampled_from(["full", "keep_fixed"])),
    )


prices = st.one_of(st.sampled_from([0, 1, 2, 3, 99, 100, 10_000]), st.integers(0, 1_000_000))


@st.composite
def refund_amounts(draw: st.DrawFn, price: int) -> list[int]:
    """A sequence of refunds of one ticket: partial ones, then maybe the rest (a cancellation)."""
    amounts = []
    left = price
    for _ in range(draw(st.integers(0, 4))):
        amount = draw(st.integers(0, left))
        amounts.append(amount)
        left -= amount
    if left and draw(st.booleans()):
        amounts.append(left)
    return amounts
