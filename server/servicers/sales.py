"""seatwise.v1.HoldService and OrderService: thin translation onto holds.sales."""

from __future__ import annotations

from typing import Literal

from seatwise.v1 import sales_pb2, sales_pb2_grpc

from holds.errors import InvalidRequest
from holds.platform.audit import AuditLog
from holds.records import Refund
from holds.sales import Sales
from seatmap.bestavailable import BestAvailableError, BestAvailableRequest
from server.admission import Admit
from server.audit import note_target
from server.audit import write as audit_write
from server.auth import BOX_OFFICE, BROWSE, REPORTING, SALES, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import page_bounds, page_token_after
from server.ratelimit import SalesLimiter
from server.servicers import Context
from server.servicers.channels import channel_access
from server.servicers.convert import buyer_of, collector_of, hold_pb, offer_of, order_pb

_ADJACENCY = {
    sales_pb2.ADJACENCY_UNSPECIFIED: "required",
    sales_pb2.ADJACENCY_REQUIRED: "required",
    sales_pb2.ADJACENCY_PREFERRED: "preferred",
}

# BestAvailableRequest's field names where they differ from HoldBestAvailableRequest's
_REQUEST_FIELD = {"sections": "section_ids"}


def _token(token: str) -> str:
    if not token:
        raise InvalidRequest("hold_token", "required")
    return token


class HoldServicer(sales_pb2_grpc.HoldServiceServicer):
    def __init__(self, sales: Sales, limiter: SalesLimiter) -> None:
        self._sales = sales
        self._limiter = limiter

    async def _admit_hold(self, event_id: str, buyer: str) -> str:
        """The caller's organizer, once the call is within the event's rate limits
        (server/ratelimit.py; checked after ownership, so a limit reveals nothing)."""
        principal = current_principal()
        tenant_id = principal.require_tenant()
        await self._sales.context(tenant_id, event_id)
        await self._limiter.check(event_id, principal.key_id, buyer)
        return tenant_id

    async def HoldSeats(
        self, request: sales_pb2.HoldSeatsRequest, context: Context
    ) -> sales_pb2.HoldResponse:
        info = await self._sales.hold_seats(
            await self._admit_hold(request.event_id, request.buyer_id),
            request.event_id,
            list(request.seat_ids),
            buyer=request.buyer_id,
            token=request.hold_token,
            request_id=request.request_id,
            access=channel_access(request.channel_access),
        )
        return hold_pb(info)

    async def HoldBestAvailable(
        self, request: sales_pb2.HoldBestAvailableRequest, context: Context
    ) -> sales_pb2.HoldResponse:
        adjacency = _ADJACENCY.get(request.adjacency)
        if adjacency is None:
            raise InvalidRequest("adjacency", "unknown adjacency")
        try:
            wanted = BestAvailableRequest(
                quantity=request.quantity,
                categories=frozenset(request.categories) or None,
                sections=frozenset(request.section_ids) or None,
                accessible=request.accessible,
                adjacency=adjacency,  # type: ignore[arg-type]
            )
        except BestAvailableError as exc:
            raise InvalidRequest(_REQUEST_FIELD.get(exc.field, exc.field), str(exc)) from exc
        info = await self._sales.hold_best_available(
            await self._admit_hold(request.event_id, request.buyer_id),
            request.event_id,
            wanted,
            buyer=request.buyer_id,
            token=request.hold_token,
            request_id=request.request_id,
            access=channel_access(request.channel_access),
        )
        return hold_pb(info)

    async def HoldGeneralAdmission(
        self, request: sales_pb2.HoldGeneralAdmissionRequest, context: Context
    ) -> sales_pb2.HoldResponse:
        info = await self._sales.hold_general_admission(
            await self._admit_hold(request.event_id, request.buyer_id),
            request.event_id,
            request.area_id,
            request.quantity,
            buyer=request.buyer_id,
            token=request.hold_token,
            request_id=request.request_id,
            access=channel_access(request.channel_access),
        )
        return hold_pb(info)

    async def ExtendHold(
        self, request: sales_pb2.ExtendHoldRequest, context: Context
    ) -> sales_pb2.HoldResponse:
        info = await self._sales.extend_hold(current_principal().require_tenant(), _token(request.hold_token))
        return hold_pb(info)

    async def ReleaseHold(
        self, request: sales_pb2.ReleaseHoldRequest, context: Context
    ) -> sales_pb2.ReleaseHoldResponse:
        remaining = await self._sales.release_hold(
            current_principal().require_tenant(),
            _token(request.hold_token),
            list(dict.fromkeys(request.seat_ids)),
            dict(request.general_admission),
        )
        return sales_pb2.ReleaseHoldResponse(remaining=remaining)

    async def GetHold(self, request: sales_pb2.GetHoldRequest, context: Context) -> sales_pb2.HoldResponse:
        info = await self._sales.get_hold(current_principal().require_tenant(), _token(request.hold_token))
        return hold_pb(info)


