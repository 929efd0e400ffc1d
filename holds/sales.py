"""Selling one event's inventory: seat ids in, holds and orders out.

This is the layer the hold and order servicers call. It resolves the event
(its live state in this process, checking the caller's tenant owns it),
translates seat ids to the ordinals the scripts use, runs best-available
against the event's live mirror with bounded retries, and builds the views the
API returns. Every state change is still exactly one script call in
:mod:`holds.inventory`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from holds.channels import NO_ACCESS, ChannelAccess
from holds.distancing import SeatOrdinalsDistanced, with_current_rule
from holds.errors import (
    Conflict,
    InvalidRequest,
    PreconditionFailed,
    SeatMapMoved,
    SeatsDistanced,
    SeatsInWrongState,
    SeatsUnavailable,
    StoreError,
    StoreFault,
    StoreUnavailable,
)
from holds.inventory import (
    BoxOfficeResult,
    CommitResult,
    HoldResult,
    Inventory,
    RefundResult,
    RefundStale,
    SeatOrdinalsHeld,
    SeatOrdinalsInChannel,
    SeatOrdinalsInWrongState,
    SeatOrdinalsUnavailable,
    SeatState,
)
from holds.live import LiveEvent, LiveEvents
from holds.offers import Claim, OfferChoice, Offers, SaleOffer, seat_names
from holds.platform.notifications import TicketClaim
from holds.records import Buyer, HoldRecord, Order, RefundLine, Sale, SaleTerms, Ticket
from holds.retries import check_request_id, fingerprint
from holds.script_channel import EncodableArg
from rules.errors import NoPriceInCurrency
from rules.fees import Collector, FeePlan, RefundPolicy, Split, reverse
from seatmap.bestavailable import BestAvailableRequest

log = structlog.get_logger("seatwise.sales")

# The organizer's current fee plan (holds/platform/platforms.py PlatformStore.organizer_plan).
PlanLookup = Callable[[str], Awaitable[FeePlan | None]]


class TicketLimits(Protocol):
    """The plan's tickets-per-month limit (holds/platform/notifications.py PlanLimitsOf)."""

    async def check_tickets(self, tenant_id: str, quantity: int) -> None: ...
    async def claim_tickets(
        self, tenant_id: str, event_id: str, idempotency_key: str, *, hold_id: str = "", quantity: int = 0
    ) -> TicketClaim | None: ...
    async def settle_tickets(self, claim: TicketClaim, made: int) -> None: ...


MAX_PAYMENT_METHOD = 64
REFUND_ATTEMPTS = 8  # reads of the order when concurrent refunds of its tickets race

BEST_AVAILABLE_ATTEMPTS = 8
MAX_SEATS_PER_REQUEST = 1_000
MAX_BUYER_ID = 128
MAX_IDEMPOTENCY_KEY = 128
TOKEN_SEPARATOR = "."


@dataclass(frozen=True)
class HoldInfo:
    token: str
    event_id: str
    seat_ids: list[str]
    ga: dict[str, int]
    expires_ms: int
    buyer: str
    lifetime_capped: bool = False
    replayed: bool = False  # a retried request id: the hold its first attempt made, as it is now


def hold_token(event_id: str, hold_id: str) -> str:
    return f"{event_id}{TOKEN_SEPARATOR}{hold_id}"


def parse_token(token: str) -> tuple[str, str]:
    event_id, sep, hold_id = token.partition(TOKEN_SEPARATOR)
    if not sep or not event_id or not hold_id or len(token) > 200:
        raise InvalidRequest("hold_token", "not a hold token this service issued")
    return event_id, hold_id


def _check_buyer(buyer: str) -> str:
    if len(buyer) > MAX_BUYER_ID:
        raise InvalidRequest("buyer_id", f"must be at most {MAX_BUYER_ID} characters")
    return buyer


def _ticket_split(order: Order, ticket: Ticket) -> Split:
    keep = order.terms is not None and order.terms.refund_policy == "keep_fixed"
    policy: RefundPolicy = "keep_fixed" if keep else "full"
    return Split(order.currency, ticket.price, ticket.ticket_fee_rate, ticket.ticket_fee_fixed,
                 ticket.processing_fee_rate, ticket.processing_fee_fixed, policy)  # fmt: skip


