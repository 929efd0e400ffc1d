"""Seasons and bundles: events grouped into a season, held and sold together.

A season is created over one published seat-map version and a currency; events
created into it get the id ``<season_id>~<random>`` (:func:`new_season_event_id`),
whose keys all carry the season's hash tag ``{ev:<season_id>}`` (holds/keys.py
``event_tag``). Every event of a season is therefore in one Redis Cluster slot,
and one script can hold the same seats across any of them: that is what makes
a season hold one atomic step, racing single-event holds correctly. The cost:
a season is served by one Redis primary (docs/selling.md, "Seasons and bundles").

A season hold is one ordinary hold per event, all with the same hold id and
expiry (so expiry, reaping, availability and the change streams need nothing
new), plus a season hold record in the season's keys listing the events. Its
commit writes one order per event (each fenced and priced as ``commit.lua``
does) and a season order listing them, idempotent by key in the season.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from holds import keys, metrics
from holds.channels import NO_ACCESS, ChannelAccess
from holds.errors import (
    Conflict,
    GeneralAdmissionUnavailable,
    HoldExpired,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    SeatsDistanced,
    SeatsInWrongState,
    SeatsUnavailable,
    StoreError,
)
from holds.events import check_sellable, new_event_id
from holds.ids import check_name, new_id
from holds.inventory import PURGE_PER_CALL
from holds.live import LiveEvent
from holds.offers import Claim, OfferChoice, Offers, offer_error, seat_names
from holds.records import Buyer, Order, Sale, json_encoder, order_decoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.retries import check_request_id, fingerprint
from holds.sales import (
    MAX_SEATS_PER_REQUEST,
    Sales,
    TicketLimits,
    check_order_input,
    hold_token,
    outcome_known,
)
from holds.script_channel import EncodableArg
from holds.scripts import ScriptRegistry
from holds.seatmaps import LoadedSeatMap
from rules.bundles import check_bundle_prices, split_bundle
from rules.fees import Collector

MAX_EVENTS_PER_SEASON = 100  # a season hold passes 21 keys per event to one script
SEASON_TOKEN_SEPARATOR = "."


@dataclass(frozen=True)
class Season:
    season_id: str
    tenant_id: str
    name: str
    seat_map_id: str
    seat_map_version: int
    currency: str
    created_ms: int
    event_ids: tuple[str, ...] = ()
    # one seat of a category for the whole season (rules/bundles.py); none: the events' prices
    bundle_prices: Mapping[str, int] = field(default_factory=dict)


class SeasonHoldRecord(msgspec.Struct, frozen=True):
    """A season hold as the scripts store it (``season_hold.lua``)."""

    season_id: str
    events: list[str]
    seats: list[int] | dict[str, int]  # cjson writes an empty list as {}
    cats: list[str] | dict[str, str]
    buyer: str
    created: int
    expires: int
    status: str  # live | released | committed:<season order id>
    ga: dict[str, int] | list[Any] = {}  # area -> places in each event (cjson: an empty one as [] or {})

    @property
    def seat_ordinals(self) -> list[int]:
        return list(self.seats) if isinstance(self.seats, list) else []

    @property
    def places(self) -> dict[str, int]:
        """GA area -> places, taken in each event."""
        return dict(self.ga) if isinstance(self.ga, dict) else {}

    @property
    def categories(self) -> list[str]:
        return list(self.cats) if isinstance(self.cats, list) else []


class SeasonOrderLine(msgspec.Struct, frozen=True):
    event_id: str
    order_id: str


class SeasonOrderRecord(msgspec.Struct, frozen=True):
    season_order_id: str
    season_id: str
    hold_id: str
    idempotency_key: str
    orders: list[SeasonOrderLine] | dict[str, str]
    total: int
    currency: str
    created_ms: int
    bundle: bool = False  # priced from the season's bundle prices
    promo_code: str = ""  # the code its orders used ("" none); discount: their discounts' sum
    discount: int = 0

    @property
    def lines(self) -> list[SeasonOrderLine]:
        return list(self.orders) if isinstance(self.orders, list) else []


_hold_decoder = msgspec.json.Decoder(SeasonHoldRecord)
_bundle_decoder = msgspec.json.Decoder(dict[str, int])
_order_decoder = msgspec.json.Decoder(SeasonOrderRecord)


@dataclass(frozen=True)
class SeasonHoldInfo:
    token: str
    season_id: str
    event_ids: list[str]
    seat_ids: list[str]
    expires_ms: int
    buyer: str
    lifetime_capped: bool = False
    replayed: bool = False  # a retried request id answered with the season hold it made
    ga: dict[str, int] = dataclasses.field(default_factory=dict)  # GA area -> places in each event


@dataclass(frozen=True)
class SeasonOrder:
    season_order_id: str
    season_id: str
    hold_token: str
    idempotency_key: str
    event_ids: list[str]  # the events of the orders, in the same order
    orders: list[Order]  # one per event, in the season hold's event order
    total: int
    currency: str
    created_ms: int
    replayed: bool
    bundle_priced: bool = False
    promo_code: str = ""
    discount: int = 0


BUNDLE_ATTEMPTS = 3  # splits of a bundle tried when the events' prices keep moving under the commit


def new_season_id() -> str:
    """Letters and digits only: never the season separator, never a token's '.'."""
    return new_id("ss", 9).replace("-", "x").replace("_", "y")


