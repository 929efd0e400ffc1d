"""seatwise.v1.AfterSaleService: thin translation onto holds.aftersale."""

from __future__ import annotations

import time

from seatwise.v1 import aftersale_pb2, aftersale_pb2_grpc, sales_pb2

from holds.aftersale import AfterSale, ResaleRules
from holds.errors import InvalidRequest
from holds.live import LiveEvent
from holds.records import Buyer, Order, Resale, Ticket
from server.admission import Admit
from server.auth import BOX_OFFICE, BROWSE, ORGANIZER, REPORTING, SALES, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context
from server.servicers.convert import buyer_of, millis_of, order_pb


def _holder(field: str, b: sales_pb2.BuyerDetails) -> Buyer:
    buyer = buyer_of(b)
    if not buyer.name and not buyer.email:
        raise InvalidRequest(field, "name or email required")
    return buyer


def listing_pb(ctx: LiveEvent, order_id: str, t: Ticket, now_ms: int) -> aftersale_pb2.Listing:
    listing = t.listing
    out = aftersale_pb2.Listing(order_id=order_id, ticket_id=t.ticket_id, category=t.category)
    if t.seat is not None:
        out.seat_id = ctx.loaded.index.placed[t.seat].seat.id
    out.ga_area_id = t.ga_area or ""
    if listing is not None:
        out.listing_id = listing.listing_id
        out.price.amount_minor = listing.price
        out.price.currency = ctx.ref.currency
        out.seller_id = listing.seller_id
        out.listed_at.FromMilliseconds(listing.listed_ms)
        out.held = bool(listing.hold_id) and listing.hold_expires_ms > now_ms
    return out


def resale_pb(r: Resale) -> aftersale_pb2.Resale:
    out = aftersale_pb2.Resale(
        resale_id=r.resale_id, order_id=r.order_id, ticket_id=r.ticket_id, listing_id=r.listing_id,
        seller_id=r.seller_id, buyer_id=r.buyer_id, revision=r.revision,
    )  # fmt: skip
    out.price.amount_minor, out.price.currency = r.price, r.currency
    out.seller_payout.amount_minor, out.seller_payout.currency = r.seller_payout, r.currency
    f = out.fees
    f.ticket_fee_rate, f.ticket_fee_fixed = r.ticket_fee_rate, r.ticket_fee_fixed
    f.processing_fee_rate, f.processing_fee_fixed = r.processing_fee_rate, r.processing_fee_fixed
    f.platform_fee = r.price - r.seller_payout
    f.organizer_share = r.seller_payout  # the seller's share: the organizer's is nothing on a resale
    out.listed_at.FromMilliseconds(r.listed_ms)
    out.accepted_at.FromMilliseconds(r.accepted_ms)
    out.delivered_at.FromMilliseconds(r.delivered_ms)
    return out


def _listing_of(ctx: LiveEvent, order: Order, ticket_id: str) -> aftersale_pb2.ListingResponse:
    out = aftersale_pb2.ListingResponse(order=order_pb(ctx, order))
    ticket = next((t for t in order.tickets if t.ticket_id == ticket_id), None)
    if ticket is not None and ticket.listing is not None:
        out.listing.CopyFrom(listing_pb(ctx, order.order_id, ticket, 0))
    return out


def rules_pb(event_id: str, rules: ResaleRules) -> aftersale_pb2.ResaleRules:
    return aftersale_pb2.ResaleRules(
        event_id=event_id, allowed=rules.allowed, floor=rules.floor, cap=rules.cap
    )