def _refund_lines(order: Order, amounts: Mapping[str, int], releasing: bool) -> list[RefundLine]:
    """The refund's lines on the order as read: each ticket's reversal on its refunded total."""
    by_id = {t.ticket_id: t for t in order.tickets}
    if amounts:
        unknown = [t for t in amounts if t not in by_id]
        if unknown:
            raise InvalidRequest("tickets", f"ticket {unknown[0]!r} is not in order {order.order_id}")
        chosen = [(by_id[t], amount) for t, amount in amounts.items()]
        swapped = [t for t, _ in chosen if t.status == "exchanged"]
        if swapped:  # its money moved to the ticket that replaced it
            raise PreconditionFailed(
                f"ticket {swapped[0].ticket_id} was exchanged: refund its replacement "
                f"{swapped[0].exchanged_for}",
                subject=swapped[0].ticket_id,
            )
    else:  # the whole order: what is left of every ticket (and, releasing, every valid ticket)
        chosen = [
            (t, 0)
            for t in order.tickets
            if t.status != "exchanged" and (t.refunded < t.price or (releasing and t.status == "valid"))
        ]
        if not chosen:
            raise PreconditionFailed(
                f"order {order.order_id} has nothing left to refund", subject=order.order_id
            )
    lines = []
    for ticket, asked in chosen:
        left = ticket.price - ticket.refunded
        amount = asked or left
        if amount > left:
            raise PreconditionFailed(
                f"a refund of ticket {ticket.ticket_id} can be at most {left} more (minor units)",
                subject=ticket.ticket_id,
            )
        back = reverse(_ticket_split(order, ticket), amount, refunded_before=ticket.refunded)
        lines.append(RefundLine(ticket.ticket_id, amount, *back.parts(), refunded_before=ticket.refunded))
    return lines


def outcome_known(failure: BaseException | None) -> bool:
    """Whether a sale that raised ``failure`` (None: it returned) surely did or did not apply:
    not when Redis was unreachable or faulting, on a timeout or when the caller went away."""
    return failure is None or (
        isinstance(failure, StoreError) and not isinstance(failure, (StoreUnavailable, StoreFault))
    )


def _channel_seats(seat_ids: Sequence[str]) -> SeatsInWrongState:
    """Seats allocated to a channel the request has no access to (holds/channels.py)."""
    return SeatsInWrongState(dict.fromkeys(seat_ids, "allocated to a channel this request has no access to"))


def check_order_input(idempotency_key: str, buyer: Buyer) -> None:
    if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest("idempotency_key", f"required, 1-{MAX_IDEMPOTENCY_KEY} characters")
    for name, value, limit in (("buyer.name", buyer.name, 200), ("buyer.email", buyer.email, 320),
                               ("buyer.payment_reference", buyer.payment_reference, 200)):  # fmt: skip
        if len(value) > limit:
            raise InvalidRequest(name, f"must be at most {limit} characters")


