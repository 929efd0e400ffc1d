"""Call budgets: how long a unary call (or a session's message) may run before it answers UNAVAILABLE.

The wrapper (``server/wrapping.py``) and sales sessions give each call a budget
(:func:`call_budget`) and enforce it with :class:`Budgets`: one timer per
process that sweeps the calls in flight every ``TICK_S``, rather than an
``asyncio.timeout`` per call. A timer per call is armed and disarmed for
every call though almost none runs out; on a busy server that cost several
per cent of a HoldSeats' CPU (measured: docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

# Unary calls without a deadline still get one: nothing may hang on a stuck store.
DEFAULT_BUDGET_S = 30.0
# How often the calls in flight are checked: a call is cancelled at most this late.
TICK_S = 0.01


def call_budget(time_remaining: float | None) -> float:
    """Time a unary call may take: a little less than the client's deadline (and
    the sweep's tick less again), so the client hears UNAVAILABLE from us rather
    than its own DEADLINE_EXCEEDED."""
    if time_remaining is None:
        return DEFAULT_BUDGET_S
    margin = min(0.05, time_remaining * 0.1) + TICK_S
    return max(min(time_remaining - margin, DEFAULT_BUDGET_S), 0.001)


class Budgets:
    """The budgets of the calls in flight, each call a task of its own.

    :meth:`within` runs a call's work under its budget as ``asyncio.timeout``
    would: ``TimeoutError`` once the budget ran out (its cancellation taken
    back), while a call also cancelled from elsewhere (its client left, the
    server stops) stays cancelled.
    """

    def __init__(self, tick_s: float = TICK_S) -> None:
        self._tick_s = tick_s
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's

    @property
    def in_flight(self) -> int:
        return len(self._due)

    @property
    def sweeping(self) -> bool:
        """Whether the sweep's timer is armed (only while calls are in flight)."""
        return self._timer is not None

    async def within(self, budget_s: float, work: Awaitable[T]) -> T:
        """``await work`` in the current task, cancelled once ``budget_s`` ran out
        (then ``TimeoutError``)."""
        task, cancelling = self._start(budget_s)
        try:
            return await work
        except asyncio.CancelledError:
            if self._ran_out(task, cancelling):
                raise TimeoutError from None
            raise
        finally:
            self._finish(task)

    def _start(self, budget_s: float) -> tuple[asyncio.Task[object], int]:
        """Give the current task ``budget_s``; returns it and how often it was being
        cancelled already (``_ran_out``'s second argument)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a budget is for a call's task")
        loop = task.get_loop()
        self._due[task] = loop.time() + budget_s
        if self._timer is None or self._loop is not loop:  # a timer of a loop gone (tests) never fires
            self._loop = loop
            self._timer = loop.call_later(self._tick_s, self._tick, loop)
        return task, task.cancelling()

    def _ran_out(self, task: asyncio.Task[object], cancelling: int) -> bool:
        """For a CancelledError in ``task``: whether it is the budget's alone."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() <= cancelling

    def _finish(self, task: asyncio.Task[object]) -> None:
        self._due.pop(task, None)
        if task in self._expired:  # cancelled by its budget, yet it went on: take that back
            self._expired.discard(task)
            task.uncancel()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # superseded by a timer of another loop
            return
        self._timer = None
        self.sweep(loop)
        if self._due:
            self._timer = loop.call_later(self._tick_s, self._tick, loop)

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel every call past its budget (the timer does, every tick)."""
        now = loop.time()
        late = [task for task, due in self._due.items() if due <= now]
        for task in late:
            del self._due[task]
            if not task.done():
                self._expired.add(task)
                task.cancel()
