"""Ticket types and promo codes: their definitions, and what a sale takes of them.

Definitions are rules/promos.py Structs stored as JSON: an event's ticket types
and its own promo codes in the event's slot (``holds/keys.py`` OFFER_KEY_NAMES),
an organizer-wide promo code in the organizer's slot (``tenant_promos``). Each
write is one script (``offer_put.lua``). At sale, the selling script
(``commit.lua``, ``box_office.lua`` with ``_offers.lua``) prices each place by
its type and takes the code's discount, checking the code's limits and
counting its use in the same script: an event's code can never be used more
often than it allows, whatever runs concurrently.

An organizer-wide code is valid at all of the organizer's events, whose keys
live in different slots of a Redis Cluster. Its uses are *claimed* first, one
at a time, by ``promo_claim.lua`` in the organizer's slot (which refuses a claim
beyond the code's total or per-buyer maximum), then applied by the event's
commit; a commit that refused it (or replayed an earlier order) gives the claim
back, one whose outcome is unknown keeps it. Uses can so never exceed the
maximum; a process that dies between claim and give-back, or a commit whose
outcome is unknown and that did not apply, leaves one use counted that no order
made (docs/selling.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from holds import keys
from holds.errors import (
    AlreadyExists,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from holds.records import Order, json_encoder, order_decoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from rules.errors import InvalidOffer
from rules.promos import (
    MAX_TYPES_PER_EVENT,
    Channel,
    PromoCode,
    TicketType,
    check_promo,
    check_type,
    promo_decoder,
    promo_window,
    ticket_type_decoder,
)

if TYPE_CHECKING:  # holds.live imports holds.inventory, which imports this module
    from holds.live import LiveEvent, LiveEvents

MAX_PROMOS = 10_000  # codes per event, and organizer-wide codes per organizer
MAX_CODE_TEXT = 32
BACKLOG_PER_CALL = 64  # cancelled orders' organizer-wide give-backs settled per call


class SaleOffer(msgspec.Struct, frozen=True, omit_defaults=True):
    """What the selling script applies (``_offers.lua``): types by seat ordinal and by
    GA area, the promo code, the access code, and an organizer-wide code's definition."""

    seats: dict[str, str] = {}  # ordinal (as text) -> type id
    ga: dict[str, dict[str, int]] = {}  # area -> type id -> places
    promo: str = ""
    access: str = ""
    org_promo: str = ""  # the organizer-wide definition (JSON), when the code is one
    # "<total|buyer>:<maximum>" when its claim was refused: the script answers that, after a
    # replay of the idempotency key (a retry of a commit that used the code's last use)
    org_used_up: str = ""
    org_buyer: str = ""  # the buyer an organizer-wide code's claim counted ("" none), kept on the order


