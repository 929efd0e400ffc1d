"""Tickets at the door against real Redis (single and cluster): tokens, scans, exits,
offline uploads, key rotation and revocation, statistics, and races between gates."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter

import pytest

from holds import keys
from holds.door import DoorRules, OfflineScan, ScanOutcome
from holds.errors import NotFound, PreconditionFailed
from holds.records import Buyer, Order
from holds.redis_client import AnyRedis
from rules.tickets import verify
from server.context import Stores
from server.reaper import reap_once
from tests.holds.factories import GA_AREA, TestEvent, make_event


async def _order(stores: Stores, ev: TestEvent, *ordinals: int, ga: int = 0, key: str = "k") -> Order:
    held = await stores.inventory.hold(
        ev.event_id, seats=ev.seats(*ordinals), ga={GA_AREA: ga} if ga else None
    )
    return (await stores.inventory.commit(ev.event_id, held.hold_id, f"{key}-{held.hold_id}", Buyer())).order


async def _token(stores: Stores, ev: TestEvent, order: Order, i: int = 0) -> str:
    _, token, _ = await stores.door.ticket_token(
        ev.tenant, ev.event_id, order.order_id, order.tickets[i].ticket_id
    )
    return token


async def _scan(
    stores: Stores, ev: TestEvent, token: str, gate: str = "A", device: str = "d1"
) -> ScanOutcome:
    return (await stores.door.scan(ev.tenant, ev.event_id, token, gate, device))[1]


async def test_a_ticket_is_admitted_once(stores: Stores, redis_client: AnyRedis) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    order = await _order(stores, ev, 0, 1, ga=1)
    token = await _token(stores, ev, order)
    assert token == await _token(stores, ev, order), "the same ticket always gets the same token"
    claims = verify(token, await stores.door.ticket_keys.ring(ev.tenant))
    assert (claims.ticket_id, claims.order_id, claims.place) == (
        order.tickets[0].ticket_id,
        order.order_id,
        0,
    )

    first = await _scan(stores, ev, token, "North", "dev-1")
    assert first.result == "admitted"
    assert first.first_entry
    assert first.seat_id == ev.loaded.index.placed[0].seat.id
    again = await _scan(stores, ev, token, "South", "dev-2")
    assert again.result == "already_used"
    assert again.previous == ("North", "dev-1", first.at_ms)

    ga_token = await _token(stores, ev, order, 2)
    assert (await _scan(stores, ev, ga_token)).result == "admitted"
    stats = await stores.door.stats(ev.tenant, ev.event_id)
    assert (stats.admitted, stats.remaining, stats.entries, stats.inside) == (2, 1, 2, 2)
    assert stats.by_gate == {"North": 1, "A": 1}
    assert sum(stats.by_category.values()) == 2
    assert sum(stats.by_minute.values()) == 2
    state = await redis_client.xrange(f"sw:{{ev:{ev.event_id}}}:lifecycle")
    kinds = Counter(fields[b"kind"] for _, fields in state)
    assert kinds[b"ticket.checked_in"] == 2


async def test_what_cannot_enter_is_answered(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    other = await make_event(stores.seatmaps, stores.events)
    stranger = await make_event(stores.seatmaps, stores.events, tenant="globex")
    order = await _order(stores, ev, 0, 1)
    token = await _token(stores, ev, order)
    forged = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    assert (await _scan(stores, ev, forged)).result == "forged"
    assert (await _scan(stores, ev, "not a token")).result == "forged"
    # a ticket of another event of the same organizer
    wrong = await _scan(stores, other, token)
    assert (wrong.result, wrong.reason) == ("wrong_event", ev.event_id)
    # another organizer's ticket: its key is unknown here; its event is not found
    strangers = await _token(stores, stranger, await _order(stores, stranger, 0))
    assert (await _scan(stores, ev, strangers)).result == "unknown_key"
    with pytest.raises(NotFound):
        await stores.door.scan(ev.tenant, stranger.event_id, strangers, "A", "d1")
    # cancelled
    await stores.inventory.cancel(ev.event_id, order.order_id, ticket_ids=[order.tickets[1].ticket_id])
    assert (await _scan(stores, ev, token)).result == "admitted"  # ticket 0 is still valid
    with pytest.raises(PreconditionFailed):
        await _token(stores, ev, order, 1)
    stats = await stores.door.stats(ev.tenant, ev.event_id)
    assert (stats.admitted, stats.remaining) == (1, 0)


async def test_a_cancelled_tickets_token_is_revoked(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    order = await _order(stores, ev, 3)
    token = await _token(stores, ev, order)
    await stores.inventory.cancel(ev.event_id, order.order_id)
    refused = await _scan(stores, ev, token)
    assert (refused.result, refused.reason) == ("revoked", "cancelled")
    assert (await stores.door.stats(ev.tenant, ev.event_id)).entries == 0


async def test_the_admission_window(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    token = await _token(stores, ev, await _order(stores, ev, 0))
    now = int(time.time() * 1000)
    await stores.door.set_rules(ev.tenant, ev.event_id, DoorRules(now + 3_600_000, now + 7_200_000))
    early = await _scan(stores, ev, token)
    assert early.result == "outside_window"
    assert early.window == (now + 3_600_000, now + 7_200_000)
    await stores.door.set_rules(ev.tenant, ev.event_id, DoorRules(now - 3_600_000, now + 3_600_000))
    assert (await _scan(stores, ev, token)).result == "admitted"


async def test_exit_and_reentry_follow_the_events_rule(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    token = await _token(stores, ev, await _order(stores, ev, 0))
    door = stores.door
    assert (await _scan(stores, ev, token)).result == "admitted"
    with pytest.raises(PreconditionFailed):
        await door.scan(ev.tenant, ev.event_id, token, "A", "d1", direction="exit")
    await door.set_rules(ev.tenant, ev.event_id, DoorRules(reentry="allowed"))
    assert (await _scan(stores, ev, token)).result == "already_used"
    out = (await door.scan(ev.tenant, ev.event_id, token, "A", "d1", direction="exit"))[1]
    assert out.result == "admitted"
    again = (await door.scan(ev.tenant, ev.event_id, token, "A", "d1", direction="exit"))[1]
    assert again.result == "not_checked_in"
    back = await _scan(stores, ev, token, "B")
    assert back.result == "admitted"
    assert not back.first_entry
    stats = await door.stats(ev.tenant, ev.event_id)
    assert (stats.admitted, stats.entries, stats.exits, stats.inside) == (1, 2, 1, 1)
    assert stats.rules.reentry == "allowed"


async def test_key_rotation_and_revocation(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    order = await _order(stores, ev, 0, 1, 2)
    keys = stores.door.ticket_keys
    old = await _token(stores, ev, order, 0)  # makes the tenant's first key
    first_key = (await keys.ring(ev.tenant)).active
    assert first_key is not None
    ring = await keys.rotate(ev.tenant)
    assert ring.get(first_key.key_id).state == "retired"
    new = await _token(stores, ev, order, 1)
    assert verify(new, ring).key_id != first_key.key_id
    assert old == await _token(stores, ev, order, 0), "a rotation changes only new tickets"
    assert (await _scan(stores, ev, old)).result == "admitted"  # a retired key's tickets still scan
    await keys.revoke(ev.tenant, first_key.key_id)
    third_old = await _token(stores, ev, order, 2)  # issued with the active key
    refused = await _scan(stores, ev, old)
    assert (refused.result, refused.reason) == ("revoked", "key_revoked")
    reissued = await _token(stores, ev, order, 0)
    assert reissued != old
    assert (await _scan(stores, ev, reissued)).result == "already_used"  # it was admitted before
    assert (await _scan(stores, ev, third_old)).result == "admitted"
    with pytest.raises(NotFound):
        await keys.revoke(ev.tenant, "nope")


async def test_seeds_are_encrypted_at_rest(redis_url: str, redis_client: AnyRedis) -> None:
    from cryptography.fernet import Fernet

    from holds import keys as rkeys

    secret = Fernet.generate_key().decode()
    stores = Stores.open(redis_url, ticket_key_secret=secret)
    try:
        ring = await stores.door.ticket_keys.rotate("acme")
        active = ring.active
        assert active is not None
        stored = await redis_client.hget(rkeys.ticket_signing_keys("acme"), f"seed:{active.key_id}")
        assert stored is not None
        assert stored.startswith(b"fernet:")
        key = await stores.door.ticket_keys.signing_key("acme", active.key_id)
        assert key.public().public_key == active.public_key
    finally:
        await stores.close()


async def test_offline_uploads_report_conflicts_and_are_idempotent(stores: Stores) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    order = await _order(stores, ev, 0, 1, 2)
    tokens = [await _token(stores, ev, order, i) for i in range(3)]
    assert (await _scan(stores, ev, tokens[0], "Main", "online-1")).result == "admitted"
    now = int(time.time() * 1000)
    batch = [
        OfflineScan(tokens[0], "Side", now - 60_000),  # admitted online at Main too: conflict
        OfflineScan(tokens[1], "Side", now - 50_000),
        OfflineScan(tokens[1], "Side", now - 40_000),  # the device scanned it twice itself
        OfflineScan(tokens[2], "Side", now - 30_000),
        OfflineScan("forged", "Side", now - 20_000),
    ]
    _, first = await stores.door.upload_offline(ev.tenant, ev.event_id, "phone-7", batch)
    assert [o.result for o in first] == ["already_used", "admitted", "already_used", "admitted", "forged"]
    assert first[0].previous is not None
    assert first[0].previous[:2] == ("Main", "online-1")
    assert first[1].at_ms == now - 50_000, "an offline scan counts at the device's time"
    _, second = await stores.door.upload_offline(ev.tenant, ev.event_id, "phone-7", batch)
    assert second == first, "uploading the same batch again answers the same"
    stats = await stores.door.stats(ev.tenant, ev.event_id)
    assert (stats.admitted, stats.entries, stats.conflicts) == (3, 3, 2)


async def test_bad_scan_requests_change_nothing(stores: Stores) -> None:
    from holds.errors import InvalidRequest

    ev = await make_event(stores.seatmaps, stores.events)
    token = await _token(stores, ev, await _order(stores, ev, 0))
    for gate, device in [("", "d"), ("a|b", "d"), ("A", ""), ("A", "x" * 65)]:
        with pytest.raises(InvalidRequest):
            await stores.door.scan(ev.tenant, ev.event_id, token, gate, device)
    with pytest.raises(InvalidRequest):
        await stores.door.upload_offline(ev.tenant, ev.event_id, "d", [OfflineScan(token, "A", 0)])
    assert (await stores.door.stats(ev.tenant, ev.event_id)).entries == 0


async def test_two_gates_at_once_admit_exactly_one(stores: Stores, redis_url: str) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    order = await _order(stores, ev, 0, 1, 2, 3)
    tokens = [await _token(stores, ev, order, i) for i in range(4)]
    others = [Stores.open(redis_url) for _ in range(3)]
    try:
        for token in tokens:
            go = asyncio.Event()

            async def scan(s: Stores, gate: str, token: str = token, go: asyncio.Event = go) -> str:
                await go.wait()
                return (await s.door.scan(ev.tenant, ev.event_id, token, gate, "d"))[1].result

            tasks = [asyncio.create_task(scan(s, f"G{i}")) for i, s in enumerate(others * 8)]
            await asyncio.sleep(0)
            go.set()
            results = Counter(await asyncio.gather(*tasks))
            assert results == {"admitted": 1, "already_used": 23}
    finally:
        for s in others:
            await s.close()
    assert (await stores.door.stats(ev.tenant, ev.event_id)).admitted == 4


def _scan_in_process(redis_url: str, tenant: str, event_id: str, token: str, gate: str, start: float) -> str:
    async def main() -> str:
        s = Stores.open(redis_url)
        try:
            await s.live.get(tenant, event_id)  # loaded before the start instant
            await asyncio.sleep(max(0.0, start - time.time()))
            return (await s.door.scan(tenant, event_id, token, gate, f"dev-{gate}"))[1].result
        finally:
            await s.close()

    return asyncio.run(main())


async def test_processes_scanning_one_ticket_admit_exactly_one(stores: Stores, redis_url: str) -> None:
    """4 OS processes scan the same ticket at 4 gates at the same wall-clock instant."""
    ev = await make_event(stores.seatmaps, stores.events)
    token = await _token(stores, ev, await _order(stores, ev, 0))
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 3.0  # spawned interpreters import the service first
    with ctx.Pool(4) as pool:
        pending = pool.starmap_async(
            _scan_in_process, [(redis_url, ev.tenant, ev.event_id, token, f"G{i}", start) for i in range(4)]
        )
        results = await asyncio.to_thread(pending.get, 120)
    assert Counter(results) == {"admitted": 1, "already_used": 3}


async def _no_show_tickets(redis_client: AnyRedis, ev: TestEvent) -> list[str]:
    entries = await redis_client.xrange(f"sw:{{ev:{ev.event_id}}}:lifecycle")
    return [f[b"detail"].decode() for _, f in entries if f[b"kind"] == b"ticket.no_show"]


async def test_a_closed_event_owes_a_no_show_per_unscanned_valid_ticket(
    stores: Stores, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    came = await _order(stores, ev, 0, key="came")
    partly = await _order(stores, ev, 1, 2, ga=1, key="partly")
    cancelled = await _order(stores, ev, 3, key="cancelled")
    assert (await _scan(stores, ev, await _token(stores, ev, came))).result == "admitted"
    assert (await _scan(stores, ev, await _token(stores, ev, partly, 1))).result == "admitted"
    await stores.inventory.cancel(ev.event_id, cancelled.order_id)
    assert await stores.door.write_no_shows(ev.event_id) == ("open", 0), "not closed: nothing owed yet"

    ref = await stores.events.ref(ev.tenant, ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, status="closed")
    first_state, first = await stores.door.write_no_shows(ev.event_id, batch=2)  # 2 of the 3 orders
    state, then = await stores.door.write_no_shows(ev.event_id, batch=2)
    assert (first_state, state, first + then) == ("more", "done", 2)
    assert sorted(await _no_show_tickets(redis_client, ev)) == sorted(
        [partly.tickets[0].ticket_id, partly.tickets[2].ticket_id]
    )
    assert await stores.door.write_no_shows(ev.event_id) == ("done", 0), "written once"
    assert len(await _no_show_tickets(redis_client, ev)) == 2


async def test_no_shows_wait_for_the_admission_window_to_end(stores: Stores, redis_client: AnyRedis) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    order = await _order(stores, ev, 0)
    now = int(time.time() * 1000)
    await stores.door.set_rules(ev.tenant, ev.event_id, DoorRules(now - 3_600_000, now + 3_600_000))
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, status="closed")
    assert await stores.door.write_no_shows(ev.event_id) == ("doors_open", 0)
    token = await _token(stores, ev, order)
    assert (await _scan(stores, ev, token)).result == "admitted"  # still at the door
    await stores.door.set_rules(ev.tenant, ev.event_id, DoorRules(now - 3_600_000, now - 1))
    assert await stores.door.write_no_shows(ev.event_id) == ("done", 0)
    assert await _no_show_tickets(redis_client, ev) == []


async def test_the_reaper_writes_no_shows_before_retiring_a_closed_event(
    stores: Stores, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    orders = [await _order(stores, ev, i, key=f"o{i}") for i in range(5)]
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, status="closed")
    assert await redis_client.sismember(keys.ACTIVE_EVENTS, ev.event_id), "closing puts it in the set"
    await reap_once(stores, sweep=True)
    assert not await redis_client.sismember(keys.ACTIVE_EVENTS, ev.event_id)
    assert sorted(await _no_show_tickets(redis_client, ev)) == sorted(o.tickets[0].ticket_id for o in orders)


async def test_the_reaper_keeps_a_closed_event_until_its_doors_close(
    stores: Stores, redis_client: AnyRedis
) -> None:
    ev = await make_event(stores.seatmaps, stores.events)
    await _order(stores, ev, 0)
    now = int(time.time() * 1000)
    await stores.door.set_rules(ev.tenant, ev.event_id, DoorRules(0, now + 3_600_000))
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, status="closed")
    await reap_once(stores, sweep=True)
    assert await redis_client.sismember(keys.ACTIVE_EVENTS, ev.event_id)
    assert await _no_show_tickets(redis_client, ev) == []
