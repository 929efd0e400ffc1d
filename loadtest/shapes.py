"""Load shapes. Each reads Locust's common options (``-u`` users, ``-r`` spawn
rate, ``-t`` run time), so one scenario runs at any size from the command line.

* :class:`SpikeShape`: everyone arrives at once (at the spawn rate) and stays
  until the run time is up: an on-sale opening.
* :class:`StepShape`: ``steps`` equal steps up to the user count, one every
  run_time / steps: where does latency bend?
* :class:`SoakShape`: a gentle ramp (a tenth of the run, at most a minute) to
  the user count, then constant: leaks, drift, expiry and reaper over time.
"""

from __future__ import annotations

import time
from typing import ClassVar

from locust import LoadTestShape

DEFAULT_RUN_TIME_S = 60.0


class _OptionsShape(LoadTestShape):
    abstract = True
    use_common_options = True

    def options(self) -> tuple[int, float, float]:
        """(users, spawn rate, run time in s) from the command line."""
        parsed = self.runner.environment.parsed_options if self.runner else None
        users = int(getattr(parsed, "num_users", None) or 1)
        rate = float(getattr(parsed, "spawn_rate", None) or users)
        run_time = float(getattr(parsed, "run_time", None) or DEFAULT_RUN_TIME_S)
        return users, rate, run_time

    def elapsed(self) -> float:
        started: float = self.start_time
        return time.perf_counter() - started


class SpikeShape(_OptionsShape):
    def tick(self) -> tuple[int, float] | None:
        users, rate, run_time = self.options()
        if self.elapsed() >= run_time:
            return None
        return users, rate


class StepShape(_OptionsShape):
    steps: ClassVar[int] = 5

    def tick(self) -> tuple[int, float] | None:
        users, rate, run_time = self.options()
        elapsed = self.elapsed()
        if elapsed >= run_time:
            return None
        step = min(int(elapsed / (run_time / self.steps)) + 1, self.steps)
        return max(1, round(users * step / self.steps)), rate


class SoakShape(_OptionsShape):
    def tick(self) -> tuple[int, float] | None:
        users, _rate, run_time = self.options()
        if self.elapsed() >= run_time:
            return None
        ramp_s = min(60.0, max(1.0, run_time / 10))
        return users, max(1.0, users / ramp_s)


SHAPES: dict[str, type[LoadTestShape]] = {"spike": SpikeShape, "step": StepShape, "soak": SoakShape}
