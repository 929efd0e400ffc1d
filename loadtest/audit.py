"""The post-run audit: read one event's final state from Redis and prove the invariants.

    python -m loadtest.audit --redis-url unix:///tmp/x/redis.sock --event EV --acks DIR [--json OUT]

Every key of the event is read in bounded chunks (HSCAN, ZSCAN, XRANGE:
``holds.inspection.read_event_in_chunks``, on a single node or a cluster), so
auditing a sold-out stadium never blocks Redis (one script reading it all
blocked a master for 2.4 s and caused a failover). The audit runs after the
load stopped: the read is a consistent cut because nothing changes the event
meanwhile, and it starts over if the event's sequence number moved during it.
The checks are independent of the scripts that change state: the audit
re-derives what each key must hold from the others.
Checks (severity ``error`` fails the audit):

* ``seat_values``: every seats-hash value is ``h:<hold>``, ``s:<order>``, ``b``
  or ``n``, on an ordinal of the seat map;
* ``no_double_sale``: no seat has a valid ticket in two orders (or twice in one);
* ``sold_seats``: each ``s:<order>`` seat belongs to exactly that order, which
  holds a valid ticket for it; each valid seat ticket's seat reads ``s:<order>``;
* ``orders``: the tickets hash maps every ticket to its order and nothing else;
  the listing, idempotency keys, statuses and totals agree with the orders;
  one ``order.created`` lifecycle entry per order;
* ``ga_capacity``: per area, sold == valid GA tickets, sold <= capacity,
  held + sold <= capacity, held == the places in hold records;
* ``holds``: a held seat names a hold that has a record and a lease; a live
  hold's seats all point back at it; buyer counters equal the holds' counts,
  bought counters the valid tickets of each buyer's orders;
* ``leases`` (warning): holds past their expiry still in Redis. Expiry is
  lazy, so these seats are already free to every script (a seat whose hold's
  lease is past is free); they are listed as lazily expired, and only a
  backlog older than ``reaper_grace_ms`` is a warning (the reaper is not
  keeping up);
* ``acks``: every commit acknowledged to a client (the runner's JSONL files)
  exists with the same seats and GA places, under its idempotency key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from holds import keys, seatvalues
from holds.inspection import EventDump, read_event_in_chunks
from holds.records import HoldRecord, Order
from holds.redis_client import AnyRedis, connect
from loadtest.recording import Ack, read_acks
from seatmap.model import iter_seats, msgpack_decoder

MAX_LISTED = 25  # problems listed per check (all are counted)
REAPER_GRACE_MS = 5_000

K = {name: i for i, name in enumerate(keys.EVENT_KEY_NAMES)}


@dataclass
class Check:
    name: str
    description: str
    severity: Literal["error", "warning"] = "error"
    total: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(message)

    @property
    def ok(self) -> bool:
        return self.total == 0


@dataclass
class AuditReport:
    event_id: str
    checks: list[Check]
    stats: dict[str, Any]
    # (created ms, tickets) of every order: the sales timeline (not part of to_dict)
    sales: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.severity == "error")

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "ok": self.ok,
            "checks": {
                c.name: {
                    "ok": c.ok,
                    "severity": c.severity,
                    "description": c.description,
                    "problems": c.total,
                    "examples": c.problems,
                }
                for c in self.checks
            },
            "stats": self.stats,
        }

    def format(self) -> str:
        lines = [f"audit of event {self.event_id}: {'PASSED' if self.ok else 'FAILED'}"]
        for c in self.checks:
            mark = "ok  " if c.ok else ("FAIL" if c.severity == "error" else "warn")
            lines.append(f"  [{mark}] {c.name:<15} {c.description}" + ("" if c.ok else f" ({c.total})"))
            lines += [f"           - {p}" for p in c.problems[:10]]
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in self.stats.items()))
        return "\n".join(lines)


async def seat_ids_of(client: AnyRedis, meta: dict[str, str]) -> list[str]:
    """Seat ids by ordinal, from the event's seat-map version stored in Redis."""
    content_key = keys.seatmap_content(meta["tenant"], meta["seat_map_id"])
    raw = await client.hget(content_key, meta["seat_map_version"])
    if raw is None:
        raise LookupError(f"seat map {meta['seat_map_id']}@{meta['seat_map_version']} is not in Redis")
    return [p.seat.id for p in iter_seats(msgpack_decoder.decode(raw))]


