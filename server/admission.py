"""Admission control: shed load early and clearly instead of queueing for seconds.

Two signals, per process: how many unary calls are in flight, and how late the
event loop runs (a loop that is 300 ms late serves every call 300 ms late).
Past either limit, new calls get RESOURCE_EXHAUSTED with a RetryInfo at once,
so clients back off while the calls already admitted stay fast. Calls that
finish a purchase (commit, extend, release) are always admitted: a buyer who
holds seats must be able to pay, and releasing frees capacity. Each method
declares which it is (:class:`Admit`, in its servicer module's declaration).
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field

from server import metrics

LAG_PROBE_INTERVAL_S = 0.05


class Admit(enum.Enum):
    """How a method is admitted (declared per method, see ``server/declarations.py``)."""

    SHEDDABLE = "sheddable"  # refused while the process is overloaded
    ALWAYS = "always"  # finishes a purchase or frees capacity: never shed


class Overloaded(Exception):
    """This process is at capacity; retry after ``retry_after_s``."""

    def __init__(self, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(f"server busy ({reason}); retry with backoff")
        self.retry_after_s = retry_after_s


@dataclass
class Admission:
    max_inflight: int = 128
    max_lag_s: float = 0.5
    # Sales sessions (server/servicers/sessions.py): messages read and not yet
    # answered, per stream and per process. At a cap a stream stops reading
    # (backpressure), so a client that never reads its answers holds a bounded
    # amount of memory. Each message is also admitted like a unary call.
    max_session_stream_inflight: int = 256
    max_session_inflight: int = 4096
    inflight: int = 0
    lag_s: float = 0.0
    shed: int = field(default=0)

    def enter(self, sheddable: bool) -> None:
        """Count the call in, or raise Overloaded (nothing counted); a call that is
        not ``sheddable`` (``Admit.ALWAYS``) is always counted in."""
        if sheddable:
            if self.inflight >= self.max_inflight:
                self.shed += 1
                metrics.refused("inflight")
                raise Overloaded(f"{self.inflight} calls in flight")
            if self.lag_s > self.max_lag_s:
                self.shed += 1
                metrics.refused("loop_lag")
                raise Overloaded(f"event loop {self.lag_s * 1000:.0f} ms behind")
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1

    async def watch_loop_lag(self) -> None:
        """Measure how late a short sleep wakes up; smooth it so one hiccup sheds nothing."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_PROBE_INTERVAL_S)
            late = max(time.monotonic() - started - LAG_PROBE_INTERVAL_S, 0.0)
            self.lag_s = 0.7 * self.lag_s + 0.3 * late
