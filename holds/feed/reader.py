"""The organizer's lifecycle feed: its streams merged, read as the consumer reads.

Sources, all written in the same script as the change they record:
- each event's ``lifecycle`` stream (``{ev:<id>}`` slot): orders created and
  cancelled (commit.lua, cancel.lua), event status changes (event_put.lua), and
  whatever later scripts record with the prelude's ``lifecycle()``;
- the tenant's ``feed`` stream (``{t:<tenant>}`` slot): consent changes and erasures.

Entries hold no personal data: an order entry names the order, a tenant entry a
subject id. The reader joins them with the order record (and the tenant's
consent decisions) when it reads them, so an erased buyer is erased from every
retained entry too, and an entry shows the order as it is now.

Reading is bounded: the streams are read in chunks of ``STREAMS_PER_READ``, at
most ``ENTRIES_PER_STREAM`` entries each, and the next chunk is read only once
the consumer has taken the previous one (an async generator under gRPC's flow
control), so a consumer that falls behind holds at most one chunk in the server.
See docs/data.md for the cursor, the ordering and what is guaranteed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis.exceptions

from holds import keys
from holds.errors import FeedCursorExpired
from holds.feed.cursor import TENANT_STREAM, ZERO, Cursor, StreamId, format_id, parse_id
from holds.records import Order, order_decoder
from holds.redis_client import AnyRedis, wrap_errors

STREAMS_PER_READ = 32
ENTRIES_PER_STREAM = 16
POLL_S = 0.5
# How far the clocks of the Redis nodes that write entries may disagree (or step
# back): the watermark stays this far behind the newest entry seen.
CLOCK_SKEW_MS = 5_000


class ConsentDecision(msgspec.Struct, frozen=True):
    """A buyer's latest marketing decision for a tenant (consent.lua writes it)."""

    subject: str
    opted_in: bool
    source: str
    decided_at_ms: int
    recorded_ms: int = 0


consent_decoder = msgspec.json.Decoder(ConsentDecision)


@dataclass(frozen=True)
class FeedBuyer:
    name: str = ""
    email: str = ""
    marketing_consent: bool = False
    consent_source: str = ""
    consent_decided_ms: int = 0
    erased: bool = False
    buyer_id: str = ""


@dataclass(frozen=True)
class FeedEntry:
    entry_id: str  # "<event_id>/<stream id>", "tenant/<stream id>"
    cursor: str  # resume after this entry
    kind: str
    recorded_ms: int
    event_id: str = ""
    organizer_id: str = ""
    order_id: str = ""
    order: Order | None = None  # as it is now (None: an entry without an order, or the order is gone)
    buyer: FeedBuyer | None = None
    ticket_ids: list[str] = field(default_factory=list)
    reason: str = ""
    event_status: str = ""
    sequence: int = 0
    order_refs: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class FeedProgress:
    """How far one follower is (for its lag metric): the write time of the newest
    entry it was handed, and whether it has since read every stream to its end."""

    delivered_ms: int
    caught_up: bool = False

    def lag_s(self, now_ms: int) -> float:
        """Seconds behind the newest entry: 0 when caught up, else the age of the
        newest entry handed over (an upper bound: newer ones may not exist yet)."""
        return 0.0 if self.caught_up else max(now_ms - self.delivered_ms, 0) / 1000


@dataclass(frozen=True)
class Checkpoint:
    cursor: str


@dataclass(frozen=True)
class _Raw:
    stream: str  # event id, or a tenant stream's name (TENANT_STREAM, or ~<tenant> in a platform's feed)
    entry_id: StreamId
    fields: dict[str, str]


@dataclass(frozen=True)
class PlatformFeed:
    """A platform's feed: every organizer's streams merged, the organizers read anew each
    round (one signing up joins the feed). Organizers' own streams are named
    ``~<organizer id>`` in its cursors (ids never start with ``~``); events by id."""

    platform_id: str


# One organizer's feed (its id), or a platform's.
FeedScope = str | PlatformFeed


@dataclass(frozen=True)
class _Stream:
    name: str  # in a cursor
    key: str
    owner: str  # the organizer whose stream it is


