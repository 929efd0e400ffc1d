"""Export readers: an organizer's orders, tickets, check-ins and marketing contacts,
read in bounded chunks.

Every read is a cursor walk (``HSCAN`` of an event's ``orders`` or ``checkins``
hash, ``COUNT`` :data:`CHUNK`), never ``HGETALL``: each chunk is decoded,
joined (consent decisions, seat ids, orders of check-ins) and turned into
rows (``rules/reports.py`` formats them), and the next chunk is read only once
the caller has taken the rows of this one (async generators under gRPC's flow
control). A sold-out stadium's export so holds one chunk in the server, not the
event. ``HSCAN`` may return an entry twice when the hash is resized during the
walk (Redis's guarantee is "at least once" for entries present throughout);
rows are de-duplicated within a chunk only, so a row can repeat in an export
taken while sales go on: its id says so.

Personal data: rows show orders as they are now, so an erased buyer's rows
are erased (empty name and email, ``buyer_erased`` true). Marketing contacts
are buyers whose effective decision is an opt-in: the tenant's newest decision
when it is at or after the order, else the order's own (``reader.buyer_of``,
as in the feed); one row per email, the newest order's decision winning. That
one needs a map of the distinct buyers' emails in memory (bounded by buyers, not
tickets; about 100 bytes each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from holds import keys
from holds.feed.reader import ConsentDecision, buyer_of, consent_decoder, id_key
from holds.live import LiveEvents
from holds.records import Order, Ticket, order_decoder
from holds.redis_client import AnyRedis, wrap_errors
from rules.money import format_minor
from rules.reports import Row, iso
from seatmap.model import PlacedSeat

ExportKind = Literal["orders", "tickets", "checkins", "contacts"]
CHUNK: Final = 500  # HSCAN COUNT: entries per round trip, and about the rows per chunk

COLUMNS: Final[dict[ExportKind, tuple[str, ...]]] = {
    "orders": (
        "event_id", "order_id", "created_at", "status", "tickets", "tickets_valid", "total",
        "total_minor", "currency", "buyer_name", "buyer_email", "marketing_consent", "buyer_erased",
        "buyer_id", "payment_reference", "updated_at", "promo_code", "discount", "discount_minor",
    ),
    "tickets": (
        "event_id", "order_id", "ticket_id", "seat_id", "section_id", "ga_area", "category", "price",
        "price_minor", "currency", "status", "buyer_name", "buyer_email", "buyer_erased", "sold_at",
        "ticket_type", "promo_code", "list_price_minor", "discount_minor",
    ),
    "checkins": ("event_id", "ticket_id", "order_id", "state", "gate", "device", "at"),
    "contacts": ("email", "name", "consent_source", "consent_decided_at", "last_order_at"),
}  # fmt: skip


@dataclass(frozen=True)
class TimeRange:
    from_ms: int = 0  # inclusive; 0: no bound
    until_ms: int = 0  # exclusive; 0: no bound

    def __contains__(self, ms: object) -> bool:
        if not isinstance(ms, int):
            return False
        return (not self.from_ms or ms >= self.from_ms) and (not self.until_ms or ms < self.until_ms)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Contact:
    name: str
    source: str
    decided_ms: int
    opted_in: bool
    order_ms: int


class ExportReader:
    def __init__(self, client: AnyRedis, live: LiveEvents) -> None:
        self._r = client
        self._live = live

    async def event_ids(self, tenant_id: str, event_id: str = "") -> list[str]:
        """The events to read: ``event_id`` if it is the tenant's (else NotFound), or all of them."""
        if event_id:
            return [(await self._live.get(tenant_id, event_id)).event_id]
        async with wrap_errors("list events"):
            return [e.decode() for e in await self._r.zrange(keys.event_index(tenant_id), 0, -1)]

    async def event_facts(self, event_ids: Sequence[str]) -> list[tuple[str, int]]:
        """Each event's currency and tickets checked in (door counters), in one round trip
        per 256 events (a platform's roll-up; no live event is loaded for it)."""
        out: list[tuple[str, int]] = []
        admitted_key = keys.DOOR_KEY_NAMES.index("doorstats")
        for start in range(0, len(event_ids), 256):
            chunk = event_ids[start : start + 256]
            async with wrap_errors("read events"), self._r.pipeline(transaction=False) as pipe:
                for event_id in chunk:
                    pipe.hget(keys.event_key(event_id, "meta"), "currency")
                    pipe.hget(keys.door_keys(event_id)[admitted_key], "admitted")
                replies = await pipe.execute()
            out += [(_text(c or b""), int(a or 0)) for c, a in zip(replies[0::2], replies[1::2], strict=True)]
        return out

    async def estimate(self, kind: ExportKind, event_ids: Sequence[str]) -> int:
        """Rows the export will have, about (orders, tickets or check-ins of the events)."""
        name = {"orders": "orders", "tickets": "tickets", "checkins": "", "contacts": "orders"}[kind]
        async with wrap_errors("count rows"), self._r.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                if name:
                    pipe.hlen(keys.event_key(event_id, name))
                else:
                    pipe.hlen(keys.door_keys(event_id)[keys.DOOR_KEY_NAMES.index("checkins")])
            return sum(int(n) for n in await pipe.execute()) if event_ids else 0

    async def _scan(self, key: str) -> AsyncIterator[list[tuple[str, bytes]]]:
        """The hash's entries, a chunk (one HSCAN reply) at a time."""
        cursor = 0
        while True:
            async with wrap_errors("export read"):
                cursor, found = await self._r.hscan(key, cursor, count=CHUNK)
            if found:
                yield [(_text(k), v) for k, v in found.items()]
            if not cursor:
                return

    async def _decisions(self, tenant_id: str, orders: Sequence[Order]) -> dict[str, ConsentDecision]:
        """The organizer's decisions for the orders' e-mails and (``id_key``) buyer ids."""
        wanted = sorted({o.buyer.email.strip().lower() for o in orders if o.buyer.email})
        ids = sorted({o.buyer_id for o in orders if o.buyer_id})
        out: dict[str, ConsentDecision] = {}
        async with wrap_errors("read consent"):
            if wanted:
                found = await self._r.hmget(keys.tenant_consent(tenant_id), wanted)
                out |= {e: consent_decoder.decode(d) for e, d in zip(wanted, found, strict=True) if d}
            if ids:
                found = await self._r.hmget(keys.tenant_consent_ids(tenant_id), ids)
                out |= {id_key(i): consent_decoder.decode(d) for i, d in zip(ids, found, strict=True) if d}
        return out

    async def orders(
        self, tenant_id: str, event_id: str, period: TimeRange = TimeRange()
    ) -> AsyncIterator[list[Order]]:
        """The event's orders created in ``period``, a chunk at a time."""
        async for chunk in self._scan(keys.event_key(event_id, "orders")):
            orders = [order_decoder.decode(raw) for _, raw in chunk]
            kept = [o for o in orders if o.created_ms in period]
            if kept:
                yield kept

    async def rows(
        self, tenant_id: str, kind: ExportKind, event_ids: Sequence[str], period: TimeRange = TimeRange()
    ) -> AsyncIterator[list[Row]]:
        """The export's rows, a chunk at a time."""
        if kind == "contacts":
            async for rows in self._contacts(tenant_id, event_ids, period):
                yield rows
            return
        for event_id in event_ids:
            if kind == "checkins":
                async for rows in self._checkins(tenant_id, event_id, period):
                    yield rows
                continue
            live = await self._live.get(tenant_id, event_id)
            placed = live.loaded.index.placed
            async for orders in self.orders(tenant_id, event_id, period):
                decisions = await self._decisions(tenant_id, orders)
                if kind == "orders":
                    yield [_order_row(event_id, o, decisions) for o in orders]
                else:
                    yield [_ticket_row(event_id, o, t, placed) for o in orders for t in o.tickets]

    async def _checkins(self, tenant_id: str, event_id: str, period: TimeRange) -> AsyncIterator[list[Row]]:
        await self._live.get(tenant_id, event_id)  # the tenant's (NotFound otherwise)
        key = keys.door_keys(event_id)[keys.DOOR_KEY_NAMES.index("checkins")]
        async for chunk in self._scan(key):
            states = []
            for ticket_id, raw in chunk:
                state, gate, device, at = [*_text(raw).split("|"), "", "", "", "0"][:4]
                if int(at or 0) in period:
                    states.append((ticket_id, state, gate, device, int(at or 0)))
            if not states:
                continue
            async with wrap_errors("export read"):
                order_ids = await self._r.hmget(keys.event_key(event_id, "tickets"), [s[0] for s in states])
            yield [
                {
                    "event_id": event_id,
                    "ticket_id": t,
                    "order_id": _text(o) if o is not None else "",
                    "state": state,
                    "gate": gate,
                    "device": device,
                    "at": iso(at),
                }
                for (t, state, gate, device, at), o in zip(states, order_ids, strict=True)
            ]

    async def _contacts(
        self, tenant_id: str, event_ids: Sequence[str], period: TimeRange
    ) -> AsyncIterator[list[Row]]:
        contacts: dict[str, _Contact] = {}
        for event_id in event_ids:
            await self._live.get(tenant_id, event_id)
            async for orders in self.orders(tenant_id, event_id, period):
                decisions = await self._decisions(tenant_id, orders)
                for order in orders:
                    buyer = buyer_of(order, decisions)
                    if buyer.erased or not buyer.email:
                        continue
                    email = buyer.email.strip().lower()
                    known = contacts.get(email)
                    if known is None or order.created_ms >= known.order_ms:
                        contacts[email] = _Contact(
                            buyer.name, buyer.consent_source, buyer.consent_decided_ms,
                            buyer.marketing_consent, order.created_ms,
                        )  # fmt: skip
        # a decision recorded for the tenant after every order of the buyer still wins
        emails = sorted(contacts)
        for start in range(0, len(emails), CHUNK):
            batch = emails[start : start + CHUNK]
            async with wrap_errors("read consent"):
                found = await self._r.hmget(keys.tenant_consent(tenant_id), batch)
            rows: list[Row] = []
            for email, raw in zip(batch, found, strict=True):
                c = contacts.pop(email)
                if raw is not None:
                    d = consent_decoder.decode(raw)
                    if d.decided_at_ms >= c.decided_ms:
                        c.opted_in, c.source, c.decided_ms = d.opted_in, d.source, d.decided_at_ms
                if c.opted_in:
                    rows.append(
                        {
                            "email": email,
                            "name": c.name,
                            "consent_source": c.source,
                            "consent_decided_at": iso(c.decided_ms),
                            "last_order_at": iso(c.order_ms),
                        }
                    )
            if rows:
                yield rows


