"""The pipe between a Locust worker and its storefront gateway (loadtest/oplog.py)."""

from __future__ import annotations

from loadtest.oplog import STOP, Op, buyers_command, decode_ops, encode_ops, parse_command


def test_ops_round_trip_one_batch_per_line() -> None:
    ops = [
        Op("session", "HoldSeats", 1_796_000_000.125, 3.5, "", 0),
        Op("session", "CommitHold", 1_796_000_000.25, 12.0, "DEADLINE_EXCEEDED", 0),
        Op("grpc-stream", "WatchAvailability (gateway cache)", 1_796_000_001.0, 9000.0, "", 42),
    ]
    line = encode_ops(ops)
    assert line.count(b"\n") == 1
    assert line.endswith(b"\n")
    assert decode_ops(line) == ops


def test_torn_or_blank_lines_decode_to_nothing() -> None:
    line = encode_ops([Op("session", "HoldSeats", 1.0, 1.0, "", 0)])
    assert decode_ops(line[:-5]) == []
    assert decode_ops(b"\n") == []


def test_commands() -> None:
    assert parse_command(buyers_command(1500)) == ("buyers", 1500)
    assert parse_command(buyers_command(-3)) == ("buyers", 0)
    assert parse_command(STOP) == ("stop", 0)
    assert parse_command(b"buyers many\n") == ("", 0)
