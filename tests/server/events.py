"""What the API tests set up again and again: a published seat map, an on-sale event on it."""

from __future__ import annotations

from typing import Any

from seatwise.v1 import events_pb2, seatmap_pb2

from tests.api import Api
from tests.server.maps import small_map

# small_map's categories and the prices its events sell them at
PRICES = (("front", 5000), ("back", 3000), ("floor", 2000))


def prices(*categories: str) -> list[events_pb2.CategoryPrice]:
    """PRICES as CategoryPrice messages (only ``categories`` when given)."""
    return [
        events_pb2.CategoryPrice(category=c, amount_minor=a)
        for c, a in PRICES
        if not categories or c in categories
    ]


async def published_map(api: Api, content: bytes = b"") -> seatmap_pb2.SeatMapInfo:
    """``content`` (else ``small_map()``) uploaded and its first version published."""
    uploaded = await api.seatmaps.UploadSeatMap(
        seatmap_pb2.UploadSeatMapRequest(content=content or small_map()), metadata=api.metadata
    )
    sm = uploaded.seat_map
    await api.seatmaps.PublishSeatMap(
        seatmap_pb2.PublishSeatMapRequest(seat_map_id=sm.seat_map_id, version=sm.version),
        metadata=api.metadata,
    )
    return sm


async def make_event(
    api: Api, *, rows: int = 2, seats_per_row: int = 6, ga: int = 5, content: bytes = b"", **overrides: Any
) -> str:
    """An on-sale event at PRICES on ``small_map`` (or on the seat map ``content``, or on
    the published map ``seat_map_id`` when ``overrides`` name one); ``overrides`` replace
    CreateEvent's fields."""
    if "seat_map_id" not in overrides:
        sm = await published_map(api, content or small_map(rows, seats_per_row, ga))
        overrides["seat_map_id"] = sm.seat_map_id
    fields: dict[str, Any] = {
        "name": "On-sale night",
        "currency": "EUR",
        "status": events_pb2.EVENT_STATUS_ON_SALE,
        "prices": prices(),
    }
    created = await api.events.CreateEvent(
        events_pb2.CreateEventRequest(**(fields | overrides)), metadata=api.metadata
    )
    return str(created.event.event_id)
