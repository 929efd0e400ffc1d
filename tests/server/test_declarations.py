"""Every method of every seatwise.v1 service is declared once: its roles and its admission.

The expected tables are copied here on purpose: widening a method's roles or
letting a method through under overload must be a conscious change to this test.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import seatwise.v1

from holds.records import RoleName
from server.admission import Admit
from server.app import SERVICE_NAMES, SERVICES
from server.declarations import MethodRule, ServiceDeclaration, method_rules
from server.servicers import tenancy

# every generated seatwise/v1/*_pb2 module, so a new proto file is walked too
PROTO_MODULES = tuple(
    importlib.import_module(f"seatwise.v1.{m.name}")
    for m in pkgutil.iter_modules(seatwise.v1.__path__)
    if m.name.endswith("_pb2")
)

# Spelled out role by role (not the server's sets): widening one is a change here too.
ROOT: frozenset[RoleName] = frozenset({"root_admin"})
OPERATOR: frozenset[RoleName] = ROOT | {"platform_admin"}
ORGANIZER: frozenset[RoleName] = OPERATOR | {"organizer"}
BOX_OFFICE: frozenset[RoleName] = ORGANIZER | {"box_office"}
SELLING: frozenset[RoleName] = BOX_OFFICE | {"storefront"}
REPORTING: frozenset[RoleName] = BOX_OFFICE | {"reporting"}
BROWSE: frozenset[RoleName] = SELLING | {"reporting"}
EVERYONE: frozenset[RoleName] = BROWSE | {"door"}
DOOR: frozenset[RoleName] = ORGANIZER | {"door"}

EXPECTED_ROLES: dict[str, frozenset[RoleName]] = {
    "/seatwise.v1.TenantService/CreateTenant": OPERATOR,
    "/seatwise.v1.TenantService/GetTenant": ORGANIZER,
    "/seatwise.v1.TenantService/ListTenants": OPERATOR,
    "/seatwise.v1.TenantService/CreateApiKey": ORGANIZER,
    "/seatwise.v1.TenantService/RevokeApiKey": ORGANIZER,
    "/seatwise.v1.TenantService/ListApiKeys": ORGANIZER,
    "/seatwise.v1.TenantService/WhoAmI": EVERYONE,
    "/seatwise.v1.SeatMapService/ValidateSeatMap": ORGANIZER,
    "/seatwise.v1.SeatMapService/UploadSeatMap": ORGANIZER,
    "/seatwise.v1.SeatMapService/PublishSeatMap": ORGANIZER,
    "/seatwise.v1.SeatMapService/GetSeatMap": BROWSE,
    "/seatwise.v1.SeatMapService/ListSeatMaps": BROWSE,
    "/seatwise.v1.SeatMapService/QuerySeats": BROWSE,
    "/seatwise.v1.SeatMapService/RenderSeatMap": BROWSE,
    "/seatwise.v1.EventService/CreateEvent": ORGANIZER,
    "/seatwise.v1.EventService/GetEvent": BROWSE,
    "/seatwise.v1.EventService/ListEvents": BROWSE,
    "/seatwise.v1.EventService/UpdateEvent": ORGANIZER,
    "/seatwise.v1.EventService/SetSeatStatus": ORGANIZER,
    "/seatwise.v1.EventService/MoveEventToSeatMapVersion": ORGANIZER,
    "/seatwise.v1.FeedService/Subscribe": ORGANIZER,
    "/seatwise.v1.FeedService/UpdateConsent": ORGANIZER,
    "/seatwise.v1.FeedService/EraseBuyer": ORGANIZER,
    # tickets and the door: scanners (DOOR) scan; anyone selling or scanning reads the public keys
    "/seatwise.v1.TicketService/GetTicketToken": SELLING,
    "/seatwise.v1.TicketService/GetTicketKeys": SELLING | {"door"},
    "/seatwise.v1.TicketService/RotateTicketKey": ORGANIZER,
    "/seatwise.v1.TicketService/RevokeTicketKey": ORGANIZER,
    "/seatwise.v1.AccessService/ScanTicket": DOOR,
    "/seatwise.v1.AccessService/ExitTicket": DOOR,
    "/seatwise.v1.AccessService/UploadOfflineScans": DOOR,
    "/seatwise.v1.AccessService/GetCheckInStats": DOOR,
    "/seatwise.v1.AccessService/SetDoorRules": ORGANIZER,
    # ticket types and promo codes: organizers define them, sellers list what they may offer
    "/seatwise.v1.OfferService/CreateTicketType": ORGANIZER,
    "/seatwise.v1.OfferService/UpdateTicketType": ORGANIZER,
    "/seatwise.v1.OfferService/DisableTicketType": ORGANIZER,
    "/seatwise.v1.OfferService/ListTicketTypes": ORGANIZER,
    "/seatwise.v1.OfferService/ListOfferedTicketTypes": SELLING,
    "/seatwise.v1.OfferService/CreatePromoCode": ORGANIZER,
    "/seatwise.v1.OfferService/UpdatePromoCode": ORGANIZER,
    "/seatwise.v1.OfferService/DisablePromoCode": ORGANIZER,
    "/seatwise.v1.OfferService/ListPromoCodes": ORGANIZER,
    "/seatwise.v1.ChannelService/DefineChannel": ORGANIZER,
    "/seatwise.v1.ChannelService/AllocateToChannel": ORGANIZER,
    "/seatwise.v1.ChannelService/CloseChannel": ORGANIZER,
    "/seatwise.v1.ChannelService/ListChannels": ORGANIZER,
    "/seatwise.v1.EventService/GetAvailability": BROWSE,
    "/seatwise.v1.EventService/WatchAvailability": BROWSE,
    "/seatwise.v1.HoldService/HoldSeats": SELLING,
    "/seatwise.v1.HoldService/HoldBestAvailable": SELLING,
    "/seatwise.v1.HoldService/HoldGeneralAdmission": SELLING,
    "/seatwise.v1.HoldService/ExtendHold": SELLING,
    "/seatwise.v1.HoldService/ReleaseHold": SELLING,
    "/seatwise.v1.HoldService/GetHold": SELLING,
    "/seatwise.v1.OrderService/CommitHold": SELLING,
    "/seatwise.v1.OrderService/GetOrder": BROWSE,
    "/seatwise.v1.OrderService/ListOrders": REPORTING,
    "/seatwise.v1.OrderService/CancelOrder": BOX_OFFICE,
    # the counter: box office staff and the organizer sell without a hold and refund
    "/seatwise.v1.OrderService/SellAtBoxOffice": BOX_OFFICE,
    "/seatwise.v1.OrderService/RefundOrder": BOX_OFFICE,
    "/seatwise.v1.SalesService/Session": SELLING,
    "/seatwise.v1.PlatformService/CreatePlatform": ROOT,
    "/seatwise.v1.PlatformService/ListPlatforms": ROOT,
    "/seatwise.v1.PlatformService/GetPlatform": OPERATOR,
    "/seatwise.v1.PlatformService/UpdatePlatform": OPERATOR,
    "/seatwise.v1.PlatformService/SignUpOrganizer": OPERATOR,
    "/seatwise.v1.PlatformService/GetOrganizer": ORGANIZER,
    "/seatwise.v1.PlatformService/ListOrganizers": OPERATOR,
    "/seatwise.v1.PlatformService/SuspendOrganizer": OPERATOR,
    "/seatwise.v1.PlatformService/ReinstateOrganizer": OPERATOR,
    "/seatwise.v1.PlatformService/ListAuditLog": ORGANIZER,
    "/seatwise.v1.PlatformService/CreatePlan": OPERATOR,
    "/seatwise.v1.PlatformService/ListPlans": ORGANIZER,
    # exports carry buyers' personal data in bulk: admins and reporting keys, not the box office
    "/seatwise.v1.ExportService/Export": ORGANIZER | {"reporting"},
    # figures and plots: whoever may read orders
    "/seatwise.v1.ReportService/GetEventReport": REPORTING,
    "/seatwise.v1.ReportService/RenderSalesChart": REPORTING,
    "/seatwise.v1.ReportService/RenderHeatMap": REPORTING,
    "/seatwise.v1.ReportService/GetPlatformReport": OPERATOR,  # every organizer's figures
    # statements: the organizer's admins and reporting keys read their own, operators any of theirs
    "/seatwise.v1.PlatformService/GetStatement": ORGANIZER | {"reporting"},
    # resale sellers' scores and fees: the platform's business
    "/seatwise.v1.SellerService/SetSellerScoring": OPERATOR,
    "/seatwise.v1.SellerService/GetSellerScoring": OPERATOR,
    "/seatwise.v1.SellerService/RecordSellerOrders": OPERATOR,
    "/seatwise.v1.SellerService/RateSeller": OPERATOR,
    "/seatwise.v1.SellerService/GetSellerMetrics": OPERATOR,
    # branding and the hub are what storefronts render: every key of the platform reads them
    "/seatwise.v1.PlatformService/GetBranding": EVERYONE,
    "/seatwise.v1.PlatformService/UpdateBranding": ORGANIZER,
    "/seatwise.v1.PlatformService/ListHubEvents": EVERYONE,
    "/seatwise.v1.PlatformService/ExportOrganizers": OPERATOR,
    "/seatwise.v1.PlatformService/ListNotifications": ORGANIZER,
    "/seatwise.v1.PlatformService/ChangePlan": OPERATOR,
    "/seatwise.v1.PlatformService/MarkStatementPaid": OPERATOR,
    # after the sale: storefronts act for their buyers (transfer, list, buy a listing); exchanges
    # move money at the counter; the organizer sets resale limits; reporting reads resales
    "/seatwise.v1.AfterSaleService/TransferTicket": SELLING,
    "/seatwise.v1.AfterSaleService/ExchangeTickets": BOX_OFFICE,
    "/seatwise.v1.AfterSaleService/SetResaleRules": ORGANIZER,
    "/seatwise.v1.AfterSaleService/GetResaleRules": BROWSE,
    "/seatwise.v1.AfterSaleService/ListTicketForResale": SELLING,
    "/seatwise.v1.AfterSaleService/WithdrawListing": SELLING,
    "/seatwise.v1.AfterSaleService/ListListings": BROWSE,
    "/seatwise.v1.AfterSaleService/HoldListing": SELLING,
    "/seatwise.v1.AfterSaleService/CommitListing": SELLING,
    "/seatwise.v1.AfterSaleService/ListResales": REPORTING,
    "/seatwise.v1.SeasonService/CreateSeason": ORGANIZER,
    "/seatwise.v1.SeasonService/GetSeason": BROWSE,
    "/seatwise.v1.SeasonService/ListSeasons": BROWSE,
    "/seatwise.v1.SeasonService/SetSeasonPrices": ORGANIZER,
    "/seatwise.v1.SeasonService/HoldSeasonSeats": SELLING,
    "/seatwise.v1.SeasonService/GetSeasonHold": SELLING,
    "/seatwise.v1.SeasonService/ExtendSeasonHold": SELLING,
    "/seatwise.v1.SeasonService/ReleaseSeasonHold": SELLING,
    "/seatwise.v1.SeasonService/CommitSeasonHold": SELLING,
    "/seatwise.v1.SeasonService/GetSeasonOrder": BROWSE,
}
# Every change of keys, plans, suspension or platform settings is written to the audit log.
AUDITED = {
    "/seatwise.v1.EventService/MoveEventToSeatMapVersion",
    "/seatwise.v1.TenantService/CreateTenant",
    "/seatwise.v1.TenantService/CreateApiKey",
    "/seatwise.v1.TenantService/RevokeApiKey",
    "/seatwise.v1.PlatformService/CreatePlatform",
    "/seatwise.v1.PlatformService/UpdatePlatform",
    "/seatwise.v1.PlatformService/SignUpOrganizer",
    "/seatwise.v1.PlatformService/SuspendOrganizer",
    "/seatwise.v1.PlatformService/ReinstateOrganizer",
    "/seatwise.v1.PlatformService/CreatePlan",
    "/seatwise.v1.SellerService/SetSellerScoring",  # what sellers pay
    "/seatwise.v1.SellerService/RateSeller",
    "/seatwise.v1.PlatformService/UpdateBranding",
    "/seatwise.v1.PlatformService/ChangePlan",
    "/seatwise.v1.PlatformService/MarkStatementPaid",
    "/seatwise.v1.OrderService/RefundOrder",  # money out (SellAtBoxOffice audits its overrides itself)
    "/seatwise.v1.AfterSaleService/ExchangeTickets",  # money changes
    "/seatwise.v1.AfterSaleService/SetResaleRules",
}
ALWAYS_ADMITTED = {
    "/seatwise.v1.OrderService/CommitHold",
    "/seatwise.v1.AfterSaleService/CommitListing",
    "/seatwise.v1.HoldService/ExtendHold",
    "/seatwise.v1.HoldService/ReleaseHold",
    "/seatwise.v1.SeasonService/ExtendSeasonHold",
    "/seatwise.v1.SeasonService/ReleaseSeasonHold",
    "/seatwise.v1.SeasonService/CommitSeasonHold",
    # the stream itself: each of its messages is admitted by its operation's own rule
    "/seatwise.v1.SalesService/Session",
}


def _proto_methods() -> set[str]:
    return {
        f"/{service.full_name}/{method.name}"
        for module in PROTO_MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_every_proto_method_is_declared_and_nothing_else() -> None:
    assert len(PROTO_MODULES) >= 5
    declared = set(method_rules(SERVICES))
    proto = _proto_methods()
    assert proto - declared == set(), "methods without a declaration (add a MethodRule)"
    assert declared - proto == set(), "declarations of methods the protos do not have"


def test_every_proto_service_is_served_once() -> None:
    proto_services = {s.full_name for m in PROTO_MODULES for s in m.DESCRIPTOR.services_by_name.values()}
    assert sorted(SERVICE_NAMES) == sorted(proto_services)


def test_roles_per_method_are_the_expected_ones() -> None:
    assert {path: rule.roles for path, rule in method_rules(SERVICES).items()} == EXPECTED_ROLES


def test_changes_of_keys_plans_and_suspension_are_audited() -> None:
    assert {path for path, rule in method_rules(SERVICES).items() if rule.audited} == AUDITED


def test_only_purchase_finishing_methods_are_always_admitted() -> None:
    always = {path for path, rule in method_rules(SERVICES).items() if rule.admission is Admit.ALWAYS}
    assert always == ALWAYS_ADMITTED


def test_a_declaration_of_a_missing_method_is_refused() -> None:
    with pytest.raises(ValueError, match="does not have: \\['Whoami'\\]"):
        ServiceDeclaration(
            descriptor=tenancy.SERVICE.descriptor,
            add_to_server=tenancy.SERVICE.add_to_server,
            factory=tenancy.SERVICE.factory,
            methods={"Whoami": MethodRule(SELLING)},
        )
