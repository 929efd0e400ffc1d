"""Buyers' marketing consent and the right to erasure, per tenant (organizer).

Consent: a buyer's opt-in is captured per order at commit; ``update_consent``
records a later decision (from a CRM, or the buyer) for the whole tenant in the
tenant's consent hash, the newest ``decided_at`` winning (consent.lua), and an
applied decision is a feed entry. Readers take, per order, the newer of the
order's own decision and the tenant's (holds/feed/reader.py).

Erasure (``erase_buyer``): every event's orders with the buyer's email lose the
buyer's name, email and payment reference, tickets the person holds (after a
transfer or a resale) lose the holder, resale records name them as neither
seller nor buyer, and the buyer id is replaced by a marker in orders, live
holds, per-buyer counts and resale records (erase_orders.lua, one script
per event and batch, in the event's slot); then the tenant's consent record
and subject mapping go and an audit entry is written (erase_subject.lua). Feed
entries hold no personal data, so nothing retained in the feed names the buyer
afterwards. Each step is idempotent: a failure part-way is finished by calling
again.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from holds import keys
from holds.errors import EventMoving, InvalidRequest, StoreError
from holds.feed.reader import ConsentDecision, consent_decoder
from holds.records import order_decoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry

MAX_EMAIL = 254
MAX_BUYER_ID = 128  # as holds/sales.py
MAX_SOURCE = 64
ORDERS_PER_ERASE_CALL = 200
MAX_FUTURE_MS = 5 * 60 * 1000  # a decision "made" later than this from now is refused


@dataclass(frozen=True)
class ConsentResult:
    applied: bool  # False: a newer decision was already recorded (``decision`` is that one)
    decision: ConsentDecision


@dataclass(frozen=True)
class ErasureResult:
    orders_erased: int
    holds_erased: int
    events_scanned: int
    subject: str


def normalize_email(email: str) -> str:
    normalized = email.strip().lower()
    if not normalized or "@" not in normalized or len(normalized) > MAX_EMAIL:
        raise InvalidRequest("email", "must be an email address")
    return normalized


def _subject(kind: str = "sub") -> str:
    """A new subject id: ``sub_`` names an e-mail, ``bid_`` a buyer id (reader.py tells them apart)."""
    return f"{kind}_{secrets.token_hex(8)}"


class Privacy:
    def __init__(self, client: AnyRedis, scripts: ScriptRegistry) -> None:
        self._r = client
        self._scripts = scripts

    async def update_consent(
        self,
        tenant_id: str,
        email: str,
        opted_in: bool,
        source: str,
        decided_at_ms: int = 0,
        *,
        buyer_id: str = "",
    ) -> ConsentResult:
        """Record a decision for the buyer named by ``email`` or (exactly one of the two) by
        ``buyer_id``: kept per e-mail or per buyer id, the newest decision of either that
        applies to an order winning for it (holds/feed/reader.py buyer_of)."""
        if email and buyer_id:
            raise InvalidRequest("buyer_id", "name the buyer by email or by buyer_id, not both")
        if buyer_id:
            if len(buyer_id) > MAX_BUYER_ID:
                raise InvalidRequest("buyer_id", f"at most {MAX_BUYER_ID} characters")
            who, decisions, subject = buyer_id, keys.tenant_consent_ids(tenant_id), _subject("bid")
        else:
            if not email:
                raise InvalidRequest("email", "name the buyer by email or by buyer_id")
            who, decisions, subject = normalize_email(email), keys.tenant_consent(tenant_id), _subject()
        source = source.strip() or "api"
        if len(source) > MAX_SOURCE:
            raise InvalidRequest("source", f"at most {MAX_SOURCE} characters")
        now = int(time.time() * 1000)
        if decided_at_ms < 0 or decided_at_ms > now + MAX_FUTURE_MS:
            raise InvalidRequest("decided_at", "must not be in the future")
        reply = await self._scripts.consent(
            [decisions, keys.tenant_subjects(tenant_id), keys.tenant_feed(tenant_id)],
            [who, subject, 1 if opted_in else 0, source, decided_at_ms or now, now],
        )
        match reply:
            case [Reply.OK, decision, applied]:
                return ConsentResult(bool(applied), consent_decoder.decode(decision))
        raise StoreError(f"consent returned an unknown result {reply!r}")

    async def consent_of(self, tenant_id: str, email: str) -> ConsentDecision | None:
        async with wrap_errors("read consent"):
            raw = await self._r.hget(keys.tenant_consent(tenant_id), normalize_email(email))
        return consent_decoder.decode(raw) if raw is not None else None

    async def erase_buyer(
        self, tenant_id: str, email: str, actor: str, actor_role: str = ""
    ) -> ErasureResult:
        email = normalize_email(email)
        async with wrap_errors("list events"):
            event_ids = [e.decode() for e in await self._r.zrange(keys.event_index(tenant_id), 0, -1)]
        matches: dict[str, list[str]] = {}
        buyer_ids: set[str] = set()
        for event_id in event_ids:  # pass 1: the buyer's orders and buyer ids, everywhere
            found = matches.setdefault(event_id, [])
            async with wrap_errors("scan orders"):
                async for order_id, raw in self._r.hscan_iter(keys.event_key(event_id, "orders"), count=500):
                    order = order_decoder.decode(raw)
                    holder = any(t.holder is not None and t.holder.email.strip().lower() == email
                                 for t in order.tickets)  # fmt: skip
                    if order.buyer.email.strip().lower() == email:
                        found.append(order_id.decode())
                        if order.buyer_id:
                            buyer_ids.add(order.buyer_id)
                    elif holder:  # a ticket transferred or resold to them: its holder goes
                        found.append(order_id.decode())
        marker = f"erased-{secrets.token_hex(8)}"
        orders_erased = holds_erased = 0
        refs: list[str] = []
        for event_id in event_ids:  # pass 2: anonymize, one script per event and batch
            found = matches[event_id]
            for start in range(0, max(len(found), 1), ORDERS_PER_ERASE_CALL):
                batch = found[start : start + ORDERS_PER_ERASE_CALL]
                reply = await self._scripts.erase_orders(
                    keys.after_sale_keys(event_id),
                    [email, marker, len(batch), *batch, len(buyer_ids), *sorted(buyer_ids), ""],
                )
                match reply:
                    case [Reply.OK, orders, holds]:
                        orders_erased += int(orders)
                        holds_erased += int(holds)
                    case [Reply.EVENT_MOVING, wait_ms]:  # the move copies the orders: erase after it
                        raise EventMoving(event_id, int(wait_ms))
                    case _:
                        raise StoreError(f"erase_orders returned an unknown result {reply!r}")
            refs += [f"{event_id}/{o}" for o in found]
        reply = await self._scripts.erase_subject(
            [
                keys.tenant_consent(tenant_id),
                keys.tenant_subjects(tenant_id),
                keys.tenant_feed(tenant_id),
                keys.tenant_audit(tenant_id),
                keys.tenant_consent_ids(tenant_id),
            ],
            [
                email,
                _subject(),
                actor,
                str(orders_erased),
                str(holds_erased),
                str(len(event_ids)),
                ",".join(refs),
                actor_role,
                tenant_id,
                *sorted(buyer_ids),
            ],
        )
        match reply:
            case [Reply.OK, subject]:
                return ErasureResult(orders_erased, holds_erased, len(event_ids), subject.decode())
        raise StoreError(f"erase_subject returned an unknown result {reply!r}")
