"""Pieces of the events servicer that the API tests cannot see: one watch message per batch."""

from __future__ import annotations

from holds.availability import Delta, GaCount
from server.context import Stores
from server.servicers.events import BatchMessages
from tests.holds.factories import make_event


async def test_a_batch_is_built_once_for_all_its_watchers(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    ctx = await stores.live.get(ev.tenant, ev.event_id)
    ga = {ev.ga_area: GaCount(5, 1, 0)}
    batch = [
        Delta(seq=7, kind="held", state="held", seats=(0, 1), ga_area="", ga_qty=0),
        Delta(seq=8, kind="held", state="held", seats=(), ga_area=ev.ga_area, ga_qty=1),
    ]
    messages = BatchMessages(size=2)
    first = messages.get(ctx, ga, batch)
    assert messages.get(ctx, ga, batch) is first  # the second watcher reuses it
    assert first.deltas.first_sequence == 7
    placed = ev.loaded.index.placed
    assert [list(d.seat_ids) for d in first.deltas.deltas] == [[placed[0].seat.id, placed[1].seat.id], []]
    assert first.deltas.deltas[1].general_admission.held == 1
    equal = list(batch)  # another list (a watcher's first batch, cut at its snapshot): built anew
    assert messages.get(ctx, ga, equal) is not first
    assert messages.get(ctx, ga, equal) == first
    for n in range(3):  # bounded: the oldest entries go
        messages.get(ctx, ga, [Delta(seq=9 + n, kind="sold", state="sold", seats=(2,), ga_area="", ga_qty=0)])
    assert messages.get(ctx, ga, batch) is not first
