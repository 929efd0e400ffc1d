"""Reading a whole event: in chunks (the audit's way) as in one atomic script."""

from __future__ import annotations

import pytest

from holds.inspection import EventChanged, read_event, read_event_in_chunks
from holds.records import Buyer
from server.context import Stores
from tests.holds.factories import GA_AREA, make_event


async def test_a_read_in_chunks_equals_the_atomic_read(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events, rows=3, seats_per_row=10, ga_capacity=50)
    for i in range(8):  # orders, tickets, holds, GA, stream and lifecycle entries
        held = await stores.inventory.hold(ev.event_id, seats=ev.seats(2 * i, 2 * i + 1), ga={GA_AREA: 1})
        if i % 2 == 0:
            await stores.inventory.commit(ev.event_id, held.hold_id, f"key-{i}", Buyer(name="Ada"))
    atomic = await read_event(stores.scripts, ev.event_id)
    chunked = await read_event_in_chunks(stores.redis, ev.event_id, chunk=3)  # many chunks per key
    assert abs(chunked.now_ms - atomic.now_ms) < 5_000
    chunked.now_ms = atomic.now_ms
    assert chunked == atomic
    assert len(chunked.orders) == 4
    assert len(chunked.changes) > 3


async def test_an_event_that_keeps_changing_is_not_read_half(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    real_get = stores.redis.get
    counter = iter(range(1_000))

    async def moving_seq(name: str) -> bytes:  # as if every read overlapped a change
        await real_get(name)
        return str(next(counter)).encode()

    monkeypatch.setattr(stores.redis, "get", moving_seq)
    with pytest.raises(EventChanged):
        await read_event_in_chunks(stores.redis, ev.event_id)
