"""A storefront gateway: the asyncio backend process of one Locust worker.

    python -m loadtest.storefront   # started by loadtest/gateway.py, commands on stdin

A real storefront fleet does not open a gRPC call per buyer operation, nor ask
the service for availability on every page view: each backend process keeps
one ``WatchAvailability`` stream feeding its own availability cache and a few
``SalesService.Session`` streams carrying every buyer's hold, release and
commit (``seatwise.client`` with ``sessions=N``, batched). This process is
that backend, on asyncio (not gevent: gRPC's asyncio API in a gevent-patched
Locust process does not complete calls). Its buyers are coroutines:

1. browse the cache (:func:`loadtest.shopcache.choose`): the quantity they want
   (``QUANTITIES``), in their category while it has enough, else any category,
   else fewer seats; nothing free: wait for returns while seats are held; stop
   once nothing is held either (sold out);
2. hold: best available (2 in 3 buyers; adjacent required, then preferred) or
   seats picked from the cache in a section that shows enough free (as
   ``SeatPicker``: a refusal naming taken seats marks them, three picks, then
   best available). Every hold carries a ``request_id`` and is sent again with
   it while its outcome is unknown, or after the delay a busy server's
   ``RESOURCE_EXHAUSTED`` asks for; 2 % of first attempts lose their reply on
   purpose (a 1 ms deadline) so the retry is a replay;
3. think 1-5 s (paying); abandon 20 % (half release, half let the lease
   expire); else commit with one idempotency key, retried while its outcome is
   unknown (2 % simulate a lost reply); every acknowledged commit goes to
   ``acks-<pid>.jsonl`` (:mod:`loadtest.recording`) for the audit.

The Locust worker says how many buyers to run (one per Locust user) and when to
stop (:mod:`loadtest.oplog`); every operation comes back to it in batches, a
few lines a second, and is replayed into Locust's ``request`` event as request
type ``session`` named after the unary method (the cache's stream as
``WatchAvailability (gateway cache)``, type ``grpc`` then ``grpc-stream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import sys
import time
import uuid
from collections import Counter
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import events_pb2, events_pb2_grpc, sales_pb2

from loadtest.config import SetupInfo, channels_from_env, out_dir_from_env, sessions_from_env, setup_from_env
from loadtest.oplog import Op, encode_ops, parse_command
from loadtest.provision import VENUES
from loadtest.recording import Ack, AckLog
from loadtest.shopcache import QUANTITIES, AvailabilityCache, Catalogue, choose, free_run, pick_section

SESSION = "session"
UNARY = "grpc"
STREAM = "grpc-stream"
WATCH_NAME = "WatchAvailability (gateway cache)"
LOST = " (lost reply)"
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
EXPECTED = frozenset({grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED})
FLUSH_S = 0.25
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Tunables:
    """The buyers' behaviour (as ``stadium-spike``'s, browsing aside)."""

    best_share = 2 / 3  # of buyers: best available; the rest pick seats
    category_share = 0.5  # of best-available buyers: want one category
    page_s = (0.0, 0.5)  # between journeys: the next buyer in the queue loads the page
    think_s = (1.0, 5.0)  # paying
    abandon_rate = 0.2
    release_share = 0.5  # of abandons: release explicitly (else let the lease expire)
    lost_reply_rate = 0.02
    hold_attempts = 3
    commit_attempts = 5
    call_timeout_s = 10.0
    commit_timeout_s = 5.0
    pick_attempts = 3
    returns_wait_s = (1.0, 3.0)  # nothing free, something held: look at the cache again
    refused_wait_s = (0.2, 1.0)  # the cache was stale: the seats went meanwhile
    max_in_flight = 128  # operations of the gateway's buyers under way at once


class Reporter:
    """Collects operations and writes them to the Locust worker a few times a second."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._ops: list[Op] = []

    def op(self, request_type: str, name: str, started: float, status: str = "", length: int = 0) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        self._ops.append(Op(request_type, name, time.time(), elapsed_ms, status, length))

    def flush(self) -> None:
        if not self._ops:
            return
        data, self._ops = encode_ops(self._ops), []
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    async def flush_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.flush()