def _tenant_stream(scope: FeedScope, tenant_id: str) -> str:
    return TENANT_STREAM if isinstance(scope, str) else f"~{tenant_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class FeedReader:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client

    async def streams(self, tenant_id: str) -> list[tuple[str, str]]:
        """(name in a cursor, stream key) of every stream of the tenant's feed."""
        return [(s.name, s.key) for s in await self._streams(tenant_id)]

    async def _organizers(self, scope: FeedScope) -> list[str]:
        if isinstance(scope, str):
            return [scope]
        async with wrap_errors("list the platform's organizers"):
            return [
                o.decode() for o in await self._r.zrange(keys.platform_organizers(scope.platform_id), 0, -1)
            ]

    async def _streams(self, scope: FeedScope) -> list[_Stream]:
        """Every stream of the scope's feed (read anew each round: new events and organizers join)."""
        organizers = await self._organizers(scope)
        async with wrap_errors("list feed streams"), self._r.pipeline(transaction=False) as pipe:
            for tenant_id in organizers:
                pipe.zrange(keys.event_index(tenant_id), 0, -1)
            indexes = await pipe.execute() if organizers else []
        out: list[_Stream] = []
        for tenant_id, event_ids in zip(organizers, indexes, strict=True):
            out.append(_Stream(_tenant_stream(scope, tenant_id), keys.tenant_feed(tenant_id), tenant_id))
            out += [
                _Stream(e.decode(), keys.event_key(e.decode(), "lifecycle"), tenant_id) for e in event_ids
            ]
        return out

    async def _infos(self, streams: Sequence[tuple[str, str]]) -> list[dict[Any, Any] | None]:
        out: list[dict[Any, Any] | None] = []
        for start in range(0, len(streams), 256):
            chunk = streams[start : start + 256]
            async with wrap_errors("read feed retention"), self._r.pipeline(transaction=False) as pipe:
                for _, key in chunk:
                    pipe.xinfo_stream(key)
                replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, redis.exceptions.ResponseError):  # no such stream yet
                    out.append(None)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    out.append(reply)
        return out

    async def check_range(self, scope: FeedScope, cursor: Cursor) -> None:
        """FeedCursorExpired (naming the oldest cursor still available) when retention
        trimmed an entry the cursor has not seen (holds/feed/retention.py records the
        newest entry it trimmed from each stream)."""
        oldest = Cursor()
        for tenant_id in await self._organizers(scope):
            async with wrap_errors("read feed retention"):
                trimmed = await self._r.hgetall(keys.tenant_feed_trimmed(tenant_id))
            for name, last in trimmed.items():
                stream = name.decode()
                oldest.advance(
                    _tenant_stream(scope, tenant_id) if stream == TENANT_STREAM else stream, parse_id(last)
                )
        if any(p > cursor.position(name) for name, p in oldest.positions.items()):
            raise FeedCursorExpired(oldest.encode())

    async def now_cursor(self, scope: FeedScope) -> Cursor:
        """A cursor past every entry written so far."""
        streams = await self._streams(scope)
        cursor = Cursor()
        for stream, info in zip(streams, await self._infos([(s.name, s.key) for s in streams]), strict=True):
            if info is not None:
                cursor.advance(stream.name, parse_id(info.get("last-generated-id", b"0-0")))
        return cursor

    async def follow(
        self,
        scope: FeedScope,
        cursor: Cursor,
        *,
        poll_s: float = POLL_S,
        progress: FeedProgress | None = None,
    ) -> AsyncIterator[FeedEntry | Checkpoint]:
        """Every entry after ``cursor``, then new ones as they are written, forever;
        ``progress`` is kept up to date with what was handed over.

        The watermark rises after a round that read every stream to its end: to
        the newest entry id seen *before* that round, less CLOCK_SKEW_MS. Any
        entry written after its stream was read in the round is written after
        that entry was, so (with clocks within the skew) it has a later id.
        """
        newest_seen = await self._newest(scope)
        last_token = cursor.encode()
        while True:
            seen_before_round = newest_seen
            streams = await self._streams(scope)
            owners = {s.name: s.owner for s in streams}
            exhausted = True
            for start in range(0, len(streams), STREAMS_PER_READ):
                chunk = [(s.name, s.key) for s in streams[start : start + STREAMS_PER_READ]]
                raws, full = await self._read(chunk, cursor)
                exhausted = exhausted and not full
                if not raws:
                    continue
                newest_seen = max(newest_seen, raws[-1].entry_id)  # merged by id
                for entry in await self._render(owners, raws, cursor):
                    last_token = entry.cursor
                    if progress is not None:
                        progress.delivered_ms, progress.caught_up = entry.recorded_ms, False
                    yield entry
            if not exhausted:
                continue
            if progress is not None:
                progress.caught_up = True
            if seen_before_round > ZERO:
                cursor.raise_watermark((max(seen_before_round[0] - CLOCK_SKEW_MS, 0), 0))
            token = cursor.encode()
            if token != last_token:
                last_token = token
                yield Checkpoint(token)
            await asyncio.sleep(poll_s)

    async def _newest(self, scope: FeedScope) -> StreamId:
        streams = await self._streams(scope)
        newest = ZERO
        for info in await self._infos([(s.name, s.key) for s in streams]):
            if info is not None:
                newest = max(newest, parse_id(info.get("last-generated-id", b"0-0")))
        return newest

    async def _read(self, streams: Sequence[tuple[str, str]], cursor: Cursor) -> tuple[list[_Raw], bool]:
        """The next entries of each stream after the cursor, merged by id; and whether
        some stream may have more."""
        async with wrap_errors("read feed"), self._r.pipeline(transaction=False) as pipe:
            for name, key in streams:
                position = cursor.position(name)
                pipe.xrange(
                    key, min="(" + format_id(position) if position > ZERO else "-", count=ENTRIES_PER_STREAM
                )
            replies = await pipe.execute()
        raws: list[_Raw] = []
        full = False
        for (name, _), entries in zip(streams, replies, strict=True):
            full = full or len(entries) >= ENTRIES_PER_STREAM
            for entry_id, fields in entries:
                raws.append(_Raw(name, parse_id(entry_id), {_text(k): _text(v) for k, v in fields.items()}))
        raws.sort(key=lambda r: (r.entry_id, r.stream))
        return raws, full

    async def _render(self, owners: dict[str, str], raws: list[_Raw], cursor: Cursor) -> list[FeedEntry]:
        """Join the entries with their orders and their organizers' consent decisions."""
        orders = await self._orders(
            sorted({(r.stream, r.fields["order"]) for r in raws if r.fields.get("order")})
        )
        subjects: dict[str, set[str]] = defaultdict(set)  # organizer -> subjects named
        for r in raws:
            if r.fields.get("subject"):
                subjects[owners[r.stream]].add(r.fields["subject"])
        emails = {tenant_id: await self._lookup(keys.tenant_subjects(tenant_id), named)
                  for tenant_id, named in subjects.items()}  # fmt: skip
        wanted: dict[str, set[str]] = defaultdict(set)  # organizer -> emails
        wanted_ids: dict[str, set[str]] = defaultdict(set)  # organizer -> buyer ids
        for (event_id, _), order in orders.items():
            if order.buyer.email:
                wanted[owners[event_id]].add(order.buyer.email.strip().lower())
            if order.buyer_id:
                wanted_ids[owners[event_id]].add(order.buyer_id)
        for tenant_id, by_subject in emails.items():
            wanted[tenant_id] |= {v for k, v in by_subject.items() if not is_buyer_id_subject(k)}
        decisions: dict[str, dict[str, ConsentDecision]] = {
            tenant_id: {e: consent_decoder.decode(d) for e, d in (await self._lookup(
                keys.tenant_consent(tenant_id), asked)).items()}
            for tenant_id, asked in wanted.items()
        }  # fmt: skip
        for tenant_id, ids in wanted_ids.items():
            found = await self._lookup(keys.tenant_consent_ids(tenant_id), ids)
            decisions.setdefault(tenant_id, {}).update(
                {id_key(i): consent_decoder.decode(d) for i, d in found.items()}
            )
        out = []
        for raw in raws:
            cursor.advance(raw.stream, raw.entry_id)
            owner = owners[raw.stream]
            out.append(
                _entry(raw, cursor.encode(), owner, orders, emails.get(owner, {}), decisions.get(owner, {}))
            )
        return out

    async def _orders(self, refs: list[tuple[str, str]]) -> dict[tuple[str, str], Order]:
        """The orders named ``(event id, order id)`` that still exist."""
        if not refs:
            return {}
        async with wrap_errors("read feed orders"), self._r.pipeline(transaction=False) as pipe:
            for event_id, order_id in refs:
                pipe.hget(keys.event_key(event_id, "orders"), order_id)
            found = await pipe.execute()
        return {
            ref: order_decoder.decode(raw) for ref, raw in zip(refs, found, strict=True) if raw is not None
        }

    async def _lookup(self, key: str, fields: set[str]) -> dict[str, str]:
        """The values of ``fields`` of the hash ``key`` that exist."""
        asked = sorted(fields)
        if not asked:
            return {}
        async with wrap_errors("read feed subjects"):
            found = await self._r.hmget(key, asked)
        return {f: v.decode() for f, v in zip(asked, found, strict=True) if v is not None}


