"""A consistent read of everything stored for one event: for audits and tests.

One script (``event_dump.lua``) returns every key of the event in one atomic
cut, with Redis's clock, routed by the event's hash tag, so it works the same
on a single node and on Redis Cluster. It is O(size of the event) and never
used on a request path. Records that fail to decode are listed in
``undecodable`` instead of raising, so an audit can report corrupted state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from holds import keys, seatvalues
from holds.records import HoldRecord, Order, hold_decoder, order_decoder
from holds.scripts import ScriptRegistry, script_source

DUMP_SCRIPT = "event_dump"


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
