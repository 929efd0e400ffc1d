"""seatwise.v1.FeedService: the organizer's lifecycle feed, consent and erasure (docs/data.md)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from seatwise.v1 import common_pb2, feed_pb2, feed_pb2_grpc

from holds.errors import InvalidRequest
from holds.feed.cursor import Cursor
from holds.feed.privacy import Privacy
from holds.feed.reader import (
    Checkpoint,
    FeedBuyer,
    FeedEntry,
    FeedProgress,
    FeedReader,
    FeedScope,
    PlatformFeed,
)
from holds.platform.platforms import PlatformStore
from holds.records import Order
from server import metrics, scope
from server.auth import ORGANIZER, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context
from server.servicers.convert import millis_of, ts


def _buyer_pb(buyer: FeedBuyer) -> feed_pb2.FeedBuyer:
    out = feed_pb2.FeedBuyer(
        name=buyer.name,
        email=buyer.email,
        marketing_consent=buyer.marketing_consent,
        consent_source=buyer.consent_source,
        erased=buyer.erased,
        buyer_id=buyer.buyer_id,
    )
    if buyer.consent_decided_ms:
        out.consent_decided_at.FromMilliseconds(buyer.consent_decided_ms)
    return out


def _tickets_pb(order: Order) -> list[feed_pb2.FeedTicket]:
    return [
        feed_pb2.FeedTicket(
            ticket_id=t.ticket_id,
            seat_ordinal=t.seat if t.seat is not None else -1,
            ga_area_id=t.ga_area or "",
            category=t.category,
            price=common_pb2.Money(amount_minor=t.price, currency=order.currency),
            status=t.status,
            ticket_type=t.ticket_type,
            discount=common_pb2.Money(amount_minor=t.discount, currency=order.currency),
        )
        for t in order.tickets
    ]


def entry_pb(entry: FeedEntry) -> feed_pb2.FeedEntry:
    out = feed_pb2.FeedEntry(
        entry_id=entry.entry_id,
        cursor=entry.cursor,
        kind=entry.kind,
        recorded_at=ts(entry.recorded_ms),
        event_id=entry.event_id,
        organizer_id=entry.organizer_id,
        order_id=entry.order_id,
        ticket_ids=entry.ticket_ids,
        reason=entry.reason,
        event_status=entry.event_status,
        sequence=entry.sequence,
        order_refs=entry.order_refs,
        detail=entry.detail,
    )
    if entry.buyer is not None:
        out.buyer.CopyFrom(_buyer_pb(entry.buyer))
    if entry.order is not None:
        out.order_status = entry.order.status
        out.promo_code = entry.order.promo_code
        out.tickets.extend(_tickets_pb(entry.order))
        out.total.CopyFrom(common_pb2.Money(amount_minor=entry.order.total, currency=entry.order.currency))
        out.discount.CopyFrom(
            common_pb2.Money(amount_minor=entry.order.discount, currency=entry.order.currency)
        )
    return out


def _decided_at_ms(request: feed_pb2.UpdateConsentRequest) -> int:
    if not request.HasField("decided_at"):
        return 0
    return millis_of(request.decided_at, "decided_at")


class FeedServicer(feed_pb2_grpc.FeedServiceServicer):
    def __init__(self, reader: FeedReader, privacy: Privacy, platforms: PlatformStore) -> None:
        self._reader = reader
        self._privacy = privacy
        self._platforms = platforms

    async def Subscribe(
        self, request: feed_pb2.SubscribeRequest, context: Context
    ) -> AsyncIterator[feed_pb2.FeedMessage]:
        principal = current_principal()
        feed: FeedScope
        if principal.is_admin and not principal.acting:  # an operator: its platform's whole feed
            platform = await scope.platform(self._platforms, request.platform_id)
            feed, who = PlatformFeed(platform.platform_id), f"platform:{platform.platform_id}"
        else:
            if request.platform_id:
                raise InvalidRequest("platform_id", "only a platform's admins subscribe to a platform's feed")
            feed = who = principal.require_tenant()
        if request.from_now:
            cursor = await self._reader.now_cursor(feed)
        else:
            cursor = Cursor.decode(request.cursor)
            await self._reader.check_range(feed, cursor)
        subscriber = metrics.FeedSubscriber(
            who, principal.key_id, FeedProgress(delivered_ms=int(time.time() * 1000))
        )
        metrics.FEED_LAG.opened(subscriber)
        try:
            async for item in self._reader.follow(feed, cursor, progress=subscriber.progress):
                match item:
                    case Checkpoint(cursor=token):
                        yield feed_pb2.FeedMessage(checkpoint=token)
                    case FeedEntry():
                        yield feed_pb2.FeedMessage(entry=entry_pb(item))
        finally:
            metrics.FEED_LAG.closed(subscriber)

    async def UpdateConsent(
        self, request: feed_pb2.UpdateConsentRequest, context: Context
    ) -> feed_pb2.UpdateConsentResponse:
        tenant = current_principal().require_tenant()
        result = await self._privacy.update_consent(
            tenant, request.email, request.opted_in, request.source, _decided_at_ms(request),
            buyer_id=request.buyer_id,
        )  # fmt: skip
        d = result.decision
        return feed_pb2.UpdateConsentResponse(
            applied=result.applied, opted_in=d.opted_in, source=d.source, decided_at=ts(d.decided_at_ms)
        )

    async def EraseBuyer(
        self, request: feed_pb2.EraseBuyerRequest, context: Context
    ) -> feed_pb2.EraseBuyerResponse:
        principal = current_principal()
        result = await self._privacy.erase_buyer(
            principal.require_tenant(), request.email, principal.key_id, principal.role
        )
        return feed_pb2.EraseBuyerResponse(
            orders_erased=result.orders_erased,
            holds_erased=result.holds_erased,
            events_scanned=result.events_scanned,
        )


SERVICE = ServiceDeclaration(
    descriptor=feed_pb2.DESCRIPTOR.services_by_name["FeedService"],
    add_to_server=feed_pb2_grpc.add_FeedServiceServicer_to_server,
    factory=lambda stores: FeedServicer(
        FeedReader(stores.redis), Privacy(stores.redis, stores.scripts), stores.platforms
    ),
    methods={
        "Subscribe": MethodRule(ORGANIZER),
        "UpdateConsent": MethodRule(ORGANIZER),
        "EraseBuyer": MethodRule(ORGANIZER),
    },
)
