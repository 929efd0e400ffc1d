"""Overload: new calls are shed at once with RESOURCE_EXHAUSTED + RetryInfo; purchases still finish."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from seatwise.v1 import sales_pb2

from server.admission import Admission, Overloaded
from server.context import Stores
from tests.api import Api, status_of
from tests.server.events import make_event
from tests.server.test_sales_api import _hold


def test_limits_and_always_admitted_methods() -> None:
    admission = Admission(max_inflight=1, max_lag_s=0.5)
    admission.enter(sheddable=True)
    with pytest.raises(Overloaded):
        admission.enter(sheddable=True)
    admission.enter(sheddable=False)  # never shed (Admit.ALWAYS: commits, extends, releases)
    admission.leave()
    admission.leave()
    admission.lag_s = 0.8
    with pytest.raises(Overloaded, match="behind"):
        admission.enter(sheddable=True)
    assert admission.inflight == 0
    assert admission.shed == 2


async def test_lag_probe_notices_a_blocked_loop() -> None:
    admission = Admission()
    probe = asyncio.create_task(admission.watch_loop_lag())
    await asyncio.sleep(0.06)
    time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop on purpose, as a CPU-bound burst would
    await asyncio.sleep(0.06)
    probe.cancel()
    assert admission.lag_s > 0.05


async def test_overloaded_server_sheds_holds_but_lets_commits_through(organizer: Api, stores: Stores) -> None:
    event_id = await make_event(organizer)
    hold = await _hold(organizer, event_id, "r0-0")
    stores.admission.lag_s = 5.0  # as if the event loop were far behind
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _hold(organizer, event_id, "r0-1")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        retry = error_details_pb2.RetryInfo()
        assert any(d.Unpack(retry) for d in status_of(err.value).details)
        assert retry.retry_delay.seconds >= 1
        committed = await organizer.orders.CommitHold(
            sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="k"),
            metadata=organizer.metadata,
        )
        assert committed.order.order_id
    finally:
        stores.admission.lag_s = 0.0
    await _hold(organizer, event_id, "r0-1")  # recovers when the load drops
