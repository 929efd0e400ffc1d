"""The README's tour runs as written (against a real `seatwise serve`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.processes import free_port, spawn_serve, wait_serving

README = Path(__file__).resolve().parent.parent / "README.md"


def tour_script() -> str:
    text = README.read_text()
    section = text[text.index("## A five-minute tour") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the tour has a sh block"
    return match.group(1)


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    script = tour_script()
    # the tour's one helper line calls uv from the checkout; here the test's own interpreter stands in
    lines = script.splitlines()
    assert lines[0].startswith("seatwise() {")
    lines[0] = f'seatwise() {{ "{sys.executable}" -m server.cli "$@"; }}'
    port = free_port()
    proc = spawn_serve({"data_dir": str(tmp_path / "var" / "seatwise"), "port": str(port)})
    try:
        wait_serving(f"127.0.0.1:{port}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEATWISE_")}
        env |= {"SEATWISE_TARGET": f"127.0.0.1:{port}", "PYTHONPATH": str(README.parent)}
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(replayed)" in result.stdout
    assert "premium:" in result.stdout
    assert "2 sold" in result.stdout
    assert (tmp_path / "theatre.svg").read_text().startswith("<svg")
