"""The authorization matrix, walked: every RPC x every role, aimed at another
organizer of the same platform, at another platform's organizer, and at ids
that exist nowhere. A refused role is PERMISSION_DENIED; a denial of another's
resource is the same answer (code and message, the ids aside) as for an id that
does not exist, so a caller learns nothing about what exists elsewhere. Also:
docs/security.md's matrix is the one the declarations generate.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from seatwise.v1 import (
    access_pb2,
    aftersale_pb2,
    channels_pb2,
    events_pb2,
    feed_pb2,
    offers_pb2,
    platform_pb2,
    reports_pb2,
    sales_pb2,
    seasons_pb2,
    seatmap_pb2,
    sellers_pb2,
    session_pb2,
    tenancy_pb2,
)

from holds.records import RoleName
from scripts import security_matrix
from server.app import SERVICES, create_server
from server.auth import TENANT_HEADER
from server.config import Config
from server.context import Stores
from server.declarations import MethodRule
from tests.api import Api
from tests.conftest import ADMIN_KEY
from tests.server.events import make_event
from tests.server.maps import small_map
from tests.server.test_platforms_api import _platform, _sign_up

AT_ONCE = 8  # calls in flight per caller

STAFF = {
    "box_office": tenancy_pb2.ROLE_BOX_OFFICE,
    "door": tenancy_pb2.ROLE_DOOR,
    "storefront": tenancy_pb2.ROLE_STOREFRONT,
    "reporting": tenancy_pb2.ROLE_REPORTING,
}
ORGANIZER_ROLES: tuple[RoleName, ...] = ("organizer", "box_office", "door", "storefront", "reporting")
ID_FIELDS = (
    "organizer_id",
    "tenant_id",
    "platform_id",
    "event_id",
    "seat_map_id",
    "order_id",
    "key_id",
    "hold_token",
    "season_id",
    "season_hold_token",
    "season_order_id",
)

_TYPE = offers_pb2.TicketType(
    type_id="child", name="Child", prices=[events_pb2.CategoryPrice(category="back", amount_minor=100)]
)
_PROMO = offers_pb2.PromoCode(code="MATRIX", kind=offers_pb2.PROMO_KIND_AMOUNT, amount_minor=100)

# Fields a request needs beyond its ids to get as far as looking them up.
EXTRA: dict[str, dict[str, Any]] = {
    "UploadSeatMap": {"content": small_map()},
    "ValidateSeatMap": {"content": small_map()},
    "PublishSeatMap": {"version": 1},
    "RenderSeatMap": {"format": seatmap_pb2.RENDER_FORMAT_SVG},
    "QuerySeats": {"nearest": seatmap_pb2.Nearest(count=1)},
    "CreateEvent": {"name": "Matrix", "currency": "EUR"},
    "UpdateEvent": {"status": events_pb2.EVENT_STATUS_PAUSED},
    "SetSeatStatus": {
        "selection": events_pb2.SeatSelection(seat_ids=["r0-5"]),
        "status": events_pb2.SEAT_STATUS_BLOCKED,
    },
    "MoveEventToSeatMapVersion": {"seat_map_version": 2, "dry_run": True},
    "HoldSeats": {"seat_ids": ["r0-4"]},
    "HoldBestAvailable": {"quantity": 1},
    "HoldGeneralAdmission": {"area_id": "ga", "quantity": 1},
    "CommitHold": {"idempotency_key": "matrix"},
    "CancelOrder": {"reason": "matrix"},
    "SellAtBoxOffice": {"seat_ids": ["r1-4"], "idempotency_key": "matrix", "payment_method": "cash"},
    "RefundOrder": {
        "refund_key": "matrix",
        "tickets": [sales_pb2.TicketRefund(ticket_id="t", amount_minor=1)],
    },
    "TransferTicket": {"ticket_id": "t", "new_holder": sales_pb2.BuyerDetails(name="Matrix")},
    "ExchangeTickets": {"ticket_ids": ["t"], "seat_ids": ["r1-5"], "exchange_key": "matrix"},
    "SetResaleRules": {"allowed": True},
    "ListTicketForResale": {"ticket_id": "t", "price": 1, "seller_id": "matrix"},
    "WithdrawListing": {"ticket_id": "t"},
    "HoldListing": {"ticket_id": "t", "listing_id": "l"},
    "CommitListing": {"resale_key": "matrix", "buyer": sales_pb2.BuyerDetails(name="Matrix")},
    "CreateApiKey": {"role": tenancy_pb2.ROLE_STOREFRONT},
    "CreateTenant": {"name": "Matrix"},
    "Export": {"kind": reports_pb2.EXPORT_KIND_ORDERS},
    "CreatePlatform": {"name": "Matrix"},
    "SignUpOrganizer": {
        "name": "Matrix",
        "slug": "matrix-org",
        "country": "DE",
        "accepted_terms_version": "v3",
    },
    "SuspendOrganizer": {"reason": "matrix"},
    "UpdatePlatform": {"public_sales_when_suspended": True},
    "RecordSellerOrders": {"seller_id": "seller-1", "orders": [sellers_pb2.SellerOrder(order_id="o1")]},
    "RateSeller": {"seller_id": "seller-1", "criterion": "matrix", "rating_bps": 1},
    "GetSellerMetrics": {"seller_id": "seller-1"},
    "CreatePlan": {
        "plan": platform_pb2.Plan(
            plan_id="matrix",
            default_currency="EUR",
            prices={"EUR": platform_pb2.PlanPrices(monthly_fee=100)},
        )
    },
    "CreateTicketType": {"ticket_type": _TYPE},
    "UpdateTicketType": {"ticket_type": _TYPE},
    "DisableTicketType": {"type_id": "child"},
    "CreatePromoCode": {"promo_code": _PROMO},
    "UpdatePromoCode": {"promo_code": _PROMO},
    "DisablePromoCode": {"code": "MATRIX"},
    "CreateSeason": {"name": "Matrix", "currency": "EUR"},
    "HoldSeasonSeats": {"seat_ids": ["r0-4"]},
    "CommitSeasonHold": {"idempotency_key": "matrix"},
    "DefineChannel": {"channel": channels_pb2.Channel(channel_id="matrix", name="Matrix", access_code="M")},
    "AllocateToChannel": {"channel_id": "matrix", "seat_ids": ["r1-3"]},
    "CloseChannel": {"channel_id": "matrix"},
}


@dataclass
class Victim:
    """One organizer's ids, as a caller elsewhere would name them."""

    ids: dict[str, str]

    def nowhere(self) -> Victim:
        """Ids of the same shape that exist nowhere."""
        event = self.ids["event_id"][:-4] + "zzzz"
        hold = self.ids["hold_token"].partition(".")[2]
        return Victim(
            {
                **{k: v[:-4] + "zzzz" for k, v in self.ids.items()},
                "platform_id": "p9",
                "hold_token": f"{event}.{hold[:-4]}zzzz",
            }
        )


