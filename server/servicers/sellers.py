"""seatwise.v1.SellerService: resale sellers' orders, ratings, scores and fees, per platform."""

from __future__ import annotations

from typing import Final

import msgspec
from seatwise.v1 import sellers_pb2, sellers_pb2_grpc

from holds.errors import InvalidRequest
from holds.platform.platforms import PlatformStore
from holds.platform.sellers import SellerLedger, SellerMetrics
from rules.seller_scores import (
    Outcome,
    Score,
    ScoringRules,
    SellerOrder,
    points_text,
    quarter_start_ms,
)
from server import scope
from server.audit import note_target
from server.auth import OPERATOR
from server.context import Stores
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context
from server.servicers.tenancy import timestamp_field_ms, timestamp_ms

OUTCOMES: Final[dict[int, Outcome]] = {
    sellers_pb2.SELLER_ORDER_OUTCOME_UNSPECIFIED: "pending",
    sellers_pb2.SELLER_ORDER_OUTCOME_ACCEPTED: "accepted",
    sellers_pb2.SELLER_ORDER_OUTCOME_REJECTED: "rejected",
    sellers_pb2.SELLER_ORDER_OUTCOME_BUSTED: "busted",
}
TIMES: Final = ("placed_at", "event_starts_at", "decided_at", "busted_at", "delivery_due_at", "delivered_at")
# the scalar fields of SellerScoring; 0 takes the rules' default
SCALARS: Final = (
    "window_days", "settle_days", "min_orders", "min_orders_days", "rejected_weight", "busted_weight",
    "processing_full_s", "processing_zero_s", "unscored_fee_bps",
)  # fmt: skip


def scoring_rules(message: sellers_pb2.SellerScoring) -> ScoringRules:
    fields: dict[str, object] = {name: getattr(message, name) for name in SCALARS if getattr(message, name)}
    if message.criteria:
        fields["criteria"] = [{"name": c.name, "points": c.points} for c in message.criteria]
    if message.fees:
        fields["fees"] = [{"min_score": f.min_score, "fee_bps": f.fee_bps} for f in message.fees]
    try:
        return msgspec.convert(fields, ScoringRules)
    except msgspec.ValidationError as exc:  # "Expected `int` <= 8 - at `$.busted_weight`"
        raise InvalidRequest("scoring", str(exc)) from exc


def scoring_pb(rules: ScoringRules) -> sellers_pb2.SellerScoring:
    return sellers_pb2.SellerScoring(
        **{name: getattr(rules, name) for name in SCALARS},
        criteria=[sellers_pb2.SellerCriterion(name=c.name, points=c.points) for c in rules.criteria],
        fees=[sellers_pb2.SellerFeeStep(min_score=f.min_score, fee_bps=f.fee_bps) for f in rules.fees],
    )


def seller_order(message: sellers_pb2.SellerOrder, i: int) -> SellerOrder:
    if message.outcome not in OUTCOMES:
        raise InvalidRequest(f"orders[{i}].outcome", f"unknown outcome {message.outcome}")
    for field in ("placed_at", "event_starts_at"):
        if not message.HasField(field):
            raise InvalidRequest(f"orders[{i}].{field}", "required")
    ms = {f: timestamp_field_ms(message, f) for f in TIMES}
    if any(v < 0 for v in ms.values()) or message.value_minor < 0:
        raise InvalidRequest(f"orders[{i}]", "times must be after 1970 and value_minor not negative")
    return SellerOrder(
        order_id=message.order_id,
        placed_ms=ms["placed_at"],
        event_starts_ms=ms["event_starts_at"],
        value_minor=message.value_minor,
        outcome=OUTCOMES[message.outcome],
        decided_ms=ms["decided_at"],
        busted_ms=ms["busted_at"],
        delivery_due_ms=ms["delivery_due_at"],
        delivered_ms=ms["delivered_at"],
    )