class _Auditor:
    def __init__(self, state: EventDump, seat_ids: list[str], reaper_grace_ms: int) -> None:
        self.s = state
        self.seat_ids = seat_ids
        self.grace = reaper_grace_ms
        self.lazily_expired_seats = 0
        self.created_entries = state.lifecycle_count("order.created")
        self.c = {
            "seat_values": Check("seat_values", "every seat value is well formed"),
            "no_double_sale": Check("no_double_sale", "no seat has valid tickets in two orders"),
            "sold_seats": Check("sold_seats", "every sold seat belongs to exactly one committed order"),
            "orders": Check("orders", "orders, tickets, idempotency keys and lifecycle agree"),
            "ga_capacity": Check("ga_capacity", "GA sold <= capacity and held + sold <= capacity"),
            "holds": Check("holds", "held seats, hold records, leases and buyer counters agree"),
            "leases": Check("leases", "no expired hold left behind by the reaper", "warning"),
            "acks": Check("acks", "every acknowledged commit exists with the same seats"),
        }
        # ordinal -> orders with a valid ticket for it
        self.valid_by_seat: dict[int, list[str]] = {}
        for order in state.orders.values():
            for t in order.tickets:
                if t.status == "valid" and t.seat is not None:
                    self.valid_by_seat.setdefault(t.seat, []).append(order.order_id)

    def live(self, hold_id: str) -> bool:
        exp = self.s.holdexp.get(hold_id)
        return exp is not None and exp > self.s.now_ms

    def seats(self) -> None:
        values, double, sold = self.c["seat_values"], self.c["no_double_sale"], self.c["sold_seats"]
        for problem in self.s.undecodable:
            values.fail(f"undecodable record: {problem}")
        for ordinal, value in self.s.seats.items():
            if not 0 <= ordinal < len(self.seat_ids):
                values.fail(f"ordinal {ordinal} is not a seat of the map ({len(self.seat_ids)} seats)")
            state, owner = seatvalues.decode(value)
            if state == "invalid":
                values.fail(f"seat {self.name(ordinal)} has value {value!r}")
            if state == "sold":
                order = self.s.orders.get(owner)
                owners = self.valid_by_seat.get(ordinal, [])
                if order is None:
                    sold.fail(f"seat {self.name(ordinal)} is sold to {owner}, which does not exist")
                elif owners != [owner]:
                    sold.fail(f"seat {self.name(ordinal)} is sold to {owner} but valid tickets say {owners}")
        for ordinal, owners in self.valid_by_seat.items():
            if len(owners) > 1:
                double.fail(f"seat {self.name(ordinal)} has valid tickets in {sorted(owners)}")
            current = self.s.seats.get(ordinal)
            for order_id in set(owners):
                if current != seatvalues.sold_to(order_id):
                    sold.fail(
                        f"seat {self.name(ordinal)} has a valid ticket in {order_id} but reads {current!r}"
                    )

    def name(self, ordinal: int) -> str:
        return self.seat_ids[ordinal] if 0 <= ordinal < len(self.seat_ids) else f"#{ordinal}"

    def orders(self) -> None:
        check = self.c["orders"]
        ticket_owner: dict[str, str] = {}
        for order_id, order in self.s.orders.items():
            if order.order_id != order_id:
                check.fail(f"order stored under {order_id} says it is {order.order_id}")
            for t in order.tickets:
                if t.ticket_id in ticket_owner:
                    check.fail(f"ticket {t.ticket_id} is in {ticket_owner[t.ticket_id]} and {order_id}")
                ticket_owner[t.ticket_id] = order_id
                if self.s.tickets.get(t.ticket_id) != order_id:
                    mapped = self.s.tickets.get(t.ticket_id)
                    check.fail(f"ticket {t.ticket_id} of {order_id} maps to {mapped}")
                if (t.seat is None) == (t.ga_area is None):
                    check.fail(f"ticket {t.ticket_id} of {order_id} must name a seat or a GA area")
            self.order_record(check, order_id, order)
        for ticket_id, order_id in self.s.tickets.items():
            if ticket_owner.get(ticket_id) != order_id:
                check.fail(f"tickets hash maps {ticket_id} to {order_id}, which has no such ticket")
        for key, order_id in self.s.idem.items():
            if order_id not in self.s.orders:
                check.fail(f"idempotency key {key!r} maps to missing order {order_id}")
        for order_id in self.s.orders_z - set(self.s.orders):
            check.fail(f"order listing names missing order {order_id}")

    def order_record(self, check: Check, order_id: str, order: Order) -> None:
        valid = sum(t.status == "valid" for t in order.tickets)
        if valid == len(order.tickets):
            expected = "committed"
        else:
            expected = "cancelled" if valid == 0 else "partially_cancelled"
        if order.status != expected:
            check.fail(f"order {order_id} is {order.status} with {valid}/{len(order.tickets)} valid tickets")
        if order.status == "committed" and order.total != sum(t.price for t in order.tickets):
            check.fail(f"order {order_id} total {order.total} is not the sum of its tickets")
        if self.s.idem.get(order.idempotency_key) != order_id:
            check.fail(f"idempotency key {order.idempotency_key!r} of {order_id} maps elsewhere")
        if order_id not in self.s.orders_z:
            check.fail(f"order {order_id} is missing from the order listing")
        created = self.created_entries.get(order_id, 0)
        if created != 1:
            check.fail(f"order {order_id} has {created} order.created lifecycle entries")

    def ga(self) -> None:
        check = self.c["ga_capacity"]
        tickets = Counter(
            t.ga_area
            for order in self.s.orders.values()
            for t in order.tickets
            if t.status == "valid" and t.ga_area is not None
        )
        in_holds: Counter[str] = Counter()
        for hold in self.s.holds.values():
            in_holds.update(hold.ga)
        for area in set(self.s.ga_cap) | set(self.s.ga_sold) | set(self.s.ga_held) | set(tickets):
            cap = self.s.ga_cap.get(area)
            held, sold = self.s.ga_held.get(area, 0), self.s.ga_sold.get(area, 0)
            problems = [
                (cap is None, "has no capacity"),
                (cap is not None and sold > cap, f"sold {sold} > capacity {cap}"),
                (cap is not None and held + sold > cap, f"held {held} + sold {sold} > capacity {cap}"),
                (held < 0 or sold < 0, f"negative count (held {held}, sold {sold})"),
                (sold != tickets[area], f"sold {sold} but {tickets[area]} valid tickets"),
                (held != in_holds[area], f"held {held} but hold records hold {in_holds[area]}"),
            ]
            for failed, message in problems:
                if failed:
                    check.fail(f"GA area {area}: {message}")

    def holds(self) -> None:
        check = self.c["holds"]
        self.lazily_expired_seats = 0
        for ordinal, value in self.s.seats.items():
            state, hold_id = seatvalues.decode(value)
            if state != "held":
                continue
            if hold_id not in self.s.holds or hold_id not in self.s.holdexp:
                check.fail(f"seat {self.name(ordinal)} is held by {hold_id}, which has no record or lease")
            elif not self.live(hold_id):
                self.lazily_expired_seats += 1  # free to every script already (lazy expiry)
        counts: Counter[str] = Counter()
        for hold_id, hold in self.s.holds.items():
            if hold.buyer:
                counts[hold.buyer] += hold.count
            self.hold_record(check, hold_id, hold)
        for hold_id in set(self.s.holdexp) - set(self.s.holds):
            check.fail(f"lease {hold_id} has no hold record")
        for buyer in set(counts) | set(self.s.buyers):
            if counts[buyer] != self.s.buyers.get(buyer, 0):
                check.fail(f"buyer {buyer} counter {self.s.buyers.get(buyer, 0)} != held {counts[buyer]}")
        self.bought_counters(check)

    def bought_counters(self, check: Check) -> None:
        bought: Counter[str] = Counter()
        for order in self.s.orders.values():
            if order.buyer_id:
                bought[order.buyer_id] += sum(1 for t in order.tickets if t.status == "valid")
        for buyer in set(bought) | set(self.s.bought):
            counter = self.s.bought.get(buyer, 0)
            if bought[buyer] != counter:
                check.fail(f"buyer {buyer} bought counter {counter} != valid tickets {bought[buyer]}")

    def hold_record(self, check: Check, hold_id: str, hold: HoldRecord) -> None:
        exp = self.s.holdexp.get(hold_id)
        if exp is None:
            check.fail(f"hold {hold_id} has a record but no lease")
            return
        if hold.count != len(hold.seat_ordinals) + sum(hold.ga.values()):
            check.fail(f"hold {hold_id} counts {hold.count} places but lists more or fewer")
        if exp > self.s.now_ms:
            for o in hold.seat_ordinals:
                value = self.s.seats.get(o)
                if value != seatvalues.held_by(hold_id):
                    check.fail(f"live hold {hold_id} lists seat {self.name(o)}, which reads {value!r}")
        elif exp < self.s.now_ms - self.grace:
            ago = (self.s.now_ms - exp) / 1000
            self.c["leases"].fail(f"hold {hold_id} expired {ago:.1f}s ago and is still stored")

    def acks(self, acks: list[Ack], event_id: str) -> int:
        check = self.c["acks"]
        seen: dict[str, str] = {}
        mine = [a for a in acks if a.event_id == event_id]
        for ack in mine:
            order = self.s.orders.get(ack.order_id)
            if order is None:
                check.fail(f"acknowledged order {ack.order_id} (key {ack.idempotency_key}) is not in Redis")
                continue
            if seen.get(ack.order_id, ack.idempotency_key) != ack.idempotency_key:
                check.fail(f"order {ack.order_id} was acknowledged under two idempotency keys")
            seen[ack.order_id] = ack.idempotency_key
            seats = sorted(self.name(t.seat) for t in order.tickets if t.seat is not None)
            if seats != sorted(ack.seat_ids):
                check.fail(
                    f"order {ack.order_id}: acknowledged seats {sorted(ack.seat_ids)} != stored {seats}"
                )
            ga = Counter(t.ga_area for t in order.tickets if t.ga_area is not None)
            if dict(ga) != ack.ga:
                check.fail(f"order {ack.order_id}: acknowledged GA {ack.ga} != stored {dict(ga)}")
            if order.idempotency_key != ack.idempotency_key:
                stored = order.idempotency_key
                check.fail(f"order {ack.order_id}: key {stored!r} != acknowledged {ack.idempotency_key!r}")
        return len(mine)


