"""Exchanges across events: tickets of an order swapped for seats of another event of
the same organizer (docs/selling.md, "Exchanges across events").

Two cases, by where the target event's keys live:

* **the same slot** (two events of one season, ``{ev:<season>}``): one script,
  ``exchange_season.lua``, over both events' keys: as atomic as an exchange within
  one event (:meth:`CrossExchanges.season`);
* **another slot**: no script spans two slots, so the exchange is a saga of four
  steps, each one script in one slot, recorded in the source event's slot under the
  exchange key (``xsagas``; :meth:`CrossExchanges.saga`):

  a. the new seats are held in the target event (a hold the exchange makes, retry-safe
     by a request id derived from the key and the attempt; or the caller's own hold);
  b. ``xchg_lock.lua`` (source): the old tickets checked and locked (``exchanging``:
     no transfer, resale, refund, cancel, scan or second exchange), the record
     ``locked`` with everything step (c) needs;
  c. ``xchg_commit.lua`` (target): the hold committed as the new order, idempotent by
     a commit key derived from the exchange key, fenced by the hold;
  d. ``xchg_finish.lua`` ``commit`` (source): the old tickets ``exchanged``, their seats
     freed, the price difference recorded; the record ``done``.

  A refusal before (c) undoes what was done: (b) by ``xchg_finish.lua`` ``abort``
  (tickets unlocked), (a) by releasing the hold the exchange made. Only a *definitive*
  refusal of (c) (the hold expired, released, lost, the target closed, no price) rolls
  back: once (c) refused for good it can never succeed later (a hold never comes back),
  and once it succeeded a replay answers the order, so a driver can never roll back a
  committed exchange. Transient failures leave the record ``locked`` for a retry or
  recovery to drive on.

Every attempt is first written to the platform's pending set
(``keys.EXCHANGES_PENDING``) with a due time; the attempt's member leaves it only once
the record is final. :meth:`CrossExchanges.recover` (the reaper calls it every round)
takes due members: a ``locked`` record is driven to ``done`` or rolled back, a missing
or aborted one is marked abandoned at that attempt (so a slow call's late lock is
refused) and the attempt's hold released. A retry with the same key reads the record:
``done`` answers the same result, ``locked`` resumes at (c), aborted starts the next
attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from holds import aftersale, distancing, keys
from holds.distancing import SeatOrdinalsDistanced, with_current_rule
from holds.errors import (
    Conflict,
    HoldExpired,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SeatsDistanced,
    SeatsUnavailable,
    StoreError,
    StoreUnavailable,
)
from holds.ids import new_id
from holds.inventory import PURGE_PER_CALL, Inventory
from holds.live import LiveEvent
from holds.records import Exchange, Order, order_decoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.sales import Sales, hold_token, parse_token
from holds.script_channel import EncodableArg
from holds.scripts import ScriptRegistry

log = structlog.get_logger("seatwise.exchanges")
RECOVERY_GRACE_MS = 30_000  # an attempt older than this may be completed or undone by recovery
RECOVERY_BATCH = 100  # attempts looked at per recovery pass
_SEP = "\x1f"


class Saga(msgspec.Struct, frozen=True):
    """The record of a cross-slot exchange (xchg_lock.lua writes it, xchg_finish.lua ends it)."""

    status: str  # locked | done | aborted
    attempt: int
    exchange_key: str = ""
    fingerprint: str = ""
    exchange_id: str = ""
    order_id: str = ""
    tickets: list[str] | dict[str, str] = []  # cjson writes an empty list as {}
    target_event_id: str = ""
    hold_id: str = ""
    owned: int = 0  # 1: the exchange made the hold
    target_order_id: str = ""
    commit_key: str = ""
    created_ms: int = 0
    finished_ms: int = 0
    reason: str = ""  # aborted: why
    commit: str = ""  # while locked: xchg_commit.lua's input (buyer, sale, old tickets), JSON


saga_decoder = msgspec.json.Decoder(Saga)


@dataclass(frozen=True)
class CrossResult:
    order: Order  # the source order, the old tickets exchanged
    new_order: Order  # the target event's order with the new tickets
    replayed: bool


class Abandoned(Conflict):
    """This attempt was given up by recovery (it was slower than the grace period)."""


class _Refused(Exception):
    """Step (c) refused for good: roll back."""

    def __init__(self, error: StoreError, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


def same_slot(a: str, b: str) -> bool:
    """Whether two events' keys share one hash slot (the events of one season)."""
    return keys.event_tag(a).partition("}")[0] == keys.event_tag(b).partition("}")[0]


