"""Buyers and watchers: what storefronts do to seatwise during an on-sale.

One task is one buyer journey (:meth:`Buyer.journey`):

1. browse: ``GetAvailability`` (counts only); when nothing is free for them,
   wait for returns (something is still held) or refresh rarely (sold out);
2. hold: best available 1-6 seats (:class:`BestAvailableBuyer`), specific
   seats picked from what looks free (:class:`SeatPicker`, :class:`HotSeatBuyer`)
   or general-admission places (:class:`GaBuyer`);
   Every hold request carries a request id of its own and is sent again with it
   on UNAVAILABLE / DEADLINE_EXCEEDED (the server answers the hold an earlier
   attempt made, never a second one); a few first attempts simulate a lost
   reply (a 1 ms deadline) so the retry is a replay;
3. think (paying), then either abandon (about 20%: half release the hold, half
   just let it expire) or commit with one idempotency key, retried on
   UNAVAILABLE / DEADLINE_EXCEEDED. A few commits simulate a lost reply (a
   1 ms deadline) so the retry is a replay. Every commit acknowledged to the
   client is appended to this process's ``acks-<pid>.jsonl`` for the audit.

Seat pickers choose from a per-process :class:`AvailabilityView` (one
``WatchAvailability`` stream per Locust process, like a storefront backend's
cache) and the section layout from ``QuerySeats`` (fetched once per process):
a stale view costs a FAILED_PRECONDITION naming the taken seats, as it would
for a real shop. :class:`Watcher` users hold their own stream open and read
every delta. Tunables are class attributes, so scenarios subclass and set them.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import gevent
import gevent.event
import gevent.lock
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from locust import between, task
from locust.env import Environment
from seatwise.v1 import events_pb2, sales_pb2, seatmap_pb2

from loadtest.config import SetupInfo, out_dir_from_env
from loadtest.grpc_user import RETRYABLE, GrpcUser, status_code, timed_stubs
from loadtest.recording import Ack, AckLog
from loadtest.shopcache import QUANTITIES
from loadtest.shopcache import free_run as free_run_in

FREE = events_pb2.SEAT_STATUS_FREE


def section_query(setup: SetupInfo, section_id: str) -> seatmap_pb2.QuerySeatsRequest:
    """Every seat of one section (what a storefront fetches to draw it)."""
    return seatmap_pb2.QuerySeatsRequest(
        seat_map_id=setup.seat_map_id,
        version=setup.seat_map_version,
        group=seatmap_pb2.InGroup(section_id=section_id),
        limit=10_000,
    )


def precondition_subjects(error: grpc.RpcError) -> list[str]:
    """The seats a FAILED_PRECONDITION names as unavailable."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    subjects: list[str] = []
    for detail in status.details if status else ():
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            subjects += [v.subject for v in failure.violations]
    return subjects


# -- per-process shared state -------------------------------------------------------------------


class AvailabilityView:
    """Which seats are not free, following one WatchAvailability stream (per process)."""

    def __init__(
        self, environment: Environment, setup: SetupInfo, metadata: Sequence[tuple[str, str]]
    ) -> None:
        self.not_free: dict[str, int] = {}
        self.sequence = 0
        self.ready = gevent.event.Event()
        self._setup = setup
        self._metadata = tuple(metadata)
        self._stubs = timed_stubs(environment, setup.target, "WatchAvailability (shop cache)")
        self._greenlet = gevent.spawn(self._follow)
        hook: Any = environment.events.test_stop
        hook.add_listener(lambda **_: self.stop())

    def _follow(self) -> None:
        while True:
            request = events_pb2.WatchAvailabilityRequest(
                event_id=self._setup.event_id,
                after_sequence=self.sequence,
                seat_encoding=events_pb2.SEAT_ENCODING_LIST,  # one stream per process: ids are handier
            )
            call = self._stubs.events.WatchAvailability(request, metadata=self._metadata)
            try:
                for update in call:
                    self._apply(update)
            except grpc.RpcError:
                pass  # reported by the stream's timer; reconnect and resume
            finally:
                cast(Any, call).cancel()
            gevent.sleep(1.0)

    def _apply(self, update: events_pb2.AvailabilityUpdate) -> None:
        kind = update.WhichOneof("update")
        if kind == "snapshot":
            self.not_free = {s.seat_id: s.status for s in update.snapshot.seats}
            self.ready.set()
        elif kind == "delta":
            self._apply_delta(update.delta)
        elif kind == "deltas":
            for delta in update.deltas.deltas:
                self._apply_delta(delta)
        self.sequence = update.sequence

    def _apply_delta(self, delta: events_pb2.AvailabilityDelta) -> None:
        if delta.status == FREE:
            for seat_id in delta.seat_ids:
                self.not_free.pop(seat_id, None)
        else:
            for seat_id in delta.seat_ids:
                self.not_free[seat_id] = delta.status

    def is_free(self, seat_id: str) -> bool:
        return seat_id not in self.not_free

    def mark_taken(self, seat_ids: Sequence[str]) -> None:
        for seat_id in seat_ids:
            self.not_free.setdefault(seat_id, events_pb2.SEAT_STATUS_HELD)

    def stop(self) -> None:
        self._greenlet.kill(block=False)


