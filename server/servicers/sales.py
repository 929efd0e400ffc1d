"""seatwise.v1.HoldService and OrderService: thin translation onto holds.sales."""

from __future__ import annotations

from seatwise.v1 import sales_pb2, sales_pb2_grpc

from holds.errors import InvalidRequest
from holds.records import Buyer
from holds.sales import Sales
from seatmap.bestavailable import BestAvailableError, BestAvailableRequest
from server.admission import Admit
from server.auth import BOX_OFFICE, BROWSE, REPORTING, SALES, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import page_bounds, page_token_after
from server.servicers import Context
from server.servicers.convert import collector_of, hold_pb, order_pb

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
    def __init__(self, sales: Sales) -> None:
        self._sales = sales

    async def HoldSeats(
        self, request: sales_pb2.HoldSeatsRequest, context: Context
    ) -> sales_pb2.HoldResponse:
        info = await self._sales.hold_seats(
            current_principal().require_tenant(),
            request.event_id,
            list(request.seat_ids),
            buyer=request.buyer_id,
            token=request.hold_token,
            request_id=request.request_id,
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
            current_principal().require_tenant(),
            request.event_id,
            wanted,
            buyer=request.buyer_id,
            token=request.hold_token,
            request_id=request.request_id,
        )
        return hold_pb(info)

    async def HoldGeneralAdmission(
        self, request: sales_pb2.HoldGeneralAdmissionRequest, context: Context
    ) -> sales_pb2.HoldResponse:
        info = await self._sales.hold_general_admission(
            current_principal().require_tenant(),
            request.event_id,
            request.area_id,
            request.quantity,
            buyer=request.buyer_id,
            token=request.hold_token,
            request_id=request.request_id,
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


class OrderServicer(sales_pb2_grpc.OrderServiceServicer):
    def __init__(self, sales: Sales) -> None:
        self._sales = sales

    async def CommitHold(
        self, request: sales_pb2.CommitHoldRequest, context: Context
    ) -> sales_pb2.CommitHoldResponse:
        b = request.buyer
        buyer = Buyer(
            name=b.name,
            email=b.email,
            marketing_consent=b.marketing_consent,
            payment_reference=b.payment_reference,
        )
        ctx, order, replayed = await self._sales.commit(
            current_principal().require_tenant(),
            _token(request.hold_token),
            request.idempotency_key,
            buyer,
            collector=collector_of(request.collector, "platform"),
            payment_method=request.payment_method or "online",
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


HOLD_SERVICE = ServiceDeclaration(
    descriptor=sales_pb2.DESCRIPTOR.services_by_name["HoldService"],
    add_to_server=sales_pb2_grpc.add_HoldServiceServicer_to_server,
    factory=lambda stores: HoldServicer(stores.sales),
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
    factory=lambda stores: OrderServicer(stores.sales),
    methods={
        "CommitHold": MethodRule(SALES, Admit.ALWAYS),
        "GetOrder": MethodRule(BROWSE),
        "ListOrders": MethodRule(REPORTING),
        "CancelOrder": MethodRule(BOX_OFFICE),
    },
)
