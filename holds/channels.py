"""Channels and allocations: seats and GA places set aside for named channels.

An organizer defines channels per event (presale, a partner reseller, sponsors,
the box office) and allocates seats and GA places to them. A seat allocated to
an open channel can be held only by a request with the channel's access (a
storefront names the channel and its access code; a box-office sale has every
box-office channel); an area's places reserved for a channel are counted apart
from its general pool. Closing a channel returns its unsold seats and places to
the general pool at once, in one script.

Storage (``holds/keys.py`` CHANNEL_KEY_NAMES, the event's ``{ev:}`` tag) and the
checks live in ``holds/lua/_channels.lua``, prepended to ``hold.lua``,
``box_office.lua`` and ``season_hold.lua`` (which checks each event of a season
hold); each change is one script (``channel_put``, ``channel_allocate``,
``channel_close``) that appends to the event's change stream, so watchers see
seats move between a channel and the general pool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from holds import keys
from holds.errors import (
    AlreadyExists,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SeatsInWrongState,
    StoreError,
)
from holds.records import json_encoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from seatmap.index import SeatIndex, UnknownRow, UnknownSection

if TYPE_CHECKING:  # holds.live imports holds.inventory, which imports this module
    from holds.live import LiveEvent, LiveEvents

ChannelKind = Literal["storefront", "box_office"]
CHANNEL_KINDS: tuple[ChannelKind, ...] = ("storefront", "box_office")
MAX_CHANNELS = 64  # per event
MAX_NAME = 100
MAX_ALLOCATION = 20_000  # seats per allocation call (one script blocks Redis while it runs)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ChannelDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One channel of an event, as stored (JSON in the ``channels`` hash)."""

    id: str
    name: str
    kind: ChannelKind = "storefront"
    access_code: str = ""  # a storefront channel's; a box-office channel has none
    status: Literal["open", "closed"] = "open"
    created_ms: int = 0
    closed_ms: int = 0


channel_decoder = msgspec.json.Decoder(ChannelDef)


@dataclass(frozen=True)
class ChannelAccess:
    """What a hold request names to take a channel's seats: the channel and its code."""

    channel_id: str = ""
    access_code: str = ""

    def __bool__(self) -> bool:
        return bool(self.channel_id)

    def part(self) -> dict[str, str]:
        """The access in a hold request's fingerprint (none: the fingerprint of before channels)."""
        return {"channel": self.channel_id} if self.channel_id else {}

    def args(self) -> list[str]:
        """The hold script's last two arguments (``hold.lua`` CH_ARG)."""
        return [self.channel_id, self.access_code]

    def check(self) -> ChannelAccess:
        if not self.channel_id:
            if self.access_code:
                raise InvalidRequest("channel_access.channel_id", "required with an access code")
            return self
        if not _ID.match(self.channel_id):
            raise InvalidRequest("channel_access.channel_id", "not a channel id")
        if len(self.access_code) > 64:
            raise InvalidRequest("channel_access.access_code", "at most 64 characters")
        return self


NO_ACCESS = ChannelAccess()


@dataclass(frozen=True)
class Allocated:
    seats: int  # seats newly allocated (already the channel's are counted once)
    places: int  # GA places reserved
    seq: int


@dataclass(frozen=True)
class Closed:
    channel: ChannelDef
    seats: int  # unsold seats returned to the general pool
    places: int  # GA places returned
    seq: int
    already: bool  # it was closed before: nothing changed


def check_channel(c: ChannelDef) -> ChannelDef:
    """A definition is whole and sane; InvalidRequest names the field at fault."""
    if not _ID.match(c.id):
        raise InvalidRequest(
            "channel.channel_id", "1-32 characters: letters, digits, '_', '.', '-' (first a letter or digit)"
        )
    if not 1 <= len(c.name) <= MAX_NAME:
        raise InvalidRequest("channel.name", f"1-{MAX_NAME} characters")
    if c.kind == "box_office":
        if c.access_code:
            raise InvalidRequest("channel.access_code", "a box-office channel has no access code")
    elif not _CODE.match(c.access_code):
        raise InvalidRequest(
            "channel.access_code", "a storefront channel needs one: 1-64 letters, digits, '_', '.', '-'"
        )
    return c


