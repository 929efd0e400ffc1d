"""Faults: Redis killed, unreachable or slow; a server process killed mid-commit.

Each test runs its own redis-server (they get killed) and asserts that no
acknowledged order is lost, no seat is sold twice, and the service recovers
by itself.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from seatwise.v1 import events_pb2, sales_pb2

from holds.redis_client import connect
from tests.api import Api
from tests.server.faults import Service, on_sale_event, spawned_server, wait_health

pytestmark = pytest.mark.slow


async def test_redis_down_is_unavailable_within_the_deadline_and_recovers(service: Service) -> None:
    api, event_id = await on_sale_event(service.target)
    service.redis.kill()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]),
            metadata=api.metadata,
            timeout=1.5,
        )
    # UNAVAILABLE is the server's answer: past the 1.5 s deadline the client would
    # have ended the call itself with DEADLINE_EXCEEDED
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    await wait_health(service.target, health_pb2.HealthCheckResponse.NOT_SERVING)

    service.redis.start()  # same data dir: the AOF is replayed
    await wait_health(service.target, health_pb2.HealthCheckResponse.SERVING)
    hold = await api.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-0"]), metadata=api.metadata, timeout=5
    )
    assert list(hold.hold.seat_ids) == ["r0-0"]  # the script cache was empty: NOSCRIPT handled
    await api.__aexit__()


async def _paused(redis_url: str) -> bool:
    """Whether Redis is still paused: a PING on a fresh connection gets no answer."""
    client = connect(redis_url)
    try:
        await asyncio.wait_for(client.ping(), 0.2)
    except TimeoutError:
        return True
    finally:
        await client.aclose()
    return False


async def test_slow_redis_honours_deadlines_and_applies_nothing_half(service: Service) -> None:
    api, event_id = await on_sale_event(service.target)
    # long enough that a loaded machine's delays cannot outlast it before the check below
    # (CLIENT UNPAUSE would wait for its end too)
    await service.stores.redis.execute_command("CLIENT", "PAUSE", "6000", "ALL")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.holds.HoldSeats(
            sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r0-1", "r0-2"]),
            metadata=api.metadata,
            timeout=0.5,
        )
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    # Observed, not timed: the call gave up while Redis was still paused (0.5 s of a 6 s pause).
    assert await _paused(service.redis.url)
    while await _paused(service.redis.url):  # the pause ends; a hold whose reply was lost may apply whole
        pass
    availability = await api.events.GetAvailability(
        events_pb2.GetAvailabilityRequest(event_id=event_id, include_seats=True), metadata=api.metadata
    )
    held = sorted(s.seat_id for s in availability.seats)
    assert held in ([], ["r0-1", "r0-2"])  # never one of the two
    await api.__aexit__()


async def test_redis_sigkill_mid_on_sale_keeps_every_acknowledged_order(service: Service) -> None:
    """Waits on what it observes, never on the clock: a loaded 2-core machine only makes it slower.

    Redis is killed once some orders are acknowledged (so the crash is mid on-sale and there is
    something to lose), and the buyers stop only after a probe purchase succeeded on the
    restarted Redis (so the service recovered by itself).
    """
    api, event_id = await on_sale_event(service.target, rows=4, seats=10)
    seats = [f"r{r}-{n}" for r in range(4) for n in range(10)]
    probe_seat, buyer_seats = seats[-1], seats[:-1]
    acknowledged: dict[str, list[str]] = {}
    some_sold, stop = asyncio.Event(), asyncio.Event()

    async def buy(seat: str, key: str) -> bool:
        try:
            hold = await api.holds.HoldSeats(
                sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=[seat]),
                metadata=api.metadata,
                timeout=2,
            )
            order = await api.orders.CommitHold(
                sales_pb2.CommitHoldRequest(hold_token=hold.hold.hold_token, idempotency_key=key),
                metadata=api.metadata,
                timeout=2,
            )
        except grpc.aio.AioRpcError:
            return False
        acknowledged[order.order.order_id] = [t.seat_id for t in order.order.tickets]
        if len(acknowledged) >= 5:
            some_sold.set()
        return True

    async def buyer(seat: str) -> None:
        # A hold applied whose reply was lost keeps its seat until it expires: such a buyer
        # keeps failing until told to stop, which is fine: it was never acknowledged.
        while not stop.is_set():
            if await buy(seat, f"pay-{seat}"):
                return
            await asyncio.sleep(0.05)

    buyers = asyncio.gather(*(buyer(s) for s in buyer_seats))
    await some_sold.wait()
    service.redis.kill()  # mid on-sale, as a crash would
    service.redis.start()  # replays the AOF (appendfsync always)
    for _attempt in itertools.count():  # until the service works again
        if await buy(probe_seat, "pay-probe"):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await buyers
    assert len(acknowledged) >= 6  # five before the crash, the probe after it
    orders = await service.stores.redis.hgetall(f"sw:{{ev:{event_id}}}:orders")
    stored = {k.decode() for k in orders}
    assert set(acknowledged) <= stored  # nothing acknowledged was lost
    seat_values = await service.stores.redis.hgetall(f"sw:{{ev:{event_id}}}:seats")
    owners = {k.decode(): v.decode() for k, v in seat_values.items() if v.startswith(b"s:")}
    for order_id, order_seats in acknowledged.items():
        for seat in order_seats:
            ordinal = str(seats.index(seat))
            assert owners[ordinal] == f"s:{order_id}"  # sold exactly to the acknowledged order
    await api.__aexit__()


async def test_server_killed_mid_commit_then_retry_gives_exactly_one_order(tmp_path: Path) -> None:
    async with spawned_server(tmp_path) as server:
        target, redis = server.target, server.redis
        api, event_id = await on_sale_event(target, rows=3, seats=10)
        holds = []
        for r in range(3):
            for n in range(10):
                response = await api.holds.HoldSeats(
                    sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=[f"r{r}-{n}"]),
                    metadata=api.metadata,
                )
                holds.append(response.hold.hold_token)

        async def commit(token: str, key: str) -> str | None:
            try:
                response = await api.orders.CommitHold(
                    sales_pb2.CommitHoldRequest(hold_token=token, idempotency_key=key),
                    metadata=api.metadata,
                    timeout=5,
                )
                return str(response.order.order_id)
            except grpc.aio.AioRpcError:
                return None

        first = asyncio.gather(*(commit(t, f"key-{i}") for i, t in enumerate(holds)))
        await asyncio.sleep(0.01)
        server.kill()  # mid-commit: some committed, some not, some unknown
        first_results = await first
        await server.start()
        await api.__aexit__()
        api = Api(target, api.metadata[0][1].removeprefix("Bearer "))
        retried = await asyncio.gather(*(commit(t, f"key-{i}") for i, t in enumerate(holds)))
        assert all(retried), "every retry with its idempotency key must succeed"
        for before, after in zip(first_results, retried, strict=True):
            if before is not None:
                assert before == after  # the same order, never a second one
        client = connect(redis.url)
        orders = await client.hlen(f"sw:{{ev:{event_id}}}:orders")
        await client.aclose()
        assert orders == len(holds)  # exactly one order per hold
        await api.__aexit__()
