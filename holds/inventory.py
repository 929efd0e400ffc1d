"""The inventory state machine of one event: holds, commits, cancels, seat status.

Each public method is one Lua script over the event's keys (one round trip,
one hash slot) and maps the script's result codes to named errors; an
unknown code raises. Seats are addressed by *ordinal* (their position in the
event's seat map, ``seatmap.model.iter_seats``); translating seat ids is the
caller's job (holds/sales.py), so the scripts stay small and fast.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from holds import distancing, keys, metrics
from holds.channels import NO_ACCESS, ChannelAccess, access_error
from holds.errors import (
    Conflict,
    EventMoving,
    GeneralAdmissionUnavailable,
    HoldExpired,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    SeatMapMoved,
    StoreError,
    ticket_exchanging,
)
from holds.ids import new_id
from holds.offers import SaleOffer, offer_error
from holds.records import (
    STOREFRONT_SALE,
    Buyer,
    HoldRecord,
    Order,
    Refund,
    RefundLine,
    Sale,
    hold_decoder,
    json_encoder,
    order_decoder,
    refund_decoder,
)
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.retries import check_request_id, fingerprint
from holds.script_channel import EncodableArg
from holds.scripts import Script, ScriptRegistry

# Expired holds each mutating script tidies on the way (bounded work per call).
PURGE_PER_CALL = 16
# Seats one status change may touch: scripts block Redis while they run.
MAX_SEATS_PER_STATUS_CHANGE = 20_000

SeatState = Literal["free", "blocked", "not_for_sale"]


@dataclass(frozen=True)
class HoldResult:
    hold_id: str
    expires_ms: int
    seq: int
    record: HoldRecord
    replayed: bool = False  # the request id had already made this hold: nothing was held now


@dataclass(frozen=True)
class HoldView:
    hold_id: str
    record: HoldRecord
    expires_ms: int


@dataclass(frozen=True)
class ReapResult:
    purged: int
    still_expired: int  # left for the next round
    finished: bool  # no hold left and none can be taken (closed, or past its on-sale window)


@dataclass(frozen=True)
class CommitResult:
    order: Order
    replayed: bool  # True when the idempotency key had already produced this order


class SeatOrdinalsUnavailable(Exception):
    """Raised inside the inventory with ordinals; the service names the seats."""

    def __init__(self, ordinals: list[int]) -> None:
        super().__init__(f"{len(ordinals)} seat(s) unavailable")
        self.ordinals = ordinals


@dataclass(frozen=True)
class BoxOfficeResult:
    order: Order
    replayed: bool
    overridden_holds: list[str]  # holds whose seats were sold over them (override)


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    order: Order
    replayed: bool


class SeatOrdinalsHeld(Exception):
    """Box office: seats held by buyers' live holds, sold only with the override flag."""

    def __init__(self, ordinals: list[int]) -> None:
        super().__init__(f"{len(ordinals)} seat(s) held by buyers")
        self.ordinals = ordinals


class RefundStale(Exception):
    """A ticket's refunded total changed between reading the order and refunding: read again."""


class SeatOrdinalsInChannel(Exception):
    """Seats allocated to channels the request has no access to (holds/channels.py)."""

    def __init__(self, ordinals: list[int]) -> None:
        super().__init__(f"{len(ordinals)} seat(s) allocated to a channel")
        self.ordinals = ordinals


class SeatOrdinalsInWrongState(Exception):
    def __init__(self, states: dict[int, str]) -> None:
        super().__init__(f"{len(states)} seat(s) in a wrong state")
        self.states = states


def _hold_gone(reply: Any, hold_id: str) -> StoreError | None:
    """The error for the scripts' shared "hold is not live" replies, else None."""
    match reply:
        case [Reply.HOLD_NOT_FOUND]:
            return NotFound("hold", hold_id)
        case [Reply.HOLD_EXPIRED]:
            return HoldExpired(
                "the hold has expired; its seats may have been sold to someone else", subject=hold_id
            )
        case [Reply.HOLD_COMMITTED, order_id]:
            return PreconditionFailed(
                f"the hold was already committed to order {_text(order_id)}", subject=hold_id
            )
        case [Reply.HOLD_RELEASED]:
            return PreconditionFailed("the hold was released", subject=hold_id)
    return None


