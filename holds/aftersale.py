"""After the sale: transfers, exchanges and resale of an event's tickets.

Each change is one script over the event's keys, its door keys and its resale
keys (``holds/keys.py after_sale_keys``, one ``{ev:}`` slot): ``transfer.lua``,
``exchange.lua``, ``resale_list.lua``, ``resale_hold.lua``, ``resale_commit.lua``.
A ticket that changes hands keeps its id, seat and money and gets its next
*revision*; its token names the revision (``<ticket id>~<revision>``), so the
previous holder's token is revoked the moment the script runs (scan.lua answers
``revoked`` with ``transferred`` or ``resold``). An exchange replaces tickets
by new ones (the old ones ``exchanged``). A listing lives on its ticket, so the
scripts that cancel, refund, transfer, exchange or admit a ticket withdraw it
in the same step. docs/selling.md has the organizer's view.

An exchange into another event of the organizer is ``holds/exchanges.py``: one
script when the two events share a slot (a season's), a saga of one-slot steps
otherwise (docs/selling.md, "Exchanges across events").
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from holds import distancing, exchanges, keys
from holds.distancing import SeatOrdinalsDistanced, with_current_rule
from holds.door import Door
from holds.errors import (
    HoldExpired,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SeatsDistanced,
    SeatsUnavailable,
    StoreError,
    ticket_exchanging,
)
from holds.ids import new_id
from holds.inventory import PURGE_PER_CALL, Inventory
from holds.live import LiveEvent
from holds.platform.sellers import NativeResales
from holds.records import (
    Buyer,
    Exchange,
    Order,
    Resale,
    Ticket,
    exchange_decoder,
    json_encoder,
    order_decoder,
    resale_decoder,
)
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.retries import fingerprint
from holds.sales import MAX_IDEMPOTENCY_KEY, MAX_SEATS_PER_REQUEST, Sales, check_order_input, parse_token
from holds.script_channel import EncodableArg
from holds.scripts import ScriptRegistry
from rules.fees import FeePlan, PlanPrices, Split, split_ticket

log = structlog.get_logger("seatwise.aftersale")
MAX_LISTINGS = 1_000  # one ListListings answer
MAX_PRICE = 10**12  # minor units, as the scripts' fee arithmetic allows


@dataclass(frozen=True)
class ResaleRules:
    allowed: bool = False
    floor: int = 0  # minor units
    cap: int = 0  # minor units; 0: no cap


@dataclass(frozen=True)
class ExchangeResult:
    order: Order
    exchange: Exchange
    replayed: bool
    new_order: Order | None = None  # an exchange into another event: the order there (holds/exchanges.py)


@dataclass(frozen=True)
class ListingHold:
    token: str
    expires_ms: int
    price: int
    order_id: str


@dataclass(frozen=True)
class ResaleResult:
    resale: Resale
    order: Order
    replayed: bool


def listing_token(event_id: str, ticket_id: str, hold_id: str) -> str:
    return f"{event_id}.{ticket_id}.{hold_id}"


def parse_listing_token(token: str) -> tuple[str, str, str]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts) or len(token) > 240:
        raise InvalidRequest("hold_token", "not a listing hold token this service issued")
    return parts[0], parts[1], parts[2]


def resale_split(price: int, currency: str, order: Order) -> Split:
    """The platform's fees on a resale at ``price``: the order's recorded plan terms on
    the resale price, collected by the platform (the resale buyer pays online)."""
    terms = order.terms
    if terms is None:
        return Split(currency, price)
    fixed = PlanPrices(
        ticket_fee_fixed=terms.ticket_fee_fixed, processing_fee_fixed=terms.processing_fee_fixed
    )
    plan = FeePlan(
        plan_id=terms.plan_id,
        default_currency=currency,
        prices={currency: fixed},
        ticket_fee_bps=terms.ticket_fee_bps,
        processing_fee_bps=terms.processing_fee_bps,
    )
    return split_ticket(price, currency, plan, "platform")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unknown(script: str, reply: Any) -> StoreError:
    return StoreError(f"{script} returned an unknown result {reply!r}")


def _ticket_error(reply: Any, order_id: str) -> StoreError | None:
    """The errors every after-sale script shares about the ticket it was given."""
    match reply:
        case [Reply.ORDER_NOT_FOUND]:
            return NotFound("order", order_id)
        case [Reply.TICKET_NOT_IN_ORDER, ticket]:
            return InvalidRequest("ticket_id", f"ticket {_text(ticket)!r} is not in order {order_id}")
        case [Reply.TICKET_NOT_VALID, ticket, status]:
            return PreconditionFailed(f"ticket {_text(ticket)} is {_text(status)}", subject=_text(ticket))
        case [Reply.REVISION_MISMATCH, ticket, revision, why]:
            how = f" ({_text(why)})" if _text(why) else ""
            return PreconditionFailed(
                f"ticket {_text(ticket)} already changed hands{how}: it is at revision {int(revision)}",
                subject=_text(ticket),
            )
        case [Reply.TICKET_USED, ticket]:
            return PreconditionFailed(
                f"ticket {_text(ticket)} was already used at the door", subject=_text(ticket)
            )
        case [Reply.TICKET_REFUNDED, ticket]:
            return PreconditionFailed(
                f"ticket {_text(ticket)} was (partly) refunded: refund it whole instead",
                subject=_text(ticket),
            )
        case [Reply.TICKET_EXCHANGING, ticket, exchange_id]:
            return ticket_exchanging(ticket, exchange_id)
        case [Reply.LISTING_NOT_FOUND, ticket]:
            return NotFound("listing", _text(ticket))
        case [Reply.LISTING_HELD, ticket]:
            return PreconditionFailed(
                f"the listing of ticket {_text(ticket)} is held by a resale buyer", subject=_text(ticket)
            )
        case [Reply.EVENT_NOT_FOUND]:
            return NotFound("event", "")
        case [Reply.NOT_ON_SALE, status]:
            return PreconditionFailed(
                f"the event is {_text(status)}: after-sale changes need it on sale or paused"
            )
    return None


def _exchange_error(reply: Any, hold_token: str, n_tickets: int) -> StoreError | None:
    match reply:
        case [Reply.NO_PRICE, category]:
            return PreconditionFailed(f"category {_text(category)!r} has no price", subject=_text(category))
        case [Reply.HOLD_NOT_FOUND]:
            return NotFound("hold", hold_token)
        case [Reply.HOLD_EXPIRED] | [Reply.HOLD_LOST, _]:
            return HoldExpired("the hold has expired or no longer holds its seats", subject=hold_token)
        case [Reply.HOLD_COMMITTED, _] | [Reply.HOLD_RELEASED]:
            return PreconditionFailed("the hold was already committed or released", subject=hold_token)
        case [Reply.SEAT_NOT_IN_HOLD, held]:
            return InvalidRequest(
                "hold_token",
                f"the hold has {int(held)} seat(s): exchange as many tickets ({n_tickets} named)",
            )
        case [Reply.GA_NOT_IN_HOLD, _, _]:
            return InvalidRequest("hold_token", "the hold has general admission places: hold seats only")
        case [Reply.EXCHANGE_KEY_MISMATCH, other]:
            return InvalidRequest(
                "exchange_key", f"already used for exchange {_text(other)} of a different request"
            )
    return None


def _check_buyer(field: str, buyer: Buyer) -> None:
    for name, value, limit in ((f"{field}.name", buyer.name, 200), (f"{field}.email", buyer.email, 320)):
        if len(value) > limit:
            raise InvalidRequest(name, f"must be at most {limit} characters")


class AfterSale:
    def __init__(
        self,
        client: AnyRedis,
        scripts: ScriptRegistry,
        sales: Sales,
        inventory: Inventory,
        door: Door,
        native: NativeResales | None = None,
    ) -> None:
        """``native``: moves committed resales into their sellers' ledgers (none: they stay due)."""
        self._r = client
        self._scripts = scripts
        self._sales = sales
        self._inventory = inventory
        self._door = door
        self._native = native
        self.cross = exchanges.CrossExchanges(client, scripts, sales, inventory)  # into another event

    # -- transfer ------------------------------------------------------------
    async def transfer(
        self,
        tenant_id: str,
        event_id: str,
        order_id: str,
        ticket_id: str,
        revision: int,
        holder: Buyer,
    ) -> tuple[LiveEvent, Order, str]:
        """Hand ``ticket_id`` (at ``revision``, as the caller read it) to ``holder``;
        returns the order and the new holder's token."""
        ctx = await self._sales.context(tenant_id, event_id)
        if not order_id:
            raise InvalidRequest("order_id", "required")
        if not ticket_id:
            raise InvalidRequest("ticket_id", "required")
        if revision < 0:
            raise InvalidRequest("revision", "must not be negative")
        if not holder.name and not holder.email:
            raise InvalidRequest("new_holder", "name or email required")
        _check_buyer("new_holder", holder)
        reply = await self._scripts.transfer.replicated(
            keys.after_sale_keys(ctx.event_id),
            [order_id, ticket_id, revision, json_encoder.encode(holder), str(ctx.ref.seat_map_version)],
        )
        self._inventory.moved(reply, ctx.event_id)
        match reply:
            case [Reply.OK, order_json, _]:
                order = order_decoder.decode(order_json)
            case _:
                raise _ticket_error(reply, order_id) or _unknown("transfer", reply)
        ticket = next(t for t in order.tickets if t.ticket_id == ticket_id)
        token, _ = await self._door.sign_ticket(tenant_id, ctx.event_id, order, ticket)
        return ctx, order, token

    # -- exchange ------------------------------------------------------------
    async def exchange(
        self,
        tenant_id: str,
        event_id: str,
        order_id: str,
        ticket_ids: Sequence[str],
        *,
        seat_ids: Sequence[str] = (),
        hold_token: str = "",
        exchange_key: str,
        target_event_id: str = "",
    ) -> tuple[LiveEvent, ExchangeResult]:
        """Swap ``ticket_ids`` of the order for ``seat_ids`` (free seats) or for the seats
        of the caller's live hold ``hold_token``, one for one: on the same event, or on
        ``target_event_id``, another event of the organizer (holds/exchanges.py)."""
        ctx = await self._sales.context(tenant_id, event_id)
        if not order_id:
            raise InvalidRequest("order_id", "required")
        if not 1 <= len(exchange_key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest("exchange_key", f"required, 1-{MAX_IDEMPOTENCY_KEY} characters")
        if target_event_id and target_event_id != ctx.event_id:
            target = await self._sales.context(tenant_id, target_event_id)  # another organizer's: NOT_FOUND
            return ctx, await self._exchange_across(
                tenant_id, ctx, target, order_id, ticket_ids, seat_ids, hold_token, exchange_key
            )
        hold_id, ordinals = self._exchange_target(ctx, ticket_ids, seat_ids, hold_token)
        placed = ctx.loaded.index.placed
        parts = {"order": order_id, "tickets": list(ticket_ids), "seats": list(seat_ids), "hold": hold_token}
        digest = fingerprint("exchange", ctx.event_id, "", "", parts)
        args: list[EncodableArg] = [
            order_id, exchange_key, new_id("x", 12), f"t{secrets.token_hex(6)}-x", hold_id, digest,
            PURGE_PER_CALL, len(ticket_ids), *ticket_ids, len(ordinals), *ordinals,
            *(placed[o].seat.category for o in ordinals),
        ]  # fmt: skip
        fence = str(ctx.ref.seat_map_version)  # the seat-map version, last (holds/lua/_layout.lua)

        async def call(rule_args: list[EncodableArg]) -> Any:
            """Free seats keep the event's minimum distance (a hold's were checked when held)."""
            reply = await self._scripts.exchange.replicated(
                # the xsagas: a key an exchange into another event holds is refused (exchange.lua)
                (*exchanges.saga_keys(ctx.event_id), *keys.channel_keys(ctx.event_id)),
                [*args, *rule_args, fence],
            )
            self._inventory.moved(reply, ctx.event_id)
            if (distanced := distancing.refusal(reply)) is not None:
                raise distanced
            return reply

        try:
            reply = await with_current_rule(ctx, ordinals, call)
        except SeatOrdinalsDistanced as exc:
            raise SeatsDistanced(self._sales.seat_ids(ctx, exc.ordinals)) from exc
        match reply:
            case [Reply.OK, order_json, exchange_json, replayed]:
                result = ExchangeResult(
                    order_decoder.decode(order_json), exchange_decoder.decode(exchange_json), bool(replayed)
                )
                return ctx, result
            case [Reply.SEATS_UNAVAILABLE, taken]:
                raise SeatsUnavailable(self._sales.seat_ids(ctx, [int(o) for o in taken]))
        raise (
            _exchange_error(reply, hold_token, len(ticket_ids))
            or _ticket_error(reply, order_id)
            or _unknown("exchange", reply)
        )

    async def event(self, tenant_id: str, event_id: str) -> LiveEvent:
        """The event as this process holds it (the seat map an answer's seat ids come from)."""
        return await self._sales.context(tenant_id, event_id)

    async def _exchange_across(
        self,
        tenant_id: str,
        source: LiveEvent,
        target: LiveEvent,
        order_id: str,
        ticket_ids: Sequence[str],
        seat_ids: Sequence[str],
        hold_token: str,
        exchange_key: str,
    ) -> ExchangeResult:
        hold_id, ordinals = self._exchange_target(target, ticket_ids, seat_ids, hold_token)
        parts = {
            "order": order_id, "tickets": list(ticket_ids), "seats": list(seat_ids), "hold": hold_token,
            "target": target.event_id,
        }  # fmt: skip
        digest = fingerprint("exchange", source.event_id, "", "", parts)
        cross = self.cross
        if exchanges.same_slot(source.event_id, target.event_id):
            result = await cross.season(
                source, target, order_id, ticket_ids, hold_id, ordinals, exchange_key, digest
            )
        else:
            result = await cross.saga(
                tenant_id, source, target, order_id, ticket_ids, seat_ids, hold_id, exchange_key, digest
            )
        record = exchanges.exchange_record(result.order, exchange_key)
        return ExchangeResult(result.order, record, result.replayed, result.new_order)

    def _exchange_target(
        self, ctx: LiveEvent, ticket_ids: Sequence[str], seat_ids: Sequence[str], hold_token: str
    ) -> tuple[str, list[int]]:
        """(hold id, "") or ("", ordinals of the new seats), checked against the tickets."""
        if not ticket_ids:
            raise InvalidRequest("ticket_ids", "name at least one ticket")
        if len(ticket_ids) > MAX_SEATS_PER_REQUEST:
            raise InvalidRequest("ticket_ids", f"at most {MAX_SEATS_PER_REQUEST} per exchange")
        if len(set(ticket_ids)) != len(ticket_ids):
            raise InvalidRequest("ticket_ids", "a ticket is listed twice")
        if bool(seat_ids) == bool(hold_token):
            raise InvalidRequest("seat_ids", "name either the new seats or a hold_token on them")
        if hold_token:
            hold_event, hold_id = parse_token(hold_token)
            if hold_event != ctx.event_id:
                raise InvalidRequest(
                    "hold_token",
                    f"the hold is not on event {ctx.event_id}, the event of the new seats "
                    "(another event: name it in target_event_id)",
                )
            return hold_id, []
        ordinals = self._sales.ordinals(ctx, seat_ids)
        if len(ordinals) != len(ticket_ids):
            raise InvalidRequest("seat_ids", f"name one new seat per ticket exchanged ({len(ticket_ids)})")
        return "", ordinals

    # -- resale --------------------------------------------------------------
    async def set_resale_rules(self, tenant_id: str, event_id: str, rules: ResaleRules) -> ResaleRules:
        ctx = await self._sales.context(tenant_id, event_id)
        if not 0 <= rules.floor <= MAX_PRICE:
            raise InvalidRequest("floor", f"must be 0-{MAX_PRICE} minor units")
        if not 0 <= rules.cap <= MAX_PRICE:
            raise InvalidRequest("cap", f"must be 0-{MAX_PRICE} minor units")
        if rules.cap and rules.cap < rules.floor:
            raise InvalidRequest("cap", "must be at least the floor (0: no cap)")
        meta, prices, ga_cap = (keys.event_key(ctx.event_id, n) for n in ("meta", "prices", "ga_cap"))
        fields: list[str | int] = [
            "resale", "allowed" if rules.allowed else "none", "resale_floor", rules.floor,
            "resale_cap", rules.cap,
        ]  # fmt: skip
        reply = await self._scripts.event_put([meta, prices, ga_cap], ["update", "", 3, *fields, "0", 0, 0])
        if reply == Reply.EVENT_NOT_FOUND:
            raise NotFound("event", ctx.event_id)
        if reply != Reply.OK:
            raise _unknown("event_put", reply)
        return rules

    async def resale_rules(self, tenant_id: str, event_id: str) -> ResaleRules:
        ctx = await self._sales.context(tenant_id, event_id)
        async with wrap_errors("read resale rules"):
            allowed, floor, cap = await self._r.hmget(
                keys.event_key(ctx.event_id, "meta"), ["resale", "resale_floor", "resale_cap"]
            )
        return ResaleRules(_text(allowed or "") == "allowed", int(floor or 0), int(cap or 0))

    async def _list(
        self, ctx: LiveEvent, op: str, order_id: str, ticket_id: str, revision: int, price: int, seller: str
    ) -> Order:
        if not order_id:
            raise InvalidRequest("order_id", "required")
        if not ticket_id:
            raise InvalidRequest("ticket_id", "required")
        args: list[str | int] = [op, order_id, ticket_id, revision, price, seller, new_id("l", 9)]
        args.append(str(ctx.ref.seat_map_version))  # the seat-map version fence (holds/lua/_layout.lua)
        reply = await self._scripts.resale_list.replicated(keys.after_sale_keys(ctx.event_id), args)
        self._inventory.moved(reply, ctx.event_id)
        match reply:
            case [Reply.OK, order_json]:
                return order_decoder.decode(order_json)
            case [Reply.RESALE_NOT_ALLOWED]:
                raise PreconditionFailed(f"event {ctx.event_id} does not allow resale", subject=ctx.event_id)
            case [Reply.PRICE_OUT_OF_RANGE, floor, cap]:
                limit = f"at least {int(floor)}" + (f" and at most {int(cap)}" if int(cap) else "")
                raise InvalidRequest(
                    "price", f"ticket {ticket_id}: a resale price must be {limit} minor units"
                )
            case [Reply.ALREADY_LISTED, ticket]:
                raise PreconditionFailed(f"ticket {_text(ticket)} is already listed", subject=_text(ticket))
        raise _ticket_error(reply, order_id) or _unknown("resale_list", reply)

    async def list_ticket(
        self,
        tenant_id: str,
        event_id: str,
        order_id: str,
        ticket_id: str,
        *,
        revision: int,
        price: int,
        seller_id: str,
    ) -> tuple[LiveEvent, Order]:
        ctx = await self._sales.context(tenant_id, event_id)
        if revision < 0:
            raise InvalidRequest("revision", "must not be negative")
        if not 0 <= price <= MAX_PRICE:
            raise InvalidRequest("price", f"ticket {ticket_id}: must be 0-{MAX_PRICE} minor units")
        if not 1 <= len(seller_id) <= 128:
            raise InvalidRequest("seller_id", "required, 1-128 characters")
        return ctx, await self._list(ctx, "list", order_id, ticket_id, revision, price, seller_id)

    async def withdraw_listing(
        self, tenant_id: str, event_id: str, order_id: str, ticket_id: str
    ) -> tuple[LiveEvent, Order]:
        ctx = await self._sales.context(tenant_id, event_id)
        return ctx, await self._list(ctx, "withdraw", order_id, ticket_id, -1, 0, "")

    async def listings(self, tenant_id: str, event_id: str) -> tuple[LiveEvent, list[tuple[str, Ticket]]]:
        """The event's listed tickets (at most MAX_LISTINGS), each with its order id."""
        ctx = await self._sales.context(tenant_id, event_id)
        index = keys.resale_keys(ctx.event_id)[0]
        out: list[tuple[str, Ticket]] = []
        async with wrap_errors("read listings"):
            listed = await self._r.hgetall(index)
            by_order: dict[str, set[str]] = {}
            for ticket_id, order_id in listed.items():
                by_order.setdefault(_text(order_id), set()).add(_text(ticket_id))
            order_ids = sorted(by_order)[:MAX_LISTINGS]
            raw = await self._r.hmget(keys.event_key(ctx.event_id, "orders"), order_ids) if order_ids else []
        for order_id, order_raw in zip(order_ids, raw, strict=True):
            if order_raw is None:
                continue
            for t in order_decoder.decode(order_raw).tickets:
                # the ticket is the truth: a listing withdrawn by a cancel or a scan is skipped
                if t.ticket_id in by_order[order_id] and t.status == "valid" and t.listing is not None:
                    out.append((order_id, t))
        out.sort(key=lambda item: (item[1].listing.listed_ms if item[1].listing else 0, item[1].ticket_id))
        return ctx, out[:MAX_LISTINGS]

    async def hold_listing(
        self, tenant_id: str, event_id: str, ticket_id: str, listing_id: str, buyer_id: str
    ) -> tuple[LiveEvent, ListingHold]:
        ctx = await self._sales.context(tenant_id, event_id)
        if not ticket_id:
            raise InvalidRequest("ticket_id", "required")
        if not listing_id:
            raise InvalidRequest("listing_id", "required")
        if len(buyer_id) > 128:
            raise InvalidRequest("buyer_id", "must be at most 128 characters")
        hold_id = new_id("rh", 9)
        reply = await self._scripts.resale_hold(
            keys.after_sale_keys(ctx.event_id), [ticket_id, listing_id, hold_id, buyer_id, ""]
        )  # '': no seat-map version (it names no ordinal); a move in chunks holds it off
        self._inventory.moved(reply, ctx.event_id)
        match reply:
            case [Reply.OK, expires, price, order_id]:
                token = listing_token(ctx.event_id, ticket_id, hold_id)
                return ctx, ListingHold(token, int(expires), int(price), _text(order_id))
        raise _ticket_error(reply, "") or _unknown("resale_hold", reply)

    async def commit_listing(
        self, tenant_id: str, token: str, resale_key: str, buyer: Buyer
    ) -> tuple[LiveEvent, ResaleResult, str]:
        """Buy a held listing: returns the resale, the order as it is now and the buyer's token."""
        check_order_input(resale_key, buyer)
        event_id, ticket_id, hold_id = parse_listing_token(token)
        ctx = await self._sales.context(tenant_id, event_id)
        if not buyer.name and not buyer.email:
            raise InvalidRequest("buyer", "name or email required")
        index = keys.resale_keys(ctx.event_id)[0]
        async with wrap_errors("read listing"):
            order_id = _text(await self._r.hget(index, ticket_id) or "")
        listing = None
        order: Order | None = None
        if order_id:
            order = await self._inventory.get_order(ctx.event_id, order_id)
            ticket = next((t for t in order.tickets if t.ticket_id == ticket_id), None)
            listing = ticket.listing if ticket is not None else None
        if order is None or listing is None or listing.hold_id != hold_id:
            # perhaps a retry of a committed purchase: the script answers it by key
            price, split = 0, Split(ctx.ref.currency, 0)
        else:
            price = listing.price
            split = resale_split(price, order.currency, order)
        args: list[EncodableArg] = [
            ticket_id, listing.listing_id if listing else "", hold_id, resale_key, new_id("rs", 12),
            json_encoder.encode(buyer), price, *split.parts(), str(ctx.ref.seat_map_version),
        ]  # fmt: skip
        reply = await self._scripts.resale_commit.replicated(keys.after_sale_keys(ctx.event_id), args)
        self._inventory.moved(reply, ctx.event_id)
        match reply:
            case [Reply.OK, resale_json, order_json, replayed]:
                resale = resale_decoder.decode(resale_json)
                result = ResaleResult(resale, order_decoder.decode(order_json), bool(replayed))
            case [Reply.HOLD_NOT_FOUND]:
                raise NotFound("hold", token)
            case [Reply.HOLD_EXPIRED]:
                raise HoldExpired("the hold on the listing has expired", subject=token)
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                raise InvalidRequest("resale_key", f"already used for resale {_text(other)} of another hold")
            case [Reply.REFUND_STALE, ticket]:
                raise PreconditionFailed(f"the listing of ticket {_text(ticket)} changed; hold it again")
            case _:
                raise _ticket_error(reply, order_id) or _unknown("resale_commit", reply)
        await self._to_seller_ledgers(tenant_id, ctx.event_id)
        # the revision the buyer holds, as the commit left it (a replay: as it is now)
        ticket = next(t for t in result.order.tickets if t.ticket_id == ticket_id)
        buyer_token = ""
        if ticket.revision == result.resale.revision:
            buyer_token, _ = await self._door.sign_ticket(tenant_id, ctx.event_id, result.order, ticket)
        return ctx, result, buyer_token

    async def _to_seller_ledgers(self, tenant_id: str, event_id: str) -> None:
        """Record the event's committed resales in their sellers' ledgers (this one and any
        an earlier call left due). The purchase is made whatever happens here: a failure
        leaves them due for the next commit of the event (or this one's retry)."""
        if self._native is None:
            return
        try:
            await asyncio.shield(self._native.settle(tenant_id, event_id))
        except StoreError as exc:
            log.warning("resale.ledger_deferred", event_id=event_id, error=str(exc))

    async def resales(self, tenant_id: str, event_id: str, start_ms: int, end_ms: int) -> list[Resale]:
        """The event's resales committed in [start_ms, end_ms): seller metrics read these."""
        ctx = await self._sales.context(tenant_id, event_id)
        records, index = keys.resale_keys(ctx.event_id)[1:3]
        async with wrap_errors("read resales"):
            ids = await self._r.zrangebyscore(index, start_ms, f"({end_ms}", start=0, num=MAX_LISTINGS)
            raw = await self._r.hmget(records, ids) if ids else []
        return [resale_decoder.decode(r) for r in raw if r is not None]


# the mappings holds/exchanges.py shares
ticket_error = _ticket_error
exchange_error = _exchange_error
unknown = _unknown
