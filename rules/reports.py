"""Export rows as CSV or JSON Lines, and an event's sales figures, from plain records.

Pure: no I/O. ``holds/feed/exports.py`` reads the records in bounded chunks and
turns them into rows (dicts of column -> value); this module formats rows and
folds records into figures, chunk by chunk, so neither the rows nor the orders
of a sold-out stadium are ever all in memory.

CSV is RFC 4180 with CRLF, UTF-8 (a byte-order mark on request, for the
spreadsheet programs that otherwise guess another encoding); every text cell
is guarded against formula injection (:func:`rules.statements.csv_text`): a
buyer named ``=HYPERLINK(...)`` opens as text. Numbers are written as numbers.
JSON Lines carry the values as they are (no guard: not a spreadsheet format).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from rules.statements import csv_text

ExportFormat = Literal["csv", "jsonl"]
Cell = str | int | bool | None
Row = Mapping[str, Cell]

BOM: Final = "\ufeff".encode()
MINUTE_MS: Final = 60_000

_json = msgspec.json.Encoder()


def iso(ms: int) -> str:
    """``ms`` since the epoch as RFC 3339 UTC with milliseconds ("" for 0: unknown)."""
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return csv_text(value)


def header(columns: Sequence[str], fmt: ExportFormat, *, bom: bool = False) -> bytes:
    """What an export starts with: the CSV header line (after a BOM if asked); nothing for JSON Lines."""
    if fmt == "jsonl":
        return b""
    return (BOM if bom else b"") + encode_rows(columns, [dict(zip(columns, columns, strict=True))], "csv")


def encode_rows(columns: Sequence[str], rows: Iterable[Row], fmt: ExportFormat) -> bytes:
    """``rows`` as CSV lines (the columns in order; missing values empty) or JSON Lines (UTF-8)."""
    if fmt == "jsonl":
        return b"".join(_json.encode({c: row.get(c) for c in columns}) + b"\n" for row in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue().encode()


# ---- figures ----------------------------------------------------------------------------------


def minute_of(ms: int) -> int:
    """The start (ms) of the minute ``ms`` falls in."""
    return ms - ms % MINUTE_MS


@dataclass
class SalesTally:
    """An event's sales figures, folded order by order (:meth:`add_order`), in any order.

    Tickets are counted as they are now: a cancelled ticket is not sold. Sales
    over time count every ticket an order was created with, valid or since
    cancelled, at the order's creation (the pace of the on-sale), and the
    revenue only the valid ones.
    """

    orders: int = 0
    orders_cancelled: int = 0
    tickets_sold: int = 0
    tickets_cancelled: int = 0
    gross: int = 0
    fees: int = 0
    fees_recorded: bool = True  # False as soon as one order has no fee split
    by_category: dict[str, int] = field(default_factory=dict)  # valid tickets
    by_channel: dict[str, int] = field(default_factory=dict)  # valid tickets
    tickets_per_minute: dict[int, int] = field(default_factory=dict)  # minute start -> tickets
    orders_per_minute: dict[int, int] = field(default_factory=dict)
    first_ms: int = 0
    last_ms: int = 0

    def add_order(
        self,
        created_ms: int,
        status: str,
        tickets: Iterable[tuple[str, int, bool]],
        *,
        fees: int | None = None,
        channel: str = "",
    ) -> None:
        """One order: its creation time, status, ``(category, price, valid)`` per ticket,
        and the platform's fees on it (None: the order records no fee split)."""
        self.orders += 1
        if status == "cancelled":
            self.orders_cancelled += 1
        if fees is None:
            self.fees_recorded = False
        else:
            self.fees += fees
        count = 0
        for category, price, valid in tickets:
            count += 1
            if valid:
                self.tickets_sold += 1
                self.gross += price
                self.by_category[category] = self.by_category.get(category, 0) + 1
                self.by_channel[channel] = self.by_channel.get(channel, 0) + 1
            else:
                self.tickets_cancelled += 1
        minute = minute_of(created_ms)
        self.tickets_per_minute[minute] = self.tickets_per_minute.get(minute, 0) + count
        self.orders_per_minute[minute] = self.orders_per_minute.get(minute, 0) + 1
        self.first_ms = min(self.first_ms, created_ms) if self.first_ms else created_ms
        self.last_ms = max(self.last_ms, created_ms)

    @property
    def net(self) -> int | None:
        """Gross less the fees; None when some order records no fees."""
        return self.gross - self.fees if self.fees_recorded and self.orders else None

    @property
    def peak_per_minute(self) -> int:
        return max(self.tickets_per_minute.values(), default=0)

    def timeline(self) -> list[tuple[int, int, int]]:
        """``(minute start, tickets, orders)`` for every minute from the first sale to the
        last, minutes without a sale included (a chart's x axis has no gaps)."""
        if not self.tickets_per_minute:
            return []
        start, end = min(self.tickets_per_minute), max(self.tickets_per_minute)
        return [
            (m, self.tickets_per_minute.get(m, 0), self.orders_per_minute.get(m, 0))
            for m in range(start, end + MINUTE_MS, MINUTE_MS)
        ]

    def merge(self, other: SalesTally) -> SalesTally:
        """Both tallies' figures together (a platform's roll-up across organizers)."""
        out = SalesTally()
        for part in (self, other):
            out.orders += part.orders
            out.orders_cancelled += part.orders_cancelled
            out.tickets_sold += part.tickets_sold
            out.tickets_cancelled += part.tickets_cancelled
            out.gross += part.gross
            out.fees += part.fees
            for names, their_names in (
                (out.by_category, part.by_category),
                (out.by_channel, part.by_channel),
            ):
                for name, value in their_names.items():
                    names[name] = names.get(name, 0) + value
            for minutes, their_minutes in (
                (out.tickets_per_minute, part.tickets_per_minute),
                (out.orders_per_minute, part.orders_per_minute),
            ):
                for minute, value in their_minutes.items():
                    minutes[minute] = minutes.get(minute, 0) + value
        out.fees_recorded = self.fees_recorded and other.fees_recorded
        firsts = [t.first_ms for t in (self, other) if t.first_ms]
        out.first_ms = min(firsts, default=0)
        out.last_ms = max(self.last_ms, other.last_ms)
        return out


def rate(part: int, whole: int) -> float:
    """``part / whole``, 0 when there is no whole."""
    return part / whole if whole > 0 else 0.0


def hold_outcomes(whys: Iterable[str]) -> dict[str, int]:
    """Ended holds by outcome: ``committed``, ``released``, ``expired`` (from the
    reasons the inventory keeps with a hold's tombstone: ``committed:<order>``, ...)."""
    out = {"committed": 0, "released": 0, "expired": 0}
    for why in whys:
        kind = why.partition(":")[0]
        if kind in out:
            out[kind] += 1
    return out


def time_buckets(times: Mapping[int, int], buckets: int) -> dict[int, int]:
    """Each key's bucket 0..buckets-1 by its time, earliest to latest, in equal spans
    of time between the first and the last (a heat map by time of sale)."""
    if not times or buckets < 1:
        return {}
    first, last = min(times.values()), max(times.values())
    span = max(last - first, 1)
    return {k: min(buckets - 1, (t - first) * buckets // span) for k, t in times.items()}