def new_season_event_id(season_id: str) -> str:
    return f"{season_id}{keys.SEASON_SEPARATOR}{new_event_id()}"


def season_of(event_id: str) -> str:
    """The season an event was created into ("" for an event of no season)."""
    season_id, sep, _ = event_id.partition(keys.SEASON_SEPARATOR)
    return season_id if sep else ""


def season_hold_token(season_id: str, hold_id: str) -> str:
    return f"{season_id}{SEASON_TOKEN_SEPARATOR}{hold_id}"


def parse_season_token(token: str) -> tuple[str, str]:
    season_id, sep, hold_id = token.partition(SEASON_TOKEN_SEPARATOR)
    if (
        not sep
        or not season_id
        or not hold_id
        or len(token) > 200
        or keys.SEASON_SEPARATOR in season_id
        or ":" in hold_id  # never a hold id: the season's request ids are "req:<id>" beside them
    ):
        raise InvalidRequest("season_hold_token", "not a season hold token this service issued")
    return season_id, hold_id


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_bundle(bundle: Mapping[str, int], loaded: LoadedSeatMap) -> None:
    wrong = check_bundle_prices(bundle, set(loaded.version.stats.categories))
    if wrong is None:
        return
    if wrong not in loaded.version.stats.categories:
        raise InvalidRequest(f"bundle_prices[{wrong}]", "no such category in the season's seat map")
    raise InvalidRequest(f"bundle_prices[{wrong}]", "a price is 0 or more minor units (at most 10^12)")


class SeasonStore:
    """Seasons: the record and its events in the season's slot, a listing per tenant."""

    def __init__(self, client: AnyRedis) -> None:
        self._r = client

    async def create(
        self,
        tenant_id: str,
        loaded: LoadedSeatMap,
        currency: str,
        name: str,
        bundle_prices: Mapping[str, int] | None = None,
    ) -> Season:
        check_sellable(loaded, currency)
        check_name("name", name)
        bundle = dict(bundle_prices or {})
        _check_bundle(bundle, loaded)
        season = Season(
            new_season_id(), tenant_id, name, loaded.version.seat_map_id, loaded.version.version, currency,
            int(time.time() * 1000), (), bundle,
        )  # fmt: skip
        record = {
            "tenant": tenant_id,
            "name": name,
            "seat_map_id": season.seat_map_id,
            "seat_map_version": str(season.seat_map_version),
            "currency": currency,
            "created_ms": str(season.created_ms),
            "bundle": json_encoder.encode(bundle).decode(),
        }
        async with wrap_errors("create season"):
            await self._r.hset(keys.season_keys(season.season_id)[0], mapping=record)
            await self._r.zadd(keys.tenant_seasons(tenant_id), {season.season_id: season.created_ms})
        return season

    async def get(self, tenant_id: str, season_id: str) -> Season:
        """The season, if ``tenant_id`` owns it (another's is NotFound, like a missing one)."""
        if not season_id or len(season_id) > 64 or keys.SEASON_SEPARATOR in season_id:
            raise NotFound("season", season_id[:64])
        season_key, *_rest, events_key = keys.season_keys(season_id)
        async with wrap_errors("get season"):
            raw = await self._r.hgetall(season_key)
            events = await self._r.zrange(events_key, 0, -1) if raw else []
        m = {k.decode(): v.decode() for k, v in raw.items()}
        if m.get("tenant") != tenant_id:
            raise NotFound("season", season_id)
        return Season(
            season_id, tenant_id, m["name"], m["seat_map_id"], int(m["seat_map_version"]), m["currency"],
            int(m["created_ms"]), tuple(e.decode() for e in events),
            _bundle_decoder.decode(m["bundle"]) if m.get("bundle") else {},
        )  # fmt: skip

    async def set_bundle_prices(
        self, tenant_id: str, season_id: str, loaded: LoadedSeatMap, bundle_prices: Mapping[str, int]
    ) -> Season:
        """Replace the season's bundle prices (``loaded``: the season's seat-map version). A
        commit reads them when it runs: holds already made are priced at their commit."""
        season = await self.get(tenant_id, season_id)
        version = loaded.version
        if (version.seat_map_id, version.version) != (season.seat_map_id, season.seat_map_version):
            raise StoreError(f"season {season_id}'s prices are checked against another seat map")
        bundle = dict(bundle_prices)
        _check_bundle(bundle, loaded)
        async with wrap_errors("set season prices"):
            await self._r.hset(keys.season_keys(season_id)[0], "bundle", json_encoder.encode(bundle).decode())
        return await self.get(tenant_id, season.season_id)

    async def list_seasons(self, tenant_id: str, offset: int, limit: int) -> tuple[list[Season], bool]:
        async with wrap_errors("list seasons"):
            ids = [
                i.decode()
                for i in await self._r.zrevrange(keys.tenant_seasons(tenant_id), offset, offset + limit)
            ]
        return [await self.get(tenant_id, s) for s in ids[:limit]], len(ids) > limit

    async def add_event(self, season: Season, event_id: str, created_ms: int) -> None:
        """List an event created into the season (after the event itself is written: a crash
        in between leaves an event that a season hold naming it still takes, but that "every
        event of the season" does not include)."""
        if season_of(event_id) != season.season_id:
            raise StoreError(f"event {event_id} was not created into season {season.season_id}")
        async with wrap_errors("index season event"):
            await self._r.zadd(keys.season_keys(season.season_id)[4], {event_id: created_ms})

    @staticmethod
    def check_event(season: Season, seat_map_id: str, seat_map_version: int, currency: str) -> None:
        """A new event of ``season`` must use its seat-map version and currency (given or not)."""
        if seat_map_id and seat_map_id != season.seat_map_id:
            raise InvalidRequest("seat_map_id", f"the season's events use seat map {season.seat_map_id}")
        if seat_map_version and seat_map_version != season.seat_map_version:
            raise InvalidRequest(
                "seat_map_version", f"the season's events use version {season.seat_map_version}"
            )
        if currency and currency != season.currency:
            raise InvalidRequest("currency", f"the season's events sell in {season.currency}")