class Shared:
    """What the users of one Locust process share: the ack log, the view, section layouts."""

    acks: AckLog | None = None
    view: AvailabilityView | None = None
    sections: ClassVar[dict[str, list[list[str]]]] = {}
    _fetching: ClassVar[dict[str, gevent.lock.Semaphore]] = {}

    @classmethod
    def ack_log(cls) -> AckLog:
        if cls.acks is None:
            cls.acks = AckLog(out_dir_from_env())
        return cls.acks

    @classmethod
    def availability(cls, user: GrpcUser) -> AvailabilityView:
        if cls.view is None:
            cls.view = AvailabilityView(user.environment, user.setup, user.metadata)
        cls.view.ready.wait(timeout=30)
        return cls.view

    @classmethod
    def section_rows(cls, user: GrpcUser, section_id: str) -> list[list[str]]:
        """The section's rows, each its seat ids in seat order (QuerySeats once per process).

        Users who want a section that is being fetched wait for that fetch rather than
        sending their own (when the rush starts, hundreds open the same few sections).
        """
        rows = cls.sections.get(section_id)
        if rows is None:
            with cls._fetching.setdefault(section_id, gevent.lock.Semaphore()):
                rows = cls.sections.get(section_id)
                if rows is None:
                    rows = cls.sections[section_id] = cls._query_rows(user, section_id)
        return rows

    @staticmethod
    def _query_rows(user: GrpcUser, section_id: str) -> list[list[str]]:
        reply = user.stubs.seatmaps.QuerySeats(
            section_query(user.setup, section_id),
            metadata=user.metadata,
            timeout=user.call_timeout_s,
        )
        rows: dict[str, list[str]] = {}
        for seat in reply.seats:
            rows.setdefault(seat.group_id, []).append(seat.seat_id)
        return list(rows.values())


def free_run(rows: Sequence[Sequence[str]], quantity: int, view: AvailabilityView) -> list[str] | None:
    """``quantity`` adjacent seats that look free, from a random row that has them."""
    return free_run_in(rows, quantity, view.not_free)


# -- users ----------------------------------------------------------------------------------------


class Availability:
    """Counts from one GetAvailability reply."""

    def __init__(self, reply: events_pb2.GetAvailabilityResponse, categories: Sequence[str] = ()) -> None:
        wanted = [c for c in reply.by_category if not categories or c.key in categories]
        self.free = sum(c.free for c in wanted)
        self.held = sum(c.held for c in wanted)
        self.ga_available = sum(a.available for a in reply.general_admission)
        self.ga_held = sum(a.held for a in reply.general_admission)