def _group_seats(
    index: SeatIndex, sections: Sequence[str], rows: Sequence[str], named: set[int]
) -> list[int]:
    """The ordinals of whole sections and rows ("section/row") not in ``named``, each once."""
    out: list[int] = []
    for section_id in sections:
        try:
            seats = index.seats_by_section(section_id)
        except UnknownSection:
            raise InvalidRequest(f"section_ids[{section_id}]", "no such section in the seat map") from None
        out += [o for o in seats if o not in named]
        named.update(seats)
    for row in rows:
        section_id, sep, row_id = row.partition("/")
        if not sep:
            raise InvalidRequest(f"rows[{row}]", 'must be "section_id/row_id"')
        try:
            seats = index.seats_by_row(section_id, row_id)
        except (UnknownSection, UnknownRow):
            raise InvalidRequest(f"rows[{row}]", "no such row in the seat map") from None
        out += [o for o in seats if o not in named]
        named.update(seats)
    return out


def _allocation(
    ctx: LiveEvent,
    seat_ids: Sequence[str],
    ga: Mapping[str, int],
    sections: Sequence[str] = (),
    rows: Sequence[str] = (),
) -> list[int]:
    """The ordinals of an allocation's seats (named, and of whole sections and rows
    "section/row"); InvalidRequest names the seat, section, row or area at fault."""
    index = ctx.loaded.index
    ordinals: list[int] = []
    for seat_id in seat_ids:
        ordinal = index.ordinal_of.get(seat_id)
        if ordinal is None:
            raise InvalidRequest(f"seat_ids[{seat_id}]", "no such seat in the event's seat map")
        ordinals.append(ordinal)
    if len(set(ordinals)) != len(ordinals):
        raise InvalidRequest("seat_ids", "a seat is listed twice")
    ordinals += _group_seats(index, sections, rows, set(ordinals))
    if len(ordinals) > MAX_ALLOCATION:
        raise InvalidRequest("seat_ids", f"at most {MAX_ALLOCATION} seats per call")
    for area, qty in ga.items():
        if area not in index.ga_areas:
            raise InvalidRequest(f"general_admission[{area}]", "no such general admission area")
        if qty < 1:
            raise InvalidRequest(f"general_admission[{area}]", "at least 1 place")
    if not ordinals and not ga:
        raise InvalidRequest("seat_ids", "name at least one seat or general admission place")
    return ordinals


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Channels:
    """The channel scripts of one Redis (or cluster), by tenant and event."""

    def __init__(self, client: AnyRedis, scripts: ScriptRegistry, live: LiveEvents) -> None:
        self._client = client
        self._scripts = scripts
        self._live = live

    async def define(self, tenant_id: str, event_id: str, channel: ChannelDef) -> ChannelDef:
        ctx = await self._live.get(tenant_id, event_id)
        check_channel(channel)
        if len(await self.list(tenant_id, ctx.event_id)) >= MAX_CHANNELS:
            raise PreconditionFailed(f"at most {MAX_CHANNELS} channels per event", subject=ctx.event_id)
        channel = msgspec.structs.replace(channel, status="open", created_ms=0, closed_ms=0)
        reply = await self._scripts.channel_put(
            keys.channel_script_keys(ctx.event_id), [channel.id, json_encoder.encode(channel)]
        )
        match reply:
            case [Reply.OK, raw]:
                return channel_decoder.decode(raw)
            case [Reply.EVENT_NOT_FOUND]:
                raise NotFound("event", ctx.event_id)
            case [Reply.CHANNEL_EXISTS, _]:
                raise AlreadyExists("channel", channel.id)
        raise StoreError(f"channel_put returned an unknown result {reply!r}")

    async def any_defined(self, event_id: str) -> bool:
        """Whether the event has (or had) a channel: its allocations are by ordinal."""
        async with wrap_errors("read channels"):
            return bool(await self._client.exists(keys.channel_keys(event_id)[0]))

    async def list(self, tenant_id: str, event_id: str) -> list[ChannelDef]:
        ctx = await self._live.get(tenant_id, event_id)
        async with wrap_errors("list channels"):
            raw = await self._client.hvals(keys.channel_keys(ctx.event_id)[0])
        return sorted((channel_decoder.decode(r) for r in raw), key=lambda c: c.id)

    async def allocate(
        self,
        tenant_id: str,
        event_id: str,
        channel_id: str,
        seat_ids: Sequence[str],
        ga: Mapping[str, int],
        *,
        sections: Sequence[str] = (),
        rows: Sequence[str] = (),
    ) -> Allocated:
        """Allocate seats (by id, and whole ``sections`` and ``rows`` "section/row") and GA
        places to an open channel, all or nothing."""
        ctx = await self._live.get(tenant_id, event_id)
        if not channel_id:
            raise InvalidRequest("channel_id", "required")
        index = ctx.loaded.index
        ordinals = _allocation(ctx, seat_ids, ga, sections, rows)
        args: list[str | int] = [channel_id, len(ordinals), *ordinals, len(ga)]
        for area, qty in sorted(ga.items()):
            args += [area, qty]
        reply = await self._scripts.channel_allocate(keys.channel_script_keys(ctx.event_id), args)
        match reply:
            case [Reply.OK, seats, places, seq]:
                return Allocated(int(seats), int(places), int(seq))
            case [Reply.ALLOCATION_REFUSED, b"seat" | "seat", refused]:
                placed = index.placed
                states = {
                    placed[int(refused[i])].seat.id: _text(refused[i + 1]) for i in range(0, len(refused), 2)
                }
                raise SeatsInWrongState(states)
            case [Reply.ALLOCATION_REFUSED, _, area, room]:
                raise PreconditionFailed(
                    f"general admission area {_text(area)!r} has only {int(room)} place(s) in its general"
                    " pool to allocate",
                    subject=_text(area),
                )
        raise self._common(reply, ctx, channel_id) or StoreError(
            f"channel_allocate returned an unknown result {reply!r}"
        )

    async def close(self, tenant_id: str, event_id: str, channel_id: str) -> Closed:
        """Close a channel: its unsold seats and places return to the general pool at once."""
        ctx = await self._live.get(tenant_id, event_id)
        if not channel_id:
            raise InvalidRequest("channel_id", "required")
        reply = await self._scripts.channel_close(keys.channel_script_keys(ctx.event_id), [channel_id])
        match reply:
            case [Reply.OK, seats, places, seq, already]:
                async with wrap_errors("read channel"):
                    raw = await self._client.hget(keys.channel_keys(ctx.event_id)[0], channel_id)
                if raw is None:  # pragma: no cover - channels are never deleted
                    raise NotFound("channel", channel_id)
                return Closed(channel_decoder.decode(raw), int(seats), int(places), int(seq), bool(already))
        raise self._common(reply, ctx, channel_id) or StoreError(
            f"channel_close returned an unknown result {reply!r}"
        )

    @staticmethod
    def _common(reply: Any, ctx: LiveEvent, channel_id: str) -> StoreError | None:
        match reply:
            case [Reply.EVENT_NOT_FOUND]:
                return NotFound("event", ctx.event_id)
            case [Reply.CHANNEL_NOT_FOUND, _]:
                return NotFound("channel", channel_id)
            case [Reply.CHANNEL_CLOSED, _]:
                return PreconditionFailed(f"channel {channel_id!r} is closed", subject=channel_id)
            case [Reply.GA_UNKNOWN, area, _]:
                return NotFound("general admission area", _text(area))
        return None


def access_error(reply: Any) -> StoreError | None:
    """The error of a hold's channel refusals other than seats (``_channels.lua``), else None."""
    match reply:
        case [Reply.CHANNEL_DENIED, channel_id]:
            return InvalidRequest(
                "channel_access", f"unknown channel {_text(channel_id)!r} or wrong access code"
            )
        case [Reply.CHANNEL_CLOSED, channel_id]:
            return PreconditionFailed(f"channel {_text(channel_id)!r} is closed", subject=_text(channel_id))
    return None
