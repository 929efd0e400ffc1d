from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.errors import StatementInputError
from rules.fees import (
    Collector,
    FeePlan,
    MonthPart,
    PlanPrices,
    Split,
    prorated_change,
    reverse,
    settlement,
    split_ticket,
)
from rules.statements import (
    CSV_HEADER,
    Adjustment,
    OrderRecord,
    Period,
    PlanCharge,
    RefundRecord,
    ResaleRecord,
    Statement,
    TicketSale,
    build_rollup,
    build_statement,
    csv_text,
    rollup_csv,
    statement_csv,
)
from tests.rules.strategies import CURRENCIES, plans, prices, refund_amounts

PERIOD = Period(1_767_225_600_000, 1_769_904_000_000)  # January 2026, UTC
DAY = 86_400_000
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PLAN = FeePlan(
    "standard",
    "EUR",
    {"EUR": PlanPrices(ticket_fee_fixed=100, monthly_fee=2900)},
    ticket_fee_bps=500,
    processing_fee_bps=140,
)


def _order(
    order_id: str, org: str, method: str, collector: Collector, price_list: list[int], day: int = 1
) -> OrderRecord:
    tickets = [
        TicketSale(f"{order_id}-t{n}", split_ticket(price, "EUR", PLAN, collector))
        for n, price in enumerate(price_list)
    ]
    return OrderRecord(order_id, org, PERIOD.start_ms + day * DAY, method, collector, "EUR", tickets)


def test_worked_statement() -> None:
    card = _order("o1", "org", "card", "platform", [10000, 10000])
    cash = _order("o2", "org", "cash", "organizer", [5000], day=2)
    refund = RefundRecord(
        "r1",
        "org",
        "o1",
        "o1-t1",
        PERIOD.start_ms + 3 * DAY,
        "card",
        "platform",
        reverse(card.tickets[1].split, 10000),
    )
    statement = build_statement(
        "org",
        PERIOD,
        orders=[card, cash],
        refunds=[refund],
        adjustments=[Adjustment("a1", "org", PERIOD.start_ms + 4 * DAY, "EUR", -500, "=chargeback fee")],
        charges=[PlanCharge("c1", "org", PERIOD.start_ms, "EUR", "monthly_fee", 2900)],
    )
    eur = statement.currencies[0]
    # card tickets: 5 % + 1.00 = 6.00 and 1.4 % processing = 1.40 each; cash: 2.50 + 1.00, no processing
    assert [(line.section, line.label, line.amount) for line in eur.lines] == [
        ("sales", "card", 20000),
        ("sales", "cash", 5000),
        ("refunds", "card", -10000),
        ("fees", "ticket_fee", -(600 + 600 + 350)),
        ("fees", "processing_fee", -(140 + 140)),
        ("fees", "monthly_fee", -2900),
        ("fee_reversals", "ticket_fee", 600),
        ("fee_reversals", "processing_fee", 140),
        ("adjustments", "a1: =chargeback fee", -500),
        ("held_by_organizer", "organizer's payment account", -5000),
    ]
    # the platform holds 100.00 net of the refund; the organizer's share of it is 92.60,
    # less the cash order's fees 3.50, the monthly fee 29.00 and the adjustment 5.00
    assert eur.net_due == 9260 - 350 - 2900 - 500 == 5510
    assert eur.direction == "platform_owes_organizer"
    rows = list(csv.reader(io.StringIO("".join(statement_csv(statement)))))
    assert tuple(rows[0]) == CSV_HEADER
    assert rows[9][5] == "a1: =chargeback fee"  # a cell is evaluated only when it starts with =
    assert rows[-1][4:] == ["net_due", "platform_owes_organizer", "55.10", "5510"]


