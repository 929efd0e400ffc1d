"""Resale purchases (HoldListing, CommitListing) over sales sessions and through
seatwise.client: the same answers as the unary RPCs, and a commit retried with its
resale key buys once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google.rpc import code_pb2
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import aftersale_pb2, aftersale_pb2_grpc, sales_pb2, tenancy_pb2

from tests.api import Api
from tests.server.events import make_event
from tests.server.test_aftersale_api import _order
from tests.server.test_sessions import Session

BOB = sales_pb2.BuyerDetails(name="Bob")


@pytest.fixture
async def storefront(organizer: Api, server: str) -> AsyncIterator[Api]:
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    async with Api(server, created.api_key) as api:
        yield api


async def _listed(organizer: Api, storefront: Api, seat: str) -> tuple[str, aftersale_pb2.Listing]:
    """An event with ``seat`` sold and listed for resale at 4500; (event id, listing)."""
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, seat)
    after = aftersale_pb2_grpc.AfterSaleServiceStub(organizer.channel)
    rules = aftersale_pb2.SetResaleRulesRequest(event_id=event_id, allowed=True, floor=1000, cap=5000)
    await after.SetResaleRules(rules, metadata=organizer.metadata)
    listing = aftersale_pb2.ListTicketForResaleRequest(
        event_id=event_id,
        order_id=order.order_id,
        ticket_id=order.tickets[0].ticket_id,
        revision=0,
        price=4500,
        seller_id="ada",
    )
    shop = aftersale_pb2_grpc.AfterSaleServiceStub(storefront.channel)
    listed = await shop.ListTicketForResale(listing, metadata=storefront.metadata)
    return event_id, listed.listing


async def test_a_resale_bought_over_a_session(organizer: Api, storefront: Api) -> None:
    event_id, listing = await _listed(organizer, storefront, "r0-1")
    session = Session(storefront)
    try:
        hold_request = aftersale_pb2.HoldListingRequest(
            event_id=event_id, ticket_id=listing.ticket_id, listing_id=listing.listing_id, buyer_id="bob"
        )
        held = await session.ask(hold_listing=hold_request)
        assert held.WhichOneof("result") == "listing_hold"
        assert held.listing_hold.price.amount_minor == 4500
        # a second buyer meets the live hold exactly as the unary call does
        taken = await session.ask(hold_listing=hold_request)
        assert taken.error.code == code_pb2.FAILED_PRECONDITION
        commit = aftersale_pb2.CommitListingRequest(
            hold_token=held.listing_hold.hold_token, resale_key="buy-1", buyer=BOB
        )
        bought = await session.ask(commit_listing=commit)
        assert (bought.listing_commit.resale.buyer_id, bought.listing_commit.replayed) == ("bob", False)
        again = await session.ask(commit_listing=commit)
        assert again.listing_commit.replayed
        assert again.listing_commit.resale == bought.listing_commit.resale
        blank = await session.ask(commit_listing=aftersale_pb2.CommitListingRequest(resale_key="k"))
        assert blank.error.code == code_pb2.INVALID_ARGUMENT
    finally:
        session.call.cancel()


@pytest.mark.parametrize("sessions", [0, 2])
async def test_the_client_buys_a_resale_over_either_transport(
    organizer: Api, storefront: Api, sessions: int
) -> None:
    event_id, listing = await _listed(organizer, storefront, "r0-2")
    key = storefront.metadata[0][1].removeprefix("Bearer ")
    async with SeatwiseClient(storefront.target, key, sessions=sessions) as client:
        held = await client.hold_listing(event_id, listing.ticket_id, listing.listing_id, buyer_id="bob")
        bought = await client.commit_listing(held.hold_token, "buy-2", buyer=BOB)
        replay = await client.commit_listing(held.hold_token, "buy-2", buyer=BOB)
        assert (bought.replayed, replay.replayed, replay.resale == bought.resale) == (False, True, True)
        with pytest.raises(SeatwiseError) as gone:  # sold: the listing is gone
            await client.hold_listing(event_id, listing.ticket_id, listing.listing_id, buyer_id="cal")
    assert gone.value.code.name == "NOT_FOUND"
