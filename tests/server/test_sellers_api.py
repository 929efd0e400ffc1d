"""SellerService end to end: a platform's scoring rules, sellers' orders and ratings,
the weekly score with its numbers, the quarter's locked fee, isolation and bad input."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import sellers_pb2, sellers_pb2_grpc

from holds.platform.sellers import SellerLedger
from holds.redis_client import AnyRedis
from rules.seller_scores import DAY_MS, quarter_start_ms, week_start_ms
from tests.api import Api, field_violations
from tests.server.test_platforms_api import _platform

NOW_MS = int(time.time() * 1000)
HOUR_MS = 3_600_000


def _ts(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def _order(i: int, *, days_ago: float = 30, outcome: int = sellers_pb2.SELLER_ORDER_OUTCOME_ACCEPTED,
           value: int = 10_000, event_in_days: float = 20) -> sellers_pb2.SellerOrder:  # fmt: skip
    """An order as the marketplace reports it, placed ``days_ago`` before this week's Monday."""
    placed = week_start_ms(NOW_MS) - int(days_ago * DAY_MS)
    order = sellers_pb2.SellerOrder(
        order_id=f"o{i}",
        placed_at=_ts(placed),
        event_starts_at=_ts(placed + int(event_in_days * DAY_MS)),
        value_minor=value,
        outcome=outcome,  # type: ignore[arg-type]
    )
    if outcome != sellers_pb2.SELLER_ORDER_OUTCOME_UNSPECIFIED:
        order.decided_at.CopyFrom(_ts(placed + HOUR_MS))  # an hour to decide: full points
    if outcome in (sellers_pb2.SELLER_ORDER_OUTCOME_ACCEPTED, sellers_pb2.SELLER_ORDER_OUTCOME_BUSTED):
        order.delivery_due_at.CopyFrom(_ts(placed + DAY_MS))
    if outcome == sellers_pb2.SELLER_ORDER_OUTCOME_ACCEPTED:
        order.delivered_at.CopyFrom(_ts(placed + 2 * HOUR_MS))
    if outcome == sellers_pb2.SELLER_ORDER_OUTCOME_BUSTED:
        order.busted_at.CopyFrom(_ts(placed + 3 * HOUR_MS))
    return order


@dataclass
class Platforms:
    p1: Api
    p2: Api
    s1: sellers_pb2_grpc.SellerServiceStub
    s2: sellers_pb2_grpc.SellerServiceStub


@pytest.fixture
async def platforms(admin: Api, server: str) -> AsyncIterator[Platforms]:
    key1 = await _platform(admin, "p1", terms_version="v3")
    key2 = await _platform(admin, "p2", terms_version="v3")
    async with Api(server, key1) as p1, Api(server, key2) as p2:
        yield Platforms(
            p1,
            p2,
            sellers_pb2_grpc.SellerServiceStub(p1.channel),
            sellers_pb2_grpc.SellerServiceStub(p2.channel),
        )


async def _record(p: Platforms, seller: str, orders: list[sellers_pb2.SellerOrder]) -> int:
    reply = await p.s1.RecordSellerOrders(
        sellers_pb2.RecordSellerOrdersRequest(seller_id=seller, orders=orders), metadata=p.p1.metadata
    )
    return reply.recorded


