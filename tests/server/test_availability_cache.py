"""The availability reply cache: exact for watch snapshots, bounded staleness for reads."""

from __future__ import annotations

import numpy as np
from seatwise.v1 import events_pb2

from holds.availability import HELD, GaCount, Snapshot
from holds.events import EventRef
from holds.records import SeatMapVersion
from holds.sales import EventContext
from holds.seatmaps import LoadedSeatMap, stats_of
from seatmap.generate import theatre
from seatmap.index import SeatIndex
from server.servicers.events import AvailabilityCache


def _ctx() -> EventContext:
    seatmap = theatre()
    version = SeatMapVersion("sm", 1, "t", "published", stats_of(seatmap), "", 0)
    return EventContext(
        EventRef("ev", "t", "sm", 1, "EUR"), LoadedSeatMap(version, seatmap, SeatIndex(seatmap))
    )


def _snap(ctx: EventContext, seq: int, held: int) -> Snapshot:
    states = np.zeros(len(ctx.loaded.index), dtype=np.int8)
    states[:held] = HELD
    return Snapshot(seq, states, {"floor": GaCount(10, 0, 0)})


def test_exact_unless_a_max_age_is_allowed() -> None:
    ctx, cache = _ctx(), AvailabilityCache()
    vector = events_pb2.SEAT_ENCODING_VECTOR
    first = cache.get(ctx, _snap(ctx, 1, 1), vector)
    assert cache.get(ctx, _snap(ctx, 1, 1), vector) is first  # same sequence: reused
    exact = cache.get(ctx, _snap(ctx, 2, 2), vector)  # moved on: rebuilt
    assert exact.sequence == 2
    assert sum(c.held for c in exact.by_category) == 2
    stale_ok = cache.get(ctx, _snap(ctx, 3, 3), vector, max_age_s=60.0)
    assert stale_ok is exact  # a plain read may reuse a young reply; its sequence tells how old
    assert cache.get(ctx, _snap(ctx, 3, 3), vector).sequence == 3
