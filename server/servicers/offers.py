"""seatwise.v1.OfferService: thin translation onto holds.offers (ticket types and promo codes).

Organizers define an event's ticket types and promo codes (or organizer-wide
codes, ``event_id`` ""); storefronts and the box office list the types they may
offer. The selling scripts apply them at sale (docs/selling.md).
"""

from __future__ import annotations

from typing import Literal

from seatwise.v1 import events_pb2, offers_pb2, offers_pb2_grpc, sales_pb2

from holds.errors import InvalidRequest
from holds.offers import Offers, PromoInfo
from rules.promos import CHANNELS, Channel, PromoCode, PromoKind, TicketType
from server.auth import ORGANIZER, SALES, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context
from server.servicers.convert import CHANNEL_PB, millis_of, ts

_CHANNEL_OF: dict[int, Channel] = {
    sales_pb2.SALES_CHANNEL_STOREFRONT: "storefront",
    sales_pb2.SALES_CHANNEL_BOX_OFFICE: "box_office",
}
_KIND_OF: dict[int, PromoKind] = {
    offers_pb2.PROMO_KIND_PERCENT: "percent",
    offers_pb2.PROMO_KIND_AMOUNT: "amount",
}
_KIND_PB: dict[str, offers_pb2.PromoKind.ValueType] = {
    "percent": offers_pb2.PROMO_KIND_PERCENT,
    "amount": offers_pb2.PROMO_KIND_AMOUNT,
}


def _channel(value: int, field: str) -> Channel:
    if value == sales_pb2.SALES_CHANNEL_UNSPECIFIED:
        return "storefront"
    if value not in _CHANNEL_OF:
        raise InvalidRequest(field, "unknown sales channel")
    return _CHANNEL_OF[value]


def type_of(t: offers_pb2.TicketType) -> TicketType:
    prices: dict[str, int] = {}
    for p in t.prices:
        if p.category in prices:
            raise InvalidRequest(f"ticket_type.prices[{p.category}]", "the category is listed twice")
        prices[p.category] = p.amount_minor
    channels = [_channel(c, "ticket_type.channels") for c in t.channels] or list(CHANNELS)
    return TicketType(
        type_id=t.type_id, name=t.name, prices=prices, max_per_order=t.max_per_order,
        channels=channels, access_code=t.access_code, disabled=t.disabled,
    )  # fmt: skip


def type_pb(t: TicketType) -> offers_pb2.TicketType:
    return offers_pb2.TicketType(
        type_id=t.type_id, name=t.name,
        prices=[events_pb2.CategoryPrice(category=c, amount_minor=a) for c, a in sorted(t.prices.items())],
        max_per_order=t.max_per_order, channels=[CHANNEL_PB[c] for c in t.channels],
        access_code=t.access_code, disabled=t.disabled,
    )  # fmt: skip


def _since(p: offers_pb2.PromoCode, field: str) -> int:
    """A promo code's validity bound in ms (0: none)."""
    if not p.HasField(field):  # type: ignore[arg-type]
        return 0
    return millis_of(getattr(p, field), f"promo_code.{field}", since_1970=True)


def promo_of(p: offers_pb2.PromoCode) -> PromoCode:
    if p.kind not in _KIND_OF:
        raise InvalidRequest("promo_code.kind", "percent or amount")
    return PromoCode(
        code=p.code, kind=_KIND_OF[p.kind], bps=p.percent_bps, amount=p.amount_minor,
        valid_from_ms=_since(p, "valid_from"), valid_until_ms=_since(p, "valid_until"),
        min_quantity=p.min_quantity, max_uses=p.max_uses, max_uses_per_buyer=p.max_uses_per_buyer,
        disabled=p.disabled,
    )  # fmt: skip


def promo_pb(p: PromoCode, uses: int = 0) -> offers_pb2.PromoCode:
    out = offers_pb2.PromoCode(
        code=p.code, kind=_KIND_PB[p.kind], percent_bps=p.bps, amount_minor=p.amount,
        min_quantity=p.min_quantity, max_uses=p.max_uses, max_uses_per_buyer=p.max_uses_per_buyer,
        disabled=p.disabled, organizer_wide=p.scope == "organizer", uses=uses,
    )  # fmt: skip
    if p.valid_from_ms:
        out.valid_from.CopyFrom(ts(p.valid_from_ms))
    if p.valid_until_ms:
        out.valid_until.CopyFrom(ts(p.valid_until_ms))
    return out


def _mode(name: str) -> Literal["create", "update"]:
    return "create" if name == "create" else "update"


