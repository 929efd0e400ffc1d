"""Background tidying: expired holds, finished events, idle live events, and the
no-show feed entries of closed events. No sale's correctness depends on it.

Expiry is lazy (every script treats an expired hold's seats as free), so the
reaper only frees memory and tells watchers sooner that seats came back. Every
round it reaps the events live in this process (they are the ones selling
here, at most ``LiveEvents`` capacity) and evicts the idle ones; every
``SWEEP_EVERY`` rounds it also walks the platform's set of events that may
have holds, so holds left by a process that died are tidied too. An event
leaves that set once it has no hold left and can take none (closed, or past
its on-sale window) and, once closed, has had its no-show entries written
(``holds/lua/no_show.lua``: after the admission window, if it has an end).
It runs in every server process; two reapers purging the same event is
harmless (each purge, each batch of no-shows, is one atomic script).

Every round it also settles the exchanges into another event whose caller died
between two of their steps (``holds/exchanges.py`` ``recover``: completed or undone
once older than their grace period); two reapers settling one is harmless too.

Every ``DUES_EVERY`` rounds the same loop bills the plans' setup and monthly
fees due and runs billing's automatic suspension of organizers with overdue
statements (``holds/platform/dues.py``).
"""

from __future__ import annotations

import asyncio

import structlog

from server.context import Stores

log = structlog.get_logger("seatwise.reaper")
INTERVAL_S = 1.0
SWEEP_EVERY = 60  # rounds between walks of the whole set of events with holds
PER_EVENT_LIMIT = 500
REAP_BUDGET_S = 30.0
NO_SHOW_BATCHES_PER_ROUND = 20  # of 200 orders each: a stadium's no-shows over a few rounds
DUES_EVERY = 300  # rounds (about five minutes) between runs of billing's suspension of unpaid organizers


async def reap_once(stores: Stores, *, sweep: bool = False) -> int:
    """Reap the live events (and, when ``sweep``, every event that may have holds)."""
    stores.live.evict_idle()
    event_ids = set(stores.live.event_ids())
    if sweep:
        event_ids.update(await stores.events.active_ids())
    purged_total = 0
    for event_id in sorted(event_ids):
        result = await stores.inventory.reap(event_id, PER_EVENT_LIMIT)
        purged_total += result.purged
        if result.finished and await _no_shows_written(stores, event_id):
            await stores.events.retire(event_id)
    # exchanges into another event whose caller died between two steps (holds/exchanges.py):
    # completed or undone once older than their grace period; one read when there are none
    await stores.after_sale.cross.recover()
    return purged_total


async def _no_shows_written(stores: Stores, event_id: str) -> bool:
    """Write a finished event's no-show feed entries, a bounded number of batches
    per round; True when none are owed (not closed: closing it later puts it back
    in the set) or all are written, so the event may leave the reaper's set."""
    for _ in range(NO_SHOW_BATCHES_PER_ROUND):
        state, _written = await stores.door.write_no_shows(event_id)
        if state != "more":
            return state != "doors_open"
    return False


async def reap_forever(stores: Stores, interval_s: float = INTERVAL_S) -> None:
    rounds = 0
    while True:
        try:
            async with asyncio.timeout(REAP_BUDGET_S):  # no call may hang the reaper
                purged = await reap_once(stores, sweep=rounds % SWEEP_EVERY == 0)
            if purged:
                log.debug("reaper.purged", holds=purged)
            if rounds % DUES_EVERY == DUES_EVERY - 1:
                async with asyncio.timeout(REAP_BUDGET_S):
                    now_ms = stores.dues.clock()
                    await stores.dues.bill_plans(now_ms)
                    await stores.dues.run_once(now_ms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: try again next round
            log.warning("reaper.failed", error=str(exc))
        rounds += 1
        await asyncio.sleep(interval_s)
