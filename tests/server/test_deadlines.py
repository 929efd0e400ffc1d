"""The call budgets: one sweep cancels calls past their deadline, and only those."""

from __future__ import annotations

import asyncio

import pytest

from server.deadlines import DEFAULT_BUDGET_S, TICK_S, Deadlines, call_budget


def test_budget_leaves_room_before_the_client_deadline() -> None:
    assert call_budget(None) == DEFAULT_BUDGET_S
    assert call_budget(3600.0) == DEFAULT_BUDGET_S
    assert call_budget(1.0) == pytest.approx(1.0 - 0.05 - TICK_S)
    assert call_budget(0.2) == pytest.approx(0.2 - 0.02 - TICK_S)
    assert call_budget(0.01) == 0.001  # already too late: fail at the next sweep


async def _tracked(deadlines: Deadlines, budget_s: float, work_s: float) -> tuple[str, bool]:
    task = asyncio.current_task()
    assert task is not None
    deadlines.start(task, budget_s)
    expired = False
    try:
        try:
            await asyncio.sleep(work_s)
            return "done", False
        finally:
            expired = deadlines.finish(task) and task.uncancel() == 0
    except asyncio.CancelledError:
        if not expired:
            raise
        return "cancelled", True


async def test_an_overrunning_call_is_cancelled_after_its_budget() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _tracked(deadlines, 0.1, 10.0) == ("cancelled", True)
    took = loop.time() - started
    assert 0.1 <= took < 0.1 + TICK_S + 0.5  # generous: a loaded machine wakes late
    assert deadlines.in_flight == 0
    task = asyncio.current_task()
    assert task is not None
    assert not task.cancelling()


async def test_calls_within_budget_are_left_alone_and_the_sweep_stops_when_idle() -> None:
    deadlines = Deadlines()
    results = await asyncio.gather(*(_tracked(deadlines, 5.0, 0.05) for _ in range(50)))
    assert results == [("done", False)] * 50
    assert deadlines.in_flight == 0
    await asyncio.sleep(TICK_S * 3)
    assert deadlines._sweeper is None  # no timer left running on an idle server


async def test_only_the_overrunning_calls_of_a_crowd_are_cancelled() -> None:
    deadlines = Deadlines()
    results = await asyncio.gather(
        *(_tracked(deadlines, 0.1 if i % 2 else 5.0, 0.5 if i % 2 else 0.05) for i in range(20))
    )
    assert results == [("done", False) if i % 2 == 0 else ("cancelled", True) for i in range(20)]


async def test_a_cancellation_from_elsewhere_at_expiry_still_propagates() -> None:
    deadlines = Deadlines()
    call = asyncio.create_task(_tracked(deadlines, 5.0, 10.0))
    await asyncio.sleep(0)  # the call is tracked and asleep
    deadlines.expire(call)  # out of time...
    call.cancel()  # ...and the client leaves in the same instant
    with pytest.raises(asyncio.CancelledError):
        await call
    assert deadlines.in_flight == 0


async def test_a_cancellation_from_elsewhere_is_not_taken_for_a_timeout() -> None:
    deadlines = Deadlines()
    call = asyncio.create_task(_tracked(deadlines, 5.0, 10.0))
    await asyncio.sleep(TICK_S * 2)
    call.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await call
    assert deadlines.in_flight == 0
