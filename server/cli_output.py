"""What the ``seatwise`` command prints: progress, aligned tables, JSON, and file errors.

Conventions: results go to stdout (machine-readable, ``--json`` on read commands);
progress, warnings and errors go to stderr, each on a line of its own. An error is one
line naming the file and the position in it (``theatre.json:3:14: ...`` or
``plan.json: $.zones[0].rows: ...``) and the command exits 1.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from seatmap.errors import SeatMapDecodeError, SeatMapInvalid

_BYTE_OFFSET = re.compile(r"\(byte (\d+)\)")


class CliError(click.ClickException):
    """A failure the user can act on: printed as ``Error: <message>``, exit status 1."""


@contextmanager
def step(label: str) -> Iterator[None]:
    """Progress for long work on stderr: a live spinner with the elapsed time on a terminal.

    The spinner is cleared before anything else is printed, so an error never shares its
    line; on success one line says how long it took.
    """
    console = Console(stderr=True)
    started = time.perf_counter()
    if console.is_terminal:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            progress.add_task(label, total=None)
            yield
    else:
        yield
    click.echo(f"{label}: done in {time.perf_counter() - started:.2f}s", err=True)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def read_input(path: Path) -> bytes:
    """The file's bytes; :class:`CliError` when it cannot be read or is empty."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise CliError(f"{path}: the file is empty")
    return data


def write_output(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise CliError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def decode_error(path: Path, data: bytes, exc: SeatMapDecodeError, fmt: str) -> CliError:
    """One line: the file, where in it (line:column, or the JSON path), what is wrong, a hint."""
    message = " ".join(exc.message.split())
    match = _BYTE_OFFSET.search(message)
    if message.endswith("Input data was truncated"):  # msgspec's words for JSON that stops early
        message = (
            message.removesuffix("Input data was truncated") + "the JSON ends early: is the file complete?"
        )
        where = f"{path}:{_line_column(data, len(data.rstrip()))}"
    elif match and exc.path == "$":
        where = f"{path}:{_line_column(data, int(match.group(1)))}"
        message = _BYTE_OFFSET.sub("", message).rstrip()
    else:
        where = f"{path}: {exc.path}"
    return CliError(f"{where}: {message}{_format_hint(data, fmt)}")


def _line_column(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


def invalid_error(path: Path, exc: SeatMapInvalid) -> CliError:
    first = exc.violations[0] if exc.violations else None
    detail = f"{first.code}: {first.message}" if first else str(exc)
    return CliError(f"{path}: {detail}")


def _format_hint(data: bytes, fmt: str) -> str:
    """Say so when the document is the other format than the one it was read as."""
    try:
        document = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(document, dict):
        return ""
    if fmt == "native" and "zones" in document:
        return " (this looks like a pretix plan: use --format pretix, or seatmap import-pretix)"
    categories = document.get("categories")
    native_categories = isinstance(categories, list) and any(
        isinstance(c, dict) and "key" in c for c in categories
    )
    if fmt == "pretix" and "zones" not in document and ("sections" in document or native_categories):
        return " (this looks like a seatwise seat map already: no import needed)"
    return ""


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(headers))
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        click.echo("  ".join(padded).rstrip())


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit_json(message: Message) -> None:
    click.echo(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))
