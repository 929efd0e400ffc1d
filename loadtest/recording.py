"""Per-process records the runner reads after a run.

* ``raw-<pid>.tsv``: one line per Locust request event, written by a request
  listener, because Locust's own percentiles are rounded (to 2 significant
  digits above 100 ms) and the summary wants exact p99s. Columns:
  ``end_epoch_s  request_type  name  response_ms  status  response_length``.
* ``acks-<pid>.jsonl``: one line per commit acknowledged to a client (an
  :class:`Ack`), flushed at once: the audit proves each one exists in Redis.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any

import msgspec
from seatwise.v1 import sales_pb2

from loadtest.config import ACKS_PREFIX, RAW_PREFIX


class Ack(msgspec.Struct, frozen=True):
    """A committed order as the client was told about it."""

    event_id: str
    order_id: str
    seat_ids: list[str]
    ga: dict[str, int]  # area -> places
    idempotency_key: str
    hold_token: str
    replayed: bool
    attempts: int
    ts_ms: int

    @classmethod
    def of_commit(cls, reply: sales_pb2.CommitHoldResponse, hold_token: str, key: str, attempts: int) -> Ack:
        """The ack of a commit's reply, as the client has it now."""
        order = reply.order
        ga: dict[str, int] = {}
        for ticket in order.tickets:
            if ticket.ga_area_id:
                ga[ticket.ga_area_id] = ga.get(ticket.ga_area_id, 0) + 1
        return cls(
            event_id=order.event_id,
            order_id=order.order_id,
            seat_ids=[t.seat_id for t in order.tickets if t.seat_id],
            ga=ga,
            idempotency_key=key,
            hold_token=hold_token,
            replayed=reply.replayed,
            attempts=attempts,
            ts_ms=int(time.time() * 1000),
        )


_ack_encoder = msgspec.json.Encoder()
_ack_decoder = msgspec.json.Decoder(Ack)


class AckLog:
    """Appends acks to this process's JSONL file, one flushed line each."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / f"{ACKS_PREFIX}{os.getpid()}.jsonl"
        self._file: IO[bytes] | None = None

    def record(self, ack: Ack) -> None:
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(_ack_encoder.encode(ack) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_acks(directory: Path) -> list[Ack]:
    """Every ack in ``directory`` (a torn last line of a killed process is skipped)."""
    acks: list[Ack] = []
    for path in sorted(directory.glob(f"{ACKS_PREFIX}*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                try:
                    acks.append(_ack_decoder.decode(line))
                except msgspec.DecodeError:
                    continue
    return acks


class RawTimings:
    """A Locust ``request`` listener writing every request to ``raw-<pid>.tsv``."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / f"{RAW_PREFIX}{os.getpid()}.tsv"
        self._file: IO[str] = self.path.open("a", buffering=1 << 20)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        end_epoch_s: float | None = None,  # when reported later than it ended (the gateways' batches)
        **_: Any,
    ) -> None:
        status = "OK" if exception is None else str(exception) or type(exception).__name__
        end = time.time() if end_epoch_s is None else end_epoch_s
        self._file.write(
            f"{end:.3f}\t{request_type}\t{name}\t{response_time:.3f}\t{status}\t{response_length}\n"
        )

    def flush(self, **_: Any) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self, **_: Any) -> None:
        if not self._file.closed:
            self._file.close()


class RawRow(msgspec.Struct, frozen=True, array_like=True):
    end_s: float
    request_type: str
    name: str
    response_ms: float
    status: str
    length: int


def read_raw(directory: Path) -> list[RawRow]:
    rows: list[RawRow] = []
    for path in sorted(directory.glob(f"{RAW_PREFIX}*.tsv")):
        with path.open() as lines:
            for line in lines:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 6:
                    continue  # a torn last line
                try:
                    rows.append(
                        RawRow(float(parts[0]), parts[1], parts[2], float(parts[3]), parts[4], int(parts[5]))
                    )
                except ValueError:
                    continue
    return rows