def test_records_of_another_organizer_or_period_are_refused() -> None:
    with pytest.raises(StatementInputError):
        build_statement("org", PERIOD, orders=[_order("o1", "other", "card", "platform", [100])])
    with pytest.raises(StatementInputError):
        build_statement("org", PERIOD, orders=[_order("o1", "org", "card", "platform", [100], day=31)])
    mixed = _order("o1", "org", "card", "platform", [100])
    mixed = OrderRecord(**{**{f: getattr(mixed, f) for f in mixed.__struct_fields__}, "currency": "CHF"})
    with pytest.raises(StatementInputError):
        build_statement("org", PERIOD, orders=[mixed])


@pytest.mark.parametrize("cell", ["=SUM(A1)", "+1", "-1", "@x", "\tx", "\rx"])
def test_formula_injection_guard(cell: str) -> None:
    assert csv_text(cell) == "'" + cell
    assert csv_text("Rückerstattung") == "Rückerstattung"


# ---- properties: random plans, orders, refunds, cancellations, adjustments, charges --------------

ORGANIZERS = ("org-a", "org-b", "=org-c")
METHODS = ("card", "cash", "invoice", "+wallet")
memos = st.sampled_from(["", "goodwill", '=HYPERLINK("x")', "Rückerstattung, Teil 1", "-5", "@"])


class World:
    """The period's records and, beside them, the oracle's own sums."""

    def __init__(self) -> None:
        self.orders: list[OrderRecord] = []
        self.refunds: list[RefundRecord] = []
        self.adjustments: list[Adjustment] = []
        self.charges: list[PlanCharge] = []
        self.credits: defaultdict[tuple[str, str], int] = defaultdict(int)  # plan changes' credits
        self.expected_net: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.splits: defaultdict[tuple[str, str], list[Split]] = defaultdict(list)
        self.reversals: defaultdict[tuple[str, str], list[Split]] = defaultdict(list)

    def of(self, organizer: str) -> dict[str, list]:  # type: ignore[type-arg]
        return {
            "orders": [o for o in self.orders if o.organizer_id == organizer],
            "refunds": [r for r in self.refunds if r.organizer_id == organizer],
            "adjustments": [a for a in self.adjustments if a.organizer_id == organizer],
            "charges": [c for c in self.charges if c.organizer_id == organizer],
        }


times = st.integers(PERIOD.start_ms, PERIOD.end_ms - 1)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    world = World()
    organizer_plans = {org: draw(plans()) for org in ORGANIZERS}
    for n in range(draw(st.integers(0, 8))):
        org = draw(st.sampled_from(ORGANIZERS))
        currency = draw(st.sampled_from(CURRENCIES))
        collector: Collector = draw(st.sampled_from(["platform", "organizer"]))
        method = draw(st.sampled_from(METHODS))
        created = draw(times)
        tickets = []
        for k, price in enumerate(draw(st.lists(prices, min_size=1, max_size=4))):
            split = split_ticket(price, currency, organizer_plans[org], collector)
            tickets.append(TicketSale(f"t{n}-{k}", split))
            world.expected_net[org, currency] += settlement(split, collector)
            world.splits[org, currency].append(split)
            refunded = 0
            for r, amount in enumerate(draw(refund_amounts(price))):
                reversal = reverse(split, amount, refunded_before=refunded)
                reason: Literal["refund", "cancellation"] = (
                    "cancellation" if refunded + amount == price and r else "refund"
                )
                refunded += amount
                world.refunds.append(
                    RefundRecord(
                        f"r{n}-{k}-{r}", org, f"o{n}", f"t{n}-{k}",
                        draw(st.integers(created, PERIOD.end_ms - 1)), method, collector, reversal, reason,
                    )
                )  # fmt: skip
                world.expected_net[org, currency] -= settlement(reversal, collector)
                world.reversals[org, currency].append(reversal)
        world.orders.append(OrderRecord(f"o{n}", org, created, method, collector, currency, tickets))
    for n in range(draw(st.integers(0, 3))):
        org, currency = draw(st.sampled_from(ORGANIZERS)), draw(st.sampled_from(CURRENCIES))
        amount = draw(st.integers(-100_000, 100_000))
        world.adjustments.append(Adjustment(f"a{n}", org, draw(times), currency, amount, draw(memos)))
        world.expected_net[org, currency] += amount
    for n in range(draw(st.integers(0, 3))):
        org = draw(st.sampled_from(ORGANIZERS))
        plan = organizer_plans[org]
        currency = plan.billing_currency(draw(st.sampled_from([*CURRENCIES, "SEK"])))
        kind: Literal["setup_fee", "monthly_fee"] = draw(st.sampled_from(["setup_fee", "monthly_fee"]))
        amount = getattr(plan.prices_in(currency), kind)
        world.charges.append(PlanCharge(f"c{n}", org, draw(times), currency, kind, amount))
        world.expected_net[org, currency] -= amount
    for n in range(draw(st.integers(0, 2))):  # plan changes: the fee difference, either way
        org, currency = draw(st.sampled_from(ORGANIZERS)), draw(st.sampled_from(CURRENCIES))
        days = draw(st.integers(28, 31))
        part = MonthPart(draw(st.integers(0, days)), days)
        amount = prorated_change(draw(st.integers(0, 100_000)), draw(st.integers(0, 100_000)), part)
        world.charges.append(PlanCharge(f"pc{n}", org, draw(times), currency, "monthly_fee", amount))
        world.expected_net[org, currency] -= amount
        world.credits[org, currency] += max(0, -amount)
    return world


