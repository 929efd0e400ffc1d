"""seatwise.v1.SeasonService: seasons, season holds and season orders, onto holds.seasons."""

from __future__ import annotations

from collections.abc import Iterable

from seatwise.v1 import events_pb2, seasons_pb2, seasons_pb2_grpc

from holds.errors import InvalidRequest
from holds.sales import Sales
from holds.seasons import Season, SeasonHoldInfo, SeasonOrder, SeasonSales, SeasonStore
from holds.seatmaps import SeatMapStore
from server.admission import Admit
from server.auth import BROWSE, ORGANIZER, SALES, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import page_bounds, page_token_after
from server.ratelimit import SalesLimiter
from server.servicers import Context
from server.servicers.channels import channel_access
from server.servicers.convert import buyer_of, collector_of, offer_of, order_pb, ts


def _token(token: str) -> str:
    if not token:
        raise InvalidRequest("season_hold_token", "required")
    return token


def _bundle_prices(prices: Iterable[events_pb2.CategoryPrice]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, p in enumerate(prices):
        if p.category in out:
            raise InvalidRequest(f"bundle_prices[{i}].category", f"category {p.category!r} priced twice")
        out[p.category] = p.amount_minor
    return out


def season_pb(season: Season) -> seasons_pb2.Season:
    return seasons_pb2.Season(
        season_id=season.season_id,
        name=season.name,
        seat_map_id=season.seat_map_id,
        seat_map_version=season.seat_map_version,
        currency=season.currency,
        created_at=ts(season.created_ms),
        event_ids=list(season.event_ids),
        bundle_prices=[
            events_pb2.CategoryPrice(category=c, amount_minor=a)
            for c, a in sorted(season.bundle_prices.items())
        ],
    )


def season_hold_pb(info: SeasonHoldInfo) -> seasons_pb2.SeasonHoldResponse:
    out = seasons_pb2.SeasonHoldResponse()
    hold = out.hold
    hold.season_hold_token = info.token
    hold.season_id = info.season_id
    hold.event_ids.extend(info.event_ids)
    hold.seat_ids.extend(info.seat_ids)
    hold.expires_at.FromMilliseconds(info.expires_ms)
    hold.buyer_id = info.buyer
    hold.lifetime_capped = info.lifetime_capped
    hold.general_admission.update(info.ga)
    out.replayed = info.replayed
    return out


class SeasonServicer(seasons_pb2_grpc.SeasonServiceServicer):
    def __init__(
        self,
        seasons: SeasonStore,
        season_sales: SeasonSales,
        seatmaps: SeatMapStore,
        sales: Sales,
        limiter: SalesLimiter,
    ) -> None:
        self._seasons = seasons
        self._season_sales = season_sales
        self._seatmaps = seatmaps
        self._sales = sales
        self._limiter = limiter

    async def _order_pb(
        self, tenant_id: str, order: SeasonOrder, replayed: bool
    ) -> seasons_pb2.SeasonOrderResponse:
        out = seasons_pb2.SeasonOrderResponse(replayed=replayed)
        o = out.order
        o.season_order_id = order.season_order_id
        o.season_id = order.season_id
        o.idempotency_key = order.idempotency_key
        for event_id, event_order in zip(order.event_ids, order.orders, strict=True):
            o.orders.append(order_pb(await self._sales.context(tenant_id, event_id), event_order))
        o.total.amount_minor = order.total
        o.total.currency = order.currency
        o.created_at.FromMilliseconds(order.created_ms)
        o.bundle_priced = order.bundle_priced
        if order.promo_code:
            o.promo_code = order.promo_code
            o.discount.amount_minor = order.discount
            o.discount.currency = order.currency
        return out

    async def CreateSeason(
        self, request: seasons_pb2.CreateSeasonRequest, context: Context
    ) -> seasons_pb2.SeasonResponse:
        tenant_id = current_principal().require_tenant()
        if not request.seat_map_id:
            raise InvalidRequest("seat_map_id", "required")
        bundle = _bundle_prices(request.bundle_prices)
        loaded = await self._seatmaps.load(tenant_id, request.seat_map_id, request.seat_map_version)
        season = await self._seasons.create(tenant_id, loaded, request.currency, request.name, bundle)
        return seasons_pb2.SeasonResponse(season=season_pb(season))

    async def SetSeasonPrices(
        self, request: seasons_pb2.SetSeasonPricesRequest, context: Context
    ) -> seasons_pb2.SeasonResponse:
        tenant_id = current_principal().require_tenant()
        bundle = _bundle_prices(request.bundle_prices)
        season = await self._seasons.get(tenant_id, request.season_id)
        loaded = await self._seatmaps.load(tenant_id, season.seat_map_id, season.seat_map_version)
        season = await self._seasons.set_bundle_prices(tenant_id, season.season_id, loaded, bundle)
        return seasons_pb2.SeasonResponse(season=season_pb(season))

    async def GetSeason(
        self, request: seasons_pb2.GetSeasonRequest, context: Context
    ) -> seasons_pb2.SeasonResponse:
        season = await self._seasons.get(current_principal().require_tenant(), request.season_id)
        return seasons_pb2.SeasonResponse(season=season_pb(season))

    async def ListSeasons(
        self, request: seasons_pb2.ListSeasonsRequest, context: Context
    ) -> seasons_pb2.ListSeasonsResponse:
        offset, limit = page_bounds(request.page.page_size, request.page.page_token)
        seasons, more = await self._seasons.list_seasons(current_principal().require_tenant(), offset, limit)
        return seasons_pb2.ListSeasonsResponse(
            seasons=[season_pb(s) for s in seasons], next_page_token=page_token_after(offset, limit, more)
        )

    async def HoldSeasonSeats(
        self, request: seasons_pb2.HoldSeasonSeatsRequest, context: Context
    ) -> seasons_pb2.SeasonHoldResponse:
        principal = current_principal()
        tenant_id = principal.require_tenant()
        season = await self._seasons.get(tenant_id, request.season_id)
        # each event's rate limits, as a single-event hold of it (after ownership: reveals nothing)
        for event_id in list(dict.fromkeys(request.event_ids)) or season.event_ids:
            if event_id in season.event_ids:
                await self._limiter.check(event_id, principal.key_id, request.buyer_id)
        info = await self._season_sales.hold(
            tenant_id,
            request.season_id,
            list(request.seat_ids),
            event_ids=list(request.event_ids),
            buyer=request.buyer_id,
            access=channel_access(request.channel_access),
            request_id=request.request_id,
            ga=dict(request.general_admission),
        )
        return season_hold_pb(info)

    async def GetSeasonHold(
        self, request: seasons_pb2.SeasonHoldRequest, context: Context
    ) -> seasons_pb2.SeasonHoldResponse:
        tenant_id = current_principal().require_tenant()
        return season_hold_pb(await self._season_sales.get_hold(tenant_id, _token(request.season_hold_token)))

    async def ExtendSeasonHold(
        self, request: seasons_pb2.ExtendSeasonHoldRequest, context: Context
    ) -> seasons_pb2.SeasonHoldResponse:
        ttl_ms = 0
        if request.HasField("ttl"):
            if request.ttl.seconds < 0 or request.ttl.nanos < 0 or request.ttl.seconds > 24 * 3600:
                raise InvalidRequest("ttl", "must be between 0 and 24 hours")
            ttl_ms = int(request.ttl.ToMilliseconds())
        tenant_id = current_principal().require_tenant()
        info = await self._season_sales.extend(tenant_id, _token(request.season_hold_token), ttl_ms)
        return season_hold_pb(info)

    async def ReleaseSeasonHold(
        self, request: seasons_pb2.SeasonHoldRequest, context: Context
    ) -> seasons_pb2.ReleaseSeasonHoldResponse:
        await self._season_sales.release(
            current_principal().require_tenant(), _token(request.season_hold_token)
        )
        return seasons_pb2.ReleaseSeasonHoldResponse()

    async def CommitSeasonHold(
        self, request: seasons_pb2.CommitSeasonHoldRequest, context: Context
    ) -> seasons_pb2.SeasonOrderResponse:
        tenant_id = current_principal().require_tenant()
        order = await self._season_sales.commit(
            tenant_id,
            _token(request.season_hold_token),
            request.idempotency_key,
            buyer_of(request.buyer),
            collector=collector_of(request.collector, "platform"),
            payment_method=request.payment_method or "online",
            offer=offer_of(request.ticket_types, request.promo_code, request.access_code),
        )
        return await self._order_pb(tenant_id, order, order.replayed)

    async def GetSeasonOrder(
        self, request: seasons_pb2.GetSeasonOrderRequest, context: Context
    ) -> seasons_pb2.SeasonOrderResponse:
        tenant_id = current_principal().require_tenant()
        order = await self._season_sales.get_order(tenant_id, request.season_id, request.season_order_id)
        return await self._order_pb(tenant_id, order, False)


SERVICE = ServiceDeclaration(
    descriptor=seasons_pb2.DESCRIPTOR.services_by_name["SeasonService"],
    add_to_server=seasons_pb2_grpc.add_SeasonServiceServicer_to_server,
    factory=lambda stores: SeasonServicer(
        stores.seasons, stores.season_sales, stores.seatmaps, stores.sales, stores.rate_limits
    ),
    methods={
        "CreateSeason": MethodRule(ORGANIZER),
        "GetSeason": MethodRule(BROWSE),
        "ListSeasons": MethodRule(BROWSE),
        "SetSeasonPrices": MethodRule(ORGANIZER),
        "HoldSeasonSeats": MethodRule(SALES),
        "GetSeasonHold": MethodRule(SALES),
        "ExtendSeasonHold": MethodRule(SALES, Admit.ALWAYS),  # buyers who hold seats can still pay
        "ReleaseSeasonHold": MethodRule(SALES, Admit.ALWAYS),  # frees capacity
        "CommitSeasonHold": MethodRule(SALES, Admit.ALWAYS),
        "GetSeasonOrder": MethodRule(BROWSE),
    },
)
