"""Moving an event to another version of its seat map (docs/selling.md).

Python derives the whole mapping (old ordinal -> new ordinal: ``rules/remap.py``, by seat
id, overridden by the organizer's explicit pairs; GA areas by id). A move is made in
chunks so that the event's Redis shard keeps serving every other event: ``remap_begin.lua``
holds the event for a short lease (its own sales and changes answer EVENT_MOVING, retry;
``holds/lua/_layout.lua``), each ``remap_step.lua`` does a bounded part (the seats by
ordinal range, then the holds, the check, the purge of expired holds, the orders), writing
the new state beside the old, and the last step swaps it in, fenced on the version the
mapping was derived from: refused naming every occupied seat or GA area that would be lost
(rolled back, nothing changed), else seats, holds' seat lists, orders' tickets, GA areas and
meta are the target version's and one change-stream entry makes every process drop what it
cached about the event (``holds/live.py``). A mover that dies mid-way leaves the lease to
run out (the event sells again, and the move's next begin rolls its leftovers back); a
retry before that resumes where it stopped. A dry run is still the one script
``holds/lua/remap.lua`` (the check and counts of an atomic cut), which is also the
whole-move reference the chunked move is tested against. Other scripts that take or
return ordinals are fenced on the caller's version (``holds/lua/_layout.lua``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from holds import keys
from holds.errors import (
    Conflict,
    EventMoving,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SeatsLost,
    StoreError,
)
from holds.events import EventRef, EventStore
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from holds.seatmaps import LoadedSeatMap, SeatMapStore
from rules.remap import NO_TARGET, InvalidMapping, SeatMapping, derive

MAX_MAPPING_ID = 128  # characters of a seat id in an explicit mapping (seat ids are shorter)


@dataclass(frozen=True)
class MoveChunks:
    """How a move is cut (``remap_step.lua``): each step stays within a few ms of Redis.
    Figures: docs/performance.md (2026-12-02, the sold-out stadium)."""

    seats: int = 500  # old ordinals per step of the seats phase
    records: int = 40  # holds or orders per step (HSCAN COUNT), expired holds purged per step
    lease_ms: int = 10_000  # how long the event refuses its sales after the last step (a dead mover)
    restarts: int = 3  # moves begun again after their lease ran out, before giving up


@dataclass(frozen=True)
class MoveReport:
    """What a move did, or (``dry_run``) would do; ``lost`` only in a dry run's report."""

    event_id: str
    seat_map_id: str
    from_version: int
    to_version: int
    dry_run: bool
    sequence: int  # the change-stream entry of the move (a dry run: the stream's last)
    seats_moved: int  # occupied seats (held, sold, blocked, not for sale) given their new ordinal
    holds: int  # live holds with seats, rewritten
    orders: int  # orders whose tickets' seats changed ordinal
    tickets: int
    mapped_explicitly: int
    mapped_by_id: int
    seats_without_target: int  # seats of the current version with none (lost only if occupied)
    lost_seats: dict[str, str] = field(default_factory=dict)  # seat id -> state (dry run)
    lost_areas: dict[str, str] = field(default_factory=dict)  # area -> why (dry run)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lost(current: LoadedSeatMap, flat_seats: Any, flat_areas: Any) -> SeatsLost:
    placed = current.index.placed
    seats: dict[str, str] = {}
    for i in range(0, len(flat_seats), 2):
        o = int(flat_seats[i])
        name = placed[o].seat.id if 0 <= o < len(placed) else f"#{o}"
        seats[name] = _text(flat_seats[i + 1])
    areas: dict[str, str] = {}
    for i in range(0, len(flat_areas), 3):
        places, capacity = int(flat_areas[i + 1]), int(flat_areas[i + 2])
        areas[_text(flat_areas[i])] = (
            f"{places} place(s) held or sold; not in the target version"
            if capacity < 0
            else f"{places} place(s) held or sold; capacity {capacity} in the target version"
        )
    return SeatsLost(dict(sorted(seats.items())), areas)


