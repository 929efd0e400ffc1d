"""The one place domain errors become gRPC statuses with rich details.

Following gRPC's guidance: INVALID_ARGUMENT when the request itself is wrong
(fix the request), FAILED_PRECONDITION when the system's state forbids it
(e.g. seats taken; do not retry as is), ABORTED for concurrency conflicts a
retry may resolve, UNAVAILABLE when Redis cannot serve (retry with backoff),
INTERNAL when Redis refused a command (an error reply is a bug: a retry gets
the same answer, so it must not look like an outage).
Details use ``google.rpc`` BadRequest, PreconditionFailure, ResourceInfo and
ErrorInfo so clients can name the field or seat at fault programmatically; a
status made while a call is served also carries a RequestInfo with the call's
request id (``server/request_ids.py``), the id on the server's log lines.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sized
from typing import Any

from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from holds import errors as store
from seatmap import errors as seatmap_errors
from seatmap import index as seatmap_index
from seatmap import render as seatmap_render
from server.admission import Overloaded
from server.auth import PermissionDenied, Unauthenticated
from server.heavy import HeavyLimitReached
from server.ratelimit import RateLimited
from server.request_ids import current as current_request_id

DOMAIN = "seatwise.dev"

# Every error must reach a client with default settings. A default gRPC client
# accepts 8 KiB of trailers (above that it drops replies at random, above 16 KiB
# always, as RESOURCE_EXHAUSTED "received metadata size exceeds ..."). An error's
# trailers carry the message twice: ``grpc-message`` (percent-encoded: up to 3
# bytes per byte) and inside ``grpc-status-details-bin`` (the serialised Status,
# base64: 4/3). With a 400-byte message and a 4,096-byte Status that is at most
# 1,200 + 5,464 bytes plus header names: under 7 KiB, whatever the details hold.
MAX_MESSAGE_BYTES = 400
MAX_STATUS_BYTES = 4096
# Each string of a detail (a field, a seat id, a description), echoed from the
# request or not, is cut to this many bytes (an ellipsis marks the cut).
MAX_TEXT_BYTES = 256
# Items built per list detail at most (bounds the work; fewer fit in the budget).
MAX_DETAIL_ITEMS = 100
TRUNCATED = "DETAILS_TRUNCATED"  # the ErrorInfo reason when details were left out
_ELLIPSIS = "\u2026"
_TRUNCATION_RESERVE = 96  # room kept for the DETAILS_TRUNCATED ErrorInfo


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character boundary, marked)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - len(_ELLIPSIS.encode())].decode(errors="ignore") + _ELLIPSIS


def _clip_strings(message: Message) -> None:
    """Cut every string of ``message`` and of the messages in it to MAX_TEXT_BYTES."""
    for field, value in message.ListFields():
        if field.type == field.TYPE_STRING:
            if field.is_repeated:
                value[:] = [clip(v, MAX_TEXT_BYTES) for v in value]
            else:
                setattr(message, field.name, clip(value, MAX_TEXT_BYTES))
        elif field.type == field.TYPE_MESSAGE:
            if _is_map(field):  # e.g. ErrorInfo.metadata (string values)
                for key in list(value):
                    if isinstance(value[key], str):
                        value[key] = clip(value[key], MAX_TEXT_BYTES)
            elif field.is_repeated:
                for item in value:
                    _clip_strings(item)
            else:
                _clip_strings(value)


def _is_map(field: Any) -> bool:  # a FieldDescriptor (protobuf has two implementations)
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _varint_size(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _list_field(detail: Message) -> str | None:
    """The repeated field of a list detail (BadRequest, PreconditionFailure, QuotaFailure)."""
    for field in detail.DESCRIPTOR.fields:
        if field.is_repeated and field.type == field.TYPE_MESSAGE and not _is_map(field):
            return str(field.name)
    return None


def _pack(detail: Message) -> any_pb2.Any:
    wrapped = any_pb2.Any()
    wrapped.Pack(detail)
    return wrapped


def _status(code: int, message: str, *details: Message, omitted: int = 0) -> status_pb2.Status:
    """A Status that fits MAX_STATUS_BYTES: the message cut, every string of every
    detail cut, list details (violations) trimmed to the room the other details
    leave, the number of items left out (plus ``omitted``, those never built) in
    an ErrorInfo ``DETAILS_TRUNCATED`` with ``omitted`` in its metadata."""
    status = status_pb2.Status(code=code, message=clip(message, MAX_MESSAGE_BYTES))
    request_id = current_request_id()
    if request_id:  # a fixed detail, counted in the budget like the others
        details = (*details, error_details_pb2.RequestInfo(request_id=request_id))
    for detail in details:
        _clip_strings(detail)
    room = MAX_STATUS_BYTES - status.ByteSize() - _TRUNCATION_RESERVE
    room -= sum(_packed_size(d) for d in details if _list_field(d) is None)
    for detail in details:
        name = _list_field(detail)
        if name is None:
            continue
        items = getattr(detail, name)
        used = _packed_size(type(detail)())
        keep = 0
        for item in items:
            size = item.ByteSize()
            used += 1 + _varint_size(size) + size
            if used > room:
                break
            keep += 1
        omitted += len(items) - keep
        del items[keep:]
        room -= _packed_size(detail)
    status.details.extend(_pack(d) for d in details)
    while status.ByteSize() > MAX_STATUS_BYTES - _TRUNCATION_RESERVE and status.details:
        del status.details[-1]  # only when the fixed details alone are too big: never today
        omitted += 1
    if omitted:
        status.details.append(_pack(_error_info(TRUNCATED, omitted=str(omitted))))
    return status


def _packed_size(detail: Message) -> int:
    """What ``detail`` adds to a Status: packed in an Any, with its tag and length."""
    size = _pack(detail).ByteSize() + 2  # an Any's type_url varies in length: 2 bytes of slack
    return 1 + _varint_size(size) + size


def _bad_request(*violations: tuple[str, str]) -> error_details_pb2.BadRequest:
    """One violation per (field, description), the first MAX_DETAIL_ITEMS of them."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations[:MAX_DETAIL_ITEMS]
        ]
    )


