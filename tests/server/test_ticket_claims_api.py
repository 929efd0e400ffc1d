"""The plan's tickets per month is exact under concurrency: each sale (a hold's commit or
a box-office sale) claims its places in the organizer's slot before the event's script
sells them, and gives the claim back when the sale does not apply; a replay neither
claims nor gives back (holds/platform/notifications.py TicketClaim)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from seatwise.v1 import sales_pb2

from holds import keys
from holds.platform.notifications import period_of
from holds.redis_client import AnyRedis
from tests.api import Api
from tests.server import test_platforms_api
from tests.server.events import make_event
from tests.server.test_plan_limits_api import _notes, _organizer, _plan, _refused
from tests.server.test_platforms_api import World
from tests.server.test_sales_api import _hold

world = test_platforms_api.world

SEATS = [f"r{r}-{n}" for r in range(2) for n in range(6)]


async def _box_office(api: Api, event_id: str, key: str, *seats: str) -> sales_pb2.SellAtBoxOfficeResponse:
    return await api.orders.SellAtBoxOffice(
        sales_pb2.SellAtBoxOfficeRequest(
            event_id=event_id, seat_ids=list(seats), idempotency_key=key, payment_method="cash"
        ),
        metadata=api.metadata,
    )


async def _usage(redis_client: AnyRedis, org_id: str) -> dict[str, int]:
    """The month's usage fields (thresholds' markers left out): a claim left over would show."""
    raw = await redis_client.hgetall(keys.tenant_usage(org_id, period_of(int(time.time() * 1000))))
    text = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
    return {k: v for k, v in text.items() if k.startswith("tickets")}


async def test_concurrent_commits_sell_exactly_the_limit(world: World, redis_client: AnyRedis) -> None:
    await _plan(world, "five", tickets_per_month=5)
    org_id, org = await _organizer(world, "five")
    async with org:
        event_id = await make_event(org)
        holds = [await _hold(org, event_id, seat) for seat in SEATS]  # 12 holds: none sold yet
        results = await asyncio.gather(
            *(
                org.orders.CommitHold(
                    sales_pb2.CommitHoldRequest(hold_token=h.hold_token, idempotency_key=f"k{i}"),
                    metadata=org.metadata,
                )
                for i, h in enumerate(holds)
            ),
            return_exceptions=True,
        )
        sold = [r for r in results if isinstance(r, sales_pb2.CommitHoldResponse)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert (len(sold), len(refused)) == (5, 7)
        for err in refused:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit tickets_per_month is 5" in (err.details() or "")
        assert await _usage(redis_client, org_id) == {"tickets_per_month": 5}  # refused claims given back
        assert sorted(await _notes(org)) == [
            ("tickets_per_month", "limit_100", 5, 5), ("tickets_per_month", "limit_80", 4, 5),
        ]  # fmt: skip


async def test_concurrent_box_office_sales_sell_exactly_the_limit(
    world: World, redis_client: AnyRedis
) -> None:
    await _plan(world, "seven", tickets_per_month=7)
    org_id, org = await _organizer(world, "seven")
    async with org:
        event_id = await make_event(org)
        pairs = [SEATS[i : i + 2] for i in range(0, 12, 2)]  # 6 sales of 2: at most 3 fit in 7
        results = await asyncio.gather(
            *(_box_office(org, event_id, f"b{i}", *p) for i, p in enumerate(pairs)),
            return_exceptions=True,
        )
        sold = [r for r in results if isinstance(r, sales_pb2.SellAtBoxOfficeResponse)]
        assert len(sold) == 3
        assert {r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)} == {
            grpc.StatusCode.RESOURCE_EXHAUSTED
        }
        assert await _usage(redis_client, org_id) == {"tickets_per_month": 6}
        last = sales_pb2.SellAtBoxOfficeRequest(
            event_id=event_id, general_admission={"floor": 1}, idempotency_key="last", payment_method="cash"
        )
        await org.orders.SellAtBoxOffice(last, metadata=org.metadata)  # 7 of 7
        assert await _usage(redis_client, org_id) == {"tickets_per_month": 7}


async def test_a_refused_sale_gives_its_claim_back_and_a_replay_claims_nothing(
    world: World, redis_client: AnyRedis
) -> None:
    await _plan(world, "two", tickets_per_month=2)
    org_id, org = await _organizer(world, "two")
    async with org:
        event_id = await make_event(org)
        first = await _box_office(org, event_id, "b1", "r0-0")
        with pytest.raises(grpc.aio.AioRpcError) as err:  # sold: refused after its claim, given back
            await _box_office(org, event_id, "b2", "r0-0")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert await _usage(redis_client, org_id) == {"tickets_per_month": 1}
        hold = await _hold(org, event_id, "r0-1")
        request = sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key="c1")
        order = (await org.orders.CommitHold(request, metadata=org.metadata)).order  # 2 of 2
        # at the limit, replays still answer (they claim nothing) and count nothing
        again = await org.orders.CommitHold(request, metadata=org.metadata)
        assert (again.replayed, again.order.order_id) == (True, order.order_id)
        replay = await _box_office(org, event_id, "b1", "r0-0")
        assert replay.replayed
        assert replay.order.order_id == first.order.order_id
        assert await _usage(redis_client, org_id) == {"tickets_per_month": 2}
        await _refused(_box_office(org, event_id, "b3", "r1-0"), "tickets_per_month", 2)
        assert await _usage(redis_client, org_id) == {"tickets_per_month": 2}