async def test_a_sellers_score_its_numbers_and_its_locked_fee(platforms: Platforms) -> None:
    p = platforms
    # 36 accepted, 2 rejected, 2 busted (x4): fill rate 40 * 36/46 = 31.30; delivery 36 of 38 on time
    orders = [_order(i) for i in range(36)]
    orders += [_order(36 + i, outcome=sellers_pb2.SELLER_ORDER_OUTCOME_REJECTED) for i in range(2)]
    orders += [_order(38 + i, outcome=sellers_pb2.SELLER_ORDER_OUTCOME_BUSTED) for i in range(2)]
    assert await _record(p, "broker-7", orders) == 40
    metrics = await p.s1.GetSellerMetrics(
        sellers_pb2.GetSellerMetricsRequest(seller_id="broker-7"), metadata=p.p1.metadata
    )
    weekly = metrics.weekly
    assert weekly.scored
    assert weekly.as_of.ToMilliseconds() == week_start_ms(NOW_MS)
    parts = {c.component: c for c in weekly.components}
    fill = parts["fill_rate"]
    assert (fill.points, fill.orders, fill.good, fill.rejected, fill.busted) == ("31.30", 40, 36, 2, 2)
    assert fill.value_weighted_bad_minor == 2 * 10_000 + 4 * 2 * 10_000
    assert (parts["delivery_rate"].orders, parts["delivery_rate"].good) == (38, 36)
    assert parts["delivery_rate"].points == "18.95"  # 20 * 36/38
    assert parts["processing_time"].points == "10.00"
    assert parts["processing_time"].average_ms == HOUR_MS
    assert parts["near_term_fill_rate"].points == "10.00"  # no near-term order: nothing failed
    assert parts["platform_criteria"].points == "20.00"  # no criteria configured
    assert weekly.total == "90.25"
    assert weekly.fee_bps == 400  # the default table: 85 and over
    # the quarter's fee: the score as of the quarter's first instant, locked once
    assert metrics.quarter_start.ToMilliseconds() == quarter_start_ms(NOW_MS)
    again = await p.s1.GetSellerMetrics(
        sellers_pb2.GetSellerMetricsRequest(seller_id="broker-7"), metadata=p.p1.metadata
    )
    assert (again.locked_fee_bps, again.locked_total) == (metrics.locked_fee_bps, metrics.locked_total)


async def test_the_locked_fee_survives_a_change_of_rules(
    platforms: Platforms, redis_client: AnyRedis
) -> None:
    p = platforms
    await _record(p, "broker-1", [_order(i, days_ago=120) for i in range(30)])  # long before this quarter
    ledger = SellerLedger(redis_client)
    quarter = quarter_start_ms(NOW_MS)
    first = await ledger.metrics("p1", "broker-1", quarter + DAY_MS)
    assert (first.locked.fee_bps, first.locked.scored) == (275, True)
    await p.s1.SetSellerScoring(
        sellers_pb2.SetSellerScoringRequest(
            scoring=sellers_pb2.SellerScoring(
                fees=[sellers_pb2.SellerFeeStep(min_score=0, fee_bps=900)], unscored_fee_bps=950
            )
        ),
        metadata=p.p1.metadata,
    )
    later = await ledger.metrics("p1", "broker-1", quarter + 30 * DAY_MS)
    assert later.locked.fee_bps == 275, "locked for the quarter"
    assert later.weekly.fee_bps == 900, "the weekly figure follows the new table"
    # the next quarter locks under the new rules (its orders are too old by then: unscored)
    next_quarter = await ledger.metrics("p1", "broker-1", quarter_start_ms(quarter + 100 * DAY_MS))
    assert (next_quarter.locked.scored, next_quarter.locked.fee_bps) == (False, 950)


async def test_criteria_and_ratings(platforms: Platforms) -> None:
    p = platforms
    scoring = sellers_pb2.SellerScoring(
        criteria=[sellers_pb2.SellerCriterion(name="complaints", points=15),
                  sellers_pb2.SellerCriterion(name="listing_accuracy", points=5)],
    )  # fmt: skip
    stored = await p.s1.SetSellerScoring(
        sellers_pb2.SetSellerScoringRequest(scoring=scoring), metadata=p.p1.metadata
    )
    assert (stored.busted_weight, stored.window_days) == (4, 365)  # defaults filled in
    assert [c.name for c in stored.criteria] == ["complaints", "listing_accuracy"]
    await _record(p, "broker-2", [_order(i) for i in range(30)])
    await p.s1.RateSeller(
        sellers_pb2.RateSellerRequest(seller_id="broker-2", criterion="complaints", rating_bps=5_000),
        metadata=p.p1.metadata,
    )
    metrics = await p.s1.GetSellerMetrics(
        sellers_pb2.GetSellerMetricsRequest(seller_id="broker-2"), metadata=p.p1.metadata
    )
    criteria = next(c for c in metrics.weekly.components if c.component == "platform_criteria")
    assert (criteria.points, criteria.orders, criteria.good) == ("7.50", 2, 1)  # 15 * 0.5, one of two rated
    assert metrics.weekly.total == "87.50"