def _statements(world: World) -> list[Statement]:
    return [build_statement(org, PERIOD, **world.of(org)) for org in ORGANIZERS]


@SETTINGS
@given(worlds())
def test_statements_reconcile_to_the_records_to_the_minor_unit(world: World) -> None:
    for statement in _statements(world):
        org = statement.organizer_id
        for part in statement.currencies:
            key = (org, part.currency)
            totals = part.totals
            assert sum(line.amount for line in part.lines) == part.net_due == world.expected_net[key]
            splits, reversals = world.splits[key], world.reversals[key]
            assert totals.gross == sum(s.price for s in splits)
            assert totals.tickets_sold == len(splits)
            assert totals.fees_by_kind["ticket_fee"] == sum(s.ticket_fee for s in splits)
            assert totals.fees_by_kind["processing_fee"] == sum(s.processing_fee for s in splits)
            assert totals.refunds == sum(r.price for r in reversals)
            assert totals.fee_reversals == sum(r.platform for r in reversals) + world.credits[key]
            assert totals.held_by_platform + totals.held_by_organizer == totals.gross - totals.refunds
            assert (part.net_due > 0) == (part.direction == "platform_owes_organizer")
            assert (part.net_due < 0) == (part.direction == "organizer_owes_platform")
        seen = {(org, p.currency) for p in statement.currencies}
        assert all(
            world.expected_net[key] == 0 for key in world.expected_net if key[0] == org and key not in seen
        )


@SETTINGS
@given(worlds())
def test_rollup_equals_the_sum_of_the_organizer_statements(world: World) -> None:
    statements = _statements(world)
    rollup = build_rollup(PERIOD, statements)
    parts = [part for statement in statements for part in statement.currencies]
    for currency_part in rollup.currencies:
        mine = [p for p in parts if p.currency == currency_part.currency]
        totals = currency_part.totals
        assert totals.gross == sum(p.totals.gross for p in mine)
        assert totals.refunds == sum(p.totals.refunds for p in mine)
        assert totals.fees_by_kind == {
            kind: sum(p.totals.fees_by_kind[kind] for p in mine) for kind in totals.fees_by_kind
        }
        assert totals.fee_reversals == sum(p.totals.fee_reversals for p in mine)
        assert totals.adjustments == sum(p.totals.adjustments for p in mine)
        assert (
            currency_part.net_due
            == sum(p.net_due for p in mine)
            == sum(line.amount for line in currency_part.lines)
        )
        assert currency_part.owed_to_organizers >= 0
        assert currency_part.owed_by_organizers >= 0
    assert len(rollup.organizers) == len(parts)
    assert {p.currency for p in rollup.currencies} == {p.currency for p in parts}


