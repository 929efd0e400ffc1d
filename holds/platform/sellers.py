"""Resale sellers' orders, ratings and scores, per platform (rules/seller_scores.py scores them).

Every key carries the platform's tag ``{p:<platform_id>}``, so one seller's
record is one slot. The platform's marketplace reports each order a seller
receives and its outcome as it changes (a full record each time: the newest
report wins); the platform rates its sellers on its own criteria. A score is
computed when asked, from the orders in its window (a few thousand at most for
the busiest seller), never stored; only the fee locked for a quarter is, the
first time it is asked for in that quarter, so changing the rules mid-quarter
changes the weekly figure but not the fee a seller already pays.

Resales made on seatwise itself (``holds/aftersale.py``, ``resale_commit.lua``) enter
their seller's ledger without the marketplace reporting them: the script that commits a
resale also puts it in its event's ``ledgerdue`` set, and :class:`NativeResales` moves
each one due into the ledger of the organizer's platform (its record keyed by the resale
id, so writing it twice writes the same record) and only then takes it off the set. A
process that dies in between leaves it due; the next resale commit of that event (or a
retry of the same one) records it. docs/sellers.md, "Resales made here".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import msgspec

from holds import keys
from holds.errors import InvalidRequest, NotFound
from holds.ids import check_client_id
from holds.platform.hub import starts_ms
from holds.platform.tenants import TenantStore
from holds.records import Resale, json_encoder, resale_decoder
from holds.redis_client import AnyRedis, wrap_errors
from rules.errors import InvalidScoring
from rules.seller_scores import (
    DAY_MS,
    Score,
    ScoringRules,
    SellerOrder,
    check_rules,
    order_problems,
    quarter_start_ms,
    score,
    week_start_ms,
)

MAX_ORDERS_PER_CALL: Final = 500
DUE_PER_CALL: Final = 64  # resales moved into sellers' ledgers per call
RATING_SCALE: Final = 10_000  # ratings in basis points of 1
PRUNE_PER_CALL: Final = 1_000

rules_decoder = msgspec.json.Decoder(ScoringRules)
order_decoder = msgspec.json.Decoder(SellerOrder)


class FeeLock(msgspec.Struct, frozen=True):
    quarter_start_ms: int
    fee_bps: int
    scored: bool
    total: str  # "0.00" to "100.00"
    locked_at_ms: int


lock_decoder = msgspec.json.Decoder(FeeLock)


@dataclass(frozen=True)
class SellerMetrics:
    seller_id: str
    weekly: Score  # as of this week's Monday 00:00 UTC: for information
    locked: FeeLock  # the quarter's fee, in force
    rules: ScoringRules
    ratings: dict[str, Fraction]


class SellerLedger:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client

    async def rules(self, platform_id: str) -> ScoringRules:
        async with wrap_errors("read seller rules"):
            raw = await self._r.get(keys.seller_rules(platform_id))
        return rules_decoder.decode(raw) if raw else ScoringRules()

    async def set_rules(self, platform_id: str, rules: ScoringRules) -> ScoringRules:
        try:
            check_rules(rules)
        except InvalidScoring as exc:
            raise InvalidRequest("rules", "; ".join(exc.problems)) from exc
        async with wrap_errors("write seller rules"):
            await self._r.set(keys.seller_rules(platform_id), json_encoder.encode(rules))
        return rules

    async def record(self, platform_id: str, seller_id: str, orders: list[SellerOrder]) -> int:
        """Store the orders' records (each replaces the one with its id); every one
        is checked before any is written. Returns how many were written."""
        check_client_id("seller_id", seller_id)
        if not orders:
            raise InvalidRequest("orders", "name at least one order")
        if len(orders) > MAX_ORDERS_PER_CALL:
            raise InvalidRequest("orders", f"at most {MAX_ORDERS_PER_CALL} per call")
        latest_ms = int(time.time() * 1000) + DAY_MS  # a day of clock skew between systems, no more
        for i, order in enumerate(orders):
            check_client_id(f"orders[{i}].order_id", order.order_id)
            if max(order.placed_ms, order.decided_ms, order.busted_ms, order.delivered_ms) > latest_ms:
                raise InvalidRequest(f"orders[{i}]", f"order {order.order_id!r}: a time in the future")
            problems = order_problems(order)
            if problems:
                raise InvalidRequest(f"orders[{i}]", f"order {order.order_id!r}: " + "; ".join(problems))
        if len({o.order_id for o in orders}) != len(orders):
            raise InvalidRequest("orders", "each order at most once per call")
        rules = await self.rules(platform_id)
        by_id = keys.seller_orders(platform_id, seller_id)
        by_time = keys.seller_orders_by_time(platform_id, seller_id)
        oldest_kept = int(time.time() * 1000) - rules.window_days * DAY_MS
        async with wrap_errors("record seller orders"):
            stale = await self._r.zrangebyscore(by_time, "-inf", f"({oldest_kept}", 0, PRUNE_PER_CALL)
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hset(by_id, mapping={o.order_id: json_encoder.encode(o) for o in orders})
                pipe.zadd(by_time, {o.order_id: o.placed_ms for o in orders})
                if stale:  # out of any window now: forgotten
                    pipe.hdel(by_id, *stale)
                    pipe.zrem(by_time, *stale)
                await pipe.execute()
        return len(orders)

    async def record_resale(self, platform_id: str, resale: Resale, event_starts_ms: int) -> SellerOrder:
        """A resale made here as its seller's order (``resale:<resale id>``): placed and
        accepted at the buyer's commit, delivered then (the buyer's token is issued by the
        commit). Writing it again writes the same record: never counted twice."""
        order = native_order(resale, event_starts_ms)
        by_id = keys.seller_orders(platform_id, resale.seller_id)
        by_time = keys.seller_orders_by_time(platform_id, resale.seller_id)
        async with wrap_errors("record seller orders"), self._r.pipeline(transaction=True) as pipe:
            pipe.hset(by_id, order.order_id, json_encoder.encode(order))
            pipe.zadd(by_time, {order.order_id: order.placed_ms})
            await pipe.execute()
        return order

    async def rate(self, platform_id: str, seller_id: str, criterion: str, rating_bps: int) -> None:
        check_client_id("seller_id", seller_id)
        rules = await self.rules(platform_id)
        if criterion not in {c.name for c in rules.criteria}:
            raise InvalidRequest("criterion", f"{criterion!r} is not one of the platform's seller criteria")
        if not 0 <= rating_bps <= RATING_SCALE:
            raise InvalidRequest("rating_bps", f"must be 0 to {RATING_SCALE}")
        await self._known(platform_id, seller_id)
        async with wrap_errors("rate seller"):
            await self._r.hset(keys.seller_ratings(platform_id, seller_id), criterion, str(rating_bps))

    async def metrics(self, platform_id: str, seller_id: str, now_ms: int | None = None) -> SellerMetrics:
        """The weekly score and the quarter's locked fee (locking it if this is the
        quarter's first look). NOT_FOUND for a seller with no order recorded."""
        check_client_id("seller_id", seller_id)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        await self._known(platform_id, seller_id)
        async with wrap_errors("read seller"):
            raw_orders = await self._r.hvals(keys.seller_orders(platform_id, seller_id))
            raw_ratings = await self._r.hgetall(keys.seller_ratings(platform_id, seller_id))
        orders = [order_decoder.decode(raw) for raw in raw_orders]
        ratings = {k.decode(): Fraction(int(v), RATING_SCALE) for k, v in raw_ratings.items()}
        rules = await self.rules(platform_id)
        quarter = quarter_start_ms(now)
        locks = keys.seller_fee_locks(platform_id, seller_id)
        async with wrap_errors("read seller fee"):
            raw_lock = await self._r.hget(locks, str(quarter))
            if raw_lock is None:
                at_start = score(orders, quarter, rules, ratings)
                lock = FeeLock(quarter, at_start.fee_bps, at_start.scored, str(at_start.total), now)
                await self._r.hsetnx(locks, str(quarter), json_encoder.encode(lock))
                raw_lock = await self._r.hget(locks, str(quarter))  # another caller's, if it was first
        assert raw_lock is not None
        weekly = score(orders, week_start_ms(now), rules, ratings)
        return SellerMetrics(seller_id, weekly, lock_decoder.decode(raw_lock), rules, ratings)

    async def _known(self, platform_id: str, seller_id: str) -> None:
        async with wrap_errors("read seller"):
            exists = await self._r.exists(keys.seller_orders(platform_id, seller_id))
        if not exists:
            raise NotFound("seller", seller_id)