def saga_keys(event_id: str) -> tuple[str, ...]:
    """KEYS of xchg_lock.lua: the source's after-sale keys, its xsagas."""
    return (*keys.after_sale_keys(event_id), keys.exchange_sagas(event_id))


def finish_keys(event_id: str) -> tuple[str, ...]:
    """KEYS of xchg_finish.lua: saga_keys, then the source's channel keys (a channel's GA
    places go back to it)."""
    return (*saga_keys(event_id), *keys.channel_keys(event_id))


def _digest(*parts: str) -> str:
    return hashlib.sha256(_SEP.join(parts).encode()).hexdigest()[:24]


def hold_request_id(source_event: str, key: str, attempt: int) -> str:
    """The request id of the hold attempt ``attempt`` makes (hold.lua replays it)."""
    return f"xchg-{_digest(source_event, key)}-{attempt}"


def commit_key(source_event: str, key: str) -> str:
    """The target order's idempotency key: one per exchange, whatever the attempt."""
    return f"xchg-{_digest(source_event, key)}"


def pending_member(source: str, target: str, attempt: int, key: str) -> str:
    return _SEP.join((source, target, str(attempt), key))


def parse_member(member: str) -> tuple[str, str, int, str]:
    source, target, attempt, key = member.split(_SEP, 3)
    return source, target, int(attempt), key


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


