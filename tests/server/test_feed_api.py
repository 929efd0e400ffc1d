"""FeedService end to end: the lifecycle feed, consent and erasure, through a real
server and Redis (single node and cluster; the fault test on its own redis-server)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from seatwise.v1 import access_pb2, events_pb2, feed_pb2, feed_pb2_grpc, sales_pb2, tenancy_pb2

from holds import keys
from holds.feed.retention import trim_tenant
from holds.platform.records import audit_decoder
from holds.redis_client import AnyRedis
from server.app import create_server
from server.config import Config
from server.context import Stores
from server.reaper import reap_once
from server.redis_process import EmbeddedRedis
from tests.api import Api, field_violations, status_of
from tests.server.events import make_event
from tests.server.test_platforms_api import _platform, _sign_up

WAIT_S = 60.0  # a safety net against a hang, never a measured time


def _feed(api: Api) -> feed_pb2_grpc.FeedServiceStub:
    return feed_pb2_grpc.FeedServiceStub(api.channel)


async def _event(api: Api, rows: int = 2, seats: int = 6) -> str:
    return await make_event(api, rows=rows, seats_per_row=seats, name="Feed night")


async def _sell(
    api: Api,
    event_id: str,
    seat: str,
    email: str = "",
    name: str = "",
    consent: bool = False,
    buyer_id: str = "",
) -> sales_pb2.Order:
    held = await api.holds.HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=[seat], buyer_id=buyer_id),
        metadata=api.metadata,
    )
    committed = await api.orders.CommitHold(
        sales_pb2.CommitHoldRequest(
            hold_token=held.hold.hold_token,
            idempotency_key=f"k-{event_id}-{seat}",
            buyer=sales_pb2.BuyerDetails(name=name, email=email, marketing_consent=consent),
        ),
        metadata=api.metadata,
    )
    return committed.order


async def _cancel(api: Api, event_id: str, order_id: str) -> None:
    await api.orders.CancelOrder(
        sales_pb2.CancelOrderRequest(event_id=event_id, order_id=order_id, reason="refund"),
        metadata=api.metadata,
    )


async def _read(
    api: Api, cursor: str, until: Callable[[list[feed_pb2.FeedEntry]], bool]
) -> list[feed_pb2.FeedEntry]:
    """Entries from ``cursor`` on until ``until(entries)`` holds."""
    entries: list[feed_pb2.FeedEntry] = []
    call = _feed(api).Subscribe(feed_pb2.SubscribeRequest(cursor=cursor), metadata=api.metadata)

    async def consume() -> None:
        async for message in call:
            if message.WhichOneof("item") == "entry":
                entries.append(message.entry)
                if until(entries):
                    return

    try:
        await asyncio.wait_for(consume(), WAIT_S)
    finally:
        call.cancel()
    return entries


def _created(entries: list[feed_pb2.FeedEntry]) -> list[str]:
    return [e.order_id for e in entries if e.kind == "order.created"]


def _has(kinds_orders: set[tuple[str, str]]) -> Callable[[list[feed_pb2.FeedEntry]], bool]:
    return lambda entries: kinds_orders <= {(e.kind, e.order_id) for e in entries}


async def test_resume_from_a_cursor_gets_every_entry_after_it_in_order_per_event(organizer: Api) -> None:
    events = [await _event(organizer), await _event(organizer)]
    seats = [f"r{r}-{n}" for r in range(2) for n in range(6)]
    sold: list[tuple[str, str]] = []
    first = await _sell(organizer, events[0], seats[0], "ann@example.com", "Ann", consent=True)
    sold.append((events[0], first.order_id))
    head = await _read(organizer, "", _has({("order.created", first.order_id)}))
    entry = next(e for e in head if e.order_id == first.order_id)
    assert entry.buyer.email == "ann@example.com"
    assert entry.buyer.marketing_consent
    assert entry.total.amount_minor == 5000
    assert entry.total.currency == "EUR"
    assert [t.seat_ordinal for t in entry.tickets] == [0]
    assert entry.event_id == events[0]
    assert entry.entry_id == f"{events[0]}/{entry.entry_id.split('/')[1]}"
    resume_at = entry.cursor

    async def writer() -> None:  # commits and cancels while the consumer reads
        for i, seat in enumerate(seats[1:]):
            event_id = events[i % 2]
            order = await _sell(organizer, event_id, seat, f"b{i}@example.com")
            sold.append((event_id, order.order_id))
            if i % 3 == 0:
                await _cancel(organizer, event_id, order.order_id)

    writing = asyncio.create_task(writer())
    wanted: set[tuple[str, str]] = set()

    def done(entries: list[feed_pb2.FeedEntry]) -> bool:
        if not writing.done():
            return False
        wanted.update(("order.created", o) for _, o in sold[1:])
        return _has(wanted)(entries)

    after = await _read(organizer, resume_at, done)
    await writing
    assert first.order_id not in _created(after)  # nothing at or before the cursor...
    assert set(_created(after)) == {o for _, o in sold[1:]}  # ...and everything after it
    assert len({e.entry_id for e in after}) == len(after)
    for event_id in events:  # per event: the order the changes were made in
        mine = [e for e in after if e.event_id == event_id]
        stream_ids = [tuple(int(x) for x in e.entry_id.split("/")[1].split("-")) for e in mine]
        assert stream_ids == sorted(stream_ids)
        created_before_cancel = {e.order_id: i for i, e in enumerate(mine) if e.kind == "order.created"}
        for i, e in enumerate(mine):
            if e.kind == "order.cancelled":
                assert created_before_cancel[e.order_id] < i
                assert e.reason == "refund"
                assert e.ticket_ids
                assert e.order_status == "cancelled"

    # resuming from the middle gets exactly what follows it
    middle = after[len(after) // 2]
    rest = await _read(
        organizer, middle.cursor, _has({(e.kind, e.order_id) for e in after[len(after) // 2 + 1 :]})
    )
    assert {e.entry_id for e in rest} >= {e.entry_id for e in after[len(after) // 2 + 1 :]}
    assert middle.entry_id not in {e.entry_id for e in rest}


async def test_event_status_changes_are_entries(organizer: Api) -> None:
    event_id = await _event(organizer)
    await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, status=events_pb2.EVENT_STATUS_PAUSED),
        metadata=organizer.metadata,
    )
    entries = await _read(organizer, "", lambda es: any(e.kind == "event.status_changed" for e in es))
    changed = [e for e in entries if e.kind == "event.status_changed"]
    assert [(e.event_id, e.event_status) for e in changed] == [(event_id, "paused")]


async def test_a_closed_event_sends_a_no_show_per_ticket_never_scanned(
    organizer: Api, server: str, stores: Stores
) -> None:
    """The reaper writes them once the event is closed (no admission window set)."""
    event_id = await _event(organizer)
    came = await _sell(organizer, event_id, "r0-0", "ann@example.com", "Ann")
    stayed_home = await _sell(organizer, event_id, "r0-1", "bob@example.com", "Bob")
    token = await organizer.tickets.GetTicketToken(
        access_pb2.GetTicketTokenRequest(event_id=event_id, order_id=came.order_id,
                                         ticket_id=came.tickets[0].ticket_id),
        metadata=organizer.metadata,
    )  # fmt: skip
    door_key = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_DOOR, label="gate"), metadata=organizer.metadata
    )
    async with Api(server, door_key.api_key) as door:
        scanned = await door.access.ScanTicket(
            access_pb2.ScanTicketRequest(event_id=event_id, token=token.token, gate="A", device_id="d1"),
            metadata=door.metadata,
        )
    assert scanned.result == access_pb2.SCAN_RESULT_ADMITTED
    await organizer.events.UpdateEvent(
        events_pb2.UpdateEventRequest(event_id=event_id, status=events_pb2.EVENT_STATUS_CLOSED),
        metadata=organizer.metadata,
    )
    await reap_once(stores, sweep=True)  # the round a server's reaper runs each second
    entries = await _read(organizer, "", lambda es: any(e.kind == "ticket.no_show" for e in es))
    no_shows = [e for e in entries if e.kind == "ticket.no_show"]
    assert [(e.order_id, list(e.ticket_ids)) for e in no_shows] == [
        (stayed_home.order_id, [stayed_home.tickets[0].ticket_id])
    ]
    assert no_shows[0].buyer.email == "bob@example.com"
    checked_in = [e for e in entries if e.kind == "ticket.checked_in"]
    assert [list(e.ticket_ids) for e in checked_in] == [[came.tickets[0].ticket_id]]


async def test_refunds_are_entries_naming_their_tickets(organizer: Api) -> None:
    event_id = await _event(organizer)
    order = await _sell(organizer, event_id, "r0-0", "ann@example.com", "Ann")
    await organizer.orders.RefundOrder(
        sales_pb2.RefundOrderRequest(event_id=event_id, order_id=order.order_id, refund_key="rf-1",
                                     reason="show moved"),
        metadata=organizer.metadata,
    )  # fmt: skip
    entries = await _read(organizer, "", lambda es: any(e.kind == "order.refunded" for e in es))
    [refunded] = [e for e in entries if e.kind == "order.refunded"]
    assert (refunded.order_id, list(refunded.ticket_ids), refunded.reason) == (
        order.order_id,
        [order.tickets[0].ticket_id],
        "show moved",
    )


async def test_another_tenant_sees_nothing(organizer: Api, admin: Api, server: str) -> None:
    event_id = await _event(organizer)
    await _sell(organizer, event_id, "r0-0", "ann@example.com", "Ann")
    other_key = await admin.new_tenant_key("globex")
    async with Api(server, other_key) as other:
        own = await _event(other)
        await other.events.UpdateEvent(
            events_pb2.UpdateEventRequest(event_id=own, status=events_pb2.EVENT_STATUS_PAUSED),
            metadata=other.metadata,
        )
        entries = await _read(other, "", lambda es: any(e.event_id == own for e in es))
    assert {e.event_id for e in entries} == {own}  # acme's sale came first and is not there


async def test_a_revoked_key_ends_the_stream(admin: Api, server: str) -> None:
    key = await admin.new_tenant_key("acme")
    second = await admin.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(tenant_id="acme", role=tenancy_pb2.ROLE_ORGANIZER),
        metadata=admin.metadata,
    )
    async with Api(server, key) as organizer, Api(server, second.api_key) as watcher:
        event_id = await _event(organizer)
        order = await _sell(organizer, event_id, "r0-0")
        call = _feed(watcher).Subscribe(feed_pb2.SubscribeRequest(), metadata=watcher.metadata)
        async for message in call:  # the stream is open and serving
            if message.entry.order_id == order.order_id:
                break
        await admin.tenants.RevokeApiKey(
            tenancy_pb2.RevokeApiKeyRequest(key_id=second.key.key_id), metadata=admin.metadata
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(_drain(call), WAIT_S)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def _drain(call: AsyncIterator[feed_pb2.FeedMessage]) -> None:
    async for _ in call:
        pass


async def _redis_ms(client: AnyRedis, event_id: str) -> int:
    """The clock of the event's node (on a cluster, the node of the event's slot)."""
    raw = await client.eval("return redis.call('TIME')", 1, keys.event_key(event_id, "meta"))  # type: ignore[misc]
    return int(raw[0]) * 1000 + int(raw[1]) // 1000


async def test_a_cursor_older_than_the_retention_is_out_of_range(
    organizer: Api, redis_client: AnyRedis
) -> None:
    event_id = await _event(organizer)
    o1 = await _sell(organizer, event_id, "r0-0")
    o2 = await _sell(organizer, event_id, "r0-1")
    got = await _read(organizer, "", _has({("order.created", o2.order_id)}))
    c1, c2 = (next(e for e in got if e.order_id == o.order_id) for o in (o1, o2))
    last_ms = int(c2.entry_id.split("/")[1].split("-")[0])
    for _ in itertools.count():  # until the next entry gets a later ms (observed, not timed)
        if await _redis_ms(redis_client, event_id) > last_ms:
            break
        await asyncio.sleep(0.001)
    o3 = await _sell(organizer, event_id, "r0-2")
    got = await _read(organizer, c2.cursor, _has({("order.created", o3.order_id)}))
    horizon = int(next(e for e in got if e.order_id == o3.order_id).entry_id.split("/")[1].split("-")[0])
    assert await trim_tenant(redis_client, "acme", horizon) >= 2

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _read(organizer, c1.cursor, lambda es: True)
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status_of(err.value).details)
    oldest = info.metadata["oldest_cursor"]
    assert info.reason == "FEED_CURSOR_EXPIRED"
    assert oldest in (err.value.details() or "")
    from_oldest = await _read(organizer, oldest, _has({("order.created", o3.order_id)}))
    assert _created(from_oldest) == [o3.order_id]
    # the cursor of the last trimmed entry lost nothing: no error
    assert _created(await _read(organizer, c2.cursor, _has({("order.created", o3.order_id)}))) == [
        o3.order_id
    ]


async def test_consent_newest_decision_wins(organizer: Api) -> None:
    event_id = await _event(organizer)
    order = await _sell(organizer, event_id, "r0-0", "Ann@Example.com", "Ann", consent=True)
    feed = _feed(organizer)

    def at(ms: int) -> Timestamp:
        stamp = Timestamp()
        stamp.FromMilliseconds(ms)
        return stamp

    later = order.created_at.ToMilliseconds() + 1000
    out = await feed.UpdateConsent(
        feed_pb2.UpdateConsentRequest(
            email="ann@example.com", opted_in=False, source="crm", decided_at=at(later)
        ),
        metadata=organizer.metadata,
    )
    assert out.applied
    assert not out.opted_in
    stale = await feed.UpdateConsent(
        feed_pb2.UpdateConsentRequest(
            email="ANN@example.com", opted_in=True, source="buyer", decided_at=at(later - 1)
        ),
        metadata=organizer.metadata,
    )
    assert not stale.applied
    assert not stale.opted_in
    assert stale.source == "crm"
    # no order across streams (docs/data.md): wait for every entry asserted on
    order_seen = _has({("order.created", order.order_id)})
    entries = await _read(
        organizer, "", lambda es: order_seen(es) and any(e.kind == "consent.changed" for e in es)
    )
    consent = [e for e in entries if e.kind == "consent.changed"]
    assert len(consent) == 1
    assert consent[0].buyer.email == "ann@example.com"
    assert not consent[0].buyer.marketing_consent
    assert consent[0].buyer.consent_source == "crm"
    created = next(e for e in entries if e.kind == "order.created")
    assert not created.buyer.marketing_consent
    assert created.buyer.consent_source == "crm"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await feed.UpdateConsent(feed_pb2.UpdateConsentRequest(email="nobody"), metadata=organizer.metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _every_value(client: AnyRedis) -> list[bytes]:
    """Every key and every value in Redis (every node of a cluster), by type."""
    out: list[bytes] = []
    async for key in client.scan_iter(count=500):
        out.append(key)
        kind = (await client.type(key)).decode()
        if kind == "string":
            out.append(await client.get(key) or b"")
        elif kind == "hash":
            for k, v in (await client.hgetall(key)).items():
                out += [k, v]
        elif kind == "set":
            out += list(await client.smembers(key))
        elif kind == "zset":
            out += [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            out += await client.lrange(key, 0, -1)
        elif kind == "stream":
            for entry_id, fields in await client.xrange(key):
                out.append(entry_id)
                for k, v in fields.items():
                    out += [k, v]
        else:
            raise AssertionError(f"unexpected key type {kind}")
    return out


async def test_erasure_leaves_no_personal_field_anywhere_in_redis(
    organizer: Api, redis_client: AnyRedis
) -> None:
    events = [await _event(organizer), await _event(organizer)]
    email, name = "Zelda.Personal@Example.org", "Zelda Personalname"
    mine = [
        await _sell(organizer, events[0], "r0-0", email, name, consent=True, buyer_id=email),
        await _sell(organizer, events[1], "r0-0", email.lower(), name, buyer_id=email),
    ]
    other = await _sell(organizer, events[1], "r0-1", "someone@example.org", "Someone Else")
    await organizer.holds.HoldSeats(  # a live hold under the same buyer id
        sales_pb2.HoldSeatsRequest(event_id=events[0], seat_ids=["r1-0"], buyer_id=email),
        metadata=organizer.metadata,
    )
    await _cancel(organizer, events[1], mine[1].order_id)
    await _feed(organizer).UpdateConsent(
        feed_pb2.UpdateConsentRequest(email=email, opted_in=False, source="crm"), metadata=organizer.metadata
    )
    before = b"\n".join(await _every_value(redis_client)).lower()
    assert b"zelda" in before

    erased = await _feed(organizer).EraseBuyer(
        feed_pb2.EraseBuyerRequest(email=email), metadata=organizer.metadata
    )
    assert (erased.orders_erased, erased.holds_erased, erased.events_scanned) == (2, 1, 2)

    everything = b"\n".join(await _every_value(redis_client)).lower()
    for personal in (b"zelda", b"personalname", b"personal@example", email.lower().encode()):
        assert personal not in everything
    assert b"someone else" in everything  # only that buyer
    # the sales figures stay
    for order, event_id in zip(mine, events, strict=True):
        kept = await organizer.orders.GetOrder(
            sales_pb2.GetOrderRequest(event_id=event_id, order_id=order.order_id), metadata=organizer.metadata
        )
        assert kept.order.total.amount_minor == order.total.amount_minor
        assert len(kept.order.tickets) == len(order.tickets)
        assert not kept.order.buyer.email
    # the feed names nobody, and says what was erased
    # no order across streams (docs/data.md): wait for every entry asserted on
    orders_seen = _has({("order.created", o.order_id) for o in (*mine, other)})
    wanted = {"buyer.erased", "consent.changed"}
    entries = await _read(organizer, "", lambda es: orders_seen(es) and wanted <= {e.kind for e in es})
    for e in entries:
        if e.order_id in {o.order_id for o in mine} or e.kind == "consent.changed":
            assert e.buyer.erased
            assert not e.buyer.email
            assert not e.buyer.name
    gone = next(e for e in entries if e.kind == "buyer.erased")
    assert set(gone.order_refs) == {f"{ev}/{o.order_id}" for ev, o in zip(events, mine, strict=True)}
    assert next(e for e in entries if e.order_id == other.order_id).buyer.name == "Someone Else"
    audit = [audit_decoder.decode(f[b"e"]) for _, f in await redis_client.xrange(keys.tenant_audit("acme"))]
    erasures = [a for a in audit if a.method.endswith("/EraseBuyer")]
    assert [(a.outcome, a.organizer_id, a.targets["orders"]) for a in erasures] == [("OK", "acme", "2")]


async def test_nothing_lost_across_a_server_restart_and_a_redis_sigkill(tmp_path: Path) -> None:
    """Orders acknowledged before Redis is SIGKILLed (AOF, appendfsync always) and a new
    server process is started are all in the feed after the consumer's last cursor."""
    redis = EmbeddedRedis(tmp_path / "redis")
    redis.start()
    admin_key = "sw_admin_feed-fault-secret"

    async def start() -> tuple[Stores, grpc.aio.Server, str]:
        stores = Stores.open(redis.url, timeout_s=1.0)
        await stores.tenants.put_bootstrap_key(admin_key)
        server, port, _ = create_server(Config(port=0, data_dir=tmp_path), stores)
        await server.start()
        return stores, server, f"127.0.0.1:{port}"

    stores, server, target = await start()
    try:
        async with Api(target, admin_key) as admin:
            key = await admin.new_tenant_key("acme")
        async with Api(target, key) as api:
            event_id = await _event(api)
            first = await _sell(api, event_id, "r0-0")
            cursor = (await _read(api, "", _has({("order.created", first.order_id)})))[-1].cursor
            acknowledged = [(await _sell(api, event_id, f"r0-{n}")).order_id for n in range(1, 4)]
        await server.stop(None)
        await stores.close()
        redis.kill()  # as a crash would
        redis.start()  # replays the AOF
        stores, server, target = await start()
        async with Api(target, key) as api:
            for _attempt in itertools.count():  # until the new server reaches Redis
                try:
                    acknowledged.append((await _sell(api, event_id, "r1-0")).order_id)
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.05)
            after = await _read(api, cursor, _has({("order.created", o) for o in acknowledged}))
        assert _created(after) == acknowledged
    finally:
        await server.stop(None)
        await stores.close()
        redis.stop()


