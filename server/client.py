"""A small synchronous client for the CLI (and the README tour)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import click
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from seatwise.v1 import (
    access_pb2,
    access_pb2_grpc,
    aftersale_pb2,
    aftersale_pb2_grpc,
    channels_pb2,
    channels_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    feed_pb2,
    feed_pb2_grpc,
    offers_pb2_grpc,
    platform_pb2,
    platform_pb2_grpc,
    reports_pb2,
    reports_pb2_grpc,
    sales_pb2,
    sales_pb2_grpc,
    seasons_pb2,
    seasons_pb2_grpc,
    seatmap_pb2,
    seatmap_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
)

from server.auth import TENANT_HEADER

_FORMATS = {
    "native": seatmap_pb2.SEAT_MAP_FORMAT_NATIVE_JSON,
    "pretix": seatmap_pb2.SEAT_MAP_FORMAT_PRETIX_JSON,
}
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# A hold whose outcome is unknown is sent once more with the same request id:
# the server answers the hold the first attempt made, or makes it now.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


# failures an operator looks into: the error names the call's request id
SERVER_SIDE = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE})


def _category_prices(prices: dict[str, int]) -> list[events_pb2.CategoryPrice]:
    return [events_pb2.CategoryPrice(category=k, amount_minor=v) for k, v in prices.items()]


def describe_error(error: grpc.RpcError) -> str:
    """Status, message and the field violations of a failed call, one per line."""
    call = cast(grpc.Call, error)  # a failed call's RpcError is also its Call
    lines = [f"{call.code().name}: {call.details()}"]
    status = rpc_status.from_call(call)
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            lines += [f"  {v.field}: {v.description}" for v in bad.field_violations]
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            lines += [f"  {v.subject}: {v.description}" for v in failure.violations]
        info = error_details_pb2.RequestInfo()
        if detail.Unpack(info) and call.code() in SERVER_SIDE:
            lines.append(f"  request id {info.request_id} (on the server's log lines about this call)")
    return "\n".join(lines)


def _hint(error: grpc.RpcError, target: str) -> str:
    """A next step for the failures a newcomer meets first."""
    call = cast(grpc.Call, error)
    details = (call.details() or "").lower()
    if call.code() == grpc.StatusCode.UNAVAILABLE and ("connect" in details or "refused" in details):
        return (
            f"\n  no server answers at {target}: start one with 'make serve' (or 'seatwise serve'), "
            "or name another with --target / SEATWISE_TARGET"
        )
    if call.code() == grpc.StatusCode.PERMISSION_DENIED and "x-seatwise-tenant" in details:
        return "\n  a platform-admin key acts on a tenant named with --tenant / SEATWISE_TENANT"
    return ""


def channel_credentials(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files (None: plaintext, when none is given).

    ``ca``: the CA that signed the server's certificate (None: the system's roots);
    ``cert`` and ``key``: this client's certificate, for a server that requires one."""
    if ca is None and cert is None and key is None:
        return None
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes() if ca is not None else None,
        private_key=key.read_bytes() if key is not None else None,
        certificate_chain=cert.read_bytes() if cert is not None else None,
    )