class CrossExchanges:
    def __init__(
        self,
        client: AnyRedis,
        scripts: ScriptRegistry,
        sales: Sales,
        inventory: Inventory,
        *,
        clock: Callable[[], int] = _now_ms,
        grace_ms: int = RECOVERY_GRACE_MS,
    ) -> None:
        self._r = client
        self._scripts = scripts
        self._sales = sales
        self._inventory = inventory
        self._clock = clock
        self.grace_ms = grace_ms
        # tests: awaited after each step with its name ("held", "locked", "committed");
        # raising there is a crash of the caller between two steps
        self.fault: Callable[[str], Awaitable[None]] | None = None

    async def _step(self, name: str) -> None:
        if self.fault is not None:
            await self.fault(name)

    # -- one script: two events of one season ------------------------------------------
    async def season(
        self,
        source: LiveEvent,
        target: LiveEvent,
        order_id: str,
        ticket_ids: Sequence[str],
        hold_id: str,
        ordinals: Sequence[int],
        key: str,
        digest: str,
    ) -> CrossResult:
        placed = target.loaded.index.placed
        args: list[EncodableArg] = [
            order_id, key, new_id("x", 12), f"t{secrets.token_hex(6)}-x", hold_id, digest, PURGE_PER_CALL,
            target.event_id, new_id("o", 12), commit_key(source.event_id, key),
            str(target.ref.seat_map_version), source.event_id,
            len(ticket_ids), *ticket_ids, len(ordinals), *ordinals,
            *(placed[o].seat.category for o in ordinals),
        ]  # fmt: skip
        fence = str(source.ref.seat_map_version)  # _layout.lua: the source's version, last
        script_keys = (  # both events' keys, then the source's channel keys and the target's
            *keys.after_sale_keys(source.event_id), *keys.event_keys(target.event_id),
            *keys.channel_keys(source.event_id), *keys.channel_keys(target.event_id),
        )  # fmt: skip

        async def call(rule_args: list[EncodableArg]) -> Any:
            reply = await self._scripts.exchange_season.replicated(script_keys, [*args, *rule_args, fence])
            if isinstance(reply, list) and reply and reply[0] == Reply.LAYOUT_MOVED:
                for hook in self._inventory.on_seat_map_moved:
                    hook(source.event_id)  # one of the two moved: both are read again
                self._inventory.moved(reply, target.event_id)
            if (distanced := distancing.refusal(reply)) is not None:
                raise distanced
            return reply

        try:
            reply = await with_current_rule(target, list(ordinals), call)
        except SeatOrdinalsDistanced as exc:
            raise SeatsDistanced(self._sales.seat_ids(target, exc.ordinals)) from exc
        match reply:
            case [Reply.OK, order_json, _, target_json, replayed]:
                return CrossResult(
                    order_decoder.decode(order_json), order_decoder.decode(target_json), bool(replayed)
                )
            case [Reply.SEATS_UNAVAILABLE, taken]:
                raise SeatsUnavailable(self._sales.seat_ids(target, [int(o) for o in taken]))
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                raise Conflict(f"the target event's order key of this exchange is taken by {_text(other)}")
        token = hold_token(target.event_id, hold_id) if hold_id else ""
        raise (
            aftersale.exchange_error(reply, token, len(ticket_ids))
            or aftersale.ticket_error(reply, order_id)
            or aftersale.unknown("exchange_season", reply)
        )

    # -- a saga: an event in another slot ---------------------------------------------
    async def read(self, source_event: str, key: str) -> Saga | None:
        async with wrap_errors("read exchange"):
            raw = await self._r.hget(keys.exchange_sagas(source_event), key)
        return saga_decoder.decode(raw) if raw is not None else None

    async def saga(
        self,
        tenant_id: str,
        source: LiveEvent,
        target: LiveEvent,
        order_id: str,
        ticket_ids: Sequence[str],
        seat_ids: Sequence[str],
        hold_id: str,
        key: str,
        digest: str,
    ) -> CrossResult:
        """Run (or resume, or answer) the exchange ``key`` of ``source`` into ``target``."""
        rec = await self.read(source.event_id, key)
        if rec is not None and rec.status in ("locked", "done"):
            return await self._joined(source.event_id, key, rec, digest)
        attempt = rec.attempt + 1 if rec is not None else 1
        member = pending_member(source.event_id, target.event_id, attempt, key)
        async with wrap_errors("note exchange"):
            await self._r.zadd(keys.EXCHANGES_PENDING, {member: self._clock() + self.grace_ms})
        # (a) the new seats, held in the target before anything else changes
        owned = not hold_id
        try:
            hold_id = await self._take(tenant_id, source.event_id, target, seat_ids, hold_id, len(ticket_ids),
                                       key, attempt)  # fmt: skip
        except StoreError as exc:
            # perhaps an identical call got further (its hold is committed now): follow it
            rec = await self.read(source.event_id, key)
            if rec is not None and rec.status in ("locked", "done"):
                result = await self._joined(source.event_id, key, rec, digest)
                # the record is final now; this call's note of the attempt (written again
                # after the other call took its own back) goes too, unless a hold of this
                # call may exist (StoreUnavailable: recovery releases it)
                if not isinstance(exc, StoreUnavailable):
                    await self._forget(member)
                return result
            await self._give_up(source.event_id, key, attempt)
            if not isinstance(exc, StoreUnavailable):  # else the hold may exist: recovery releases it
                await self._forget(member)
            raise
        await self._step("held")
        # (b) the old tickets checked and locked, the intent recorded
        args: list[EncodableArg] = [
            key, attempt, digest, new_id("x", 12), order_id, target.event_id, hold_id, int(owned),
            new_id("o", 12), commit_key(source.event_id, key), f"t{secrets.token_hex(6)}-x", source.event_id,
            len(ticket_ids), *ticket_ids,
        ]  # fmt: skip
        reply = await self._scripts.xchg_lock.replicated(saga_keys(source.event_id), args)
        if reply[0] != Reply.OK:
            if owned:
                await self._release(target.event_id, hold_id)
            await self._give_up(source.event_id, key, attempt)
            await self._forget(member)
            raise _lock_error(reply, order_id)
        rec = saga_decoder.decode(reply[1])
        if owned and rec.hold_id != hold_id:  # another attempt holds the lock: this hold is surplus
            await self._release(target.event_id, hold_id)
        await self._step("locked")
        try:
            result = await self._drive(source.event_id, key, rec)
        except StoreError:
            now = await self.read(source.event_id, key)
            if now is None or now.status != "locked":  # rolled back: nothing left to recover
                await self._forget(member)
            raise
        await self._forget(member)
        return result

    async def _take(
        self, tenant_id: str, source_event: str, target: LiveEvent, seat_ids: Sequence[str], hold_id: str,
        n: int, key: str, attempt: int,
    ) -> str:  # fmt: skip
        """Step (a): a hold on ``seat_ids`` made by this attempt, or the caller's ``hold_id``
        checked; returns the hold's id."""
        if hold_id:
            await self._check_hold(target, hold_id, n)
            return hold_id
        request_id = hold_request_id(source_event, key, attempt)
        info = await self._sales.hold_seats(tenant_id, target.event_id, seat_ids, request_id=request_id)
        return parse_token(info.token)[1]

    async def _give_up(self, source_event: str, key: str, attempt: int) -> Saga:
        """Mark ``attempt`` aborted unless the record got further: a retry with the key then
        starts the next attempt, with a hold request id of its own (this one's is spent)."""
        reply = await self._scripts.xchg_finish.replicated(
            finish_keys(source_event), [key, "abandon", attempt, ""]
        )
        match reply:
            case [Reply.OK, raw, _]:
                return saga_decoder.decode(raw)
        raise aftersale.unknown("xchg_finish", reply)

    async def _joined(self, source_event: str, key: str, rec: Saga, digest: str) -> CrossResult:
        if rec.fingerprint != digest:
            raise _key_mismatch(rec.exchange_id)
        return await self._drive(source_event, key, rec)

    async def _check_hold(self, target: LiveEvent, hold_id: str, n: int) -> None:
        """The caller's hold on the target: live, one seat per ticket, no GA (else refused now)."""
        view = await self._inventory.get_hold(target.event_id, hold_id)
        if view.expires_ms <= self._clock():
            raise HoldExpired("the hold has expired", subject=hold_id)
        if view.record.ga and any(view.record.ga.values()):
            raise InvalidRequest("hold_token", "the hold has general admission places: hold seats only")
        if len(view.record.seat_ordinals) != n:
            raise InvalidRequest(
                "hold_token",
                f"the hold has {len(view.record.seat_ordinals)} seat(s): "
                f"exchange as many tickets ({n} named)",
            )

    async def _drive(self, source_event: str, key: str, rec: Saga) -> CrossResult:
        """From a locked record: (c) then (d), or the rollback; a done one is answered."""
        if rec.status == "done":
            return await self._result(source_event, rec, replayed=True)
        try:
            target_json = await self._commit(rec)
        except _Refused as refused:
            await self._abort(source_event, key, rec, refused.reason)
            raise refused.error from None
        await self._step("committed")
        reply = await self._scripts.xchg_finish.replicated(
            finish_keys(source_event), [key, "commit", rec.attempt, target_json]
        )
        match reply:
            case [Reply.OK, raw, _]:
                return await self._result(source_event, saga_decoder.decode(raw), replayed=False)
        raise aftersale.unknown("xchg_finish", reply)

    async def _commit(self, rec: Saga) -> str:
        reply = await self._scripts.xchg_commit.replicated(
            keys.channel_script_keys(rec.target_event_id),  # its channels: a purged hold's places
            [rec.hold_id, rec.commit_key, rec.target_order_id, PURGE_PER_CALL, rec.commit],
        )
        match reply:
            case [Reply.OK, order_json, _]:
                return _text(order_json)
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                error: StoreError = Conflict(f"the exchange's order key is taken by order {_text(other)}")
            case [Reply.EVENT_NOT_FOUND]:
                error = NotFound("event", rec.target_event_id)
            case [Reply.NOT_ON_SALE, status]:
                error = PreconditionFailed(
                    f"the target event is {_text(status)}", subject=rec.target_event_id
                )
            case _:
                token = hold_token(rec.target_event_id, rec.hold_id)
                known = aftersale.exchange_error(reply, token, len(rec.tickets))
                if known is None:
                    raise aftersale.unknown("xchg_commit", reply)
                error = known
        raise _Refused(error, str(error) or type(error).__name__)

    async def _abort(self, source_event: str, key: str, rec: Saga, reason: str) -> None:
        reply = await self._scripts.xchg_finish.replicated(
            finish_keys(source_event), [key, "abort", rec.attempt, reason[:200]]
        )
        if reply[0] not in (Reply.OK, Reply.EXCHANGE_STATE):
            raise aftersale.unknown("xchg_finish", reply)
        if rec.owned:
            await self._release(rec.target_event_id, rec.hold_id)
        log.info("exchange.rolled_back", event_id=source_event, exchange_id=rec.exchange_id, reason=reason)

    async def _release(self, event_id: str, hold_id: str) -> None:
        """Release a hold the exchange made; one already gone is fine."""
        with contextlib.suppress(NotFound, PreconditionFailed):
            await self._inventory.release(event_id, hold_id)

    async def _forget(self, member: str) -> None:
        async with wrap_errors("forget exchange"):
            await self._r.zrem(keys.EXCHANGES_PENDING, member)

    async def _result(self, source_event: str, rec: Saga, *, replayed: bool) -> CrossResult:
        order = await self._inventory.get_order(source_event, rec.order_id)
        new_order = await self._inventory.get_order(rec.target_event_id, rec.target_order_id)
        return CrossResult(order, new_order, replayed)

    # -- recovery ---------------------------------------------------------------------
    async def recover(self, *, now_ms: int | None = None, limit: int = RECOVERY_BATCH) -> int:
        """Complete or undo the attempts due (older than the grace period); returns how
        many were settled. An attempt that fails now is looked at again a grace later."""
        now = self._clock() if now_ms is None else now_ms
        async with wrap_errors("read pending exchanges"):
            due = await self._r.zrangebyscore(keys.EXCHANGES_PENDING, "-inf", now, start=0, num=limit)
        settled = 0
        for raw in due:
            member = _text(raw)
            try:
                await self.recover_attempt(*parse_member(member))
            except (StoreError, ValueError) as exc:
                log.warning("exchange.recovery_failed", attempt=member, error=str(exc))
                async with wrap_errors("reschedule exchange"):
                    await self._r.zadd(keys.EXCHANGES_PENDING, {member: now + self.grace_ms})
                continue
            await self._forget(member)
            settled += 1
        return settled

    async def recover_attempt(self, source_event: str, target_event: str, attempt: int, key: str) -> Saga:
        """Settle one attempt: its record final, its surplus hold released. Returns the record."""
        rec = await self._give_up(source_event, key, attempt)
        if rec.status == "locked":
            try:
                await self._drive(source_event, key, rec)
            except StoreError as exc:
                if (await self.read(source_event, key) or rec).status == "locked":
                    raise  # transient: the record is still locked, look again later
                log.info("exchange.recovered_by_rollback", event_id=source_event, error=str(exc))
            rec = await self.read(source_event, key) or rec
        # the hold this attempt made, unless it is the one the exchange committed
        async with wrap_errors("read exchange hold"):
            made = await self._r.hget(
                keys.event_key(target_event, "holdreqs"), hold_request_id(source_event, key, attempt)
            )
        if made is not None:
            hold_id = _text(made).split(" ", 1)[0]
            if not (rec.status == "done" and rec.hold_id == hold_id):
                await self._release(target_event, hold_id)
        log.info("exchange.recovered", event_id=source_event, attempt=attempt, status=rec.status)
        return rec


def _lock_error(reply: Any, order_id: str) -> StoreError:
    """Why xchg_lock.lua refused."""
    match reply:
        case [Reply.EXCHANGE_ABANDONED, _]:
            return Abandoned("the exchange attempt was given up; retry with the same exchange_key")
        case [Reply.EXCHANGE_KEY_MISMATCH, other]:
            return _key_mismatch(other)
    return aftersale.ticket_error(reply, order_id) or aftersale.unknown("xchg_lock", reply)


def _key_mismatch(other: Any) -> InvalidRequest:
    return InvalidRequest("exchange_key", f"already used for exchange {_text(other)} of a different request")


def exchange_record(order: Order, key: str) -> Exchange:
    """The exchange ``key`` made, as the source order records it."""
    for x in order.exchange_list:
        if x.exchange_key == key:
            return x
    raise aftersale.unknown("exchange record", key)