class SeasonSales:
    """Season holds and orders: each state change one script over the season's slot."""

    def __init__(
        self,
        client: AnyRedis,
        scripts: ScriptRegistry,
        seasons: SeasonStore,
        sales: Sales,
        limits: TicketLimits | None = None,
        offers: Offers | None = None,
    ) -> None:
        self._r = client
        self._scripts = scripts
        self._seasons = seasons
        self._sales = sales
        self._limits = limits
        self._offers = offers

    async def _events(self, season: Season, event_ids: Sequence[str]) -> list[LiveEvent]:
        """The chosen events (none: every event of the season), in the season's order."""
        if len(set(event_ids)) != len(event_ids):
            raise InvalidRequest("event_ids", "an event is listed twice")
        for i, event_id in enumerate(event_ids):
            if season_of(event_id) != season.season_id:
                raise InvalidRequest(
                    f"event_ids[{i}]", f"event {event_id!r} is not in season {season.season_id}"
                )
        chosen = list(event_ids) or list(season.event_ids)
        if not chosen:
            raise PreconditionFailed(f"season {season.season_id} has no events yet", subject=season.season_id)
        if len(chosen) > MAX_EVENTS_PER_SEASON:
            raise InvalidRequest("event_ids", f"at most {MAX_EVENTS_PER_SEASON} events per season hold")
        order = {e: i for i, e in enumerate(season.event_ids)}
        chosen.sort(key=lambda e: (order.get(e, len(order)), e))
        return [await self._sales.context(season.tenant_id, e) for e in chosen]

    @staticmethod
    def _keys(
        season_id: str, event_ids: Sequence[str], *, channels: bool = False, offers: bool = False
    ) -> list[str]:
        """The season's keys, each event's; with ``offers``, then each event's offer keys
        (_season_sale.lua); with ``channels``, last, each event's channel keys (_season.lua
        use_event: the scripts that take or give back a channel's places), in the same order."""
        out = list(keys.season_keys(season_id))
        for event_id in event_ids:
            out += keys.event_keys(event_id)
        if offers:
            out += [k for e in event_ids for k in keys.offer_keys(e)]
        if channels:
            for event_id in event_ids:
                out += keys.channel_keys(event_id)
        return out

    async def hold(
        self,
        tenant_id: str,
        season_id: str,
        seat_ids: Sequence[str],
        *,
        event_ids: Sequence[str] = (),
        buyer: str = "",
        access: ChannelAccess = NO_ACCESS,
        request_id: str = "",
        ga: Mapping[str, int] | None = None,
    ) -> SeasonHoldInfo:
        """Hold ``seat_ids`` and ``ga`` (area -> places) in every chosen event of the season
        (none: all), all or nothing, each event checked as a single-event hold is: its channels
        (``access`` names one channel and its code, checked in every event), its
        minimum-distance rule and its GA room.

        ``request_id`` makes the call retry-safe, scoped to the season (holds/retries.py):
        the same id with the same request answers the season hold it made (``replayed``)
        or why it is gone; with another request, InvalidRequest on ``request_id``."""
        season = await self._seasons.get(tenant_id, season_id)
        ga = dict(ga or {})
        if not seat_ids and not ga:
            raise InvalidRequest("seat_ids", "name at least one seat or general admission place")
        if len(buyer) > 128:
            raise InvalidRequest("buyer_id", "must be at most 128 characters")
        access.check()
        check_request_id(request_id)
        parts: dict[str, object] = {"seats": sorted(seat_ids), "events": sorted(event_ids), **access.part()}
        if ga:  # none: the fingerprint of before general admission
            parts["ga"] = sorted(ga.items())
        request_fingerprint = fingerprint("season", season_id, buyer, "", parts) if request_id else ""
        ctxs = await self._events(season, event_ids)
        for ctx in ctxs:  # created into the season: its seat-map version (one ordinal, one seat)
            if (ctx.ref.seat_map_id, ctx.ref.seat_map_version) != (
                season.seat_map_id,
                season.seat_map_version,
            ):
                raise StoreError(f"event {ctx.event_id} is not on season {season.season_id}'s seat map")
        ordinals = self._sales.ordinals(ctxs[0], seat_ids)
        _check_ga(ctxs[0], ga)
        places = (len(ordinals) + sum(ga.values())) * len(ctxs)
        if places > MAX_SEATS_PER_REQUEST:
            raise InvalidRequest("seat_ids", f"at most {MAX_SEATS_PER_REQUEST} places per season hold")
        if self._limits is not None:
            await self._limits.check_tickets(tenant_id, places)
        placed = ctxs[0].loaded.index.placed
        events = [c.event_id for c in ctxs]
        hold_id = new_id("h", 12)
        args: list[EncodableArg] = [
            hold_id,
            buyer,
            PURGE_PER_CALL,
            season_id,
            request_id,
            request_fingerprint,
            len(events),
            *events,
            len(ordinals),
        ]
        args += ordinals
        args += [placed[o].seat.category for o in ordinals]
        args.append(len(ga))
        for area, qty in sorted(ga.items()):
            args += [area, qty]
        args += access.args()  # the same channel access in every event (season_hold.lua CH_ARG)
        script_keys = self._keys(season_id, events, channels=True)
        # each event's distancing rule as this process knows it; an event whose rule changed
        # is told once and the hold asked again (holds/distancing.py with_current_rule)
        for _attempt in range(len(ctxs) + 1):
            rule_args = [a for ctx in ctxs for a in ctx.distancing_args(ordinals)]
            reply = await self._scripts.season_hold(script_keys, [*args, *rule_args])
            match reply:
                case [Reply.SEASON_EVENT, position, [Reply.DISTANCE_RULE_CHANGED, rule]]:
                    await ctxs[int(position) - 1].learn(_text(rule))
                    continue
            break
        return self._hold_result(reply, ctxs[0], events, season_id, hold_id, request_id)

    def _hold_result(
        self, reply: Any, ctx: LiveEvent, events: list[str], season_id: str, hold_id: str, request_id: str
    ) -> SeasonHoldInfo:
        match reply:
            case [Reply.OK, hid, expires, encoded, replayed]:
                if not replayed:
                    metrics.HOLDS.inc(len(events))
                info = self._info(ctx, _text(hid), _hold_decoder.decode(encoded), int(expires))
                return dataclasses.replace(info, replayed=bool(replayed))
            case [Reply.REQUEST_MISMATCH]:
                raise InvalidRequest("request_id", "already used for a different season hold request")
            case [Reply.SEASON_SEATS_UNAVAILABLE, taken]:
                metrics.SEATS_UNAVAILABLE.inc()
                raise SeasonSeatsUnavailable(self._by_event(ctx, events, taken))
            case [Reply.SEASON_SEATS_REFUSED, Reply.CHANNEL_SEATS, refused]:
                metrics.SEATS_UNAVAILABLE.inc()
                raise SeasonSeatsInChannel(self._by_event(ctx, events, refused))
            case [Reply.SEASON_SEATS_REFUSED, Reply.SEATS_DISTANCED, refused]:
                raise SeasonSeatsDistanced(self._by_event(ctx, events, refused))
            case [Reply.SEASON_NOT_FOUND]:
                raise NotFound("season", season_id)
            case [Reply.HOLD_ID_COLLISION]:
                raise Conflict("hold id collision; retry")
        raise (
            self._gone(reply, request_id)  # a replayed request's season hold is gone
            or self._event_error(reply, events, hold_id)
            or _unknown("season_hold", reply)
        )

    def _by_event(self, ctx: LiveEvent, events: Sequence[str], refused: Any) -> dict[str, list[str]]:
        """A script's ``{{position, {ordinal, ...}}, ...}`` as event id -> seat ids."""
        return {
            events[int(position) - 1]: self._sales.seat_ids(ctx, [int(o) for o in ordinals])
            for position, ordinals in refused
        }

    def _info(self, ctx: LiveEvent, hold_id: str, record: SeasonHoldRecord, expires: int) -> SeasonHoldInfo:
        return SeasonHoldInfo(
            token=season_hold_token(record.season_id, hold_id),
            season_id=record.season_id,
            event_ids=list(record.events),
            seat_ids=self._sales.seat_ids(ctx, record.seat_ordinals),
            expires_ms=expires,
            buyer=record.buyer,
            ga=record.places,
        )

    async def _record(self, tenant_id: str, token: str) -> tuple[Season, str, SeasonHoldRecord]:
        season_id, hold_id = parse_season_token(token)
        season = await self._seasons.get(tenant_id, season_id)
        async with wrap_errors("get season hold"):
            raw = await self._r.hget(keys.season_keys(season_id)[1], hold_id)
        if raw is None:
            raise NotFound("season hold", token)
        return season, hold_id, _hold_decoder.decode(raw)

    async def get_hold(self, tenant_id: str, token: str) -> SeasonHoldInfo:
        """The season hold, while it lives: expiry is decided on Redis's clock by reading
        each event's part (``hold_view.lua``), as ``GetHold`` does for one hold."""
        _season, hold_id, record = await self._record(tenant_id, token)
        if record.status == "released":
            raise PreconditionFailed("the season hold was released", subject=token)
        if record.status.startswith("committed:"):
            raise PreconditionFailed(
                f"the season hold was already committed to season order {record.status[10:]}", subject=token
            )
        for event_id in record.events:
            try:
                await self._sales.get_hold(tenant_id, hold_token(event_id, hold_id))
            except HoldExpired as exc:
                raise HoldExpired("the season hold has expired", subject=token) from exc
            except (NotFound, PreconditionFailed) as exc:
                raise PreconditionFailed(
                    f"the season hold's part in event {event_id} is gone: {exc}", subject=event_id
                ) from exc
        ctx = await self._sales.context(tenant_id, record.events[0])
        return self._info(ctx, hold_id, record, record.expires)

    async def extend(self, tenant_id: str, token: str, ttl_ms: int = 0) -> SeasonHoldInfo:
        season, hold_id, record = await self._record(tenant_id, token)
        events = list(record.events)
        reply = await self._scripts.season_extend(
            self._keys(season.season_id, events), [hold_id, ttl_ms, len(events), *events]
        )
        match reply:
            case [Reply.OK, expires, capped, encoded]:
                ctx = await self._sales.context(tenant_id, events[0])
                info = self._info(ctx, hold_id, _hold_decoder.decode(encoded), int(expires))
                return SeasonHoldInfo(**{**info.__dict__, "lifetime_capped": bool(capped)})
        raise (
            self._gone(reply, token)
            or self._event_error(reply, events, token)
            or _unknown("season_extend", reply)
        )

    async def release(self, tenant_id: str, token: str) -> None:
        season, hold_id, record = await self._record(tenant_id, token)
        events = list(record.events)
        script_keys = self._keys(season.season_id, events, channels=True)
        reply = await self._scripts.season_release(
            script_keys, [hold_id, PURGE_PER_CALL, len(events), *events]
        )
        if reply == [Reply.OK]:
            return
        raise self._gone(reply, token) or _unknown("season_release", reply)

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
    ) -> SeasonOrder:
        """One order per event of the season hold: at the season's bundle prices when it is
        over every event of the season (rules/bundles.py), else at each event's prices; then
        ``offer``'s ticket types (per seat, the same type in every event) and promo code
        (each event's own, else the organizer's: one use for the season order)."""
        check_order_input(idempotency_key, buyer)
        if offer is not None and offer.ga_types:
            area = sorted(offer.ga_types)[0]
            raise InvalidRequest(f"ga_ticket_types[{area}]", "a season hold holds seats, not GA places")
        season, hold_id, record = await self._record(tenant_id, token)
        events = list(record.events)
        ctx = await self._sales.context(tenant_id, events[0])
        sale = await self._sales.sale(tenant_id, ctx, collector, payment_method, "storefront")
        offer_json, promo_claim = "", None
        if offer:
            offer_json, promo_claim = await self._offer(tenant_id, ctx, events, offer, record.buyer)
        try:
            result = await self._commit(
                tenant_id, token, idempotency_key, buyer, (season, hold_id, record), ctx, sale, offer_json,
                seat_names(ctx, offer) if offer else {},
            )  # fmt: skip
        except BaseException as exc:
            await self._give_back(promo_claim, exc)
            raise
        if result.replayed:
            await self._give_back(promo_claim)
        return result

    async def _offer(
        self, tenant_id: str, ctx: LiveEvent, events: Sequence[str], offer: OfferChoice, buyer: str
    ) -> tuple[str, Claim | None]:
        """The script's offer (JSON) and the organizer-wide code's use claimed for the season
        order (None: none), as a single event's commit prepares them (holds/offers.py)."""
        if self._offers is None:
            raise PreconditionFailed("ticket types and promo codes are not served here", subject=ctx.event_id)

        async def hold_buyer() -> str:
            return buyer

        sale_offer, claim = await self._offers.prepare(
            tenant_id, ctx, offer, buyer=hold_buyer, now_ms=int(time.time() * 1000), events=events
        )
        return json_encoder.encode(sale_offer).decode(), claim

    async def _give_back(self, claim: Claim | None, failure: BaseException | None = None) -> None:
        """Return the organizer-wide code's use the commit did not make (refused or replayed);
        kept when the outcome is unknown (holds/sales.py's rule: never a use too few)."""
        if claim is None or self._offers is None or not outcome_known(failure):
            return
        await asyncio.shield(self._offers.give_back(claim))

    async def _commit(
        self,
        tenant_id: str,
        token: str,
        idempotency_key: str,
        buyer: Buyer,
        found: tuple[Season, str, SeasonHoldRecord],
        ctx: LiveEvent,
        sale: Sale,
        offer_json: str,
        named: dict[int, str],
    ) -> SeasonOrder:
        season, hold_id, record = found
        events = list(record.events)
        season_order_id = new_id("so", 12)
        args: list[str | int] = [
            hold_id, idempotency_key, season_order_id, json_encoder.encode(buyer).decode(),
            f"t{secrets.token_hex(6)}-", PURGE_PER_CALL, json_encoder.encode(sale).decode(),
            len(events), *events, *(new_id("o", 12) for _ in events),
        ]  # fmt: skip
        whole_season = bool(season.bundle_prices) and set(events) == set(season.event_ids)
        # the places claimed against the plan's tickets per month first, settled after
        # (as a single event's commit does: holds/sales.py)
        claim = None
        if self._limits is not None:
            places = (len(record.seat_ordinals) + sum(record.places.values())) * len(events)
            claim = await self._limits.claim_tickets(tenant_id, events[0], idempotency_key, quantity=places)
        made = 0
        failure: BaseException | None = None
        try:
            # the events' offer keys after their inventory keys (_season_sale.lua), channel keys last
            script_keys = self._keys(season.season_id, events, channels=True, offers=bool(offer_json))
            for _attempt in range(BUNDLE_ATTEMPTS):
                bundle = await self._bundle(season, events, record) if whole_season else ""
                reply = await self._scripts.season_commit.replicated(script_keys, [*args, bundle, offer_json])
                if reply != [Reply.BUNDLE_PRICES_CHANGED]:
                    break
            if reply[0] == Reply.OK and not reply[3]:
                made = sum(len(order_decoder.decode(o).tickets) for o in reply[2] if o)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if claim is not None and self._limits is not None and outcome_known(failure):
                await asyncio.shield(self._limits.settle_tickets(claim, made))
        match reply:
            case [Reply.OK, season_json, order_jsons, replayed]:
                rec = _order_decoder.decode(season_json)
                orders = [order_decoder.decode(o) for o in order_jsons if o]
                if not replayed:
                    metrics.COMMITS_VIA_HOLD.inc(len(orders))
                return SeasonOrder(
                    rec.season_order_id, rec.season_id, token, rec.idempotency_key,
                    [line.event_id for line in rec.lines], orders, rec.total,
                    rec.currency, rec.created_ms, bool(replayed), rec.bundle, rec.promo_code, rec.discount,
                )  # fmt: skip
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                raise InvalidRequest(
                    "idempotency_key", f"already used for season order {_text(other)} of a different hold"
                )
            case [Reply.BUNDLE_PRICES_CHANGED]:
                raise Conflict("the season's events changed their prices during the commit; retry")
        raise (
            self._gone(reply, token)
            or self._event_error(reply, events, token, named)
            or _unknown("season_commit", reply)
        )

    async def get_order(self, tenant_id: str, season_id: str, season_order_id: str) -> SeasonOrder:
        """A season order with each event's order as it is now (cancels and refunds included)."""
        await self._seasons.get(tenant_id, season_id)
        if not season_order_id:
            raise InvalidRequest("season_order_id", "required")
        async with wrap_errors("get season order"):
            raw = await self._r.hget(keys.season_keys(season_id)[2], season_order_id)
        if raw is None or season_order_id.startswith("key:"):
            raise NotFound("season order", season_order_id)
        rec = _order_decoder.decode(raw)
        orders = [
            (await self._sales.get_order(tenant_id, line.event_id, line.order_id))[1] for line in rec.lines
        ]
        return SeasonOrder(
            rec.season_order_id, rec.season_id, season_hold_token(season_id, rec.hold_id),
            rec.idempotency_key, [line.event_id for line in rec.lines], orders, rec.total, rec.currency,
            rec.created_ms, False, rec.bundle, rec.promo_code, rec.discount,
        )  # fmt: skip

    async def _bundle(self, season: Season, events: Sequence[str], record: SeasonHoldRecord) -> str:
        """The bundle's split for a commit over every event of the season (JSON for
        ``_season_sale.lua``; "" when no category of the hold has a bundle price): per
        category, each event's list price now and its part of the bundle (rules/bundles.py).
        A category that some event does not price is left out (the commit answers NO_PRICE)."""
        cats = sorted(set(record.categories) & set(season.bundle_prices))
        if not cats:
            return ""
        async with wrap_errors("read season prices"), self._r.pipeline(transaction=False) as pipe:
            for event_id in events:  # one slot, the season's: one round trip
                pipe.hmget(keys.event_key(event_id, "prices"), cats)
            listed: list[list[bytes | None]] = await pipe.execute()
        split: dict[str, list[list[int]]] = {}
        for j, cat in enumerate(cats):
            raw = [prices[j] for prices in listed]
            weights = [int(p) for p in raw if p is not None]
            if len(weights) != len(raw):
                continue
            parts = split_bundle(season.bundle_prices[cat], weights)
            split[cat] = [[w, part] for w, part in zip(weights, parts, strict=True)]
        return json_encoder.encode(split).decode() if split else ""

    @staticmethod
    def _gone(reply: Any, token: str) -> StoreError | None:
        match reply:
            case [Reply.HOLD_NOT_FOUND]:
                return NotFound("season hold", token)
            case [Reply.HOLD_EXPIRED]:
                return HoldExpired(
                    "the season hold has expired; its seats may have been sold to someone else", subject=token
                )
            case [Reply.HOLD_RELEASED]:
                return PreconditionFailed("the season hold was released", subject=token)
            case [Reply.HOLD_COMMITTED, order]:
                return PreconditionFailed(
                    f"the season hold was already committed to season order {_text(order)}", subject=token
                )
            case [Reply.SEASON_HOLD_CHANGED]:
                return Conflict("the season hold changed while it was read; retry")
        return None

    @staticmethod
    def _event_error(
        reply: Any, events: Sequence[str], subject: str, named: dict[int, str] | None = None
    ) -> StoreError | None:
        """An event's refusal inside a season script, naming the event (``named``: the seat
        ids of the ordinals an offer names)."""
        match reply:
            case [Reply.SEASON_EVENT, position, inner]:
                event_id = events[int(position) - 1]
            case _:
                return None
        if (refusal := _hold_refusal(inner, event_id)) is not None:
            return refusal
        match inner:
            case [Reply.EVENT_NOT_FOUND]:
                return NotFound("event", event_id)
            case [Reply.NOT_ON_SALE, status]:
                return PreconditionFailed(
                    f"event {event_id} is not on sale (status {_text(status)}, "
                    "or outside its on-sale window)",
                    subject=event_id,
                )
            case [Reply.HOLD_LOST, _]:
                metrics.HOLD_LOST.inc()
                return HoldExpired(
                    f"the season hold no longer holds all of its seats in event {event_id}", subject=event_id
                )
            case [Reply.NO_PRICE, category]:
                return PreconditionFailed(
                    f"category {_text(category)!r} has no price in event {event_id}", subject=event_id
                )
            case [Reply.IDEMPOTENCY_MISMATCH, other]:
                return InvalidRequest(
                    "idempotency_key", f"already used for order {_text(other)} of event {event_id}"
                )
            case [Reply.HOLD_EXPIRED]:
                return HoldExpired(f"the season hold has expired in event {event_id}", subject=subject)
            case [Reply.HOLD_NOT_FOUND]:
                return NotFound("season hold in event", event_id)
            case [Reply.HOLD_RELEASED]:
                return PreconditionFailed(
                    f"the season hold was released in event {event_id}", subject=event_id
                )
            case [Reply.HOLD_COMMITTED, order]:
                return PreconditionFailed(
                    f"the season hold's part in event {event_id} was committed to order {_text(order)}",
                    subject=event_id,
                )
        return _offer_in_event(inner, event_id, named) or _unknown("season script", reply)