def native_order(resale: Resale, event_starts_ms: int) -> SellerOrder:
    """The seller's order of a resale made here: accepted and delivered at the buyer's commit;
    an event without a start time counts as starting then (near-term)."""
    at = resale.accepted_ms
    return SellerOrder(
        order_id=f"resale:{resale.resale_id}",
        placed_ms=at,
        event_starts_ms=max(event_starts_ms, 0) or at,
        value_minor=resale.price,
        outcome="accepted",
        decided_ms=at,
        delivery_due_ms=resale.delivered_ms,
        delivered_ms=resale.delivered_ms,
    )


class NativeResales:
    """Moves an event's committed resales into their sellers' ledgers (the organizer's
    platform's), once each: see the module docstring."""

    def __init__(self, client: AnyRedis, tenants: TenantStore, ledger: SellerLedger | None = None) -> None:
        self._r = client
        self._tenants = tenants
        self._ledger = ledger or SellerLedger(client)

    async def settle(self, tenant_id: str, event_id: str, limit: int = DUE_PER_CALL) -> int:
        """Record the event's resales still due (at most ``limit``); returns how many. An
        organizer outside platforms has no seller ledger: its resales leave the set unrecorded."""
        _, records, _, due = keys.resale_keys(event_id)
        async with wrap_errors("read resales due"):
            ids = await self._r.zrange(due, 0, limit - 1)
            if not ids:
                return 0
            raw = await self._r.hmget(records, ids)
            starts_at = await self._r.hget(keys.event_key(event_id, "meta"), "starts_at")
        organizer = await self._tenants.organizer(tenant_id)
        platform_id = organizer.platform_id if organizer is not None else ""
        event_starts = starts_ms(starts_at.decode() if isinstance(starts_at, bytes) else starts_at or "") or 0
        recorded = 0
        for resale_id, resale_raw in zip(ids, raw, strict=True):
            if resale_raw is not None and platform_id:
                await self._ledger.record_resale(platform_id, resale_decoder.decode(resale_raw), event_starts)
                recorded += 1
            async with wrap_errors("read resales due"):
                await self._r.zrem(due, resale_id)
        return recorded
