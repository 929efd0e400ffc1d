"""A short on-sale spike through the whole runner: real Redis, two server processes,
Locust master + two workers; the audit must pass and orders must have been committed.

Bounded: ~15 s of load on the 1,297-seat theatre; the runner stops everything it
started, and this test kills the runner's whole process group if it ever hangs.
No timing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loadtest.runs import RUN_TIMEOUT_S, run_and_audit


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_short_spike_sells_and_passes_the_audit(tmp_path: Path) -> None:
    summary = run_and_audit(
        tmp_path / "run",
        "--scenario", "stadium-spike", "--venue", "theatre",
        "--users", "300", "--spawn-rate", "150", "--duration", "15",
        "--workers", "2", "--server-workers", "2",
    )  # fmt: skip
    assert summary["requests"]["methods"]["CommitHold"]["ok"] > 0