def precondition_subjects(error: SeatwiseError) -> list[str]:
    """The seats a FAILED_PRECONDITION names as unavailable."""
    subjects: list[str] = []
    for detail in error.details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            subjects += [v.subject for v in failure.violations]
    return subjects


def retry_delay(error: SeatwiseError) -> float | None:
    """The delay a ``RetryInfo`` detail asks for (seconds), if there is one."""
    for detail in error.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return float(info.retry_delay.ToTimedelta().total_seconds())
    return None


class Storefront:
    """One gateway: the client's sessions, the cache's stream, the buyers."""

    def __init__(
        self, setup: SetupInfo, catalogue: Catalogue, reporter: Reporter, acks: AckLog, sessions: int
    ) -> None:
        self.setup = setup
        self.cache = AvailabilityCache(catalogue)
        self.cache_ready = asyncio.Event()
        self.reporter = reporter
        self.acks = acks
        self.tunables = Tunables()
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.keepalive_time_ms", 60_000)]
        self.client = SeatwiseClient(
            setup.target,
            setup.storefront_key,
            sessions=sessions,
            connections=max(1, min(sessions, channels_from_env())),
            timeout_s=Tunables.call_timeout_s,
            channel_options=options,
        )
        self._watch_channel = grpc.aio.insecure_channel(setup.target, options=options)
        self._metadata = (("authorization", f"Bearer {setup.storefront_key}"),)
        priced = [c for c in catalogue.sections_of if c in setup.prices]
        self.categories = priced or list(catalogue.sections_of)
        self.buyers: list[asyncio.Task[None]] = []
        self.peak_buyers = 0
        self.claimed = 0  # seats the buyers are trying to hold right now
        # flow control: operations queue here rather than be shed by a busy server (its
        # admission refuses past 128 calls in flight per process; the caller's time includes this)
        self._in_flight = asyncio.Semaphore(Tunables.max_in_flight)
        self.failures: Counter[str] = Counter()  # unexpected failures by status and message, for the log
        self._watch: asyncio.Task[None] | None = None

    # -- the cache: one stream ----------------------------------------------------------------------

    def start(self) -> None:
        self._watch = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        stub = events_pb2_grpc.EventServiceStub(self._watch_channel)
        while True:
            request = events_pb2.WatchAvailabilityRequest(
                event_id=self.setup.event_id,
                after_sequence=self.cache.sequence,
                seat_encoding=events_pb2.SEAT_ENCODING_LIST,
            )
            started, messages, status = time.perf_counter(), 0, ""
            call = stub.WatchAvailability(request, metadata=self._metadata)
            try:
                async for update in call:
                    if messages == 0:
                        self.reporter.op(UNARY, WATCH_NAME, started, length=update.ByteSize())
                    messages += 1
                    self.cache.apply(update)
                    if self.cache.has_snapshot:
                        self.cache_ready.set()
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
                if messages == 0:
                    self.reporter.op(UNARY, WATCH_NAME, started, status)
            except asyncio.CancelledError:  # the shop closes
                call.cancel()
                self.reporter.op(STREAM, WATCH_NAME, started, "", messages)
                raise
            self.reporter.op(STREAM, WATCH_NAME, started, status, messages)
            await asyncio.sleep(1.0)

    # -- the buyers ---------------------------------------------------------------------------------

    def set_buyers(self, count: int) -> None:
        while len(self.buyers) < count:
            self.buyers.append(asyncio.create_task(Buyer(self, random.Random()).run()))
        self.peak_buyers = max(self.peak_buyers, len(self.buyers))
        while len(self.buyers) > count:
            self.buyers.pop().cancel()

    async def call(self, op: str, name: str, request: Message, deadline_s: float) -> Any:
        """One operation over the sessions, reported; a :class:`SeatwiseError` when it failed."""
        started = time.perf_counter()
        try:
            async with self._in_flight:
                reply = await self.client.call(op, request, deadline_s)
        except SeatwiseError as exc:
            self.reporter.op(SESSION, name, started, exc.code.name)
            if exc.code not in EXPECTED:
                self.failures[f"{name}: {exc.code.name}: {exc.message[:80]}"] += 1
            raise
        self.reporter.op(SESSION, name, started)
        return reply

    async def close(self) -> None:
        tasks = [*self.buyers, *([self._watch] if self._watch else [])]
        self.buyers = []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()
        await self._watch_channel.close(None)


