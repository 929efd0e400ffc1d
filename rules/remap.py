"""Moving an event to another version of its seat map: which old seat becomes which new one.

Pure: seat ids in canonical order in, one target ordinal per old ordinal out
(docs/selling.md, "Moving an event to a new seat-map version"). The organizer
may name targets (old seat id -> new seat id); every other old seat goes to the
new seat with its own id, when there is one and no named target claims it.
Named targets win: an old seat whose own id an explicit mapping gave to another
old seat has no target (it is lost if occupied; the store decides which seats
are occupied). General-admission areas move by id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rules.errors import RulesError

NO_TARGET = -1
MAX_EXPLICIT = 100_000  # explicit pairs per move (a stadium has fewer seats)


class InvalidMapping(RulesError):
    """An explicit mapping at fault: ``field`` names the entry, ``reason`` what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class SeatMapping:
    """``targets[o]``: the new ordinal of old ordinal ``o``, or NO_TARGET."""

    targets: tuple[int, ...]
    explicit: int  # old seats moved by the organizer's mapping
    derived: int  # old seats moved to the new seat with their id

    def target(self, ordinal: int) -> int:
        return self.targets[ordinal] if 0 <= ordinal < len(self.targets) else NO_TARGET

    @property
    def unmapped(self) -> list[int]:
        return [o for o, t in enumerate(self.targets) if t == NO_TARGET]


def derive(old_ids: Sequence[str], new_ids: Sequence[str], explicit: Mapping[str, str]) -> SeatMapping:
    """The full old-ordinal -> new-ordinal mapping; ``explicit`` maps old seat ids to new ones.

    Raises :class:`InvalidMapping` naming the entry when an explicit pair names a seat
    that is not in its version, or two old seats are mapped to one new seat.
    """
    if len(explicit) > MAX_EXPLICIT:
        raise InvalidMapping("mapping", f"at most {MAX_EXPLICIT} pairs")
    old_index = {seat_id: o for o, seat_id in enumerate(old_ids)}
    new_index = {seat_id: n for n, seat_id in enumerate(new_ids)}
    targets = [NO_TARGET] * len(old_ids)
    claimed: dict[int, str] = {}  # new ordinal -> the old seat id moved there
    for old_id, new_id in sorted(explicit.items()):
        if old_id not in old_index:
            raise InvalidMapping(f"mapping[{old_id}]", "no such seat in the event's current version")
        if new_id not in new_index:
            raise InvalidMapping(f"mapping[{old_id}]", f"no seat {new_id!r} in the target version")
        n = new_index[new_id]
        if n in claimed:
            raise InvalidMapping(
                f"mapping[{old_id}]", f"seat {new_id!r} is also the target of {claimed[n]!r}"
            )
        claimed[n] = old_id
        targets[old_index[old_id]] = n
    derived = 0
    for o, seat_id in enumerate(old_ids):
        if seat_id in explicit:
            continue
        n = new_index.get(seat_id, NO_TARGET)
        if n != NO_TARGET and n not in claimed:
            targets[o] = n
            claimed[n] = seat_id
            derived += 1
    return SeatMapping(tuple(targets), len(explicit), derived)
