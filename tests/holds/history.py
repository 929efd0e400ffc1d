"""Record a concurrent run's operations and check the history against the invariants.

Each operation is recorded with the wall-clock time it was invoked and the time
its outcome was seen, and one of three outcomes: ``ok``, ``fail`` (a domain
error: the script ran and refused, or never ran) or ``unknown`` (the client gave
up waiting: the script may or may not have run). Redis's ``TIME`` and
``time.time()`` read the same host clock, so the hold expiries the scripts
return are comparable with the recorded times.

The checker knows nothing of the Lua code. An operation took effect at some
instant between its invoke and complete times (its linearization point), so:

* fencing: an acknowledged commit was invoked before its hold's expiry;
* provenance: every seat an acknowledged order sold was added to that very
  hold, by the same buyer, by a hold call that had been invoked before the
  commit returned (GA places likewise, in quantity);
* sale exclusivity: two orders never sell one seat unless a cancel of the
  seat's ticket in one of them could have happened before the other's commit
  (was invoked before it completed);
* hold exclusivity: a seat is held by a second hold only if the first could
  have let go of it before: released, expired, or committed and then cancelled;
* final state: the orders in Redis are exactly the acknowledged commits plus
  orders of commits whose outcome is unknown (matched by idempotency key),
  and their tickets are cancelled exactly as far as the cancels allow;
* transfers (the ticket named in ``tickets``, fenced by the revision read): no
  two acknowledged transfers of one ticket name the same revision, a ticket's
  final revision counts every acknowledged transfer of it and no more than
  were sent, and no transfer is acknowledged that was invoked after an
  acknowledged cancel of its ticket had completed (a cancelled ticket never
  changes hands);
* channels: an acknowledged hold never took a seat that an acknowledged allocation had
  given to a channel the hold had no access to before the hold was invoked, unless a
  close of that channel could have happened before the hold (was invoked before it
  completed);
* retried holds (the same request id sent again): every acknowledged call with
  one request id names one and the same hold, the one Redis records for the id;
  a replay answers an id some earlier call sent; and a retry is never refused
  for seats while the hold its request id made could still hold them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from holds.errors import StoreError
from holds.inventory import (
    HoldResult,
    SeatOrdinalsInChannel,
    SeatOrdinalsInWrongState,
    SeatOrdinalsUnavailable,
)
from holds.records import Order
from tests.holds.factories import RawState

Outcome = Literal["ok", "fail", "unknown"]
Kind = Literal["hold", "release", "commit", "cancel", "transfer", "allocate", "close"]
EPS_MS = 1.0  # Redis floors TIME to whole ms


@dataclass
class Op:
    """One call as the client saw it."""

    id: int
    client: str
    kind: Kind
    invoke_ms: float
    complete_ms: float = 0.0
    outcome: Outcome = "unknown"
    hold_id: str = ""  # hold / release / commit: the hold; "" for a new hold until acknowledged
    seats: tuple[int, ...] = ()  # hold: seats asked for; release: seats released (() with all=True)
    ga: int = 0  # GA places asked for (hold) or released (release)
    all: bool = False  # release: the whole hold; cancel: every valid ticket
    idem_key: str = ""
    order_id: str = ""  # commit (once known) / cancel
    tickets: tuple[str, ...] = ()  # cancel: tickets named (empty with all=True)
    expires_ms: int = 0  # hold: the lease's expiry returned by Redis
    order: Order | None = None  # commit: the order returned
    error: str = ""
    request_id: str = ""  # hold: the client's request id ("" : not retry-safe)
    replayed: bool = False  # hold: answered by an earlier call with the same request id
    revision: int = 0  # transfer: the ticket's revision the caller read
    channel: str = ""  # hold: the channel it had access to; allocate / close: the channel


class Recorder:
    """Runs calls with a timeout and records them; safe to share between tasks of one loop."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._ids = itertools.count()

    async def run(self, op: Op, call: Awaitable[Any], timeout_s: float) -> Any:
        """Run ``call``; fill in ``op``'s outcome. Returns the result (None unless ok)."""
        self.ops.append(op)
        try:
            result = await asyncio.wait_for(call, timeout_s)
        except TimeoutError:
            op.outcome = "unknown"
            result = None
        except (StoreError, SeatOrdinalsUnavailable, SeatOrdinalsInWrongState, SeatOrdinalsInChannel) as exc:
            op.outcome, op.error = "fail", type(exc).__name__
            result = None
        else:
            op.outcome = "ok"
        op.complete_ms = time.time() * 1000
        if op.outcome == "ok":
            if isinstance(result, HoldResult):
                op.hold_id, op.expires_ms, op.replayed = result.hold_id, result.expires_ms, result.replayed
            elif op.kind == "commit":
                op.order = result.order
                op.order_id = result.order.order_id
        return result

    def op(self, client: str, kind: Kind, **fields: Any) -> Op:
        return Op(next(self._ids), client, kind, time.time() * 1000, **fields)