@dataclass(frozen=True)
class OfferChoice:
    """What a storefront or the box office names at sale, in API terms."""

    seat_types: Mapping[str, str] = field(default_factory=dict)  # seat id -> type id
    ga_types: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # area -> type -> places
    promo_code: str = ""
    access_code: str = ""

    def __bool__(self) -> bool:
        return bool(self.seat_types or self.ga_types or self.promo_code)

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"types": dict(sorted(self.seat_types.items())),
                "ga_types": {a: dict(sorted(t.items())) for a, t in sorted(self.ga_types.items())},
                "promo": self.promo_code, "access": self.access_code}  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One use of an organizer-wide code claimed in the organizer's slot (give it back
    with :meth:`Offers.give_back` when the sale did not use it)."""

    tenant_id: str
    code: str
    buyer: str


@dataclass(frozen=True)
class PromoInfo:
    promo: PromoCode
    uses: int  # orders that used it (organizer-wide: claimed uses, every event)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _offer_error(exc: InvalidOffer, prefix: str) -> InvalidRequest:
    return InvalidRequest(f"{prefix}.{exc.field}", exc.problem)


def _check_code_text(value: str, field_name: str) -> None:
    if len(value) > MAX_CODE_TEXT:
        raise InvalidRequest(field_name, f"at most {MAX_CODE_TEXT} characters")


def offer_error(reply: Any, *, seat_of: Mapping[int, str] | None = None) -> StoreError | None:
    """The error of one of ``_offers.lua``'s replies (None: not one of them); ``seat_of``
    names seats by ordinal."""
    match reply:
        case [Reply.TYPE_UNKNOWN, type_id]:
            return InvalidRequest("ticket_types", f"unknown ticket type {_text(type_id)!r}")
        case [Reply.TYPE_NOT_OFFERED, type_id, why]:
            kind, _, what = _text(why).partition(":")
            where = f"on the {what} channel" if kind == "channel" else f"for category {what!r}"
            return InvalidRequest("ticket_types", f"ticket type {_text(type_id)!r} is not sold {where}")
        case [Reply.TYPE_LIMIT, type_id, most]:
            return InvalidRequest(
                "ticket_types", f"at most {int(most)} ticket(s) of type {_text(type_id)!r} per order"
            )
        case [Reply.PROMO_UNKNOWN, code]:
            return InvalidRequest("promo_code", f"unknown promo code {_text(code)!r}")
        case [Reply.PROMO_INACTIVE, code, why]:
            text = {"disabled": "is disabled", "not_yet": "is not valid yet", "expired": "has expired"}
            return PreconditionFailed(
                f"promo_code {_text(code)!r} {text.get(_text(why), _text(why))}", subject=_text(code)
            )
        case [Reply.PROMO_MIN_QUANTITY, code, least]:
            return PreconditionFailed(
                f"promo_code {_text(code)!r} needs at least {int(least)} place(s) in the order",
                subject=_text(code),
            )
        case [Reply.PROMO_USED_UP, code, scope, most]:
            whose = "in total" if _text(scope) == "total" else "by this buyer"
            return PreconditionFailed(
                f"promo_code {_text(code)!r} is used up: at most {int(most)} use(s) {whose}",
                subject=_text(code),
            )
        case [Reply.SELECTION_INVALID, kind, what]:
            match _text(kind):
                case "seat":
                    seat = (seat_of or {}).get(int(what), _text(what))
                    return InvalidRequest(f"ticket_types[{seat}]", "the seat is not in this sale")
                case "ga":
                    return InvalidRequest(
                        f"ga_ticket_types[{_text(what)}]", "more typed places than the sale has in the area"
                    )
                case _:
                    return InvalidRequest(
                        "buyer_id", f"promo code {_text(what)!r} limits uses per buyer: hold with a buyer_id"
                    )
    return None


class Offers:
    def __init__(self, client: AnyRedis, scripts: ScriptRegistry, live: LiveEvents) -> None:
        self._client = client
        self._scripts = scripts
        self._live = live

    # -- definitions -------------------------------------------------------------
    async def _put(
        self, defs_key: str, meta_key: str, mode: Literal["create", "update", "disable"], item_id: str,
        definition: bytes, *, check_event: bool, most: int, resource: str, owner: str,
    ) -> bytes:  # fmt: skip
        where = "event" if check_event else "organizer"
        reply = await self._scripts.offer_put(
            [defs_key, meta_key], [mode, item_id, definition, 1 if check_event else 0, most]
        )
        match reply:
            case [Reply.OK, raw]:
                return raw if isinstance(raw, bytes) else str(raw).encode()
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", owner)
            case [Reply.OFFER_EXISTS, _]:
                raise AlreadyExists(resource, item_id)
            case [Reply.OFFER_NOT_FOUND, _]:
                raise NotFound(resource, item_id)
            case [Reply.LIMIT_EXCEEDED, _, maximum]:
                raise PreconditionFailed(f"at most {int(maximum)} {resource}s per {where}", subject=owner)
        raise StoreError(f"offer_put returned an unknown result {reply!r}")

    async def put_type(
        self, tenant_id: str, event_id: str, ticket_type: TicketType, mode: Literal["create", "update"]
    ) -> TicketType:
        ctx = await self._live.get(tenant_id, event_id)
        try:
            check_type(ticket_type)
        except InvalidOffer as exc:
            raise _offer_error(exc, "ticket_type") from exc
        unknown = sorted(set(ticket_type.prices) - set(ctx.loaded.version.stats.categories))
        if unknown:
            raise InvalidRequest(
                f"ticket_type.prices[{unknown[0]}]", "no such category in the event's seat map"
            )
        raw = await self._put(
            keys.offer_keys(ctx.event_id)[0], keys.event_key(ctx.event_id, "meta"), mode,
            ticket_type.type_id, json_encoder.encode(ticket_type), check_event=True,
            most=MAX_TYPES_PER_EVENT, resource="ticket type", owner=ctx.event_id,
        )  # fmt: skip
        return ticket_type_decoder.decode(raw)

    async def disable_type(self, tenant_id: str, event_id: str, type_id: str) -> TicketType:
        ctx = await self._live.get(tenant_id, event_id)
        raw = await self._put(
            keys.offer_keys(ctx.event_id)[0], keys.event_key(ctx.event_id, "meta"), "disable", type_id, b"",
            check_event=True, most=MAX_TYPES_PER_EVENT, resource="ticket type", owner=ctx.event_id,
        )  # fmt: skip
        return ticket_type_decoder.decode(raw)

    async def list_types(self, tenant_id: str, event_id: str) -> list[TicketType]:
        ctx = await self._live.get(tenant_id, event_id)
        async with wrap_errors("list ticket types"):
            raw = await self._client.hvals(keys.offer_keys(ctx.event_id)[0])
        return sorted((ticket_type_decoder.decode(r) for r in raw), key=lambda t: t.type_id)

    async def offered_types(
        self, tenant_id: str, event_id: str, *, access_code: str = "", channel: Channel = "storefront"
    ) -> list[TicketType]:
        """The types a sale on ``channel`` may name: enabled ones, hidden ones only with their code."""
        _check_code_text(access_code, "access_code")
        return [
            t
            for t in await self.list_types(tenant_id, event_id)
            if not t.disabled and channel in t.channels and t.access_code in ("", access_code)
        ]

    def _promo_keys(self, tenant_id: str, event_id: str) -> tuple[str, str, str]:
        """(definitions, meta or definitions, uses) of an event's codes or, for "", the organizer's."""
        if event_id:
            _, promos, uses = keys.offer_keys(event_id)
            return promos, keys.event_key(event_id, "meta"), uses
        return keys.tenant_promos(tenant_id), keys.tenant_promos(tenant_id), keys.tenant_promo_uses(tenant_id)

    async def put_promo(
        self, tenant_id: str, event_id: str, promo: PromoCode, mode: Literal["create", "update"]
    ) -> PromoCode:
        """An event's own code (``event_id``), or an organizer-wide one (``event_id`` "")."""
        if event_id:
            event_id = (await self._live.get(tenant_id, event_id)).event_id
        promo = msgspec.structs.replace(promo, scope="event" if event_id else "organizer")
        try:
            check_promo(promo)
        except InvalidOffer as exc:
            raise _offer_error(exc, "promo_code") from exc
        defs, meta, _ = self._promo_keys(tenant_id, event_id)
        raw = await self._put(
            defs, meta, mode, promo.code, json_encoder.encode(promo), check_event=bool(event_id),
            most=MAX_PROMOS, resource="promo code", owner=event_id or tenant_id,
        )  # fmt: skip
        return promo_decoder.decode(raw)

    async def disable_promo(self, tenant_id: str, event_id: str, code: str) -> PromoCode:
        if event_id:
            event_id = (await self._live.get(tenant_id, event_id)).event_id
        _check_code_text(code, "code")
        defs, meta, _ = self._promo_keys(tenant_id, event_id)
        raw = await self._put(
            defs, meta, "disable", code, b"", check_event=bool(event_id), most=MAX_PROMOS,
            resource="promo code", owner=event_id or tenant_id,
        )  # fmt: skip
        return promo_decoder.decode(raw)

    async def list_promos(self, tenant_id: str, event_id: str) -> list[PromoInfo]:
        if event_id:
            event_id = (await self._live.get(tenant_id, event_id)).event_id
        defs, _, uses_key = self._promo_keys(tenant_id, event_id)
        async with wrap_errors("list promo codes"):
            raw = await self._client.hvals(defs)
            promos = sorted((promo_decoder.decode(r) for r in raw), key=lambda p: p.code)
            counts = await self._client.hmget(uses_key, [p.code for p in promos]) if promos else []
        return [PromoInfo(p, int(n or 0)) for p, n in zip(promos, counts, strict=True)]

    # -- at sale -------------------------------------------------------------------
    async def prepare(
        self,
        tenant_id: str,
        ctx: LiveEvent,
        choice: OfferChoice,
        *,
        buyer: Callable[[], Awaitable[str]],
        now_ms: int,
        events: Sequence[str] = (),
    ) -> tuple[SaleOffer, Claim | None]:
        """The script's offer for ``choice``; an organizer-wide code's use claimed (None: none).

        ``buyer``: the sale's buyer id ("" anonymous), asked only to claim an organizer-wide code.
        ``events``: the events the sale makes orders in (a season commit, holds/seasons.py; none:
        ``ctx``'s): the organizer's code is claimed once unless every one has its own code."""
        index = ctx.loaded.index
        seats: dict[str, str] = {}
        for seat_id, type_id in choice.seat_types.items():
            if seat_id not in index.ordinal_of:
                raise InvalidRequest(f"ticket_types[{seat_id}]", "unknown seat")
            _check_code_text(type_id, f"ticket_types[{seat_id}]")
            if type_id:
                seats[str(index.ordinal_of[seat_id])] = type_id
        ga: dict[str, dict[str, int]] = {}
        for area, by_type in choice.ga_types.items():
            if area not in index.ga_areas:
                raise InvalidRequest(f"ga_ticket_types[{area}]", "no such general admission area")
            for type_id, qty in by_type.items():
                _check_code_text(type_id, f"ga_ticket_types[{area}]")
                if not type_id or not 1 <= qty <= 10_000:
                    raise InvalidRequest(f"ga_ticket_types[{area}]", "a type id and 1-10000 places")
                ga.setdefault(area, {})[type_id] = qty
        _check_code_text(choice.promo_code, "promo_code")
        _check_code_text(choice.access_code, "access_code")
        org_promo, used_up, claim = "", "", None
        if choice.promo_code:
            org_promo, used_up, claim = await self._organizer_code(
                tenant_id, events or [ctx.event_id], choice.promo_code, buyer, now_ms
            )
        offer = SaleOffer(
            seats, ga, choice.promo_code, choice.access_code, org_promo, used_up, claim.buyer if claim else ""
        )
        return offer, claim

    async def _organizer_code(
        self,
        tenant_id: str,
        event_ids: Sequence[str],
        code: str,
        buyer: Callable[[], Awaitable[str]],
        now_ms: int,
    ) -> tuple[str, str, Claim | None]:
        """An organizer-wide code's definition, why its claim was refused ("" none) and the
        claimed use, unless every event has a code of that name (the event's own wins) or the
        organizer has none."""
        async with wrap_errors("read promo code"):
            for event_id in event_ids:
                if not await self._client.hexists(keys.offer_keys(event_id)[1], code):
                    break
            else:
                return "", "", None
            raw = await self._client.hget(keys.tenant_promos(tenant_id), code)
        if raw is None:
            return "", "", None  # the script answers PROMO_UNKNOWN
        promo = promo_decoder.decode(raw)
        state = promo_window(promo, now_ms)
        if state != "active":
            return _text(raw), "", None  # the script answers why, on Redis's clock
        buyer_id = await buyer() if promo.max_uses_per_buyer else ""
        if promo.max_uses_per_buyer and not buyer_id:
            raise InvalidRequest(
                "buyer_id", f"promo code {code!r} limits uses per buyer: hold with a buyer_id"
            )
        reply = await self._scripts.promo_claim(
            [keys.tenant_promos(tenant_id), keys.tenant_promo_uses(tenant_id)], [code, buyer_id, 1]
        )
        match reply:
            case [Reply.OK, _]:
                return _text(raw), "", Claim(tenant_id, code, buyer_id)
            case [Reply.PROMO_USED_UP, _, scope, most]:
                return _text(raw), f"{_text(scope)}:{int(most)}", None
        raise offer_error(reply) or StoreError(f"promo_claim returned an unknown result {reply!r}")

    async def give_back(self, claim: Claim | None) -> None:
        """Return a claimed use the sale did not make (a failed or replayed commit)."""
        if claim is None:
            return
        await self._scripts.promo_claim(
            [keys.tenant_promos(claim.tenant_id), keys.tenant_promo_uses(claim.tenant_id)],
            [claim.code, claim.buyer, -1],
        )

    # -- a cancelled order's use, given back ---------------------------------------
    async def _return_use(self, tenant_id: str, event_id: str, order: Order) -> bool:
        """Give back, once, the use a wholly cancelled order made of an organizer-wide code
        (``promo_return.lua`` in the organizer's slot), then drop the order from its event's
        backlog. True when this call gave it back (False: an earlier one had, or, for an
        order of a season order, another of its orders is not cancelled yet)."""
        ref = f"{event_id}/{order.order_id}"
        if order.promo_scope == "season":  # one use for the whole season order
            ref = await self._season_ref(event_id, order)
        given = 0
        if ref:
            reply = await self._scripts.promo_return(
                [keys.tenant_promo_uses(tenant_id), keys.tenant_promo_returns(tenant_id)],
                [order.promo_code, order.promo_buyer, ref],
            )
            match reply:
                case [Reply.OK, given]:
                    pass
                case _:
                    raise StoreError(f"promo_return returned an unknown result {reply!r}")
        async with wrap_errors("promo give-back backlog"):
            await self._client.zrem(keys.promo_back_keys(event_id)[1], order.order_id)
        return bool(given)

    async def _season_ref(self, event_id: str, order: Order) -> str:
        """The give-back's reference of a cancelled order's season order ("season:<season>/<season
        order>", once per season order), or "" while another of its orders is not wholly
        cancelled: its own cancel, later, finds them all cancelled (a cancelled order stays so),
        so the last cancel's give-back returns the use whatever the interleaving."""
        season_id = event_id.partition(keys.SEASON_SEPARATOR)[0]
        async with wrap_errors("read season order"):
            raw = await self._client.hget(keys.season_keys(season_id)[2], order.season_order_id)
            lines = _season_lines.decode(raw).orders if raw is not None else []
            if not isinstance(lines, list):
                lines = []
            async with self._client.pipeline(transaction=False) as pipe:
                for line in lines:  # the season's slot: one round trip
                    pipe.hget(keys.event_key(line.event_id, "orders"), line.order_id)
                orders: list[bytes | None] = await pipe.execute() if lines else []
        for got in orders:
            if got is not None and order_decoder.decode(got).status != "cancelled":
                return ""
        return f"season:{season_id}/{order.season_order_id}"

    async def settle_returns(self, tenant_id: str, event_id: str, limit: int = BACKLOG_PER_CALL) -> int:
        """Give back the organizer-wide codes' uses of the event's wholly cancelled orders still
        in its backlog (at most ``limit``): what a cancel left when its process died before its
        own give-back. Returns how many this call gave back."""
        backlog = keys.promo_back_keys(event_id)[1]
        async with wrap_errors("promo give-back backlog"):
            ids = await self._client.zrange(backlog, 0, limit - 1)
            raw = await self._client.hmget(keys.event_key(event_id, "orders"), ids) if ids else []
        given = 0
        for order_id, order_raw in zip(ids, raw, strict=True):
            if order_raw is None:  # erased or never there: nothing to give back
                async with wrap_errors("promo give-back backlog"):
                    await self._client.zrem(backlog, order_id)
                continue
            given += await self._return_use(tenant_id, event_id, order_decoder.decode(order_raw))
        return given


