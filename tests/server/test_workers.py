"""The supervisor of ``--workers`` on its own: workers that install no handler, its restart budget."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from server.workers import MAX_RESTARTS, RESTART_WINDOW_S, RestartBudget
from tests.clock import Clock
from tests.server.test_serve import WAIT_S, _wait_for_lines

# workers that sleep with the default SIGTERM action: a stop signal kills them outright, as it
# does a worker still starting
SLEEPERS = (
    "import time\nfrom server.workers import supervise\nsupervise(2, lambda index: time.sleep(600), port=0)\n"
)


def test_workers_killed_by_the_forwarded_stop_signal_count_as_stopped(tmp_path: Path) -> None:
    log_path = tmp_path / "supervisor.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", SLEEPERS], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_for_lines(log_path, "workers.started", 1, proc)  # the supervisor's handler is in place
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert proc.returncode == 0, log
    assert "workers.stopped" in log
    assert "failed=0" in log


def test_the_restart_budget_counts_restarts_within_the_window_only() -> None:
    clock = Clock()
    budget = RestartBudget(clock)
    assert all(budget.take() for _ in range(MAX_RESTARTS))
    assert not budget.take()  # a worker that keeps dying: the supervisor gives up
    clock.now += RESTART_WINDOW_S  # the first restarts are a window ago
    assert budget.take()  # a worker that dies now and then is always restarted
