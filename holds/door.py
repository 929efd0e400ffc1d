"""Tickets at the door: tokens, scans (entries and exits), offline uploads, statistics.

A scan is verified in Python first (``rules.tickets.verify`` against the
tenant's key ring: a forged token, an unknown or revoked key are *answers*),
then one script over the event's keys and door keys (``scan.lua``) decides and
records the check-in atomically: the ticket is this event's and valid, inside
the admission window, not already inside. Two gates scanning the same ticket
at once are serialised by Redis: exactly one is admitted. docs/door.md has the
scanner's view.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from holds import keys
from holds.errors import InvalidRequest, NotFound, PreconditionFailed, StoreError
from holds.inventory import Inventory
from holds.live import LiveEvent, LiveEvents
from holds.records import Order, Ticket
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from holds.ticket_keys import TicketKeyStore
from rules.errors import BadSignature, RevokedKey, TokenMalformed, UnknownKey
from rules.tickets import KeyRing, TicketClaims, sign, verify

ScanResult = Literal[
    "admitted",
    "already_used",
    "revoked",
    "wrong_event",
    "outside_window",
    "forged",
    "unknown_key",
    "not_checked_in",
]
Direction = Literal["entry", "exit"]
# Where an event's no-show entries stand (no_show.lua): not closed yet, closed but
# its admission window still open, some written and more to come, all written.
NoShowState = Literal["open", "doors_open", "more", "done"]
Reentry = Literal["none", "allowed"]

MAX_OFFLINE_SCANS = 1000
# gates and device ids are recorded as "<state>|<gate>|<device>|<at>": no '|'
_NAME = re.compile(r"^[^|\x00-\x1f]{1,64}$")


@dataclass(frozen=True)
class ScanOutcome:
    result: ScanResult
    reason: str = ""
    claims: TicketClaims | None = None
    seat_id: str = ""
    category: str = ""
    at_ms: int = 0  # when the scan counted
    previous: tuple[str, str, int] | None = None  # gate, device, at ms of the check-in that stands
    window: tuple[int, int] = (0, 0)  # admission from, until (ms; 0: no bound)
    first_entry: bool = False


@dataclass(frozen=True)
class OfflineScan:
    token: str
    gate: str
    scanned_at_ms: int
    direction: Direction = "entry"


@dataclass(frozen=True)
class DoorRules:
    admission_from_ms: int = 0
    admission_until_ms: int = 0
    reentry: Reentry = "none"


@dataclass(frozen=True)
class CheckInStats:
    admitted: int
    remaining: int
    entries: int
    exits: int
    conflicts: int
    by_gate: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    by_minute: dict[int, int] = field(default_factory=dict)  # minute start (ms) -> entries
    rules: DoorRules = DoorRules()

    @property
    def inside(self) -> int:
        return self.entries - self.exits


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _name(field_name: str, value: str) -> str:
    if not _NAME.match(value):
        raise InvalidRequest(field_name, "required: 1-64 characters, no '|' nor control characters")
    return value


REVISION_SEPARATOR = "~"


def claim_id(ticket_id: str, revision: int) -> str:
    """The ticket id a token of ``revision`` names: a ticket that changed hands
    (holds/aftersale.py) is signed as ``<id>~<revision>``; revision 0 as its own id."""
    return ticket_id if revision == 0 else f"{ticket_id}{REVISION_SEPARATOR}{revision}"


def ticket_of_claim(claim: str) -> str:
    """The ticket id of a token's claim, without its revision."""
    return claim.partition(REVISION_SEPARATOR)[0]


def _place(claims: TicketClaims) -> str:
    return f"s:{claims.place}" if isinstance(claims.place, int) else f"g:{claims.place}"


