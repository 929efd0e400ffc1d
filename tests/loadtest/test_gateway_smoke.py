"""A short on-sale through storefront gateways (sales sessions), through the whole runner:
real Redis, two server processes, Locust master + two workers, each worker driving one
asyncio gateway process with two sessions and one availability cache; the audit must pass,
orders must have been committed over sessions, and buyers browse the caches, not the service.

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
def test_gateways_sell_over_sessions_and_pass_the_audit(tmp_path: Path) -> None:
    summary = run_and_audit(
        tmp_path / "run",
        "--scenario", "stadium-gateway", "--venue", "theatre",
        "--users", "300", "--spawn-rate", "150", "--duration", "15",
        "--workers", "2", "--server-workers", "2", "--sessions", "2",
    )  # fmt: skip
    methods = summary["requests"]["methods"]
    assert methods["session:CommitHold"]["ok"] > 0  # sold over sessions ...
    assert "CommitHold" not in methods  # ... and never unary
    assert "HoldBestAvailable" not in methods
    assert "GetAvailability" not in methods  # buyers browse their gateway's cache ...
    assert methods["WatchAvailability (gateway cache)"]["ok"] >= 2  # ... fed by a stream per gateway
    assert summary["cpu"]["server_s"] > 0
    assert summary["cpu"]["server_s_per_1000_tickets"] > 0
    assert summary["cpu"]["load_generator_s_per_1000_tickets"] > 0  # Locust and its gateways
