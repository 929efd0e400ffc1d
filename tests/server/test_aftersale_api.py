"""Transfers, exchanges and resale end to end through gRPC (single Redis and cluster):
the previous holder's token answers revoked at the door at once, bad input names the
ticket at fault and changes nothing, and the resale money is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from seatwise.v1 import access_pb2, aftersale_pb2, aftersale_pb2_grpc, sales_pb2, tenancy_pb2

from tests.api import Api, field_violations, precondition_subjects
from tests.server.events import make_event
from tests.server.test_sales_api import _hold

BOB = sales_pb2.BuyerDetails(name="Bob", email="bob@example.org")


@pytest.fixture
def after(organizer: Api) -> aftersale_pb2_grpc.AfterSaleServiceStub:
    return aftersale_pb2_grpc.AfterSaleServiceStub(organizer.channel)


@pytest.fixture
async def door(organizer: Api, server: str) -> AsyncIterator[Api]:
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_DOOR), metadata=organizer.metadata
    )
    async with Api(server, created.api_key) as api:
        yield api


@pytest.fixture
async def storefront(organizer: Api, server: str) -> AsyncIterator[Api]:
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    async with Api(server, created.api_key) as api:
        yield api


async def _order(api: Api, event_id: str, *seats: str) -> sales_pb2.Order:
    hold = await _hold(api, event_id, *seats)
    commit = sales_pb2.CommitHoldRequest(
        hold_token=hold.hold_token,
        idempotency_key=f"k-{hold.hold_token}",
        buyer=sales_pb2.BuyerDetails(name="Ada"),
    )
    return (await api.orders.CommitHold(commit, metadata=api.metadata)).order


async def _token(api: Api, event_id: str, order_id: str, ticket_id: str) -> str:
    request = access_pb2.GetTicketTokenRequest(event_id=event_id, order_id=order_id, ticket_id=ticket_id)
    return (await api.tickets.GetTicketToken(request, metadata=api.metadata)).token


async def _scan(door: Api, event_id: str, token: str) -> tuple[int, str]:
    request = access_pb2.ScanTicketRequest(event_id=event_id, token=token, gate="A", device_id="d1")
    answer = await door.access.ScanTicket(request, metadata=door.metadata)
    return answer.result, answer.reason


async def _get(api: Api, event_id: str, order_id: str) -> sales_pb2.Order:
    request = sales_pb2.GetOrderRequest(event_id=event_id, order_id=order_id)
    return (await api.orders.GetOrder(request, metadata=api.metadata)).order


async def test_transfer_over_grpc_revokes_the_old_token(
    organizer: Api, door: Api, after: aftersale_pb2_grpc.AfterSaleServiceStub
) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-0")
    ticket = order.tickets[0].ticket_id
    old = await _token(organizer, event_id, order.order_id, ticket)
    request = aftersale_pb2.TransferTicketRequest(
        event_id=event_id, order_id=order.order_id, ticket_id=ticket, revision=0, new_holder=BOB
    )
    moved = await after.TransferTicket(request, metadata=organizer.metadata)
    t = moved.order.tickets[0]
    assert (moved.revision, t.revision, t.holder.name, t.status) == (1, 1, "Bob", "valid")
    assert moved.token == await _token(organizer, event_id, order.order_id, ticket)
    assert await _scan(door, event_id, old) == (access_pb2.SCAN_RESULT_REVOKED, "transferred")
    assert await _scan(door, event_id, moved.token) == (access_pb2.SCAN_RESULT_ADMITTED, "")

    # the same transfer again: the ticket already changed hands, named; nothing changes
    before = await _get(organizer, event_id, order.order_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await after.TransferTicket(request, metadata=organizer.metadata)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"ticket {ticket} already changed hands (transferred)" in (refused.value.details() or "")
    assert precondition_subjects(refused.value) == [ticket]
    assert await _get(organizer, event_id, order.order_id) == before

    bad = aftersale_pb2.TransferTicketRequest(event_id=event_id, order_id=order.order_id, ticket_id="nope",
                                              new_holder=BOB)  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await after.TransferTicket(bad, metadata=organizer.metadata)
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(unknown.value) == [
        ("ticket_id", f"ticket 'nope' is not in order {order.order_id}")
    ]


async def test_exchange_over_grpc_with_a_hold_on_a_sold_out_event(
    organizer: Api, door: Api, after: aftersale_pb2_grpc.AfterSaleServiceStub
) -> None:
    event_id = await make_event(organizer)
    rows = [await _order(organizer, event_id, *(f"r{r}-{n}" for n in range(6))) for r in range(2)]
    # one back-row seat comes back and the box office holds it at once
    back = rows[1]
    given_back = next(t.ticket_id for t in back.tickets if t.seat_id == "r1-5")
    cancel = sales_pb2.CancelOrderRequest(event_id=event_id, order_id=back.order_id, ticket_ids=[given_back])
    await organizer.orders.CancelOrder(cancel, metadata=organizer.metadata)
    hold = await _hold(organizer, event_id, "r1-5")
    front = rows[0]
    old = front.tickets[0]
    old_token = await _token(organizer, event_id, front.order_id, old.ticket_id)
    request = aftersale_pb2.ExchangeTicketsRequest(
        event_id=event_id, order_id=front.order_id, ticket_ids=[old.ticket_id], hold_token=hold.hold_token,
        exchange_key="swap-1",
    )  # fmt: skip
    done = await after.ExchangeTickets(request, metadata=organizer.metadata)
    x = done.exchange
    assert (list(x.from_ticket_ids), x.difference.amount_minor, x.difference.currency) == (
        [old.ticket_id], 3000 - 5000, "EUR"
    )  # fmt: skip
    new = next(t for t in done.order.tickets if t.ticket_id == x.to_ticket_ids[0])
    assert (new.seat_id, new.category, new.price.amount_minor) == ("r1-5", "back", 3000)
    replaced = next(t for t in done.order.tickets if t.ticket_id == old.ticket_id)
    assert (replaced.status, replaced.exchanged_for) == ("exchanged", new.ticket_id)
    assert done.order.total.amount_minor == front.total.amount_minor - 2000
    assert await _scan(door, event_id, old_token) == (access_pb2.SCAN_RESULT_REVOKED, "exchanged")
    again = await after.ExchangeTickets(request, metadata=organizer.metadata)
    assert again.replayed
    assert again.exchange == x
    # the seat given up is on sale again, and only it
    freed = await _hold(organizer, event_id, old.seat_id)
    assert list(freed.seat_ids) == [old.seat_id]

    # a seat that is sold: refused, naming the seat; nothing changes
    before = await _get(organizer, event_id, front.order_id)
    taken = aftersale_pb2.ExchangeTicketsRequest(
        event_id=event_id, order_id=front.order_id, ticket_ids=[front.tickets[1].ticket_id],
        seat_ids=["r1-0"], exchange_key="swap-2",
    )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await after.ExchangeTickets(taken, metadata=organizer.metadata)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # as any hold of a sold seat
    assert refused.value.details() == "seats not available: r1-0"
    assert await _get(organizer, event_id, front.order_id) == before


async def test_exchange_over_grpc_into_another_event_of_the_organizer(
    organizer: Api, admin: Api, server: str, door: Api, after: aftersale_pb2_grpc.AfterSaleServiceStub
) -> None:
    source, target = await make_event(organizer), await make_event(organizer)
    order = await _order(organizer, source, "r0-0")
    old = order.tickets[0]
    old_token = await _token(organizer, source, order.order_id, old.ticket_id)
    request = aftersale_pb2.ExchangeTicketsRequest(
        event_id=source, order_id=order.order_id, ticket_ids=[old.ticket_id], seat_ids=["r1-2"],
        exchange_key="move-1", target_event_id=target,
    )  # fmt: skip
    done = await after.ExchangeTickets(request, metadata=organizer.metadata)
    x = done.exchange
    assert (x.target_event_id, x.target_order_id) == (target, done.new_order.order_id)
    assert x.difference.amount_minor == 3000 - 5000
    new = done.new_order.tickets[0]
    assert (new.ticket_id, new.seat_id, new.status) == (x.to_ticket_ids[0], "r1-2", "valid")
    assert (done.order.tickets[0].status, done.order.tickets[0].exchanged_for) == ("exchanged", new.ticket_id)
    assert await _scan(door, source, old_token) == (access_pb2.SCAN_RESULT_REVOKED, "exchanged")
    new_token = await _token(organizer, target, done.new_order.order_id, new.ticket_id)
    assert await _scan(door, target, new_token) == (access_pb2.SCAN_RESULT_ADMITTED, "")
    again = await after.ExchangeTickets(request, metadata=organizer.metadata)
    assert again.replayed
    assert (again.exchange, again.new_order.order_id) == (x, done.new_order.order_id)

    # another organizer's event answers as a missing one, and nothing changes
    other_key = await admin.new_tenant_key("rival")
    async with Api(server, other_key) as rival:
        foreign = await make_event(rival)
    second = await _order(organizer, source, "r0-1")
    before = await _get(organizer, source, second.order_id)
    answers = []
    for event_id in (foreign, "ev-nope"):
        bad = aftersale_pb2.ExchangeTicketsRequest(
            event_id=source, order_id=second.order_id, ticket_ids=[second.tickets[0].ticket_id],
            seat_ids=["r1-2"], exchange_key="move-2", target_event_id=event_id,
        )  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await after.ExchangeTickets(bad, metadata=organizer.metadata)
        answers.append((refused.value.code(), (refused.value.details() or "").replace(event_id, "<id>")))
    assert answers[0] == answers[1]
    assert answers[0][0] == grpc.StatusCode.NOT_FOUND
    assert await _get(organizer, source, second.order_id) == before


async def test_resale_over_grpc(
    organizer: Api, storefront: Api, door: Api, after: aftersale_pb2_grpc.AfterSaleServiceStub
) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-1")
    ticket = order.tickets[0].ticket_id
    seller_token = await _token(organizer, event_id, order.order_id, ticket)
    shop = aftersale_pb2_grpc.AfterSaleServiceStub(storefront.channel)
    listing = aftersale_pb2.ListTicketForResaleRequest(
        event_id=event_id, order_id=order.order_id, ticket_id=ticket, revision=0, price=4500, seller_id="ada"
    )
    with pytest.raises(grpc.aio.AioRpcError) as not_allowed:
        await shop.ListTicketForResale(listing, metadata=storefront.metadata)
    assert not_allowed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    rules = aftersale_pb2.SetResaleRulesRequest(event_id=event_id, allowed=True, floor=1000, cap=5000)
    with pytest.raises(grpc.aio.AioRpcError) as denied:  # the limits are the organizer's
        await shop.SetResaleRules(rules, metadata=storefront.metadata)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    set_rules = aftersale_pb2.SetResaleRulesRequest(event_id=event_id, allowed=True, floor=1000, cap=5000)
    await after.SetResaleRules(set_rules, metadata=organizer.metadata)
    got = await shop.GetResaleRules(aftersale_pb2.GetResaleRulesRequest(event_id=event_id),
                                    metadata=storefront.metadata)  # fmt: skip
    assert (got.allowed, got.floor, got.cap) == (True, 1000, 5000)

    too_dear = aftersale_pb2.ListTicketForResaleRequest()
    too_dear.CopyFrom(listing)
    too_dear.price = 5001
    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await shop.ListTicketForResale(too_dear, metadata=storefront.metadata)
    assert outside.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(outside.value) == [
        ("price", f"ticket {ticket}: a resale price must be at least 1000 and at most 5000 minor units")
    ]
    listed = await shop.ListTicketForResale(listing, metadata=storefront.metadata)
    assert (listed.listing.price.amount_minor, listed.listing.seat_id) == (4500, "r0-1")
    assert listed.order.tickets[0].listing_id == listed.listing.listing_id
    browse = await shop.ListListings(aftersale_pb2.ListListingsRequest(event_id=event_id),
                                     metadata=storefront.metadata)  # fmt: skip
    assert [(li.ticket_id, li.held) for li in browse.listings] == [(ticket, False)]

    hold = await shop.HoldListing(
        aftersale_pb2.HoldListingRequest(event_id=event_id, ticket_id=ticket,
                                         listing_id=listed.listing.listing_id, buyer_id="bob"),
        metadata=storefront.metadata,
    )  # fmt: skip
    assert hold.price.amount_minor == 4500
    commit = aftersale_pb2.CommitListingRequest(hold_token=hold.hold_token, resale_key="buy-1", buyer=BOB)
    bought = await shop.CommitListing(commit, metadata=storefront.metadata)
    r = bought.resale
    assert (r.seller_id, r.buyer_id, r.price.amount_minor, r.revision) == ("ada", "bob", 4500, 1)
    assert r.seller_payout.amount_minor == 4500 - r.fees.platform_fee
    assert r.listed_at.ToMilliseconds() <= r.accepted_at.ToMilliseconds() == r.delivered_at.ToMilliseconds()
    assert await _scan(door, event_id, seller_token) == (access_pb2.SCAN_RESULT_REVOKED, "resold")
    assert await _scan(door, event_id, bought.token) == (access_pb2.SCAN_RESULT_ADMITTED, "")
    now = await _get(organizer, event_id, order.order_id)
    assert (now.tickets[0].holder.name, now.tickets[0].listing_id) == ("Bob", "")
    again = await shop.CommitListing(commit, metadata=storefront.metadata)
    assert again.replayed
    assert again.resale == r
    resales = await after.ListResales(aftersale_pb2.ListResalesRequest(event_id=event_id),
                                      metadata=organizer.metadata)  # fmt: skip
    assert list(resales.resales) == [r]
    # the listing is gone with the sale: holding it again is NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await shop.HoldListing(
            aftersale_pb2.HoldListingRequest(event_id=event_id, ticket_id=ticket,
                                             listing_id=listed.listing.listing_id, buyer_id="cal"),
            metadata=storefront.metadata,
        )  # fmt: skip
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_another_organizers_order_is_not_found(
    organizer: Api, admin: Api, server: str, after: aftersale_pb2_grpc.AfterSaleServiceStub
) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-2")
    other_key = await admin.new_tenant_key("rival")
    async with Api(server, other_key) as rival:
        stub = aftersale_pb2_grpc.AfterSaleServiceStub(rival.channel)
        request = aftersale_pb2.TransferTicketRequest(
            event_id=event_id, order_id=order.order_id, ticket_id=order.tickets[0].ticket_id, new_holder=BOB
        )
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await stub.TransferTicket(request, metadata=rival.metadata)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await _get(organizer, event_id, order.order_id)).tickets[0].revision == 0
