"""Ticket types and promo codes end to end through a real server and Redis (single and
cluster): organizers define them (OfferService), storefronts list what they may offer
and name them at commit, the box office at its sales; refusals name the field or the
code and change nothing; concurrent checkouts never use a code more often than allowed."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import (
    events_pb2,
    feed_pb2,
    feed_pb2_grpc,
    offers_pb2,
    reports_pb2,
    sales_pb2,
    tenancy_pb2,
)

from tests.api import Api, field_violations, precondition_subjects
from tests.server import test_sessions as sessions_test
from tests.server.events import make_event
from tests.server.test_exports_api import _csv, _export, _jsonl

WAIT_S = 60.0  # a safety net against a hang, never a measured time
CHILD = offers_pb2.TicketType(
    type_id="child", name="Child", max_per_order=2,
    prices=[events_pb2.CategoryPrice(category="front", amount_minor=2500),
            events_pb2.CategoryPrice(category="back", amount_minor=1500),
            events_pb2.CategoryPrice(category="floor", amount_minor=1000)],
)  # fmt: skip
PRESALE = offers_pb2.TicketType(
    type_id="presale", name="Presale", access_code="FANS",
    prices=[events_pb2.CategoryPrice(category="back", amount_minor=2000)],
)  # fmt: skip
COUNTER = offers_pb2.TicketType(
    type_id="counter", name="Counter", channels=[sales_pb2.SALES_CHANNEL_BOX_OFFICE],
    prices=[events_pb2.CategoryPrice(category="back", amount_minor=2800)],
)  # fmt: skip


async def _event(api: Api, rows: int = 2, seats_per_row: int = 6) -> str:
    event_id = await make_event(api, rows=rows, seats_per_row=seats_per_row, max_seats_per_hold=20)
    for t in (CHILD, PRESALE, COUNTER):
        await api.offers.CreateTicketType(
            offers_pb2.PutTicketTypeRequest(event_id=event_id, ticket_type=t), metadata=api.metadata
        )
    return event_id


async def _promo(api: Api, event_id: str, **fields: object) -> offers_pb2.PromoCode:
    promo = offers_pb2.PromoCode(**fields)  # type: ignore[arg-type]
    return await api.offers.CreatePromoCode(
        offers_pb2.PutPromoCodeRequest(event_id=event_id, promo_code=promo), metadata=api.metadata
    )


async def _hold(api: Api, event_id: str, *seats: str, buyer: str = "", ga: int = 0) -> str:
    held = await api.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=list(seats), buyer_id=buyer),
        metadata=api.metadata,
    )
    token = held.hold.hold_token
    if ga:
        await api.holds.HoldGeneralAdmission(
            sales_pb2.HoldGeneralAdmissionRequest(event_id=event_id, area_id="floor", quantity=ga,
                                                  hold_token=token),
            metadata=api.metadata,
        )  # fmt: skip
    return token


async def _commit(api: Api, token: str, key: str, **fields: object) -> sales_pb2.Order:
    committed = await api.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=token, idempotency_key=key, **fields),  # type: ignore[arg-type]
        metadata=api.metadata,
    )
    return committed.order


def _seat(seat_id: str, type_id: str) -> sales_pb2.TicketTypeChoice:
    return sales_pb2.TicketTypeChoice(seat_id=seat_id, ticket_type=type_id)


async def _orders(api: Api, event_id: str) -> int:
    listed = await api.orders.ListOrders(
        sales_pb2.ListOrdersRequest(event_id=event_id), metadata=api.metadata
    )
    return len(listed.orders)


async def test_a_storefront_sells_types_with_a_promo_code_and_the_feed_says_so(
    organizer: Api, admin: Api, server: str
) -> None:
    event_id = await _event(organizer)
    await _promo(organizer, event_id, code="TEN", kind=offers_pb2.PROMO_KIND_PERCENT, percent_bps=1000)
    shop_key = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    async with Api(server, shop_key.api_key) as shop:
        offered = await shop.offers.ListOfferedTicketTypes(
            offers_pb2.ListOfferedTicketTypesRequest(event_id=event_id), metadata=shop.metadata
        )
        assert [t.type_id for t in offered.ticket_types] == ["child"]
        offered = await shop.offers.ListOfferedTicketTypes(
            offers_pb2.ListOfferedTicketTypesRequest(event_id=event_id, access_code="FANS"),
            metadata=shop.metadata,
        )
        assert [t.type_id for t in offered.ticket_types] == ["child", "presale"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.offers.ListPromoCodes(
                offers_pb2.ListPromoCodesRequest(event_id=event_id), metadata=shop.metadata
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        token = await _hold(shop, event_id, "r0-0", "r1-0", "r1-1", ga=2)
        order = await _commit(
            shop, token, "pay-1", promo_code="TEN", access_code="FANS",
            ticket_types=[_seat("r0-0", "child"), _seat("r1-1", "presale"),
                          sales_pb2.TicketTypeChoice(ga_area_id="floor", quantity=1, ticket_type="child")],
        )  # fmt: skip
    got = [(t.seat_id or t.ga_area_id, t.ticket_type, t.list_price.amount_minor, t.price.amount_minor)
           for t in order.tickets]  # fmt: skip
    assert got == [("r0-0", "child", 2500, 2250), ("r1-0", "", 3000, 2700), ("r1-1", "presale", 2000, 1800),
                   ("floor", "child", 1000, 900), ("floor", "", 2000, 1800)]  # fmt: skip
    assert (order.promo_code, order.discount.amount_minor) == ("TEN", 1050)
    assert order.total.amount_minor == 2250 + 2700 + 1800 + 900 + 1800
    codes = await organizer.offers.ListPromoCodes(
        offers_pb2.ListPromoCodesRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [(p.code, p.uses) for p in codes.promo_codes] == [("TEN", 1)]
    # the lifecycle feed's entry carries the types and the code
    call = feed_pb2_grpc.FeedServiceStub(organizer.channel).Subscribe(
        feed_pb2.SubscribeRequest(), metadata=organizer.metadata
    )

    async def created() -> feed_pb2.FeedEntry:
        async for message in call:
            if message.entry.order_id == order.order_id:
                return message.entry
        raise AssertionError("the feed ended")

    try:
        entry = await asyncio.wait_for(created(), WAIT_S)
    finally:
        call.cancel()
    assert entry.promo_code == "TEN"
    assert [t.ticket_type for t in entry.tickets] == ["child", "", "presale", "child", ""]
    assert [t.discount.amount_minor for t in entry.tickets] == [250, 300, 200, 100, 200]
    assert (entry.discount.amount_minor, entry.discount.currency) == (1050, "EUR")
    # so do the orders and tickets exports, as CSV and as JSON Lines
    for fmt, parse in ((reports_pb2.EXPORT_FORMAT_CSV, _csv), (reports_pb2.EXPORT_FORMAT_JSONL, _jsonl)):
        data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_ORDERS, fmt, event_id)
        [row] = parse(data)
        assert (row["promo_code"], str(row["discount_minor"]), row["discount"]) == ("TEN", "1050", "10.50")
        data, _ = await _export(organizer, reports_pb2.EXPORT_KIND_TICKETS, fmt, event_id)
        rows = sorted(
            (str(r["seat_id"] or r["ga_area"]), str(r["ticket_type"]), str(r["promo_code"]),
             str(r["list_price_minor"]), str(r["discount_minor"]), str(r["price_minor"]))
            for r in parse(data)
        )  # fmt: skip
        assert rows == sorted([
            ("r0-0", "child", "TEN", "2500", "250", "2250"), ("r1-0", "", "TEN", "3000", "300", "2700"),
            ("r1-1", "presale", "TEN", "2000", "200", "1800"),
            ("floor", "child", "TEN", "1000", "100", "900"), ("floor", "", "TEN", "2000", "200", "1800"),
        ])  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ticket_types": [_seat("r1-0", "nope")]}, "ticket_types"),  # unknown type
        ({"ticket_types": [_seat("r1-0", "presale")]}, "ticket_types"),  # hidden without its code
        ({"ticket_types": [_seat("r1-0", "counter")]}, "ticket_types"),  # the box office's only
        (
            {"ticket_types": [_seat("r1-0", "child"), _seat("r1-1", "child"), _seat("r1-2", "child")]},
            "ticket_types",
        ),
        ({"ticket_types": [_seat("r1-5", "child")]}, "ticket_types[r1-5]"),  # not in the hold
        ({"ticket_types": [sales_pb2.TicketTypeChoice(seat_id="r1-0")]}, "ticket_types[0].ticket_type"),
        ({"promo_code": "NOPE"}, "promo_code"),
    ],
)
async def test_bad_choices_name_the_field_and_change_nothing(
    organizer: Api, fields: dict[str, object], field: str
) -> None:
    event_id = await _event(organizer)
    token = await _hold(organizer, event_id, "r1-0", "r1-1", "r1-2")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _commit(organizer, token, "k", **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == [field], err.value.details()
    assert await _orders(organizer, event_id) == 0
    order = await _commit(organizer, token, "k")  # the hold is intact: it commits at category prices
    assert order.total.amount_minor == 3 * 3000


async def test_inactive_codes_and_minimum_quantity_fail_naming_the_code(organizer: Api) -> None:
    event_id = await _event(organizer)
    await _promo(organizer, event_id, code="OLD", kind=offers_pb2.PROMO_KIND_AMOUNT, amount_minor=100,
                 valid_until=Timestamp(seconds=1))  # fmt: skip
    await _promo(organizer, event_id, code="GROUP", kind=offers_pb2.PROMO_KIND_AMOUNT, amount_minor=100,
                 min_quantity=4)  # fmt: skip
    token = await _hold(organizer, event_id, "r1-0", "r1-1")
    for code, text in (("OLD", "has expired"), ("GROUP", "needs at least 4")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _commit(organizer, token, "k", promo_code=code)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert precondition_subjects(err.value) == [code]
        assert f"promo_code {code!r} {text}" in (err.value.details() or "")
    assert await _orders(organizer, event_id) == 0


async def test_bad_definitions_name_the_field(organizer: Api) -> None:
    event_id = await _event(organizer)
    bad_types = [
        (offers_pb2.TicketType(type_id="x y", name="X", prices=CHILD.prices), "ticket_type.type_id"),
        (offers_pb2.TicketType(type_id="x", name="X"), "ticket_type.prices"),
        (offers_pb2.TicketType(type_id="x", name="X", prices=[events_pb2.CategoryPrice(category="balcony")]),
         "ticket_type.prices[balcony]"),
    ]  # fmt: skip
    for ticket_type, field in bad_types:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await organizer.offers.CreateTicketType(
                offers_pb2.PutTicketTypeRequest(event_id=event_id, ticket_type=ticket_type),
                metadata=organizer.metadata,
            )
        assert [f for f, _ in field_violations(err.value)] == [field]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _promo(organizer, event_id, code="P", kind=offers_pb2.PROMO_KIND_PERCENT, percent_bps=20_000)
    assert [f for f, _ in field_violations(err.value)] == ["promo_code.bps"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.offers.CreateTicketType(
            offers_pb2.PutTicketTypeRequest(event_id=event_id, ticket_type=CHILD), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    disabled = await organizer.offers.DisableTicketType(
        offers_pb2.DisableTicketTypeRequest(event_id=event_id, type_id="child"), metadata=organizer.metadata
    )
    assert disabled.disabled
    listed = await organizer.offers.ListTicketTypes(
        offers_pb2.ListTicketTypesRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [(t.type_id, t.disabled) for t in listed.ticket_types] == [
        ("child", True), ("counter", False), ("presale", False)]  # fmt: skip


async def test_the_box_office_sells_its_own_types(organizer: Api) -> None:
    event_id = await _event(organizer)
    sold = await organizer.orders.SellAtBoxOffice(
        sales_pb2.SellAtBoxOfficeRequest(
            event_id=event_id, seat_ids=["r1-3"], idempotency_key="bo", payment_method="cash",
            ticket_types=[_seat("r1-3", "counter")],
        ),
        metadata=organizer.metadata,
    )  # fmt: skip
    assert [(t.ticket_type, t.price.amount_minor) for t in sold.order.tickets] == [("counter", 2800)]


@pytest.mark.parametrize("organizer_wide", [False, True])
async def test_fifty_concurrent_checkouts_use_a_ten_use_code_ten_times(
    organizer: Api, organizer_wide: bool
) -> None:
    event_id = await _event(organizer, rows=5, seats_per_row=10)
    scope = "" if organizer_wide else event_id
    await _promo(organizer, scope, code="RUSH", kind=offers_pb2.PROMO_KIND_AMOUNT, amount_minor=500,
                 max_uses=10, max_uses_per_buyer=1)  # fmt: skip
    tokens = [await _hold(organizer, event_id, f"r{i // 10}-{i % 10}", buyer=f"b{i % 25}") for i in range(50)]
    outcomes = await asyncio.gather(
        *(_commit(organizer, t, f"k{i}", promo_code="RUSH") for i, t in enumerate(tokens)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, sales_pb2.Order)]
    lost = [o for o in outcomes if not isinstance(o, sales_pb2.Order)]
    assert len(won) == 10
    assert len({o.buyer.name for o in won}) <= 10
    for error in lost:
        assert isinstance(error, grpc.aio.AioRpcError), error
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert precondition_subjects(error) == ["RUSH"]
        assert "promo_code 'RUSH' is used up" in (error.details() or "")
    codes = await organizer.offers.ListPromoCodes(
        offers_pb2.ListPromoCodesRequest(event_id="" if organizer_wide else event_id),
        metadata=organizer.metadata,
    )
    assert [(p.code, p.uses, p.organizer_wide) for p in codes.promo_codes] == [("RUSH", 10, organizer_wide)]
    assert await _orders(organizer, event_id) == 10


async def test_a_sales_session_commits_with_types_and_a_code(organizer: Api) -> None:
    event_id = await _event(organizer)
    await _promo(organizer, event_id, code="HALF", kind=offers_pb2.PROMO_KIND_PERCENT, percent_bps=5000)
    token = await _hold(organizer, event_id, "r1-2")
    session = sessions_test.Session(organizer)
    try:
        answer = await session.ask(
            commit_hold=sales_pb2.CommitHoldRequest(
                hold_token=token,
                idempotency_key="s1",
                promo_code="HALF",
                ticket_types=[_seat("r1-2", "child")],
            )
        )
    finally:
        session.call.cancel()
    committed = sessions_test.result_of(answer)
    assert isinstance(committed, sales_pb2.CommitHoldResponse)
    assert [(t.ticket_type, t.price.amount_minor) for t in committed.order.tickets] == [("child", 750)]