class Buyer(GrpcUser):
    """One buyer journey per task; subclasses say how the hold is taken."""

    abstract = True
    wait_time = between(1.0, 4.0)  # between journeys
    think_s: ClassVar[tuple[float, float]] = (2.0, 8.0)  # paying
    abandon_rate: ClassVar[float] = 0.2
    release_share: ClassVar[float] = 0.5  # of abandons: release explicitly (else let it expire)
    lost_reply_rate: ClassVar[float] = 0.02
    commit_attempts: ClassVar[int] = 5
    hold_attempts: ClassVar[int] = 3
    commit_timeout_s: ClassVar[float] = 5.0
    returns_wait_s: ClassVar[tuple[float, float]] = (3.0, 10.0)  # nothing free, something held
    sold_out_wait_s: ClassVar[tuple[float, float]] = (10.0, 20.0)  # nothing free or held

    def on_start(self) -> None:
        self.buyer_id = uuid.uuid4().hex[:16]

    @task
    def journey(self) -> None:
        if not self.browse():
            return
        hold = self.take_hold()
        if hold is None:
            return
        gevent.sleep(random.uniform(*self.think_s))
        if random.random() < self.abandon_rate:
            self.abandon(hold)
            return
        self.pay(hold)

    def wants(self, availability: Availability) -> tuple[bool, bool]:
        """(something for me is free, something for me is held)."""
        return availability.free > 0, availability.held > 0

    def browse(self) -> bool:
        """Look at availability; False (after waiting a while) when there is nothing to buy now."""
        try:
            reply = self.stubs.events.GetAvailability(
                events_pb2.GetAvailabilityRequest(event_id=self.setup.event_id),
                metadata=self.metadata,
                timeout=self.call_timeout_s,
            )
        except grpc.RpcError:
            return False
        free, held = self.wants(Availability(reply, self.categories()))
        if free:
            return True
        gevent.sleep(random.uniform(*(self.returns_wait_s if held else self.sold_out_wait_s)))
        return False

    def categories(self) -> list[str]:
        return []

    def take_hold(self) -> sales_pb2.Hold | None:
        raise NotImplementedError

    def quantity(self) -> int:
        return random.choice(QUANTITIES)

    def hold(self, method: str, request: Any) -> sales_pb2.Hold:
        """Send one hold request (``method`` of HoldService) under a request id of its own,
        again with the same id while its outcome is unknown; a few first attempts lose
        their reply on purpose. Raises the call's error when it is refused."""
        request.request_id = uuid.uuid4().hex
        call = getattr(self.stubs.holds, method)
        if random.random() < self.lost_reply_rate:
            with self.named(f"{method} (lost reply)"), contextlib.suppress(grpc.RpcError):
                call(request, metadata=self.metadata, timeout=0.001)
        reply: sales_pb2.HoldResponse = self.call_retrying(call, request, self.hold_attempts)
        return reply.hold

    def abandon(self, hold: sales_pb2.Hold) -> None:
        if random.random() >= self.release_share:
            return  # walks away: the lease expires on its own
        with contextlib.suppress(grpc.RpcError):  # reported; an expired hold is already free
            self.stubs.holds.ReleaseHold(
                sales_pb2.ReleaseHoldRequest(hold_token=hold.hold_token),
                metadata=self.metadata,
                timeout=self.call_timeout_s,
            )

    def pay(self, hold: sales_pb2.Hold) -> None:
        """Commit with one idempotency key, retrying transient failures; record the ack."""
        key = f"pay-{uuid.uuid4().hex}"
        request = sales_pb2.CommitHoldRequest(
            hold_token=hold.hold_token,
            idempotency_key=key,
            buyer=sales_pb2.BuyerDetails(name=f"Buyer {self.buyer_id}", payment_reference=key),
        )
        attempts = 0
        if random.random() < self.lost_reply_rate:
            attempts += 1
            # sent, but the client stops waiting at once: the retry below must replay or commit
            with self.named("CommitHold (lost reply)"), contextlib.suppress(grpc.RpcError):
                self.stubs.orders.CommitHold(request, metadata=self.metadata, timeout=0.001)
        for attempt in range(self.commit_attempts):
            attempts += 1
            try:
                reply = self.stubs.orders.CommitHold(
                    request, metadata=self.metadata, timeout=self.commit_timeout_s
                )
            except grpc.RpcError as exc:
                if status_code(exc) in RETRYABLE and attempt + 1 < self.commit_attempts:
                    gevent.sleep(min(0.2 * 2**attempt, 2.0) * random.uniform(0.5, 1.5))
                    continue
                return  # refused (e.g. the hold expired) or given up
            self.acknowledge(reply, hold, key, attempts)
            return

    def acknowledge(
        self, reply: sales_pb2.CommitHoldResponse, hold: sales_pb2.Hold, key: str, attempts: int
    ) -> None:
        Shared.ack_log().record(Ack.of_commit(reply, hold.hold_token, key, attempts))


class BestAvailableBuyer(Buyer):
    """Asks for the best N adjacent seats, sometimes in one category; settles for non-adjacent."""

    abstract = True
    category_share: ClassVar[float] = 0.5

    def on_start(self) -> None:
        super().on_start()
        cats = list(self.setup.sections_by_category)
        self.category = random.choice(cats) if cats and random.random() < self.category_share else ""

    def categories(self) -> list[str]:
        return [self.category] if self.category else []

    def take_hold(self) -> sales_pb2.Hold | None:
        quantity = self.quantity()
        for adjacency in (sales_pb2.ADJACENCY_REQUIRED, sales_pb2.ADJACENCY_PREFERRED):
            try:
                return self.hold(
                    "HoldBestAvailable",
                    sales_pb2.HoldBestAvailableRequest(
                        event_id=self.setup.event_id,
                        quantity=quantity,
                        categories=self.categories(),
                        adjacency=adjacency,
                        buyer_id=self.buyer_id,
                    ),
                )
            except grpc.RpcError as exc:
                if status_code(exc) != grpc.StatusCode.FAILED_PRECONDITION:
                    return None
        return None


