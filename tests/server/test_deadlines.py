"""The call budgets: a little less than the client's deadline, and never unbounded."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from server.deadlines import DEFAULT_BUDGET_S, TICK_S, Budgets, call_budget


def test_budget_leaves_room_before_the_client_deadline() -> None:
    assert call_budget(None) == DEFAULT_BUDGET_S
    assert call_budget(3600.0) == DEFAULT_BUDGET_S
    assert call_budget(1.0) == pytest.approx(1.0 - 0.05 - TICK_S)
    assert call_budget(0.2) == pytest.approx(0.2 - 0.02 - TICK_S)
    assert call_budget(0.001) == 0.001  # already too late: fail at once


async def test_a_call_past_its_budget_is_cancelled_and_told_so() -> None:
    budgets = Budgets()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    call = asyncio.create_task(budgets.within(0.02, never))
    with pytest.raises(TimeoutError):
        await call
    assert call.cancelling() == 0  # the budget's cancellation was taken back
    assert budgets.in_flight == 0


async def test_calls_within_their_budget_are_untouched_and_the_sweep_stops() -> None:
    budgets = Budgets()
    loop = asyncio.get_running_loop()
    works: list[asyncio.Future[str]] = [loop.create_future() for _ in range(20)]
    calls = [asyncio.create_task(budgets.within(30.0, work)) for work in works]
    await asyncio.sleep(0)
    assert budgets.in_flight == 20
    assert budgets.sweeping
    for work in works:
        work.set_result("done")
    assert await asyncio.gather(*calls) == ["done"] * 20
    assert budgets.in_flight == 0
    while budgets.sweeping:  # noqa: ASYNC110 - the next tick finds nothing and disarms
        await asyncio.sleep(TICK_S)


async def test_a_call_cancelled_from_elsewhere_stays_cancelled() -> None:
    budgets = Budgets()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    call = asyncio.create_task(budgets.within(30.0, never))
    await asyncio.sleep(0)
    call.cancel()  # its client left
    with pytest.raises(asyncio.CancelledError):
        await call
    assert budgets.in_flight == 0


async def test_a_call_cancelled_from_elsewhere_as_its_budget_ran_out_stays_cancelled() -> None:
    budgets = Budgets()
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    call = asyncio.create_task(budgets.within(0.0, never))  # out of time at the first sweep
    await asyncio.sleep(0)
    budgets.sweep(loop)  # its budget cancels it ...
    call.cancel()  # ... and so does its client, before it runs again
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_call_that_swallows_its_budgets_cancellation_is_uncancelled() -> None:
    budgets = Budgets()

    async def stubborn() -> int:
        with contextlib.suppress(asyncio.CancelledError):  # a library turning it into a result
            await asyncio.sleep(30)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    call = asyncio.create_task(budgets.within(0.0, stubborn()))
    assert await call == 1  # cancelled once, by the budget ...
    assert call.cancelling() == 0  # ... and taken back when it finished


async def test_budgets_outlive_an_event_loop() -> None:
    """A server stopped with calls in flight leaves its timer on a closed loop;
    budgets used again on a new loop must still be enforced."""
    budgets = Budgets()

    async def stuck() -> None:
        await asyncio.sleep(30)

    async def abandon() -> None:
        asyncio.get_running_loop().create_task(budgets.within(30.0, stuck()))
        await asyncio.sleep(0)  # armed on this loop, never finished

    # another loop, in a thread of its own: this thread's loop stays as it is
    other = threading.Thread(target=asyncio.run, args=(abandon(),))
    other.start()
    other.join()
    with pytest.raises(TimeoutError):
        await budgets.within(0.02, stuck())
