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


def sales_chart_job(
    timeline: list[tuple[int, int, int]], title: str, width: int = 1200, height: int = 600
) -> bytes:
    """Tickets sold per minute as a PNG (matplotlib's Agg backend, no display): bars per
    minute and the running total on a second axis. ``timeline`` is ``(minute start ms,
    tickets, orders)`` per minute (rules.reports.SalesTally.timeline)."""
    from datetime import UTC, datetime
    from io import BytesIO

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_subplot()
    if timeline:
        times = mdates.date2num([datetime.fromtimestamp(m / 1000, UTC) for m, _, _ in timeline])  # type: ignore[no-untyped-call]
        tickets = [t for _, t, _ in timeline]
        running, total = [], 0
        for t in tickets:
            total += t
            running.append(total)
        ax.bar(times, tickets, width=1 / 1440 * 0.9, align="edge", color="#1f77b4", label="tickets / minute")
        ax.set_ylabel("tickets per minute")
        ax2 = ax.twinx()
        ax2.plot(times, running, color="#d62728", linewidth=2, label="tickets sold (total)")
        ax2.set_ylabel("tickets sold (total)")
        ax2.set_ylim(bottom=0)
        peak = max(tickets)
        ax.set_title(f"{title}: {total:,} tickets, peak {peak:,}/minute")
        ax.xaxis_date(tz=UTC)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
        fig.autofmt_xdate()
        ax.set_xlabel("time (UTC)")
    else:
        ax.set_title(f"{title}: no sales yet")
        ax.set_axis_off()
    out = BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