class AfterSaleServicer(aftersale_pb2_grpc.AfterSaleServiceServicer):
    def __init__(self, after_sale: AfterSale) -> None:
        self._after = after_sale

    async def TransferTicket(
        self, request: aftersale_pb2.TransferTicketRequest, context: Context
    ) -> aftersale_pb2.TransferTicketResponse:
        ctx, order, token = await self._after.transfer(
            current_principal().require_tenant(), request.event_id, request.order_id, request.ticket_id,
            request.revision, _holder("new_holder", request.new_holder),
        )  # fmt: skip
        revision = next(t.revision for t in order.tickets if t.ticket_id == request.ticket_id)
        return aftersale_pb2.TransferTicketResponse(
            order=order_pb(ctx, order), token=token, revision=revision
        )

    async def ExchangeTickets(
        self, request: aftersale_pb2.ExchangeTicketsRequest, context: Context
    ) -> aftersale_pb2.ExchangeTicketsResponse:
        tenant = current_principal().require_tenant()
        ctx, result = await self._after.exchange(
            tenant, request.event_id, request.order_id, list(request.ticket_ids),
            seat_ids=list(request.seat_ids), hold_token=request.hold_token, exchange_key=request.exchange_key,
            target_event_id=request.target_event_id,
        )  # fmt: skip
        x, currency = result.exchange, result.order.currency
        record = aftersale_pb2.ExchangeRecord(
            exchange_id=x.exchange_id, from_ticket_ids=list(x.from_tickets), to_ticket_ids=list(x.to_tickets),
            target_event_id=x.target_event_id, target_order_id=x.target_order_id,
        )  # fmt: skip
        record.difference.amount_minor, record.difference.currency = x.difference, currency
        record.fee_difference.amount_minor, record.fee_difference.currency = x.fee_difference, currency
        record.created_at.FromMilliseconds(x.created_ms)
        out = aftersale_pb2.ExchangeTicketsResponse(
            order=order_pb(ctx, result.order), exchange=record, replayed=result.replayed
        )
        if result.new_order is not None:
            target = await self._after.event(tenant, x.target_event_id)
            out.new_order.CopyFrom(order_pb(target, result.new_order))
        return out

    async def SetResaleRules(
        self, request: aftersale_pb2.SetResaleRulesRequest, context: Context
    ) -> aftersale_pb2.ResaleRules:
        rules = ResaleRules(request.allowed, request.floor, request.cap)
        tenant = current_principal().require_tenant()
        return rules_pb(request.event_id, await self._after.set_resale_rules(tenant, request.event_id, rules))

    async def GetResaleRules(
        self, request: aftersale_pb2.GetResaleRulesRequest, context: Context
    ) -> aftersale_pb2.ResaleRules:
        tenant = current_principal().require_tenant()
        return rules_pb(request.event_id, await self._after.resale_rules(tenant, request.event_id))

    async def ListTicketForResale(
        self, request: aftersale_pb2.ListTicketForResaleRequest, context: Context
    ) -> aftersale_pb2.ListingResponse:
        ctx, order = await self._after.list_ticket(
            current_principal().require_tenant(), request.event_id, request.order_id, request.ticket_id,
            revision=request.revision, price=request.price, seller_id=request.seller_id,
        )  # fmt: skip
        return _listing_of(ctx, order, request.ticket_id)

    async def WithdrawListing(
        self, request: aftersale_pb2.WithdrawListingRequest, context: Context
    ) -> aftersale_pb2.ListingResponse:
        ctx, order = await self._after.withdraw_listing(
            current_principal().require_tenant(), request.event_id, request.order_id, request.ticket_id
        )
        return _listing_of(ctx, order, request.ticket_id)

    async def ListListings(
        self, request: aftersale_pb2.ListListingsRequest, context: Context
    ) -> aftersale_pb2.ListListingsResponse:
        ctx, listed = await self._after.listings(current_principal().require_tenant(), request.event_id)
        now = int(time.time() * 1000)  # "held" is a hint for browsing; HoldListing decides on Redis's clock
        return aftersale_pb2.ListListingsResponse(listings=[listing_pb(ctx, o, t, now) for o, t in listed])

    async def HoldListing(
        self, request: aftersale_pb2.HoldListingRequest, context: Context
    ) -> aftersale_pb2.HoldListingResponse:
        ctx, held = await self._after.hold_listing(
            current_principal().require_tenant(), request.event_id, request.ticket_id, request.listing_id,
            request.buyer_id,
        )  # fmt: skip
        out = aftersale_pb2.HoldListingResponse(hold_token=held.token)
        out.expires_at.FromMilliseconds(held.expires_ms)
        out.price.amount_minor, out.price.currency = held.price, ctx.ref.currency
        return out

    async def CommitListing(
        self, request: aftersale_pb2.CommitListingRequest, context: Context
    ) -> aftersale_pb2.CommitListingResponse:
        if not request.hold_token:
            raise InvalidRequest("hold_token", "required")
        _, result, token = await self._after.commit_listing(
            current_principal().require_tenant(), request.hold_token, request.resale_key,
            _holder("buyer", request.buyer),
        )  # fmt: skip
        return aftersale_pb2.CommitListingResponse(
            resale=resale_pb(result.resale), token=token, replayed=result.replayed
        )

    async def ListResales(
        self, request: aftersale_pb2.ListResalesRequest, context: Context
    ) -> aftersale_pb2.ListResalesResponse:
        since = millis_of(request.since, "since") if request.HasField("since") else 0
        until = (
            millis_of(request.until, "until") if request.HasField("until") else int(time.time() * 1000) + 1
        )
        if since < 0 or until <= since:
            raise InvalidRequest("until", "must be after since")
        resales = await self._after.resales(
            current_principal().require_tenant(), request.event_id, since, until
        )
        return aftersale_pb2.ListResalesResponse(resales=[resale_pb(r) for r in resales])


SERVICE = ServiceDeclaration(
    descriptor=aftersale_pb2.DESCRIPTOR.services_by_name["AfterSaleService"],
    add_to_server=aftersale_pb2_grpc.add_AfterSaleServiceServicer_to_server,
    factory=lambda stores: AfterSaleServicer(stores.after_sale),
    methods={
        "TransferTicket": MethodRule(SALES),  # storefronts for their buyers, the box office
        "ExchangeTickets": MethodRule(BOX_OFFICE, audited=True),  # money changes: audited
        "SetResaleRules": MethodRule(ORGANIZER, audited=True),
        "GetResaleRules": MethodRule(BROWSE),
        "ListTicketForResale": MethodRule(SALES),
        "WithdrawListing": MethodRule(SALES),
        "ListListings": MethodRule(BROWSE),
        "HoldListing": MethodRule(SALES),
        "CommitListing": MethodRule(SALES, Admit.ALWAYS),  # a buyer who holds can pay under overload
        "ListResales": MethodRule(REPORTING),
    },
)
