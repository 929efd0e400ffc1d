"""Proto <-> domain conversions shared by the sales servicers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import events_pb2, sales_pb2

from holds.errors import InvalidRequest
from holds.events import Event, EventStatus
from holds.live import LiveEvent
from holds.offers import OfferChoice, choice_of
from holds.records import Buyer, Order
from holds.sales import HoldInfo
from holds.seasons import season_of
from rules.fees import Collector

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


def millis_of(stamp: Timestamp, field: str, *, since_1970: bool = False) -> int:
    """A request's timestamp in ms since the epoch. One protobuf cannot represent (nanos
    outside 0-999,999,999, a year outside 1-9999) is INVALID_ARGUMENT naming ``field``, as
    is, with ``since_1970``, one before the epoch."""
    try:
        stamp.ToJsonString()  # validates the range
    except ValueError as exc:
        raise InvalidRequest(field, str(exc)) from exc
    if since_1970 and stamp.seconds < 0:
        raise InvalidRequest(field, "must be after 1970")
    return int(stamp.ToMilliseconds())


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
        rate_limit_per_key=s.rate_limit_per_key,
        rate_limit_per_buyer=s.rate_limit_per_buyer,
        created_at=ts(event.created_at_ms),
        updated_at=ts(event.updated_at_ms),
        season_id=season_of(event.ref.event_id),
    )
    if s.starts_at:
        out.starts_at.FromJsonString(s.starts_at)
    if s.onsale_from_ms:
        out.on_sale_from.CopyFrom(ts(s.onsale_from_ms))
    if s.onsale_until_ms:
        out.on_sale_until.CopyFrom(ts(s.onsale_until_ms))
    rule = s.distancing_rule
    if rule.kind == "row":
        out.distancing.seats_in_row = rule.seats
    elif rule.kind == "metres":
        out.distancing.metres = rule.metres
        out.distancing.layout_units_per_metre = rule.units_per_metre
    return out


def hold_pb(info: HoldInfo) -> sales_pb2.HoldResponse:
    # fields set in place, the ordinary protobuf idiom (figures in docs/performance.md)
    out = sales_pb2.HoldResponse()
    hold = out.hold
    hold.hold_token = info.token
    hold.event_id = info.event_id
    hold.seat_ids.extend(info.seat_ids)
    if info.ga:
        hold.general_admission.update(info.ga)
    hold.expires_at.FromMilliseconds(info.expires_ms)
    hold.buyer_id = info.buyer
    hold.lifetime_capped = info.lifetime_capped
    out.replayed = info.replayed
    return out


def order_pb(ctx: LiveEvent, order: Order) -> sales_pb2.Order:
    # built in place, as hold_pb: every commit answers with one
    placed = ctx.loaded.index.placed
    currency = order.currency
    out = sales_pb2.Order()
    out.order_id = order.order_id
    out.event_id = ctx.event_id
    out.status = ORDER_STATUS.get(order.status, sales_pb2.ORDER_STATUS_UNSPECIFIED)
    for t in order.tickets:
        ticket = out.tickets.add()
        ticket.ticket_id = t.ticket_id
        ticket.seat_id = placed[t.seat].seat.id if t.seat is not None else ""
        ticket.ga_area_id = t.ga_area or ""
        ticket.category = t.category
        ticket.price.amount_minor = t.price
        ticket.price.currency = currency
        ticket.cancelled = t.status == "cancelled"
        split = ticket.split
        split.ticket_fee_rate = t.ticket_fee_rate
        split.ticket_fee_fixed = t.ticket_fee_fixed
        split.processing_fee_rate = t.processing_fee_rate
        split.processing_fee_fixed = t.processing_fee_fixed
        split.platform_fee = t.platform_fee
        split.organizer_share = t.organizer_share
        ticket.refunded.amount_minor = t.refunded
        ticket.refunded.currency = currency
        if t.ticket_type:
            ticket.ticket_type = t.ticket_type
        if t.discount or t.list_price:
            ticket.list_price.amount_minor = t.list_price
            ticket.list_price.currency = currency
            ticket.discount.amount_minor = t.discount
            ticket.discount.currency = currency
        ticket.status = t.status
        ticket.revision = t.revision
        if t.holder is not None:
            ticket.holder.name = t.holder.name
            ticket.holder.email = t.holder.email
        ticket.exchanged_for = t.exchanged_for
        ticket.exchanging = t.exchanging
        ticket.listing_id = t.listing.listing_id if t.listing is not None else ""
    out.total.amount_minor = order.total
    out.total.currency = currency
    buyer = out.buyer
    buyer.name = order.buyer.name
    buyer.email = order.buyer.email
    buyer.marketing_consent = order.buyer.marketing_consent
    buyer.payment_reference = order.buyer.payment_reference
    out.idempotency_key = order.idempotency_key
    out.created_at.FromMilliseconds(order.created_ms)
    out.updated_at.FromMilliseconds(order.updated_ms)
    out.collector = COLLECTOR_PB.get(order.collector, sales_pb2.COLLECTOR_UNSPECIFIED)
    out.payment_method = order.payment_method
    out.plan_id = order.terms.plan_id if order.terms is not None else ""
    out.channel = CHANNEL_PB.get(order.channel, sales_pb2.SALES_CHANNEL_UNSPECIFIED)
    if order.promo_code:
        out.promo_code = order.promo_code
        out.discount.amount_minor = order.discount
        out.discount.currency = currency
    return out


COLLECTOR_PB = {"platform": sales_pb2.COLLECTOR_PLATFORM, "organizer": sales_pb2.COLLECTOR_ORGANIZER}
CHANNEL_PB = {
    "storefront": sales_pb2.SALES_CHANNEL_STOREFRONT,
    "box_office": sales_pb2.SALES_CHANNEL_BOX_OFFICE,
}


def offer_of(
    choices: Iterable[sales_pb2.TicketTypeChoice], promo_code: str, access_code: str
) -> OfferChoice | None:
    """What a sale names of ticket types and codes (None: nothing, a plain sale)."""
    return choice_of(
        [(c.seat_id, c.ga_area_id, c.quantity, c.ticket_type) for c in choices], promo_code, access_code
    )


def collector_of(value: int, default: Collector) -> Collector:
    """A request's collector (unspecified: ``default``); an unknown value is INVALID_ARGUMENT."""
    if value == sales_pb2.COLLECTOR_UNSPECIFIED:
        return default
    for name, number in COLLECTOR_PB.items():
        if number == value:
            return cast(Collector, name)
    raise InvalidRequest("collector", "unknown collector")


def buyer_of(b: sales_pb2.BuyerDetails) -> Buyer:
    """The buyer a commit, a box-office sale or a resale names."""
    return Buyer(
        name=b.name,
        email=b.email,
        marketing_consent=b.marketing_consent,
        payment_reference=b.payment_reference,
    )
