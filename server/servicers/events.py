"""seatwise.v1.EventService: events, seat status, availability (read and watched)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from functools import partial

import numpy as np
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import channels_pb2, events_pb2, events_pb2_grpc

from holds.availability import (
    FREE,
    HELD,
    SOLD,
    STATE_NAMES,
    Batch,
    Delta,
    Ended,
    Fresh,
    GaCount,
    Replay,
    Snapshot,
    distanced,
    watch,
)
from holds.errors import InvalidRequest, WatchEnded
from holds.events import EventSettings, EventStore
from holds.inventory import SeatState
from holds.live import LiveEvent, LiveEvents
from holds.platform.notifications import PlanLimitsOf, create_within_limits
from holds.remap import MAX_MAPPING_ID, MoveReport, SeatMapMoves
from holds.sales import Sales
from holds.seasons import SeasonStore, new_season_event_id
from holds.seatmaps import SeatMapStore
from seatmap.distancing import DistancingRule, InvalidRule, check_size
from seatmap.index import SeatIndex
from server.audit import note_target
from server.auth import BROWSE, ORGANIZER, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import page_bounds, page_token_after
from server.servicers import Context
from server.servicers.convert import PROTO_TO_STATUS, SEAT_STATUS, SEAT_STATUS_NAME, event_pb

_TARGETS: dict[int, SeatState] = {
    events_pb2.SEAT_STATUS_FREE: "free",
    events_pb2.SEAT_STATUS_BLOCKED: "blocked",
    events_pb2.SEAT_STATUS_NOT_FOR_SALE: "not_for_sale",
}
_DEFAULT_PREVIOUS = ("free", "blocked", "not_for_sale")


def distancing_text(rule: events_pb2.Distancing, index: SeatIndex) -> str:
    """The canonical text of an API distancing rule, checked (also its size on the event's
    map): INVALID_ARGUMENT naming the field."""
    try:
        parsed = DistancingRule.of(rule.seats_in_row, rule.metres, rule.layout_units_per_metre)
        check_size(index, parsed)
    except InvalidRule as exc:
        raise InvalidRequest(exc.field, exc.reason) from exc
    return parsed.text


def _prices(prices: list[events_pb2.CategoryPrice]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, p in enumerate(prices):
        if p.category in out:
            raise InvalidRequest(f"prices[{i}].category", f"category {p.category!r} priced twice")
        out[p.category] = p.amount_minor
    return out


def _millis(request: Message, field: str, default: int) -> int:
    """A Timestamp or Duration field in milliseconds, or ``default`` when unset."""
    value = _millis_if_set(request, field)
    return default if value is None else value


def _millis_if_set(request: Message, field: str) -> int | None:
    if not request.HasField(field):
        return None
    try:
        value: Timestamp | Duration = getattr(request, field)
        if isinstance(value, Timestamp):
            value.ToJsonString()  # validates the range: years 1-9999, nanos in range
        elif value.seconds < 0 or value.nanos < 0:  # every duration here is a length of time
            raise ValueError("must not be negative (seconds and nanos both 0 or more)")
        elif value.seconds > 10**15 or value.nanos >= 10**9:
            raise ValueError("duration out of range")
        return int(value.ToMilliseconds())
    except ValueError as exc:
        raise InvalidRequest(field, str(exc)) from exc


def _rfc3339(request: Message, field: str) -> str:
    if not request.HasField(field):
        return ""
    try:
        return str(getattr(request, field).ToJsonString())
    except ValueError as exc:
        raise InvalidRequest(field, str(exc)) from exc


def _status(value: int, field: str) -> str:
    status = PROTO_TO_STATUS.get(value)
    if status is None:
        raise InvalidRequest(field, "unknown event status")
    return status


def _ga_pb(area: str, c: GaCount) -> events_pb2.GeneralAdmissionAvailability:
    return events_pb2.GeneralAdmissionAvailability(
        area_id=area, capacity=c.capacity, held=c.held, sold=c.sold, available=c.available
    )


# the SeatStatus value of each mirror state code, for the one-byte-per-seat vector
_STATUS_BYTES = np.array([SEAT_STATUS[name] for name in STATE_NAMES], dtype=np.uint8)


def _counts_pb(key: str, row: list[int], far: int = 0) -> events_pb2.StatusCounts:
    return events_pb2.StatusCounts(
        key=key, free=row[0], held=row[1], sold=row[2], blocked=row[3], not_for_sale=row[4], distanced=far
    )


def seat_encoding(request_encoding: int, include_seats: bool, default: int) -> int:
    if request_encoding not in events_pb2.SeatEncoding.values():
        raise InvalidRequest("seat_encoding", "unknown seat encoding")
    if request_encoding != events_pb2.SEAT_ENCODING_UNSPECIFIED:
        return request_encoding
    return events_pb2.SEAT_ENCODING_LIST if include_seats else default


def availability_pb(
    ctx: LiveEvent, snap: Snapshot, encoding: int, rows: Mapping[str, list[list[int]]]
) -> events_pb2.GetAvailabilityResponse:
    """Counts by category and section and the seats as asked; ``rows`` are the counts
    per group and state kept in step with ``snap`` (``GroupCounts.rows``)."""
    index = ctx.loaded.index
    states = snap.states
    by_cat, by_sec = rows["category"], rows["section"]
    # free seats a new buyer may not take (distancing): the mirror keeps them for its own state
    mirror = ctx.mirror
    live = mirror is not None and snap is mirror.snapshot and mirror.near is ctx.near()
    far = mirror.distanced() if live and mirror is not None else distanced(states, ctx.near())
    far_cat = np.bincount(index.category_code[far], minlength=len(index.category_keys)).tolist()
    far_sec = np.bincount(index.section_code[far], minlength=len(index.section_ids)).tolist()
    response = events_pb2.GetAvailabilityResponse(
        sequence=snap.seq,
        general_admission=[_ga_pb(a, c) for a, c in sorted(snap.ga.items())],
        by_category=[_counts_pb(k, by_cat[i], far_cat[i]) for i, k in enumerate(index.category_keys)],
        by_section=[_counts_pb(k, by_sec[i], far_sec[i]) for i, k in enumerate(index.section_ids)],
    )
    _channels_pb(response, ctx, snap, encoding)
    status = _STATUS_BYTES[states]
    status[far] = events_pb2.SEAT_STATUS_DISTANCED
    if encoding == events_pb2.SEAT_ENCODING_VECTOR:
        response.seat_status_vector = status.tobytes()
    elif encoding == events_pb2.SEAT_ENCODING_LIST:
        placed = index.placed
        response.seats.extend(
            events_pb2.SeatState(seat_id=placed[o].seat.id, status=events_pb2.SeatStatus.ValueType(status[o]))
            for o in np.flatnonzero(status != events_pb2.SEAT_STATUS_FREE).tolist()
        )
    return response


def _channels_pb(
    response: events_pb2.GetAvailabilityResponse, ctx: LiveEvent, snap: Snapshot, encoding: int
) -> None:
    """Counts per channel and, with seats, each allocated seat's channel (holds/channels.py)."""
    alloc = snap.allocations
    for channel, row in alloc.counts(snap.states).items():
        reserved = {area: by[channel] for area, by in sorted(alloc.reserved.items()) if channel in by}
        response.by_channel.append(
            channels_pb2.ChannelAvailability(
                channel_id=channel, free=row[0], held=row[1], sold=row[2], general_admission_reserved=reserved
            )
        )
    if encoding != events_pb2.SEAT_ENCODING_NONE and len(alloc.names) > 1:
        placed = ctx.loaded.index.placed
        response.seat_channels.extend(
            channels_pb2.SeatChannel(seat_id=placed[o].seat.id, channel_id=alloc.channel_of(o))
            for o in np.flatnonzero(alloc.codes).tolist()
        )


