"""The pipe between a Locust worker and its storefront gateway process.

Both directions are lines. The Locust worker writes commands to the gateway's
stdin (:func:`buyers_command`, :data:`STOP`); the gateway writes what its
buyers did to its stdout, a batch of :class:`Op` per line (a few lines a
second), which the worker replays into Locust's ``request`` event. Batching
keeps the reporting cheap on both sides: one pipe write and one read per
batch, and the exact end time of every operation travels with it.
"""

from __future__ import annotations

import msgspec

STOP = b"stop\n"


class Op(msgspec.Struct, frozen=True, array_like=True):
    """One reported operation or stream, as Locust's request event wants it."""

    request_type: str  # "session", "grpc" (a stream's first message) or "grpc-stream"
    name: str
    end_s: float  # epoch seconds
    response_ms: float
    status: str  # "" when OK, else the gRPC status code's name
    length: int


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Op])


def encode_ops(ops: list[Op]) -> bytes:
    return _encoder.encode(ops) + b"\n"


def decode_ops(line: bytes) -> list[Op]:
    """The ops of one line ([] for a blank or torn one)."""
    line = line.strip()
    if not line:
        return []
    try:
        return _decoder.decode(line)
    except msgspec.DecodeError:
        return []


def buyers_command(count: int) -> bytes:
    return f"buyers {max(count, 0)}\n".encode()


def parse_command(line: bytes) -> tuple[str, int]:
    """("buyers", N), ("stop", 0), or ("", 0) for anything else."""
    parts = line.split()
    if len(parts) == 2 and parts[0] == b"buyers" and parts[1].isdigit():
        return "buyers", int(parts[1])
    if parts == [b"stop"]:
        return "stop", 0
    return "", 0
