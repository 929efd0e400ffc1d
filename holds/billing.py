"""Statements from what the scripts recorded: an organizer's orders, refunds and
resales of a billing period, turned into :mod:`rules.statements` records.

Orders carry each ticket's split as recorded at sale (``commit.lua``,
``box_office.lua``) and refunds each ticket's fee reversal as recorded at refund
time (``refund.lua``), resales their price, fees and seller payout as recorded at
the resale (``resale_commit.lua``): nothing is recomputed from plans, so a statement
never changes when a plan does. A record belongs to the period in which it happened
(orders by ``orders_z``, refunds by ``refunds_z``, resales by ``resales_z``, all
scored by Redis's clock in ms). Reads go event by event in chunks; no script runs.

Plan charges (setup and monthly fees) are records too, in the organizer's slot:
billed once each (``setup``, ``monthly:YYYY-MM``) at sign-up and by the
reaper's billing round from the plan the organizer is on then, in its
country's currency when the plan prices it (CLDR, via babel), else the plan's
default. A plan changed mid-month bills the monthly fee difference for the
days left (``plan_change:<id>``, :meth:`Billing.bill_plan_change`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Literal

import msgspec
from babel.numbers import get_territory_currencies

from holds import keys
from holds.errors import InvalidRequest
from holds.records import (
    Order,
    Refund,
    Resale,
    TenantRecord,
    json_encoder,
    order_decoder,
    refund_decoder,
    resale_decoder,
)
from holds.redis_client import AnyRedis, wrap_errors
from rules.fees import Collector, FeePlan, RefundPolicy, Split, month_part_left, plan_charge, prorated_change
from rules.statements import (
    OrderRecord,
    Period,
    PlanCharge,
    RefundRecord,
    ResaleRecord,
    Statement,
    TicketSale,
    build_statement,
)

charge_decoder = msgspec.json.Decoder(PlanCharge)
ChargeKind = Literal["setup_fee", "monthly_fee"]

CHUNK = 500
MAX_PERIOD_MS = 400 * 86_400_000  # a statement covers at most about 13 months


def check_period(start_ms: int, end_ms: int, end_field: str = "period_end") -> Period:
    if start_ms < 0 or end_ms <= start_ms:
        raise InvalidRequest(end_field, "the period must end after it starts")
    if end_ms - start_ms > MAX_PERIOD_MS:
        raise InvalidRequest(end_field, "a statement covers at most 400 days")
    return Period(start_ms, end_ms)


@cache
def country_currency(country: str) -> str | None:
    """The currency a country uses today (ISO 3166 alpha-2 -> ISO 4217), None if unknown."""
    if not country:
        return None
    try:
        current = get_territory_currencies(country, start_date=dt.date.today(), tender=True)
    except Exception:  # babel raises for territories it does not know
        return None
    return current[0] if current else None


def month_of(at_ms: int) -> tuple[str, int]:
    """The calendar month (UTC) holding ``at_ms``: its "YYYY-MM" and its first instant (ms)."""
    day = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
    first = dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)
    return f"{day.year:04d}-{day.month:02d}", int(first.timestamp() * 1000)


def _collector(value: str) -> Collector:
    return "organizer" if value == "organizer" else "platform"


def _policy(value: str) -> RefundPolicy:
    return "keep_fixed" if value == "keep_fixed" else "full"


def order_record(organizer_id: str, order: Order) -> OrderRecord:
    policy = _policy(order.terms.refund_policy if order.terms is not None else "full")
    tickets = [
        TicketSale(
            t.ticket_id,
            Split(
                order.currency,
                t.price,
                t.ticket_fee_rate,
                t.ticket_fee_fixed,
                t.processing_fee_rate,
                t.processing_fee_fixed,
                policy,
            ),
        )
        for t in order.tickets
        if t.status != "exchanged"  # replaced by its exchange's ticket, which carries the money now
    ]
    return OrderRecord(
        order.order_id, organizer_id, order.created_ms, order.payment_method or "online",
        _collector(order.collector), order.currency, tickets,
    )  # fmt: skip


def refund_records(organizer_id: str, refund: Refund) -> list[RefundRecord]:
    policy = _policy(refund.refund_policy)
    return [
        RefundRecord(
            refund_id=f"{refund.refund_id}:{line.ticket_id}",
            organizer_id=organizer_id,
            order_id=refund.order_id,
            ticket_id=line.ticket_id,
            created_ms=refund.created_ms,
            payment_method=refund.payment_method or "online",
            collector=_collector(refund.collector),
            reversal=Split(
                refund.currency,
                line.amount,
                line.ticket_fee_rate,
                line.ticket_fee_fixed,
                line.processing_fee_rate,
                line.processing_fee_fixed,
                policy,
            ),
        )
        for line in refund.lines
    ]


def resale_record(organizer_id: str, resale: Resale) -> ResaleRecord:
    split = Split(
        resale.currency,
        resale.price,
        resale.ticket_fee_rate,
        resale.ticket_fee_fixed,
        resale.processing_fee_rate,
        resale.processing_fee_fixed,
    )
    return ResaleRecord(
        resale.resale_id, organizer_id, resale.order_id, resale.ticket_id, resale.accepted_ms,
        resale.seller_id, split, resale.seller_payout,
    )  # fmt: skip


class Billing:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client

    async def _in_period(self, index: str, records: str, period: Period) -> list[bytes]:
        async with wrap_errors("read statement records"):
            ids = await self._r.zrangebyscore(index, period.start_ms, f"({period.end_ms}")
            raw: list[bytes] = []
            for i in range(0, len(ids), CHUNK):
                raw += [r for r in await self._r.hmget(records, ids[i : i + CHUNK]) if r is not None]
        return raw

    async def event_ids(self, tenant_id: str) -> list[str]:
        async with wrap_errors("list events"):
            return [i.decode() for i in await self._r.zrange(keys.event_index(tenant_id), 0, -1)]

    async def orders_and_refunds(self, event_id: str, period: Period) -> tuple[list[Order], list[Refund]]:
        orders = await self._in_period(
            keys.event_key(event_id, "orders_z"), keys.event_key(event_id, "orders"), period
        )
        refunds_key, refunds_z = keys.money_keys(event_id)
        refunds = await self._in_period(refunds_z, refunds_key, period)
        return [order_decoder.decode(r) for r in orders], [refund_decoder.decode(r) for r in refunds]

    async def resales(self, event_id: str, period: Period) -> list[Resale]:
        records, index = keys.resale_keys(event_id)[1:3]
        return [resale_decoder.decode(r) for r in await self._in_period(index, records, period)]

    async def statement(
        self, organizer_id: str, period: Period, event_ids: Sequence[str] | None = None
    ) -> Statement:
        """The organizer's statement for ``period`` over its events (all of them by default)
        and, unless the statement is limited to some events, its plan charges."""
        orders: list[OrderRecord] = []
        refunds: list[RefundRecord] = []
        resales: list[ResaleRecord] = []
        for event_id in await self.event_ids(organizer_id) if event_ids is None else event_ids:
            event_orders, event_refunds = await self.orders_and_refunds(event_id, period)
            orders += (order_record(organizer_id, o) for o in event_orders)
            for refund in event_refunds:
                refunds += refund_records(organizer_id, refund)
            resales += (resale_record(organizer_id, r) for r in await self.resales(event_id, period))
        charges = await self.charges(organizer_id, period) if event_ids is None else []
        return build_statement(
            organizer_id, period, orders=orders, refunds=refunds, charges=charges, resales=resales
        )

    async def charges(self, organizer_id: str, period: Period) -> list[PlanCharge]:
        raw = await self._in_period(
            keys.tenant_charges_z(organizer_id), keys.tenant_charges(organizer_id), period
        )
        return [charge_decoder.decode(r) for r in raw]

    async def bill_plan(self, organizer: TenantRecord, plan: FeePlan, now_ms: int) -> list[PlanCharge]:
        """Bill the plan's setup fee (once) and the month's fee (once per month) that are due
        at ``now_ms`` and not billed yet; returns the charges billed now. Idempotent: each
        charge is written with HSETNX and indexed with ZADD NX in one MULTI."""
        month, month_start = month_of(now_ms)
        due: list[tuple[str, ChargeKind, int]] = [
            ("setup", "setup_fee", organizer.created_at_ms),
            (f"monthly:{month}", "monthly_fee", max(month_start, organizer.created_at_ms)),
        ]
        local = country_currency(organizer.country)
        currency = plan.billing_currency(local)
        written: list[PlanCharge] = []
        for charge_id, kind, at_ms in due:
            amount = plan_charge(plan, kind, local)
            if amount <= 0:
                continue
            charge = PlanCharge(charge_id, organizer.tenant_id, at_ms, currency, kind, amount)
            if await self._put_charge(charge):
                written.append(charge)
        return written

    async def bill_plan_change(
        self, organizer: TenantRecord, old: FeePlan, new: FeePlan, change_id: str, now_ms: int
    ) -> list[PlanCharge]:
        """Bill a change from plan ``old`` to ``new`` at ``now_ms``: the month's fee under
        ``old`` first (if not billed yet, as the billing round would), then the monthly fee
        difference prorated by the days left (:func:`rules.fees.prorated_change`): one
        signed charge, or, when the two plans bill in different currencies, a credit of the
        old fee's part in its currency and a charge of the new one's in its. Idempotent by
        ``change_id`` (the change's request id): written with HSETNX, as every charge."""
        billed = await self.bill_plan(organizer, old, now_ms)
        month, _ = month_of(now_ms)
        local = country_currency(organizer.country)
        part = month_part_left(now_ms)
        old_fee, new_fee = plan_charge(old, "monthly_fee", local), plan_charge(new, "monthly_fee", local)
        old_currency, new_currency = old.billing_currency(local), new.billing_currency(local)
        if old_currency == new_currency:
            amounts = {old_currency: prorated_change(old_fee, new_fee, part)}
        else:
            amounts = {
                old_currency: prorated_change(old_fee, 0, part),
                new_currency: prorated_change(0, new_fee, part),
            }
        written: list[PlanCharge] = []
        for currency, amount in amounts.items():
            if amount == 0:
                continue
            suffix = f":{currency}" if len(amounts) > 1 else ""
            charge = PlanCharge(
                f"plan_change:{month}:{change_id}{suffix}",
                organizer.tenant_id,
                now_ms,
                currency,
                "monthly_fee",
                amount,
            )
            if await self._put_charge(charge):
                written.append(charge)
        return billed + written

    async def _put_charge(self, charge: PlanCharge) -> bool:
        """Write ``charge`` once (HSETNX and ZADD NX in one MULTI); False: it was there."""
        async with wrap_errors("bill plan"), self._r.pipeline(transaction=True) as pipe:
            pipe.hsetnx(
                keys.tenant_charges(charge.organizer_id), charge.charge_id, json_encoder.encode(charge)
            )
            pipe.zadd(
                keys.tenant_charges_z(charge.organizer_id), {charge.charge_id: charge.created_ms}, nx=True
            )
            created, _ = await pipe.execute()
        return bool(created)

    async def statements(self, organizer_ids: Iterable[str], period: Period) -> list[Statement]:
        return [await self.statement(o, period) for o in organizer_ids]