def cached_availability(
    ctx: LiveEvent, snap: Snapshot, encoding: int, rows: Mapping[str, list[list[int]]]
) -> events_pb2.GetAvailabilityResponse:
    """The event's last reply per encoding, unchanged until its sequence moves: a
    browsing crowd between two sales costs one build, not one per request."""
    last: dict[int, events_pb2.GetAvailabilityResponse] = ctx.replies.setdefault("availability", {})
    if ctx.replies.get("availability_rule", "") != ctx.distancing:  # the rule changed: so did the reply
        last.clear()
        ctx.replies["availability_rule"] = ctx.distancing
    cached = last.get(encoding)
    if cached is None or cached.sequence != snap.seq:
        cached = last[encoding] = availability_pb(ctx, snap, encoding, rows)
    return cached


class BatchMessages:
    """The message of each live batch of changes of one event, built once for all
    its watchers (the mirror hands every watcher the same list)."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._built: OrderedDict[int, tuple[Batch, events_pb2.AvailabilityUpdate]] = OrderedDict()

    @staticmethod
    def of(ctx: LiveEvent) -> BatchMessages:
        batches: BatchMessages = ctx.replies.setdefault("batches", BatchMessages())
        return batches

    def get(self, ctx: LiveEvent, ga: dict[str, GaCount], batch: Batch) -> events_pb2.AvailabilityUpdate:
        built = self._built.get(id(batch))
        if built is not None and built[0] is batch:  # the entry keeps the batch alive: its id is not reused
            return built[1]
        message = _deltas_pb(ctx, ga, batch)
        self._built[id(batch)] = (batch, message)
        if len(self._built) > self._size:
            self._built.popitem(last=False)
        return message


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(
        self,
        events: EventStore,
        seatmaps: SeatMapStore,
        live: LiveEvents,
        sales: Sales,
        seasons: SeasonStore,
        limits: PlanLimitsOf | None = None,
        moves: SeatMapMoves | None = None,
    ) -> None:
        self._limits = limits
        self._seasons = seasons
        self._moves = moves
        self._events = events
        self._seatmaps = seatmaps
        self._live = live
        self._sales = sales

    async def CreateEvent(
        self, request: events_pb2.CreateEventRequest, context: Context
    ) -> events_pb2.CreateEventResponse:
        tenant_id = current_principal().require_tenant()
        season, event_id, currency = None, "", request.currency
        if request.season_id:  # into a season: its seat-map version and currency, an id in its slot
            season = await self._seasons.get(tenant_id, request.season_id)
            SeasonStore.check_event(season, request.seat_map_id, request.seat_map_version, request.currency)
            loaded = await self._seatmaps.load(tenant_id, season.seat_map_id, season.seat_map_version)
            event_id, currency = new_season_event_id(season.season_id), season.currency
        elif not request.seat_map_id:
            raise InvalidRequest("seat_map_id", "required")
        else:
            loaded = await self._seatmaps.load(tenant_id, request.seat_map_id, request.seat_map_version)
        rule = distancing_text(request.distancing, loaded.index) if request.HasField("distancing") else ""
        settings = EventSettings(
            name=request.name,
            starts_at=_rfc3339(request, "starts_at"),
            timezone=request.timezone or "UTC",
            status=_status(request.status, "status") if request.status else "draft",  # type: ignore[arg-type]
            hold_ttl_ms=_millis(request, "hold_ttl", EventSettings.hold_ttl_ms),
            max_lifetime_ms=_millis(request, "max_hold_lifetime", EventSettings.max_lifetime_ms),
            max_seats_per_hold=request.max_seats_per_hold or EventSettings.max_seats_per_hold,
            max_seats_per_buyer=request.max_seats_per_buyer,
            onsale_from_ms=_millis(request, "on_sale_from", 0),
            onsale_until_ms=_millis(request, "on_sale_until", 0),
            prices=_prices(list(request.prices)),
            rate_limit_per_key=request.rate_limit_per_key,
            rate_limit_per_buyer=request.rate_limit_per_buyer,
            distancing=rule,
        )
        if self._limits is None:
            event = await self._events.create(tenant_id, loaded, currency, settings, event_id)
        else:
            event = await create_within_limits(
                self._events, self._limits, tenant_id, loaded, currency, settings, event_id
            )
        if season is not None:
            await self._seasons.add_event(season, event.ref.event_id, event.created_at_ms)
        return events_pb2.CreateEventResponse(event=event_pb(event))

    async def GetEvent(
        self, request: events_pb2.GetEventRequest, context: Context
    ) -> events_pb2.GetEventResponse:
        ctx = await self._live.get(current_principal().require_tenant(), request.event_id)
        return events_pb2.GetEventResponse(event=event_pb(await self._events.get(ctx.ref)))

    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, context: Context
    ) -> events_pb2.ListEventsResponse:
        tenant_id = current_principal().require_tenant()
        offset, limit = page_bounds(request.page.page_size, request.page.page_token)
        events, more = await self._events.list_events(tenant_id, offset, limit)
        return events_pb2.ListEventsResponse(
            events=[event_pb(e) for e in events], next_page_token=page_token_after(offset, limit, more)
        )

    async def UpdateEvent(
        self, request: events_pb2.UpdateEventRequest, context: Context
    ) -> events_pb2.UpdateEventResponse:
        ctx = await self._live.get(current_principal().require_tenant(), request.event_id)
        changes: dict[str, object] = {}
        if request.name:
            changes["name"] = request.name
        for field, setting in (("on_sale_from", "onsale_from_ms"), ("on_sale_until", "onsale_until_ms"),
                               ("hold_ttl", "hold_ttl_ms")):  # fmt: skip
            value = _millis_if_set(request, field)
            if value is not None:
                changes[setting] = value
        if request.max_seats_per_hold:
            changes["max_seats_per_hold"] = request.max_seats_per_hold
        if request.max_seats_per_buyer:
            changes["max_seats_per_buyer"] = request.max_seats_per_buyer
        for limit in ("rate_limit_per_key", "rate_limit_per_buyer"):
            value = getattr(request, limit)
            if value:
                changes[limit] = "" if value == "none" else value
        if request.HasField("distancing"):
            changes["distancing"] = distancing_text(request.distancing, ctx.loaded.index)
        event = await self._events.update(
            ctx.ref,
            set(ctx.loaded.index.category_keys),
            status=_status(request.status, "status") if request.status else None,  # type: ignore[arg-type]
            prices=_prices(list(request.prices)) if request.replace_prices else None,
            changes=changes,
        )
        await ctx.learn(event.settings.distancing)  # this process knows at once; others at their next hold
        if event.settings.status == "closed" and self._limits is not None:
            await self._limits.usage.release_event(ctx.ref.tenant_id, ctx.ref.event_id)
        return events_pb2.UpdateEventResponse(event=event_pb(event))

    async def SetSeatStatus(
        self, request: events_pb2.SetSeatStatusRequest, context: Context
    ) -> events_pb2.SetSeatStatusResponse:
        tenant_id = current_principal().require_tenant()
        ctx = await self._live.get(tenant_id, request.event_id)
        target = _TARGETS.get(request.status)
        if target is None:
            raise InvalidRequest(
                "status", "must be SEAT_STATUS_FREE, SEAT_STATUS_BLOCKED or SEAT_STATUS_NOT_FOR_SALE"
            )
        allowed = []
        for i, s in enumerate(request.allowed_previous):
            name = SEAT_STATUS_NAME.get(s)
            if name is None:
                raise InvalidRequest(f"allowed_previous[{i}]", "unknown seat status")
            allowed.append(name)
        ordinals = _select(self._sales, ctx, request.selection)
        if not ordinals:
            raise InvalidRequest("selection", "selects no seats")
        seq, changed = await self._sales.set_status(
            tenant_id,
            request.event_id,
            ordinals,
            target,
            allowed or _DEFAULT_PREVIOUS,
        )
        return events_pb2.SetSeatStatusResponse(
            seats_selected=len(set(ordinals)), seats_changed=changed, sequence=seq
        )

    async def GetAvailability(
        self, request: events_pb2.GetAvailabilityRequest, context: Context
    ) -> events_pb2.GetAvailabilityResponse:
        ctx = await self._live.get(current_principal().require_tenant(), request.event_id)
        encoding = seat_encoding(request.seat_encoding, request.include_seats, events_pb2.SEAT_ENCODING_NONE)
        mirror = await self._live.mirror(ctx)
        rows = {name: counts.rows for name, counts in mirror.counts.items()}
        return cached_availability(ctx, mirror.snapshot, encoding, rows)

    async def WatchAvailability(
        self, request: events_pb2.WatchAvailabilityRequest, context: Context
    ) -> AsyncIterator[events_pb2.AvailabilityUpdate]:
        ctx = await self._live.get(current_principal().require_tenant(), request.event_id)
        if request.after_sequence < 0:
            raise InvalidRequest("after_sequence", "must not be negative")
        encoding = seat_encoding(request.seat_encoding, False, events_pb2.SEAT_ENCODING_VECTOR)
        mirror = await self._live.mirror(ctx)
        batches = BatchMessages.of(ctx)
        replay = partial(self._live.feed.replay, ctx.event_id)
        async for item in watch(mirror, request.after_sequence, replay):
            match item:
                case Fresh(snapshot=snap, rows=rows, reason=reason):
                    if reason:
                        yield events_pb2.AvailabilityUpdate(sequence=snap.seq, resync=reason)
                    yield events_pb2.AvailabilityUpdate(
                        sequence=snap.seq, snapshot=cached_availability(ctx, snap, encoding, rows)
                    )
                case Replay(deltas=deltas, ga=ga):
                    yield _deltas_pb(ctx, ga, deltas)
                case Ended(reason=reason):
                    raise WatchEnded(reason)
                case _:
                    yield batches.get(ctx, mirror.snapshot.ga, item)  # shared: never modified

    async def MoveEventToSeatMapVersion(
        self, request: events_pb2.MoveEventToSeatMapVersionRequest, context: Context
    ) -> events_pb2.MoveEventToSeatMapVersionResponse:
        tenant_id = current_principal().require_tenant()
        if self._moves is None:
            raise InvalidRequest("event_id", "moving events is not served here")
        if not request.event_id:
            raise InvalidRequest("event_id", "required")
        for old, new in request.seat_mapping.items():
            if not old or not new or len(old) > MAX_MAPPING_ID or len(new) > MAX_MAPPING_ID:
                raise InvalidRequest(
                    f"seat_mapping[{old[:MAX_MAPPING_ID]}]", f"seat ids of 1-{MAX_MAPPING_ID} characters"
                )
        report = await self._moves.move(
            tenant_id,
            request.event_id,
            request.seat_map_version,
            dict(request.seat_mapping),
            dry_run=request.dry_run,
        )
        note_target(seat_map_id=report.seat_map_id, to_version=str(report.to_version))
        return move_pb(report)


def move_pb(report: MoveReport) -> events_pb2.MoveEventToSeatMapVersionResponse:
    lost = [events_pb2.LostPlace(seat_id=s, state=state) for s, state in report.lost_seats.items()]
    lost += [events_pb2.LostPlace(ga_area_id=a, reason=why) for a, why in report.lost_areas.items()]
    return events_pb2.MoveEventToSeatMapVersionResponse(
        event_id=report.event_id,
        seat_map_id=report.seat_map_id,
        from_version=report.from_version,
        to_version=report.to_version,
        dry_run=report.dry_run,
        sequence=report.sequence,
        seats_moved=report.seats_moved,
        holds_moved=report.holds,
        orders_changed=report.orders,
        tickets_moved=report.tickets,
        mapped_explicitly=report.mapped_explicitly,
        mapped_by_id=report.mapped_by_id,
        seats_without_target=report.seats_without_target,
        lost=lost,
    )


def _deltas_pb(ctx: LiveEvent, ga: dict[str, GaCount], batch: list[Delta]) -> events_pb2.AvailabilityUpdate:
    """One change as ``delta``, several consecutive ones as ``deltas``."""
    if len(batch) == 1:
        out = events_pb2.AvailabilityUpdate(sequence=batch[0].seq, delta=_delta_pb(ctx, ga, batch[0]))
    else:
        out = events_pb2.AvailabilityUpdate(
            sequence=batch[-1].seq,
            deltas=events_pb2.AvailabilityDeltas(
                first_sequence=batch[0].seq, deltas=[_delta_pb(ctx, ga, d) for d in batch]
            ),
        )
    _distancing_pb(ctx, batch, out)
    return out


def _distancing_pb(ctx: LiveEvent, batch: list[Delta], out: events_pb2.AvailabilityUpdate) -> None:
    """The free seats around the batch's seats that are distanced now, and those that are
    not: every change re-states its seats' neighbourhoods, from the mirror as it is."""
    near = ctx.near()
    mirror = ctx.mirror
    moved = [o for d in batch for o in d.seats if o < len(ctx.loaded.index.placed)]
    if near is None or mirror is None or not moved:
        return
    states = mirror.snapshot.states
    around = np.unique(near.around(np.asarray(moved, dtype=np.intp)))
    around = around[states[around] == FREE]
    if not len(around):
        return
    if mirror.near is near and mirror.near_count is not None:
        touching = mirror.near_count[around] > 0
    else:  # the rule is changing under this process: count from the states
        occupied = (states == HELD) | (states == SOLD)
        touching = np.array([occupied[near.of(o)].any() for o in around.tolist()], dtype=np.bool_)
    placed = ctx.loaded.index.placed
    out.distanced_seat_ids.extend(placed[o].seat.id for o in around[touching].tolist())
    out.undistanced_seat_ids.extend(placed[o].seat.id for o in around[~touching].tolist())


