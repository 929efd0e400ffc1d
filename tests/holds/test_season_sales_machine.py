"""A hypothesis state machine drives season sales (bundle prices, ticket types, promo codes)
over season holds and single-event holds of the same
season's events against a plain model.

Each example starts from a flushed Redis and a season of three events on one small map.
Rules: season holds (every event or a subset) and single-event holds on overlapping
seats, commits of either (fresh and replayed idempotency keys), releases of either and
of one event's part of a season hold (its season commit is then refused, changing
nothing), season extends, and expiry of either (moving the lease scores and the season
hold record's expiry into the past: what the passing of the TTL looks like to the
scripts), and the season's bundle prices set or removed. A commit may name a ticket type
for one of its seats and an organizer-wide promo code of two uses: every ticket's price
is the model's (a whole-season commit from the bundle split, a typed seat at its type's
price in each event, the code's discount while it has uses, a refusal once it has none)
and the code's uses are the model's after every step. After every step each event is
read in one atomic cut and compared seat by seat with the model (state and owner), and
:func:`check_consistent` runs on it (no seat sold twice, counters, change stream without
gaps).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from holds import keys, seatvalues
from holds.errors import PreconditionFailed, StoreError
from holds.offers import OfferChoice
from holds.records import Buyer
from holds.sales import hold_token
from holds.seasons import SeasonHoldInfo, SeasonSeatsUnavailable, parse_season_token
from rules.bundles import split_bundle
from rules.promos import PromoCode, TicketType, discount
from server.context import Stores
from tests.holds.factories import (
    PRICES,
    TENANT,
    SyncRedis,
    check_consistent,
    expire_hold_sync,
    read_state_sync,
    sync_client,
)
from tests.holds.test_seasons import TestSeason, make_season

SEATS = 18  # small_map(): 3 rows of 6
EVENTS = 3
BUYERS = ("ann", "")
PROMO = PromoCode("TWO", "percent", bps=1000, max_uses=2)  # organizer-wide: one use per season order


def child(i: int) -> TicketType:
    return TicketType(type_id="child", name="Child", prices={"vip": 2000 + 10 * i, "std": 700 + 10 * i})


@dataclass
class MHold:
    events: list[str]  # one event for a single-event hold
    seats: list[int]
    season: bool
    released_parts: set[str] = field(default_factory=set)


class SeasonMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    sync: SyncRedis
    stores: Stores

    def __init__(self) -> None:
        super().__init__()
        self.sync.flushall()
        self.s: TestSeason = self.run(make_season(self.stores, EVENTS))
        self.events = self.s.events
        self.seat: dict[tuple[str, int], tuple[str, str]] = {
            (e, o): ("free", "") for e in self.events for o in range(SEATS)
        }
        self.live: dict[str, MHold] = {}  # token -> live hold
        self.dead: dict[str, MHold] = {}  # token -> expired or released hold
        self.committed: dict[str, tuple[str, list[str]]] = {}  # idempotency key -> (token, order ids)
        self.keys = itertools.count()
        for i, e in enumerate(self.events):
            self.run(self.stores.offers.put_type(TENANT, e, child(i), "create"))
        self.run(self.stores.offers.put_promo(TENANT, "", PROMO, "create"))
        self.bundle: dict[str, int] = {}
        self.promo_uses = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def attempt(self, coro: Any) -> Any:
        try:
            return self.run(coro)
        except StoreError as exc:
            return exc

    def free(self, hold: MHold, token: str, events: list[str] | None = None) -> None:
        for e in events or hold.events:
            for o in hold.seats:
                if self.seat[(e, o)] == ("held", self.hold_id(token)):
                    self.seat[(e, o)] = ("free", "")

    @staticmethod
    def hold_id(token: str) -> str:
        return token.partition(".")[2]

    # -- rules -------------------------------------------------------------------
    @rule(data=st.data(), buyer=st.sampled_from(BUYERS))
    def season_hold(self, data: st.DataObject, buyer: str) -> None:
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True))
        subset = data.draw(st.lists(st.sampled_from(self.events), max_size=EVENTS, unique=True))
        chosen = [e for e in self.events if e in subset] or self.events
        taken = {e: [o for o in seats if self.seat[(e, o)][0] != "free"] for e in chosen}
        result = self.attempt(
            self.stores.season_sales.hold(
                TENANT,
                self.s.season.season_id,
                [self.s.seat(o) for o in seats],
                event_ids=subset,
                buyer=buyer,
            )
        )
        if any(taken.values()):
            assert isinstance(result, SeasonSeatsUnavailable), result
            expected = {e: [self.s.seat(o) for o in seats if o in t] for e, t in taken.items() if t}
            assert result.by_event == expected
            return
        assert isinstance(result, SeasonHoldInfo), result
        assert result.event_ids == chosen
        self.live[result.token] = MHold(chosen, seats, season=True)
        for e in chosen:
            for o in seats:
                self.seat[(e, o)] = ("held", self.hold_id(result.token))

    @rule(data=st.data())
    def single_hold(self, data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(self.events))
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True))
        busy = [o for o in seats if self.seat[(event, o)][0] != "free"]
        result = self.attempt(self.stores.sales.hold_seats(TENANT, event, [self.s.seat(o) for o in seats]))
        if busy:
            assert isinstance(result, StoreError), result
            assert sorted(result.seat_ids) == sorted(self.s.seat(o) for o in busy)  # type: ignore[attr-defined]
            return
        assert not isinstance(result, StoreError), result
        self.live[result.token] = MHold([event], seats, season=False)
        for o in seats:
            self.seat[(event, o)] = ("held", self.hold_id(result.token))

    @initialize(data=st.data())
    def first_bundle(self, data: st.DataObject) -> None:
        self.set_bundle(data, min_size=1)

    @rule(data=st.data())
    def set_bundle(self, data: st.DataObject, min_size: int = 0) -> None:
        bundle = data.draw(
            st.dictionaries(st.sampled_from(["vip", "std"]), st.integers(0, 20_000), min_size=min_size)
        )
        season = self.run(
            self.stores.seasons.set_bundle_prices(TENANT, self.s.season.season_id, self.s.loaded, bundle)
        )
        assert season.bundle_prices == bundle
        self.bundle = bundle

    def price(self, hold: MHold, seat: int, typed: bool) -> list[int]:
        """The model's price of ``seat`` in each event of ``hold``'s orders, before a discount."""
        cat = self.s.loaded.index.placed[seat].seat.category
        positions = [self.events.index(e) for e in hold.events]
        if typed:
            return [child(i).prices[cat] for i in positions]
        lists = [PRICES[cat] + 100 * i for i in positions]
        if hold.season and hold.events == self.events and cat in self.bundle:
            return split_bundle(self.bundle[cat], lists)
        return lists

    @precondition(lambda self: self.live or self.dead)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from([*self.live, *self.dead]))  # in the order made: replayable
        hold = self.live.get(token) or self.dead[token]
        key = f"k{next(self.keys)}"
        typed = data.draw(st.sampled_from([None, *hold.seats])) if hold.season else None
        promo = hold.season and data.draw(st.booleans())
        offer = OfferChoice(
            {self.s.seat(typed): "child"} if typed is not None else {}, promo_code="TWO" if promo else ""
        )
        ok = token in self.live and not hold.released_parts
        if hold.season:
            result = self.attempt(
                self.stores.season_sales.commit(TENANT, token, key, Buyer(), offer=offer or None)
            )
        else:
            result = self.attempt(self.stores.sales.commit(TENANT, token, key, Buyer()))
        if ok and promo and self.promo_uses >= PROMO.max_uses:
            assert isinstance(result, PreconditionFailed), result
            assert "'TWO' is used up" in str(result)
            return
        if not ok:
            assert isinstance(result, StoreError), result
            return
        assert not isinstance(result, StoreError), result
        orders = [o.order_id for o in result.orders] if hold.season else [result[1].order_id]
        made = result.orders if hold.season else [result[1]]
        for j, seat in enumerate(sorted(hold.seats)):
            prices = self.price(hold, seat, seat == typed)
            if promo:
                prices = [p - discount(p, PROMO) for p in prices]
            assert [next(t.price for t in o.tickets if t.seat == seat) for o in made] == prices, (j, seat)
        self.promo_uses += bool(promo)
        for e, order_id in zip(hold.events, orders, strict=True):
            for o in hold.seats:
                self.seat[(e, o)] = ("sold", order_id)
        del self.live[token]
        self.committed[key] = (token, orders)

    @precondition(lambda self: self.committed)
    @rule(data=st.data())
    def commit_again(self, data: st.DataObject) -> None:
        """The same key: the same orders, replayed, nothing changes."""
        key = data.draw(st.sampled_from(sorted(self.committed)))
        token, orders = self.committed[key]
        if "~" in token:
            _ctx, order, replayed = self.run(self.stores.sales.commit(TENANT, token, key, Buyer()))
            assert replayed
            assert [order.order_id] == orders
        else:
            again = self.run(self.stores.season_sales.commit(TENANT, token, key, Buyer()))
            assert again.replayed
            assert [o.order_id for o in again.orders] == orders

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(list(self.live)))
        hold = self.live.pop(token)
        if hold.season:
            self.run(self.stores.season_sales.release(TENANT, token))
        else:
            self.run(self.stores.sales.release_hold(TENANT, token))
        self.free(hold, token)
        self.dead[token] = hold

    @precondition(
        lambda self: any(h.season and len(h.events) > len(h.released_parts) for h in self.live.values())
    )
    @rule(data=st.data())
    def release_one_part(self, data: st.DataObject) -> None:
        """One event's part of a season hold let go as an ordinary hold: its commit is refused."""
        token = data.draw(
            st.sampled_from(
                [t for t, h in self.live.items() if h.season and len(h.events) > len(h.released_parts)]
            )
        )
        hold = self.live[token]
        left = [e for e in hold.events if e not in hold.released_parts]
        event = data.draw(st.sampled_from(left))
        self.run(self.stores.sales.release_hold(TENANT, hold_token(event, self.hold_id(token))))
        hold.released_parts.add(event)
        self.free(hold, token, [event])

    @precondition(lambda self: any(h.season for h in self.live.values()))
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from([t for t, h in self.live.items() if h.season]))
        result = self.attempt(self.stores.season_sales.extend(TENANT, token))
        assert isinstance(result, StoreError) == bool(self.live[token].released_parts), result

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(list(self.live)))
        hold = self.live.pop(token)
        hold_id = self.hold_id(token)
        for e in hold.events:
            expire_hold_sync(self.sync, e, hold_id)
        if hold.season:
            season_id, _ = parse_season_token(token)
            record_key = keys.season_keys(season_id)[1]
            record = json.loads(self.sync.hget(record_key, hold_id))  # type: ignore[arg-type]
            record["expires"] = 1
            self.sync.hset(record_key, hold_id, json.dumps(record))
        self.free(hold, token)
        self.dead[token] = hold

    # -- the stored state is the model's -------------------------------------------
    @invariant()
    def promo_uses_match_the_model(self) -> None:
        uses = self.run(self.stores.offers.list_promos(TENANT, ""))
        assert [(i.promo.code, i.uses) for i in uses] == [("TWO", self.promo_uses)]

    @invariant()
    def matches_the_model(self) -> None:
        for e in self.events:
            state = read_state_sync(self.sync, e)
            check_consistent(state)
            for o in range(SEATS):
                seat, owner = seatvalues.decode(state.seats.get(o))
                if seat == "held" and not state.live(owner.decode() if isinstance(owner, bytes) else owner):
                    seat, owner = "free", ""  # lazily expired
                owner = owner.decode() if isinstance(owner, bytes) else owner
                assert (seat, owner) == self.seat[(e, o)], f"event {e} seat {o}"


@pytest.mark.slow
def test_season_state_machine(redis_url: str) -> None:
    loop = asyncio.new_event_loop()
    SeasonMachine.loop = loop
    SeasonMachine.sync = sync_client(redis_url)
    SeasonMachine.stores = Stores.open(redis_url)
    try:
        run_state_machine_as_test(
            SeasonMachine,
            settings=settings(
                max_examples=25,
                stateful_step_count=25,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
                report_multiple_bugs=False,
                phases=[Phase.generate, Phase.shrink],
            ),
        )
    finally:
        loop.run_until_complete(SeasonMachine.stores.close())
        loop.close()
        SeasonMachine.sync.close()