@dataclass
class _Hold:
    hold_id: str
    client: str
    expires_ms: int
    adds: list[Op] = field(default_factory=list)  # ok or unknown hold calls for this hold
    releases: list[Op] = field(default_factory=list)  # ok or unknown release calls
    commits: list[Op] = field(default_factory=list)  # ok or unknown commit calls


def _end(op: Op) -> float:
    """The latest instant ``op`` can have taken effect: an abandoned call may still
    reach Redis after the client stopped waiting."""
    return op.complete_ms if op.outcome == "ok" else float("inf")


def _maybe(ops: Iterable[Op]) -> list[Op]:
    """The operations that took effect or may have."""
    return [o for o in ops if o.outcome in ("ok", "unknown")]


REFUSED_FOR_PLACES = frozenset({"SeatOrdinalsUnavailable", "SeatsUnavailable", "GeneralAdmissionUnavailable"})


def _refused_while_live(request_id: str, calls: list[Op], holds: dict[str, _Hold]) -> list[str]:
    """Calls of one request id refused for seats or places while the hold the id made was live."""
    problems = []
    acknowledged = [o for o in calls if o.outcome == "ok"]
    for op in calls:
        if op.outcome != "fail" or op.error not in REFUSED_FOR_PLACES:
            continue
        for ok in acknowledged:
            hold = holds.get(ok.hold_id)
            if hold is None or ok.complete_ms >= op.invoke_ms:
                continue  # the hold may not have existed yet
            gone = hold.expires_ms <= op.complete_ms + EPS_MS or any(
                o.invoke_ms < op.complete_ms for o in hold.releases + hold.commits
            )
            if not gone:
                problems.append(
                    f"call {op.id} of request {request_id} was refused for seats while "
                    f"its hold {ok.hold_id} was live"
                )
    return problems


def check_retried_holds(ops: list[Op], final: RawState, holds: dict[str, _Hold]) -> list[str]:
    """The retried-holds rules of the module docstring."""
    problems: list[str] = []
    by_request: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "hold" and op.request_id:
            by_request[op.request_id].append(op)
    for request_id, calls in by_request.items():
        made = {o.hold_id for o in calls if o.outcome == "ok"}
        if len(made) > 1:
            problems.append(f"request {request_id} made holds {sorted(made)}: a retry held seats again")
        recorded = final.holdreqs.get(request_id, ("", ""))[0]
        if made and recorded and recorded not in made:
            problems.append(f"request {request_id} answered {sorted(made)} but Redis records {recorded}")
        for op in calls:
            if op.replayed and not any(o.invoke_ms < op.complete_ms and o is not op for o in calls):
                problems.append(f"call {op.id} replayed request {request_id} that no earlier call sent")
        problems += _refused_while_live(request_id, calls, holds)
    return problems