async def test_too_few_recent_orders_get_no_score(platforms: Platforms) -> None:
    p = platforms
    await _record(p, "new-seller", [_order(i) for i in range(24)])
    metrics = await p.s1.GetSellerMetrics(
        sellers_pb2.GetSellerMetricsRequest(seller_id="new-seller"), metadata=p.p1.metadata
    )
    assert (metrics.weekly.scored, metrics.weekly.total, metrics.weekly.recent_orders) == (False, "0.00", 24)
    assert metrics.weekly.fee_bps == 1_000  # unscored_fee_bps


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


async def test_bad_input_is_refused_naming_the_field_and_changes_nothing(platforms: Platforms) -> None:
    p = platforms
    bad = _order(1)
    bad.ClearField("decided_at")  # accepted but never decided
    error = await _error(_record(p, "broker-3", [_order(0), bad]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error)[0][0] == "orders[1]"
    assert "decided_at" in field_violations(error)[0][1]
    error = await _error(
        p.s1.GetSellerMetrics(
            sellers_pb2.GetSellerMetricsRequest(seller_id="broker-3"), metadata=p.p1.metadata
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND, "nothing of the batch was written"
    future = _order(2, days_ago=-10)  # placed days from now
    error = await _error(_record(p, "broker-3", [future]))
    assert field_violations(error)[0] == ("orders[0]", "order 'o2': a time in the future")
    error = await _error(_record(p, "not a valid id!", [_order(0)]))
    assert field_violations(error)[0][0] == "seller_id"
    error = await _error(
        p.s1.SetSellerScoring(
            sellers_pb2.SetSellerScoringRequest(scoring=sellers_pb2.SellerScoring(busted_weight=9)),
            metadata=p.p1.metadata,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "busted_weight" in field_violations(error)[0][1]
    error = await _error(
        p.s1.SetSellerScoring(
            sellers_pb2.SetSellerScoringRequest(
                scoring=sellers_pb2.SellerScoring(criteria=[sellers_pb2.SellerCriterion(name="x", points=5)])
            ),
            metadata=p.p1.metadata,
        )
    )
    assert "add up to 20" in field_violations(error)[0][1]
    await _record(p, "broker-3", [_order(0)])
    error = await _error(
        p.s1.RateSeller(
            sellers_pb2.RateSellerRequest(seller_id="broker-3", criterion="unknown", rating_bps=1),
            metadata=p.p1.metadata,
        )
    )
    assert field_violations(error)[0][0] == "criterion"


async def test_another_platforms_sellers_are_not_found(platforms: Platforms) -> None:
    p = platforms
    await _record(p, "broker-4", [_order(i) for i in range(30)])
    mine = await p.s1.GetSellerMetrics(
        sellers_pb2.GetSellerMetricsRequest(seller_id="broker-4"), metadata=p.p1.metadata
    )
    assert mine.weekly.scored
    theirs = await _error(
        p.s2.GetSellerMetrics(
            sellers_pb2.GetSellerMetricsRequest(seller_id="broker-4"), metadata=p.p2.metadata
        )
    )
    nobody = await _error(
        p.s2.GetSellerMetrics(
            sellers_pb2.GetSellerMetricsRequest(seller_id="broker-x"), metadata=p.p2.metadata
        )
    )
    assert theirs.code() == nobody.code() == grpc.StatusCode.NOT_FOUND
    assert theirs.details().replace("broker-4", "<id>") == nobody.details().replace("broker-x", "<id>")
    named = await _error(
        p.s2.GetSellerMetrics(
            sellers_pb2.GetSellerMetricsRequest(platform_id="p1", seller_id="broker-4"),
            metadata=p.p2.metadata,
        )
    )
    assert named.code() == grpc.StatusCode.NOT_FOUND