class Client:
    def __init__(
        self,
        target: str,
        api_key: str,
        tenant: str = "",
        timeout_s: float = 60.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._target = target
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._metadata = [("authorization", f"Bearer {api_key}")]
        if tenant:
            self._metadata.append((TENANT_HEADER, tenant))
        self._timeout = timeout_s
        self.seatmaps = seatmap_pb2_grpc.SeatMapServiceStub(self._channel)
        self.tenants = tenancy_pb2_grpc.TenantServiceStub(self._channel)
        self.events = events_pb2_grpc.EventServiceStub(self._channel)
        self.holds = sales_pb2_grpc.HoldServiceStub(self._channel)
        self.orders = sales_pb2_grpc.OrderServiceStub(self._channel)
        self.tickets = access_pb2_grpc.TicketServiceStub(self._channel)
        self.access = access_pb2_grpc.AccessServiceStub(self._channel)
        self.platforms = platform_pb2_grpc.PlatformServiceStub(self._channel)
        self.reports = reports_pb2_grpc.ReportServiceStub(self._channel)
        self.offers = offers_pb2_grpc.OfferServiceStub(self._channel)
        self.channels = channels_pb2_grpc.ChannelServiceStub(self._channel)
        self.after_sale = aftersale_pb2_grpc.AfterSaleServiceStub(self._channel)
        self.seasons = seasons_pb2_grpc.SeasonServiceStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self._channel.close()

    def call(self, method: grpc.UnaryUnaryMultiCallable[Any, Any], request: object) -> Any:
        """One unary call; a failure is a one-line ClickException."""
        return self._call(method, request)

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Any, Any], request: object) -> Any:
        try:
            return method(request, metadata=tuple(self._metadata), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise click.ClickException(describe_error(exc) + _hint(exc, self._target)) from exc

    def _pages(self, method: grpc.UnaryUnaryMultiCallable[Any, Any], request: Any, field: str) -> list[Any]:
        """Every item of a paged list (following next_page_token)."""
        items: list[Any] = []
        while True:
            response = self._call(method, request)
            items += getattr(response, field)
            if not response.next_page_token:
                return items
            request.page.page_token = response.next_page_token

    def query_nearest(self, seat_map_id: str, x: float, y: float, count: int) -> list[seatmap_pb2.SeatInfo]:
        request = seatmap_pb2.QuerySeatsRequest(
            seat_map_id=seat_map_id,
            nearest=seatmap_pb2.Nearest(point=common_pb2.Point(x=x, y=y), count=count),
        )
        return list(self._call(self.seatmaps.QuerySeats, request).seats)

    def create_event(
        self,
        seat_map_id: str,
        name: str,
        currency: str,
        prices: dict[str, int],
        on_sale: bool,
        season_id: str = "",
    ) -> events_pb2.Event:
        request = events_pb2.CreateEventRequest(
            seat_map_id=seat_map_id,
            season_id=season_id,
            name=name,
            currency=currency,
            prices=[events_pb2.CategoryPrice(category=k, amount_minor=v) for k, v in prices.items()],
            status=events_pb2.EVENT_STATUS_ON_SALE if on_sale else events_pb2.EVENT_STATUS_DRAFT,
        )
        event: events_pb2.Event = self._call(self.events.CreateEvent, request).event
        return event

    # -- seasons and bundles ------------------------------------------------------------
    def create_season(
        self, seat_map_id: str, name: str, currency: str, bundle_prices: dict[str, int] | None = None
    ) -> seasons_pb2.Season:
        request = seasons_pb2.CreateSeasonRequest(
            seat_map_id=seat_map_id, name=name, currency=currency,
            bundle_prices=_category_prices(bundle_prices or {}),
        )  # fmt: skip
        season: seasons_pb2.Season = self._call(self.seasons.CreateSeason, request).season
        return season

    def set_season_prices(self, season_id: str, bundle_prices: dict[str, int]) -> seasons_pb2.Season:
        request = seasons_pb2.SetSeasonPricesRequest(
            season_id=season_id, bundle_prices=_category_prices(bundle_prices)
        )
        season: seasons_pb2.Season = self._call(self.seasons.SetSeasonPrices, request).season
        return season

    def get_season(self, season_id: str) -> seasons_pb2.Season:
        request = seasons_pb2.GetSeasonRequest(season_id=season_id)
        season: seasons_pb2.Season = self._call(self.seasons.GetSeason, request).season
        return season

    def list_seasons(self) -> list[seasons_pb2.Season]:
        return self._pages(self.seasons.ListSeasons, seasons_pb2.ListSeasonsRequest(), "seasons")

    def hold_season(
        self,
        season_id: str,
        seat_ids: list[str],
        event_ids: list[str],
        *,
        request_id: str = "",
        access: channels_pb2.ChannelAccess | None = None,
        ga: dict[str, int] | None = None,
    ) -> seasons_pb2.SeasonHoldResponse:
        """Retried like a single hold (:meth:`_hold`: with a request id, once more when unknown)."""
        request = seasons_pb2.HoldSeasonSeatsRequest(
            season_id=season_id, seat_ids=seat_ids, event_ids=event_ids, request_id=request_id,
            channel_access=access, general_admission=ga or {},
        )  # fmt: skip
        return cast(seasons_pb2.SeasonHoldResponse, self._hold(self.seasons.HoldSeasonSeats, request))

    def commit_season(
        self,
        token: str,
        idempotency_key: str,
        name: str,
        email: str,
        *,
        ticket_types: list[sales_pb2.TicketTypeChoice] | None = None,
        promo_code: str = "",
        access_code: str = "",
    ) -> seasons_pb2.SeasonOrderResponse:
        request = seasons_pb2.CommitSeasonHoldRequest(
            season_hold_token=token, idempotency_key=idempotency_key,
            buyer=sales_pb2.BuyerDetails(name=name, email=email), ticket_types=ticket_types or [],
            promo_code=promo_code, access_code=access_code,
        )  # fmt: skip
        response: seasons_pb2.SeasonOrderResponse = self._call(self.seasons.CommitSeasonHold, request)
        return response

    def release_season(self, token: str) -> None:
        self._call(self.seasons.ReleaseSeasonHold, seasons_pb2.SeasonHoldRequest(season_hold_token=token))

    def set_distancing(
        self, event_id: str, seats_in_row: int = 0, metres: float = 0.0, units_per_metre: float = 0.0
    ) -> events_pb2.Event:
        """Set the event's minimum-distance rule (all zero: remove it)."""
        rule = events_pb2.Distancing(
            seats_in_row=seats_in_row, metres=metres, layout_units_per_metre=units_per_metre
        )
        request = events_pb2.UpdateEventRequest(event_id=event_id, distancing=rule)
        event: events_pb2.Event = self._call(self.events.UpdateEvent, request).event
        return event

    def availability(self, event_id: str) -> events_pb2.GetAvailabilityResponse:
        response: events_pb2.GetAvailabilityResponse = self._call(
            self.events.GetAvailability, events_pb2.GetAvailabilityRequest(event_id=event_id)
        )
        return response

    def _hold(self, method: grpc.UnaryUnaryMultiCallable[Any, Any], request: Any) -> sales_pb2.HoldResponse:
        """A hold call with a request id (a new UUID unless the request has one), sent once
        more with the same id when its outcome is unknown (UNAVAILABLE, DEADLINE_EXCEEDED)."""
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        try:
            response: sales_pb2.HoldResponse = method(
                request, metadata=tuple(self._metadata), timeout=self._timeout
            )
        except grpc.RpcError as exc:
            if cast(grpc.Call, exc).code() not in RETRYABLE:
                raise click.ClickException(describe_error(exc) + _hint(exc, self._target)) from exc
            response = self._call(method, request)
        return response

    def hold_best(
        self,
        event_id: str,
        quantity: int,
        categories: list[str],
        request_id: str = "",
        access: channels_pb2.ChannelAccess | None = None,
    ) -> sales_pb2.HoldResponse:
        request = sales_pb2.HoldBestAvailableRequest(
            event_id=event_id, quantity=quantity, categories=categories, request_id=request_id,
            channel_access=access,
        )  # fmt: skip
        return self._hold(self.holds.HoldBestAvailable, request)

    def hold_seats(
        self,
        event_id: str,
        seat_ids: list[str],
        request_id: str = "",
        access: channels_pb2.ChannelAccess | None = None,
    ) -> sales_pb2.HoldResponse:
        request = sales_pb2.HoldSeatsRequest(
            event_id=event_id, seat_ids=seat_ids, request_id=request_id, channel_access=access
        )
        return self._hold(self.holds.HoldSeats, request)

    def commit(
        self,
        token: str,
        idempotency_key: str,
        name: str,
        email: str,
        *,
        ticket_types: list[sales_pb2.TicketTypeChoice] | None = None,
        promo_code: str = "",
        access_code: str = "",
    ) -> sales_pb2.CommitHoldResponse:
        request = sales_pb2.CommitHoldRequest(
            hold_token=token,
            idempotency_key=idempotency_key,
            buyer=sales_pb2.BuyerDetails(name=name, email=email),
            ticket_types=ticket_types or [],
            promo_code=promo_code,
            access_code=access_code,
        )
        response: sales_pb2.CommitHoldResponse = self._call(self.orders.CommitHold, request)
        return response

    def upload_seatmap(self, content: bytes, fmt: str, seat_map_id: str = "") -> seatmap_pb2.SeatMapInfo:
        request = seatmap_pb2.UploadSeatMapRequest(
            seat_map_id=seat_map_id, content=content, format=_FORMATS[fmt]
        )
        info: seatmap_pb2.SeatMapInfo = self._call(self.seatmaps.UploadSeatMap, request).seat_map
        return info

    def publish_seatmap(self, seat_map_id: str, version: int) -> seatmap_pb2.SeatMapInfo:
        request = seatmap_pb2.PublishSeatMapRequest(seat_map_id=seat_map_id, version=version)
        info: seatmap_pb2.SeatMapInfo = self._call(self.seatmaps.PublishSeatMap, request).seat_map
        return info

    def create_tenant_with_key(self, tenant_id: str, name: str) -> tuple[str, str]:
        created = self._call(
            self.tenants.CreateTenant, tenancy_pb2.CreateTenantRequest(tenant_id=tenant_id, name=name)
        )
        key = self._call(
            self.tenants.CreateApiKey,
            tenancy_pb2.CreateApiKeyRequest(
                tenant_id=created.tenant.tenant_id, role=tenancy_pb2.ROLE_ORGANIZER, label="created by CLI"
            ),
        )
        return str(created.tenant.tenant_id), str(key.api_key)

    def list_seatmaps(self) -> list[seatmap_pb2.SeatMapInfo]:
        request = seatmap_pb2.ListSeatMapsRequest(page=common_pb2.PageRequest(page_size=500))
        return self._pages(self.seatmaps.ListSeatMaps, request, "seat_maps")

    def get_seatmap(self, seat_map_id: str, version: int = 0) -> seatmap_pb2.SeatMapInfo:
        request = seatmap_pb2.GetSeatMapRequest(seat_map_id=seat_map_id, version=version)
        info: seatmap_pb2.SeatMapInfo = self._call(self.seatmaps.GetSeatMap, request).seat_map
        return info

    def list_events(self) -> list[events_pb2.Event]:
        request = events_pb2.ListEventsRequest(page=common_pb2.PageRequest(page_size=500))
        return self._pages(self.events.ListEvents, request, "events")

    def get_event(self, event_id: str) -> events_pb2.Event:
        event: events_pb2.Event = self._call(
            self.events.GetEvent, events_pb2.GetEventRequest(event_id=event_id)
        ).event
        return event

    def move_event(
        self, event_id: str, version: int, mapping: dict[str, str], dry_run: bool
    ) -> events_pb2.MoveEventToSeatMapVersionResponse:
        request = events_pb2.MoveEventToSeatMapVersionRequest(
            event_id=event_id, seat_map_version=version, seat_mapping=mapping, dry_run=dry_run
        )
        response: events_pb2.MoveEventToSeatMapVersionResponse = self._call(
            self.events.MoveEventToSeatMapVersion, request
        )
        return response

    def set_seat_status(
        self,
        event_id: str,
        seat_ids: list[str],
        section_ids: list[str],
        status: events_pb2.SeatStatus.ValueType,
    ) -> events_pb2.SetSeatStatusResponse:
        request = events_pb2.SetSeatStatusRequest(
            event_id=event_id,
            selection=events_pb2.SeatSelection(seat_ids=seat_ids, section_ids=section_ids),
            status=status,
        )
        response: events_pb2.SetSeatStatusResponse = self._call(self.events.SetSeatStatus, request)
        return response

    def get_hold(self, token: str) -> sales_pb2.Hold:
        hold: sales_pb2.Hold = self._call(self.holds.GetHold, sales_pb2.GetHoldRequest(hold_token=token)).hold
        return hold

    def release(self, token: str, seat_ids: list[str]) -> int:
        request = sales_pb2.ReleaseHoldRequest(hold_token=token, seat_ids=seat_ids)
        return int(self._call(self.holds.ReleaseHold, request).remaining)

    def get_order(self, event_id: str, order_id: str) -> sales_pb2.Order:
        request = sales_pb2.GetOrderRequest(event_id=event_id, order_id=order_id)
        order: sales_pb2.Order = self._call(self.orders.GetOrder, request).order
        return order

    def list_orders(self, event_id: str) -> list[sales_pb2.Order]:
        request = sales_pb2.ListOrdersRequest(event_id=event_id, page=common_pb2.PageRequest(page_size=500))
        return self._pages(self.orders.ListOrders, request, "orders")

    def cancel_order(
        self, event_id: str, order_id: str, ticket_ids: list[str], not_for_sale: bool, reason: str
    ) -> sales_pb2.Order:
        request = sales_pb2.CancelOrderRequest(
            event_id=event_id,
            order_id=order_id,
            ticket_ids=ticket_ids,
            release_to_not_for_sale=not_for_sale,
            reason=reason,
        )
        order: sales_pb2.Order = self._call(self.orders.CancelOrder, request).order
        return order

    # -- the lifecycle feed (docs/data.md): `seatwise feed tail`
    def feed_tail(self, cursor: str, from_now: bool) -> Iterator[feed_pb2.FeedMessage]:
        """The feed's messages from ``cursor`` (or from now) on, as the server sends them; no deadline."""
        stub = feed_pb2_grpc.FeedServiceStub(self._channel)
        request = feed_pb2.SubscribeRequest(cursor=cursor, from_now=from_now)
        try:
            yield from stub.Subscribe(request, metadata=tuple(self._metadata))
        except grpc.RpcError as exc:
            raise click.ClickException(describe_error(exc) + _hint(exc, self._target)) from exc

    def export(self, request: reports_pb2.ExportRequest) -> Iterator[reports_pb2.ExportChunk]:
        """An export's chunks as the server sends them; no deadline (a stadium takes a while)."""
        stub = reports_pb2_grpc.ExportServiceStub(self._channel)
        try:
            yield from stub.Export(request, metadata=tuple(self._metadata))
        except grpc.RpcError as exc:
            raise click.ClickException(describe_error(exc) + _hint(exc, self._target)) from exc

    def export_organizers(
        self, request: platform_pb2.ExportOrganizersRequest
    ) -> Iterator[platform_pb2.ExportOrganizersChunk]:
        """The platform's organizers as CSV chunks; no deadline."""
        try:
            yield from self.platforms.ExportOrganizers(request, metadata=tuple(self._metadata))
        except grpc.RpcError as exc:
            raise click.ClickException(describe_error(exc) + _hint(exc, self._target)) from exc

    # -- tickets and the door (docs/door.md) ---------------------------------------------------
    # -- after the sale (docs/selling.md) ---------------------------------------------
    def transfer_ticket(
        self, event_id: str, order_id: str, ticket_id: str, revision: int, name: str, email: str
    ) -> aftersale_pb2.TransferTicketResponse:
        holder = sales_pb2.BuyerDetails(name=name, email=email)
        request = aftersale_pb2.TransferTicketRequest(
            event_id=event_id, order_id=order_id, ticket_id=ticket_id, revision=revision, new_holder=holder
        )
        return cast(aftersale_pb2.TransferTicketResponse, self._call(self.after_sale.TransferTicket, request))

    def exchange_tickets(
        self,
        event_id: str,
        order_id: str,
        ticket_ids: list[str],
        seat_ids: list[str],
        hold_token: str,
        key: str,
        target_event_id: str = "",
    ) -> aftersale_pb2.ExchangeTicketsResponse:
        request = aftersale_pb2.ExchangeTicketsRequest(
            event_id=event_id, order_id=order_id, ticket_ids=ticket_ids, seat_ids=seat_ids,
            hold_token=hold_token, exchange_key=key, target_event_id=target_event_id,
        )  # fmt: skip
        return cast(
            aftersale_pb2.ExchangeTicketsResponse, self._call(self.after_sale.ExchangeTickets, request)
        )

    def set_resale_rules(
        self, event_id: str, allowed: bool, floor: int, cap: int
    ) -> aftersale_pb2.ResaleRules:
        request = aftersale_pb2.SetResaleRulesRequest(
            event_id=event_id, allowed=allowed, floor=floor, cap=cap
        )
        return cast(aftersale_pb2.ResaleRules, self._call(self.after_sale.SetResaleRules, request))

    def list_for_resale(
        self, event_id: str, order_id: str, ticket_id: str, revision: int, price: int, seller_id: str
    ) -> aftersale_pb2.ListingResponse:
        request = aftersale_pb2.ListTicketForResaleRequest(
            event_id=event_id, order_id=order_id, ticket_id=ticket_id, revision=revision, price=price,
            seller_id=seller_id,
        )  # fmt: skip
        return cast(aftersale_pb2.ListingResponse, self._call(self.after_sale.ListTicketForResale, request))

    def withdraw_listing(self, event_id: str, order_id: str, ticket_id: str) -> aftersale_pb2.ListingResponse:
        request = aftersale_pb2.WithdrawListingRequest(
            event_id=event_id, order_id=order_id, ticket_id=ticket_id
        )
        return cast(aftersale_pb2.ListingResponse, self._call(self.after_sale.WithdrawListing, request))

    def listings(self, event_id: str) -> aftersale_pb2.ListListingsResponse:
        request = aftersale_pb2.ListListingsRequest(event_id=event_id)
        return cast(aftersale_pb2.ListListingsResponse, self._call(self.after_sale.ListListings, request))

    def hold_listing(
        self, event_id: str, ticket_id: str, listing_id: str, buyer_id: str
    ) -> aftersale_pb2.HoldListingResponse:
        request = aftersale_pb2.HoldListingRequest(
            event_id=event_id, ticket_id=ticket_id, listing_id=listing_id, buyer_id=buyer_id
        )
        return cast(aftersale_pb2.HoldListingResponse, self._call(self.after_sale.HoldListing, request))

    def commit_listing(
        self, hold_token: str, resale_key: str, name: str, email: str
    ) -> aftersale_pb2.CommitListingResponse:
        buyer = sales_pb2.BuyerDetails(name=name, email=email)
        request = aftersale_pb2.CommitListingRequest(
            hold_token=hold_token, resale_key=resale_key, buyer=buyer
        )
        return cast(aftersale_pb2.CommitListingResponse, self._call(self.after_sale.CommitListing, request))

    def resales(self, event_id: str) -> aftersale_pb2.ListResalesResponse:
        request = aftersale_pb2.ListResalesRequest(event_id=event_id)
        return cast(aftersale_pb2.ListResalesResponse, self._call(self.after_sale.ListResales, request))

    def ticket_token(
        self, event_id: str, order_id: str, ticket_id: str, png: bool
    ) -> access_pb2.GetTicketTokenResponse:
        request = access_pb2.GetTicketTokenRequest(
            event_id=event_id, order_id=order_id, ticket_id=ticket_id, qr_png=png
        )
        response: access_pb2.GetTicketTokenResponse = self._call(self.tickets.GetTicketToken, request)
        return response

    def scan_ticket(
        self, event_id: str, token: str, gate: str, device_id: str
    ) -> access_pb2.ScanTicketResponse:
        request = access_pb2.ScanTicketRequest(event_id=event_id, token=token, gate=gate, device_id=device_id)
        response: access_pb2.ScanTicketResponse = self._call(self.access.ScanTicket, request)
        return response