def check_history(ops: list[Op], final: RawState) -> list[str]:  # noqa: C901
    """Every violation found in ``ops`` and the final state (empty: the history is valid)."""
    problems: list[str] = []
    holds: dict[str, _Hold] = {}
    for op in ops:  # new holds: only acknowledged ones have a known id
        if op.kind == "hold" and op.outcome == "ok" and op.hold_id not in holds:
            holds[op.hold_id] = _Hold(op.hold_id, op.client, op.expires_ms)
    for op in _maybe(ops):
        hold = holds.get(op.hold_id)
        if hold is None:
            continue
        {"hold": hold.adds, "release": hold.releases, "commit": hold.commits}.get(op.kind, []).append(op)

    # the orders: acknowledged ones, and those in Redis whose commit outcome is unknown
    commit_of_key = {o.idem_key: o for o in _maybe(ops) if o.kind == "commit"}
    orders: dict[str, tuple[Order, Op]] = {}
    for op in ops:
        if op.kind == "commit" and op.outcome == "ok" and op.order is not None:
            orders.setdefault(op.order.order_id, (op.order, op))
    for order_id, order in final.orders.items():
        maker = commit_of_key.get(order.idempotency_key)
        if maker is None or maker.hold_id != order.hold_id:
            problems.append(f"order {order_id} in Redis was never asked for (key {order.idempotency_key!r})")
        elif order_id not in orders:
            if maker.outcome == "ok":
                problems.append(f"order {order_id} in Redis differs from the acknowledged {maker.order_id}")
            orders[order_id] = (order, maker)
    for order_id in orders:
        if order_id not in final.orders:
            problems.append(f"acknowledged order {order_id} is missing from Redis")

    cancels: dict[str, list[Op]] = defaultdict(list)
    for op in _maybe(ops):
        if op.kind == "cancel":
            cancels[op.order_id].append(op)

    def cancel_invoked_before(order: Order, seat: int | None, deadline_ms: float) -> bool:
        """Could a cancel of ``order``'s ticket for ``seat`` have happened before ``deadline_ms``?"""
        ticket = next((t.ticket_id for t in order.tickets if t.seat == seat), None)
        return any(
            c.invoke_ms < deadline_ms and (c.all or ticket in c.tickets) for c in cancels[order.order_id]
        )

    # fencing and provenance of every order
    for order_id, (order, commit) in orders.items():
        hold = holds.get(order.hold_id)
        if hold is None:
            problems.append(
                f"order {order_id} commits hold {order.hold_id} that no acknowledged hold created"
            )
            continue
        # the call that created the order is one of those with its key; it ran after it was invoked
        creators = [o for o in hold.commits if o.idem_key == order.idempotency_key] or [commit]
        first = min(o.invoke_ms for o in creators)
        if first > hold.expires_ms + EPS_MS:
            problems.append(
                f"order {order_id}: commit invoked {first - hold.expires_ms:.1f} ms after "
                f"hold {hold.hold_id} expired"
            )
        if commit.client != hold.client:
            problems.append(f"order {order_id}: committed by {commit.client}, held by {hold.client}")
        latest = max(_end(o) for o in creators)
        for t in order.tickets:
            if t.seat is not None and not any(
                t.seat in a.seats and a.invoke_ms < latest and a.client == commit.client for a in hold.adds
            ):
                problems.append(f"order {order_id} sold seat {t.seat}, never held by hold {hold.hold_id}")
        asked_ga = sum(a.ga for a in hold.adds if a.invoke_ms < latest)
        if sum(1 for t in order.tickets if t.seat is None) > asked_ga:
            problems.append(f"order {order_id} sold more GA places than hold {hold.hold_id} asked for")

    # sale exclusivity per seat
    sold: dict[int, list[tuple[Order, Op]]] = defaultdict(list)
    for order, commit in orders.values():
        for t in order.tickets:
            if t.seat is not None:
                sold[t.seat].append((order, commit))
    for seat, sales in sold.items():
        for (o1, c1), (o2, c2) in itertools.combinations(sales, 2):
            if not (cancel_invoked_before(o1, seat, _end(c2)) or cancel_invoked_before(o2, seat, _end(c1))):
                problems.append(f"seat {seat} sold to {o1.order_id} and {o2.order_id} with no cancel between")

    # hold exclusivity per seat: of two holds that both got a seat, one could have let go first
    order_of_hold = {o.hold_id: o for o, _c in orders.values()}

    def let_go(hold: _Hold, seat: int, deadline_ms: float) -> bool:
        if hold.expires_ms <= deadline_ms + EPS_MS:
            return True  # the lease could have run out
        if any((r.all or seat in r.seats) and r.invoke_ms < deadline_ms for r in hold.releases):
            return True
        sale = order_of_hold.get(hold.hold_id)
        return sale is not None and cancel_invoked_before(sale, seat, deadline_ms)

    got: dict[int, list[tuple[_Hold, Op]]] = defaultdict(list)
    for hold in holds.values():
        for add in hold.adds:
            if add.outcome == "ok":
                for seat in add.seats:
                    got[seat].append((hold, add))
    for seat, takers in got.items():
        for (h1, a1), (h2, a2) in itertools.combinations(takers, 2):
            if h1 is h2:
                continue
            if not (let_go(h1, seat, a2.complete_ms) or let_go(h2, seat, a1.complete_ms)):
                problems.append(f"seat {seat} held by {h1.hold_id} and {h2.hold_id} at once")

    # cancels: Redis has every acknowledged one, and only possible ones
    for order_id in orders:
        stored = final.orders.get(order_id)
        if stored is None:
            continue
        done = {t.ticket_id for t in stored.tickets if t.status == "cancelled"}
        maybe = cancels[order_id]
        must = {t for c in maybe if c.outcome == "ok" for t in (c.tickets or ())}
        if any(c.outcome == "ok" and c.all for c in maybe):
            must = {t.ticket_id for t in stored.tickets}
        if not must <= done:
            problems.append(f"order {order_id}: acknowledged cancels of {sorted(must - done)} not in Redis")
        could = {t for c in maybe for t in c.tickets} | (
            {t.ticket_id for t in stored.tickets} if any(c.all for c in maybe) else set()
        )
        if not done <= could:
            problems.append(
                f"order {order_id}: tickets {sorted(done - could)} cancelled that no cancel named"
            )
    return (
        problems
        + check_transfers(ops, final, cancels)
        + check_retried_holds(ops, final, holds)
        + check_channels(ops)
    )