def audit_state(
    state: EventDump,
    seat_ids: list[str],
    event_id: str,
    acks: list[Ack],
    *,
    reaper_grace_ms: int = REAPER_GRACE_MS,
) -> AuditReport:
    auditor = _Auditor(state, seat_ids, reaper_grace_ms)
    auditor.seats()
    auditor.orders()
    auditor.ga()
    auditor.holds()
    acked = auditor.acks(acks, event_id)
    acked_ids = {a.order_id for a in acks if a.event_id == event_id}
    live_holds = [h for h in state.holds if auditor.live(h)]
    created = sorted(o.created_ms for o in state.orders.values())
    seat_states = Counter(state.state_of(o) for o in state.seats)  # lazy expiry applied
    stats: dict[str, Any] = {
        "seats": len(seat_ids),
        "seats_sold": seat_states["sold"],
        "seats_held_live": seat_states["held"],
        "seats_lazily_expired": auditor.lazily_expired_seats,
        "seats_blocked": seat_states["blocked"] + seat_states["not_for_sale"],
        "orders": len(state.orders),
        "tickets_valid": sum(t.status == "valid" for o in state.orders.values() for t in o.tickets),
        "ga_sold": sum(state.ga_sold.values()),
        "ga_capacity": sum(state.ga_cap.values()),
        "holds_live": len(live_holds),
        "holds_expired_unpurged": len(state.holds) - len(live_holds),
        "acks": acked,
        "acks_replayed": sum(a.replayed for a in acks if a.event_id == event_id),
        "orders_not_acknowledged": len(set(state.orders) - acked_ids),
        "first_order_ms": created[0] if created else 0,
        "last_order_ms": created[-1] if created else 0,
    }
    sales = sorted((o.created_ms, len(o.tickets)) for o in state.orders.values())
    return AuditReport(event_id, list(auditor.c.values()), stats, sales)


async def audit_event(
    client: AnyRedis, event_id: str, acks: list[Ack], *, reaper_grace_ms: int = REAPER_GRACE_MS
) -> AuditReport:
    state = await read_event_in_chunks(client, event_id)
    if not state.meta:
        raise LookupError(f"event {event_id} is not in Redis")
    seat_ids = await seat_ids_of(client, state.meta)
    return audit_state(state, seat_ids, event_id, acks, reaper_grace_ms=reaper_grace_ms)


async def run_audit(redis_url: str, event_id: str, acks_dir: Path | None) -> AuditReport:
    client = connect(redis_url)
    try:
        return await audit_event(client, event_id, read_acks(acks_dir) if acks_dir else [])
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.audit", description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--acks", type=Path, default=None, help="directory of acks-*.jsonl files")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    report = asyncio.run(run_audit(args.redis_url, args.event, args.acks))
    print(report.format())
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
