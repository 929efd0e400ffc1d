"""rules/reports.py: export formatting and sales figures, without Redis."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st

from rules.reports import (
    BOM,
    MINUTE_MS,
    SalesTally,
    encode_rows,
    header,
    hold_outcomes,
    iso,
    rate,
    time_buckets,
)

COLUMNS = ("name", "count", "ok", "missing")


@given(st.lists(st.text(), max_size=5))
def test_csv_cells_parse_back_and_never_start_a_formula(names: list[str]) -> None:
    rows = [{"name": n, "count": i, "ok": i % 2 == 0} for i, n in enumerate(names)]
    data = header(COLUMNS, "csv", bom=True) + encode_rows(COLUMNS, rows, "csv")
    assert data.startswith(BOM + b"name,count,ok,missing\r\n")
    parsed = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert len(parsed) == len(rows)
    for row, back in zip(rows, parsed, strict=True):
        assert back["count"] == str(row["count"])
        assert back["ok"] == ("true" if row["ok"] else "false")
        assert back["missing"] == ""
        assert not back["name"].startswith(("=", "+", "-", "@", "\t", "\r"))
        assert back["name"].removeprefix("'") == row["name"] or back["name"] == row["name"]


def test_json_lines_keep_values_as_they_are() -> None:
    rows = [{"name": "=1+1", "count": 3, "ok": True}]
    assert header(COLUMNS, "jsonl") == b""
    (line,) = encode_rows(COLUMNS, rows, "jsonl").decode().splitlines()
    assert json.loads(line) == {"name": "=1+1", "count": 3, "ok": True, "missing": None}


def test_a_tally_counts_orders_tickets_revenue_and_minutes() -> None:
    t = SalesTally()
    start = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS
    t.add_order(start + 5, "committed", [("a", 1000, True), ("b", 500, True)])
    t.add_order(start + 3 * MINUTE_MS, "cancelled", [("a", 1000, False)])
    t.add_order(start + 3 * MINUTE_MS + 1, "partially_cancelled", [("a", 1000, True), ("a", 1000, False)])
    assert (t.orders, t.orders_cancelled, t.tickets_sold, t.tickets_cancelled) == (3, 1, 3, 2)
    assert t.gross == 2500
    assert t.by_category == {"a": 2, "b": 1}
    assert t.timeline() == [(start, 2, 1), (start + MINUTE_MS, 0, 0), (start + 2 * MINUTE_MS, 0, 0),
                            (start + 3 * MINUTE_MS, 3, 2)]  # fmt: skip
    assert t.peak_per_minute == 3
    assert t.net is None  # no order recorded its fees
    assert (t.first_ms, t.last_ms) == (start + 5, start + 3 * MINUTE_MS + 1)


def test_fees_and_a_merge() -> None:
    a, b = SalesTally(), SalesTally()
    a.add_order(60_000, "committed", [("x", 1000, True)], fees=100, channel="web")
    b.add_order(120_000, "committed", [("x", 2000, True)], fees=150, channel="box_office")
    assert a.net == 900
    both = a.merge(b)
    assert (both.gross, both.fees, both.net) == (3000, 250, 2750)
    assert both.by_channel == {"web": 1, "box_office": 1}
    assert (both.first_ms, both.last_ms) == (60_000, 120_000)
    b.add_order(180_000, "committed", [("x", 1, True)])  # no fee split
    assert a.merge(b).net is None


def test_small_helpers() -> None:
    assert hold_outcomes(["committed:o1", "released", "expired", "committed:o2", "?"]) == {
        "committed": 2,
        "released": 1,
        "expired": 1,
    }
    assert rate(1, 4) == 0.25
    assert rate(1, 0) == 0.0
    assert iso(0) == ""
    assert iso(1_000) == "1970-01-01T00:00:01.000Z"
    assert time_buckets({1: 0, 2: 50, 3: 100}, 4) == {1: 0, 2: 2, 3: 3}
    assert time_buckets({1: 7}, 8) == {1: 0}
    assert time_buckets({}, 8) == {}