def _csv_rows(lines: Iterator[str]) -> list[list[str]]:
    text = "".join(lines)
    text.encode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_HEADER
    for row in rows[1:]:
        assert len(row) == len(CSV_HEADER)
        organizer, label = row[0], row[5]
        assert not organizer.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert not label.startswith(("=", "+", "-", "@", "\t", "\r"))
    return rows[1:]


@SETTINGS
@given(worlds())
def test_csv_reconciles_and_is_guarded(world: World) -> None:
    statements = _statements(world)
    for statement in statements:
        lines_sum: defaultdict[str, int] = defaultdict(int)
        for row in _csv_rows(statement_csv(statement)):
            currency, section, amount_minor = row[3], row[4], int(row[7])
            if section == "net_due":
                assert lines_sum[currency] == amount_minor
            else:
                lines_sum[currency] += amount_minor
    everyone: defaultdict[str, int] = defaultdict(int)
    owed: defaultdict[str, int] = defaultdict(int)
    organizers: defaultdict[str, int] = defaultdict(int)
    for row in _csv_rows(rollup_csv(build_rollup(PERIOD, statements))):
        organizer, currency, section, amount_minor = row[0], row[3], row[4], int(row[7])
        if section != "net_due":
            everyone[currency] += amount_minor
        else:
            (owed if organizer == "*" else organizers)[currency] += amount_minor
    nonzero = [
        {currency: amount for currency, amount in d.items() if amount} for d in (everyone, owed, organizers)
    ]
    assert nonzero[0] == nonzero[1] == nonzero[2]


@SETTINGS
@given(
    plan=plans(),
    resold=st.lists(st.tuples(prices, st.sampled_from(CURRENCIES)), max_size=6),
)
def test_resales_show_payouts_and_fees_and_net_to_zero(plan: FeePlan, resold: list[tuple[int, str]]) -> None:
    records = []
    for n, (price, currency) in enumerate(resold):
        split = split_ticket(price, currency, plan, "platform")
        records.append(
            ResaleRecord(
                f"rs{n}", "org", f"o{n}", f"t{n}", PERIOD.start_ms + n, "ada", split, price - split.platform
            )
        )
    card = _order("o1", "org", "card", "platform", [10000])  # a sale of PLAN's, in EUR
    alone = build_statement("org", PERIOD, orders=[card])
    statement = build_statement("org", PERIOD, orders=[card], resales=records)
    for part in statement.currencies:
        mine = [r for r in records if r.split.currency == part.currency]
        totals = part.totals
        assert totals.resale_count == len(mine)
        assert totals.resale_gross == sum(r.split.price for r in mine)
        assert totals.seller_payouts == sum(r.seller_payout for r in mine)
        assert totals.resale_fees == sum(r.split.platform for r in mine)
        assert sum(line.amount for line in part.lines if line.section == "resales") == 0
        without = alone.for_currency(part.currency)
        assert part.net_due == (without.net_due if without else 0)  # never changes what is owed
    rollup = build_rollup(PERIOD, [statement])
    assert sum(p.totals.resale_count for p in rollup.currencies) == len(records)


def test_a_resale_paying_the_seller_more_than_price_less_fees_is_refused() -> None:
    split = split_ticket(5000, "EUR", PLAN, "platform")
    bad = ResaleRecord("rs1", "org", "o1", "t1", PERIOD.start_ms, "ada", split, 5000)
    with pytest.raises(StatementInputError, match="resale rs1 pays the seller 5000"):
        build_statement("org", PERIOD, resales=[bad])
