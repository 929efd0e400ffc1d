"""Running ``loadtest.runner`` from a test: the whole runner in its own process group,
its summary read back after checking what every run must show."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RUN_TIMEOUT_S = 120


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_and_audit(out: Path, *runner_args: str) -> dict[str, Any]:
    """Run the runner with ``runner_args`` into ``out`` and return its summary, once it
    exited cleanly, left no process behind and its audit passed with orders sold."""
    args = [sys.executable, "-m", "loadtest.runner", *runner_args, "--out", str(out)]
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

    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    audit = summary["audit"]
    assert audit["ok"] is True, json.dumps(audit["checks"], indent=1)
    assert audit["stats"]["orders"] > 0
    assert audit["stats"]["acks"] > 0
    # the acknowledged orders (each checked against Redis by the audit) and the rest are all there is
    acked_orders = audit["stats"]["orders"] - audit["stats"]["orders_not_acknowledged"]
    assert 0 < acked_orders <= audit["stats"]["acks"]
    assert summary["sales"]["tickets"] == audit["stats"]["tickets_valid"]
    assert (out / "locust_stats_history.csv").exists()
    assert (out / "locust-report.html").exists()
    assert list((out / "records").glob("raw-*.tsv"))
    return summary
