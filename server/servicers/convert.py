"""Proto <-> domain conversions shared by the sales servicers."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import common_pb2, events_pb2, sales_pb2

from holds.events import Event, EventStatus
from holds.records import Order
from holds.sales import EventContext, HoldInfo

STATUS_TO_PROTO: dict[str, events_pb2.EventStatus.ValueType] = {
    "draft": events_pb2.EVENT_STATUS_DRAFT,
    "on_sale": events_pb2.EVENT_STATUS_ON_SALE,
    "paused": events_pb2.EVENT_STATUS_PAUSED,
    "closed": events_pb2.EVENT_STATUS_CLOSED,
}
PROTO_TO_STATUS: dict[int, EventStatus] = {v: k for k, v in STATUS_TO_PROTO.items()}  # type: ignore[misc]
SEAT_STATUS = {
    "free": events_pb2.SEAT_STATUS_FREE,
    "held": events_pb2.SEAT_STATUS_HELD,
    "sold": events_pb2.SEAT_STATUS_SOLD,
    "blocked": events_pb2.SEAT_STATUS_BLOCKED,
    "not_for_sale": events_pb2.SEAT_STATUS_NOT_FOR_SALE,
}
SEAT_STATUS_NAME = {v: k for k, v in SEAT_STATUS.items()}
ORDER_STATUS = {
    "committed": sales_pb2.ORDER_STATUS_COMMITTED,
    "partially_cancelled": sales_pb2.ORDER_STATUS_PARTIALLY_CANCELLED,
    "cancelled": sales_pb2.ORDER_STATUS_CANCELLED,
}


def ts(ms: int) -> Timestamp:
    out = Timestamp()
    out.FromMilliseconds(ms)
    return out


def duration(ms: int) -> Duration:
    out = Duration()
    out.FromMilliseconds(ms)
    return out


def event_pb(event: Event) -> events_pb2.Event:
    s = event.settings
    out = events_pb2.Event(
        event_id=event.ref.event_id,
        name=s.name,
        seat_map_id=event.ref.seat_map_id,
        seat_map_version=event.ref.seat_map_version,
        timezone=s.timezone,
        currency=event.ref.currency,
        status=STATUS_TO_PROTO[s.status],
        prices=[events_pb2.CategoryPrice(category=k, amount_minor=v) for k, v in sorted(s.prices.items())],
        hold_ttl=duration(s.hold_ttl_ms),
        max_hold_lifetime=duration(s.max_lifetime_ms),
        max_seats_per_hold=s.max_seats_per_hold,
        max_seats_per_buyer=s.max_seats_per_buyer,
        created_at=ts(event.created_at_ms),
        updated_at=ts(event.updated_at_ms),
    )
    if s.starts_at:
        out.starts_at.FromJsonString(s.starts_at)
    if s.onsale_from_ms:
        out.on_sale_from.CopyFrom(ts(s.onsale_from_ms))
    if s.onsale_until_ms:
        out.on_sale_until.CopyFrom(ts(s.onsale_until_ms))
    return out


def hold_pb(info: HoldInfo) -> sales_pb2.HoldResponse:
    return sales_pb2.HoldResponse(
        hold=sales_pb2.Hold(
            hold_token=info.token,
            event_id=info.event_id,
            seat_ids=info.seat_ids,
            general_admission=info.ga,
            expires_at=ts(info.expires_ms),
            buyer_id=info.buyer,
            lifetime_capped=info.lifetime_capped,
        )
    )


def order_pb(ctx: EventContext, order: Order) -> sales_pb2.Order:
    placed = ctx.loaded.index.placed
    currency = order.currency
    return sales_pb2.Order(
        order_id=order.order_id,
        event_id=ctx.event_id,
        status=ORDER_STATUS.get(order.status, sales_pb2.ORDER_STATUS_UNSPECIFIED),
        tickets=[
            sales_pb2.Ticket(
                ticket_id=t.ticket_id,
                seat_id=placed[t.seat].seat.id if t.seat is not None else "",
                ga_area_id=t.ga_area or "",
                category=t.category,
                price=common_pb2.Money(amount_minor=t.price, currency=currency),
                cancelled=t.status == "cancelled",
            )
            for t in order.tickets
        ],
        total=common_pb2.Money(amount_minor=order.total, currency=currency),
        buyer=sales_pb2.BuyerDetails(
            name=order.buyer.name,
            email=order.buyer.email,
            marketing_consent=order.buyer.marketing_consent,
            payment_reference=order.buyer.payment_reference,
        ),
        idempotency_key=order.idempotency_key,
        created_at=ts(order.created_ms),
        updated_at=ts(order.updated_ms),
    )
