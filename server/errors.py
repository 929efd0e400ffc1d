"""The one place domain errors become gRPC statuses with rich details.

Following gRPC's guidance: INVALID_ARGUMENT when the request itself is wrong
(fix the request), FAILED_PRECONDITION when the system's state forbids it
(e.g. seats taken; do not retry as is), ABORTED for concurrency conflicts a
retry may resolve, UNAVAILABLE when Redis cannot serve (retry with backoff),
INTERNAL when Redis refused a command (an error reply is a bug: a retry gets
the same answer, so it must not look like an outage).
Details use ``google.rpc`` BadRequest, PreconditionFailure, ResourceInfo and
ErrorInfo so clients can name the field or seat at fault programmatically.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from holds import errors as store
from seatmap import errors as seatmap_errors
from seatmap import index as seatmap_index
from seatmap import render as seatmap_render
from server.admission import Overloaded
from server.auth import PermissionDenied, Unauthenticated

DOMAIN = "seatwise.dev"
MAX_DETAIL_ITEMS = 200


def _status(code: int, message: str, *details: Message) -> status_pb2.Status:
    packed = []
    for detail in details:
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    return status_pb2.Status(code=code, message=message, details=packed)


def _bad_request(*violations: tuple[str, str]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations[:MAX_DETAIL_ITEMS]
        ]
    )


def _precondition(kind: str, subjects: Iterable[tuple[str, str]]) -> error_details_pb2.PreconditionFailure:
    """One violation per subject (e.g. per seat), capped at MAX_DETAIL_ITEMS."""
    return error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject=subject, description=description
            )
            for subject, description in itertools.islice(subjects, MAX_DETAIL_ITEMS)
        ]
    )


def _error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)


def to_status(exc: BaseException) -> status_pb2.Status | None:  # noqa: C901 - one flat dispatch table
    """The status for a known error, or None for an unexpected one (INTERNAL)."""
    match exc:
        case Overloaded():
            delay = duration_pb2.Duration()
            delay.FromMilliseconds(int(exc.retry_after_s * 1000))
            return _status(
                code_pb2.RESOURCE_EXHAUSTED, str(exc), error_details_pb2.RetryInfo(retry_delay=delay)
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
            )
        case store.SeatsInWrongState():
            return _status(
                code_pb2.FAILED_PRECONDITION,
                str(exc),
                _precondition(
                    "SEAT_STATE", ((seat, f"seat is {state}") for seat, state in exc.states.items())
                ),
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
        case store.GeneralAdmissionUnavailable():
            return _status(
                code_pb2.ABORTED,
                str(exc),
                error_details_pb2.ResourceInfo(
                    resource_type="general admission area", resource_name=exc.area
                ),
                _error_info("GA_UNAVAILABLE", available=str(exc.available)),
            )
        case store.PreconditionFailed():
            return _status(
                code_pb2.FAILED_PRECONDITION, str(exc), _precondition("STATE", [(exc.subject, str(exc))])
            )
        case store.Conflict():
            return _status(code_pb2.ABORTED, str(exc))
        case store.WatchEnded():
            return _status(code_pb2.UNAVAILABLE, str(exc))
        case store.StoreUnavailable():
            return _status(code_pb2.UNAVAILABLE, "inventory store unavailable; retry with backoff")
        case store.StoreFault():  # a reply error: a bug, not an outage (the wrapper logs it)
            return _status(code_pb2.INTERNAL, "internal error; it has been logged")
    return None