@dataclass
class Matrix:
    server: str
    keys: dict[RoleName, str]  # organizer A's keys, and p1's platform admin
    organizer_a: str
    same_platform: Victim  # organizer B, also under p1
    other_platform: Victim  # organizer C, under p2


async def _resources(org: Api, platform_id: str, organizer_id: str) -> Victim:
    event_id = await make_event(org)
    event = await org.events.GetEvent(events_pb2.GetEventRequest(event_id=event_id), metadata=org.metadata)
    held = await org.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]), metadata=org.metadata
    )
    other = await org.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-1"]), metadata=org.metadata
    )
    order = await org.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=other.hold.hold_token, idempotency_key="i"),
        metadata=org.metadata,
    )
    season = (
        await org.seasons.CreateSeason(
            seasons_pb2.CreateSeasonRequest(name="S", seat_map_id=event.event.seat_map_id, currency="EUR"),
            metadata=org.metadata,
        )
    ).season
    await org.events.CreateEvent(
        events_pb2.CreateEventRequest(
            season_id=season.season_id, name="S1", status=events_pb2.EVENT_STATUS_ON_SALE,
            prices=[events_pb2.CategoryPrice(category="front", amount_minor=100)],
        ),
        metadata=org.metadata,
    )  # fmt: skip
    season_held = await org.seasons.HoldSeasonSeats(
        seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id, seat_ids=["r0-2"]),
        metadata=org.metadata,
    )
    season_sold = await org.seasons.HoldSeasonSeats(
        seasons_pb2.HoldSeasonSeatsRequest(season_id=season.season_id, seat_ids=["r0-3"]),
        metadata=org.metadata,
    )
    season_order = await org.seasons.CommitSeasonHold(
        seasons_pb2.CommitSeasonHoldRequest(
            season_hold_token=season_sold.hold.season_hold_token, idempotency_key="s"
        ),
        metadata=org.metadata,
    )
    shop = await org.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=org.metadata
    )
    return Victim(
        {
            "organizer_id": organizer_id,
            "tenant_id": organizer_id,
            "platform_id": platform_id,
            "event_id": event_id,
            "seat_map_id": event.event.seat_map_id,
            "order_id": order.order.order_id,
            "key_id": shop.key.key_id,
            "hold_token": held.hold.hold_token,
            "season_id": season.season_id,
            "season_hold_token": season_held.hold.season_hold_token,
            "season_order_id": season_order.order.season_order_id,
        }
    )


