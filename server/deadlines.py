"""Call budgets enforced by one periodic sweep instead of a timer per call.

``asyncio.timeout`` arms and cancels a loop timer on every call: ~5-6 µs of
CPU a call under uvloop, more than the task that runs the call
(``scripts.bench_hot_path``). Here a call is one dict entry, and a sweep every
``TICK_S`` (running only while calls are in flight) cancels the tasks past
their deadline. Budgets are shortened by one tick so a cancelled call still
answers within the client's deadline.
"""

from __future__ import annotations

import asyncio
import time

TICK_S = 0.02
# Unary calls without a deadline still get one: nothing may hang on a stuck store.
DEFAULT_BUDGET_S = 30.0


def call_budget(time_remaining: float | None) -> float:
    """Time a unary call may take: a little less than the client's deadline (and
    one sweep tick less), so the client hears UNAVAILABLE from us rather than
    its own DEADLINE_EXCEEDED."""
    if time_remaining is None:
        return DEFAULT_BUDGET_S
    margin = min(0.05, time_remaining * 0.1) + TICK_S
    return max(min(time_remaining - margin, DEFAULT_BUDGET_S), 0.001)


class Deadlines:
    """The in-flight calls of one event loop and when each must be cancelled."""

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self, task: asyncio.Task[object], budget_s: float) -> None:
        self._due[task] = time.monotonic() + budget_s
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def finish(self, task: asyncio.Task[object]) -> bool:
        """Stop watching ``task``; True if the sweep cancelled it (its budget ran out).

        The caller then owns that cancellation: ``task.uncancel()``, and answer
        unless it returns more than 0 (someone else cancelled the task too).
        """
        if self._due.pop(task, None) is not None:
            return False
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def expire(self, task: asyncio.Task[object]) -> None:
        """Cancel ``task`` as out of time (the sweep does this once its budget is spent)."""
        if self._due.pop(task, None) is not None:
            self._expired.add(task)
            task.cancel()

    @property
    def in_flight(self) -> int:
        return len(self._due)

    async def _sweep(self) -> None:
        try:
            while self._due:
                await asyncio.sleep(TICK_S)
                now = time.monotonic()
                for task in [task for task, due in self._due.items() if due <= now]:
                    self.expire(task)
        finally:
            self._sweeper = None