def _beyond(items: Sized) -> int:
    """How many of ``items`` a list detail does not build (past MAX_DETAIL_ITEMS)."""
    return max(len(items) - MAX_DETAIL_ITEMS, 0)


def _precondition(kind: str, subjects: Iterable[tuple[str, str]]) -> error_details_pb2.PreconditionFailure:
    """One violation per subject (e.g. per seat), the first MAX_DETAIL_ITEMS of them."""
    return error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject=subject, description=description
            )
            for subject, description in itertools.islice(subjects, MAX_DETAIL_ITEMS)
        ]
    )


def _duration(seconds: float) -> duration_pb2.Duration:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(int(seconds * 1000))
    return delay


def _error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)


def internal() -> status_pb2.Status:
    """The status of an unexpected error (its traceback is logged with the request id)."""
    return _status(code_pb2.INTERNAL, "internal error; it has been logged")


DISTANCED = "seat is within the event's minimum distance of another group"


def to_status(exc: BaseException) -> status_pb2.Status | None:  # noqa: C901 - one flat dispatch table
    """The status for a known error, or None for an unexpected one (INTERNAL)."""
    match exc:
        case HeavyLimitReached():
            return _status(
                code_pb2.RESOURCE_EXHAUSTED,
                str(exc),
                error_details_pb2.RetryInfo(retry_delay=_duration(exc.retry_after_s)),
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject="heavy_calls_per_tenant", description=f"at most {exc.limit} in flight"
                        )
                    ]
                ),
            )
        case RateLimited():
            return _status(
                code_pb2.RESOURCE_EXHAUSTED,
                str(exc),
                error_details_pb2.RetryInfo(retry_delay=_duration(exc.retry_after_s)),
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(subject=exc.limit, description=str(exc.item))
                    ]
                ),
                _error_info("RATE_LIMITED", limit=exc.limit),
            )
        case Overloaded():
            return _status(
                code_pb2.RESOURCE_EXHAUSTED,
                str(exc),
                error_details_pb2.RetryInfo(retry_delay=_duration(exc.retry_after_s)),
            )
        case Unauthenticated():
            return _status(code_pb2.UNAUTHENTICATED, str(exc), _error_info("UNAUTHENTICATED"))
        case PermissionDenied():
            return _status(code_pb2.PERMISSION_DENIED, str(exc), _error_info("PERMISSION_DENIED"))
        case seatmap_errors.SeatMapDecodeError():
            return _status(
                code_pb2.INVALID_ARGUMENT,
                f"seat map could not be decoded: {exc}",
                _bad_request(("content" + exc.path.removeprefix("$"), str(exc))),
                _error_info("SEAT_MAP_UNDECODABLE"),
            )
        case seatmap_errors.SeatMapInvalid():
            first = exc.violations[0].message if exc.violations else ""
            return _status(
                code_pb2.INVALID_ARGUMENT,
                f"seat map has {exc.total} violation(s); first: {first}",
                _bad_request(*((f"content.{v.path}", f"{v.code}: {v.message}") for v in exc.violations)),
                _error_info("SEAT_MAP_INVALID", total_violations=str(exc.total)),
                omitted=_beyond(exc.violations),
            )
        case seatmap_render.RenderUnavailable():
            return _status(code_pb2.UNIMPLEMENTED, str(exc))
        case seatmap_render.RenderError():
            return _status(code_pb2.INVALID_ARGUMENT, str(exc), _bad_request(("format", str(exc))))
        case seatmap_index.SeatIndexError():
            return _status(code_pb2.INVALID_ARGUMENT, str(exc), _bad_request(("query", str(exc))))
        case store.InvalidRequest():
            return _status(code_pb2.INVALID_ARGUMENT, str(exc), _bad_request((exc.field, exc.description)))
        case store.NotFound():
            return _status(
                code_pb2.NOT_FOUND,
                str(exc),
                error_details_pb2.ResourceInfo(resource_type=exc.resource, resource_name=exc.resource_id),
            )
        case store.AlreadyExists():
            return _status(
                code_pb2.ALREADY_EXISTS,
                str(exc),
                error_details_pb2.ResourceInfo(resource_type=exc.resource, resource_name=exc.resource_id),
            )
        case store.SeatsUnavailable():
            return _status(
                code_pb2.FAILED_PRECONDITION,
                str(exc),
                _precondition("SEAT_UNAVAILABLE", ((seat, "seat is not available") for seat in exc.seat_ids)),
                _error_info("SEATS_UNAVAILABLE", count=str(len(exc.seat_ids))),
                omitted=_beyond(exc.seat_ids),
            )
        case store.SeatsDistanced():
            return _status(
                code_pb2.FAILED_PRECONDITION,
                str(exc),
                _precondition(
                    "SEAT_DISTANCED",
                    (
                        (seat, "seat is within the event's minimum distance of another group")
                        for seat in exc.seat_ids
                    ),
                ),
                _error_info("SEATS_DISTANCED", count=str(len(exc.seat_ids))),
                omitted=_beyond(exc.seat_ids),
            )
        case store.SeatsInWrongState():
            return _status(
                code_pb2.FAILED_PRECONDITION,
                str(exc),
                _precondition(
                    "SEAT_STATE", ((seat, f"seat is {state}") for seat, state in exc.states.items())
                ),
                omitted=_beyond(exc.states),
            )
        case store.LimitExceeded():
            return _status(
                code_pb2.RESOURCE_EXHAUSTED,
                str(exc),
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=f"seats_per_{exc.limit}", description=str(exc)
                        )
                    ]
                ),
            )
        case store.PlanLimitExceeded():
            return _status(
                code_pb2.RESOURCE_EXHAUSTED,
                str(exc),
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(subject=exc.limit, description=str(exc))
                    ]
                ),
                _error_info("PLAN_LIMIT", limit=exc.limit, value=str(exc.value), usage=str(exc.usage)),
            )
        case store.GeneralAdmissionUnavailable():
            return _status(
                code_pb2.ABORTED,
                str(exc),
                error_details_pb2.ResourceInfo(
                    resource_type="general admission area", resource_name=exc.area
                ),
                _error_info("GA_UNAVAILABLE", available=str(exc.available)),
            )
        case store.SeatsLost():
            lost = [(seat, f"seat is {state} and has no target") for seat, state in exc.seats.items()]
            lost += [(f"ga:{area}", why) for area, why in exc.areas.items()]
            return _status(
                code_pb2.FAILED_PRECONDITION,
                str(exc),
                _precondition("SEAT_LOST", lost),
                _error_info("SEATS_LOST", seats=str(len(exc.seats)), areas=str(len(exc.areas))),
                omitted=_beyond(lost),
            )
        case store.PreconditionFailed():
            return _status(
                code_pb2.FAILED_PRECONDITION, str(exc), _precondition("STATE", [(exc.subject, str(exc))])
            )
        case store.Conflict():
            return _status(code_pb2.ABORTED, str(exc))
        case store.EventMoving():
            return _status(
                code_pb2.UNAVAILABLE,
                str(exc),
                error_details_pb2.RetryInfo(retry_delay=_duration(exc.retry_after_s)),
                _error_info("EVENT_MOVING", event_id=exc.event_id),
            )
        case store.WatchEnded():
            return _status(code_pb2.UNAVAILABLE, str(exc))
        case store.FeedCursorExpired():
            return _status(
                code_pb2.OUT_OF_RANGE,
                str(exc),
                _error_info("FEED_CURSOR_EXPIRED", oldest_cursor=exc.oldest_cursor),
            )
        case store.StoreUnavailable():
            return _status(code_pb2.UNAVAILABLE, "inventory store unavailable; retry with backoff")
        case store.StoreFault():  # a reply error: a bug, not an outage (the wrapper logs it)
            return _status(code_pb2.INTERNAL, "internal error; it has been logged")
    return None