def check_channels(ops: list[Op]) -> list[str]:
    """No acknowledged hold took a seat that was surely another channel's while it ran."""
    problems: list[str] = []
    allocated = [o for o in ops if o.kind == "allocate" and o.outcome == "ok"]
    closes = [o for o in _maybe(ops) if o.kind == "close"]
    for hold in ops:
        if hold.kind != "hold" or hold.outcome != "ok" or hold.replayed:
            continue
        for alloc in allocated:
            if alloc.channel == hold.channel or alloc.complete_ms >= hold.invoke_ms:
                continue
            taken = sorted(set(hold.seats) & set(alloc.seats))
            closed = any(c.channel == alloc.channel and c.invoke_ms <= _end(hold) for c in closes)
            if taken and not closed:
                problems.append(
                    f"hold {hold.hold_id} (access {hold.channel or 'none'}) took seats {taken} of channel "
                    f"{alloc.channel}"
                )
    return problems


def check_transfers(ops: list[Op], final: RawState, cancels: dict[str, list[Op]]) -> list[str]:
    problems: list[str] = []
    sent: dict[tuple[str, str], list[Op]] = defaultdict(list)
    for op in _maybe(ops):
        if op.kind == "transfer":
            sent[(op.order_id, op.tickets[0])].append(op)
    for (order_id, ticket_id), calls in sent.items():
        acked = [c for c in calls if c.outcome == "ok"]
        revisions = [c.revision for c in acked]
        if len(set(revisions)) != len(revisions):
            problems.append(f"ticket {ticket_id} transferred twice from one revision {sorted(revisions)}")
        stored = final.orders.get(order_id)
        ticket = next((t for t in stored.tickets if t.ticket_id == ticket_id), None) if stored else None
        if ticket is not None and not len(acked) <= ticket.revision <= len(calls):
            problems.append(
                f"ticket {ticket_id} is at revision {ticket.revision}: {len(acked)} transfers acknowledged, "
                f"{len(calls)} sent"
            )
        for c in acked:
            for cancel in cancels[order_id]:
                named = cancel.all or ticket_id in cancel.tickets
                if cancel.outcome == "ok" and named and cancel.complete_ms < c.invoke_ms:
                    problems.append(f"ticket {ticket_id} transferred after its cancel was acknowledged")
    return problems