_RELEASE: dict[int, Literal["", "free", "not_for_sale"]] = {
    sales_pb2.REFUND_RELEASE_UNSPECIFIED: "",
    sales_pb2.REFUND_RELEASE_KEEP_SOLD: "",
    sales_pb2.REFUND_RELEASE_FREE: "free",
    sales_pb2.REFUND_RELEASE_NOT_FOR_SALE: "not_for_sale",
}
SELL_AT_BOX_OFFICE = "/seatwise.v1.OrderService/SellAtBoxOffice"


def refund_pb(refund: Refund) -> sales_pb2.Refund:
    out = sales_pb2.Refund(refund_id=refund.refund_id, order_id=refund.order_id)
    for line in refund.lines:
        t = out.tickets.add()
        t.ticket_id = line.ticket_id
        t.amount.amount_minor = line.amount
        t.amount.currency = refund.currency
        r = t.fee_reversal
        r.ticket_fee_rate = line.ticket_fee_rate
        r.ticket_fee_fixed = line.ticket_fee_fixed
        r.processing_fee_rate = line.processing_fee_rate
        r.processing_fee_fixed = line.processing_fee_fixed
        r.platform_fee = (
            line.ticket_fee_rate
            + line.ticket_fee_fixed
            + line.processing_fee_rate
            + line.processing_fee_fixed
        )
        r.organizer_share = line.amount - r.platform_fee
    out.total.amount_minor = refund.total
    out.total.currency = refund.currency
    out.created_at.FromMilliseconds(refund.created_ms)
    return out