def _delta_pb(ctx: LiveEvent, ga: dict[str, GaCount], delta: Delta) -> events_pb2.AvailabilityDelta:
    out = events_pb2.AvailabilityDelta(
        status=SEAT_STATUS.get(delta.state, events_pb2.SEAT_STATUS_UNSPECIFIED),
        seat_ids=[
            ctx.loaded.index.placed[o].seat.id for o in delta.seats if o < len(ctx.loaded.index.placed)
        ],
    )
    if delta.kind == "channel":
        placed = ctx.loaded.index.placed
        out.channel_change.CopyFrom(
            channels_pb2.ChannelChange(
                channel_id=delta.channel, op=delta.op, ga_area_id=delta.channel_area, reserved=delta.reserved,
                seat_ids=[placed[o].seat.id for o in delta.channel_seats if o < len(placed)],
            )
        )  # fmt: skip
    if delta.ga_area:
        out.ga_area_id = delta.ga_area
        counts = ga.get(delta.ga_area)
        if counts is not None:
            if delta.ga_held is not None and delta.ga_sold is not None:  # as of this very change
                counts = GaCount(counts.capacity, delta.ga_held, delta.ga_sold)
            out.general_admission.CopyFrom(_ga_pb(delta.ga_area, counts))
    return out


def _select(sales: Sales, ctx: LiveEvent, selection: events_pb2.SeatSelection) -> list[int]:
    index = ctx.loaded.index
    ordinals = sales.ordinals(ctx, list(dict.fromkeys(selection.seat_ids)), "selection.seat_ids")
    for section_id in selection.section_ids:
        ordinals += index.seats_by_section(section_id)
    for row in selection.rows:
        ordinals += index.seats_by_row(row.section_id, row.row_id)
    if selection.region:
        ordinals += index.seats_in_region([(p.x, p.y) for p in selection.region])
    return ordinals


SERVICE = ServiceDeclaration(
    descriptor=events_pb2.DESCRIPTOR.services_by_name["EventService"],
    add_to_server=events_pb2_grpc.add_EventServiceServicer_to_server,
    factory=lambda stores: EventServicer(
        stores.events,
        stores.seatmaps,
        stores.live,
        stores.sales,
        stores.seasons,
        stores.plan_limits,
        stores.moves,
    ),
    methods={
        "CreateEvent": MethodRule(ORGANIZER),
        "GetEvent": MethodRule(BROWSE),
        "ListEvents": MethodRule(BROWSE),
        "UpdateEvent": MethodRule(ORGANIZER),
        "SetSeatStatus": MethodRule(ORGANIZER),
        "GetAvailability": MethodRule(BROWSE),
        "WatchAvailability": MethodRule(BROWSE),
        # seats of sold tickets change place: audited (dry runs too)
        "MoveEventToSeatMapVersion": MethodRule(ORGANIZER, audited=True),
    },
)
