"""Page tokens: only tokens this server could have issued are accepted; a forged
deep offset is INVALID_ARGUMENT naming page_token, never a store outage."""

from __future__ import annotations

import base64

import grpc
import pytest
from seatwise.v1 import common_pb2, events_pb2, sales_pb2, seatmap_pb2

from holds.errors import InvalidRequest
from server.paging import MAX_PAGE_OFFSET, page_bounds, page_token_after
from tests.api import Api, field_violations
from tests.server.events import published_map


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_issued_tokens_round_trip() -> None:
    token = page_token_after(0, 50, more=True)
    assert page_bounds(50, token) == (50, 50)
    assert page_token_after(0, 50, more=False) == ""


@pytest.mark.parametrize(
    "text",
    ["o:-1", f"o:{2**63}", f"o:{MAX_PAGE_OFFSET + 1}", "o:1_000", "o: 5", "o:\u0661", "5", "o:", "o:05"],
)
def test_forged_tokens_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        page_bounds(10, _token(text))
    assert err.value.field == "page_token"


def test_no_token_past_the_deepest_offset_is_issued() -> None:
    assert page_token_after(MAX_PAGE_OFFSET, 500, more=True) == ""


DEEP = _token(f"o:{2**63}")


async def _list_calls(organizer: Api) -> dict[str, object]:
    """Each List call of a tenant with one map, one event and no orders, with the deep token."""
    info = await published_map(organizer)
    event = (
        await organizer.events.CreateEvent(
            events_pb2.CreateEventRequest(seat_map_id=info.seat_map_id, name="Gig", currency="EUR"),
            metadata=organizer.metadata,
        )
    ).event
    page = common_pb2.PageRequest(page_token=DEEP)
    return {
        "ListSeatMaps": organizer.seatmaps.ListSeatMaps(
            seatmap_pb2.ListSeatMapsRequest(page=page), metadata=organizer.metadata
        ),
        "ListEvents": organizer.events.ListEvents(
            events_pb2.ListEventsRequest(page=page), metadata=organizer.metadata
        ),
        "ListOrders": organizer.orders.ListOrders(
            sales_pb2.ListOrdersRequest(event_id=event.event_id, page=page), metadata=organizer.metadata
        ),
    }


async def test_a_deep_page_token_is_invalid_argument_not_an_outage(organizer: Api) -> None:
    calls = await _list_calls(organizer)
    for name, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call  # type: ignore[misc]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, err.value.details())
        assert [f for f, _ in field_violations(err.value)] == ["page_token"], name