def id_key(buyer_id: str) -> str:
    """A buyer id's key in a ``decisions`` dict, beside the e-mails' (NUL-prefixed: no
    address starts with a control character)."""
    return "\0" + buyer_id


def is_buyer_id_subject(subject: str) -> bool:
    """A ``consent.changed`` entry's subject naming a buyer id (privacy.py _subject)."""
    return subject.startswith("bid_")


def buyer_of(order: Order, decisions: dict[str, ConsentDecision]) -> FeedBuyer:
    """The order's buyer with the newest consent decision that applies to it: the order's
    own at checkout, the organizer's for its e-mail, or the organizer's for its buyer id
    (``decisions``: e-mail or :func:`id_key` -> decision)."""
    b = order.buyer
    if b.erased:
        return FeedBuyer(erased=True, buyer_id=order.buyer_id)
    consent, source, decided = b.marketing_consent, "checkout", order.created_ms
    found = [
        decisions.get(b.email.strip().lower()),
        decisions.get(id_key(order.buyer_id)) if order.buyer_id else None,
    ]
    for decision in sorted((d for d in found if d is not None), key=lambda d: d.decided_at_ms):
        if decision.decided_at_ms >= max(order.created_ms, decided):  # the newest decision wins
            consent, source, decided = decision.opted_in, decision.source, decision.decided_at_ms
    return FeedBuyer(b.name, b.email, consent, source, decided, False, order.buyer_id)