def score_pb(result: Score) -> sellers_pb2.SellerScore:
    return sellers_pb2.SellerScore(
        as_of=timestamp_ms(result.as_of_ms),
        scored=result.scored,
        total=str(result.total),
        fee_bps=result.fee_bps,
        components=[
            sellers_pb2.SellerScoreComponent(
                component=p.component,
                points=points_text(p.points),
                max_points=p.max_points,
                orders=p.orders,
                good=p.good,
                rejected=p.rejected,
                busted=p.busted,
                value_good_minor=p.value_good,
                value_weighted_bad_minor=p.value_weighted_bad,
                average_ms=p.average_ms,
            )
            for p in result.parts
        ],
        orders_in_window=result.orders_in_window,
        recent_orders=result.recent_orders,
    )


def metrics_pb(metrics: SellerMetrics) -> sellers_pb2.SellerMetrics:
    lock = metrics.locked
    return sellers_pb2.SellerMetrics(
        seller_id=metrics.seller_id,
        weekly=score_pb(metrics.weekly),
        locked_fee_bps=lock.fee_bps,
        locked_total=lock.total,
        locked_scored=lock.scored,
        quarter_start=timestamp_ms(quarter_start_ms(lock.quarter_start_ms)),
    )


class SellerServicer(sellers_pb2_grpc.SellerServiceServicer):
    def __init__(self, stores: Stores) -> None:
        self._platforms: PlatformStore = stores.platforms
        self._ledger = SellerLedger(stores.redis)

    async def _platform_id(self, requested: str) -> str:
        return (await scope.platform(self._platforms, requested)).platform_id

    async def SetSellerScoring(
        self, request: sellers_pb2.SetSellerScoringRequest, context: Context
    ) -> sellers_pb2.SellerScoring:
        platform_id = await self._platform_id(request.platform_id)
        rules = await self._ledger.set_rules(platform_id, scoring_rules(request.scoring))
        return scoring_pb(rules)

    async def GetSellerScoring(
        self, request: sellers_pb2.GetSellerScoringRequest, context: Context
    ) -> sellers_pb2.SellerScoring:
        return scoring_pb(await self._ledger.rules(await self._platform_id(request.platform_id)))

    async def RecordSellerOrders(
        self, request: sellers_pb2.RecordSellerOrdersRequest, context: Context
    ) -> sellers_pb2.RecordSellerOrdersResponse:
        platform_id = await self._platform_id(request.platform_id)
        orders = [seller_order(o, i) for i, o in enumerate(request.orders)]
        recorded = await self._ledger.record(platform_id, request.seller_id, orders)
        return sellers_pb2.RecordSellerOrdersResponse(recorded=recorded)

    async def RateSeller(
        self, request: sellers_pb2.RateSellerRequest, context: Context
    ) -> sellers_pb2.RateSellerResponse:
        platform_id = await self._platform_id(request.platform_id)
        await self._ledger.rate(platform_id, request.seller_id, request.criterion, request.rating_bps)
        note_target(seller_id=request.seller_id)
        return sellers_pb2.RateSellerResponse()

    async def GetSellerMetrics(
        self, request: sellers_pb2.GetSellerMetricsRequest, context: Context
    ) -> sellers_pb2.SellerMetrics:
        platform_id = await self._platform_id(request.platform_id)
        return metrics_pb(await self._ledger.metrics(platform_id, request.seller_id))


SERVICE = ServiceDeclaration(
    descriptor=sellers_pb2.DESCRIPTOR.services_by_name["SellerService"],
    add_to_server=sellers_pb2_grpc.add_SellerServiceServicer_to_server,
    factory=SellerServicer,
    methods={
        "SetSellerScoring": MethodRule(OPERATOR, audited=True),
        "GetSellerScoring": MethodRule(OPERATOR),
        "RecordSellerOrders": MethodRule(OPERATOR),
        "RateSeller": MethodRule(OPERATOR, audited=True),
        "GetSellerMetrics": MethodRule(OPERATOR),
    },
)