async def test_the_cli_tails_the_feed_as_json_lines(organizer: Api, server: str) -> None:
    """`seatwise feed tail --from CURSOR`: one JSON object per line, resumable by its cursor."""
    import json

    from tests.server.test_cli import run

    event_id = await _event(organizer)
    first = await _sell(organizer, event_id, "r0-0", "ann@example.com", "Ann")
    second = await _sell(organizer, event_id, "r0-1")
    env = {"SEATWISE_TARGET": server, "SEATWISE_API_KEY": organizer.metadata[0][1].removeprefix("Bearer ")}
    head = await asyncio.to_thread(run, "feed", "tail", "--max", "1", env=env)
    assert head.exit_code == 0, head.output
    line = json.loads(head.stdout)
    assert line["kind"] == "order.created"
    assert line["order_id"] == first.order_id
    assert line["buyer"]["email"] == "ann@example.com"
    rest = await asyncio.to_thread(run, "feed", "tail", "--from", line["cursor"], "--max", "1", env=env)
    assert rest.exit_code == 0, rest.output
    assert json.loads(rest.stdout)["order_id"] == second.order_id
    bad = await asyncio.to_thread(run, "feed", "tail", "--from", "not-a-cursor", env=env)
    assert bad.exit_code == 1
    assert "cursor" in bad.output
    assert "Traceback" not in bad.output