class SeatMapMoves:
    """Moves events between versions of their seat map; one script per move."""

    def __init__(
        self,
        events: EventStore,
        seatmaps: SeatMapStore,
        scripts: ScriptRegistry,
        on_moved: Callable[[str], None] | None = None,
        has_channels: Callable[[str], Awaitable[bool]] | None = None,
        chunks: MoveChunks | None = None,
    ) -> None:
        self.chunks = chunks or MoveChunks()
        self._has_channels = has_channels
        self._events = events
        self._seatmaps = seatmaps
        self._scripts = scripts
        self._on_moved = on_moved  # this process drops the event at once (others: by its stream)

    async def plan(
        self, tenant_id: str, event_id: str, to_version: int, explicit: Mapping[str, str]
    ) -> tuple[EventRef, LoadedSeatMap, LoadedSeatMap, SeatMapping]:
        """The event, its current and target seat maps and the mapping (nothing written)."""
        ref = await self._events.ref(tenant_id, event_id)
        if keys.SEASON_SEPARATOR in event_id:
            # a season's events share one version, so that a seat is the same ordinal in each
            # (season_hold.lua takes it across them); a move of one would break that
            raise PreconditionFailed(
                f"event {event_id} is part of a season: its events share one seat-map version "
                "and cannot move one by one",
                subject=event_id,
            )
        if self._has_channels is not None and await self._has_channels(event_id):
            # channel allocations are kept by ordinal (holds/channels.py) and remap.lua does not
            # rewrite them
            raise PreconditionFailed(
                f"event {event_id} has sales channels: their allocations name seats of this "
                "version, so it cannot move to another",
                subject=event_id,
            )
        if to_version < 1:
            raise InvalidRequest("seat_map_version", "required: a version of the event's seat map")
        if to_version == ref.seat_map_version:
            raise InvalidRequest("seat_map_version", f"the event is already on version {to_version}")
        target = await self._seatmaps.load(tenant_id, ref.seat_map_id, to_version)
        if target.version.state != "published":
            raise PreconditionFailed(
                f"seat map {ref.seat_map_id} version {to_version} is not published", subject=ref.seat_map_id
            )
        current = await self._seatmaps.load(tenant_id, ref.seat_map_id, ref.seat_map_version)
        try:
            mapping = derive(
                [p.seat.id for p in current.index.placed], [p.seat.id for p in target.index.placed], explicit
            )
        except InvalidMapping as exc:
            raise InvalidRequest(exc.field, exc.reason) from exc
        return ref, current, target, mapping

    async def move(
        self,
        tenant_id: str,
        event_id: str,
        to_version: int,
        explicit: Mapping[str, str] | None = None,
        *,
        dry_run: bool = False,
        at_once: bool = False,
    ) -> MoveReport:
        """Move the event (``dry_run``: report what would move and be lost, change nothing).

        Raises SeatsLost naming every occupied seat and GA area without a place in the
        target version (not in a dry run: its report lists them), Conflict when the event
        moved meanwhile (retry), EventMoving when another move holds it (retry in a moment),
        NotFound for another organizer's event or an unknown version. ``at_once``: in one
        script, as before moves were cut in chunks (the reference the tests compare with).
        """
        ref, current, target, mapping = await self.plan(tenant_id, event_id, to_version, explicit or {})
        ga: list[str | int] = [len(target.seatmap.ga_areas)]
        for area in target.seatmap.ga_areas:
            ga += [area.id, area.capacity, area.category]
        if dry_run or at_once:
            args: list[str | int] = [
                ref.seat_map_version,
                to_version,
                1 if dry_run else 0,
                len(mapping.targets),
            ]
            args += [*mapping.targets, *ga]
            reply = await self._scripts.remap.replicated(keys.event_keys(event_id), args)
        else:
            reply = await self._in_steps(event_id, ref.seat_map_version, to_version, mapping.targets, ga)
        report = MoveReport(
            event_id=event_id,
            seat_map_id=ref.seat_map_id,
            from_version=ref.seat_map_version,
            to_version=to_version,
            dry_run=dry_run,
            sequence=0,
            seats_moved=0,
            holds=0,
            orders=0,
            tickets=0,
            mapped_explicitly=mapping.explicit,
            mapped_by_id=mapping.derived,
            seats_without_target=sum(1 for t in mapping.targets if t == NO_TARGET),
        )
        match reply:
            case [Reply.OK, seq, seats, holds, orders, tickets, _dry]:
                if not dry_run and self._on_moved is not None:
                    self._on_moved(event_id)
                return MoveReport(
                    **{
                        **report.__dict__,
                        "sequence": int(seq),
                        "seats_moved": int(seats),
                        "holds": int(holds),
                        "orders": int(orders),
                        "tickets": int(tickets),
                    }
                )
            case [Reply.SEATS_LOST, flat_seats, flat_areas]:
                lost = _lost(current, flat_seats, flat_areas)
                if not dry_run:
                    raise lost
                return MoveReport(**{**report.__dict__, "lost_seats": lost.seats, "lost_areas": lost.areas})
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", event_id)
            case [Reply.LAYOUT_CHANGED, now]:
                raise Conflict(f"event {event_id} moved to seat-map version {_text(now)} meanwhile; retry")
            case [Reply.EVENT_MOVING, wait_ms]:
                raise EventMoving(event_id, int(wait_ms))
            case [Reply.MOVE_HAS_CHANNELS]:
                raise PreconditionFailed(
                    f"event {event_id} has sales channels since the move began: it cannot move",
                    subject=event_id,
                )
        raise StoreError(f"remap returned an unknown result {reply!r}")

    async def _in_steps(
        self, event_id: str, from_version: int, to_version: int, targets: tuple[int, ...], ga: list[str | int]
    ) -> Any:
        """Begin (or resume) the move and run its steps to the end; the last step's reply,
        or the refusal that ended it. A lapsed lease (this mover was too slow, or another
        mover died) begins again, a few times."""
        chunks = self.chunks
        digest = hashlib.sha256(
            f"{from_version}|{to_version}|{','.join(map(str, targets))}|{'|'.join(map(str, ga))}".encode()
        ).hexdigest()
        move_keys = keys.move_script_keys(event_id)
        for _ in range(chunks.restarts + 1):
            reply = await self._scripts.remap_begin(
                move_keys, [from_version, to_version, digest, len(targets), chunks.lease_ms]
            )
            while isinstance(reply, list) and reply and reply[0] == Reply.MOVE_STEP:
                args: list[str | int] = [digest, chunks.seats, chunks.records, chunks.lease_ms]
                if _text(reply[1]) == "seats":
                    start = int(reply[2])
                    part = targets[start : start + chunks.seats]
                    args += [start, len(part), *part]
                else:
                    args += [0, 0]
                reply = await self._scripts.remap_step.replicated(move_keys, [*args, *ga])
            if reply != [Reply.MOVE_LAPSED]:
                return reply
        raise Conflict(f"the move of event {event_id} kept losing its lease; retry")