class Buyer:
    """One buyer's journeys, one after the other, until the event is sold out."""

    def __init__(self, shop: Storefront, rng: random.Random) -> None:
        self.shop = shop
        self.rng = rng
        self.t = shop.tunables
        self.buyer_id = uuid.uuid4().hex[:16]
        self.best = rng.random() < self.t.best_share
        wants_one = self.best and shop.categories and rng.random() < self.t.category_share
        self.category = rng.choice(shop.categories) if wants_one else ""

    async def run(self) -> None:
        await self.shop.cache_ready.wait()
        while True:
            await asyncio.sleep(self.rng.uniform(*self.t.page_s))
            if not await self.journey():
                return  # sold out

    async def journey(self) -> bool:
        """One visit: False when the event is sold out (nothing free, nothing held)."""
        cache, rng = self.shop.cache, self.rng
        wanted = self.category if self.best else rng.choice(self.shop.categories)
        shop = self.shop
        choice = choose(cache, rng.choice(QUANTITIES), wanted, shop.claimed)
        if choice.action == "stop":
            return False
        if choice.action == "wait":
            await asyncio.sleep(rng.uniform(*self.t.returns_wait_s))
            return True
        shop.claimed += choice.quantity
        try:
            if self.best:
                hold = await self.hold_best(choice.quantity, choice.category, sales_pb2.ADJACENCY_REQUIRED)
            else:
                hold = await self.pick(choice.quantity, choice.category)
        finally:
            shop.claimed -= choice.quantity
        if hold is None:
            await asyncio.sleep(rng.uniform(*self.t.refused_wait_s))
            return True
        cache.mark_taken(hold.seat_ids)  # before the stream says so: the next buyers see it at once
        await asyncio.sleep(rng.uniform(*self.t.think_s))
        if rng.random() < self.t.abandon_rate:
            if rng.random() < self.t.release_share:
                await self.release(hold)
            return True  # else walks away: the lease expires on its own
        await self.pay(hold)
        return True

    # -- holding ------------------------------------------------------------------------------------

    async def hold(self, op: str, name: str, request: Any) -> sales_pb2.Hold:
        """Send a hold under a request id of its own, again with it while the outcome is
        unknown; a few first attempts lose their reply on purpose. Raises when refused."""
        request.request_id = uuid.uuid4().hex
        call, t = self.shop.call, self.t
        if self.rng.random() < t.lost_reply_rate:
            with contextlib.suppress(SeatwiseError):
                await call(op, name + LOST, request, 0.001)
        for attempt in range(t.hold_attempts):
            try:
                reply: sales_pb2.HoldResponse = await call(op, name, request, t.call_timeout_s)
            except SeatwiseError as exc:
                if attempt + 1 >= t.hold_attempts:
                    raise
                if exc.code in RETRYABLE:
                    continue
                delay = retry_delay(exc)  # shed by a busy server (not applied): as long as it asks
                if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED or delay is None:
                    raise
                await asyncio.sleep(delay * self.rng.uniform(1.0, 2.0))
                continue
            return reply.hold
        raise AssertionError("unreachable")

    async def hold_best(self, quantity: int, category: str, first: int) -> sales_pb2.Hold | None:
        """Best available: adjacent if ``first`` requires it, else (or then) preferred."""
        adjacencies = [first, sales_pb2.ADJACENCY_PREFERRED]
        for adjacency in dict.fromkeys(adjacencies):
            request = sales_pb2.HoldBestAvailableRequest(
                event_id=self.shop.setup.event_id,
                quantity=quantity,
                categories=[category] if category else [],
                adjacency=adjacency,  # type: ignore[arg-type]
                buyer_id=self.buyer_id,
            )
            try:
                return await self.hold("hold_best_available", "HoldBestAvailable", request)
            except SeatwiseError as exc:
                if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                    return None
        return None

    async def pick(self, quantity: int, category: str) -> sales_pb2.Hold | None:
        """Seats picked from the cache in a section that shows enough free; else best available."""
        cache = self.shop.cache
        for _ in range(self.t.pick_attempts):
            section = pick_section(cache, category, quantity, self.rng)
            if section is None:
                break
            seats = free_run(cache.catalogue.rows_of[section], quantity, cache.not_free, self.rng)
            if seats is None:
                continue  # enough free in the section, but not side by side
            request = sales_pb2.HoldSeatsRequest(
                event_id=self.shop.setup.event_id, seat_ids=seats, buyer_id=self.buyer_id
            )
            try:
                return await self.hold("hold_seats", "HoldSeats", request)
            except SeatwiseError as exc:
                if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                    return None
                cache.mark_taken(precondition_subjects(exc) or seats)
        return await self.hold_best(quantity, category, sales_pb2.ADJACENCY_PREFERRED)

    # -- after the hold -----------------------------------------------------------------------------

    async def release(self, hold: sales_pb2.Hold) -> None:
        request = sales_pb2.ReleaseHoldRequest(hold_token=hold.hold_token)
        with contextlib.suppress(SeatwiseError):  # reported; never retried
            await self.shop.call("release_hold", "ReleaseHold", request, self.t.call_timeout_s)

    async def pay(self, hold: sales_pb2.Hold) -> None:
        """Commit with one idempotency key, retrying while the outcome is unknown; record the ack."""
        key = f"pay-{uuid.uuid4().hex}"
        request = sales_pb2.CommitHoldRequest(
            hold_token=hold.hold_token,
            idempotency_key=key,
            buyer=sales_pb2.BuyerDetails(name=f"Buyer {self.buyer_id}", payment_reference=key),
        )
        call, t = self.shop.call, self.t
        attempts = 0
        if self.rng.random() < t.lost_reply_rate:
            attempts += 1
            with contextlib.suppress(SeatwiseError):
                await call("commit_hold", "CommitHold" + LOST, request, 0.001)
        for attempt in range(t.commit_attempts):
            attempts += 1
            try:
                reply: sales_pb2.CommitHoldResponse = await call(
                    "commit_hold", "CommitHold", request, t.commit_timeout_s
                )
            except SeatwiseError as exc:
                if exc.code in RETRYABLE and attempt + 1 < t.commit_attempts:
                    await asyncio.sleep(min(0.2 * 2**attempt, 2.0) * self.rng.uniform(0.5, 1.5))
                    continue
                return  # refused (e.g. the lease expired) or given up
            self.acknowledge(reply, hold, key, attempts)
            return

    def acknowledge(
        self, reply: sales_pb2.CommitHoldResponse, hold: sales_pb2.Hold, key: str, attempts: int
    ) -> None:
        self.shop.acks.record(Ack.of_commit(reply, hold.hold_token, key, attempts))


