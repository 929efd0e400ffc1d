"""A short on-sale through storefront gateways (sales sessions), through the whole runner:
real Redis, two server processes, Locust master + two workers, each worker one gateway
with two sessions; the audit must pass and orders must have been committed over sessions.

Bounded: ~15 s of load on the 1,297-seat theatre; the runner stops everything it
started, and this test kills the runner's whole process group if it ever hangs.
No timing is asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUN_TIMEOUT_S = 120


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_gateways_sell_over_sessions_and_pass_the_audit(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        sys.executable, "-m", "loadtest.runner",
        "--scenario", "stadium-gateway", "--venue", "theatre",
        "--users", "300", "--spawn-rate", "150", "--duration", "15",
        "--workers", "2", "--server-workers", "2", "--sessions", "2", "--out", str(out),
    ]  # fmt: skip
    runner = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True
    )
    try:
        output, _ = runner.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 0, output[-4000:]
    try:
        # multiprocessing's resource tracker (the seat-map pool's) exits just after
        # its server: wait for the group to drain (observed), bounded
        deadline = time.monotonic() + 15
        while _group_alive(runner.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(runner.pid), "the runner left processes behind"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)

    summary = json.loads((out / "summary.json").read_text())
    audit = summary["audit"]
    assert audit["ok"] is True, json.dumps(audit["checks"], indent=1)
    assert audit["stats"]["orders"] > 0
    assert audit["stats"]["acks"] > 0
    assert audit["stats"]["acks"] + audit["stats"]["orders_not_acknowledged"] >= audit["stats"]["orders"]
    methods = summary["requests"]["methods"]
    assert methods["session:CommitHold"]["ok"] > 0  # sold over sessions ...
    assert "CommitHold" not in methods  # ... and never unary
    assert "HoldBestAvailable" not in methods
    assert methods["GetAvailability"]["ok"] > 0  # browsing stays unary
    assert summary["cpu"]["server_s"] > 0
    assert summary["cpu"]["server_s_per_1000_tickets"] > 0
    assert summary["sales"]["tickets"] == audit["stats"]["tickets_valid"]
    assert (out / "locust_stats_history.csv").exists()
    assert (out / "locust-report.html").exists()
    assert list((out / "records").glob("raw-*.tsv"))