class SeasonSeatsUnavailable(SeatsUnavailable):
    """Seats taken in some events of a season hold: nothing was held anywhere. The seats
    are named ``<event id>/<seat id>``; ``by_event`` maps each event to its taken seats."""

    def __init__(self, by_event: dict[str, list[str]]) -> None:
        named = [f"{event}/{seat}" for event, seats in by_event.items() for seat in seats]
        shown = "; ".join(f"in event {event}: {', '.join(seats[:20])}" for event, seats in by_event.items())
        super().__init__(named, f"seats not available {shown}")
        self.by_event = by_event


class SeasonGeneralAdmissionUnavailable(GeneralAdmissionUnavailable):
    """A GA area of one event of a season hold has fewer places left than asked: nothing was
    held anywhere. ``area`` is named ``<event id>/<area id>`` (ABORTED, its ResourceInfo)."""

    def __init__(self, event_id: str, area_id: str, available: int) -> None:
        super().__init__(f"{event_id}/{area_id}", available)
        self.event_id = event_id
        self.area_id = area_id


def _check_ga(ctx: LiveEvent, ga: Mapping[str, int]) -> None:
    """Areas of the season's seat map, 1 or more places each."""
    for area, qty in ga.items():
        if area not in ctx.loaded.index.ga_areas:
            raise InvalidRequest("general_admission", f"no general admission area {area!r} in this season")
        if not 1 <= qty <= MAX_SEATS_PER_REQUEST:
            raise InvalidRequest("general_admission", f"places of {area!r} must be 1-{MAX_SEATS_PER_REQUEST}")


