"""Background tidying of expired holds. Correctness never depends on it.

Expiry is lazy (every script treats an expired hold's seats as free), so the
reaper only frees memory and tells watchers sooner that seats came back. It
runs in every server process; two reapers purging the same event is harmless
(each purge is one atomic script).
"""

from __future__ import annotations

import asyncio

import structlog

from holds.sales import Sales

log = structlog.get_logger("seatwise.reaper")
INTERVAL_S = 1.0
PER_EVENT_LIMIT = 500
REAP_BUDGET_S = 30.0


async def reap_once(sales: Sales) -> int:
    purged_total = 0
    for event_id in await sales.events.active_ids():
        purged, _remaining = await sales.inventory.reap(event_id, PER_EVENT_LIMIT)
        purged_total += purged
    return purged_total


async def reap_forever(sales: Sales, interval_s: float = INTERVAL_S) -> None:
    while True:
        try:
            async with asyncio.timeout(REAP_BUDGET_S):  # no call may hang the reaper
                purged = await reap_once(sales)
            if purged:
                log.debug("reaper.purged", holds=purged)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: try again next round
            log.warning("reaper.failed", error=str(exc))
        await asyncio.sleep(interval_s)
