"""Each benchmark of scripts/bench runs for a few seconds (``--smoke``) and prints
its figures, so none of them rots. No timing is asserted: figures of a smoke run
on a shared machine mean nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 90

# each benchmark and lines its output must contain
EXPECTED = {
    "sales": [
        "echo: baseline",
        "ceiling: ... + one Redis round trip",
        "... durable write, behind the wrapper",
        "HoldSeats, 2 random adjacent seats",
    ],
    "hold_layers": [
        "1 Inventory.hold",
        "4 registered handler",
        "5 session message",
        "Redis' own time per hold script",
    ],
    "live_events": ["events   RSS MB  open fds  Redis clients  reaper set"],
    "hot_path": ["ScriptChannel", "+ call budget: asyncio.timeout", "hold reply: in place (hold_pb)"],
    "seatmap": ["UploadSeatMap", "QuerySeats region", "overlap search"],
    "organizer_isolation": ["hold+release p99: quiet", "with 4 ValidateSeatMap"],
    "sessions": [
        "HoldSeats over 1 session x 96",
        "single-quota orders/s, 1 session, batched",
        "ceiling: ... + one durable Redis write",
        "... durable write, behind the wrapper",
        "bound: a durable write behind the wrapper / ceiling",
        "goals (same-run ratios)",
    ],
    "durability": ["commit p50 ms  commit p99 ms  unconfirmed"],
    "failover": ["replica acks 1: failovers 1,", "lost orders 0, double sales 0", "audit PASSED"],
    "seatmap_spatial": ["stadium() generation", "index build", "best_available", "pool search", "render_svg"],
    "distancing": ["neighbourhoods", "mirror upkeep per seat change", "free mask (kept counts)"],
    "exports": ["sold out in bulk:", "tickets csv", "contacts csv", "GetEventReport:"],
    "grpc_registration": ["methods  mode", "    120  registered", "    120  generic"],
    "seatmap_move": ["Redis CPU ms", "move in chunks", "moved 1,297 seats"],
    "hold_script": ["EVALSHA floor (return 1)", "+ prelude", "+ checks", "whole script (+ the writes)"],
}


@pytest.mark.bench
@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_runs_and_prints_its_figures(name: str) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", f"scripts.bench.{name}", "--smoke"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its child servers in its group, to kill if it hangs
    )
    try:
        output, _ = run.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 0, output
    for line in EXPECTED[name]:
        assert line in output, output