def _entry(
    raw: _Raw,
    cursor: str,
    organizer_id: str,
    orders: dict[tuple[str, str], Order],
    emails: dict[str, str],
    decisions: dict[str, ConsentDecision],
) -> FeedEntry:
    f = raw.fields
    kind, detail = f.get("kind", ""), f.get("detail", "")
    stream_id = format_id(raw.entry_id)
    if raw.stream == TENANT_STREAM or raw.stream.startswith("~"):
        email = emails.get(f.get("subject", ""), "")
        owner = "tenant" if raw.stream == TENANT_STREAM else f"tenant:{organizer_id}"
        base = FeedEntry(f"{owner}/{stream_id}", cursor, kind, raw.entry_id[0], detail="",
                         organizer_id=organizer_id)  # fmt: skip
        if kind == "consent.changed":
            d = consent_decoder.decode(detail)
            by_id = is_buyer_id_subject(f.get("subject", ""))
            buyer = FeedBuyer(email="" if by_id else email, marketing_consent=d.opted_in,
                              consent_source=d.source, consent_decided_ms=d.decided_at_ms, erased=not email,
                              buyer_id=email if by_id else "")  # fmt: skip
            return FeedEntry(**{**base.__dict__, "buyer": buyer})
        if kind == "buyer.erased":
            refs = [r for r in detail.split(",") if r]
            return FeedEntry(**{**base.__dict__, "buyer": FeedBuyer(erased=True), "order_refs": refs})
        return FeedEntry(**{**base.__dict__, "detail": detail})
    order_id = f.get("order", "")
    order = orders.get((raw.stream, order_id)) if order_id else None
    entry = FeedEntry(
        f"{raw.stream}/{stream_id}",
        cursor,
        kind,
        raw.entry_id[0],
        event_id=raw.stream,
        organizer_id=organizer_id,
        order_id=order_id,
        order=order,
        buyer=buyer_of(order, decisions) if order is not None else None,
        sequence=int(f.get("seq") or 0),
    )
    if kind in ("order.cancelled", "order.tickets_cancelled"):
        ids, _, reason = detail.partition("|")
        return FeedEntry(
            **{**entry.__dict__, "ticket_ids": [i for i in ids.split(",") if i], "reason": reason}
        )
    if kind == "order.refunded":  # "<refund id>|<ticket ids>|<reason>"
        _refund, _, rest = detail.partition("|")
        ids, _, reason = rest.partition("|")
        tickets = [i for i in ids.split(",") if i]
        return FeedEntry(**{**entry.__dict__, "ticket_ids": tickets, "reason": reason, "detail": detail})
    if kind == "event.status_changed":
        return FeedEntry(**{**entry.__dict__, "event_status": detail.rpartition("|")[2]})
    if kind == "order.created":
        return entry
    if kind in _TICKET_KINDS:  # after the sale: "<ticket>|..." (holds/lua/transfer.lua, resale_*.lua)
        ticket, _, rest = detail.partition("|")
        reason = rest if kind == "ticket.listing_withdrawn" else ""
        return FeedEntry(**{**entry.__dict__, "ticket_ids": [ticket], "reason": reason, "detail": detail})
    if kind == "order.exchanged":  # "<from ids>|<to ids>|<exchange id>|<difference>"
        given, taken = detail.split("|")[:2]
        swapped = [i for i in (given + "," + taken).split(",") if i]
        return FeedEntry(**{**entry.__dict__, "ticket_ids": swapped, "detail": detail})
    if kind.startswith("ticket."):  # checked_in, checked_out, no_show: "<ticket id>[|gate|device|at]"
        ticket_id = detail.partition("|")[0]
        return FeedEntry(**{**entry.__dict__, "ticket_ids": [ticket_id], "detail": detail})
    return FeedEntry(**{**entry.__dict__, "detail": detail})


_TICKET_KINDS = frozenset(
    {"ticket.transferred", "ticket.resold", "ticket.listed", "ticket.listing_withdrawn"}
)
