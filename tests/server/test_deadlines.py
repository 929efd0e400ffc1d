"""The call budgets: a little less than the client's deadline, and never unbounded."""

from __future__ import annotations

import pytest

from server.deadlines import DEFAULT_BUDGET_S, call_budget


def test_budget_leaves_room_before_the_client_deadline() -> None:
    assert call_budget(None) == DEFAULT_BUDGET_S
    assert call_budget(3600.0) == DEFAULT_BUDGET_S
    assert call_budget(1.0) == pytest.approx(1.0 - 0.05)
    assert call_budget(0.2) == pytest.approx(0.2 - 0.02)
    assert call_budget(0.001) == 0.001  # already too late: fail at once