class Door:
    def __init__(
        self,
        client: AnyRedis,
        scripts: ScriptRegistry,
        live: LiveEvents,
        inventory: Inventory,
        ticket_keys: TicketKeyStore,
    ) -> None:
        self._r = client
        self._scripts = scripts
        self._live = live
        self._inventory = inventory
        self.ticket_keys = ticket_keys

    # -- tokens --------------------------------------------------------------
    async def ticket_token(
        self, tenant_id: str, event_id: str, order_id: str, ticket_id: str
    ) -> tuple[LiveEvent, str, str]:
        """(event, token, key id) of one valid ticket, at its current revision (the
        previous holders' tokens are revoked). The key that signs a ticket is
        recorded the first time its token is asked for, so the token is the same every
        time (Ed25519 is deterministic) and a rotation only changes new tickets'; a
        ticket whose key was revoked is signed again with the active key."""
        ctx = await self._live.get(tenant_id, event_id)
        if not order_id:
            raise InvalidRequest("order_id", "required")
        if not ticket_id:
            raise InvalidRequest("ticket_id", "required")
        order = await self._inventory.get_order(ctx.event_id, order_id)
        ticket = next((t for t in order.tickets if t.ticket_id == ticket_id), None)
        if ticket is None:
            raise NotFound("ticket", ticket_id)
        if ticket.status != "valid":
            raise PreconditionFailed(f"ticket {ticket_id} is {ticket.status}", subject=ticket_id)
        token, key_id = await self.sign_ticket(tenant_id, ctx.event_id, order, ticket)
        return ctx, token, key_id

    async def sign_ticket(
        self, tenant_id: str, event_id: str, order: Order, ticket: Ticket
    ) -> tuple[str, str]:
        """(token, key id) of ``ticket`` of ``order`` as given (the caller read them):
        after a transfer or resale, the new holder's token even if a cancel followed."""
        ticket_id = ticket.ticket_id
        recorded_at = keys.door_keys(event_id)[keys.DOOR_KEY_NAMES.index("ticketkeys")]
        ring = await self.ticket_keys.ring(tenant_id)
        async with wrap_errors("read ticket key id"):
            key_id = _text(await self._r.hget(recorded_at, ticket_id) or "")
        if not key_id or not _usable(ring, key_id):
            active = await self.ticket_keys.active(tenant_id)
            async with wrap_errors("record ticket key id"):
                if key_id:  # its key was revoked: the ticket is issued again with the active key
                    await self._r.hset(recorded_at, ticket_id, active.key_id)
                    key_id = active.key_id
                elif await self._r.hsetnx(recorded_at, ticket_id, active.key_id):
                    key_id = active.key_id
                else:  # a concurrent request recorded its key first: that one signs
                    key_id = _text(await self._r.hget(recorded_at, ticket_id))
        key = await self.ticket_keys.signing_key(tenant_id, key_id)
        place: int | str = ticket.seat if ticket.seat is not None else ticket.ga_area or ""
        token = sign(
            key,
            event_id=event_id,
            ticket_id=claim_id(ticket_id, ticket.revision),
            order_id=order.order_id,
            place=place,
            issued_at=(ticket.reissued_ms or order.created_ms) // 1000,
        )
        return token, key.key_id

    # -- scans ---------------------------------------------------------------
    async def scan(
        self,
        tenant_id: str,
        event_id: str,
        token: str,
        gate: str,
        device: str,
        *,
        direction: Direction = "entry",
        at_ms: int = 0,
        scan_id: str = "",
    ) -> tuple[LiveEvent, ScanOutcome]:
        ctx = await self._live.get(tenant_id, event_id)
        _name("gate", gate)
        _name("device_id", device)
        if not token:
            raise InvalidRequest("token", "required")
        ring = await self.ticket_keys.ring(tenant_id)
        return ctx, await self._scan(ctx, ring, token, gate, device, direction, at_ms, scan_id)

    async def _scan(
        self,
        ctx: LiveEvent,
        ring: KeyRing,
        token: str,
        gate: str,
        device: str,
        direction: Direction,
        at_ms: int,
        scan_id: str,
    ) -> ScanOutcome:
        claims = _verified(token, ring)
        if isinstance(claims, ScanOutcome):
            return claims
        if claims.event_id != ctx.event_id:
            return ScanOutcome("wrong_event", claims.event_id, claims)
        seat_id = ""
        if isinstance(claims.place, int):
            placed = ctx.loaded.index.placed
            seat_id = placed[claims.place].seat.id if 0 <= claims.place < len(placed) else ""
        args: list[str | int] = [
            direction,
            claims.ticket_id,
            claims.order_id,
            _place(claims),
            gate,
            device,
            at_ms,
            scan_id,
            str(ctx.ref.seat_map_version),  # the seat-map version fence (holds/lua/_layout.lua)
        ]
        event_keys = (*keys.event_keys(ctx.event_id), *keys.door_keys(ctx.event_id))
        # a check-in lost with a failover would let the ticket in twice: replicas confirm it
        reply = await self._scripts.scan.replicated(event_keys, args)
        self._inventory.moved(reply, ctx.event_id)

        def seat_of(ordinal: int) -> str:
            return placed[ordinal].seat.id if 0 <= ordinal < len(placed) else ""

        placed = ctx.loaded.index.placed
        return _scan_outcome(reply, ctx.event_id, claims, seat_id, seat_of)

    async def upload_offline(
        self, tenant_id: str, event_id: str, device: str, scans: Sequence[OfflineScan]
    ) -> tuple[LiveEvent, list[ScanOutcome]]:
        """Reconcile a device's offline scans in order. Each is named by device, ticket,
        time, gate and direction, so uploading a batch again answers the same and
        changes nothing; a scan whose ticket was already admitted elsewhere is answered
        ``already_used`` (a conflict: reported, never merged)."""
        ctx = await self._live.get(tenant_id, event_id)
        _name("device_id", device)
        if len(scans) > MAX_OFFLINE_SCANS:
            raise InvalidRequest("scans", f"at most {MAX_OFFLINE_SCANS} per upload")
        for i, s in enumerate(scans):
            _name(f"scans[{i}].gate", s.gate)
            if s.scanned_at_ms <= 0:
                raise InvalidRequest(f"scans[{i}].scanned_at", "required")
            if not s.token:
                raise InvalidRequest(f"scans[{i}].token", "required")
        ring = await self.ticket_keys.ring(tenant_id)
        outcomes = []
        for s in scans:
            scan_id = f"{device}|{s.gate}|{s.direction}|{s.scanned_at_ms}|{s.token[-86:]}"  # the signature
            try:
                outcome = await self._scan(
                    ctx, ring, s.token, s.gate, device, s.direction, s.scanned_at_ms, scan_id
                )
            except PreconditionFailed:  # an exit at an event without re-entry: answered per scan
                outcome = ScanOutcome("not_checked_in", "reentry_not_allowed")
            outcomes.append(outcome)
        return ctx, outcomes

    # -- rules and statistics ------------------------------------------------
    async def set_rules(self, tenant_id: str, event_id: str, rules: DoorRules) -> DoorRules:
        ctx = await self._live.get(tenant_id, event_id)
        if rules.admission_from_ms < 0 or rules.admission_until_ms < 0:
            raise InvalidRequest("rules", "admission times must be after 1970")
        if rules.admission_until_ms and rules.admission_until_ms <= rules.admission_from_ms:
            raise InvalidRequest("rules.admission_until", "must be after admission_from")
        meta, prices, ga_cap = (keys.event_key(ctx.event_id, n) for n in ("meta", "prices", "ga_cap"))
        fields: list[str | int] = [
            "door_from_ms",
            rules.admission_from_ms,
            "door_until_ms",
            rules.admission_until_ms,
            "door_reentry",
            rules.reentry,
        ]
        reply = await self._scripts.event_put([meta, prices, ga_cap], ["update", "", 3, *fields, "0", 0, 0])
        if reply == Reply.EVENT_NOT_FOUND:
            raise NotFound("event", ctx.event_id)
        if reply != Reply.OK:
            raise StoreError(f"event_put returned an unknown result {reply!r}")
        return rules

    async def write_no_shows(self, event_id: str, batch: int = 200) -> tuple[NoShowState, int]:
        """Write the next batch of a closed event's ``ticket.no_show`` feed entries
        (one per valid ticket never scanned in; ``batch`` orders per call).
        Called by the reaper, not by a tenant: the event id comes from its own set."""
        event_keys = (*keys.event_keys(event_id), *keys.door_keys(event_id))
        reply = await self._scripts.no_show(event_keys, [batch])
        match reply:
            case [Reply.OK, state, written] if _text(state) in ("open", "doors_open", "more", "done"):
                return cast(NoShowState, _text(state)), int(written)
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", event_id)
        raise StoreError(f"no_show returned an unknown result {reply!r}")

    async def stats(self, tenant_id: str, event_id: str) -> CheckInStats:
        ctx = await self._live.get(tenant_id, event_id)
        event_keys = (*keys.event_keys(ctx.event_id), *keys.door_keys(ctx.event_id))
        reply = await self._scripts.checkin_stats(event_keys, [])
        match reply:
            case [Reply.OK, flat, sold, ga_sold, [start, until, reentry]]:
                counters = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
                allowed = _text(reentry) == "allowed"
                rules = DoorRules(int(start), int(until), "allowed" if allowed else "none")
                return _stats(counters, int(sold) + int(ga_sold), rules)
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", ctx.event_id)
        raise StoreError(f"checkin_stats returned an unknown result {reply!r}")


