"""The README's tour and its Python example run as written (against a real `seatwise serve`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.processes import free_port, spawn_serve, wait_serving

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLE = ROOT / "docs" / "examples" / "buy_two_seats.py"
UV_PYTHON = "python3 -m uv run --frozen python "


def _section(title: str) -> str:
    text = README.read_text()
    return text[text.index(title) :]


def tour_script() -> str:
    match = re.search(r"```sh\n(.*?)```", _section("## A five-minute tour"), re.S)
    assert match, "the tour has a sh block"
    return match.group(1)


def test_the_python_example_in_the_readme_is_the_file_the_tour_runs() -> None:
    match = re.search(r"```python\n(.*?)```", _section("## A five-minute tour"), re.S)
    assert match, "the tour has a python block"
    assert match.group(1) == EXAMPLE.read_text()
    assert f"{UV_PYTHON}docs/examples/buy_two_seats.py $EV" in tour_script()


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    script = tour_script()
    # The tour's helper line calls uv from the checkout, as does its Python line; here the
    # test's own interpreter stands in for `uv run`, and the example is found in the checkout.
    lines = script.splitlines()
    assert lines[0].startswith("seatwise() {")
    lines[0] = f'seatwise() {{ "{sys.executable}" -m server.cli "$@"; }}'
    lines = [line.replace(UV_PYTHON + "docs/", f'"{sys.executable}" {ROOT}/docs/') for line in lines]
    port = free_port()
    proc = spawn_serve({"data_dir": str(tmp_path / "var" / "seatwise"), "port": str(port)})
    try:
        wait_serving(f"127.0.0.1:{port}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEATWISE_")}
        env |= {"SEATWISE_TARGET": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)}
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
    assert re.search(r"^premium\s+[\d,]+\s+0\s+2\s+0$", result.stdout, re.M), result.stdout
    assert re.search(r"^held \S+ \S+ until ", result.stdout, re.M)  # the Python example
    assert re.search(r"^order \S+ for \d+ EUR minor units$", result.stdout, re.M)
    assert (
        "valid: 'Synthetic Theatre': 14 sections, 1,297 seats (1,265 in rows, 32 at 8 tables)"
        in result.stderr
    )
    assert (tmp_path / "var" / "theatre.png").read_bytes().startswith(b"\x89PNG")
    assert not [p.name for p in tmp_path.iterdir() if p.name != "var"]  # nothing outside var/