class OrderServicer(sales_pb2_grpc.OrderServiceServicer):
    def __init__(self, sales: Sales, audit: AuditLog | None = None) -> None:
        self._sales = sales
        self._audit = audit

    async def CommitHold(
        self, request: sales_pb2.CommitHoldRequest, context: Context
    ) -> sales_pb2.CommitHoldResponse:
        buyer = buyer_of(request.buyer)
        ctx, order, replayed = await self._sales.commit(
            current_principal().require_tenant(),
            _token(request.hold_token),
            request.idempotency_key,
            buyer,
            collector=collector_of(request.collector, "platform"),
            payment_method=request.payment_method or "online",
            offer=offer_of(request.ticket_types, request.promo_code, request.access_code),
        )
        return sales_pb2.CommitHoldResponse(order=order_pb(ctx, order), replayed=replayed)

    async def GetOrder(
        self, request: sales_pb2.GetOrderRequest, context: Context
    ) -> sales_pb2.GetOrderResponse:
        ctx, order = await self._sales.get_order(
            current_principal().require_tenant(), request.event_id, request.order_id
        )
        return sales_pb2.GetOrderResponse(order=order_pb(ctx, order))

    async def ListOrders(
        self, request: sales_pb2.ListOrdersRequest, context: Context
    ) -> sales_pb2.ListOrdersResponse:
        offset, limit = page_bounds(request.page.page_size, request.page.page_token)
        ctx, orders, more = await self._sales.list_orders(
            current_principal().require_tenant(), request.event_id, offset, limit
        )
        return sales_pb2.ListOrdersResponse(
            orders=[order_pb(ctx, o) for o in orders], next_page_token=page_token_after(offset, limit, more)
        )

    async def CancelOrder(
        self, request: sales_pb2.CancelOrderRequest, context: Context
    ) -> sales_pb2.CancelOrderResponse:
        ctx, order = await self._sales.cancel(
            current_principal().require_tenant(),
            request.event_id,
            request.order_id,
            list(request.ticket_ids),
            "not_for_sale" if request.release_to_not_for_sale else "free",
            request.reason,
        )
        return sales_pb2.CancelOrderResponse(order=order_pb(ctx, order))

    async def SellAtBoxOffice(
        self, request: sales_pb2.SellAtBoxOfficeRequest, context: Context
    ) -> sales_pb2.SellAtBoxOfficeResponse:
        principal = current_principal()
        ctx, result = await self._sales.sell_at_box_office(
            principal.require_tenant(),
            request.event_id,
            list(request.seat_ids),
            dict(request.general_admission),
            idempotency_key=request.idempotency_key,
            buyer=buyer_of(request.buyer),
            payment_method=request.payment_method,
            collector=collector_of(request.collector, "organizer"),
            override=request.override_holds,
            offer=offer_of(request.ticket_types, request.promo_code, request.access_code),
        )
        if result.overridden_holds and not result.replayed:
            # the override is audited: who sold which order over how many buyers' holds
            note_target(order_id=result.order.order_id, overridden_holds=str(len(result.overridden_holds)))
            if self._audit is not None and not principal.acting:  # acting calls: the wrapper writes it
                await audit_write(self._audit, SELL_AT_BOX_OFFICE, principal, request, "OK")
        return sales_pb2.SellAtBoxOfficeResponse(
            order=order_pb(ctx, result.order),
            replayed=result.replayed,
            overridden_holds=len(result.overridden_holds),
        )

    async def RefundOrder(
        self, request: sales_pb2.RefundOrderRequest, context: Context
    ) -> sales_pb2.RefundOrderResponse:
        release = _RELEASE.get(request.release)
        if release is None:
            raise InvalidRequest("release", "unknown release")
        amounts: dict[str, int] = {}
        for i, t in enumerate(request.tickets):
            if not t.ticket_id:
                raise InvalidRequest(f"tickets[{i}].ticket_id", "required")
            if t.ticket_id in amounts:
                raise InvalidRequest(f"tickets[{i}].ticket_id", f"ticket {t.ticket_id!r} listed twice")
            amounts[t.ticket_id] = t.amount_minor
        ctx, result = await self._sales.refund(
            current_principal().require_tenant(),
            request.event_id,
            request.order_id,
            amounts,
            refund_key=request.refund_key,
            reason=request.reason,
            release_to=release,
        )
        note_target(refund_id=result.refund.refund_id)
        return sales_pb2.RefundOrderResponse(
            order=order_pb(ctx, result.order), refund=refund_pb(result.refund), replayed=result.replayed
        )


HOLD_SERVICE = ServiceDeclaration(
    descriptor=sales_pb2.DESCRIPTOR.services_by_name["HoldService"],
    add_to_server=sales_pb2_grpc.add_HoldServiceServicer_to_server,
    factory=lambda stores: HoldServicer(stores.sales, stores.rate_limits),
    methods={
        "HoldSeats": MethodRule(SALES),
        "HoldBestAvailable": MethodRule(SALES),
        "HoldGeneralAdmission": MethodRule(SALES),
        "ExtendHold": MethodRule(SALES, Admit.ALWAYS),  # buyers who hold seats can still pay
        "ReleaseHold": MethodRule(SALES, Admit.ALWAYS),  # frees capacity
        "GetHold": MethodRule(SALES),
    },
)
ORDER_SERVICE = ServiceDeclaration(
    descriptor=sales_pb2.DESCRIPTOR.services_by_name["OrderService"],
    add_to_server=sales_pb2_grpc.add_OrderServiceServicer_to_server,
    factory=lambda stores: OrderServicer(stores.sales, stores.audit),
    methods={
        "CommitHold": MethodRule(SALES, Admit.ALWAYS),
        "GetOrder": MethodRule(BROWSE),
        "ListOrders": MethodRule(REPORTING),
        "CancelOrder": MethodRule(BOX_OFFICE),
        "SellAtBoxOffice": MethodRule(BOX_OFFICE),  # overrides of buyers' holds are audited
        "RefundOrder": MethodRule(BOX_OFFICE, audited=True),
    },
)
