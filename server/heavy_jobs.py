"""The organizer work that runs in the heavy-work processes (``server/heavy.py``).

Each job is a plain function of plain arguments, run in a pool process: it
imports no gRPC and touches no socket. Results that would be costly to pickle
(a validation report of a 200k-seat map, the encoded map) come back as one
msgspec-encoded ``bytes`` (a tagged union, decoded once in the server); errors
travel as values, not exceptions (our exceptions do not pickle with their
fields). Rendering keeps a few decoded indexes per process, by content hash,
so a second render of the same version skips the decode and index build.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from cachetools import LRUCache

from holds.records import SeatMapStats
from holds.seatmaps import PreparedSeatMap, prepare, stats_of
from seatmap.errors import SeatMapDecodeError
from seatmap.formats import Format, parse
from seatmap.index import SeatIndex
from seatmap.model import msgpack_decoder
from seatmap.validation import Violation, validate

T = TypeVar("T")
# The pool's processes yield the CPU to the server's: on a busy machine the kernel
# runs the sales path first and organizer work with what is left.
NICENESS = 10
RENDER_CACHE_SIZE = 4  # decoded indexes per pool process (a stadium's is ~100 MB)


class Undecodable(msgspec.Struct, frozen=True, tag="undecodable"):
    """Not JSON, or JSON that does not fit the schema (SeatMapDecodeError)."""

    message: str
    path: str


class Checked(msgspec.Struct, frozen=True, tag="checked"):
    """ValidateSeatMap's answer: the report and the map's counts."""

    violations: list[Violation]
    total: int
    stats: SeatMapStats


class Invalid(msgspec.Struct, frozen=True, tag="invalid"):
    """An upload that breaks the rules (SeatMapInvalid)."""

    violations: list[Violation]
    total: int


class Prepared(msgspec.Struct, frozen=True, tag="prepared"):
    """An upload that passed, encoded for the catalogue."""

    seatmap: PreparedSeatMap


ValidateOutcome = Undecodable | Checked
UploadOutcome = Undecodable | Invalid | Prepared

_encoder = msgspec.msgpack.Encoder()
validate_decoder = msgspec.msgpack.Decoder(ValidateOutcome)
upload_decoder = msgspec.msgpack.Decoder(UploadOutcome)


def start_worker() -> None:
    """Run once in each pool process before its first job."""
    with contextlib.suppress(OSError):
        os.nice(NICENESS)


def validate_job(content: bytes, fmt: Format) -> bytes:
    """Decode and validate an upload (ValidateSeatMap): an encoded ValidateOutcome."""
    try:
        seatmap = parse(content, fmt)
    except SeatMapDecodeError as exc:
        return _encoder.encode(Undecodable(exc.message, exc.path))
    report = validate(seatmap)
    return _encoder.encode(Checked(report.violations, report.total, stats_of(seatmap)))


def upload_job(content: bytes, fmt: Format) -> bytes:
    """Decode, validate and encode an upload (UploadSeatMap): an encoded UploadOutcome."""
    try:
        seatmap = parse(content, fmt)
    except SeatMapDecodeError as exc:
        return _encoder.encode(Undecodable(exc.message, exc.path))
    report = validate(seatmap)
    if not report.ok:
        return _encoder.encode(Invalid(report.violations, report.total))
    return _encoder.encode(Prepared(prepare(seatmap)))


# this process's decoded indexes (a pool process serves renders one at a time)
_indexes: LRUCache[str, SeatIndex] = LRUCache(RENDER_CACHE_SIZE)


def render_job(
    render: Callable[..., T],
    content_sha256: str,
    content: bytes | None,
    status: dict[int, str] | None,
    options: dict[str, Any],
) -> T | None:
    """``render(index, status, **options)`` of the version whose native JSON hashes
    to ``content_sha256``; None when this process does not have that index and
    ``content`` (its msgpack) was not sent: the caller sends it and asks again."""
    index = _indexes.get(content_sha256)
    if index is None:
        if content is None:
            return None
        index = _indexes[content_sha256] = SeatIndex(msgpack_decoder.decode(content))
    return render(index, status, **options)
