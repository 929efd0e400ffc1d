"""A randomized concurrent history over a running server: season and single-event calls
mixed, over sessions and unary calls mixed.

Six buyers share a season of three events (twelve seats of each, a 1 s lease) through two
``seatwise.client`` clients of one storefront key, one sending unary RPCs and one
multiplexing over two ``SalesService.Session`` streams; every call picks its transport at
random. They hold seats in one event or across the season (every event, or two),
release, extend season holds, commit either (a season commit's retry of an unknown
outcome goes out with the same key over either transport) and cancel one event's order
(a single order, or one of a season order's). The history is recorded as
tests/holds/history.py's :class:`Op` and checked by :func:`check_season_history` against
every event's final Redis state and the season's orders; no timing is asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from google.protobuf.duration_pb2 import Duration
from seatwise.client import SeatwiseClient
from seatwise.v1 import events_pb2, sales_pb2, seasons_pb2

from holds import keys
from holds.redis_client import AnyRedis
from holds.sales import parse_token
from holds.seasons import SeasonOrderRecord, parse_season_token
from server.context import Stores
from tests.api import Api
from tests.holds.factories import check_consistent, read_state
from tests.holds.history import Op, check_season_history
from tests.server.conftest import settle_calls
from tests.server.events import published_map
from tests.server.maps import small_map
from tests.server.test_sessions_history import NORMAL_S, SHORT_S, Recorder, _cancel

ROWS, PER_ROW = 3, 4  # twelve seats: r<row>-<n>, ordinal row * PER_ROW + n
RUN_S = 3.0  # at least this long, then on until the run covered what the checker is about
GIVE_UP_S = 60.0  # a safety bound only (below the test's timeout)
BUYERS = 6


def seat_id(ordinal: int) -> str:
    return f"r{ordinal // PER_ROW}-{ordinal % PER_ROW}"


class SeasonRecorder(Recorder):
    """The sessions history's recorder, reading season answers too; a season commit's orders
    are kept by id and read back from Redis once the run is over."""

    def __init__(self) -> None:
        super().__init__()
        self.season_orders: dict[int, dict[str, str]] = {}  # op id -> event -> order id

    async def run(self, op: Op, call: Any) -> Any:
        result = await super().run(op, call)
        if isinstance(result, seasons_pb2.SeasonHoldResponse):
            op.hold_id = parse_season_token(result.hold.season_hold_token)[1]
            op.expires_ms = result.hold.expires_at.ToMilliseconds()
            op.events = tuple(result.hold.event_ids)
        elif isinstance(result, seasons_pb2.SeasonOrderResponse):
            op.season_order_id = result.order.season_order_id
            self.season_orders[op.id] = {o.event_id: o.order_id for o in result.order.orders}
        return result


class _Shopper:
    def __init__(
        self, name: str, clients: dict[str, SeatwiseClient], api: Api, rec: SeasonRecorder,
        season: seasons_pb2.Season, seed: int,
    ) -> None:  # fmt: skip
        self.name, self.clients, self.api, self.rec, self.season = name, clients, api, rec, season
        self.events = list(season.event_ids)
        self.rng = random.Random(seed)
        self.singles: dict[tuple[str, str], set[int]] = {}  # (event, hold token) -> seats
        self.season_holds: dict[str, tuple[str, ...]] = {}  # season hold token -> its events
        self.orders: list[tuple[str, str]] = []  # (event, order id) it may cancel
        self.retry: list[tuple[str, str]] = []  # (season hold token, key) of unknown season commits
        self.keys = itertools.count()

    def transport(self) -> str:
        return self.rng.choice(sorted(self.clients))

    def deadline(self) -> float:
        return SHORT_S if self.rng.random() < 0.06 else NORMAL_S

    async def run(self, stop_at: float, covered: Callable[[], bool]) -> None:
        give_up_at = stop_at + GIVE_UP_S
        while time.time() < give_up_at and (time.time() < stop_at or not covered()):
            r = self.rng.random()
            if self.orders and r < 0.1:
                await self.cancel()
            elif self.retry and r < 0.2:
                await self.season_commit(*self.retry.pop(), NORMAL_S)
            elif r < 0.45 or not (self.singles or self.season_holds):
                await (self.season_hold() if self.rng.random() < 0.65 else self.hold())
            elif r < 0.55:
                await self.release()
            elif r < 0.65 and self.season_holds:
                await self.season_extend()
            elif self.season_holds and (not self.singles or self.rng.random() < 0.5):
                token = self.rng.choice(sorted(self.season_holds))
                await self.season_commit(token, f"{self.name}-s{next(self.keys)}", self.deadline())
            else:
                await self.commit()
            await asyncio.sleep(self.rng.uniform(0, 0.02))

    def seats(self) -> tuple[int, ...]:
        return tuple(sorted(self.rng.sample(range(ROWS * PER_ROW), self.rng.randint(1, 2))))

    async def hold(self) -> None:
        event_id, seats, transport = self.rng.choice(self.events), self.seats()[:1], self.transport()
        op = self.rec.op(self.name, "hold", transport, seats=seats, event=event_id)
        call = self.clients[transport].hold_seats(
            event_id, [seat_id(s) for s in seats], buyer_id=self.name, deadline_s=self.deadline()
        )
        result = await self.rec.run(op, call)
        if result is not None:
            self.singles[(event_id, result.hold.hold_token)] = set(seats)

    async def season_hold(self) -> None:
        seats, transport = self.seats(), self.transport()
        chosen = sorted(self.rng.sample(self.events, 2)) if self.rng.random() < 0.3 else []
        events = tuple(e for e in self.events if not chosen or e in chosen)
        op = self.rec.op(self.name, "season_hold", transport, seats=seats, events=events)
        call = self.clients[transport].hold_season_seats(
            self.season.season_id, [seat_id(s) for s in seats], event_ids=chosen, buyer_id=self.name,
            deadline_s=self.deadline(),
        )  # fmt: skip
        result = await self.rec.run(op, call)
        if result is not None:
            self.season_holds[result.hold.season_hold_token] = events

    async def release(self) -> None:
        transport = self.transport()
        client = self.clients[transport]
        if self.season_holds and (not self.singles or self.rng.random() < 0.5):
            token, events = self.rng.choice(sorted(self.season_holds.items()))
            op = self.rec.op(
                self.name, "season_release", transport, hold_id=parse_season_token(token)[1], events=events
            )
            await self.rec.run(op, client.release_season_hold(token, deadline_s=self.deadline()))
            self.season_holds.pop(token)
            return
        (event_id, token), _held = self.rng.choice(sorted(self.singles.items()))
        op = self.rec.op(
            self.name, "release", transport, hold_id=parse_token(token)[1], all=True, event=event_id
        )
        await self.rec.run(op, client.release_hold(token, deadline_s=self.deadline()))
        self.singles.pop((event_id, token))

    async def season_extend(self) -> None:
        token, events = self.rng.choice(sorted(self.season_holds.items()))
        transport = self.transport()
        op = self.rec.op(
            self.name, "season_extend", transport, hold_id=parse_season_token(token)[1], events=events
        )
        await self.rec.run(op, self.clients[transport].extend_season_hold(token, deadline_s=NORMAL_S))

    async def commit(self) -> None:
        event_id, token = self.rng.choice(sorted(self.singles))
        if self.rng.random() < 0.15:
            await asyncio.sleep(self.rng.uniform(0.9, 1.1))  # pays slowly: the lease may run out
        transport, key = self.transport(), f"{self.name}-{next(self.keys)}"
        op = self.rec.op(
            self.name, "commit", transport, hold_id=parse_token(token)[1], idem_key=key, event=event_id
        )
        call = self.clients[transport].commit_hold(token, key, deadline_s=self.deadline())
        result = await self.rec.run(op, call)
        if result is not None:
            self.orders.append((event_id, result.order.order_id))
        self.singles.pop((event_id, token))

    async def season_commit(self, token: str, key: str, deadline: float) -> None:
        hold_id = parse_season_token(token)[1]
        events = self.season_holds.get(token) or next(
            o.events for o in self.rec.ops if o.kind == "season_hold" and o.hold_id == hold_id
        )
        if self.rng.random() < 0.1:
            await asyncio.sleep(self.rng.uniform(0.9, 1.1))
        transport = self.transport()
        op = self.rec.op(self.name, "season_commit", transport, hold_id=hold_id, idem_key=key, events=events)
        buyer = sales_pb2.BuyerDetails(name=self.name)
        result = await self.rec.run(
            op, self.clients[transport].commit_season_hold(token, key, buyer=buyer, deadline_s=deadline)
        )
        if result is not None:
            self.orders += [(o.event_id, o.order_id) for o in result.order.orders]
        elif op.outcome == "unknown":
            self.retry.append((token, key))  # a real client retries with the same key
        self.season_holds.pop(token, None)

    async def cancel(self) -> None:
        event_id, order_id = self.rng.choice(self.orders)
        op = self.rec.op(self.name, "cancel", "unary", order_id=order_id, all=True, event=event_id)
        request = sales_pb2.CancelOrderRequest(event_id=event_id, order_id=order_id)
        await self.rec.run(op, _cancel(self.api, request, self.deadline()))
        self.orders.remove((event_id, order_id))


def _coverage(rec: SeasonRecorder) -> list[str]:
    seen = Counter((op.kind, op.outcome, rec.transport[op.id]) for op in rec.ops)
    both = ("unary", "sessions")
    parts = {o for orders in rec.season_orders.values() for o in orders.values()}
    wanted = {
        "3 season commits over each transport": all(seen[("season_commit", "ok", t)] >= 3 for t in both),
        "3 single commits over each transport": all(seen[("commit", "ok", t)] >= 3 for t in both),
        "3 refused season holds over each transport": all(
            seen[("season_hold", "fail", t)] >= 3 for t in both
        ),
        "3 refused single holds": sum(seen[("hold", "fail", t)] for t in both) >= 3,
        "2 season releases and 2 extends": sum(seen[("season_release", "ok", t)] for t in both) >= 2
        and sum(seen[("season_extend", "ok", t)] for t in both) >= 2,
        "2 cancels of a season order's event order": sum(
            1 for op in rec.ops if op.kind == "cancel" and op.outcome == "ok" and op.order_id in parts
        )
        >= 2,
        "2 calls of unknown outcome": sum(1 for op in rec.ops if op.outcome == "unknown") >= 2,
    }
    return [name for name, done in wanted.items() if not done]


async def _season(api: Api) -> seasons_pb2.Season:
    sm = await published_map(api, small_map(ROWS, PER_ROW, 3))
    created = await api.seasons.CreateSeason(
        seasons_pb2.CreateSeasonRequest(name="Series", seat_map_id=sm.seat_map_id, currency="EUR"),
        metadata=api.metadata,
    )
    prices = [
        events_pb2.CategoryPrice(category=c, amount_minor=a) for c, a in (("front", 5000), ("back", 3000))
    ]
    for i in range(3):
        await api.events.CreateEvent(
            events_pb2.CreateEventRequest(
                season_id=created.season.season_id, name=f"Night {i}", prices=prices,
                status=events_pb2.EVENT_STATUS_ON_SALE, hold_ttl=Duration(seconds=1),
            ),
            metadata=api.metadata,
        )  # fmt: skip
    got = await api.seasons.GetSeason(
        seasons_pb2.GetSeasonRequest(season_id=created.season.season_id), metadata=api.metadata
    )
    return got.season


@pytest.mark.slow
async def test_a_history_of_season_and_single_calls_over_sessions_and_unary_calls_is_valid(
    organizer: Api, clients: dict[str, SeatwiseClient], redis_client: AnyRedis, stores: Stores
) -> None:
    season = await _season(organizer)
    rec = SeasonRecorder()
    stop_at = time.time() + RUN_S
    await asyncio.gather(
        *(
            _Shopper(f"b{i}", clients, organizer, rec, season, 4000 + i).run(
                stop_at, lambda: not _coverage(rec)
            )
            for i in range(BUYERS)
        )
    )
    await settle_calls(stores)  # calls abandoned by a deadline too
    finals = {e: await read_state(redis_client, e) for e in season.event_ids}
    for final in finals.values():
        check_consistent(final)
    for op in rec.ops:  # the acknowledged orders as Redis has them (a missing one fails the check)
        if op.kind == "commit" and op.outcome == "ok":
            op.order = finals[op.event].orders.get(op.order_id)
        if op.kind == "season_commit" and op.outcome == "ok":
            made = rec.season_orders[op.id]
            op.event_orders = {e: o for e, i in made.items() if (o := finals[e].orders.get(i)) is not None}
    raw = await redis_client.hgetall(keys.season_keys(season.season_id)[2])
    records = [
        msgspec.json.decode(v, type=SeasonOrderRecord) for k, v in raw.items() if not k.startswith(b"key:")
    ]
    assert check_season_history(rec.ops, finals, records) == []
    outcomes = Counter((op.kind, op.outcome, op.error) for op in rec.ops)
    assert _coverage(rec) == [], f"the run did not exercise what the checker is about: {outcomes}"