def _order_row(event_id: str, o: Order, decisions: dict[str, ConsentDecision]) -> Row:
    buyer = buyer_of(o, decisions)
    return {
        "event_id": event_id,
        "order_id": o.order_id,
        "created_at": iso(o.created_ms),
        "status": o.status,
        "tickets": len(o.tickets),
        "tickets_valid": sum(1 for t in o.tickets if t.status == "valid"),
        "total": format_minor(o.total, o.currency),
        "total_minor": o.total,
        "currency": o.currency,
        "buyer_name": buyer.name,
        "buyer_email": buyer.email,
        "marketing_consent": buyer.marketing_consent,
        "buyer_erased": buyer.erased,
        "buyer_id": o.buyer_id,
        "payment_reference": "" if buyer.erased else o.buyer.payment_reference,
        "updated_at": iso(o.updated_ms),
        "promo_code": o.promo_code,
        "discount": format_minor(o.discount, o.currency),
        "discount_minor": o.discount,
    }


def _ticket_row(event_id: str, o: Order, t: Ticket, placed: Sequence[PlacedSeat]) -> Row:
    seat_id = section_id = ""
    if t.seat is not None and 0 <= t.seat < len(placed):
        seat_id, section_id = placed[t.seat].seat.id, placed[t.seat].section_id
    return {
        "event_id": event_id,
        "order_id": o.order_id,
        "ticket_id": t.ticket_id,
        "seat_id": seat_id,
        "section_id": section_id,
        "ga_area": t.ga_area or "",
        "category": t.category,
        "price": format_minor(t.price, o.currency),
        "price_minor": t.price,
        "currency": o.currency,
        "status": t.status,
        "buyer_name": "" if o.buyer.erased else o.buyer.name,
        "buyer_email": "" if o.buyer.erased else o.buyer.email,
        "buyer_erased": o.buyer.erased,
        "sold_at": iso(o.created_ms),
        "ticket_type": t.ticket_type,
        "promo_code": o.promo_code,
        # before the order's promo discount (the type's or category's price): what was paid
        # plus the discount; without a code, the price paid
        "list_price_minor": t.list_price or t.price,
        "discount_minor": t.discount,
    }


async def hold_endings(client: AnyRedis, event_id: str) -> AsyncIterator[list[str]]:
    """Why each hold of the event ended (``committed:<order>``, ``released``, ``expired``),
    a chunk at a time: the tombstones the inventory keeps a day (``holdwhy``)."""
    cursor = 0
    while True:
        async with wrap_errors("report read"):
            cursor, found = await client.hscan(keys.event_key(event_id, "holdwhy"), cursor, count=CHUNK)
        if found:
            yield [_text(v) for v in found.values()]
        if not cursor:
            return