async def serve(commands: asyncio.StreamReader, report_fd: int) -> None:
    """Run buyers as the commands say until ``stop`` or the end of the commands."""
    setup = setup_from_env()
    catalogue = Catalogue.of(VENUES[setup.venue]())
    reporter = Reporter(report_fd)
    acks = AckLog(out_dir_from_env())
    shop = Storefront(setup, catalogue, reporter, acks, sessions_from_env())
    shop.start()
    flusher = asyncio.create_task(reporter.flush_every(FLUSH_S))
    try:
        while line := await commands.readline():
            kind, count = parse_command(line)
            if kind == "stop":
                break
            if kind == "buyers":
                shop.set_buyers(count)
    finally:
        await shop.close()
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        reporter.flush()
        acks.close()
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s = used.ru_utime + used.ru_stime
        print(f"storefront {os.getpid()}: {cpu_s:.2f} CPU-s, {shop.peak_buyers} buyers", file=sys.stderr)
        for failure, count in shop.failures.most_common(10):
            print(f"storefront {os.getpid()}: {count} x {failure}", file=sys.stderr)


async def _main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    report_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to the log, not the pipe
    await serve(commands, report_fd)


def main() -> None:
    try:
        import uvloop  # as the server: a cheaper event loop for the load generator too
    except ImportError:
        asyncio.run(_main())
    else:
        uvloop.run(_main())


if __name__ == "__main__":
    main()