class SeasonSeatsInChannel(SeatsInWrongState):
    """Seats allocated, in some events of a season hold, to channels the request has no access
    to: nothing was held anywhere. Named ``<event id>/<seat id>``, as SeasonSeatsUnavailable."""

    def __init__(self, by_event: dict[str, list[str]]) -> None:
        why = "allocated to a channel this request has no access to"
        super().__init__({f"{event}/{seat}": why for event, seats in by_event.items() for seat in seats})
        self.by_event = by_event


class SeasonSeatsDistanced(SeatsDistanced):
    """Seats within an event's minimum distance of another group, in some events of a season
    hold: nothing was held anywhere. Named ``<event id>/<seat id>``."""

    def __init__(self, by_event: dict[str, list[str]]) -> None:
        super().__init__([f"{event}/{seat}" for event, seats in by_event.items() for seat in seats])
        self.by_event = by_event


def _hold_refusal(inner: Any, event_id: str) -> StoreError | None:
    """An event's refusal of a season hold's limits, channel access or distancing, naming the event."""
    match inner:
        case [Reply.LIMIT_EXCEEDED, limit, maximum]:
            return LimitExceeded(f"{_text(limit)} in event {event_id}", int(maximum))
        case [Reply.GA_UNAVAILABLE, area, available]:
            metrics.GA_UNAVAILABLE.inc()
            return SeasonGeneralAdmissionUnavailable(event_id, _text(area), int(available))
        case [Reply.GA_UNKNOWN, area, _]:
            return NotFound("general admission area", f"{event_id}/{_text(area)}")
        case [Reply.CHANNEL_DENIED, channel_id]:
            return InvalidRequest(
                "channel_access",
                f"unknown channel {_text(channel_id)!r} in event {event_id}, or a wrong access code",
            )
        case [Reply.CHANNEL_CLOSED, channel_id]:
            return PreconditionFailed(
                f"channel {_text(channel_id)!r} of event {event_id} is closed", subject=event_id
            )
        case [Reply.DISTANCE_RULE_CHANGED, _]:
            return Conflict(f"the distancing rule of event {event_id} changed during the call; retry")
    return None


def _offer_in_event(inner: Any, event_id: str, named: dict[int, str] | None) -> StoreError | None:
    """A ticket type's or promo code's refusal in one event of a season commit, naming it."""
    offered = offer_error(inner, seat_of=named)
    if isinstance(offered, InvalidRequest):
        return InvalidRequest(offered.field, f"{offered.description} in event {event_id}")
    if isinstance(offered, PreconditionFailed):
        return PreconditionFailed(f"{offered} in event {event_id}", subject=offered.subject)
    return offered


def _unknown(script: str, reply: Any) -> StoreError:
    return StoreError(f"{script} returned an unknown result {reply!r}")
