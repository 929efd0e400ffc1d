"""The seat-map catalogue: versions, publishing, and the per-process cache."""

from __future__ import annotations

import asyncio

import pytest

from holds.errors import NotFound
from seatmap.generate import theatre
from server.context import Stores


async def test_concurrent_cold_loads_build_the_index_once(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    from holds import seatmaps

    built = []
    real = seatmaps._decode_and_index

    def counting(record: seatmaps.SeatMapVersion, raw: bytes) -> seatmaps.LoadedSeatMap:
        built.append(record.version)
        return real(record, raw)

    monkeypatch.setattr(seatmaps, "_decode_and_index", counting)
    version = await stores.seatmaps.put("t1", "", theatre())
    await stores.seatmaps.publish("t1", version.seat_map_id, version.version)
    loaded = await asyncio.gather(*(stores.seatmaps.load("t1", version.seat_map_id, 1) for _ in range(20)))
    assert built == [1]
    assert all(item is loaded[0] for item in loaded)


async def test_versions_are_immutable_and_published_is_reported(stores: Stores) -> None:
    first = await stores.seatmaps.put("t1", "", theatre())
    second = await stores.seatmaps.put("t1", first.seat_map_id, theatre())
    assert (first.version, second.version) == (1, 2)
    draft = await stores.seatmaps.load("t1", first.seat_map_id, 1)
    assert draft.version.state == "draft"
    await stores.seatmaps.publish("t1", first.seat_map_id, 1)
    assert (await stores.seatmaps.load("t1", first.seat_map_id, 1)).version.state == "published"
    with pytest.raises(NotFound):
        await stores.seatmaps.load("t1", first.seat_map_id, 3)
    with pytest.raises(NotFound):
        await stores.seatmaps.load("t2", first.seat_map_id, 1)  # another tenant's catalogue