@pytest.fixture
async def server(stores: Stores, tmp_path: Path) -> AsyncIterator[str]:
    """The conftest's server, but letting each tenant run AT_ONCE heavy calls (validation,
    rendering) at once: the walk sends its calls AT_ONCE at a time, and the heavy-call
    limit is a matter of load (tests/server/test_heavy.py), not of who may call what."""
    config = Config(port=0, data_dir=tmp_path, admin_key=ADMIN_KEY, heavy_per_tenant=AT_ONCE)
    await stores.tenants.put_bootstrap_key(ADMIN_KEY)
    grpc_server, port, _ = create_server(config, stores)
    await grpc_server.start()
    yield f"127.0.0.1:{port}"
    await grpc_server.stop(None)


@pytest.fixture
async def matrix(admin: Api, server: str) -> Matrix:
    p1_key = await _platform(admin, "p1", terms_version="v3")
    p2_key = await _platform(admin, "p2", terms_version="v3")
    async with Api(server, p1_key) as p1, Api(server, p2_key) as p2:
        a = await _sign_up(p1, "organizer-a")
        b = await _sign_up(p1, "organizer-b")
        c = await _sign_up(p2, "organizer-c")
    keys: dict[RoleName, str] = {"platform_admin": p1_key, "organizer": a.api_key}
    async with Api(server, a.api_key) as org_a:
        for role, value in STAFF.items():
            created = await org_a.tenants.CreateApiKey(
                tenancy_pb2.CreateApiKeyRequest(role=value), metadata=org_a.metadata
            )
            keys[role] = created.api_key  # type: ignore[index]
    async with Api(server, b.api_key) as org_b, Api(server, c.api_key) as org_c:
        # B's platform is the caller's own (p1): the foreign platform named with B's ids is p2
        victim_b = await _resources(org_b, "p2", b.organizer.organizer_id)
        victim_c = await _resources(org_c, "p2", c.organizer.organizer_id)
    return Matrix(server, keys, a.organizer.organizer_id, victim_b, victim_c)


def _request(method: Any, victim: Victim | None) -> Message:
    cls = getattr(_module_of(method), method.input_type.name)
    fields = dict(EXTRA.get(method.name, {}))
    if victim is not None:
        fields |= {f.name: victim.ids[f.name] for f in method.input_type.fields if f.name in ID_FIELDS}
    return cls(**fields)  # type: ignore[no-any-return]


def _module_of(method: Any) -> Any:
    name = method.input_type.file.name.rsplit("/", 1)[-1].removesuffix(".proto")
    return {
        "tenancy": tenancy_pb2,
        "platform": platform_pb2,
        "events": events_pb2,
        "sales": sales_pb2,
        "seatmap": seatmap_pb2,
        "session": session_pb2,
        "feed": feed_pb2,
        "access": access_pb2,
        "aftersale": aftersale_pb2,
        "reports": reports_pb2,
        "sellers": sellers_pb2,
        "offers": offers_pb2,
        "seasons": seasons_pb2,
        "channels": channels_pb2,
    }[name]


Answer = tuple[str, str]  # status name, message ("" when OK: the reply's bytes are checked instead)


async def _call(
    api: Api, method: Any, service: str, request: Message, header: str = ""
) -> tuple[Answer, bytes]:
    path = f"/{service}/{method.name}"
    metadata = list(api.metadata) + ([(TENANT_HEADER, header)] if header else [])
    serialize = type(request).SerializeToString
    try:
        if method.client_streaming:  # a sales session: one operation, its one answer
            op = session_pb2.SessionRequest(correlation_id="m")
            if isinstance(request, session_pb2.SessionRequest):
                hold = sales_pb2.HoldSeatsRequest(seat_ids=["r0-4"])
                op.hold_seats.CopyFrom(hold)
            call = api.channel.stream_stream(path, request_serializer=serialize, response_deserializer=None)(
                iter([op]), metadata=metadata, timeout=10
            )
            async for raw in call:
                answer = session_pb2.SessionResponse.FromString(raw)
                call.cancel()
                if answer.WhichOneof("result") == "error":
                    return (grpc.StatusCode(_code(answer.error.code)).name, answer.error.message), raw
                return ("OK", ""), raw
            return ("OK", ""), b""
        if method.server_streaming:
            stream = api.channel.unary_stream(path, request_serializer=serialize, response_deserializer=None)(
                request, metadata=metadata, timeout=10
            )
            async for raw in stream:
                stream.cancel()
                return ("OK", ""), raw
            return ("OK", ""), b""
        raw = await api.channel.unary_unary(path, request_serializer=serialize, response_deserializer=None)(
            request, metadata=metadata, timeout=10
        )
        return ("OK", ""), raw
    except grpc.aio.AioRpcError as exc:
        return (exc.code().name, exc.details() or ""), b""


