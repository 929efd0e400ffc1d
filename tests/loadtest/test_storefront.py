"""The storefront gateway's buyers retry only what is safe, and record what was acknowledged.

A scripted shop stands in for the gateway's sessions (the whole gateway runs in
tests/loadtest/test_gateway_smoke.py).
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from seatwise.client import SeatwiseError
from seatwise.v1 import sales_pb2

from loadtest.recording import Ack
from loadtest.storefront import Buyer, Tunables, precondition_subjects, retry_delay


def detail(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def busy(delay_s: float) -> SeatwiseError:
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=int(delay_s * 1e9)))
    return SeatwiseError(grpc.StatusCode.RESOURCE_EXHAUSTED, "server busy", [detail(info)])


class AckSink:
    def __init__(self) -> None:
        self.recorded: list[Ack] = []

    def record(self, ack: Ack) -> None:
        self.recorded.append(ack)


class ScriptedShop:
    """Answers each operation with the next scripted reply or error; remembers what was sent."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, str, Any]] = []
        self.acks = AckSink()
        self.tunables = Tunables()
        self.tunables.lost_reply_rate = 0.0
        self.categories = ["cat1"]
        self.setup = SimpleNamespace(event_id="ev")

    async def call(self, op: str, name: str, request: Message, deadline_s: float) -> Any:
        copy = type(request)()
        copy.CopyFrom(request)
        self.sent.append((op, name, copy))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def buyer_of(shop: ScriptedShop) -> Buyer:
    return Buyer(shop, random.Random(3))  # type: ignore[arg-type]


HELD = sales_pb2.HoldResponse(hold=sales_pb2.Hold(hold_token="tok", seat_ids=["A-1", "A-2"]))


async def test_a_hold_is_sent_again_with_its_request_id_while_its_outcome_is_unknown() -> None:
    shop = ScriptedShop(SeatwiseError(grpc.StatusCode.DEADLINE_EXCEEDED, "late"), busy(0.001), HELD)
    request = sales_pb2.HoldSeatsRequest(event_id="ev", seat_ids=["A-1", "A-2"])
    hold = await buyer_of(shop).hold("hold_seats", "HoldSeats", request)
    assert hold.hold_token == "tok"
    assert len(shop.sent) == 3  # lost, shed by a busy server (after its RetryInfo), held
    request_ids = {sent.request_id for _, _, sent in shop.sent}
    assert len(request_ids) == 1
    assert request_ids != {""}


async def test_a_refused_hold_is_not_sent_again() -> None:
    taken = SeatwiseError(grpc.StatusCode.FAILED_PRECONDITION, "seats taken")
    shop = ScriptedShop(taken)
    with pytest.raises(SeatwiseError):
        await buyer_of(shop).hold("hold_seats", "HoldSeats", sales_pb2.HoldSeatsRequest(event_id="ev"))
    assert len(shop.sent) == 1


async def test_a_commit_is_retried_with_its_key_and_acknowledged_once() -> None:
    tickets = [sales_pb2.Ticket(seat_id="A-1"), sales_pb2.Ticket(seat_id="A-2")]
    order = sales_pb2.Order(order_id="o-1", event_id="ev", tickets=tickets)
    shop = ScriptedShop(
        SeatwiseError(grpc.StatusCode.UNAVAILABLE, "session ended"),
        sales_pb2.CommitHoldResponse(order=order, replayed=True),
    )
    await buyer_of(shop).pay(HELD.hold)
    keys = {sent.idempotency_key for _, _, sent in shop.sent}
    assert [name for _, name, _ in shop.sent] == ["CommitHold", "CommitHold"]
    assert len(keys) == 1
    (ack,) = shop.acks.recorded
    assert (ack.order_id, ack.seat_ids, ack.idempotency_key) == ("o-1", ["A-1", "A-2"], keys.pop())
    assert (ack.hold_token, ack.replayed, ack.attempts) == ("tok", True, 2)


async def test_a_refused_commit_is_not_acknowledged() -> None:
    shop = ScriptedShop(SeatwiseError(grpc.StatusCode.FAILED_PRECONDITION, "the hold expired"))
    await buyer_of(shop).pay(HELD.hold)
    assert len(shop.sent) == 1
    assert shop.acks.recorded == []


def test_error_details() -> None:
    assert retry_delay(busy(0.25)) == pytest.approx(0.25)
    assert retry_delay(SeatwiseError(grpc.StatusCode.RESOURCE_EXHAUSTED, "no detail")) is None
    sold = error_details_pb2.PreconditionFailure.Violation(subject="A-7", description="seat is sold")
    failure = error_details_pb2.PreconditionFailure(violations=[sold])
    error = SeatwiseError(grpc.StatusCode.FAILED_PRECONDITION, "taken", [detail(failure)])
    assert precondition_subjects(error) == ["A-7"]
