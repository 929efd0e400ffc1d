"""A hypothesis state machine drives every inventory script against a plain model.

Each example starts from a flushed Redis and a fresh event (18 seats, GA of 5,
at most 6 places per hold, 8 per buyer). Rules hold and add to holds (some
with a request id), retry those requests (the same request: a replay, or why
the hold is gone; another request under the id: refused), extend, release (all
or part), commit (fresh and reused idempotency keys; with ticket types and a promo code of
limited uses), cancel (whole or part, to
free or not-for-sale), change seat status, expire holds, scan tickets at the door (the
current holder's token and earlier ones), transfer tickets and exchange them for a free
seat or a live hold's seat, list tickets for resale (within the limits or not) and
buy listings (hold, a second buyer refused, commit: the seller's token revoked), allocate
seats to a storefront or a box-office channel, close channels and hold with a channel's
access (or a wrong code). After every step
the whole event is read in one atomic cut and compared with the model: every
seat's state and owner, the orders and their tickets, idempotency keys, GA
counts, places held and bought per buyer (never past the limit), the
availability snapshot, the seats' channel allocations, check-ins (scans admit a ticket
once, refuse a cancelled ticket's token; the door's counters), and the invariant checks of
:func:`tests.holds.factories.check_consistent` (no seat sold twice, GA within
capacity, change stream without gaps...).

Expiry does not sleep: a hold is expired by moving its score in the ``holdexp``
zset into the past. The scripts decide expiry only by comparing that score with
Redis's TIME, so this is exactly what the passing of the TTL looks like to them
(it simulates the clock; the TTL itself is 10 minutes, so nothing expires on
its own during a run).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    invariant,
    precondition,
    rule,
)

from holds import keys
from holds.aftersale import ResaleRules
from holds.availability import decode_snapshot
from holds.channels import ChannelAccess, ChannelDef
from holds.errors import (
    GeneralAdmissionUnavailable,
    HoldExpired,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    SeatsInWrongState,
    SeatsUnavailable,
    StoreError,
)
from holds.inventory import (
    SeatOrdinalsHeld,
    SeatOrdinalsInChannel,
    SeatOrdinalsInWrongState,
    SeatOrdinalsUnavailable,
)
from holds.offers import SaleOffer
from holds.records import Buyer, Order, Sale
from holds.sales import hold_token
from rules.promos import PromoCode, TicketType, discount
from tests.holds.factories import (
    GA_AREA,
    PRICES,
    TestEvent,
    check_consistent,
    expire_hold_sync,
    make_event,
    read_state_sync,
)
from tests.holds.machines import StoreMachine, run_machine

ROWS, PER_ROW, GA_CAP, PER_HOLD, PER_BUYER = 3, 6, 5, 6, 8
RULES = ResaleRules(allowed=True, floor=100, cap=900)
BUYERS = ("ann", "bob", "")  # "": an anonymous hold, no buyer limit
SEATS = ROWS * PER_ROW
STATES = ("free", "held", "sold", "blocked", "not_for_sale")
GONE = (HoldExpired, NotFound, PreconditionFailed)  # a hold that is no longer live
CHILD = TicketType("child", "Child", {"vip": 2000, "std": 700, "ga": 333}, max_per_order=2)
PROMO = "HALF"
# channels: a presale (storefront, opened by its code) and the box office's
CHANNELS = (ChannelDef("pre", "Presale", access_code="EARLY"), ChannelDef("door", "Door", "box_office"))
ACCESS = {"right": ChannelAccess("pre", "EARLY"), "wrong": ChannelAccess("pre", "LATE")}
HALF = PromoCode(PROMO, "percent", bps=5000, max_uses=3, max_uses_per_buyer=1)


@dataclass(frozen=True)
class MRequest:
    """A hold request sent with a request id, as the client would send it again."""

    seats: tuple[int, ...]
    ga: int
    buyer: str
    hold_id: str | None  # adding to this hold
    made: str  # the hold it made (or added to)


@dataclass
class MHold:
    buyer: str
    seats: list[int]
    ga: int = 0

    @property
    def count(self) -> int:
        return len(self.seats) + self.ga


@dataclass
class MOrder:
    hold_id: str
    key: str
    buyer: str
    seat_tickets: dict[str, int]  # ticket id -> seat
    ga_tickets: list[str]
    cancelled: set[str] = field(default_factory=set)
    total: int = 0
    prices: dict[str, int] = field(default_factory=dict)  # ticket id -> price
    refunded: dict[str, int] = field(default_factory=dict)  # ticket id -> refunded so far
    exchanged: set[str] = field(default_factory=set)  # replaced by an exchange
    revoked: dict[str, list[str]] = field(default_factory=dict)  # ticket id -> why each revision ended
    promo: bool = False  # used the promo code; ``returned``: its use given back (the whole order cancelled)
    returned: bool = False

    def revision(self, ticket_id: str) -> int:
        return len(self.revoked.get(ticket_id, []))

    def gone(self, ticket_id: str) -> bool:
        """Cancelled or exchanged: the ticket is no longer valid."""
        return ticket_id in self.cancelled or ticket_id in self.exchanged


class InventoryMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.inv = self.stores.inventory
        self.ev: TestEvent = self.run(
            make_event(
                self.stores.seatmaps,
                self.stores.events,
                rows=ROWS,
                seats_per_row=PER_ROW,
                ga_capacity=GA_CAP,
                hold_ttl_ms=600_000,
                max_seats_per_hold=PER_HOLD,
                max_seats_per_buyer=PER_BUYER,
            )
        )
        # the model
        self.seat: dict[int, tuple[str, str]] = {o: ("free", "") for o in range(SEATS)}  # state, owner
        self.holds: dict[str, MHold] = {}  # live holds
        self.expired: dict[str, MHold] = {}  # expired, maybe not yet purged by Redis
        self.orders: dict[str, MOrder] = {}
        self.idem: dict[str, str] = {}
        self.keys = itertools.count()
        self.requests: dict[str, MRequest] = {}  # request ids of holds made or added to
        self.ended: dict[str, str] = {}  # hold -> "expired" | "released" | "committed"
        self.request_ids = itertools.count()
        # hypothesis favours rules without preconditions: cap the cheap ones per example
        self.budget = {"set_status": 4, "reuse_key": 3}
        self.tokens: dict[
            tuple[str, int], str
        ] = {}  # (ticket id, revision) -> its token (issued while valid)
        self.admitted: dict[str, str] = {}  # ticket id -> the gate that admitted it
        # ticket types and promo codes: a child type and a 50% code of 3 uses, 1 per buyer
        self.run(self.stores.offers.put_type(self.ev.tenant, self.ev.event_id, CHILD, "create"))
        self.run(self.stores.offers.put_promo(self.ev.tenant, self.ev.event_id, HALF, "create"))
        self.promo_uses: dict[str, int] = dict.fromkeys(BUYERS, 0)  # "": in total
        self.listings: dict[str, tuple[str, str]] = {}  # ticket id -> (order id, listing id) listed now
        self.run(self.stores.after_sale.set_resale_rules(self.ev.tenant, self.ev.event_id, RULES))
        for channel in CHANNELS:
            self.run(self.stores.channels.define(self.ev.tenant, self.ev.event_id, channel))
        self.alloc: dict[int, str] = {}  # seat -> the open channel it is allocated to
        self.open_channels = {c.id for c in CHANNELS}

    def attempt(self, coro: Any) -> Any:
        """The call's result, or the store error it raised."""
        try:
            return self.run(coro)
        except (StoreError, SeatOrdinalsUnavailable, SeatOrdinalsInChannel) as exc:
            return exc

    # -- helpers ---------------------------------------------------------------
    def ga_held(self) -> int:
        return sum(h.ga for h in self.holds.values())

    def ga_sold(self) -> int:
        return sum(len([t for t in o.ga_tickets if not o.gone(t)]) for o in self.orders.values())

    def held_by(self, buyer: str) -> int:
        return sum(h.count for h in self.holds.values() if h.buyer == buyer)

    def bought_by(self, buyer: str) -> int:
        return sum(
            len(o.seat_tickets) + len(o.ga_tickets) - len(o.cancelled) - len(o.exchanged)
            for o in self.orders.values()
            if o.buyer == buyer
        )

    def request_id(self, use: bool) -> str:
        return f"r{next(self.request_ids)}" if use else ""

    def purged(self) -> None:
        """Scripts that purge on the way (hold, full release, commit) drop every expired hold here."""
        self.expired.clear()

    def expect_hold(
        self, hold: MHold | None, seats: list[int], ga: int, buyer: str, access: str = ""
    ) -> type[Exception] | None:
        """The error hold.lua must answer, in its order of checks, or None for success
        (``access``: "right" or "wrong" names the presale channel with its code or another)."""
        if any(self.seat[o][0] != "free" for o in seats):
            return SeatOrdinalsUnavailable
        if access == "wrong":
            return InvalidRequest
        if access == "right" and "pre" not in self.open_channels:
            return PreconditionFailed
        allowed = {"pre"} if access else set()  # the channels this hold may take seats of
        if any(o in self.alloc and self.alloc[o] not in allowed for o in seats):
            return SeatOrdinalsInChannel
        if ga and self.ga_held() + self.ga_sold() + ga > GA_CAP:
            return GeneralAdmissionUnavailable
        if (hold.count if hold else 0) + len(seats) + ga > PER_HOLD:
            return LimitExceeded
        if buyer and self.held_by(buyer) + self.bought_by(buyer) + len(seats) + ga > PER_BUYER:
            return LimitExceeded
        return None

    # -- rules -----------------------------------------------------------------
    @rule(data=st.data(), ga=st.integers(0, 3), buyer=st.sampled_from(BUYERS), retry_safe=st.booleans())
    def hold(self, data: st.DataObject, ga: int, buyer: str, retry_safe: bool) -> None:
        seats = data.draw(
            st.lists(st.integers(0, SEATS - 1), min_size=0 if ga else 1, max_size=4, unique=True)
        )
        self.purged()
        error = self.expect_hold(None, seats, ga, buyer)
        request_id = self.request_id(retry_safe)
        result = self.attempt(
            self.inv.hold(
                self.ev.event_id,
                seats=self.ev.seats(*seats),
                ga={GA_AREA: ga} if ga else None,
                buyer=buyer,
                request_id=request_id,
            )
        )
        if isinstance(result, Exception):
            assert error is not None, f"the hold failed: {result!r}"
            assert isinstance(result, error), f"expected {error.__name__}, got {result!r}"
            if isinstance(result, SeatOrdinalsUnavailable):  # names exactly the seats that are not free
                assert sorted(result.ordinals) == sorted(o for o in seats if self.seat[o][0] != "free")
            return
        assert error is None, f"expected {error.__name__}, the hold succeeded"
        assert not result.replayed
        self.holds[result.hold_id] = MHold(buyer, list(seats), ga)
        if request_id:
            self.requests[request_id] = MRequest(tuple(seats), ga, buyer, None, result.hold_id)
        for o in seats:
            self.seat[o] = ("held", result.hold_id)

    @precondition(lambda self: self.holds or self.expired)
    @rule(data=st.data(), ga=st.integers(0, 2), retry_safe=st.booleans())
    def hold_more(self, data: st.DataObject, ga: int, retry_safe: bool) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds) + list(self.expired)))
        seats = data.draw(
            st.lists(st.integers(0, SEATS - 1), min_size=0 if ga else 1, max_size=3, unique=True)
        )
        live = hold_id in self.holds
        hold = self.holds.get(hold_id) or self.expired[hold_id]
        self.purged()
        error = self.expect_hold(hold, seats, ga, hold.buyer) if live else HoldExpired
        request_id = self.request_id(retry_safe)
        result = self.attempt(
            self.inv.hold(
                self.ev.event_id,
                seats=self.ev.seats(*seats),
                ga={GA_AREA: ga} if ga else None,
                buyer=hold.buyer,
                hold_id=hold_id,
                request_id=request_id,
            )
        )
        if isinstance(result, Exception):
            assert error is not None, f"add to {hold_id} failed: {result!r}"
            assert isinstance(result, error if live else GONE), f"expected {error.__name__}, got {result!r}"
            return
        assert error is None, f"expected {error.__name__}, the add succeeded"
        assert result.hold_id == hold_id
        assert not result.replayed
        if request_id:
            self.requests[request_id] = MRequest(tuple(seats), ga, hold.buyer, hold_id, hold_id)
        hold.seats += seats
        hold.ga += ga
        assert result.record.seat_ordinals == hold.seats
        for o in seats:
            self.seat[o] = ("held", hold_id)

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), same=st.booleans())
    def retry_hold(self, data: st.DataObject, same: bool) -> None:
        """A request sent again with its request id: the reply was lost, or the client reuses the id."""
        request_id = data.draw(st.sampled_from(sorted(self.requests)))
        req = self.requests[request_id]
        seats, ga, buyer = list(req.seats), req.ga, req.buyer
        if not same:  # another request under the id: other seats, GA or buyer
            change = data.draw(st.sampled_from(["seats", "ga", "buyer"]))
            if change == "seats":
                seats = data.draw(
                    st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True).filter(
                        lambda s: sorted(s) != sorted(req.seats)
                    )
                )
            elif change == "ga":
                ga += 1
            else:
                buyer = next(b for b in BUYERS if b != buyer)
        result = self.attempt(
            self.inv.hold(
                self.ev.event_id,
                seats=self.ev.seats(*seats),
                ga={GA_AREA: ga} if ga else None,
                buyer=buyer,
                hold_id=req.hold_id,
                request_id=request_id,
            )
        )
        # answered before anything is held or purged: nothing in the model changes
        if not same:
            assert isinstance(result, InvalidRequest), f"another request under {request_id}: {result!r}"
            assert result.field == "request_id"
            return
        made = req.made
        if made in self.holds:
            assert not isinstance(result, Exception), f"replay of {request_id} failed: {result!r}"
            assert result.replayed
            assert result.hold_id == made
            assert result.record.seat_ordinals == self.holds[made].seats
            assert result.record.count == self.holds[made].count
        elif made in self.expired or self.ended.get(made) == "expired":
            assert isinstance(result, HoldExpired), f"replay of expired {made}: {result!r}"
        else:
            assert isinstance(result, PreconditionFailed), f"replay of {made}: {result!r}"
            assert self.ended[made] in str(result)

    @precondition(lambda self: self.holds or self.expired)
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds) + list(self.expired)))
        if hold_id in self.holds:
            before = int(self.sync.zscore(self.ev.keys[4], hold_id) or 0)
            view, _capped = self.run(self.inv.extend(self.ev.event_id, hold_id))
            assert view.expires_ms >= before
        else:
            with pytest.raises(GONE):
                self.run(self.inv.extend(self.ev.event_id, hold_id))

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), whole=st.booleans())
    def release(self, data: st.DataObject, whole: bool) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        hold = self.holds[hold_id]
        if whole:
            assert self.run(self.inv.release(self.ev.event_id, hold_id)) == 0
            self.purged()
            part, ga = list(hold.seats), hold.ga
        else:
            part = data.draw(st.lists(st.sampled_from(hold.seats), unique=True)) if hold.seats else []
            ga = data.draw(st.integers(0, hold.ga))
            if not part and not ga:
                return
            remaining = self.run(
                self.inv.release(self.ev.event_id, hold_id, seats=part, ga={GA_AREA: ga} if ga else None)
            )
            assert remaining == hold.count - len(part) - ga
        for o in part:
            if self.seat[o] == ("held", hold_id):  # not a seat the box office sold over the hold
                self.seat[o] = ("free", "")
        hold.seats = [o for o in hold.seats if o not in part]
        hold.ga -= ga
        if hold.count == 0:
            del self.holds[hold_id]
            self.ended[hold_id] = "released"

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def release_a_seat_not_in_the_hold(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        other = data.draw(st.sampled_from([o for o in range(SEATS) if o not in self.holds[hold_id].seats]))
        mine = self.holds[hold_id].seats[:1]
        with pytest.raises(SeatOrdinalsInWrongState):
            self.run(self.inv.release(self.ev.event_id, hold_id, seats=[*mine, other]))

    @precondition(lambda self: self.holds or self.expired)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds) + list(self.expired)))
        key = f"k{next(self.keys)}"
        if hold_id in self.expired:
            with pytest.raises(GONE):
                self.run(self.inv.commit(self.ev.event_id, hold_id, key, Buyer(name="x")))
            return
        if any(self.seat[o] != ("held", hold_id) for o in self.holds[hold_id].seats):
            with pytest.raises(HoldExpired):  # the box office sold a seat over it: fenced
                self.run(self.inv.commit(self.ev.event_id, hold_id, key, Buyer(name="x")))
            return
        if data.draw(st.booleans()):
            self.commit_with_types_and_a_code(data, hold_id, key)
            return
        hold = self.holds.pop(hold_id)
        result = self.run(self.inv.commit(self.ev.event_id, hold_id, key, Buyer(name="x")))
        assert (
            result.order.total
            == sum(self.ev.prices[self.ev.categories[o]] for o in hold.seats) + hold.ga * PRICES["ga"]
        )
        self.committed(hold_id, hold, key, result)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def commit_typed(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        if all(self.seat[o] == ("held", hold_id) for o in self.holds[hold_id].seats):  # else: commit's
            self.commit_with_types_and_a_code(data, hold_id, f"k{next(self.keys)}")

    def commit_with_types_and_a_code(self, data: st.DataObject, hold_id: str, key: str) -> None:
        """Some places sold as the child type (at most 2 per order), maybe with a 50% code of
        3 uses, 1 per buyer: the script refuses what the model says, else prices as it does."""
        hold = self.holds[hold_id]
        promo = data.draw(st.sampled_from(["", PROMO]))
        typed = data.draw(st.lists(st.sampled_from(hold.seats), unique=True)) if hold.seats else []
        typed_ga = data.draw(st.integers(0, hold.ga))
        ga_types = {GA_AREA: {CHILD.type_id: typed_ga}} if typed_ga else {}
        offer = SaleOffer(seats={str(o): CHILD.type_id for o in typed}, ga=ga_types, promo=promo)
        attempt = self.attempt(self.inv.commit(self.ev.event_id, hold_id, key, Buyer(name="x"), offer=offer))
        if len(typed) + typed_ga > CHILD.max_per_order:
            assert isinstance(attempt, InvalidRequest), attempt
            assert "ticket_types" in str(attempt)
            return
        if promo and not hold.buyer:
            assert isinstance(attempt, InvalidRequest), attempt
            assert "buyer_id" in str(attempt)
            return
        if promo and (self.promo_uses[""] >= 3 or self.promo_uses[hold.buyer] >= 1):
            assert isinstance(attempt, PreconditionFailed), attempt
            assert f"promo_code {PROMO!r} is used up" in str(attempt)
            return
        assert not isinstance(attempt, Exception), attempt
        lists = [CHILD.prices[self.ev.categories[o]] if o in typed else self.ev.prices[self.ev.categories[o]]
                 for o in sorted(hold.seats)]  # fmt: skip
        lists += [CHILD.prices["ga"]] * typed_ga + [PRICES["ga"]] * (hold.ga - typed_ga)
        paid = [p - discount(p, HALF) if promo else p for p in lists]
        assert sorted(t.price for t in attempt.order.tickets) == sorted(paid)
        assert attempt.order.total == sum(paid)
        assert (
            sum(1 for t in attempt.order.tickets if t.ticket_type == CHILD.type_id) == len(typed) + typed_ga
        )
        if promo:
            self.promo_uses[""] += 1
            self.promo_uses[hold.buyer] += 1
            assert attempt.order.promo_code == PROMO
        self.holds.pop(hold_id)
        self.committed(hold_id, hold, key, attempt)
        self.orders[attempt.order.order_id].promo = bool(promo)

    def promo_given_back(self, order: MOrder) -> None:
        """Once no ticket of an order is valid, its use of the code is given back, once."""
        if (
            order.promo
            and not order.returned
            and all(order.gone(t) for t in [*order.seat_tickets, *order.ga_tickets])
        ):
            order.returned = True
            self.promo_uses[""] -= 1
            self.promo_uses[order.buyer] -= 1

    def committed(self, hold_id: str, hold: MHold, key: str, result: Any) -> None:
        self.purged()
        order: Order = result.order
        assert not result.replayed
        assert sorted(t.seat for t in order.tickets if t.seat is not None) == sorted(hold.seats)
        assert sum(1 for t in order.tickets if t.ga_area == GA_AREA) == hold.ga
        self.ended[hold_id] = "committed"
        self.orders[order.order_id] = MOrder(
            hold_id,
            key,
            hold.buyer,
            {t.ticket_id: t.seat for t in order.tickets if t.seat is not None},
            [t.ticket_id for t in order.tickets if t.seat is None],
            total=order.total,
            prices={t.ticket_id: t.price for t in order.tickets},
        )
        self.idem[key] = order.order_id
        for o in hold.seats:
            self.seat[o] = ("sold", order.order_id)

    @rule(data=st.data(), ga=st.integers(0, 2), override=st.booleans())
    def sell_at_box_office(self, data: st.DataObject, ga: int, override: bool) -> None:
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), max_size=3, unique=True))
        if not seats and not ga:
            return
        key = f"bo{next(self.keys)}"
        sale = Sale(collector="organizer", payment_method="cash", channel="box_office")
        call = self.inv.box_office(
            self.ev.event_id, seats=self.ev.seats(*seats), ga={GA_AREA: ga} if ga else {},
            idempotency_key=key, buyer=Buyer(), sale=sale, fingerprint=key, override=override,
        )  # fmt: skip
        self.purged()  # the script purges expired holds before it checks anything
        expected: type[Exception] | None = None
        if any(self.seat[o][0] in ("sold", "blocked", "not_for_sale") for o in seats):
            expected = SeatOrdinalsUnavailable
        elif not override and any(self.seat[o][0] == "held" for o in seats):
            expected = SeatOrdinalsHeld
        elif any(self.alloc.get(o) == "pre" for o in seats):  # a storefront channel's seat
            expected = SeatOrdinalsInChannel
        elif ga and self.ga_held() + self.ga_sold() + ga > GA_CAP:
            expected = GeneralAdmissionUnavailable
        if expected is not None:
            with pytest.raises(expected):
                self.run(call)
            return
        result = self.run(call)
        order: Order = result.order
        over = sorted({self.seat[o][1] for o in seats if self.seat[o][0] == "held"})
        assert result.overridden_holds == over
        assert sorted(t.seat for t in order.tickets if t.seat is not None) == sorted(seats)
        assert order.total == sum(self.ev.prices[self.ev.categories[o]] for o in seats) + ga * PRICES["ga"]
        self.orders[order.order_id] = MOrder(
            "",
            key,
            "",
            {t.ticket_id: t.seat for t in order.tickets if t.seat is not None},
            [t.ticket_id for t in order.tickets if t.seat is None],
            total=order.total,
            prices={t.ticket_id: t.price for t in order.tickets},
        )
        self.idem[key] = order.order_id
        for o in seats:
            self.seat[o] = ("sold", order.order_id)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), release=st.sampled_from(["", "free", "not_for_sale"]))
    def refund(self, data: st.DataObject, release: str) -> None:
        order_id = data.draw(st.sampled_from(list(self.orders)))
        order = self.orders[order_id]
        everything = [*order.seat_tickets, *order.ga_tickets]
        chosen = data.draw(st.lists(st.sampled_from(everything), max_size=2, unique=True))
        left = {t: order.prices[t] - order.refunded.get(t, 0) for t in everything}
        amounts = {t: data.draw(st.integers(0, left[t] + 2)) for t in chosen}
        call = self.stores.sales.refund(
            self.ev.tenant, self.ev.event_id, order_id, amounts, refund_key=f"rf{next(self.keys)}",
            release_to=release,  # type: ignore[arg-type]
        )  # fmt: skip
        if not amounts:  # the whole order (an exchanged ticket's money moved to its replacement)
            lines = {
                t: left[t]
                for t in everything
                if t not in order.exchanged and (left[t] > 0 or (release and t not in order.cancelled))
            }
        else:
            lines = {t: a or left[t] for t, a in amounts.items()}
        fails = not lines or any(a > left[t] or t in order.exchanged for t, a in lines.items())
        if fails:
            with pytest.raises(PreconditionFailed):
                self.run(call)
            return
        _ctx, result = self.run(call)
        assert {line.ticket_id: line.amount for line in result.refund.lines} == lines
        for t, a in lines.items():
            self.listings.pop(t, None)  # a refunded ticket is not for resale
            order.refunded[t] = order.refunded.get(t, 0) + a
        if release:
            newly = set(lines) - order.cancelled  # a ticket cancelled before only gets its money back
            order.cancelled |= newly
            for t in newly:
                if t in order.seat_tickets:
                    self.seat[order.seat_tickets[t]] = (
                        ("free", "") if release == "free" else ("not_for_sale", "")
                    )
            self.promo_given_back(order)

    @precondition(
        lambda self: self.budget["reuse_key"] and any(self.orders[o].hold_id for o in self.idem.values())
    )
    @rule(data=st.data())
    def commit_with_a_used_key(self, data: st.DataObject) -> None:
        self.budget["reuse_key"] -= 1
        key = data.draw(st.sampled_from([k for k, o in self.idem.items() if self.orders[o].hold_id]))
        order_id = self.idem[key]
        same_hold = self.orders[order_id].hold_id
        others = list(self.holds) + list(self.expired)
        hold_id = data.draw(st.sampled_from([same_hold, *others]))
        if hold_id == same_hold:
            result = self.run(self.inv.commit(self.ev.event_id, hold_id, key, Buyer(name="y")))
            assert result.replayed
            assert result.order.order_id == order_id
        else:
            with pytest.raises(InvalidRequest):
                self.run(self.inv.commit(self.ev.event_id, hold_id, key, Buyer(name="y")))

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), to=st.sampled_from(["free", "not_for_sale"]))
    def cancel(self, data: st.DataObject, to: str) -> None:
        order_id = data.draw(st.sampled_from(list(self.orders)))
        order = self.orders[order_id]
        everything = [*order.seat_tickets, *order.ga_tickets]
        valid = [t for t in everything if not order.gone(t)]
        chosen = data.draw(st.lists(st.sampled_from(everything), max_size=3, unique=True))
        if not chosen:  # the whole order
            if not valid:
                with pytest.raises(PreconditionFailed):
                    self.run(self.inv.cancel(self.ev.event_id, order_id, to=to))  # type: ignore[arg-type]
                return
            chosen = valid
            self.run(self.inv.cancel(self.ev.event_id, order_id, to=to))  # type: ignore[arg-type]
        elif any(order.gone(t) for t in chosen):
            with pytest.raises(PreconditionFailed):
                self.run(self.inv.cancel(self.ev.event_id, order_id, ticket_ids=chosen, to=to))  # type: ignore[arg-type]
            return
        else:
            self.run(self.inv.cancel(self.ev.event_id, order_id, ticket_ids=chosen, to=to))  # type: ignore[arg-type]
        order.cancelled |= set(chosen)
        for t in chosen:
            self.listings.pop(t, None)
        for t in chosen:
            if t in order.seat_tickets:
                self.seat[order.seat_tickets[t]] = ("free", "") if to == "free" else ("not_for_sale", "")
        self.promo_given_back(order)

    @precondition(lambda self: self.budget["set_status"])
    @rule(
        data=st.data(),
        goal=st.sampled_from(["free", "blocked", "not_for_sale"]),
        allowed=st.lists(
            st.sampled_from(["free", "blocked", "not_for_sale", "sold"]), min_size=1, unique=True
        ),
    )
    def set_status(self, data: st.DataObject, goal: str, allowed: list[str]) -> None:
        self.budget["set_status"] -= 1
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=5, unique=True))
        wrong = {
            o: self.seat[o][0] for o in seats if self.seat[o][0] not in allowed or self.seat[o][0] == "sold"
        }
        if wrong:
            with pytest.raises(SeatOrdinalsInWrongState) as info:
                self.run(self.inv.set_status(self.ev.event_id, seats, goal, allowed))  # type: ignore[arg-type]
            assert info.value.states == wrong
            return
        _seq, changed = self.run(self.inv.set_status(self.ev.event_id, seats, goal, allowed))  # type: ignore[arg-type]
        assert changed == sum(1 for o in seats if self.seat[o][0] != goal)
        for o in seats:
            self.seat[o] = (goal, "")

    @precondition(lambda self: self.holds and len(self.expired) < 8)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """Simulates the clock: the hold's lease ends now (see the module docstring)."""
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        expire_hold_sync(self.sync, self.ev.event_id, hold_id)
        hold = self.holds.pop(hold_id)
        self.expired[hold_id] = hold
        self.ended[hold_id] = "expired"
        for o in hold.seats:
            if self.seat[o] == ("held", hold_id):
                self.seat[o] = ("free", "")

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), gate=st.sampled_from(["North", "South"]))
    def scan(self, data: st.DataObject, gate: str) -> None:
        """A ticket at the door: admitted once; a cancelled ticket's token is refused."""
        order_id = data.draw(st.sampled_from(list(self.orders)))
        order = self.orders[order_id]
        ticket_id = data.draw(st.sampled_from([*order.seat_tickets, *order.ga_tickets]))
        current = (ticket_id, order.revision(ticket_id))
        if current not in self.tokens:
            issue = self.stores.door.ticket_token(self.ev.tenant, self.ev.event_id, order_id, ticket_id)
            if order.gone(ticket_id):
                with pytest.raises(PreconditionFailed):
                    self.run(issue)
                return
            _, self.tokens[current], _ = self.run(issue)
        self.scan_ticket(order, current, gate)

    @precondition(lambda self: self.tokens)
    @rule(data=st.data(), gate=st.sampled_from(["North", "South"]))
    def scan_again(self, data: st.DataObject, gate: str) -> None:
        """A token already delivered, scanned again (maybe cancelled, exchanged or handed on since)."""
        issued = data.draw(st.sampled_from(list(self.tokens)))
        order = next(
            o for o in self.orders.values() if issued[0] in o.seat_tickets or issued[0] in o.ga_tickets
        )
        self.scan_ticket(order, issued, gate)

    def scan_ticket(self, order: MOrder, issued: tuple[str, int], gate: str) -> None:
        ticket_id, revision = issued
        _, outcome = self.run(
            self.stores.door.scan(self.ev.tenant, self.ev.event_id, self.tokens[issued], gate, "dev")
        )
        if revision < order.revision(ticket_id):  # a previous holder's token
            assert (outcome.result, outcome.reason) == ("revoked", order.revoked[ticket_id][revision])
        elif ticket_id in order.cancelled:
            assert (outcome.result, outcome.reason) == ("revoked", "cancelled")
        elif ticket_id in order.exchanged:
            assert (outcome.result, outcome.reason) == ("revoked", "exchanged")
        elif ticket_id in self.admitted:
            assert outcome.result == "already_used"
            assert outcome.previous is not None
            assert outcome.previous[0] == self.admitted[ticket_id]
        else:
            assert outcome.result == "admitted"
            self.admitted[ticket_id] = gate
            self.listings.pop(ticket_id, None)  # used at the door: no longer for resale

    # -- after the sale ---------------------------------------------------------------
    @precondition(lambda self: self.orders)
    @rule(data=st.data(), stale=st.booleans())
    def transfer(self, data: st.DataObject, stale: bool) -> None:
        """A ticket handed on: at the revision read, never one used at the door or gone."""
        order_id = data.draw(st.sampled_from(list(self.orders)))
        order = self.orders[order_id]
        ticket_id = data.draw(st.sampled_from([*order.seat_tickets, *order.ga_tickets]))
        revision = order.revision(ticket_id) + (1 if stale else 0)
        before = (ticket_id, order.revision(ticket_id))
        if not order.gone(ticket_id) and before not in self.tokens:  # the holder has a token
            _, self.tokens[before], _ = self.run(
                self.stores.door.ticket_token(self.ev.tenant, self.ev.event_id, order_id, ticket_id)
            )
        call = self.stores.after_sale.transfer(
            self.ev.tenant, self.ev.event_id, order_id, ticket_id, revision, Buyer(name="Zoe")
        )
        if order.gone(ticket_id) or stale or ticket_id in self.admitted:
            with pytest.raises(PreconditionFailed, match=ticket_id):
                self.run(call)
            return
        _, stored, _token = self.run(call)
        order.revoked.setdefault(ticket_id, []).append("transferred")
        self.listings.pop(ticket_id, None)
        assert next(t for t in stored.tickets if t.ticket_id == ticket_id).revision == order.revision(
            ticket_id
        )
        self.scan_ticket(order, before, "North")  # the previous holder's token stopped working at once

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), with_hold=st.booleans())
    def exchange(self, data: st.DataObject, with_hold: bool) -> None:
        """A ticket swapped for a free seat, or for the one seat of a live hold, in one step."""
        order_id = data.draw(st.sampled_from(list(self.orders)))
        order = self.orders[order_id]
        ticket_id = data.draw(st.sampled_from([*order.seat_tickets, *order.ga_tickets]))
        target = data.draw(st.integers(0, SEATS - 1))
        hold_id = ""
        # on a sold-out event: hold the seat first (a general one: a storefront's hold)
        if with_hold and self.seat[target][0] == "free" and target not in self.alloc:
            held = self.run(self.inv.hold(self.ev.event_id, seats=self.ev.seats(target)))
            self.purged()
            hold_id = held.hold_id
            self.holds[hold_id] = MHold("", [target])
            self.seat[target] = ("held", hold_id)
        placed = self.ev.loaded.index.placed
        call = self.stores.after_sale.exchange(
            self.ev.tenant, self.ev.event_id, order_id, [ticket_id],
            seat_ids=[] if hold_id else [placed[target].seat.id],
            hold_token=hold_token(self.ev.event_id, hold_id) if hold_id else "",
            exchange_key=f"x{next(self.keys)}",
        )  # fmt: skip
        if order.gone(ticket_id) or ticket_id in self.admitted or order.refunded.get(ticket_id, 0):
            with pytest.raises(PreconditionFailed, match=ticket_id):
                self.run(call)
            return
        if not hold_id:
            self.purged()  # the script purges expired holds before it checks the seats
            if self.seat[target][0] != "free":
                with pytest.raises(SeatsUnavailable):
                    self.run(call)
                return
        _, result = self.run(call)
        new_id = result.exchange.to_tickets[0]
        new_price = self.ev.prices[self.ev.categories[target]]
        assert result.exchange.difference == new_price - order.prices[ticket_id]
        order.exchanged.add(ticket_id)
        self.listings.pop(ticket_id, None)
        order.total += result.exchange.difference
        order.prices[new_id] = new_price
        order.seat_tickets[new_id] = target
        if ticket_id in order.seat_tickets:
            self.seat[order.seat_tickets[ticket_id]] = ("free", "")
        self.seat[target] = ("sold", order_id)
        if hold_id:
            self.holds.pop(hold_id)
            self.ended[hold_id] = "committed"

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), price=st.sampled_from([RULES.floor - 1, RULES.floor, RULES.cap, RULES.cap + 1]))
    def list_for_resale(self, data: st.DataObject, price: int) -> None:
        order_id = data.draw(st.sampled_from(list(self.orders)))
        order = self.orders[order_id]
        ticket_id = data.draw(st.sampled_from([*order.seat_tickets, *order.ga_tickets]))
        call = self.stores.after_sale.list_ticket(
            self.ev.tenant, self.ev.event_id, order_id, ticket_id, revision=order.revision(ticket_id),
            price=price, seller_id="seller",
        )  # fmt: skip
        if order.gone(ticket_id) or ticket_id in self.admitted:
            with pytest.raises(PreconditionFailed, match=ticket_id):
                self.run(call)
        elif not RULES.floor <= price <= RULES.cap:
            with pytest.raises(InvalidRequest, match=ticket_id):
                self.run(call)
        elif ticket_id in self.listings:
            with pytest.raises(PreconditionFailed, match="already listed"):
                self.run(call)
        else:
            _, stored = self.run(call)
            listing = next(t for t in stored.tickets if t.ticket_id == ticket_id).listing
            assert listing is not None
            self.listings[ticket_id] = (order_id, listing.listing_id)

    @precondition(lambda self: self.listings)
    @rule(data=st.data())
    def buy_listing(self, data: st.DataObject) -> None:
        """A resale buyer holds and commits a listing: the seller's token is revoked."""
        ticket_id = data.draw(st.sampled_from(sorted(self.listings)))
        order_id, listing_id = self.listings.pop(ticket_id)
        order = self.orders[order_id]
        after = self.stores.after_sale
        _, held = self.run(after.hold_listing(self.ev.tenant, self.ev.event_id, ticket_id, listing_id, "rb"))
        with pytest.raises(PreconditionFailed, match="held by a resale buyer"):
            self.run(after.hold_listing(self.ev.tenant, self.ev.event_id, ticket_id, listing_id, "rc"))
        seller = (ticket_id, order.revision(ticket_id))
        if seller not in self.tokens:
            _, self.tokens[seller], _ = self.run(
                self.stores.door.ticket_token(self.ev.tenant, self.ev.event_id, order_id, ticket_id)
            )
        _, result, token = self.run(
            after.commit_listing(self.ev.tenant, held.token, f"rs{next(self.keys)}", Buyer(name="Resale"))
        )
        order.revoked.setdefault(ticket_id, []).append("resold")
        assert result.resale.revision == order.revision(ticket_id)
        self.tokens[(ticket_id, order.revision(ticket_id))] = token
        self.scan_ticket(order, seller, "South")  # the seller's token stopped working at once
        with pytest.raises(NotFound):  # the listing ended with the sale
            self.run(after.hold_listing(self.ev.tenant, self.ev.event_id, ticket_id, listing_id, "rd"))

    # -- after every step --------------------------------------------------------
    @rule(data=st.data(), channel=st.sampled_from([c.id for c in CHANNELS]))
    def allocate(self, data: st.DataObject, channel: str) -> None:
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=4, unique=True))
        if channel not in self.open_channels:
            expected: type[Exception] | None = PreconditionFailed
        elif any(self.alloc.get(o, channel) != channel or self.seat[o][0] == "sold" for o in seats):
            expected = SeatsInWrongState
        else:
            expected = None
        seat_ids = [self.ev.loaded.index.placed[o].seat.id for o in seats]
        result = self.attempt(
            self.stores.channels.allocate(self.ev.tenant, self.ev.event_id, channel, seat_ids, {})
        )
        if expected is not None:
            assert isinstance(result, expected), f"expected {expected.__name__}, got {result!r}"
            if isinstance(result, SeatsInWrongState):  # names exactly the seats at fault
                assert sorted(result.states) == sorted(
                    seat_ids[i] for i, o in enumerate(seats)
                    if self.alloc.get(o, channel) != channel or self.seat[o][0] == "sold"
                )  # fmt: skip
            return
        assert not isinstance(result, Exception), f"the allocation failed: {result!r}"
        assert result.seats == len([o for o in seats if o not in self.alloc])
        for o in seats:
            self.alloc[o] = channel

    @rule(channel=st.sampled_from([c.id for c in CHANNELS]))
    def close_channel(self, channel: str) -> None:
        closed = self.run(self.stores.channels.close(self.ev.tenant, self.ev.event_id, channel))
        returned = [o for o, c in self.alloc.items() if c == channel]
        assert closed.already == (channel not in self.open_channels)
        assert closed.seats == len([o for o in returned if self.seat[o][0] != "sold"])
        for o in returned:
            del self.alloc[o]
        self.open_channels.discard(channel)

    @rule(data=st.data(), buyer=st.sampled_from(BUYERS), access=st.sampled_from(sorted(ACCESS)))
    def hold_with_access(self, data: st.DataObject, buyer: str, access: str) -> None:
        seats = data.draw(st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True))
        self.purged()
        error = self.expect_hold(None, seats, 0, buyer, access)
        result = self.attempt(
            self.inv.hold(self.ev.event_id, seats=self.ev.seats(*seats), buyer=buyer, access=ACCESS[access])
        )
        if isinstance(result, Exception):
            assert error is not None, f"the hold failed: {result!r}"
            assert isinstance(result, error), f"expected {error.__name__}, got {result!r}"
            if isinstance(result, SeatOrdinalsInChannel):  # names exactly the seats of other channels
                assert sorted(result.ordinals) == sorted(
                    o for o in seats if self.alloc.get(o, "pre") != "pre"
                )
            return
        assert error is None, f"expected {error.__name__}, the hold succeeded"
        self.holds[result.hold_id] = MHold(buyer, list(seats), 0)
        for o in seats:
            self.seat[o] = ("held", result.hold_id)

    @invariant()
    def redis_agrees_with_the_model(self) -> None:
        s = read_state_sync(self.sync, self.ev.event_id)
        check_consistent(s)
        for o in range(SEATS):
            state, owner = self.seat[o]
            assert s.state_of(o) == state, f"seat {o}: Redis {s.state_of(o)}, model {state}"
            if state == "held":
                assert s.holder(o) == owner
            elif state == "sold":
                assert s.seats[o] == f"s:{owner}"
        live = {h for h in s.holds if s.live(h)}
        assert live == set(self.holds)
        for hold_id, hold in self.holds.items():
            assert sorted(s.holds[hold_id].seat_ordinals) == sorted(hold.seats)
            assert sum(s.holds[hold_id].ga.values()) == hold.ga
        assert set(s.holds) - live <= set(self.expired)  # dead holds in Redis are ones we expired
        assert set(s.orders) == set(self.orders)
        for order_id, order in self.orders.items():
            stored = s.orders[order_id]
            assert {t.ticket_id for t in stored.tickets if t.status == "cancelled"} == order.cancelled
            assert {t.ticket_id for t in stored.tickets if t.status == "exchanged"} == order.exchanged
            assert {t.ticket_id: t.revocations for t in stored.tickets if t.revision} == order.revoked
            listed = {t.ticket_id: (order_id, t.listing.listing_id) for t in stored.tickets if t.listing}
            assert listed == {t: v for t, v in self.listings.items() if v[0] == order_id}
            assert stored.total == order.total
            assert {t.ticket_id: t.refunded for t in stored.tickets if t.refunded} == {
                t: r for t, r in order.refunded.items() if r
            }
            assert all(0 <= t.refunded <= t.price for t in stored.tickets)  # never more than paid
        assert s.idem == self.idem
        for buyer in BUYERS[:2]:  # the limit: held (expired holds until purged) + bought
            assert s.bought.get(buyer, 0) == self.bought_by(buyer)
            assert s.buyers.get(buyer, 0) + s.bought.get(buyer, 0) <= PER_BUYER
            assert self.held_by(buyer) + self.bought_by(buyer) <= PER_BUYER
        assert {r: h for r, (h, _fp) in s.holdreqs.items()} == {r: q.made for r, q in self.requests.items()}
        expired_ga = sum(sum(h.ga.values()) for hid, h in s.holds.items() if not s.live(hid))
        assert s.ga_held.get(GA_AREA, 0) - expired_ga == self.ga_held()
        assert s.ga_sold.get(GA_AREA, 0) == self.ga_sold()
        uses = self.sync.hgetall(keys.offer_keys(self.ev.event_id)[keys.OFFER_KEY_NAMES.index("promouses")])
        expected_uses = {PROMO: self.promo_uses[""]} if self.promo_uses[""] else {}
        expected_uses |= {f"{PROMO}|{b}": n for b, n in self.promo_uses.items() if b and n}
        assert {k.decode(): int(v) for k, v in uses.items() if int(v)} == expected_uses
        assert self.promo_uses[""] <= HALF.max_uses  # never used more often than allowed

        checkins = self.sync.hgetall(keys.door_keys(self.ev.event_id)[keys.DOOR_KEY_NAMES.index("checkins")])
        assert {t.decode(): v.decode().split("|")[1] for t, v in checkins.items()} == self.admitted
        stats = self.run(self.stores.door.stats(self.ev.tenant, self.ev.event_id))
        assert (stats.admitted, stats.entries) == (len(self.admitted), len(self.admitted))
        valid = sum(
            len(o.seat_tickets) + len(o.ga_tickets) - len(o.cancelled) - len(o.exchanged)
            for o in self.orders.values()
        )
        assert stats.remaining == max(0, valid - len(self.admitted))

        snap = decode_snapshot(self.run(self.inv.snapshot(self.ev.event_id)), SEATS)
        assert [STATES[int(x)] for x in snap.states] == [self.seat[o][0] for o in range(SEATS)]
        assert {
            o: snap.allocations.channel_of(o) for o in range(SEATS) if snap.allocations.codes[o]
        } == self.alloc
        alloc = self.sync.hgetall(keys.channel_keys(self.ev.event_id)[keys.CHANNEL_KEY_NAMES.index("alloc")])
        assert {int(o): c.decode() for o, c in alloc.items()} == self.alloc
        assert snap.ga[GA_AREA].sold == self.ga_sold()
        assert snap.ga[GA_AREA].held - expired_ga == self.ga_held()


@pytest.mark.slow
def test_inventory_state_machine(redis_url: str) -> None:
    run_machine(InventoryMachine, redis_url, examples=40, steps=30)