class SeatPicker(Buyer):
    """Opens a section, picks adjacent seats that look free, holds exactly those."""

    abstract = True
    pick_attempts: ClassVar[int] = 3

    def candidate_rows(self) -> list[list[str]]:
        category = random.choice(list(self.setup.sections_by_category))
        section = random.choice(self.setup.sections_by_category[category])
        return Shared.section_rows(self, section)

    def fallback_categories(self) -> list[str]:
        return []

    def take_hold(self) -> sales_pb2.Hold | None:
        view = Shared.availability(self)
        quantity = self.quantity()
        for _ in range(self.pick_attempts):
            try:
                rows = self.candidate_rows()
            except grpc.RpcError:
                return None  # the section did not load (reported): this buyer gives up for now
            seats = free_run(rows, quantity, view)
            if seats is None:
                continue
            try:
                return self.hold(
                    "HoldSeats",
                    sales_pb2.HoldSeatsRequest(
                        event_id=self.setup.event_id, seat_ids=seats, buyer_id=self.buyer_id
                    ),
                )
            except grpc.RpcError as exc:
                if status_code(exc) != grpc.StatusCode.FAILED_PRECONDITION:
                    return None
                view.mark_taken(precondition_subjects(exc) or seats)
        return self.settle(quantity)

    def settle(self, quantity: int) -> sales_pb2.Hold | None:
        """The seats I wanted are gone: take the best available instead."""
        try:
            return self.hold(
                "HoldBestAvailable",
                sales_pb2.HoldBestAvailableRequest(
                    event_id=self.setup.event_id,
                    quantity=quantity,
                    categories=self.fallback_categories(),
                    adjacency=sales_pb2.ADJACENCY_PREFERRED,
                    buyer_id=self.buyer_id,
                ),
            )
        except grpc.RpcError:
            return None


class HotSeatBuyer(SeatPicker):
    """Everyone wants the front rows of the best sections; the losers settle for the category."""

    abstract = True
    quantities: ClassVar[tuple[int, ...]] = (1, 2, 2, 2, 3, 4)

    def quantity(self) -> int:
        return random.choice(self.quantities)

    def categories(self) -> list[str]:
        return [self.setup.hot_category]

    def candidate_rows(self) -> list[list[str]]:
        return [row.seat_ids for row in self.setup.hot_rows]

    def fallback_categories(self) -> list[str]:
        return [self.setup.hot_category]


class GaBuyer(Buyer):
    """General admission: N places on a standing floor."""

    abstract = True

    def wants(self, availability: Availability) -> tuple[bool, bool]:
        return availability.ga_available > 0, availability.ga_held > 0

    def take_hold(self) -> sales_pb2.Hold | None:
        if not self.setup.ga_areas:
            return None
        area = random.choice(list(self.setup.ga_areas))
        try:
            return self.hold(
                "HoldGeneralAdmission",
                sales_pb2.HoldGeneralAdmissionRequest(
                    event_id=self.setup.event_id,
                    area_id=area,
                    quantity=self.quantity(),
                    buyer_id=self.buyer_id,
                ),
            )
        except grpc.RpcError:
            return None  # ABORTED: the floor is full right now


class Browser(GrpcUser):
    """Looks and never buys: availability and the seat map of a section."""

    abstract = True
    wait_time = between(2.0, 6.0)

    @task(3)
    def availability(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            self.stubs.events.GetAvailability(
                events_pb2.GetAvailabilityRequest(
                    event_id=self.setup.event_id, include_seats=random.random() < 0.1
                ),
                metadata=self.metadata,
                timeout=self.call_timeout_s,
            )

    @task(1)
    def section(self) -> None:
        category = random.choice(list(self.setup.sections_by_category))
        section = random.choice(self.setup.sections_by_category[category])
        with contextlib.suppress(grpc.RpcError):
            self.stubs.seatmaps.QuerySeats(
                section_query(self.setup, section),
                metadata=self.metadata,
                timeout=self.call_timeout_s,
            )


class Watcher(GrpcUser):
    """Keeps a WatchAvailability stream open for a while, reading every delta, then reconnects."""

    abstract = True
    wait_time = between(1.0, 5.0)
    watch_s: ClassVar[tuple[float, float]] = (20.0, 90.0)

    @task
    def watch(self) -> None:
        # the default snapshot encoding, one byte per seat: what a storefront drawing
        # the whole map asks for (a seat list of a busy stadium is ~50k entries)
        request = events_pb2.WatchAvailabilityRequest(event_id=self.setup.event_id)
        call = self.stubs.events.WatchAvailability(request, metadata=self.metadata)
        timer = gevent.spawn_later(random.uniform(*self.watch_s), call.cancel)
        not_free: set[str] = set()  # taken since the snapshot (whose vector has the rest)
        try:
            for update in call:
                kind = update.WhichOneof("update")
                if kind == "snapshot":
                    not_free.clear()
                elif kind in ("delta", "deltas"):  # one change, or those of one interval
                    changes = [update.delta] if kind == "delta" else update.deltas.deltas
                    for delta in changes:
                        if delta.status == FREE:
                            not_free.difference_update(delta.seat_ids)
                        else:
                            not_free.update(delta.seat_ids)
        except grpc.RpcError:
            pass  # cancelled at the end of the watch, or reported by the stream's timer
        finally:
            timer.kill(block=False)
            cast(Any, call).cancel()
