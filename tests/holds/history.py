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
  for seats while the hold its request id made could still hold them;
* box-office sales (no hold): an order sells only seats its call asked for, and
  sale exclusivity covers it like any order; a seat it sold is never held by a
  buyer's hold at the same time (nor is a seat an exchange moved an order onto);
* refunds: no ticket's refunded total exceeds its price, Redis has every
  acknowledged refund's amounts (exactly those when no refund's outcome is
  unknown), and a refund that releases its tickets cancels them like a cancel;
* exchanges: each is all or nothing (every ticket it replaced is ``exchanged``
  for a ticket of the same order that names it back, recorded once by its key),
  Redis has every acknowledged one and none that was refused; the seats an order
  got by an exchange count in sale exclusivity from the exchange on, and the
  ones it left are free from the exchange's invoke on;
* exchanges into another event (``check_cross_exchanges``, over the source's and the
  target's final states once recovery ran): never both and never neither: a ticket an
  exchange named is either still valid in the source (and no ticket of the target names
  it) or ``exchanged`` for exactly one valid ticket of the target's exchange order that
  names it back, recorded once by its key; every order the target got by an exchange
  is recorded by that exchange; no ticket is left locked; an acknowledged exchange is
  recorded, a refused one is not (a crashed call's outcome is unknown: either);
* resales: a ticket changes hands once per resale (one record per resale, every
  acknowledged resale recorded, no listing sold twice, each resale at its own
  revision), its revision counts transfers and resales together, and no resale
  is acknowledged after an acknowledged cancel of its ticket;
* extends: a hold's lease is the latest expiry an acknowledged extend returned
  (fencing allows any expiry when an extend's outcome is unknown).

Seasons (:func:`check_season_history`, a run over several events of one season):
season holds, extends, releases and commits are recorded once, with their
events, and each event's history is checked as above with the season
operations projected onto it (a season hold is one ordinary hold per event with
the same hold id, its commit one commit per event with the season's key), so
no seat is ever held or sold twice across season orders and single orders.
On top, per season commit and season order:

* every acknowledged season commit answered exactly one order per event of
  its hold, each in Redis in that event with the season hold's id and key;
* all or nothing: an order of a season hold in one event means one in every
  event of that hold, all of one season order;
* the season orders in Redis are exactly the acknowledged season commits plus
  those of commits whose outcome is unknown (by key), each listing one order
  per event of its hold, its total the sum of theirs.
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
    SeatOrdinalsHeld,
    SeatOrdinalsInChannel,
    SeatOrdinalsInWrongState,
    SeatOrdinalsUnavailable,
)
from holds.records import Exchange, Order, Resale
from holds.seasons import SeasonHoldInfo, SeasonOrder, SeasonOrderRecord, parse_season_token
from tests.holds.factories import RawState

Outcome = Literal["ok", "fail", "unknown"]
Kind = Literal[
    "hold", "release", "commit", "cancel", "transfer", "box_office", "refund", "exchange", "resale",
    "allocate", "close", "extend", "season_hold", "season_extend", "season_release", "season_commit",
]  # fmt: skip
SEASON_KINDS: frozenset[str] = frozenset({"season_hold", "season_extend", "season_release", "season_commit"})
SALES: frozenset[str] = frozenset({"commit", "box_office"})  # the calls that create an order
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
    release: bool = False  # refund: the refunded tickets are cancelled too
    lines: tuple[tuple[str, int], ...] = ()  # refund, acknowledged: (ticket, amount) refunded
    resale_id: str = ""  # resale, acknowledged: the resale made
    channel: str = ""  # hold: the channel it had access to; allocate / close: the channel
    target: str = ""  # exchange into another event: that event
    event: str = ""  # a single-event call in a run over several events: its event ("" : the only one)
    events: tuple[str, ...] = ()  # a season call: the events of its season hold
    event_orders: dict[str, Order] = field(default_factory=dict)  # season commit, acknowledged: per event
    season_order_id: str = ""  # season commit, acknowledged


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
        except (
            StoreError,
            SeatOrdinalsUnavailable,
            SeatOrdinalsInWrongState,
            SeatOrdinalsHeld,
            SeatOrdinalsInChannel,
        ) as exc:
            op.outcome, op.error = "fail", type(exc).__name__
            result = None
        else:
            op.outcome = "ok"
        op.complete_ms = time.time() * 1000
        if op.outcome == "ok":
            if isinstance(result, HoldResult):
                op.hold_id, op.expires_ms, op.replayed = result.hold_id, result.expires_ms, result.replayed
            elif isinstance(result, SeasonHoldInfo):
                op.hold_id, op.expires_ms = parse_season_token(result.token)[1], result.expires_ms
                op.events = tuple(result.event_ids)
            elif isinstance(result, SeasonOrder):
                op.event_orders = dict(zip(result.event_ids, result.orders, strict=True))
                op.season_order_id = result.season_order_id
            elif op.kind in SALES:
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
    extends: list[Op] = field(default_factory=list)  # ok or unknown extend calls
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


class _Releases:
    """The calls that can give an order's seat back: cancels, refunds that release their
    tickets, and exchanges (of the tickets they replace), each ok or of unknown outcome."""

    def __init__(self, ops: list[Op]) -> None:
        self.by_order: dict[str, list[Op]] = defaultdict(list)
        for op in _maybe(ops):
            if op.kind in ("cancel", "exchange") or (op.kind == "refund" and op.release):
                self.by_order[op.order_id].append(op)

    def before(self, order: Order, seat: int | None, deadline_ms: float) -> bool:
        """Could a ticket of ``order`` for ``seat`` have been given back before ``deadline_ms``?"""
        tickets = {t.ticket_id for t in order.tickets if t.seat == seat}
        return any(
            c.invoke_ms < deadline_ms and ((c.all and c.kind != "exchange") or tickets & set(c.tickets))
            for c in self.by_order[order.order_id]
        )


def check_history(  # noqa: C901
    ops: list[Op], final: RawState, resales: Iterable[Resale] = ()
) -> list[str]:
    """Every violation found in ``ops`` and the final state (empty: the history is valid);
    ``resales``: the event's resale records, when the run resold tickets."""
    problems: list[str] = []
    holds: dict[str, _Hold] = {}
    for op in ops:  # new holds: only acknowledged ones have a known id
        if op.kind == "hold" and op.outcome == "ok" and op.hold_id not in holds:
            holds[op.hold_id] = _Hold(op.hold_id, op.client, op.expires_ms)
    for op in _maybe(ops):
        hold = holds.get(op.hold_id)
        if hold is None:
            continue
        {"hold": hold.adds, "release": hold.releases, "commit": hold.commits, "extend": hold.extends}.get(
            op.kind, []
        ).append(op)
    for hold in holds.values():  # the lease: the latest expiry an acknowledged extend returned
        hold.expires_ms = max([hold.expires_ms] + [e.expires_ms for e in hold.extends if e.outcome == "ok"])

    # the orders: acknowledged ones, and those in Redis whose sale's outcome is unknown
    commit_of_key = {o.idem_key: o for o in _maybe(ops) if o.kind in SALES}
    orders: dict[str, tuple[Order, Op]] = {}
    for op in ops:
        if op.kind in SALES and op.outcome == "ok" and op.order is not None:
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
    # each order as it ends: with the tickets exchanges added (every seat it ever had)
    orders = {i: (final.orders.get(i, o), c) for i, (o, c) in orders.items()}

    releases = _Releases(ops)
    exchanges: dict[str, list[Op]] = defaultdict(list)
    for op in _maybe(ops):
        if op.kind == "exchange":
            exchanges[op.order_id].append(op)

    def taken_by(order: Order, maker: Op, seat: int) -> float:
        """The latest instant ``order`` can have got ``seat``: its sale, or an exchange onto it."""
        ends = [_end(maker)] if any(t.seat == seat and not t.exchanged_from for t in order.tickets) else []
        ends += [_end(x) for x in exchanges[order.order_id] if seat in x.seats]
        return max(ends, default=_end(maker))

    # fencing and provenance of every order
    for order_id, (order, commit) in orders.items():
        first_tickets = [t for t in order.tickets if not t.exchanged_from]  # the sale's own
        if commit.kind == "box_office":
            sellers = [
                o for o in _maybe(ops) if o.kind == "box_office" and o.idem_key == order.idempotency_key
            ]
            for t in first_tickets:
                if t.seat is not None and not any(t.seat in o.seats for o in sellers):
                    problems.append(f"box-office order {order_id} sold seat {t.seat}, never asked for")
            continue
        hold = holds.get(order.hold_id)
        if hold is None:
            problems.append(
                f"order {order_id} commits hold {order.hold_id} that no acknowledged hold created"
            )
            continue
        # the call that created the order is one of those with its key; it ran after it was invoked
        creators = [o for o in hold.commits if o.idem_key == order.idempotency_key] or [commit]
        first = min(o.invoke_ms for o in creators)
        extended = any(e.outcome == "unknown" for e in hold.extends)  # to when, nobody knows
        if first > hold.expires_ms + EPS_MS and not extended:
            problems.append(
                f"order {order_id}: commit invoked {first - hold.expires_ms:.1f} ms after "
                f"hold {hold.hold_id} expired"
            )
        if commit.client != hold.client:
            problems.append(f"order {order_id}: committed by {commit.client}, held by {hold.client}")
        latest = max(_end(o) for o in creators)
        for t in first_tickets:
            if t.seat is not None and not any(
                t.seat in a.seats and a.invoke_ms < latest and a.client == commit.client for a in hold.adds
            ):
                problems.append(f"order {order_id} sold seat {t.seat}, never held by hold {hold.hold_id}")
        asked_ga = sum(a.ga for a in hold.adds if a.invoke_ms < latest)
        if sum(1 for t in first_tickets if t.seat is None) > asked_ga:
            problems.append(f"order {order_id} sold more GA places than hold {hold.hold_id} asked for")

    # sale exclusivity per seat
    sold: dict[int, list[tuple[Order, Op]]] = defaultdict(list)
    for order, commit in orders.values():
        for seat in {t.seat for t in order.tickets if t.seat is not None}:
            sold[seat].append((order, commit))
    for seat, sales in sold.items():
        for (o1, c1), (o2, c2) in itertools.combinations(sales, 2):
            if not (
                releases.before(o1, seat, taken_by(o2, c2, seat))
                or releases.before(o2, seat, taken_by(o1, c1, seat))
            ):
                problems.append(f"seat {seat} sold to {o1.order_id} and {o2.order_id} with no cancel between")

    # hold exclusivity per seat: of two holds that both got a seat, one could have let go first
    order_of_hold = {o.hold_id: o for o, _c in orders.values() if o.hold_id}

    def let_go(hold: _Hold, seat: int, deadline_ms: float) -> bool:
        if hold.expires_ms <= deadline_ms + EPS_MS:
            return True  # the lease could have run out
        if any((r.all or seat in r.seats) and r.invoke_ms < deadline_ms for r in hold.releases):
            return True
        sale = order_of_hold.get(hold.hold_id)
        return sale is not None and releases.before(sale, seat, deadline_ms)

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

    # seats an order got without a hold (the box office, an exchange onto free seats) were held by nobody
    for order, maker in orders.values():
        for seat in {t.seat for t in order.tickets if t.seat is not None}:
            own = maker.kind == "commit" and not exchanges[order.order_id]
            if own:
                continue  # a commit's seats came from its own hold: hold exclusivity covers them
            for hold, add in got.get(seat, []):
                if hold.hold_id == order.hold_id and not any(
                    seat in x.seats for x in exchanges[order.order_id]
                ):
                    continue
                took = taken_by(order, maker, seat)
                if not (let_go(hold, seat, took) or releases.before(order, seat, add.complete_ms)):
                    problems.append(f"seat {seat} sold to {order.order_id} while hold {hold.hold_id} held it")

    # cancels (and refunds that release): Redis has every acknowledged one, and only possible ones
    for order_id in orders:
        stored = final.orders.get(order_id)
        if stored is None:
            continue
        done = {t.ticket_id for t in stored.tickets if t.status == "cancelled"}
        maybe = [c for c in releases.by_order[order_id] if c.kind != "exchange"]
        must = {t for c in maybe if c.outcome == "ok" for t in (c.tickets or ())}
        if any(c.outcome == "ok" and c.all and c.kind == "cancel" for c in maybe):
            must = {t.ticket_id for t in stored.tickets if t.status != "exchanged"}
        if not must <= done:
            problems.append(f"order {order_id}: acknowledged cancels of {sorted(must - done)} not in Redis")
        could = {t for c in maybe for t in c.tickets} | (
            {t.ticket_id for t in stored.tickets} if any(c.all for c in maybe) else set()
        )
        if not done <= could:
            problems.append(
                f"order {order_id}: tickets {sorted(done - could)} cancelled that no cancel named"
            )
    cancels = {i: [c for c in cs if c.kind != "exchange"] for i, cs in releases.by_order.items()}
    return (
        problems
        + check_transfers(ops, final, defaultdict(list, cancels))
        + check_retried_holds(ops, final, holds)
        + check_refunds(ops, final)
        + check_exchanges(ops, final)
        + check_resales(ops, list(resales), defaultdict(list, cancels))
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
    resold: dict[tuple[str, str], list[Op]] = defaultdict(list)
    for op in _maybe(ops):
        if op.kind in ("transfer", "resale"):
            (sent if op.kind == "transfer" else resold)[(op.order_id, op.tickets[0])].append(op)
    for order_id, ticket_id in sent.keys() | resold.keys():
        calls, resales = sent[(order_id, ticket_id)], resold[(order_id, ticket_id)]
        acked = [c for c in calls if c.outcome == "ok"]
        revisions = [c.revision for c in acked]
        if len(set(revisions)) != len(revisions):
            problems.append(f"ticket {ticket_id} transferred twice from one revision {sorted(revisions)}")
        stored = final.orders.get(order_id)
        ticket = next((t for t in stored.tickets if t.ticket_id == ticket_id), None) if stored else None
        moved = len(acked) + sum(1 for r in resales if r.outcome == "ok")
        if ticket is not None and not moved <= ticket.revision <= len(calls) + len(resales):
            problems.append(
                f"ticket {ticket_id} is at revision {ticket.revision}: {moved} transfers and resales "
                f"acknowledged, {len(calls) + len(resales)} sent"
            )
        for c in acked:
            for cancel in cancels[order_id]:
                named = cancel.all or ticket_id in cancel.tickets
                if cancel.outcome == "ok" and named and cancel.complete_ms < c.invoke_ms:
                    problems.append(f"ticket {ticket_id} transferred after its cancel was acknowledged")
    return problems


def check_refunds(ops: list[Op], final: RawState) -> list[str]:
    """Never more than paid; every acknowledged refund's amounts in Redis (exactly, when no
    refund of the order has an unknown outcome)."""
    problems: list[str] = []
    acked: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    unsure: set[str] = set()
    for op in ops:
        if op.kind != "refund":
            continue
        if op.outcome == "unknown":
            unsure.add(op.order_id)
        if op.outcome == "ok":
            for ticket_id, amount in op.lines:
                acked[op.order_id][ticket_id] += amount
    for order_id, order in final.orders.items():
        for t in order.tickets:
            if not 0 <= t.refunded <= t.price:
                problems.append(f"ticket {t.ticket_id} refunded {t.refunded}, paid {t.price}")
            owed = acked[order_id][t.ticket_id] if order_id in acked else 0
            if t.refunded < owed or (order_id not in unsure and t.refunded != owed):
                problems.append(f"ticket {t.ticket_id}: refunded {t.refunded} in Redis, {owed} acknowledged")
    return problems


def _exchange_record(order: Order, x: Exchange, calls: list[Op]) -> list[str]:
    """One exchange Redis recorded: asked for, not refused, and whole."""
    problems = []
    by_id = {t.ticket_id: t for t in order.tickets}
    if not calls:
        problems.append(f"order {order.order_id}: exchange {x.exchange_key} in Redis was never asked for")
    elif all(c.outcome == "fail" for c in calls):
        problems.append(f"order {order.order_id}: refused exchange {x.exchange_key} is in Redis")
    old, new = list(x.from_tickets), list(x.to_tickets)
    if len(old) != len(new):
        problems.append(f"order {order.order_id}: exchange {x.exchange_key} swapped {old} for {new}")
    if x.target_event_id:  # the new tickets are in another event: check_cross_exchanges
        return problems
    for a, b in zip(old, new, strict=False):
        t, u = by_id.get(a), by_id.get(b)
        whole = t is not None and u is not None and t.status == "exchanged"
        if not (whole and t is not None and u is not None and t.exchanged_for == b and u.exchanged_from == a):
            problems.append(f"order {order.order_id}: exchange {x.exchange_key} of {a} for {b} is half done")
    return problems


def check_exchanges(ops: list[Op], final: RawState) -> list[str]:
    """All or nothing, once per key; acknowledged ones in Redis, refused ones not."""
    problems: list[str] = []
    sent: dict[str, dict[str, list[Op]]] = defaultdict(lambda: defaultdict(list))
    for op in ops:
        if op.kind == "exchange":
            sent[op.order_id][op.idem_key].append(op)
    for order_id, order in final.orders.items():
        keys = [x.exchange_key for x in order.exchange_list]
        if len(set(keys)) != len(keys):
            problems.append(f"order {order_id}: an exchange key recorded twice {sorted(keys)}")
        for x in order.exchange_list:
            problems += _exchange_record(order, x, sent[order_id].get(x.exchange_key, []))
        for key, calls in sent[order_id].items():
            if any(c.outcome == "ok" for c in calls) and key not in keys:
                problems.append(f"order {order_id}: acknowledged exchange {key} is not in Redis")
        replaced = {t for x in order.exchange_list for t in x.from_tickets}
        for t in order.tickets:
            if t.status == "exchanged" and t.ticket_id not in replaced:
                problems.append(f"ticket {t.ticket_id} is exchanged by no recorded exchange")
    return problems


def check_cross_exchanges(ops: list[Op], source: RawState, target: RawState) -> list[str]:  # noqa: C901
    """Exchanges from ``source``'s orders into ``target``: the rules of the module docstring."""
    problems: list[str] = []
    sent: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "exchange" and op.target:
            sent[op.idem_key].append(op)
    replacements: dict[str, list[tuple[str, str]]] = defaultdict(list)  # old ticket -> (order, new ticket)
    made_by: dict[str, str] = {}  # target order -> the exchange id that made it
    for order_id, order in target.orders.items():
        if not order.exchanged_from_order:
            continue
        made_by[order_id] = order.exchange_id
        for t in order.tickets:
            if not t.exchanged_from:
                problems.append(f"target order {order_id}: ticket {t.ticket_id} replaces nothing")
            replacements[t.exchanged_from].append((order_id, t.ticket_id))
            if t.status != "valid":
                problems.append(f"target ticket {t.ticket_id} is {t.status}: nothing here cancels it")
    recorded: set[str] = set()
    for order in source.orders.values():
        by_id = {t.ticket_id: t for t in order.tickets}
        for t in order.tickets:
            if t.exchanging:
                problems.append(f"ticket {t.ticket_id} is still locked by exchange {t.exchanging}")
            new = replacements.get(t.ticket_id, [])
            if len(new) > 1:
                problems.append(f"ticket {t.ticket_id} replaced twice: {new}")
            if t.status == "exchanged" and not t.exchanged_for:
                problems.append(f"ticket {t.ticket_id} exchanged for nothing")
            if (
                t.status == "exchanged"
                and len(new) != 1
                and not any(
                    x.to_tickets and t.ticket_id in x.from_tickets and not x.target_event_id
                    for x in order.exchange_list
                )
            ):
                problems.append(f"ticket {t.ticket_id} exchanged but no valid ticket replaces it: neither")
            if t.status != "exchanged" and new:
                problems.append(f"ticket {t.ticket_id} is {t.status} and replaced by {new}: both")
        for x in order.exchange_list:
            if not x.target_event_id:
                continue
            recorded.add(x.exchange_key)
            calls = sent.get(x.exchange_key, [])
            if not calls:
                problems.append(f"exchange {x.exchange_key} in Redis was never asked for")
            elif all(c.outcome == "fail" for c in calls):
                problems.append(f"refused exchange {x.exchange_key} is in Redis")
            if made_by.get(x.target_order_id) != x.exchange_id:
                problems.append(f"exchange {x.exchange_key}: target order {x.target_order_id} is not its own")
            for a, b in zip(x.from_tickets, x.to_tickets, strict=True):
                old = by_id.get(a)
                if old is None or old.status != "exchanged" or old.exchanged_for != b:
                    problems.append(f"exchange {x.exchange_key} of {a} for {b} is half done")
                if replacements.get(a) != [(x.target_order_id, b)]:
                    problems.append(f"exchange {x.exchange_key}: {b} of the target does not replace {a}")
    for target_order, exchange_id in made_by.items():
        if not any(x.exchange_id == exchange_id for o in source.orders.values() for x in o.exchange_list):
            problems.append(f"target order {target_order} was made by no recorded exchange: both")
    for key, calls in sent.items():
        if any(c.outcome == "ok" for c in calls) and key not in recorded:
            problems.append(f"acknowledged exchange {key} is not in Redis")
    return problems


def check_resales(ops: list[Op], resales: list[Resale], cancels: dict[str, list[Op]]) -> list[str]:
    """Ownership moves once per resale: the rules of the module docstring."""
    problems: list[str] = []
    sent = {op.idem_key: op for op in _maybe(ops) if op.kind == "resale"}
    by_ticket: dict[str, list[Resale]] = defaultdict(list)
    for r in resales:
        by_ticket[r.ticket_id].append(r)
        if r.resale_key not in sent:
            problems.append(f"resale {r.resale_id} in Redis was never asked for (key {r.resale_key!r})")
    for ticket_id, made in by_ticket.items():
        listings = [r.listing_id for r in made]
        if len(set(listings)) != len(listings):
            problems.append(f"ticket {ticket_id}: one listing sold twice {sorted(listings)}")
        revisions = [r.revision for r in made]
        if len(set(revisions)) != len(revisions):
            problems.append(f"ticket {ticket_id}: two resales made one revision {sorted(revisions)}")
    recorded = {r.resale_id for r in resales}
    for op in ops:
        if op.kind != "resale" or op.outcome != "ok":
            continue
        if op.resale_id not in recorded:
            problems.append(f"acknowledged resale {op.resale_id} of ticket {op.tickets[0]} is not in Redis")
        for cancel in cancels.get(op.order_id, []):
            named = cancel.all or op.tickets[0] in cancel.tickets
            if cancel.outcome == "ok" and named and cancel.complete_ms < op.invoke_ms:
                problems.append(f"ticket {op.tickets[0]} resold after its cancel was acknowledged")
    return problems


# -- seasons -----------------------------------------------------------------------------------


def project(ops: list[Op], event_id: str) -> list[Op]:
    """The history as ``event_id`` saw it: its own single-event calls, and each season call of
    a season hold over it as the single-event call it is there (the same hold id, the season's
    idempotency key, the event's order of a season order)."""
    out: list[Op] = []
    for op in ops:
        if op.kind not in SEASON_KINDS:
            if op.event in ("", event_id):
                out.append(op)
            continue
        if event_id not in op.events:
            continue
        kind: Kind = "commit"
        if op.kind != "season_commit":
            kind = (
                "hold" if op.kind == "season_hold" else "extend" if op.kind == "season_extend" else "release"
            )
        order = op.event_orders.get(event_id)
        seen = Op(op.id, op.client, kind, op.invoke_ms, op.complete_ms, op.outcome, op.hold_id, op.seats)
        seen.all, seen.idem_key, seen.expires_ms, seen.error = (
            kind == "release",
            op.idem_key,
            op.expires_ms,
            op.error,
        )
        seen.order, seen.order_id, seen.event = order, order.order_id if order else "", event_id
        out.append(seen)
    return out


def check_season_history(
    ops: list[Op], finals: dict[str, RawState], season_orders: Iterable[SeasonOrderRecord]
) -> list[str]:
    """Every violation in a run over the events of ``finals`` (one season; their final states)
    and the season's orders in Redis: each event's projected history, and the season rules of
    the module docstring."""
    problems: list[str] = []
    for event_id, final in finals.items():
        problems += [f"event {event_id}: {p}" for p in check_history(project(ops, event_id), final)]
    events_of = {o.hold_id: o.events for o in ops if o.kind == "season_hold" and o.outcome == "ok"}
    return (
        problems
        + _season_commits_answered(ops, finals)
        + _season_holds_sold_whole(finals, events_of, {o.idem_key for o in ops if o.kind == "season_commit"})
        + _season_order_records(ops, finals, list(season_orders), events_of)
    )


def _season_commits_answered(ops: list[Op], finals: dict[str, RawState]) -> list[str]:
    """One order per event of its hold in every acknowledged season commit, each in Redis."""
    problems: list[str] = []
    for op in ops:
        if op.kind != "season_commit" or op.outcome != "ok":
            continue
        if sorted(op.event_orders) != sorted(op.events):
            problems.append(
                f"season commit {op.id} answered orders in {sorted(op.event_orders)}, its hold is over "
                f"{sorted(op.events)}"
            )
        for event_id, order in op.event_orders.items():
            stored = finals[event_id].orders.get(order.order_id) if event_id in finals else None
            if stored is None or (stored.hold_id, stored.idempotency_key) != (op.hold_id, op.idem_key):
                problems.append(
                    f"season commit {op.id}: its order {order.order_id} in {event_id} is not in Redis"
                )
    return problems


def _season_holds_sold_whole(
    finals: dict[str, RawState], events_of: dict[str, tuple[str, ...]], season_keys: set[str]
) -> list[str]:
    """An order a season commit made in one event of its hold means one in every event of it."""
    sold_in: dict[str, set[str]] = defaultdict(set)
    for event_id, final in finals.items():
        for order in final.orders.values():
            if order.hold_id in events_of and order.idempotency_key in season_keys:
                sold_in[order.hold_id].add(event_id)
    return [
        f"season hold {hold_id} sold in {sorted(events)} only, of {sorted(events_of[hold_id])}"
        for hold_id, events in sold_in.items()
        if events != set(events_of[hold_id])
    ]


def _season_order_records(
    ops: list[Op],
    finals: dict[str, RawState],
    season_orders: list[SeasonOrderRecord],
    events_of: dict[str, tuple[str, ...]],
) -> list[str]:
    """The season orders in Redis: asked for, whole, adding up; every acknowledged one there."""
    problems: list[str] = []
    commits = [o for o in _maybe(ops) if o.kind == "season_commit"]
    by_key = {o.idem_key: o for o in commits}
    for record in season_orders:
        maker = by_key.get(record.idempotency_key)
        if maker is None or maker.hold_id != record.hold_id:
            problems.append(f"season order {record.season_order_id} in Redis was never asked for")
            continue
        if maker.outcome == "ok" and maker.season_order_id != record.season_order_id:
            problems.append(
                f"season order {record.season_order_id} in Redis differs from the acknowledged "
                f"{maker.season_order_id}"
            )
        lines = {line.event_id: line.order_id for line in record.lines}
        if sorted(lines) != sorted(events_of.get(record.hold_id, ())) or len(lines) != len(record.lines):
            problems.append(
                f"season order {record.season_order_id} lists {sorted(lines)}, not its hold's events"
            )
        orders = [finals[e].orders.get(o) if e in finals else None for e, o in lines.items()]
        if any(o is None or o.hold_id != record.hold_id for o in orders):
            problems.append(f"season order {record.season_order_id}: an order it lists is missing")
        elif record.total != sum(t.price for o in orders if o for t in o.tickets if not t.exchanged_from):
            problems.append(f"season order {record.season_order_id}: its total is not its orders' sum")
    recorded = {r.idempotency_key for r in season_orders}
    problems += [
        f"acknowledged season order {op.season_order_id} is missing from Redis"
        for op in commits
        if op.outcome == "ok" and op.idem_key not in recorded
    ]
    return problems
