"""Call budgets: how long a unary call may run before it answers UNAVAILABLE.

The wrapper (``server/wrapping.py``) runs each unary call under
``asyncio.timeout(call_budget(...))``.
"""

from __future__ import annotations

# Unary calls without a deadline still get one: nothing may hang on a stuck store.
DEFAULT_BUDGET_S = 30.0


def call_budget(time_remaining: float | None) -> float:
    """Time a unary call may take: a little less than the client's deadline, so
    the client hears UNAVAILABLE from us rather than its own DEADLINE_EXCEEDED."""
    if time_remaining is None:
        return DEFAULT_BUDGET_S
    margin = min(0.05, time_remaining * 0.1)
    return max(min(time_remaining - margin, DEFAULT_BUDGET_S), 0.001)