def _not_on_sale(event_id: str, status: Any) -> PreconditionFailed:
    return PreconditionFailed(
        f"event is not on sale (status {_text(status)}, or outside its on-sale window)", subject=event_id
    )


def _unknown(script: str, reply: Any) -> StoreError:
    return StoreError(f"{script} returned an unknown result {reply!r}")


def _check_parts(ordinals: Sequence[int], ga: Mapping[str, int]) -> None:
    """The scripts count what they are given: a seat listed twice would become two
    tickets for one seat, and a GA quantity below 1 would lower ``ga_held`` (or
    grow a hold on release) past the capacity check."""
    if len(set(ordinals)) != len(ordinals):
        raise InvalidRequest("seats", "a seat is listed twice")
    for area, qty in ga.items():
        if qty < 1:
            raise InvalidRequest("ga", f"quantity for {area!r} must be at least 1")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _layout(version: int) -> str:
    """The fence argument of LAYOUT_FENCED scripts (``holds/lua/_layout.lua``): the seat-map
    version the call's ordinals come from; 0 (a caller holding no seat map): unfenced."""
    return str(version) if version > 0 else ""


class Inventory:
    """Scripts over one Redis (or cluster); stateless apart from the client."""

    def __init__(self, client: AnyRedis, scripts: ScriptRegistry) -> None:
        self._r = client
        self._scripts = scripts
        # told when a fenced script finds the event on another seat-map version than the
        # caller's (holds/live.py drops the process's live event); then SeatMapMoved is raised
        self.on_seat_map_moved: list[Callable[[str], None]] = []

    def moved(self, reply: Any, event_id: str) -> None:
        """Raise SeatMapMoved (after telling ``on_seat_map_moved``) for a fence's refusal,
        EventMoving while the event moves in chunks (_layout.lua)."""
        match reply:
            case [Reply.EVENT_MOVING, wait_ms]:
                raise EventMoving(event_id, int(wait_ms))
            case [Reply.LAYOUT_MOVED, version]:
                for hook in self.on_seat_map_moved:
                    hook(event_id)
                raise SeatMapMoved(event_id, int(version))

    async def hold(
        self,
        event_id: str,
        *,
        seats: Sequence[tuple[int, str]] = (),
        ga: Mapping[str, int] | None = None,
        buyer: str = "",
        hold_id: str | None = None,
        request_id: str = "",
        request_fingerprint: str = "",
        layout: int = 0,
        rule_args: Sequence[EncodableArg] = distancing.NO_RULE_ARGS,
        access: ChannelAccess = NO_ACCESS,
    ) -> HoldResult:
        """Hold ``seats`` ((ordinal, category) pairs) and GA quantities, all or nothing.

        ``access`` names a channel (and its access code) whose allocated seats and
        places the hold may take (holds/channels.py); seats of other channels are refused.

        ``hold_id`` adds to that live hold instead of creating a new one.
        ``request_id`` makes the call retry-safe (holds/retries.py): a request id
        already recorded with the same fingerprint answers the hold it made
        (``replayed``); ``request_fingerprint`` is the API's canonical request,
        by default the seats, GA, buyer and hold as given here. ``rule_args``: the
        minimum-distance rule and the seats' neighbours as the caller knows them
        (``holds.distancing.script_args``; default: no rule). ``layout``: the seat-map
        version the ordinals come from (SeatMapMoved when the event is on another).
        """
        ga = dict(ga or {})
        _check_parts([o for o, _ in seats], ga)
        check_request_id(request_id)
        if request_id and not request_fingerprint:
            request_fingerprint = fingerprint(
                "inventory",
                event_id,
                buyer,
                hold_id or "",
                {
                    "seats": sorted(o for o, _ in seats),
                    "ga": sorted(ga.items()),
                    **access.part(),
                },
            )
        args: list[EncodableArg] = [
            hold_id or new_id("h", 12),
            "add" if hold_id else "new",
            buyer,
            PURGE_PER_CALL,
            request_id,
            request_fingerprint if request_id else "",
            len(seats),
        ]
        args += [o for o, _ in seats]
        args += [c for _, c in seats]
        args.append(len(ga))
        for area, qty in sorted(ga.items()):
            args += [area, qty]
        args += access.args()  # right after the GA pairs (hold.lua's CH_ARG)
        args += rule_args  # then: _distance.lua finds them from the end, once _layout.lua took its own
        args.append(_layout(layout))
        reply = await self._scripts.hold(keys.channel_script_keys(event_id), args)
        self.moved(reply, event_id)
        result = self._hold_result(reply, event_id, hold_id or "")
        if not result.replayed:
            metrics.HOLDS.inc()
        return result

    async def replay(
        self, event_id: str, request_id: str, request_fingerprint: str, layout: int = 0
    ) -> HoldResult | None:
        """The hold ``request_id`` made, if it made one (the checks and errors of :meth:`hold`'s
        retry path); None when the request id is not known. Holds nothing."""
        if not request_id:
            return None
        check_request_id(request_id)
        args: list[str | int] = [
            new_id("h", 12),
            "replay",
            "",
            PURGE_PER_CALL,
            request_id,
            request_fingerprint,
            0,
            0,
            _layout(layout),
        ]
        reply = await self._scripts.hold(keys.channel_script_keys(event_id), args)
        self.moved(reply, event_id)
        if reply == [Reply.HOLD_NOT_FOUND]:
            return None
        return self._hold_result(reply, event_id, "")

    @staticmethod
    def _hold_result(reply: Any, event_id: str, hold_id: str) -> HoldResult:
        if (distanced := distancing.refusal(reply)) is not None:
            raise distanced
        match reply:
            case [Reply.OK, hid, expires, seq, encoded, replayed]:
                return HoldResult(
                    _text(hid), int(expires), int(seq), hold_decoder.decode(encoded), bool(replayed)
                )
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", event_id)
            case [Reply.NOT_ON_SALE, status]:
                raise _not_on_sale(event_id, status)
            case [Reply.SEATS_UNAVAILABLE, taken]:
                metrics.SEATS_UNAVAILABLE.inc()
                raise SeatOrdinalsUnavailable([int(o) for o in taken])
            case [Reply.GA_UNKNOWN, area, _]:
                raise NotFound("general admission area", _text(area))
            case [Reply.GA_UNAVAILABLE, area, available]:
                metrics.GA_UNAVAILABLE.inc()
                raise GeneralAdmissionUnavailable(_text(area), int(available))
            case [Reply.LIMIT_EXCEEDED, limit, maximum]:
                raise LimitExceeded(_text(limit), int(maximum))
            case [Reply.HOLD_ID_COLLISION]:
                raise Conflict("hold id collision; retry")
            case [Reply.REQUEST_MISMATCH]:
                raise InvalidRequest("request_id", "already used for a different hold request")
            case [Reply.CHANNEL_SEATS, refused]:
                metrics.SEATS_UNAVAILABLE.inc()
                raise SeatOrdinalsInChannel([int(o) for o in refused])
        raise access_error(reply) or _hold_gone(reply, hold_id) or _unknown("hold", reply)

    async def release(
        self,
        event_id: str,
        hold_id: str,
        *,
        seats: Sequence[int] = (),
        ga: Mapping[str, int] | None = None,
        layout: int = 0,
    ) -> int:
        """Release all (no seats, no GA given) or part of a hold; returns what remains held."""
        ga = dict(ga or {})
        _check_parts(seats, ga)
        args: list[str | int] = [hold_id, PURGE_PER_CALL, len(seats), *seats, len(ga)]
        for area, qty in sorted(ga.items()):
            args += [area, qty]
        args.append(_layout(layout))
        reply = await self._scripts.release(keys.channel_script_keys(event_id), args)
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, remaining]:
                return int(remaining)
            case [Reply.SEAT_NOT_IN_HOLD, ordinal]:
                raise SeatOrdinalsInWrongState({int(ordinal): "not in this hold"})
            case [Reply.GA_NOT_IN_HOLD, area, held]:
                raise InvalidRequest("ga", f"hold has only {int(held)} place(s) in {_text(area)!r}")
        raise _hold_gone(reply, hold_id) or _unknown("release", reply)

    async def extend(
        self, event_id: str, hold_id: str, ttl_ms: int = 0, layout: int = 0
    ) -> tuple[HoldView, bool]:
        """The extended hold, and whether the total lifetime cap limited it."""
        reply = await self._scripts.extend(keys.event_keys(event_id), [hold_id, ttl_ms, _layout(layout)])
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, expires, capped, encoded]:
                return HoldView(hold_id, hold_decoder.decode(encoded), int(expires)), bool(capped)
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", event_id)
            case [Reply.NOT_ON_SALE, status]:
                raise _not_on_sale(event_id, status)
        raise _hold_gone(reply, hold_id) or _unknown("extend", reply)

    @staticmethod
    async def _selling(
        script: Script,
        event_id: str,
        args: list[EncodableArg],
        offer: SaleOffer | None,
        seat_of: Mapping[int, str] | None,
        fence: str | None = None,
        rule_args: Sequence[EncodableArg] = (),
        with_channels: bool = False,
    ) -> Any:
        """Run a selling script; with an offer, the offer keys and the offer go too (only
        then: a plain sale reads nothing more) and its refusals raise here. ``rule_args``
        (box office) go after the offer or an empty one; ``fence``: the seat-map version
        argument of a LAYOUT_FENCED script, always its last. ``with_channels``: the channel
        keys go last (box_office.lua's ``_channels.lua``)."""
        event_keys = keys.event_keys(event_id)
        if offer is not None:
            event_keys = (*event_keys, *keys.offer_keys(event_id))
            args = [*args, json_encoder.encode(offer)]
        elif rule_args:
            args = [*args, ""]  # no offer
        args = [*args, *rule_args]
        if fence is not None:
            args = [*args, fence]
        if with_channels:
            event_keys = (*event_keys, *keys.channel_keys(event_id))
        reply = await script.replicated(event_keys, args)
        if with_channels and isinstance(reply, list) and reply and reply[0] == Reply.CHANNEL_SEATS:
            raise SeatOrdinalsInChannel([int(o) for o in reply[1]])
        if offer is not None and (refused := offer_error(reply, seat_of=seat_of)) is not None:
            raise refused
        if rule_args and (distanced := distancing.refusal(reply)) is not None:
            raise distanced
        return reply

    async def commit(
        self,
        event_id: str,
        hold_id: str,
        idempotency_key: str,
        buyer: Buyer,
        sale: Sale = STOREFRONT_SALE,
        offer: SaleOffer | None = None,
        seat_of: Mapping[int, str] | None = None,
        layout: int = 0,
    ) -> CommitResult:
        """Turn a live hold into an order (fenced by the hold, idempotent by key).

        ``sale`` is recorded with the order; with fee terms the script splits each
        ticket's price as :func:`rules.fees.split_ticket` does. ``offer``: ticket types
        and a promo code (holds/offers.py); ``seat_of`` names its seats in errors."""
        order_id = new_id("o", 12)
        ticket_prefix = f"t{secrets.token_hex(6)}-"
        args: list[EncodableArg] = [
            hold_id,
            idempotency_key,
            order_id,
            json_encoder.encode(buyer),
            ticket_prefix,
            PURGE_PER_CALL,
            json_encoder.encode(sale),
        ]
        reply = await self._selling(
            self._scripts.commit, event_id, args, offer, seat_of, _layout(layout), with_channels=True
        )
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, order_json, replayed]:
                if not replayed:
                    metrics.COMMITS_VIA_HOLD.inc()
                return CommitResult(order_decoder.decode(order_json), bool(replayed))
            case [Reply.NOT_ON_SALE, status]:
                raise _not_on_sale(event_id, status)
            case [Reply.HOLD_LOST, _]:
                metrics.HOLD_LOST.inc()
                raise HoldExpired("the hold no longer holds all of its seats", subject=hold_id)
            case [Reply.NO_PRICE, category]:
                raise PreconditionFailed(
                    f"category {_text(category)!r} has no price", subject=_text(category)
                )
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                raise InvalidRequest(
                    "idempotency_key", f"already used for order {_text(other)} of a different hold"
                )
        raise _hold_gone(reply, hold_id) or _unknown("commit", reply)

    async def box_office(
        self,
        event_id: str,
        *,
        seats: Sequence[tuple[int, str]],
        ga: Mapping[str, int],
        idempotency_key: str,
        buyer: Buyer,
        sale: Sale,
        fingerprint: str,
        override: bool = False,
        offer: SaleOffer | None = None,
        seat_of: Mapping[int, str] | None = None,
        layout: int = 0,
        rule_args: Sequence[EncodableArg] = distancing.NO_RULE_ARGS,
    ) -> BoxOfficeResult:
        """Sell seats and GA places in one step (``box_office.lua``): no storefront hold.
        ``rule_args`` as for :meth:`hold`."""
        _check_parts([o for o, _ in seats], ga)
        order_id = new_id("o", 12)
        ticket_prefix = f"t{secrets.token_hex(6)}-"
        args: list[EncodableArg] = [
            idempotency_key,
            order_id,
            json_encoder.encode(buyer),
            ticket_prefix,
            PURGE_PER_CALL,
            json_encoder.encode(sale),
            fingerprint,
            1 if override else 0,
            len(seats),
            *(o for o, _ in seats),
            *(c for _, c in seats),
            len(ga),
        ]
        for area, qty in ga.items():
            args += [area, qty]
        reply = await self._selling(
            self._scripts.box_office,
            event_id,
            args,
            offer,
            seat_of,
            _layout(layout),
            rule_args,
            with_channels=True,
        )
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, order_json, replayed, overridden]:
                if not replayed:
                    metrics.COMMITS_AT_BOX_OFFICE.inc()
                held = _text(overridden)
                return BoxOfficeResult(
                    order_decoder.decode(order_json), bool(replayed), held.split(",") if held else []
                )
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", event_id)
            case [Reply.NOT_ON_SALE, status]:
                raise PreconditionFailed(
                    f"the box office sells while the event is on sale or paused (status {_text(status)})",
                    subject=event_id,
                )
            case [Reply.SEATS_UNAVAILABLE, taken]:
                metrics.SEATS_UNAVAILABLE.inc()
                raise SeatOrdinalsUnavailable([int(o) for o in taken])
            case [Reply.SEATS_HELD, held_ordinals]:
                metrics.SEATS_HELD.inc()
                raise SeatOrdinalsHeld([int(o) for o in held_ordinals])
            case [Reply.GA_UNKNOWN, area, _]:
                raise NotFound("general admission area", _text(area))
            case [Reply.GA_UNAVAILABLE, area, available]:
                metrics.GA_UNAVAILABLE.inc()
                raise GeneralAdmissionUnavailable(_text(area), int(available))
            case [Reply.NO_PRICE, category]:
                raise PreconditionFailed(
                    f"category {_text(category)!r} has no price", subject=_text(category)
                )
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                raise InvalidRequest(
                    "idempotency_key", f"already used for order {_text(other)} of a different request"
                )
        raise _unknown("box_office", reply)

    async def refund(
        self,
        event_id: str,
        order_id: str,
        *,
        refund_key: str,
        lines: Sequence[RefundLine],
        reason: str,
        release_to: Literal["", "free", "not_for_sale"],
        fingerprint: str,
        layout: int = 0,
    ) -> RefundResult:
        """Record a refund (``refund.lua``); the lines' reversals come from rules.fees.reverse
        on the refunded totals they name (RefundStale when one changed meanwhile)."""
        args: list[EncodableArg] = [
            refund_key, new_id("r", 12), order_id, reason, release_to, fingerprint, len(lines)
        ]  # fmt: skip
        for line in lines:
            args += [
                line.ticket_id,
                line.amount,
                line.refunded_before,
                line.ticket_fee_rate,
                line.ticket_fee_fixed,
                line.processing_fee_rate,
                line.processing_fee_fixed,
            ]
        args.append(_layout(layout))
        reply = await self._scripts.refund.replicated(
            (
                *keys.event_keys(event_id),
                *keys.money_keys(event_id),
                *keys.promo_back_keys(event_id),
                *keys.channel_keys(event_id),
            ),
            args,
        )
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, refund_json, order_json, replayed]:
                return RefundResult(
                    refund_decoder.decode(refund_json), order_decoder.decode(order_json), bool(replayed)
                )
            case [Reply.ORDER_NOT_FOUND]:
                raise NotFound("order", order_id)
            case [Reply.TICKET_NOT_IN_ORDER, ticket]:
                raise InvalidRequest("tickets", f"ticket {_text(ticket)!r} is not in order {order_id}")
            case [Reply.REFUND_EXCEEDS_PAID, ticket, left]:
                raise PreconditionFailed(
                    f"a refund of ticket {_text(ticket)} can be at most {int(left)} more (minor units)",
                    subject=_text(ticket),
                )
            case [Reply.REFUND_STALE, _]:
                raise RefundStale()
            case [Reply.TICKET_NOT_VALID, ticket, status]:
                raise PreconditionFailed(
                    f"ticket {_text(ticket)} was {_text(status)}: refund its replacement",
                    subject=_text(ticket),
                )
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                raise InvalidRequest(
                    "refund_key", f"already used for refund {_text(other)} of a different request"
                )
            case [Reply.TICKET_EXCHANGING, ticket, exchange_id]:
                raise ticket_exchanging(ticket, exchange_id)
        raise _unknown("refund", reply)

    async def cancel(
        self,
        event_id: str,
        order_id: str,
        *,
        ticket_ids: Sequence[str] = (),
        to: SeatState = "free",
        reason: str = "",
        layout: int = 0,
    ) -> Order:
        if to not in ("free", "not_for_sale"):
            raise InvalidRequest("release_to", "must be free or not_for_sale")
        reply = await self._scripts.cancel.replicated(
            (*keys.event_keys(event_id), *keys.promo_back_keys(event_id), *keys.channel_keys(event_id)),
            [order_id, to, reason, len(ticket_ids), *ticket_ids, _layout(layout)],
        )
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, order_json]:
                return order_decoder.decode(order_json)
            case [Reply.ORDER_NOT_FOUND]:
                raise NotFound("order", order_id)
            case [Reply.TICKET_NOT_IN_ORDER, ticket]:
                raise InvalidRequest("ticket_ids", f"ticket {_text(ticket)!r} is not in order {order_id}")
            case [Reply.TICKET_ALREADY_CANCELLED, ticket]:
                what = f"ticket {_text(ticket)!r} is" if _text(ticket) else "every ticket is"
                raise PreconditionFailed(f"{what} already cancelled", subject=_text(ticket) or order_id)
            case [Reply.TICKET_EXCHANGING, ticket, exchange_id]:
                raise ticket_exchanging(ticket, exchange_id)
        raise _unknown("cancel", reply)

    async def set_status(
        self,
        event_id: str,
        ordinals: Sequence[int],
        target: SeatState,
        allowed_previous: Sequence[str],
        layout: int = 0,
    ) -> tuple[int, int]:
        """Conditionally move seats to ``target``; returns (seq, seats changed)."""
        if target not in ("free", "blocked", "not_for_sale"):  # the script would free seats for any other
            raise InvalidRequest("status", "must be free, blocked or not_for_sale")
        if len(ordinals) > MAX_SEATS_PER_STATUS_CHANGE:
            raise InvalidRequest("seat_ids", f"at most {MAX_SEATS_PER_STATUS_CHANGE} seats per call")
        reply = await self._scripts.set_status(
            keys.event_keys(event_id),
            [target, ",".join(allowed_previous), len(ordinals), *ordinals, _layout(layout)],
        )
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, seq, changed]:
                return int(seq), int(changed)
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", event_id)
            case [Reply.WRONG_STATE, flat]:
                raise SeatOrdinalsInWrongState(
                    {int(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
                )
        raise _unknown("set_status", reply)

    async def reap(self, event_id: str, limit: int = 500) -> ReapResult:
        """Purge expired holds (tidying only)."""
        purged, remaining, finished = await self._scripts.reap(keys.channel_script_keys(event_id), [limit])
        metrics.HOLDS_EXPIRED.inc(int(purged))
        return ReapResult(int(purged), int(remaining), bool(finished))

    async def get_hold(self, event_id: str, hold_id: str, layout: int = 0) -> HoldView:
        """A live hold; an expired one is reported as HoldExpired even before it is purged.

        A read-only script rather than a pipeline: the clock compared with the
        expiry must be the event's node's (a Cluster pipeline cannot send TIME).
        """
        reply = await self._scripts.hold_view(keys.event_keys(event_id), [hold_id, _layout(layout)])
        self.moved(reply, event_id)
        match reply:
            case [Reply.OK, raw, expires, now_ms]:
                if int(expires) <= int(now_ms):
                    raise HoldExpired("the hold has expired", subject=hold_id)
                return HoldView(hold_id, hold_decoder.decode(raw), int(expires))
        raise _hold_gone(reply, hold_id) or _unknown("hold_view", reply)

    async def _read_version(self, event_id: str, layout: int) -> None:
        """After reading orders: SeatMapMoved if the event is no longer on ``layout`` (0: no check).
        Read *after* the orders, so an unchanged version means they were read before any move."""
        if layout > 0:
            async with wrap_errors("read seat-map version"):
                now = await self._r.hget(keys.event_key(event_id, "meta"), "seat_map_version")
            if now is not None and int(now) != layout:
                self.moved([Reply.LAYOUT_MOVED, now], event_id)

    async def get_order(self, event_id: str, order_id: str, layout: int = 0) -> Order:
        """``layout``: the seat-map version the caller names the tickets' seats with."""
        async with wrap_errors("get order"):
            raw = await self._r.hget(keys.event_key(event_id, "orders"), order_id)
        await self._read_version(event_id, layout)
        if raw is None:
            raise NotFound("order", order_id)
        return order_decoder.decode(raw)

    async def list_orders(
        self, event_id: str, offset: int, limit: int, layout: int = 0
    ) -> tuple[list[Order], bool]:
        listing, orders = keys.event_key(event_id, "orders_z"), keys.event_key(event_id, "orders")
        async with wrap_errors("list orders"):
            ids = await self._r.zrange(listing, offset, offset + limit)
            raw = await self._r.hmget(orders, ids[:limit]) if ids else []
        await self._read_version(event_id, layout)
        return [order_decoder.decode(r) for r in raw if r is not None], len(ids) > limit

    async def snapshot(self, event_id: str) -> Any:
        """The raw consistent snapshot (decoded by holds/availability.py)."""
        return await self._scripts.snapshot(keys.channel_script_keys(event_id), ["channels"])
