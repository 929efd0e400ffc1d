"""docs/money.md cannot rot: its worked examples are recomputed from the rules."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from rules.fees import FeePlan, PlanPrices, reverse, split_ticket
from rules.money import format_minor, to_minor

DOC = (Path(__file__).parents[2] / "docs" / "money.md").read_text()


def _table(name: str) -> list[list[str]]:
    match = re.search(rf"<!-- table: {name} -->\n\|.*\|\n\|[-|]+\|\n((?:\|.*\|\n)+)", DOC)
    assert match, f"table {name} is missing"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in match.group(1).splitlines()]


def _rate(text: str) -> tuple[int, int]:
    """``"5 % + 1.00"`` -> (500 bps, 100 minor units); ``"none"`` -> (0, 0)."""
    if text == "none":
        return 0, 0
    percent, fixed = re.fullmatch(r"([\d.]+) % \+ ([\d.]+)", text).groups()  # type: ignore[union-attr]
    return int(Decimal(percent) * 100), to_minor(fixed, "EUR")


def test_split_examples() -> None:
    rows = _table("splits")
    assert ["100.00", "5 % + 1.00", "none", "platform", "6.00", "94.00"] in rows  # the example
    for price, ticket, processing, collector, platform, organizer in rows:
        (t_bps, t_fixed), (p_bps, p_fixed) = _rate(ticket), _rate(processing)
        prices = {"EUR": PlanPrices(ticket_fee_fixed=t_fixed, processing_fee_fixed=p_fixed)}
        plan = FeePlan("doc", "EUR", prices, ticket_fee_bps=t_bps, processing_fee_bps=p_bps)
        split = split_ticket(to_minor(price, "EUR"), "EUR", plan, collector)  # type: ignore[arg-type]
        assert (format_minor(split.platform, "EUR"), format_minor(split.organizer, "EUR")) == (
            platform,
            organizer,
        )


def test_refund_examples() -> None:
    for policy, refunds, given_back in _table("refunds"):
        assert policy in ("full", "keep_fixed")
        prices = {"EUR": PlanPrices(ticket_fee_fixed=100)}
        plan = FeePlan("doc", "EUR", prices, ticket_fee_bps=500, refund_policy=policy)  # type: ignore[arg-type]
        split = split_ticket(10000, "EUR", plan, "platform")
        refunded, got = 0, []
        for amount in (to_minor(r, "EUR") for r in refunds.split(", ")):
            got.append(format_minor(reverse(split, amount, refunded_before=refunded).platform, "EUR"))
            refunded += amount
        assert ", ".join(got) == given_back