class OfferServicer(offers_pb2_grpc.OfferServiceServicer):
    def __init__(self, offers: Offers) -> None:
        self._offers = offers

    async def _put_type(self, request: offers_pb2.PutTicketTypeRequest, mode: str) -> offers_pb2.TicketType:
        if not request.HasField("ticket_type"):
            raise InvalidRequest("ticket_type", "required")
        tenant = current_principal().require_tenant()
        return type_pb(
            await self._offers.put_type(tenant, request.event_id, type_of(request.ticket_type), _mode(mode))
        )

    async def CreateTicketType(
        self, request: offers_pb2.PutTicketTypeRequest, context: Context
    ) -> offers_pb2.TicketType:
        return await self._put_type(request, "create")

    async def UpdateTicketType(
        self, request: offers_pb2.PutTicketTypeRequest, context: Context
    ) -> offers_pb2.TicketType:
        return await self._put_type(request, "update")

    async def DisableTicketType(
        self, request: offers_pb2.DisableTicketTypeRequest, context: Context
    ) -> offers_pb2.TicketType:
        tenant = current_principal().require_tenant()
        return type_pb(await self._offers.disable_type(tenant, request.event_id, request.type_id))

    async def ListTicketTypes(
        self, request: offers_pb2.ListTicketTypesRequest, context: Context
    ) -> offers_pb2.ListTicketTypesResponse:
        types = await self._offers.list_types(current_principal().require_tenant(), request.event_id)
        return offers_pb2.ListTicketTypesResponse(ticket_types=[type_pb(t) for t in types])

    async def ListOfferedTicketTypes(
        self, request: offers_pb2.ListOfferedTicketTypesRequest, context: Context
    ) -> offers_pb2.ListTicketTypesResponse:
        types = await self._offers.offered_types(
            current_principal().require_tenant(), request.event_id,
            access_code=request.access_code, channel=_channel(request.channel, "channel"),
        )  # fmt: skip
        return offers_pb2.ListTicketTypesResponse(ticket_types=[type_pb(t) for t in types])

    async def _put_promo(self, request: offers_pb2.PutPromoCodeRequest, mode: str) -> offers_pb2.PromoCode:
        if not request.HasField("promo_code"):
            raise InvalidRequest("promo_code", "required")
        tenant = current_principal().require_tenant()
        return promo_pb(
            await self._offers.put_promo(tenant, request.event_id, promo_of(request.promo_code), _mode(mode))
        )

    async def CreatePromoCode(
        self, request: offers_pb2.PutPromoCodeRequest, context: Context
    ) -> offers_pb2.PromoCode:
        return await self._put_promo(request, "create")

    async def UpdatePromoCode(
        self, request: offers_pb2.PutPromoCodeRequest, context: Context
    ) -> offers_pb2.PromoCode:
        return await self._put_promo(request, "update")

    async def DisablePromoCode(
        self, request: offers_pb2.DisablePromoCodeRequest, context: Context
    ) -> offers_pb2.PromoCode:
        tenant = current_principal().require_tenant()
        return promo_pb(await self._offers.disable_promo(tenant, request.event_id, request.code))

    async def ListPromoCodes(
        self, request: offers_pb2.ListPromoCodesRequest, context: Context
    ) -> offers_pb2.ListPromoCodesResponse:
        infos: list[PromoInfo] = await self._offers.list_promos(
            current_principal().require_tenant(), request.event_id
        )
        return offers_pb2.ListPromoCodesResponse(promo_codes=[promo_pb(i.promo, i.uses) for i in infos])


OFFER_SERVICE = ServiceDeclaration(
    descriptor=offers_pb2.DESCRIPTOR.services_by_name["OfferService"],
    add_to_server=offers_pb2_grpc.add_OfferServiceServicer_to_server,
    factory=lambda stores: OfferServicer(stores.offers),
    methods={
        "CreateTicketType": MethodRule(ORGANIZER),
        "UpdateTicketType": MethodRule(ORGANIZER),
        "DisableTicketType": MethodRule(ORGANIZER),
        "ListTicketTypes": MethodRule(ORGANIZER),
        "ListOfferedTicketTypes": MethodRule(SALES),  # storefronts and the box office browse
        "CreatePromoCode": MethodRule(ORGANIZER),
        "UpdatePromoCode": MethodRule(ORGANIZER),
        "DisablePromoCode": MethodRule(ORGANIZER),
        "ListPromoCodes": MethodRule(ORGANIZER),
    },
)
