"""A read of everything stored for one event: for audits and tests.

Two ways, both routed by the event's hash tag (the same on a single node and on
Redis Cluster), never used on a request path, and decoded alike; records that
fail to decode are listed in ``undecodable`` instead of raising, so an audit
can report corrupted state:

- :func:`read_event`: one script (``event_dump.lua``) returns every key in one
  atomic cut, with Redis's clock. Redis serves nothing else meanwhile: fine for
  the small events of the tests, not for a real one (a stadium event with
  46,000 orders blocked its master for 2.4 s, longer than a 2 s
  ``cluster-node-timeout``: the other nodes failed it over).
- :func:`read_event_in_chunks`: the audit's read. Each key is read in bounded
  chunks (HSCAN, ZSCAN, XRANGE of ``CHUNK`` entries), so Redis is never busy
  with it for more than a millisecond or so at a time. The cut is consistent
  when nothing changes the event during the read, which is how the audit runs
  (after the load stopped): the event's sequence number is read before and
  after, and the read starts over when it moved (a change of seats, GA counts
  or orders moves it; the reaper purging an expired hold too). Lease extensions
  do not move it: a hold extended during the read may read with its old expiry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from holds import keys, seatvalues
from holds.records import HoldRecord, Order, hold_decoder, order_decoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.scripts import ScriptRegistry, script_source

DUMP_SCRIPT = "event_dump"
CHUNK = 1_000  # entries per HSCAN/ZSCAN/XRANGE call of read_event_in_chunks
READ_ATTEMPTS = 5  # reads started over because the event changed meanwhile
# Redis's clock on the event's node (the clock expiry is decided by), routed by the key
_TIME = "local _ = KEYS[1]; return redis.call('TIME')"


@dataclass
class EventDump:
    """Every key of one event, decoded, as of one atomic cut (plus Redis's clock)."""

    now_ms: int
    meta: dict[str, str]
    seats: dict[int, str]  # ordinal -> value (holds/seatvalues.py); absent: free
    holds: dict[str, HoldRecord]
    holdexp: dict[str, int]
    ga_cap: dict[str, int]
    ga_held: dict[str, int]
    ga_sold: dict[str, int]
    buyers: dict[str, int]
    orders: dict[str, Order]
    idem: dict[str, str]
    orders_z: set[str]
    tickets: dict[str, str]
    seq: int
    changes: list[tuple[str, dict[str, str]]]
    lifecycle: list[dict[str, str]]
    bought: dict[str, int] = field(default_factory=dict)
    holdreqs: dict[str, tuple[str, str]] = field(default_factory=dict)  # request id -> (hold, fingerprint)
    holdreqs_z: dict[str, int] = field(default_factory=dict)  # request id -> when its hold ended
    undecodable: list[str] = field(default_factory=list)

    def live(self, hold_id: str) -> bool:
        exp = self.holdexp.get(hold_id)
        return exp is not None and exp > self.now_ms

    def state_of(self, ordinal: int) -> str:
        """free | held | sold | blocked | not_for_sale, with lazy expiry applied."""
        state, owner = seatvalues.decode(self.seats.get(ordinal))
        if state == "held" and not self.live(owner):
            return "free"
        return state

    def holder(self, ordinal: int) -> str | None:
        """The live hold holding ``ordinal``, if any."""
        state, owner = seatvalues.decode(self.seats.get(ordinal))
        return owner if state == "held" and self.live(owner) else None

    def valid_seat_tickets(self) -> list[tuple[int, str]]:
        """(ordinal, order_id) for every valid seat ticket of every order."""
        return [
            (t.seat, o.order_id)
            for o in self.orders.values()
            for t in o.tickets
            if t.status == "valid" and t.seat is not None
        ]

    def valid_ga_tickets(self) -> Counter[str]:
        return Counter(
            t.ga_area for o in self.orders.values() for t in o.tickets if t.status == "valid" and t.ga_area
        )

    def lifecycle_count(self, kind: str) -> Counter[str]:
        """How many lifecycle entries of ``kind`` each order has."""
        return Counter(entry.get("order", "") for entry in self.lifecycle if entry.get("kind") == kind)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> list[tuple[str, Any]]:
    return [(_text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]


def _fields(flat: list[Any] | dict[Any, Any]) -> dict[str, str]:
    items = flat.items() if isinstance(flat, dict) else _pairs(flat)
    return {_text(k): _text(v) for k, v in items}


def _split_request(value: str) -> tuple[str, str]:
    hold_id, _, fingerprint = value.partition(" ")
    return hold_id, fingerprint


def decode_dump(reply: list[Any]) -> EventDump:
    """Decode the reply of ``event_dump.lua``."""
    now, meta, seats, holds, holdexp, ga_cap, ga_held, ga_sold, buyers, orders, idem, orders_z, tickets = (
        reply[:13]
    )
    seq, changes, lifecycle, bought, holdreqs, holdreqs_z = reply[13:]
    undecodable: list[str] = []

    def decode_all(flat: list[Any], decoder: msgspec.json.Decoder[Any], what: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in _pairs(flat):
            try:
                out[k] = decoder.decode(v)
            except msgspec.DecodeError as exc:
                undecodable.append(f"{what} {k}: {exc}")
        return out

    def ints(flat: list[Any]) -> dict[str, int]:
        return {k: int(float(v)) for k, v in _pairs(flat)}

    return EventDump(
        now_ms=int(now[0]) * 1000 + int(now[1]) // 1000,
        meta=_fields(meta),
        seats={int(k): _text(v) for k, v in _pairs(seats)},
        holds=decode_all(holds, hold_decoder, "hold"),
        holdexp=ints(holdexp),
        ga_cap=ints(ga_cap),
        ga_held=ints(ga_held),
        ga_sold=ints(ga_sold),
        buyers=ints(buyers),
        orders=decode_all(orders, order_decoder, "order"),
        idem=_fields(idem),
        orders_z={_text(o) for o in orders_z},
        tickets=_fields(tickets),
        seq=int(seq[0]),
        changes=[(_text(i), _fields(f)) for i, f in changes],
        lifecycle=[_fields(f) for _i, f in lifecycle],
        bought=ints(bought),
        holdreqs={k: _split_request(v) for k, v in _fields(holdreqs).items()},
        holdreqs_z=ints(holdreqs_z),
        undecodable=undecodable,
    )


async def read_event(scripts: ScriptRegistry, event_id: str) -> EventDump:
    return decode_dump(await scripts.event_dump(keys.event_keys(event_id), []))


def dump_source() -> str:
    """The script's full source, for synchronous clients (``client.eval``)."""
    return script_source(DUMP_SCRIPT)


class EventChanged(Exception):
    """The event kept changing while it was read in chunks: no consistent read."""


async def read_event_in_chunks(client: AnyRedis, event_id: str, *, chunk: int = CHUNK) -> EventDump:
    """Every key of one event, read in bounded chunks; see the module docstring for
    when the result is a consistent cut (the event's sequence did not move)."""
    names = dict(zip(keys.EVENT_KEY_NAMES, keys.event_keys(event_id), strict=True))
    async with wrap_errors("read event"):
        for _ in range(READ_ATTEMPTS):
            before = await client.get(names["seq"])
            reply = await _read_chunks(client, names, chunk)
            if await client.get(names["seq"]) == before:
                reply[13] = [before or b"0"]
                return decode_dump(reply)
    raise EventChanged(f"event {event_id} changed during each of {READ_ATTEMPTS} reads")


async def _read_chunks(client: AnyRedis, names: dict[str, str], chunk: int) -> list[Any]:
    """The reply ``event_dump.lua`` would give, read a chunk at a time (``seq`` left
    for the caller)."""

    async def hash_(name: str) -> list[Any]:
        flat: list[Any] = []
        cursor = 0
        while True:
            cursor, fields = await client.hscan(names[name], cursor, count=chunk)
            for field_, value in fields.items():
                flat += [field_, value]
            if int(cursor) == 0:
                return flat

    async def zset(name: str, scores: bool) -> list[Any]:
        flat: list[Any] = []
        cursor = 0
        while True:
            cursor, members = await client.zscan(names[name], cursor, count=chunk)
            for member, score in members:
                flat += [member, score] if scores else [member]
            if int(cursor) == 0:
                return flat

    async def stream(name: str) -> list[Any]:
        entries: list[Any] = []
        start = "-"
        while True:
            got = await client.xrange(names[name], min=start, max="+", count=chunk)
            entries += [[entry_id, [x for kv in fields.items() for x in kv]] for entry_id, fields in got]
            if len(got) < chunk:
                return entries
            last = got[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))

    now = await client.eval(_TIME, 1, names["meta"])
    return [
        now,
        await hash_("meta"),
        await hash_("seats"),
        await hash_("holds"),
        await zset("holdexp", scores=True),
        await hash_("ga_cap"),
        await hash_("ga_held"),
        await hash_("ga_sold"),
        await hash_("buyers"),
        await hash_("orders"),
        await hash_("idem"),
        await zset("orders_z", scores=False),
        await hash_("tickets"),
        [],  # seq: the caller's
        await stream("changes"),
        await stream("lifecycle"),
        await hash_("bought"),
        await hash_("holdreqs"),
        await zset("holdreqs_z", scores=True),
    ]