def _code(value: int) -> Any:
    return next(code for code in grpc.StatusCode if code.value[0] == value)


def _normal(answer: Answer, *victims: Victim) -> Answer:
    code, message = answer
    for value in sorted({v for victim in victims for v in victim.ids.values()}, key=len, reverse=True):
        message = message.replace(value, "<id>")
    return code, message


def _methods() -> list[tuple[str, Any, MethodRule]]:
    return [
        (service.name, method, service.methods[method.name])
        for service in SERVICES
        for method in service.descriptor.methods
    ]


def _callers(m: Matrix) -> list[tuple[RoleName, str, tuple[Victim, ...]]]:
    """(role, x-seatwise-tenant, the organizers it must not reach)."""
    callers: list[tuple[RoleName, str, tuple[Victim, ...]]] = [
        (role, "", (m.same_platform, m.other_platform)) for role in ORGANIZER_ROLES
    ]
    callers += [
        ("platform_admin", m.organizer_a, (m.other_platform,)),  # acting as its own organizer
        ("platform_admin", "", (m.other_platform,)),
    ]
    return callers


Case = tuple[tuple[str, Any, MethodRule], Victim]


async def _aimed_at(api: Api, role: RoleName, header: str, case: Case) -> list[str]:
    """Problems of one RPC called by ``role`` with a victim's ids, and with ids that exist nowhere."""
    (service, method, rule), victim = case
    nowhere = victim.nowhere()
    there, there_raw = await _call(api, method, service, _request(method, victim), header)
    absent, _ = await _call(api, method, service, _request(method, nowhere), header)
    where = f"{method.name} as {role}{' acting' if header else ''} on {victim.ids['organizer_id']}"
    found = []
    if _normal(there, victim, nowhere) != _normal(absent, victim, nowhere):
        found.append(f"{where}: {there} but {absent} for ids that exist nowhere")
    if role not in rule.roles and there[0] != "PERMISSION_DENIED":
        found.append(f"{where}: {there}, expected PERMISSION_DENIED")
    leaked = [k for k, v in victim.ids.items() if len(v) > 3 and v.encode() in there_raw]
    if leaked:
        found.append(f"{where}: the reply names the victim's {leaked}")
    return found


async def _naming(api: Api, role: RoleName, case: Case) -> list[str]:
    """Problems of one RPC called by ``role`` naming a victim organizer in the header."""
    (service, method, _rule), victim = case
    nowhere = victim.nowhere()
    request = _request(method, None)
    there, _ = await _call(api, method, service, request, victim.ids["organizer_id"])
    absent, _ = await _call(api, method, service, request, nowhere.ids["organizer_id"])
    where = f"{method.name} as {role} naming {victim.ids['organizer_id']}"
    found = []
    if _normal(there, victim, nowhere) != _normal(absent, victim, nowhere):
        found.append(f"{where}: {there} but {absent} for an organizer that does not exist")
    if there[0] not in ("PERMISSION_DENIED", "NOT_FOUND"):
        found.append(f"{where}: {there}")
    return found


async def _each(cases: Iterable[Case], check: Callable[[Case], Awaitable[list[str]]]) -> list[str]:
    """``check`` of every case, AT_ONCE at a time (the calls are independent: a victim's
    resources are only read), the problems in the cases' order."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(case: Case) -> list[str]:
        async with gate:
            return await check(case)

    return [p for found in await asyncio.gather(*(one(c) for c in cases)) for p in found]


async def test_every_rpc_and_role_reveals_nothing_of_other_organizers(matrix: Matrix) -> None:
    problems: list[str] = []
    for role, header, victims in _callers(matrix):
        async with Api(matrix.server, matrix.keys[role]) as api:
            cases = itertools.product(_methods(), victims)
            problems += await _each(cases, functools.partial(_aimed_at, api, role, header))
    assert problems == []


async def test_naming_another_organizer_in_the_header_reveals_nothing(matrix: Matrix) -> None:
    problems: list[str] = []
    callers = [(role, (matrix.same_platform, matrix.other_platform)) for role in ORGANIZER_ROLES]
    callers.append(("platform_admin", (matrix.other_platform,)))
    for role, victims in callers:
        async with Api(matrix.server, matrix.keys[role]) as api:
            cases = itertools.product(_methods(), victims)
            problems += await _each(cases, functools.partial(_naming, api, role))
    assert problems == []


def test_the_documented_matrix_is_the_declared_one() -> None:
    assert security_matrix.main(["--check"]) == 0, "run: python -m scripts.security_matrix"
    text = security_matrix.DOC.read_text()
    for service in SERVICES:
        for method in service.descriptor.methods:
            assert f"`{service.name.removeprefix('seatwise.v1.')}/{method.name}`" in text
