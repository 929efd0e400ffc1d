"""A hypothesis state machine drives season holds and sales (bundle prices, ticket types,
promo codes) and single-event holds of the same season's events against a plain model.

Each example starts from a flushed Redis and a season of three events on one small map,
the first under a one-seat distancing rule, a presale channel in every event with two
seats of the second allocated to it, a child ticket type in every event, an organizer-wide
promo code of one use and bundle prices. Rules: season holds (every event or a subset, with
or without the channel's access, with or without GA places, with or without a request
id) and single-event holds of seats (with or without access) or GA places on overlapping
seats, retries of season holds by request id (the same request: the same hold or why it
is gone; another: refused), commits of either (fresh and replayed idempotency keys; a season
commit may name the child type for one of its seats and the promo code), releases of either
and of one event's part of a season hold (its season commit is then refused, changing
nothing), season extends, expiry of either (moving the lease scores and the season hold
record's expiry into the past: what the passing of the TTL looks like to the scripts), and
the season's bundle prices set or removed. Each hold's outcome is predicted by the model:
taken seats first, then seats of the channel without access, then seats within the rule's
distance of another group, then too few GA places. Every ticket's price is the model's (a
whole-season commit from the bundle split, a typed seat at its type's price in each event,
the code's discount while it has uses, a refusal once it has none). After every step the
code's uses are the model's, and each event is read in one atomic cut and compared seat by
seat with the model (state and owner) and its live GA places held and sold, and
:func:`check_consistent` runs on it (no seat sold twice, counters, change stream without
gaps).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import event as tally
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from holds import keys, seatvalues
from holds.channels import ChannelAccess, ChannelDef
from holds.errors import (
    GeneralAdmissionUnavailable,
    InvalidRequest,
    PreconditionFailed,
    SeatsDistanced,
    SeatsInWrongState,
    SeatsUnavailable,
    StoreError,
)
from holds.offers import OfferChoice
from holds.records import Buyer
from holds.sales import HoldInfo, hold_token
from holds.seasons import (
    SeasonGeneralAdmissionUnavailable,
    SeasonHoldInfo,
    SeasonSeatsDistanced,
    SeasonSeatsInChannel,
    SeasonSeatsUnavailable,
    parse_season_token,
)
from rules.bundles import split_bundle
from rules.promos import PromoCode, TicketType, discount
from seatmap.distancing import DistancingRule, neighbourhoods
from tests.holds.factories import GA_AREA, PRICES, TENANT, check_consistent, expire_hold_sync, read_state_sync
from tests.holds.machines import StoreMachine, run_machine
from tests.holds.test_seasons import TestSeason, make_season

SEATS = 18  # small_map(): 3 rows of 6
EVENTS = 3
BUYERS = ("ann", "")
CAPACITY = 5  # small_map()'s GA area
RULE = "row:1"  # the first event's distancing rule
ALLOCATED = (5, 11)  # seats of the second event allocated to the presale channel
PRESALE = ChannelDef(id="presale", name="Presale", access_code="EARLY")
ACCESS = ChannelAccess("presale", "EARLY")
PROMO = PromoCode("ONE", "percent", bps=1000, max_uses=1)  # organizer-wide: one use per season order


def child(i: int) -> TicketType:
    return TicketType(type_id="child", name="Child", prices={"vip": 2000 + 10 * i, "std": 700 + 10 * i})


@dataclass
class MHold:
    events: list[str]  # one event for a single-event hold
    seats: list[int]
    season: bool
    released_parts: set[str] = field(default_factory=set)
    ga: int = 0  # GA places in each event


@dataclass(frozen=True)
class SeasonRequest:
    """A season hold request as sent: a retry sends it again."""

    seats: tuple[int, ...]
    subset: tuple[str, ...]
    buyer: str
    access: bool
    ga: int


class SeasonMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.s: TestSeason = self.run(make_season(self.stores, EVENTS))
        self.events = self.s.events
        self.run(self.selling_rules())
        near = neighbourhoods(self.s.loaded.index, DistancingRule.parse(RULE))
        self.near = {o: near.indices[near.indptr[o] : near.indptr[o + 1]].tolist() for o in range(SEATS)}
        self.ga: dict[str, tuple[int, int]] = dict.fromkeys(self.events, (0, 0))  # live held, sold
        self.requests: dict[str, tuple[SeasonRequest, str]] = {}  # request id -> request, token
        self.request_ids = itertools.count()
        self.seat: dict[tuple[str, int], tuple[str, str]] = {
            (e, o): ("free", "") for e in self.events for o in range(SEATS)
        }
        self.live: dict[str, MHold] = {}  # token -> live hold
        self.dead: dict[str, MHold] = {}  # token -> expired or released hold
        self.committed: dict[str, tuple[str, list[str]]] = {}  # idempotency key -> (token, order ids)
        self.keys = itertools.count()
        self.bundle: dict[str, int] = {}
        self.promo_uses = 0
        # hypothesis favours rules without preconditions: cap the cheap ones per example
        self.budget = {"single_ga_hold": 3, "set_bundle": 4}

    async def selling_rules(self) -> None:
        ref = await self.stores.events.read_ref(self.events[0])
        await self.stores.events.update(ref, {"vip", "std", "ga"}, changes={"distancing": RULE})
        for e in self.events:
            await self.stores.channels.define(TENANT, e, PRESALE)
        await self.stores.channels.allocate(
            TENANT, self.events[1], "presale", [self.s.seat(o) for o in ALLOCATED], {}
        )
        for i, e in enumerate(self.events):
            await self.stores.offers.put_type(TENANT, e, child(i), "create")
        await self.stores.offers.put_promo(TENANT, "", PROMO, "create")

    def refusal(self, events: list[str], seats: list[int], access: bool, ga: int) -> tuple[str, Any]:
        """What a hold of ``seats`` and ``ga`` places in each of ``events`` is refused for, as the
        scripts check: ("", None) when it is not."""
        taken = {e: [o for o in seats if self.seat[(e, o)][0] != "free"] for e in events}
        if any(taken.values()):
            return "taken", {e: t for e, t in taken.items() if t}
        if not access:
            in_channel = {e: [o for o in seats if e == self.events[1] and o in ALLOCATED] for e in events}
            if any(in_channel.values()):
                return "channel", {e: t for e, t in in_channel.items() if t}
        if self.events[0] in events:
            near = [
                o for o in seats if any(self.seat[(self.events[0], n)][0] != "free" for n in self.near[o])
            ]
            if near:
                return "distanced", {self.events[0]: near}
        for e in events:
            if ga and sum(self.ga[e]) + ga > CAPACITY:
                return "ga", (e, CAPACITY - sum(self.ga[e]))
        return "", None

    def names(self, by_event: dict[str, list[int]]) -> dict[str, list[str]]:
        return {e: [self.s.seat(o) for o in seats] for e, seats in by_event.items()}

    def take(self, hold: MHold, token: str) -> None:
        self.live[token] = hold
        for e in hold.events:
            for o in hold.seats:
                self.seat[(e, o)] = ("held", self.hold_id(token))
            held, sold = self.ga[e]
            self.ga[e] = (held + hold.ga, sold)

    def give_back(self, hold: MHold, events: list[str]) -> None:
        for e in events:
            held, sold = self.ga[e]
            self.ga[e] = (held - hold.ga, sold)

    def free(self, hold: MHold, token: str, events: list[str] | None = None) -> None:
        for e in events or hold.events:
            for o in hold.seats:
                if self.seat[(e, o)] == ("held", self.hold_id(token)):
                    self.seat[(e, o)] = ("free", "")
        self.give_back(hold, [e for e in (events or hold.events) if e not in hold.released_parts])

    @staticmethod
    def hold_id(token: str) -> str:
        return token.partition(".")[2]

    # -- rules -------------------------------------------------------------------
    @rule(data=st.data(), buyer=st.sampled_from(BUYERS), access=st.booleans(), retry_safe=st.booleans())
    def season_hold(self, data: st.DataObject, buyer: str, access: bool, retry_safe: bool) -> None:
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), max_size=3, unique=True))
        ga = data.draw(st.integers(0 if seats else 1, 2))
        subset = data.draw(st.lists(st.sampled_from(self.events), max_size=EVENTS, unique=True))
        request = SeasonRequest(tuple(seats), tuple(subset), buyer, access, ga)
        request_id = f"q{next(self.request_ids)}" if retry_safe else ""
        result = self.attempt(self.season_call(request, request_id))
        chosen = [e for e in self.events if e in subset] or self.events
        self.check_season(chosen, request, result)
        if isinstance(result, SeasonHoldInfo):
            assert not result.replayed
            if request_id:
                self.requests[request_id] = (request, result.token)

    def season_call(self, request: SeasonRequest, request_id: str) -> Any:
        return self.stores.season_sales.hold(
            TENANT,
            self.s.season.season_id,
            [self.s.seat(o) for o in request.seats],
            event_ids=list(request.subset),
            buyer=request.buyer,
            access=ACCESS if request.access else ChannelAccess(),
            request_id=request_id,
            ga={GA_AREA: request.ga} if request.ga else None,
        )

    def check_season(self, chosen: list[str], request: SeasonRequest, result: Any) -> None:
        seats = list(request.seats)
        why, detail = self.refusal(chosen, seats, request.access, request.ga)
        tally(f"season hold: {why or 'held'}")
        match why:
            case "taken":
                assert isinstance(result, SeasonSeatsUnavailable), result
                assert result.by_event == self.names(detail)
            case "channel":
                assert isinstance(result, SeasonSeatsInChannel), result
                assert result.by_event == self.names(detail)
            case "distanced":
                assert isinstance(result, SeasonSeatsDistanced), result
                assert result.by_event == self.names(detail)
            case "ga":
                assert isinstance(result, SeasonGeneralAdmissionUnavailable), result
                assert (result.event_id, result.available) == detail
            case _:
                assert isinstance(result, SeasonHoldInfo), result
                assert result.event_ids == chosen
                assert result.ga == ({GA_AREA: request.ga} if request.ga else {})
                self.take(MHold(chosen, seats, season=True, ga=request.ga), result.token)

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), changed=st.booleans())
    def retry_season_hold(self, data: st.DataObject, changed: bool) -> None:
        """A request id sent again: the same request gets the hold it made (or why it is gone),
        another request is refused; nothing changes either way."""
        request_id = data.draw(st.sampled_from(sorted(self.requests)))
        request, token = self.requests[request_id]
        if changed:
            request = SeasonRequest(
                request.seats, request.subset, request.buyer, request.access, request.ga + 1
            )
        result = self.attempt(self.season_call(request, request_id))
        tally(f"season retry: {'changed' if changed else 'live' if token in self.live else 'gone'}")
        if changed:
            assert isinstance(result, InvalidRequest), result
            assert result.field == "request_id"
        elif token in self.live:
            assert isinstance(result, SeasonHoldInfo), result
            assert (result.token, result.replayed) == (token, True)
        else:
            assert isinstance(result, StoreError), result  # released, expired or committed

    @rule(data=st.data(), access=st.booleans())
    def single_hold(self, data: st.DataObject, access: bool) -> None:
        event = data.draw(st.sampled_from(self.events))
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True))
        why, detail = self.refusal([event], seats, access, 0)
        tally(f"single hold: {why or 'held'}")
        result = self.attempt(
            self.stores.sales.hold_seats(
                TENANT, event, [self.s.seat(o) for o in seats], access=ACCESS if access else ChannelAccess()
            )
        )
        if why:
            refused = {"taken": SeatsUnavailable, "channel": SeatsInWrongState, "distanced": SeatsDistanced}[
                why
            ]
            assert isinstance(result, refused), result
            named = list(result.states) if isinstance(result, SeatsInWrongState) else result.seat_ids  # type: ignore[attr-defined]
            assert sorted(named) == sorted(self.s.seat(o) for o in detail[event])
            return
        assert isinstance(result, HoldInfo), result
        self.take(MHold([event], seats, season=False), result.token)

    @precondition(lambda self: self.budget["single_ga_hold"] > 0)
    @rule(data=st.data())
    def single_ga_hold(self, data: st.DataObject) -> None:
        self.budget["single_ga_hold"] -= 1
        event = data.draw(st.sampled_from(self.events))
        qty = data.draw(st.integers(1, 3))
        why, _ = self.refusal([event], [], False, qty)
        tally(f"single GA hold: {why or 'held'}")
        result = self.attempt(self.stores.sales.hold_general_admission(TENANT, event, GA_AREA, qty))
        if why:
            assert isinstance(result, GeneralAdmissionUnavailable), result
            return
        assert isinstance(result, HoldInfo), result
        self.take(MHold([event], [], season=False, ga=qty), result.token)

    @initialize(data=st.data())
    def first_bundle(self, data: st.DataObject) -> None:
        self.set_bundle(data, min_size=1)

    @precondition(lambda self: self.budget["set_bundle"] > 0)
    @rule(data=st.data())
    def set_bundle(self, data: st.DataObject, min_size: int = 0) -> None:
        self.budget["set_bundle"] -= 1
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
        # a live hold half of the time (dead ones pile up); in the order made: replayable
        live_only = bool(self.live) and data.draw(st.booleans())
        token = data.draw(st.sampled_from([*self.live] if live_only else [*self.live, *self.dead]))
        hold = self.live.get(token) or self.dead[token]
        key = f"k{next(self.keys)}"
        typed = data.draw(st.sampled_from([None, *hold.seats])) if hold.season else None
        promo = hold.season and data.draw(st.booleans())
        offer = OfferChoice(
            {self.s.seat(typed): "child"} if typed is not None else {}, promo_code="ONE" if promo else ""
        )
        ok = token in self.live and not hold.released_parts
        if hold.season:
            result = self.attempt(
                self.stores.season_sales.commit(TENANT, token, key, Buyer(), offer=offer or None)
            )
        else:
            result = self.attempt(self.stores.sales.commit(TENANT, token, key, Buyer()))
        used_up = ok and promo and self.promo_uses >= PROMO.max_uses
        what = "used up" if used_up else "made" if ok else "refused"
        tally(f"{'season' if hold.season else 'single'} commit: {what}{' (code)' if promo else ''}")
        if used_up:
            assert isinstance(result, PreconditionFailed), result
            assert "'ONE' is used up" in str(result)
            return
        if not ok:
            assert isinstance(result, StoreError), result
            return
        assert not isinstance(result, StoreError), result
        made = result.orders if hold.season else [result[1]]
        for j, seat in enumerate(sorted(hold.seats)):
            prices = self.price(hold, seat, seat == typed)
            if promo:
                prices = [p - discount(p, PROMO) for p in prices]
            assert [next(t.price for t in o.tickets if t.seat == seat) for o in made] == prices, (j, seat)
        self.promo_uses += bool(promo)
        orders = [o.order_id for o in made]
        for e, order_id in zip(hold.events, orders, strict=True):
            for o in hold.seats:
                self.seat[(e, o)] = ("sold", order_id)
            held, sold = self.ga[e]
            self.ga[e] = (held - hold.ga, sold + hold.ga)
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
        self.free(hold, token, [event])
        hold.released_parts.add(event)

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
        assert [(i.promo.code, i.uses) for i in uses] == [("ONE", self.promo_uses)]

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
            live_ga = sum(h.ga.get(GA_AREA, 0) for hid, h in state.holds.items() if state.live(hid))
            assert (live_ga, state.ga_sold.get(GA_AREA, 0)) == self.ga[e], f"event {e} GA"


@pytest.mark.slow
def test_season_state_machine(redis_url: str) -> None:
    # one machine for season holds and season sales (they were two, each repeating the
    # other's holds, releases and extends): fewer steps than the two had, as many rules
    run_machine(SeasonMachine, redis_url, examples=30, steps=30)
