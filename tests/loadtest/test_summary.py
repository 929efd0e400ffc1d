"""The run summary from raw records: exact percentiles, refusals vs errors, sales and sell-out."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

from loadtest import summary
from loadtest.recording import RawRow, RawTimings, read_raw


def test_raw_timings_round_trip(tmp_path: Path) -> None:
    raw = RawTimings(tmp_path)
    raw.on_request("grpc", "HoldSeats", 12.5, 80, exception=None)
    raw.on_request("grpc", "HoldSeats", 30.0, 0, exception=RuntimeError("FAILED_PRECONDITION"))
    raw.close()
    with raw.path.open("a") as torn:
        torn.write("1.0\tgrpc\tHold")  # a killed writer's last line
    rows = read_raw(tmp_path)
    assert [(r.name, r.response_ms, r.status, r.length) for r in rows] == [
        ("HoldSeats", 12.5, "OK", 80),
        ("HoldSeats", 30.0, "FAILED_PRECONDITION", 0),
    ]


def test_requests_are_summarised_from_raw_timings() -> None:
    rows = [RawRow(100.0 + i / 100, "grpc", "CommitHold", float(i + 1), "OK", 10) for i in range(100)]
    rows += [
        RawRow(101.0, "grpc", "HoldSeats", 5.0, "FAILED_PRECONDITION", 0),
        RawRow(101.0, "grpc", "HoldSeats", 7.0, "UNAVAILABLE", 0),
        RawRow(101.0, "grpc", "CommitHold (lost reply)", 1.0, "DEADLINE_EXCEEDED", 0),
        RawRow(102.0, "grpc-stream", "WatchAvailability", 15_000.0, "OK", 42),
    ]
    result = summary.requests_summary(rows)
    commit = result["methods"]["CommitHold"]
    assert commit["calls"] == 100
    assert commit["p50_ms"] == pytest.approx(50.5)
    assert commit["p99_ms"] == pytest.approx(99.01)
    assert commit["max_ms"] == 100.0
    assert result["errors"] == {"HoldSeats": {"UNAVAILABLE": 1}}
    assert result["refusals"] == {"HoldSeats": {"FAILED_PRECONDITION": 1}}
    assert result["methods"]["CommitHold (lost reply)"]["simulated"] == 1
    assert result["calls"] == 103  # streams are not unary calls
    streams = summary.streams_summary(rows)
    assert streams["streams"] == 1
    assert streams["messages"] == 42


def test_sales_and_sell_out() -> None:
    start = 1000.0
    sales = [(1_000_500, 2), (1_000_700, 3), (1_002_100, 1)]
    result = summary.sales_summary(sales, start, sellable=6)
    assert result["tickets"] == 6
    assert result["per_second"] == [5, 0, 1]
    assert result["peak_tickets_per_s"] == 5
    samples = [
        summary.Sample(1000.5, 3, 1, 2, 0, 0, 0),
        summary.Sample(1001.5, 0, 1, 5, 0, 0, 0),
        summary.Sample(1002.5, 0, 0, 6, 0, 0, 0),
    ]
    out = summary.sell_out(samples, sales, start, sellable=6)
    assert out == {
        "nothing_free_s": 1.5,
        "ga_full_s": None,
        "all_sold_s": 2.5,  # the monitor's first sample with nothing free or held
        "last_place_sold_s": 2.1,
        "sold_out": True,
    }
    assert summary.sell_out(samples[:1], sales[:1], start, sellable=6)["sold_out"] is False


HISTORY = """Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%
10,5,grpc,HoldSeats,3.0,0.0,10,20,30
10,5,grpc-stream,WatchAvailability,0.1,0.0,15000,15000,15000
10,5,,Aggregated,3.1,0.0,10,15000,15000
11,9,grpc,HoldSeats,4.0,1.0,11,N/A,40
11,9,,Aggregated,4.0,1.0,11,25,40
"""


def test_history_and_plots_without_a_real_matplotlib(tmp_path: Path) -> None:
    history_csv = tmp_path / "locust_stats_history.csv"
    history_csv.write_text(HISTORY)
    history = summary.read_history(history_csv)
    assert history.t == [0.0, 1.0]
    assert history.rps == [3.1, 4.0]
    assert list(history.p95_by_method) == ["HoldSeats"]  # streams never pollute latency
    assert history.p95_by_method["HoldSeats"][0] == (0.0, 20.0)
    pyplot = mock.MagicMock()
    pyplot.subplots.side_effect = lambda **_: (mock.MagicMock(), mock.MagicMock())
    fake = mock.MagicMock(pyplot=pyplot)
    with mock.patch.dict(sys.modules, {"matplotlib": fake, "matplotlib.pyplot": pyplot}):
        written = summary.write_plots(history_csv, tmp_path)
    assert written == [tmp_path / "rps.png", tmp_path / "latency.png"]
    fake.use.assert_called_once_with("Agg")


def test_plots_are_skipped_without_matplotlib(tmp_path: Path) -> None:
    with mock.patch.dict(sys.modules, {"matplotlib": None}):
        reason = summary.write_plots(tmp_path / "missing.csv", tmp_path)
    assert isinstance(reason, str)
    assert "matplotlib" in reason


def test_session_operations_have_rows_of_their_own() -> None:
    rows = [
        RawRow(100.0, "grpc", "CommitHold", 4.0, "OK", 10),
        RawRow(100.5, "session", "CommitHold", 2.0, "OK", 10),
        RawRow(101.0, "session", "HoldSeats", 3.0, "FAILED_PRECONDITION", 0),
        RawRow(101.0, "session", "CommitHold (lost reply)", 1.0, "DEADLINE_EXCEEDED", 0),
    ]
    result = summary.requests_summary(rows)
    assert result["calls"] == 4
    assert result["methods"]["CommitHold"]["calls"] == 1
    assert result["methods"]["session:CommitHold"]["ok"] == 1
    assert result["refusals"] == {"session:HoldSeats": {"FAILED_PRECONDITION": 1}}
    assert result["methods"]["session:CommitHold (lost reply)"]["simulated"] == 1
    assert result["errors"] == {}


def test_cpu_per_thousand_tickets() -> None:
    cpu = summary.cpu_summary(30.0, 3.0, 40.0, 62.0, tickets=20_000)
    assert cpu["server_s_per_1000_tickets"] == 1.5
    assert cpu["redis_s_per_1000_tickets"] == 0.15
    assert cpu["load_generator_s_per_1000_tickets"] == 2.0
    assert summary.cpu_summary(1.0, 0.0, 0.0, 1.0, tickets=0)["server_s_per_1000_tickets"] is None