class Sales:
    def __init__(
        self,
        live: LiveEvents,
        inventory: Inventory,
        plans: PlanLookup | None = None,
        limits: TicketLimits | None = None,
        offers: Offers | None = None,
    ) -> None:
        self._live = live
        self._inventory = inventory
        self._plans = plans
        self._limits = limits
        self._offers = offers
        self._rng = random.Random()

    async def sale(
        self, tenant_id: str, ctx: LiveEvent, collector: Collector, payment_method: str, channel: str
    ) -> Sale:
        """How an order of ``ctx`` is sold: the organizer's plan terms in the event's currency."""
        if not 1 <= len(payment_method) <= MAX_PAYMENT_METHOD:
            raise InvalidRequest("payment_method", f"1-{MAX_PAYMENT_METHOD} characters")
        plan = await self._plans(tenant_id) if self._plans is not None else None
        terms = None
        if plan is not None and collector == "organizer" and not plan.features.own_payment_account:
            raise PreconditionFailed(
                f"the organizer's plan {plan.plan_id!r} does not include its own payment account: "
                "the platform collects (collector PLATFORM)",
                subject="collector",
            )
        if plan is not None:
            try:
                prices = plan.prices_in(ctx.ref.currency)
            except NoPriceInCurrency as exc:
                raise PreconditionFailed(
                    f"the organizer's plan {plan.plan_id!r} has no prices in {ctx.ref.currency}",
                    subject=plan.plan_id,
                ) from exc
            terms = SaleTerms(
                plan_id=plan.plan_id,
                ticket_fee_bps=plan.ticket_fee_bps,
                processing_fee_bps=plan.processing_fee_bps,
                ticket_fee_fixed=prices.ticket_fee_fixed,
                processing_fee_fixed=prices.processing_fee_fixed,
                refund_policy=plan.refund_policy,
            )
        return Sale(collector=collector, payment_method=payment_method, channel=channel, terms=terms)

    async def _check_tickets(self, tenant_id: str, quantity: int) -> None:
        if self._limits is not None:
            await self._limits.check_tickets(tenant_id, quantity)

    async def context(self, tenant_id: str, event_id: str) -> LiveEvent:
        """The event as this process holds it, if ``tenant_id`` owns it."""
        return await self._live.get(tenant_id, event_id)

    # -- translation ---------------------------------------------------------
    def ordinals(self, ctx: LiveEvent, seat_ids: Sequence[str], field: str = "seat_ids") -> list[int]:
        if len(seat_ids) > MAX_SEATS_PER_REQUEST:
            raise InvalidRequest(field, f"at most {MAX_SEATS_PER_REQUEST} seats per request")
        index = ctx.loaded.index.ordinal_of
        unknown = [s for s in seat_ids if s not in index]
        if unknown:
            raise InvalidRequest(field, f"unknown seat(s): {', '.join(unknown[:20])}")
        ordinals = [index[s] for s in seat_ids]
        if len(set(ordinals)) != len(ordinals):
            dupes = [seat for seat, n in Counter(seat_ids).items() if n > 1]
            raise InvalidRequest(field, f"seat(s) listed twice: {', '.join(dupes[:20])}")
        return ordinals

    def seat_ids(self, ctx: LiveEvent, ordinals: Sequence[int]) -> list[str]:
        placed = ctx.loaded.index.placed
        return [placed[o].seat.id for o in ordinals if 0 <= o < len(placed)]

    def _info(
        self,
        ctx: LiveEvent,
        hold_id: str,
        record: HoldRecord,
        expires_ms: int,
        capped: bool = False,
        replayed: bool = False,
    ) -> HoldInfo:
        return HoldInfo(
            token=hold_token(ctx.event_id, hold_id),
            event_id=ctx.event_id,
            seat_ids=self.seat_ids(ctx, record.seat_ordinals),
            ga=dict(record.ga),
            expires_ms=expires_ms,
            buyer=record.buyer,
            lifetime_capped=capped,
            replayed=replayed,
        )

    def _result_info(self, ctx: LiveEvent, result: HoldResult) -> HoldInfo:
        return self._info(ctx, result.hold_id, result.record, result.expires_ms, replayed=result.replayed)

    def _existing(self, ctx: LiveEvent, token: str) -> str | None:
        if not token:
            return None
        event_id, hold_id = parse_token(token)
        if event_id != ctx.event_id:
            raise InvalidRequest("hold_token", "belongs to another event")
        return hold_id

    async def _hold(
        self,
        ctx: LiveEvent,
        ordinals: list[int],
        ga: Mapping[str, int],
        buyer: str,
        token: str,
        retry: tuple[str, str] = ("", ""),
        access: ChannelAccess = NO_ACCESS,
    ) -> HoldResult:
        """``retry``: (request id, fingerprint of the API request), or none."""
        placed = ctx.loaded.index.placed
        hold_id = self._existing(ctx, token)

        def call(rule_args: list[EncodableArg]) -> Awaitable[HoldResult]:
            return self._inventory.hold(
                ctx.event_id,
                seats=[(o, placed[o].seat.category) for o in ordinals],
                ga=ga,
                buyer=buyer,
                hold_id=hold_id,
                request_id=retry[0],
                request_fingerprint=retry[1],
                layout=ctx.ref.seat_map_version,
                rule_args=rule_args,
                access=access,
            )

        try:
            return await with_current_rule(ctx, ordinals, call)
        except SeatOrdinalsUnavailable as exc:
            raise SeatsUnavailable(self.seat_ids(ctx, exc.ordinals)) from exc
        except SeatOrdinalsDistanced as exc:
            raise SeatsDistanced(self.seat_ids(ctx, exc.ordinals)) from exc
        except SeatOrdinalsInChannel as exc:
            raise _channel_seats(self.seat_ids(ctx, exc.ordinals)) from exc

    @staticmethod
    def _retry(
        ctx: LiveEvent, request_id: str, kind: str, buyer: str, token: str, parts: Mapping[str, object]
    ) -> tuple[str, str]:
        """(request id, fingerprint) of a hold request; checks the buyer id and the request id."""
        _check_buyer(buyer)
        if not check_request_id(request_id):
            return "", ""
        return request_id, fingerprint(kind, ctx.event_id, buyer, token, parts)

    # -- holds ---------------------------------------------------------------
    async def hold_seats(
        self,
        tenant_id: str,
        event_id: str,
        seat_ids: Sequence[str],
        *,
        buyer: str = "",
        token: str = "",
        request_id: str = "",
        access: ChannelAccess = NO_ACCESS,
    ) -> HoldInfo:
        ctx = await self.context(tenant_id, event_id)
        if not seat_ids:
            raise InvalidRequest("seat_ids", "name at least one seat")
        ordinals = self.ordinals(ctx, seat_ids)
        access.check()
        await self._check_tickets(tenant_id, len(ordinals))
        parts = {"seats": sorted(seat_ids), **access.part()}
        retry = self._retry(ctx, request_id, "seats", buyer, token, parts)
        return self._result_info(ctx, await self._hold(ctx, ordinals, {}, buyer, token, retry, access))

    async def hold_general_admission(
        self,
        tenant_id: str,
        event_id: str,
        area_id: str,
        quantity: int,
        *,
        buyer: str = "",
        token: str = "",
        request_id: str = "",
        access: ChannelAccess = NO_ACCESS,
    ) -> HoldInfo:
        ctx = await self.context(tenant_id, event_id)
        access.check()
        if area_id not in ctx.loaded.index.ga_areas:
            raise InvalidRequest("area_id", f"no general admission area {area_id!r} in this event")
        if not 1 <= quantity <= MAX_SEATS_PER_REQUEST:
            raise InvalidRequest("quantity", f"must be 1-{MAX_SEATS_PER_REQUEST}")
        await self._check_tickets(tenant_id, quantity)
        parts = {"area": area_id, "quantity": quantity, **access.part()}
        retry = self._retry(ctx, request_id, "ga", buyer, token, parts)
        return self._result_info(
            ctx, await self._hold(ctx, [], {area_id: quantity}, buyer, token, retry, access)
        )

    async def hold_best_available(
        self,
        tenant_id: str,
        event_id: str,
        request: BestAvailableRequest,
        *,
        buyer: str = "",
        token: str = "",
        request_id: str = "",
        access: ChannelAccess = NO_ACCESS,
    ) -> HoldInfo:
        """Search the live mirror, hold a chosen candidate; on a lost race retry (bounded).
        Seats of a channel are proposed only with ``access`` to it (the script re-checks).

        Every attempt carries the same request id, so a retried request gets the seats its
        first attempt held, whatever candidate this search proposes (the script answers a
        known request id before it looks at the seats).
        """
        ctx = await self.context(tenant_id, event_id)
        index = ctx.loaded.index
        unknown = sorted((request.categories or frozenset()) - set(index.category_keys))
        if unknown:
            raise InvalidRequest("categories", f"unknown category: {', '.join(unknown)}")
        unknown = sorted((request.sections or frozenset()) - set(index.section_ids))
        if unknown:
            raise InvalidRequest("section_ids", f"unknown section: {', '.join(unknown)}")
        shape = {
            "quantity": request.quantity,
            "categories": sorted(request.categories or ()),
            "sections": sorted(request.sections or ()),
            "accessible": request.accessible,
            "adjacency": request.adjacency,
            **access.check().part(),
        }
        await self._check_tickets(tenant_id, request.quantity)
        retry = self._retry(ctx, request_id, "best", buyer, token, shape)
        mirror = await self._live.mirror(ctx)
        for _attempt in range(BEST_AVAILABLE_ATTEMPTS):
            candidate = ctx.pools.take(mirror, index, request, self._rng, access.channel_id)
            if candidate is None:
                # the first attempt may have taken the last seats: a retry still gets them
                replayed = await self._inventory.replay(ctx.event_id, *retry, ctx.ref.seat_map_version)
                if replayed is not None:
                    return self._result_info(ctx, replayed)
                raise SeatsUnavailable([], f"no {request.quantity} seat(s) available matching the request")
            ordinals = list(candidate.ordinals)
            mirror.pending[ordinals] = True
            try:
                result = await self._hold(ctx, ordinals, {}, buyer, token, retry, access)
            except SeatsUnavailable as exc:
                mirror.mark_taken([index.ordinal_of[s] for s in exc.seat_ids])
                continue
            except SeatsDistanced:
                continue  # a group next to it that the mirror had not seen yet: search again
            finally:
                mirror.pending[ordinals] = False
            if not result.replayed:  # a replay held nothing: the candidate is still free
                mirror.mark_held(ordinals)
            return self._result_info(ctx, result)
        # every attempt lost a race: seats may well remain, so this is retryable contention
        raise Conflict(f"best-available lost {BEST_AVAILABLE_ATTEMPTS} races for seats; retry")

    async def get_hold(self, tenant_id: str, token: str) -> HoldInfo:
        event_id, hold_id = parse_token(token)
        ctx = await self.context(tenant_id, event_id)
        view = await self._inventory.get_hold(event_id, hold_id, ctx.ref.seat_map_version)
        return self._info(ctx, hold_id, view.record, view.expires_ms)

    async def extend_hold(self, tenant_id: str, token: str) -> HoldInfo:
        event_id, hold_id = parse_token(token)
        ctx = await self.context(tenant_id, event_id)
        view, capped = await self._inventory.extend(event_id, hold_id, layout=ctx.ref.seat_map_version)
        return self._info(ctx, hold_id, view.record, view.expires_ms, capped)

    async def release_hold(
        self, tenant_id: str, token: str, seat_ids: Sequence[str] = (), ga: Mapping[str, int] | None = None
    ) -> int:
        event_id, hold_id = parse_token(token)
        ctx = await self.context(tenant_id, event_id)
        for area, qty in (ga or {}).items():
            if area not in ctx.loaded.index.ga_areas or qty < 1:
                raise InvalidRequest(f"general_admission[{area}]", "unknown area or quantity below 1")
        try:
            return await self._inventory.release(
                event_id, hold_id, seats=self.ordinals(ctx, seat_ids), ga=ga, layout=ctx.ref.seat_map_version
            )
        except SeatOrdinalsInWrongState as exc:
            raise InvalidRequest(
                "seat_ids", f"not in this hold: {', '.join(self.seat_ids(ctx, list(exc.states)))}"
            ) from exc

    # -- orders --------------------------------------------------------------
    async def commit(
        self,
        tenant_id: str,
        token: str,
        idempotency_key: str,
        buyer: Buyer,
        *,
        collector: Collector = "platform",
        payment_method: str = "online",
        offer: OfferChoice | None = None,
    ) -> tuple[LiveEvent, Order, bool]:
        """``offer``: ticket types per seat or GA place and a promo code (holds/offers.py);
        none: every place at the event's category price."""
        check_order_input(idempotency_key, buyer)
        event_id, hold_id = parse_token(token)
        ctx = await self.context(tenant_id, event_id)
        sale = await self.sale(tenant_id, ctx, collector, payment_method, "storefront")
        tickets = await self._claim_tickets(tenant_id, event_id, idempotency_key, hold_id=hold_id)
        try:
            result = await self._commit(tenant_id, ctx, hold_id, idempotency_key, buyer, sale, offer)
        except BaseException as exc:
            await self._settle_tickets(tickets, 0, exc)
            raise
        await self._settle_tickets(tickets, 0 if result.replayed else len(result.order.tickets))
        return ctx, result.order, result.replayed

    async def _commit(
        self,
        tenant_id: str,
        ctx: LiveEvent,
        hold_id: str,
        idempotency_key: str,
        buyer: Buyer,
        sale: Sale,
        offer: OfferChoice | None,
    ) -> CommitResult:
        event_id = ctx.event_id
        if not offer:
            return await self._inventory.commit(
                event_id, hold_id, idempotency_key, buyer, sale, layout=ctx.ref.seat_map_version
            )

        async def hold_buyer() -> str:
            try:
                return (await self._inventory.get_hold(event_id, hold_id)).record.buyer
            except StoreError:
                return ""  # the commit answers why the hold is gone (or replays its order)

        sale_offer, claim = await self._sale_offer(tenant_id, ctx, offer, hold_buyer)
        try:
            result = await self._inventory.commit(
                event_id,
                hold_id,
                idempotency_key,
                buyer,
                sale,
                sale_offer,
                seat_names(ctx, offer),
                layout=ctx.ref.seat_map_version,
            )
        except BaseException as exc:
            await self._give_back(claim, exc)
            raise
        if result.replayed:
            await self._give_back(claim)
        return result

    async def _sale_offer(
        self, tenant_id: str, ctx: LiveEvent, offer: OfferChoice, buyer: Callable[[], Awaitable[str]]
    ) -> tuple[SaleOffer, Claim | None]:
        if self._offers is None:
            raise PreconditionFailed("ticket types and promo codes are not served here", subject=ctx.event_id)
        return await self._offers.prepare(tenant_id, ctx, offer, buyer=buyer, now_ms=int(time.time() * 1000))

    async def _claim_tickets(
        self, tenant_id: str, event_id: str, idempotency_key: str, *, hold_id: str = "", quantity: int = 0
    ) -> TicketClaim | None:
        """A sale's places claimed against the plan's tickets per month (None: no limit, or a
        replay), so concurrent sales never pass it (docs/platform.md#plan-limits)."""
        if self._limits is None:
            return None
        return await self._limits.claim_tickets(
            tenant_id, event_id, idempotency_key, hold_id=hold_id, quantity=quantity
        )

    async def _settle_tickets(
        self, claim: TicketClaim | None, made: int, failure: BaseException | None = None
    ) -> None:
        """Settle a tickets claim: ``made`` sold, the rest given back. When the sale's outcome
        is unknown (as for :meth:`_give_back`) the claim is kept: the limit may refuse a few
        places too early until the month ends, never sell past it."""
        if claim is None or self._limits is None or not outcome_known(failure):
            return
        await asyncio.shield(self._limits.settle_tickets(claim, made))

    async def _give_back(self, claim: Claim | None, failure: BaseException | None = None) -> None:
        """Return an organizer-wide code's claimed use the sale did not make: after a replay or
        a refusal. When the outcome is unknown (Redis unreachable or faulting, a timeout, the
        caller gone) the claim is kept: a use too many counted, never one too few."""
        if claim is None or self._offers is None or not outcome_known(failure):
            return
        await asyncio.shield(self._offers.give_back(claim))

    def _seats_named(self, ctx: LiveEvent, exc: BaseException) -> StoreError | None:
        """A seat-taking script's refusal by ordinals, with the seats named (else None)."""
        if isinstance(exc, SeatOrdinalsUnavailable):
            return SeatsUnavailable(self.seat_ids(ctx, exc.ordinals))
        if isinstance(exc, SeatOrdinalsDistanced):
            return SeatsDistanced(self.seat_ids(ctx, exc.ordinals))
        if isinstance(exc, SeatOrdinalsHeld):
            return SeatsInWrongState(dict.fromkeys(self.seat_ids(ctx, exc.ordinals), "held"))
        if isinstance(exc, SeatOrdinalsInChannel):
            return _channel_seats(self.seat_ids(ctx, exc.ordinals))
        return None

    async def sell_at_box_office(
        self,
        tenant_id: str,
        event_id: str,
        seat_ids: Sequence[str],
        ga: Mapping[str, int],
        *,
        idempotency_key: str,
        buyer: Buyer,
        payment_method: str,
        collector: Collector = "organizer",
        override: bool = False,
        offer: OfferChoice | None = None,
    ) -> tuple[LiveEvent, BoxOfficeResult]:
        """Sell without a storefront hold (``box_office.lua``); seats held by buyers only
        with ``override`` (the caller audits it)."""
        check_order_input(idempotency_key, buyer)
        ctx = await self.context(tenant_id, event_id)
        ordinals = self.ordinals(ctx, seat_ids)
        for area, qty in ga.items():
            if area not in ctx.loaded.index.ga_areas:
                raise InvalidRequest(f"general_admission[{area}]", "no such general admission area")
            if not 1 <= qty <= MAX_SEATS_PER_REQUEST:
                raise InvalidRequest(f"general_admission[{area}]", f"must be 1-{MAX_SEATS_PER_REQUEST}")
        if not ordinals and not ga:
            raise InvalidRequest("seat_ids", "name at least one seat or general admission place")
        if len(ordinals) + sum(ga.values()) > MAX_SEATS_PER_REQUEST:
            raise InvalidRequest("seat_ids", f"at most {MAX_SEATS_PER_REQUEST} places per sale")
        sale = await self.sale(tenant_id, ctx, collector, payment_method, "box_office")
        parts = {"seats": sorted(seat_ids), "ga": dict(sorted(ga.items())), "override": override,
                 "payment_method": payment_method, "collector": collector}  # fmt: skip
        tickets = await self._claim_tickets(
            tenant_id, ctx.event_id, idempotency_key, quantity=len(ordinals) + sum(ga.values())
        )
        try:
            result = await self._box_office(
                tenant_id, ctx, ordinals, ga, idempotency_key, buyer, sale, parts, override, offer
            )
        except BaseException as exc:
            await self._settle_tickets(tickets, 0, exc)
            raise
        await self._settle_tickets(tickets, 0 if result.replayed else len(result.order.tickets))
        return ctx, result

    async def _box_office(
        self,
        tenant_id: str,
        ctx: LiveEvent,
        ordinals: list[int],
        ga: Mapping[str, int],
        idempotency_key: str,
        buyer: Buyer,
        sale: Sale,
        parts: dict[str, object],
        override: bool,
        offer: OfferChoice | None,
    ) -> BoxOfficeResult:
        sale_offer, claim = None, None
        if offer:
            parts["offer"] = offer.fingerprint_parts()

            async def anonymous() -> str:
                return ""

            sale_offer, claim = await self._sale_offer(tenant_id, ctx, offer, anonymous)
        placed = ctx.loaded.index.placed

        def call(rule_args: list[EncodableArg]) -> Awaitable[BoxOfficeResult]:
            return self._inventory.box_office(
                ctx.event_id,
                seats=[(o, placed[o].seat.category) for o in ordinals],
                ga=ga,
                idempotency_key=idempotency_key,
                buyer=buyer,
                sale=sale,
                fingerprint=fingerprint("box_office", ctx.event_id, "", "", parts),
                override=override,
                offer=sale_offer,
                seat_of=seat_names(ctx, offer) if offer else None,
                layout=ctx.ref.seat_map_version,
                rule_args=rule_args,
            )

        try:
            result = await with_current_rule(ctx, ordinals, call)
        except BaseException as exc:
            await self._give_back(claim, exc)
            named = self._seats_named(ctx, exc)
            if named is not None:
                raise named from exc
            raise
        if result.replayed:
            await self._give_back(claim)
        return result

    async def refund(
        self,
        tenant_id: str,
        event_id: str,
        order_id: str,
        amounts: Mapping[str, int],
        *,
        refund_key: str,
        reason: str = "",
        release_to: Literal["", "free", "not_for_sale"] = "",
    ) -> tuple[LiveEvent, RefundResult]:
        """Refund tickets of an order: ``amounts`` ticket id -> minor units (0: all that is
        left of it); empty: the whole order. The fee reversal of each ticket is
        :func:`rules.fees.reverse` of its split at sale on its refunded total, and the
        script refuses the refund whole if a total changed meanwhile (then: read again)."""
        ctx = await self.context(tenant_id, event_id)
        if not order_id:
            raise InvalidRequest("order_id", "required")
        if not 1 <= len(refund_key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest("refund_key", f"required, 1-{MAX_IDEMPOTENCY_KEY} characters")
        if len(reason) > 500:
            raise InvalidRequest("reason", "must be at most 500 characters")
        if len(amounts) > MAX_SEATS_PER_REQUEST:
            raise InvalidRequest("tickets", f"at most {MAX_SEATS_PER_REQUEST} per request")
        for ticket_id, amount in amounts.items():
            if amount < 0:
                raise InvalidRequest(f"tickets[{ticket_id}].amount_minor", "must not be negative")
        parts = {"order": order_id, "amounts": dict(sorted(amounts.items())), "release_to": release_to,
                 "reason": reason}  # fmt: skip
        digest = fingerprint("refund", ctx.event_id, "", "", parts)
        for _attempt in range(REFUND_ATTEMPTS):
            order = await self._inventory.get_order(ctx.event_id, order_id)
            try:
                lines = _refund_lines(order, amounts, release_to != "")
            except PreconditionFailed:
                await self._settle_promo_returns(tenant_id, ctx.event_id)
                raise
            try:
                result = await self._inventory.refund(
                    ctx.event_id, order_id, refund_key=refund_key, lines=lines, reason=reason,
                    release_to=release_to, fingerprint=digest, layout=ctx.ref.seat_map_version,
                )  # fmt: skip
            except RefundStale:
                continue
            await self._settle_promo_returns(tenant_id, ctx.event_id)
            return ctx, result
        raise Conflict(f"concurrent refunds of order {order_id} kept changing it; retry")

    async def _settle_promo_returns(self, tenant_id: str, event_id: str) -> None:
        """After a cancel or refund (made, refused or replayed): give back the organizer-wide
        codes' uses of the event's wholly cancelled orders in the organizer's slot, this
        order's and any a cancel whose process died left in the backlog (holds/offers.py).
        One read of the backlog when it is empty."""
        if self._offers is None:
            return
        try:
            await asyncio.shield(self._offers.settle_returns(tenant_id, event_id))
        except StoreError as exc:  # the cancel is made; its give-back stays in the backlog
            log.warning("promo.give_back_deferred", event_id=event_id, error=str(exc))

    async def cancel(
        self,
        tenant_id: str,
        event_id: str,
        order_id: str,
        ticket_ids: Sequence[str],
        to: SeatState,
        reason: str,
    ) -> tuple[LiveEvent, Order]:
        ctx = await self.context(tenant_id, event_id)
        if not order_id:
            raise InvalidRequest("order_id", "required")
        if len(reason) > 500:
            raise InvalidRequest("reason", "must be at most 500 characters")
        if len(ticket_ids) > MAX_SEATS_PER_REQUEST:
            raise InvalidRequest("ticket_ids", f"at most {MAX_SEATS_PER_REQUEST} per request")
        try:
            order = await self._inventory.cancel(
                ctx.event_id,
                order_id,
                ticket_ids=ticket_ids,
                to=to,
                reason=reason,
                layout=ctx.ref.seat_map_version,
            )
        except PreconditionFailed:  # already cancelled: perhaps a retry whose give-back was left
            await self._settle_promo_returns(tenant_id, ctx.event_id)
            raise
        await self._settle_promo_returns(tenant_id, ctx.event_id)
        return ctx, order

    async def set_status(
        self,
        tenant_id: str,
        event_id: str,
        ordinals: Sequence[int],
        target: SeatState,
        allowed: Sequence[str],
    ) -> tuple[int, int]:
        ctx = await self.context(tenant_id, event_id)
        try:
            return await self._inventory.set_status(
                event_id, sorted(set(ordinals)), target, allowed, ctx.ref.seat_map_version
            )
        except SeatOrdinalsInWrongState as exc:
            named = dict(zip(self.seat_ids(ctx, list(exc.states)), exc.states.values(), strict=True))
            raise SeatsInWrongState(named) from exc

    async def get_order(self, tenant_id: str, event_id: str, order_id: str) -> tuple[LiveEvent, Order]:
        for attempt in range(2):  # the event moved to another seat-map version: read it afresh once
            ctx = await self.context(tenant_id, event_id)
            if not order_id:
                raise InvalidRequest("order_id", "required")
            try:
                return ctx, await self._inventory.get_order(ctx.event_id, order_id, ctx.ref.seat_map_version)
            except SeatMapMoved:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def list_orders(
        self, tenant_id: str, event_id: str, offset: int, limit: int
    ) -> tuple[LiveEvent, list[Order], bool]:
        for attempt in range(2):  # as get_order
            ctx = await self.context(tenant_id, event_id)
            try:
                orders, more = await self._inventory.list_orders(
                    ctx.event_id, offset, limit, ctx.ref.seat_map_version
                )
                return ctx, orders, more
            except SeatMapMoved:
                if attempt:
                    raise
        raise AssertionError("unreachable")