async def test_a_platform_admin_follows_every_organizer_of_its_platform(admin: Api, server: str) -> None:
    key1 = await _platform(admin, "p1", terms_version="v3")
    key2 = await _platform(admin, "p2", terms_version="v3")
    async with Api(server, key1) as p1, Api(server, key2) as p2:
        first = await _sign_up(p1, "first-hall")
        stranger = await _sign_up(p2, "other-hall")
        async with Api(server, first.api_key) as org1, Api(server, stranger.api_key) as org3:
            sold1 = await _sell(org1, await _event(org1), "r0-0", "ann@example.com", "Ann", consent=True)
            await _sell(org3, await _event(org3), "r0-0", "eve@example.com")
            head = await _read(p1, "", _has({("order.created", sold1.order_id)}))
            # an organizer signing up later joins the feed, its consent entries named by organizer
            second = await _sign_up(p1, "second-hall")
            async with Api(server, second.api_key) as org2:
                sold2 = await _sell(org2, await _event(org2), "r0-1", "bob@example.com", "Bob")
                await _feed(org2).UpdateConsent(
                    feed_pb2.UpdateConsentRequest(email="bob@example.com", opted_in=True, source="crm"),
                    metadata=org2.metadata,
                )
            rest = await _read(
                p1,
                head[-1].cursor,
                lambda es: {"order.created", "consent.changed"} <= {e.kind for e in es},
            )
        by_kind = {(e.kind, e.organizer_id): e for e in head + rest}
        org1_id, org2_id = first.organizer.organizer_id, second.organizer.organizer_id
        created1 = by_kind[("order.created", org1_id)]
        assert (created1.order_id, created1.buyer.email) == (sold1.order_id, "ann@example.com")
        assert by_kind[("order.created", org2_id)].order_id == sold2.order_id
        consent = by_kind[("consent.changed", org2_id)]
        assert consent.entry_id.startswith(f"tenant:{org2_id}/")
        assert (consent.buyer.email, consent.buyer.marketing_consent) == ("bob@example.com", True)
        assert stranger.organizer.organizer_id not in {e.organizer_id for e in head + rest}
        assert sold1.order_id not in {e.order_id for e in rest}, "resumed after the cursor"
        async with Api(server, first.api_key) as org1:  # an organizer's key names no platform
            call = _feed(org1).Subscribe(feed_pb2.SubscribeRequest(platform_id="p1"), metadata=org1.metadata)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in call:
                    pass
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field_violations(refused.value)[0][0] == "platform_id"
        # another platform's admin: the answer of a platform that does not exist
        for platform_id in ("p1", "p9"):
            call = _feed(p2).Subscribe(
                feed_pb2.SubscribeRequest(platform_id=platform_id), metadata=p2.metadata
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in call:
                    pass
            assert (refused.value.code(), refused.value.details()) == (
                grpc.StatusCode.NOT_FOUND,
                f"platform '{platform_id}' not found",
            )


async def test_consent_by_buyer_id_applies_to_every_order_of_that_buyer(
    organizer: Api, redis_client: AnyRedis
) -> None:
    events = [await _event(organizer), await _event(organizer)]
    first = await _sell(
        organizer, events[0], "r0-0", "ann@example.com", "Ann", consent=True, buyer_id="crm-42"
    )
    second = await _sell(organizer, events[1], "r0-0", "ann.work@example.com", "Ann", consent=True,
                         buyer_id="crm-42")  # fmt: skip
    other = await _sell(
        organizer, events[1], "r0-1", "bob@example.com", "Bob", consent=True, buyer_id="crm-7"
    )
    feed = _feed(organizer)
    out = await feed.UpdateConsent(
        feed_pb2.UpdateConsentRequest(buyer_id="crm-42", opted_in=False, source="crm"),
        metadata=organizer.metadata,
    )
    assert (out.applied, out.opted_in, out.source) == (True, False, "crm")
    # no order across events (docs/data.md): wait for every entry asserted on
    orders_seen = _has({("order.created", o.order_id) for o in (first, second, other)})
    entries = await _read(
        organizer, "", lambda es: orders_seen(es) and any(e.kind == "consent.changed" for e in es)
    )
    [changed] = [e for e in entries if e.kind == "consent.changed"]
    assert (changed.buyer.buyer_id, changed.buyer.email, changed.buyer.marketing_consent) == (
        "crm-42",
        "",
        False,
    )
    assert not changed.buyer.erased
    created = {e.order_id: e.buyer for e in entries if e.kind == "order.created"}
    for order in (first, second):  # both of the buyer's orders, whatever their e-mail, in both events
        assert (created[order.order_id].marketing_consent, created[order.order_id].consent_source) == (
            False,
            "crm",
        )
    assert (created[other.order_id].marketing_consent, created[other.order_id].consent_source) == (
        True,
        "checkout",
    )
    # a newer decision by e-mail wins for the orders with that e-mail only
    await feed.UpdateConsent(
        feed_pb2.UpdateConsentRequest(email="ann.work@example.com", opted_in=True, source="buyer"),
        metadata=organizer.metadata,
    )
    entries = await _read(organizer, "", lambda es: sum(e.kind == "consent.changed" for e in es) == 2)
    created = {e.order_id: e.buyer for e in entries if e.kind == "order.created"}
    assert (created[second.order_id].marketing_consent, created[second.order_id].consent_source) == (
        True,
        "buyer",
    )
    assert not created[first.order_id].marketing_consent
    # name the buyer one way, within bounds
    for request, field in (
        (feed_pb2.UpdateConsentRequest(email="ann@example.com", buyer_id="crm-42"), "buyer_id"),
        (feed_pb2.UpdateConsentRequest(source="crm"), "email"),
        (feed_pb2.UpdateConsentRequest(buyer_id="x" * 129), "buyer_id"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await feed.UpdateConsent(request, metadata=organizer.metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")
    # erasing the buyer (by an e-mail of its orders) forgets the decision by its id too
    await feed.EraseBuyer(feed_pb2.EraseBuyerRequest(email="ann@example.com"), metadata=organizer.metadata)
    assert await redis_client.hgetall(keys.tenant_consent_ids("acme")) == {}
    subjects = await redis_client.hvals(keys.tenant_subjects("acme"))
    assert b"crm-42" not in subjects