def _verified(token: str, ring: KeyRing) -> TicketClaims | ScanOutcome:
    """The token's claims, or the answer for a token that does not verify."""
    try:
        return verify(token, ring)
    except TokenMalformed:
        return ScanOutcome("forged", "malformed")
    except BadSignature:
        return ScanOutcome("forged", "bad_signature")
    except UnknownKey:
        return ScanOutcome("unknown_key", "unknown_key")
    except RevokedKey:
        return ScanOutcome("revoked", "key_revoked")


def _scan_outcome(
    reply: Any, event_id: str, claims: TicketClaims, seat_id: str, seat_of: Callable[[int], str]
) -> ScanOutcome:
    match reply:
        case [Reply.OK, _, at, category, first, *now]:
            # the ticket's seat now (answers kept from before the field: the token's place)
            seat_id = seat_of(int(now[0])) if now else seat_id
            return ScanOutcome(
                "admitted", "", claims, seat_id, _text(category), int(at), first_entry=bool(first)
            )
        case [Reply.ALREADY_USED, was_gate, was_device, was_at]:
            previous = (_text(was_gate), _text(was_device), int(was_at))
            return ScanOutcome("already_used", "", claims, seat_id, previous=previous)
        case [Reply.TICKET_REVOKED, why]:
            return ScanOutcome("revoked", _text(why), claims, seat_id)
        case [Reply.OUTSIDE_WINDOW, start, until, at]:
            window = (int(start), int(until))
            return ScanOutcome("outside_window", "", claims, seat_id, at_ms=int(at), window=window)
        case [Reply.NOT_CHECKED_IN]:
            return ScanOutcome("not_checked_in", "", claims, seat_id)
        case [Reply.REENTRY_NOT_ALLOWED]:
            raise PreconditionFailed("this event does not allow re-entry", subject=event_id)
        case [Reply.EVENT_NOT_FOUND]:
            raise NotFound("event", event_id)
    raise StoreError(f"scan returned an unknown result {reply!r}")


def _usable(ring: KeyRing, key_id: str) -> bool:
    """Whether ``key_id`` still verifies (a retired key does; a revoked or unknown one not)."""
    try:
        return ring.get(key_id).state != "revoked"
    except UnknownKey:
        return False


def _stats(counters: dict[str, int], valid: int, rules: DoorRules) -> CheckInStats:
    admitted = counters.get("admitted", 0)
    return CheckInStats(
        admitted=admitted,
        # a ticket cancelled after its check-in still counts as admitted: remaining never below 0
        remaining=max(0, valid - admitted),
        entries=counters.get("entries", 0),
        exits=counters.get("exits", 0),
        conflicts=counters.get("conflicts", 0),
        by_gate={k[2:]: v for k, v in counters.items() if k.startswith("g:")},
        by_category={k[2:]: v for k, v in counters.items() if k.startswith("c:")},
        by_minute=dict(sorted((int(k[2:]) * 60_000, v) for k, v in counters.items() if k.startswith("m:"))),
        rules=rules,
    )
