"""Heavy organizer work off the sales path: a bounded process pool, a per-tenant limit.

Validating a 200k-seat map takes seconds of CPU, nearly all of it holding the
GIL (msgspec, numpy, shapely); run in a thread of the server process, four of
them took another tenant's hold-and-release p99 from 35 ms to 761 ms and
starved the change-feed reader. So decoding and validating uploads
(ValidateSeatMap, UploadSeatMap) and rendering (RenderSeatMap) run in a pool
of separate processes (``SEATWISE_HEAVY_WORKERS``, default 1 per server
process), where they cannot take the event loop or the GIL; the server process
only ships bytes both ways (``server/heavy_jobs.py``).

* **Start method: spawn.** The pool is created lazily, on the first heavy
  call, when gRPC is already running in this process, and gRPC's core does not
  survive ``fork`` with live channels or servers; so pool processes are fresh
  interpreters, children of the server process, joined when it stops (a fork
  server would outlive the server for a moment, a process nobody owns). A new
  pool process spends a second or two importing numpy and shapely: once per
  server process, and again only after a crash.
* **Lower CPU priority.** Pool processes run at niceness 10
  (``heavy_jobs.start_worker``): where cores are scarce, the kernel serves the
  sales path first and organizer work with what is left.
* **Per-tenant limit.** Each tenant may have ``SEATWISE_HEAVY_PER_TENANT``
  (default 2) heavy calls in flight per server process; one more is refused at
  once with ``RESOURCE_EXHAUSTED`` and a ``RetryInfo`` (:class:`HeavyLimitReached`),
  so one organizer cannot queue the pool full for everyone else. A call counts
  until its job has *finished* in the pool, not until its caller gives up: an
  abandoned call cannot be replaced by another while its job still runs.
  The counts live in a dict holding only tenants with calls in flight (an entry
  leaves at zero), so it is bounded by the calls in flight.
* **The index build stays in a thread** (``holds/seatmaps.py``): the server
  needs the ``SeatIndex`` itself, and shipping one is dearer than building it
  (200k seats: build 0.86 s + msgpack decode 0.45 s; pickle 3.5 s in the pool
  + unpickle 1.9 s in the server, all holding the GIL; figures in
  ``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import structlog

from holds.seatmaps import LoadedSeatMap
from seatmap.model import msgpack_encoder
from server import heavy_jobs, metrics
from server.admission import Overloaded

log = structlog.get_logger("seatwise.heavy")

T = TypeVar("T")
RETRY_AFTER_S = 2.0  # a validation of a large map takes seconds


class HeavyLimitReached(Overloaded):
    """This tenant already has its quota of heavy calls in flight on this process."""

    def __init__(self, tenant_id: str, limit: int) -> None:
        Exception.__init__(
            self,
            f"tenant {tenant_id!r} already has {limit} heavy call(s) in flight on this server "
            f"(seat-map validation, upload or rendering; limit {limit} per tenant, "
            "SEATWISE_HEAVY_PER_TENANT); retry after the delay",
        )
        self.retry_after_s = RETRY_AFTER_S
        self.limit = limit


class HeavyWork:
    """The process pool of one server process, and the per-tenant limit in front of it."""

    def __init__(self, workers: int = 1, per_tenant: int = 2) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._inflight: dict[str, int] = {}  # tenant -> calls whose job has not finished
        self.workers = workers
        self.per_tenant = per_tenant
        self.configure(workers, per_tenant)

    def configure(self, workers: int, per_tenant: int) -> None:
        """Set the pool's size (before its first use) and the per-tenant limit."""
        if workers < 1 or per_tenant < 1:
            raise ValueError("heavy workers and the per-tenant limit must be at least 1")
        if self._pool is not None and workers != self.workers:
            raise RuntimeError("the heavy-work pool is already running")
        self.workers = workers
        self.per_tenant = per_tenant

    def inflight(self, tenant_id: str) -> int:
        return self._inflight.get(tenant_id, 0)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=heavy_jobs.start_worker
            )
            log.info("heavy.pool_started", workers=self.workers)
        return self._pool

    def _submit(self, job: Callable[..., T], *args: Any) -> tuple[ProcessPoolExecutor, Future[T]]:
        pool = self._executor()
        try:
            return pool, pool.submit(job, *args)
        except BrokenProcessPool:  # broken since the last call: start a new one
            self._discard(pool)
            pool = self._executor()
            return pool, pool.submit(job, *args)

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)

    def _release(self, tenant_id: str) -> None:
        left = self._inflight.get(tenant_id, 0) - 1
        if left > 0:
            self._inflight[tenant_id] = left
        else:
            self._inflight.pop(tenant_id, None)

    def check(self, tenant_id: str) -> None:
        """HeavyLimitReached if ``tenant_id`` has its quota in flight: called before a
        handler reads a large request's content, so a refused call copies none of it."""
        if self._inflight.get(tenant_id, 0) >= self.per_tenant:
            metrics.refused("heavy_per_tenant")
            raise HeavyLimitReached(tenant_id, self.per_tenant)

    async def run(self, tenant_id: str, job: Callable[..., T], *args: Any) -> T:
        """``job(*args)`` in the pool, counted against ``tenant_id``'s limit
        (HeavyLimitReached when it is reached)."""
        self.check(tenant_id)
        loop = asyncio.get_running_loop()
        pool, future = self._submit(job, *args)
        self._inflight[tenant_id] = self._inflight.get(tenant_id, 0) + 1

        def finished(_: Future[T]) -> None:  # in the pool's thread, or at once if cancelled
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing left to count
                loop.call_soon_threadsafe(self._release, tenant_id)

        future.add_done_callback(finished)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # a pool process died (killed, out of memory): the next call gets a new pool
            self._discard(pool)
            log.error("heavy.pool_broken", job=getattr(job, "__name__", str(job)))
            raise

    async def render_in_pool(
        self,
        tenant_id: str,
        render: Callable[..., T],
        loaded: LoadedSeatMap,
        status: dict[int, str] | None,
        **options: Any,
    ) -> T:
        """``render(loaded.index, status, **options)`` in the pool: the same arguments
        as a call in the server (a ``seatmap.render`` function and its options). The
        pool process keeps the decoded index by content hash: the map's bytes are
        only sent when that process does not have it yet."""
        key = loaded.version.content_sha256
        result: T | None = await self.run(
            tenant_id, heavy_jobs.render_job, render, key, None, status, options
        )
        if result is None:
            content = await asyncio.to_thread(msgpack_encoder.encode, loaded.seatmap)
            result = await self.run(tenant_id, heavy_jobs.render_job, render, key, content, status, options)
        if result is None:  # unreachable: the job builds the index when sent the content
            raise RuntimeError("the render job did not render")
        return result

    async def close(self) -> None:
        """Stop the pool (jobs not started are dropped), without blocking the loop."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
