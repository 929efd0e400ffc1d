"""Errors of the inventory and catalogue stores.

    StoreError
    ├── StoreUnavailable        Redis unreachable, timed out, or failed mid-call (retryable)
    ├── StoreFault              Redis refused a command (a reply error): a bug, not an outage
    ├── WatchEnded              a watch stream ended on this process; resume elsewhere
    ├── FeedCursorExpired       a feed cursor older than the retention (names the oldest one)
    ├── EventMoving             the event is moving to another seat-map version (retry after a moment)
    ├── NotFound                a named resource does not exist (for this tenant)
    ├── AlreadyExists           a create collided with an existing id
    ├── InvalidRequest          an argument is wrong; ``field`` names it
    ├── PlanLimitExceeded       a limit of the organizer's plan would be exceeded (names it and its value)
    └── Conflict                the state forbids the change right now
        ├── PreconditionFailed  needs a different state first (e.g. publish before use)
        │   └── SeatsLost       a seat-map move would lose occupied seats or GA places (every one named)
        ├── SeatMapMoved        the event moved to another seat-map version since it was loaded (retry)
        └── SeatsUnavailable    some seats (named) are not free

Each Lua wrapper maps its script's result codes to exactly one of these and
raises on an unknown code; driver errors are wrapped once, in ``redis_client``.
"""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(Exception):
    """Base of every error the stores raise."""


class StoreUnavailable(StoreError):
    """Redis could not serve the call; the change may not have been applied."""


class StoreFault(StoreError):
    """Redis answered a command with an error reply (a bad argument, a script
    error, a refused command): retrying the same call gets the same answer, so
    it is never reported as an outage. The message is for the server's log."""


class WatchEnded(StoreError):
    """A watch stream ended on this server process (its event left memory, or the
    server is stopping); the client resumes from its last sequence."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"watch ended ({reason}); resume with after_sequence set to the last sequence seen")


class FeedCursorExpired(StoreError):
    """Entries after the cursor were trimmed by the feed's retention (holds/feed/)."""

    def __init__(self, oldest_cursor: str) -> None:
        super().__init__(
            "the cursor is older than the feed's retention: entries after it were trimmed; "
            f"resume from the oldest cursor still available: {oldest_cursor!r}"
        )
        self.oldest_cursor = oldest_cursor


class NotFound(StoreError):
    def __init__(self, resource: str, resource_id: str) -> None:
        super().__init__(f"{resource} {resource_id!r} not found")
        self.resource = resource
        self.resource_id = resource_id


class AlreadyExists(StoreError):
    def __init__(self, resource: str, resource_id: str) -> None:
        super().__init__(f"{resource} {resource_id!r} already exists")
        self.resource = resource
        self.resource_id = resource_id


class InvalidRequest(StoreError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message


class Conflict(StoreError):
    """The current state forbids the change (ABORTED-style: retry may succeed)."""


class PreconditionFailed(Conflict):
    """The system is not in the state the call needs (FAILED_PRECONDITION)."""

    def __init__(self, message: str, *, subject: str = "") -> None:
        super().__init__(message)
        self.subject = subject


class SeatsUnavailable(Conflict):
    def __init__(self, seat_ids: Sequence[str], message: str = "") -> None:
        shown = ", ".join(seat_ids[:20]) + (f" and {len(seat_ids) - 20} more" if len(seat_ids) > 20 else "")
        super().__init__(message or f"seats not available: {shown}")
        self.seat_ids = list(seat_ids)


class SeatsDistanced(Conflict):
    """Seats within the event's minimum distance of a group held or sold to someone else."""

    def __init__(self, seat_ids: Sequence[str]) -> None:
        shown = ", ".join(seat_ids[:20]) + (f" and {len(seat_ids) - 20} more" if len(seat_ids) > 20 else "")
        super().__init__(f"seats within the event's minimum distance of another group: {shown}")
        self.seat_ids = list(seat_ids)


class HoldExpired(PreconditionFailed):
    """The hold's lease ran out (Redis clock); its seats may be someone else's now."""


class GeneralAdmissionUnavailable(Conflict):
    def __init__(self, area: str, available: int) -> None:
        super().__init__(f"general admission area {area!r} has only {max(available, 0)} place(s) left")
        self.area = area
        self.available = max(available, 0)


class LimitExceeded(StoreError):
    """A configured quota (seats per hold, per buyer) would be exceeded."""

    def __init__(self, limit: str, maximum: int) -> None:
        super().__init__(f"at most {maximum} seat(s) per {limit}")
        self.limit = limit
        self.maximum = maximum


class PlanLimitExceeded(StoreError):
    """A limit of the organizer's plan (events per month, ...) would be exceeded."""

    def __init__(self, limit: str, value: int, usage: int) -> None:
        super().__init__(f"the plan's limit {limit} is {value} and {usage} are used")
        self.limit = limit
        self.value = value
        self.usage = usage


class SeatsInWrongState(PreconditionFailed):
    """A conditional status change found seats outside the allowed previous states."""

    def __init__(self, states: dict[str, str]) -> None:
        shown = ", ".join(f"{seat} is {state}" for seat, state in list(states.items())[:20])
        super().__init__(f"seats not in an allowed state: {shown}")
        self.states = states


class EventMoving(StoreError):
    """The event is moving to another seat-map version in chunks (holds/remap.py): its sales
    and changes wait a moment, nothing was changed; retry after ``retry_after_s``."""

    def __init__(self, event_id: str, retry_after_ms: int) -> None:
        super().__init__(f"event {event_id} is moving to another seat-map version; retry in a moment")
        self.event_id = event_id
        self.retry_after_s = max(retry_after_ms, 1) / 1000


class SeatMapMoved(Conflict):
    """The event moved to another seat-map version after this process loaded it: the
    call's seats were named in the old version, nothing was changed; the process has
    dropped what it cached and the same call, retried, runs on the new version."""

    def __init__(self, event_id: str, version: int) -> None:
        super().__init__(f"event {event_id} moved to seat-map version {version} meanwhile; retry")
        self.event_id = event_id
        self.version = version


class SeatsLost(PreconditionFailed):
    """Moving an event to another seat-map version would lose these occupied seats
    (seat id -> state: held, sold, blocked, not_for_sale) and GA areas (area -> why)."""

    def __init__(self, seats: dict[str, str], areas: dict[str, str]) -> None:
        named = [f"{seat} ({state})" for seat, state in seats.items()] + [
            f"area {area} ({why})" for area, why in areas.items()
        ]
        shown = ", ".join(named[:20]) + (f" and {len(named) - 20} more" if len(named) > 20 else "")
        super().__init__(f"the move would lose {len(named)} occupied place(s): {shown}", subject="mapping")
        self.seats = seats
        self.areas = areas


def ticket_exchanging(ticket: object, exchange_id: object) -> PreconditionFailed:
    """A ticket locked by a cross-event exchange in flight (holds/exchanges.py): the
    scripts' ``TICKET_EXCHANGING`` reply, for every script that refuses such a ticket."""
    t, x = (v.decode() if isinstance(v, bytes) else str(v) for v in (ticket, exchange_id))
    return PreconditionFailed(
        f"ticket {t} is being exchanged (exchange {x} in flight): try again once it has completed",
        subject=t,
    )
