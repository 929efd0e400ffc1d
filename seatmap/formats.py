"""Decoding uploads by format: the native JSON, or pretix's seating-plan JSON."""

from __future__ import annotations

from typing import Literal

import msgspec

from seatmap.errors import SeatMapDecodeError, SeatMapInvalid
from seatmap.limits import DEFAULT_LIMITS, Limits
from seatmap.model import SeatMap, json_decoder
from seatmap.validation import Violation, validate

Format = Literal["native", "pretix"]


def check_size(data: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    """The byte cap, checked before any parsing."""
    if len(data) > limits.max_upload_bytes:
        message = f"the upload is {len(data)} bytes; the limit is {limits.max_upload_bytes} bytes"
        raise SeatMapInvalid([Violation("upload_too_large", "", message)], 1)


def parse_native(data: bytes, limits: Limits = DEFAULT_LIMITS) -> SeatMap:
    """Decode native JSON (schema only, no geometry rules): SeatMapDecodeError on failure."""
    check_size(data, limits)
    try:
        return json_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise SeatMapDecodeError(str(exc), _msgspec_path(str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise SeatMapDecodeError(str(exc), "$") from exc


def _msgspec_path(message: str) -> str:
    # msgspec ends schema errors with " - at `$.sections[0].id`".
    marker = " - at `"
    at = message.rfind(marker)
    if at < 0 or not message.endswith("`"):
        return "$"
    return message[at + len(marker) : -1]


def parse(data: bytes, fmt: Format, limits: Limits = DEFAULT_LIMITS) -> SeatMap:
    if fmt == "pretix":
        from seatmap.pretix import from_pretix

        check_size(data, limits)
        return from_pretix(data)
    return parse_native(data, limits)


def parse_and_validate(data: bytes, fmt: Format = "native", limits: Limits = DEFAULT_LIMITS) -> SeatMap:
    """Decode and enforce every rule: SeatMapDecodeError or SeatMapInvalid on failure."""
    seatmap = parse(data, fmt, limits)
    report = validate(seatmap, limits)
    if not report.ok:
        raise SeatMapInvalid(report.violations, report.total)
    return seatmap
