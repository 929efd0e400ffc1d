"""An organizer's statement for a billing period, the platform roll-up, CSV export.

Inputs are the records storage keeps (small Structs below): orders with each
ticket's :class:`~rules.fees.Split` as recorded at sale, refunds and
cancellations with the reversal recorded at refund time, adjustments, and plan
charges (setup and monthly fees). A record belongs to the period in which it
happened: a refund this month of an order sold last month is on this month's
statement. Nothing is recomputed from plans, so a statement never changes when
a plan does.

A statement has one part per currency (amounts are never converted). Its
lines are signed from the organizer's side and add up, to the minor unit, to
the net due::

    + sales               gross per payment method
    - refunds             refunded per payment method
    - fees                per kind: ticket, processing, setup, monthly
    + fee_reversals       per kind, given back on refunds
    ± adjustments         one line each, with its memo
    - held_by_organizer   what the organizer's own payment account collected, less its refunds
    ± resales             resale sales, less the sellers' payouts and the platform's fees on them
    = net due             > 0: the platform owes the organizer; < 0: the organizer owes the platform

Resales (a ticket holder sells a ticket on the platform's marketplace) pass through
the platform: the resale buyer pays the platform, which pays the seller the price less
its fees. The ``resales`` lines show the three and add up to zero, so a resale never
changes what the organizer is owed; its fees are the platform's (``resale_fees``).

which is also the sum of :func:`rules.fees.settlement` over the period's sales,
less that of its reversals, less plan charges, plus adjustments
(``tests/rules/test_statements.py`` checks both with random records).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Final, Literal, TypeVar

import msgspec

from rules.errors import StatementInputError
from rules.fees import FEE_KINDS, Collector, FeeKind, Split, TicketFeeKind
from rules.money import CurrencyCode, exponent, format_minor

# Fees given back: a refund's ticket fees, a plan change's credit of the monthly fee.
ReversalKind = Literal["ticket_fee", "processing_fee", "monthly_fee"]

Direction = Literal["platform_owes_organizer", "organizer_owes_platform", "settled"]
Section = Literal[
    "sales", "refunds", "fees", "fee_reversals", "adjustments", "held_by_organizer", "resales"
]  # fmt: skip
PaymentMethod = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Period(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A billing period ``[start_ms, end_ms)`` in Unix milliseconds."""

    start_ms: int
    end_ms: int

    def __contains__(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms < self.end_ms


class TicketSale(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ticket_id: str
    split: Split


class OrderRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An order as sold: who collected the money and each ticket's split."""

    order_id: str
    organizer_id: str
    created_ms: int
    payment_method: PaymentMethod  # card, cash, invoice, ... as the storefront or box office named it
    collector: Collector
    currency: CurrencyCode
    tickets: list[TicketSale]


class RefundRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A refund or cancellation of (part of) one ticket, with its reversal from :func:`rules.fees.reverse`.

    ``reversal.price`` is the amount paid back; payment method and collector are the order's.
    """

    refund_id: str
    organizer_id: str
    order_id: str
    ticket_id: str
    created_ms: int
    payment_method: PaymentMethod
    collector: Collector
    reversal: Split
    reason: Literal["refund", "cancellation"] = "refund"


class ResaleRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A ticket resold on the platform's marketplace: ``split.price`` is what the resale
    buyer paid (to the platform), ``split``'s fee parts the platform's fees on it, and
    ``seller_payout`` the rest, paid to the seller (it must be price less fees)."""

    resale_id: str
    organizer_id: str
    order_id: str
    ticket_id: str
    created_ms: int
    seller_id: str
    split: Split
    seller_payout: int


class Adjustment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A manual correction by the platform; ``amount > 0`` credits the organizer."""

    adjustment_id: str
    organizer_id: str
    created_ms: int
    currency: CurrencyCode
    amount: int
    memo: str = ""


class PlanCharge(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A setup or monthly fee billed to the organizer (see :func:`rules.fees.plan_charge`),
    or a plan change's prorated monthly fee difference (:func:`rules.fees.prorated_change`):
    kind ``monthly_fee``, positive when the organizer owes more, negative when it is
    credited (a ``fee_reversals`` line of the statement)."""

    charge_id: str
    organizer_id: str
    created_ms: int
    currency: CurrencyCode
    kind: Literal["setup_fee", "monthly_fee"]
    amount: int


class Totals(msgspec.Struct, frozen=True):
    """The sums of one currency; all amounts are non-negative except ``adjustments``."""

    currency: str
    gross_by_method: dict[str, int]
    refunds_by_method: dict[str, int]
    fees_by_kind: dict[FeeKind, int]
    fee_reversals_by_kind: dict[ReversalKind, int]
    adjustments: int
    held_by_platform: int  # collected by the platform's account, less refunds paid from it
    held_by_organizer: int  # collected by the organizer's own account, less refunds paid from it
    tickets_sold: int
    refund_count: int
    # resales (they net to zero for the organizer): paid by resale buyers, paid out to sellers,
    # kept by the platform as fees, per kind
    resale_gross: int = 0
    seller_payouts: int = 0
    resale_fees_by_kind: dict[TicketFeeKind, int] = msgspec.field(
        default_factory=lambda: {"ticket_fee": 0, "processing_fee": 0}
    )
    resale_count: int = 0

    @property
    def resale_fees(self) -> int:
        return sum(self.resale_fees_by_kind.values())

    @property
    def gross(self) -> int:
        return sum(self.gross_by_method.values())

    @property
    def refunds(self) -> int:
        return sum(self.refunds_by_method.values())

    @property
    def fees(self) -> int:
        return sum(self.fees_by_kind.values())

    @property
    def fee_reversals(self) -> int:
        return sum(self.fee_reversals_by_kind.values())

    @property
    def platform_revenue(self) -> int:
        """Fees charged less fees given back."""
        return self.fees - self.fee_reversals


class StatementLine(msgspec.Struct, frozen=True):
    section: Section
    label: str
    amount: int  # signed, organizer's side


class CurrencyStatement(msgspec.Struct, frozen=True):
    totals: Totals
    lines: list[StatementLine]
    net_due: int  # the sum of the lines
    direction: Direction

    @property
    def currency(self) -> str:
        return self.totals.currency


class Statement(msgspec.Struct, frozen=True):
    organizer_id: str
    period: Period
    currencies: list[CurrencyStatement]  # sorted by currency code

    def for_currency(self, currency: str) -> CurrencyStatement | None:
        return next((part for part in self.currencies if part.currency == currency), None)


class OrganizerNet(msgspec.Struct, frozen=True):
    organizer_id: str
    currency: str
    net_due: int
    direction: Direction


class RollupCurrency(msgspec.Struct, frozen=True):
    totals: Totals
    lines: list[StatementLine]  # per section and label, summed over organizers
    owed_to_organizers: int  # sum of the positive net dues
    owed_by_organizers: int  # sum of the negative net dues, as a positive amount
    net_due: int  # owed_to_organizers - owed_by_organizers

    @property
    def currency(self) -> str:
        return self.totals.currency


class Rollup(msgspec.Struct, frozen=True):
    period: Period
    currencies: list[RollupCurrency]
    organizers: list[OrganizerNet]  # sorted by organizer, then currency


def direction_of(net_due: int) -> Direction:
    if net_due > 0:
        return "platform_owes_organizer"
    return "organizer_owes_platform" if net_due < 0 else "settled"


class _Sums:
    """Mutable accumulator of one currency while a statement is built."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.gross: defaultdict[str, int] = defaultdict(int)
        self.refunds: defaultdict[str, int] = defaultdict(int)
        self.fees: dict[FeeKind, int] = dict.fromkeys(FEE_KINDS, 0)
        self.reversals: dict[ReversalKind, int] = {"ticket_fee": 0, "processing_fee": 0}
        self.held: dict[Collector, int] = {"platform": 0, "organizer": 0}
        self.adjustments: list[Adjustment] = []
        self.tickets = 0
        self.refund_count = 0
        self.resale_gross = 0
        self.seller_payouts = 0
        self.resale_fees: dict[TicketFeeKind, int] = {"ticket_fee": 0, "processing_fee": 0}
        self.resale_count = 0

    def totals(self) -> Totals:
        return Totals(
            currency=self.currency,
            gross_by_method=dict(sorted(self.gross.items())),
            refunds_by_method=dict(sorted(self.refunds.items())),
            fees_by_kind=dict(self.fees),
            fee_reversals_by_kind=dict(self.reversals),
            adjustments=sum(a.amount for a in self.adjustments),
            held_by_platform=self.held["platform"],
            held_by_organizer=self.held["organizer"],
            tickets_sold=self.tickets,
            refund_count=self.refund_count,
            resale_gross=self.resale_gross,
            seller_payouts=self.seller_payouts,
            resale_fees_by_kind=dict(self.resale_fees),
            resale_count=self.resale_count,
        )


def _lines(totals: Totals, adjustments: Sequence[Adjustment] | None) -> list[StatementLine]:
    """The signed lines of ``totals``; adjustments one by one when given, else as one line."""
    lines = [StatementLine("sales", method, amount) for method, amount in totals.gross_by_method.items()]
    lines += [
        StatementLine("refunds", method, -amount) for method, amount in totals.refunds_by_method.items()
    ]
    lines += [StatementLine("fees", kind, -amount) for kind, amount in totals.fees_by_kind.items() if amount]
    lines += [
        StatementLine("fee_reversals", kind, amount)
        for kind, amount in totals.fee_reversals_by_kind.items()
        if amount
    ]
    if adjustments is None:
        if totals.adjustments:
            lines.append(StatementLine("adjustments", "adjustments", totals.adjustments))
    else:
        lines += [StatementLine("adjustments", _adjustment_label(a), a.amount) for a in adjustments]
    if totals.held_by_organizer:
        lines.append(
            StatementLine("held_by_organizer", "organizer's payment account", -totals.held_by_organizer)
        )
    if totals.resale_count:
        lines.append(StatementLine("resales", "resale sales", totals.resale_gross))
        lines.append(StatementLine("resales", "seller payouts", -totals.seller_payouts))
        lines += [
            StatementLine("resales", f"resale {kind}", -amount)
            for kind, amount in totals.resale_fees_by_kind.items()
            if amount
        ]
    return lines


def _adjustment_label(adjustment: Adjustment) -> str:
    return f"{adjustment.adjustment_id}: {adjustment.memo}" if adjustment.memo else adjustment.adjustment_id


class _Builder:
    def __init__(self, organizer_id: str, period: Period) -> None:
        self.organizer_id = organizer_id
        self.period = period
        self.sums: dict[str, _Sums] = {}

    def _for(self, what: str, organizer_id: str, at_ms: int, currency: str) -> _Sums:
        if organizer_id != self.organizer_id:
            raise StatementInputError(f"{what} belongs to organizer {organizer_id!r}")
        if at_ms not in self.period:
            raise StatementInputError(f"{what} at {at_ms} is outside the period")
        exponent(currency)
        return self.sums.setdefault(currency, _Sums(currency))

    def order(self, order: OrderRecord) -> None:
        sums = self._for(f"order {order.order_id}", order.organizer_id, order.created_ms, order.currency)
        for ticket in order.tickets:
            split = ticket.split
            if split.currency != order.currency:
                raise StatementInputError(
                    f"ticket {ticket.ticket_id} is in {split.currency}, not {order.currency}"
                )
            sums.gross[order.payment_method] += split.price
            sums.held[order.collector] += split.price
            sums.fees["ticket_fee"] += split.ticket_fee
            sums.fees["processing_fee"] += split.processing_fee
            sums.tickets += 1

    def refund(self, refund: RefundRecord) -> None:
        reversal = refund.reversal
        sums = self._for(
            f"refund {refund.refund_id}", refund.organizer_id, refund.created_ms, reversal.currency
        )
        sums.refunds[refund.payment_method] += reversal.price
        sums.held[refund.collector] -= reversal.price
        sums.reversals["ticket_fee"] += reversal.ticket_fee
        sums.reversals["processing_fee"] += reversal.processing_fee
        sums.refund_count += 1

    def resale(self, resale: ResaleRecord) -> None:
        split = resale.split
        what = f"resale {resale.resale_id}"
        sums = self._for(what, resale.organizer_id, resale.created_ms, split.currency)
        if resale.seller_payout != split.price - split.platform:
            raise StatementInputError(f"{what} pays the seller {resale.seller_payout}, not price less fees")
        sums.resale_gross += split.price
        sums.seller_payouts += resale.seller_payout
        sums.resale_fees["ticket_fee"] += split.ticket_fee
        sums.resale_fees["processing_fee"] += split.processing_fee
        sums.resale_count += 1

    def adjustment(self, adjustment: Adjustment) -> None:
        what = f"adjustment {adjustment.adjustment_id}"
        self._for(
            what, adjustment.organizer_id, adjustment.created_ms, adjustment.currency
        ).adjustments.append(adjustment)

    def charge(self, charge: PlanCharge) -> None:
        what = f"charge {charge.charge_id}"
        if charge.amount < 0 and charge.kind != "monthly_fee":
            raise StatementInputError(f"{what}: only a plan change's monthly fee can be a credit")
        sums = self._for(what, charge.organizer_id, charge.created_ms, charge.currency)
        if charge.amount >= 0:
            sums.fees[charge.kind] += charge.amount
        else:  # a plan change's credit: monthly fee given back
            sums.reversals["monthly_fee"] = sums.reversals.get("monthly_fee", 0) - charge.amount

    def statement(self) -> Statement:
        parts = []
        for currency in sorted(self.sums):
            sums = self.sums[currency]
            totals = sums.totals()
            adjustments = sorted(sums.adjustments, key=lambda a: (a.created_ms, a.adjustment_id))
            lines = _lines(totals, adjustments)
            net_due = sum(line.amount for line in lines)
            parts.append(CurrencyStatement(totals, lines, net_due, direction_of(net_due)))
        return Statement(self.organizer_id, self.period, parts)


def build_statement(
    organizer_id: str,
    period: Period,
    *,
    orders: Iterable[OrderRecord] = (),
    refunds: Iterable[RefundRecord] = (),
    adjustments: Iterable[Adjustment] = (),
    charges: Iterable[PlanCharge] = (),
    resales: Iterable[ResaleRecord] = (),
) -> Statement:
    """The statement of ``organizer_id`` for ``period`` from that period's records.

    A record of another organizer or outside the period is :class:`StatementInputError`
    (storage selects the records; a stray one is a bug to surface, not to skip).
    """
    builder = _Builder(organizer_id, period)
    for order in orders:
        builder.order(order)
    for refund in refunds:
        builder.refund(refund)
    for adjustment in adjustments:
        builder.adjustment(adjustment)
    for charge in charges:
        builder.charge(charge)
    for resale in resales:
        builder.resale(resale)
    return builder.statement()


K = TypeVar("K", bound=str)


def _add(dicts: Iterable[dict[K, int]]) -> dict[K, int]:
    total: defaultdict[K, int] = defaultdict(int)
    for d in dicts:
        for key, value in d.items():
            total[key] += value
    return dict(sorted(total.items()))


def _merge(currency: str, parts: Sequence[Totals]) -> Totals:
    return Totals(
        currency=currency,
        gross_by_method=_add(p.gross_by_method for p in parts),
        refunds_by_method=_add(p.refunds_by_method for p in parts),
        fees_by_kind=_add([dict.fromkeys(FEE_KINDS, 0), *(p.fees_by_kind for p in parts)]),
        fee_reversals_by_kind=_add(
            [{"ticket_fee": 0, "processing_fee": 0}, *(p.fee_reversals_by_kind for p in parts)]
        ),
        adjustments=sum(p.adjustments for p in parts),
        held_by_platform=sum(p.held_by_platform for p in parts),
        held_by_organizer=sum(p.held_by_organizer for p in parts),
        tickets_sold=sum(p.tickets_sold for p in parts),
        refund_count=sum(p.refund_count for p in parts),
        resale_gross=sum(p.resale_gross for p in parts),
        seller_payouts=sum(p.seller_payouts for p in parts),
        resale_fees_by_kind=_add(
            [{"ticket_fee": 0, "processing_fee": 0}, *(p.resale_fees_by_kind for p in parts)]
        ),
        resale_count=sum(p.resale_count for p in parts),
    )


def build_rollup(period: Period, statements: Iterable[Statement]) -> Rollup:
    """The platform-wide roll-up of the organizers' statements of one period."""
    by_currency: defaultdict[str, list[CurrencyStatement]] = defaultdict(list)
    organizers = []
    for statement in statements:
        if statement.period != period:
            raise StatementInputError(f"statement of {statement.organizer_id!r} is for another period")
        for part in statement.currencies:
            by_currency[part.currency].append(part)
            organizers.append(
                OrganizerNet(statement.organizer_id, part.currency, part.net_due, part.direction)
            )
    currencies = []
    for currency in sorted(by_currency):
        parts = by_currency[currency]
        totals = _merge(currency, [p.totals for p in parts])
        owed_to = sum(p.net_due for p in parts if p.net_due > 0)
        owed_by = -sum(p.net_due for p in parts if p.net_due < 0)
        currencies.append(RollupCurrency(totals, _lines(totals, None), owed_to, owed_by, owed_to - owed_by))
    organizers.sort(key=lambda o: (o.organizer_id, o.currency))
    return Rollup(period, currencies, organizers)


# ---- CSV ---------------------------------------------------------------------------------------

CSV_HEADER: Final = (
    "organizer_id",
    "period_start",
    "period_end",
    "currency",
    "section",
    "label",
    "amount",
    "amount_minor",
)
_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
StatementRow = dict[str, str | int]


def csv_text(cell: str) -> str:
    """Guard a text cell against formula injection: one that a spreadsheet would
    evaluate (starting with ``= + - @``, tab or CR) is prefixed with ``'``.
    Only text cells are guarded; amounts are numbers the service wrote."""
    return "'" + cell if cell.startswith(_FORMULA_PREFIXES) else cell


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row(
    organizer_id: str, period: Period, currency: str, section: str, label: str, amount: int
) -> StatementRow:
    return {
        "organizer_id": organizer_id,
        "period_start": _iso(period.start_ms),
        "period_end": _iso(period.end_ms),
        "currency": currency,
        "section": section,
        "label": label,
        "amount": format_minor(amount, currency),
        "amount_minor": amount,
    }


def _csv_line(row: StatementRow) -> str:
    """One row as a CSV line: the text cells guarded (amounts are the service's own numbers)."""
    cells = [csv_text(str(row[c])) if c in ("organizer_id", "label") else str(row[c]) for c in CSV_HEADER]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def _csv_row(organizer_id: str, period: Period, currency: str, section: str, label: str, amount: int) -> str:
    return _csv_line(_row(organizer_id, period, currency, section, label, amount))


def statement_rows(statement: Statement) -> Iterator[StatementRow]:
    """The statement's rows (the CSV's columns): every line, then one ``net_due`` row
    per currency labelled with the direction. Exports write them as JSON Lines too."""
    org, period = statement.organizer_id, statement.period
    for part in statement.currencies:
        for line in part.lines:
            yield _row(org, period, part.currency, line.section, line.label, line.amount)
        yield _row(org, period, part.currency, "net_due", part.direction, part.net_due)


def statement_csv(statement: Statement) -> Iterator[str]:
    """The statement as CSV lines (RFC 4180, CRLF; encode as UTF-8): a header, then its rows."""
    yield ",".join(CSV_HEADER) + "\r\n"
    for row in statement_rows(statement):
        yield _csv_line(row)


def rollup_csv(rollup: Rollup) -> Iterator[str]:
    """The roll-up as CSV lines: per currency the summed lines (organizer ``*``) and the
    totals owed each way, then each organizer's net due."""
    yield ",".join(CSV_HEADER) + "\r\n"
    period = rollup.period
    for part in rollup.currencies:
        for line in part.lines:
            yield _csv_row("*", period, part.currency, line.section, line.label, line.amount)
        yield _csv_row("*", period, part.currency, "net_due", "owed_to_organizers", part.owed_to_organizers)
        yield _csv_row("*", period, part.currency, "net_due", "owed_by_organizers", -part.owed_by_organizers)
    for org in rollup.organizers:
        yield _csv_row(org.organizer_id, period, org.currency, "net_due", org.direction, org.net_due)
