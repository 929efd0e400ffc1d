"""Request ids end to end: passed or generated, echoed in the reply's metadata, in the
error details (google.rpc.RequestInfo) and on every log line of the call; logs are
JSON lines that never carry an API key or a buyer's personal data."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2
from seatwise.v1 import events_pb2, sales_pb2, sales_pb2_grpc

from server import logging as server_logging
from server.client import describe_error
from server.context import Stores
from server.request_ids import HEADER, MAX_LENGTH, accept
from tests.api import Api, status_of
from tests.conftest import ADMIN_KEY
from tests.server.events import make_event
from tests.server.test_sales_api import _hold

GENERATED = re.compile(r"[0-9a-f]{24}")
WAIT_S = 30.0  # a safety net against a hang, never a measured time


def _request_info(error: grpc.aio.AioRpcError) -> str:
    info = error_details_pb2.RequestInfo()
    found = [d for d in status_of(error).details if d.Unpack(info)]
    assert len(found) == 1, status_of(error)
    return info.request_id


def _echoed(metadata: Any) -> str:
    values = [v for k, v in (metadata or ()) if k == HEADER]
    assert len(values) == 1, metadata
    return str(values[0])


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The server's logs as JSON lines at debug level, into a buffer for the test."""
    out = io.StringIO()
    server_logging.configure("json", "debug", stream=out, cache=False)
    yield out
    structlog.reset_defaults()


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("trace-0af7651916cd43dd8448eb211c80319c", True),
        ("a", True),
        ("x" * MAX_LENGTH, True),
        ("x" * (MAX_LENGTH + 1), False),
        ("has space", False),
        ("new\nline", False),
        ("", False),
        ("sé", False),
    ],
)
def test_a_usable_id_is_kept_and_anything_else_replaced(sent: str, kept: bool) -> None:
    got = accept(sent)
    assert (got == sent) is kept
    if not kept:
        assert GENERATED.fullmatch(got)
    assert accept(None) != accept(None)


async def test_the_clients_id_is_echoed_and_named_in_error_details(organizer: Api) -> None:
    event_id = await make_event(organizer)
    mine = [*organizer.metadata, (HEADER, "checkout-42")]
    request = sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"])
    call = organizer.holds.HoldSeats(request, metadata=mine)
    await call
    assert _echoed(await call.trailing_metadata()) == "checkout-42"

    with pytest.raises(grpc.aio.AioRpcError) as taken:  # the seat is held now
        await organizer.holds.HoldSeats(request, metadata=[*organizer.metadata, (HEADER, "checkout-43")])
    assert taken.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _request_info(taken.value) == "checkout-43"
    assert _echoed(taken.value.trailing_metadata()) == "checkout-43"


async def test_without_a_usable_id_the_server_makes_one(organizer: Api, server: str) -> None:
    event_id = await make_event(organizer)
    get = events_pb2.GetEventRequest(event_id=event_id)
    call = organizer.events.GetEvent(get, metadata=organizer.metadata)
    await call
    first = _echoed(await call.trailing_metadata())
    assert GENERATED.fullmatch(first)
    async with Api(server, "sw_nobody_notakeyatall") as stranger:
        bad = [*stranger.metadata, (HEADER, "x" * 500)]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stranger.events.GetEvent(events_pb2.GetEventRequest(event_id=event_id), metadata=bad)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    made = _request_info(refused.value)
    assert GENERATED.fullmatch(made)
    assert made != first
    assert _echoed(refused.value.trailing_metadata()) == made


async def test_a_stream_sends_its_id_when_it_opens(organizer: Api) -> None:
    event_id = await make_event(organizer)
    call = organizer.events.WatchAvailability(
        events_pb2.WatchAvailabilityRequest(event_id=event_id),
        metadata=[*organizer.metadata, (HEADER, "watch-7")],
    )
    try:
        assert _echoed(await call.initial_metadata()) == "watch-7"
    finally:
        call.cancel()


async def test_every_log_line_of_a_call_is_json_with_its_id(
    organizer: Api, stores: Stores, json_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r0-0")

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(stores.sales, "get_hold", broken)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await organizer.holds.GetHold(
            sales_pb2.GetHoldRequest(hold_token=hold.hold_token),
            metadata=[*organizer.metadata, (HEADER, "bug-report-1")],
        )
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert _request_info(failed.value) == "bug-report-1"
    lines = _lines(json_logs)  # every line is JSON (json.loads raises otherwise)
    of_the_call = [line for line in lines if line.get("method") == "/seatwise.v1.HoldService/GetHold"]
    assert [line["event"] for line in of_the_call] == ["rpc.internal_error"]
    assert all(line["request_id"] == "bug-report-1" for line in of_the_call)
    assert "RuntimeError: a bug" in of_the_call[0]["exception"]
    assert {"timestamp", "level"} <= of_the_call[0].keys()


async def test_logs_never_carry_keys_or_buyers_personal_data(
    organizer: Api, stores: Stores, json_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r0-1")
    buyer = sales_pb2.BuyerDetails(name="Ada Lovelace", email="ada@example.org", payment_reference="pay-991")

    async def leaky(*_args: object, **_kwargs: object) -> None:  # a bug that puts secrets in its message
        raise RuntimeError(f"failed for {buyer.email} with key {secret_key}")

    monkeypatch.setattr(stores.sales, "commit", leaky)
    with pytest.raises(grpc.aio.AioRpcError):
        await organizer.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="k1", buyer=buyer),
            metadata=organizer.metadata,
        )
    structlog.get_logger("test").warning(
        "careless", email="ada@example.org", authorization=f"Bearer {secret_key}", note=f"key {ADMIN_KEY}"
    )
    text = json_logs.getvalue()
    assert "rpc.internal_error" in text
    assert "careless" in text
    for secret in (secret_key, ADMIN_KEY, "ada@example.org", "Ada Lovelace", "pay-991"):
        assert secret not in text, secret
    assert server_logging.REDACTED in text


async def test_the_cli_names_the_request_id_of_a_server_side_failure(
    organizer: Api, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r0-2")

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(stores.sales, "get_hold", broken)

    def get_hold() -> str:  # the CLI's client is synchronous
        with grpc.insecure_channel(organizer.target) as channel:
            try:
                sales_pb2_grpc.HoldServiceStub(channel).GetHold(
                    sales_pb2.GetHoldRequest(hold_token=hold.hold_token),
                    metadata=[*organizer.metadata, (HEADER, "cli-9")],
                    timeout=WAIT_S,
                )
            except grpc.RpcError as exc:
                return describe_error(exc)
        raise AssertionError("the call succeeded")

    described = await asyncio.to_thread(get_hold)
    assert described.startswith("INTERNAL: internal error; it has been logged")
    assert "request id cli-9" in described