class _SeasonLine(msgspec.Struct, frozen=True):
    event_id: str
    order_id: str


class _SeasonOrderLines(msgspec.Struct, frozen=True):
    """What a give-back reads of a season order (holds/seasons.py SeasonOrderRecord)."""

    orders: list[_SeasonLine] | dict[str, str] = []  # cjson writes an empty list as {}


_season_lines = msgspec.json.Decoder(_SeasonOrderLines)


def seat_names(ctx: LiveEvent, choice: OfferChoice) -> dict[int, str]:
    """Ordinal -> seat id of the seats a choice names (to name them in errors)."""
    index = ctx.loaded.index.ordinal_of
    return {index[s]: s for s in choice.seat_types if s in index}


def choice_of(
    choices: Sequence[tuple[str, str, int, str]], promo_code: str, access_code: str
) -> OfferChoice | None:
    """An OfferChoice from the API's list of (seat id, GA area, places, type id), GA places
    summed per area and type; None when nothing is chosen (a plain sale)."""
    seats: dict[str, str] = {}
    ga: dict[str, dict[str, int]] = {}
    for i, (seat_id, area, qty, type_id) in enumerate(choices):
        where = f"ticket_types[{i}]"
        if not type_id:
            raise InvalidRequest(f"{where}.ticket_type", "required")
        if bool(seat_id) == bool(area):
            raise InvalidRequest(where, "name a seat_id or a ga_area_id, not both")
        if seat_id:
            if qty not in (0, 1):
                raise InvalidRequest(f"{where}.quantity", "a seat is one place (0 or 1)")
            if seat_id in seats:
                raise InvalidRequest(f"ticket_types[{seat_id}]", "the seat is named twice")
            seats[seat_id] = type_id
        else:
            if not 1 <= qty <= 10_000:
                raise InvalidRequest(f"{where}.quantity", "1-10000 places")
            by_type = ga.setdefault(area, {})
            by_type[type_id] = by_type.get(type_id, 0) + qty
    choice = OfferChoice(seats, ga, promo_code, access_code)
    if not choice:
        if access_code:
            _check_code_text(access_code, "access_code")
        return None
    return choice
