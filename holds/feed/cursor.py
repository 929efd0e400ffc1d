"""Feed cursors: where a consumer is in an organizer's many streams, as one opaque token.

A tenant's feed merges one stream per event (the event's ``lifecycle`` stream)
and the tenant's own stream (consent and erasure entries). Stream entry ids are
``<ms>-<n>`` from Redis's clock. A cursor is

* a **watermark** ``W``: every entry of every stream with an id at or below it
  has been delivered, and
* **positions** ``P[stream]`` above the watermark: every entry of that stream up
  to its position has been delivered.

So the consumer has seen an entry ``e`` of stream ``s`` exactly when
``id(e) <= max(W, P[s])``. Positions at or below the watermark are dropped, so a
cursor lists only the streams that changed in the last few seconds before it
(holds/feed/reader.py raises the watermark); it stays small however many
events an organizer has. Encoded as msgpack, zlib, base64url, with a version.
The empty string is the start: everything still retained.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass, field

import msgspec

from holds.errors import InvalidRequest

StreamId = tuple[int, int]  # (ms, n)
ZERO: StreamId = (0, 0)
TENANT_STREAM = ""  # the tenant's own stream's name in a cursor; events are named by id
_VERSION = 1
MAX_CURSOR_CHARS = 64 * 1024

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[int, int, int, list[tuple[str, int, int]]])


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass
class Cursor:
    watermark: StreamId = ZERO
    positions: dict[str, StreamId] = field(default_factory=dict)

    def position(self, stream: str) -> StreamId:
        """Everything of ``stream`` up to this id has been delivered."""
        return max(self.watermark, self.positions.get(stream, ZERO))

    def advance(self, stream: str, entry_id: StreamId) -> None:
        if entry_id > self.position(stream):
            self.positions[stream] = entry_id

    def raise_watermark(self, watermark: StreamId) -> bool:
        """Move the watermark up (never down) and drop the positions it covers."""
        if watermark <= self.watermark:
            return False
        self.watermark = watermark
        self.positions = {s: p for s, p in self.positions.items() if p > watermark}
        return True

    def copy(self) -> Cursor:
        return Cursor(self.watermark, dict(self.positions))

    def encode(self) -> str:
        if self.watermark == ZERO and not self.positions:
            return ""
        packed = _encoder.encode(
            (
                _VERSION,
                self.watermark[0],
                self.watermark[1],
                sorted((s, p[0], p[1]) for s, p in self.positions.items()),
            )
        )
        return base64.urlsafe_b64encode(zlib.compress(packed, 9)).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor a token names; a token that is not one is ``InvalidRequest("cursor")``."""
        if not token:
            return cls()
        if len(token) > MAX_CURSOR_CHARS:
            raise InvalidRequest("cursor", "too long to be a cursor")
        try:
            raw = zlib.decompress(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            version, w_ms, w_n, positions = _decoder.decode(raw)
        except (binascii.Error, ValueError, zlib.error, msgspec.DecodeError) as exc:
            raise InvalidRequest("cursor", "not a cursor this service issued") from exc
        if version != _VERSION:
            raise InvalidRequest("cursor", f"cursor version {version} is not supported")
        if min(w_ms, w_n, *(v for _, a, b in positions for v in (a, b))) < 0:
            raise InvalidRequest("cursor", "not a cursor this service issued")
        return cls((w_ms, w_n), {s: (a, b) for s, a, b in positions})
