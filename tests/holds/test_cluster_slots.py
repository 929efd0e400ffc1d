"""Every script runs inside one Redis Cluster hash slot (design invariant 7).

Redis Cluster refuses (CROSSSLOT) a script whose KEYS hash to different slots,
and redis-py routes EVALSHA by its first key, so every key a script receives
must carry the same hash tag. These tests check it three ways: the key builders
of holds/keys.py for any id (hypothesis), every script call the service makes
(recorded while driving each call path once, on both topologies), and that the
test cluster really spreads events over its masters. Plus: an unreachable
cluster is StoreUnavailable (UNAVAILABLE), like an unreachable single Redis.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from holds import keys
from holds.aftersale import ResaleRules
from holds.channels import ChannelAccess, ChannelDef
from holds.errors import StoreUnavailable
from holds.feed.privacy import Privacy
from holds.inspection import read_event
from holds.inventory import Inventory
from holds.offers import OfferChoice
from holds.records import Buyer
from holds.redis_client import AnyRedis, connect
from holds.sales import hold_token
from holds.scripts import (
    PRELUDES,
    EncodableArg,
    Script,
    ScriptRegistry,
)
from rules.promos import PromoCode, TicketType
from server.context import Stores
from tests.holds.factories import GA_AREA, make_event
from tests.holds.test_seasons import make_season

ids = st.text(min_size=0, max_size=40)


def slots(names: Sequence[str]) -> set[int]:
    return {key_slot(name.encode()) for name in names}


def every_script() -> set[str]:
    lua = resources.files("holds") / "lua"
    return {p.name.removesuffix(".lua") for p in lua.iterdir() if p.name.endswith(".lua")} - PRELUDES


@given(ids)
def test_every_key_of_an_event_shares_one_slot(event_id: str) -> None:
    ks = keys.event_keys(event_id)
    assert len(ks) == len(keys.EVENT_KEY_NAMES)
    assert slots(ks) == {key_slot(keys.event_tag(event_id).encode())}
    assert slots(keys.door_keys(event_id)) == slots(ks)
    assert slots(keys.after_sale_keys(event_id)) == slots(ks)
    assert slots(keys.channel_script_keys(event_id)) == slots(ks)


@given(st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True), ids)
def test_a_seasons_events_share_the_seasons_slot(season_id: str, rest: str) -> None:
    """An event created into a season (id ``<season>~<random>``) is in the season's slot."""
    event_id = f"{season_id}{keys.SEASON_SEPARATOR}{rest}"
    season_slot = slots(keys.season_keys(season_id))
    assert season_slot == slots(keys.event_keys(event_id)) == slots(keys.after_sale_keys(event_id))
    assert not set(keys.season_keys(season_id)) & set(keys.event_keys(event_id))


@given(ids, ids)
def test_a_tenants_catalogue_shares_one_slot(tenant_id: str, seat_map_id: str) -> None:
    catalogue = [
        keys.seatmap_index(tenant_id),
        keys.seatmap_versions(tenant_id, seat_map_id),
        keys.seatmap_content(tenant_id, seat_map_id),
        keys.event_index(tenant_id),
        keys.tenant_keys_index(tenant_id),
        keys.tenant_feed(tenant_id),
        keys.tenant_consent(tenant_id),
        keys.tenant_subjects(tenant_id),
        keys.tenant_audit(tenant_id),
        keys.tenant_feed_trimmed(tenant_id),
        keys.ticket_signing_keys(tenant_id),
        keys.tenant_audit(tenant_id),
        keys.tenant_branding(tenant_id),
        keys.tenant_notifications(tenant_id),
        keys.tenant_usage(tenant_id, "2026-11"),
        keys.tenant_active_events(tenant_id),
        keys.tenant_billing(tenant_id),
    ]
    assert len(slots(catalogue)) == 1


@given(ids)
def test_a_platforms_records_share_one_slot(platform_id: str) -> None:
    records = [
        keys.platform_organizers(platform_id),
        keys.platform_slugs(platform_id),
        keys.platform_keys_index(platform_id),
        keys.platform_plans(platform_id),
        keys.platform_audit(platform_id),
        keys.platform_branding(platform_id),
        keys.platform_notifications(platform_id),
    ]
    assert slots(records) == {key_slot(keys.platform_tag(platform_id).encode())}


@pytest.fixture
def script_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    """Every (script name, KEYS) the service passes to Redis while the test runs."""
    calls: list[tuple[str, tuple[str, ...]]] = []
    original: Callable[[Script, Sequence[str], Sequence[EncodableArg]], Awaitable[Any]] = Script.__call__

    async def recording(self: Script, script_keys: Sequence[str], args: Sequence[EncodableArg]) -> Any:
        calls.append((self.name, tuple(script_keys)))
        return await original(self, script_keys, args)

    monkeypatch.setattr(Script, "__call__", recording)
    return calls


def _check_saga_slots(saga_calls: list[tuple[str, tuple[str, ...]]], source: str, target: str) -> None:
    """Each step of an exchange into another event runs in one slot: the target's or the source's."""
    for name, script_keys in saga_calls:
        assert len(slots(script_keys)) == 1, f"{name} spans slots: {script_keys}"
        in_target = name in {"hold", "xchg_commit", "event_put"}
        if name not in {"seatmap_put", "seatmap_publish"}:
            assert slots(script_keys) == slots([keys.event_tag(target if in_target else source)]), name
    assert {"xchg_lock", "xchg_commit", "xchg_finish"} <= {name for name, _ in saga_calls}


async def test_every_script_call_path_stays_in_one_slot(
    stores: Stores, redis_client: AnyRedis, script_calls: list[tuple[str, tuple[str, ...]]]
) -> None:
    """Drive every script once through the service's own call paths."""
    inv = stores.inventory
    ev = await make_event(stores.seatmaps, stores.events)  # seatmap_put, seatmap_publish, event_put
    ref = await stores.events.ref(ev.tenant, ev.event_id)
    await stores.events.update(ref, {"vip", "std", "ga"}, prices={"vip": 5000, "std": 1500, "ga": 900})
    held = await inv.hold(ev.event_id, seats=ev.seats(0, 1, 2), ga={GA_AREA: 2}, buyer="ada")
    await inv.hold(ev.event_id, seats=ev.seats(3), buyer="ada", hold_id=held.hold_id)
    await inv.get_hold(ev.event_id, held.hold_id)
    await inv.extend(ev.event_id, held.hold_id)
    await inv.release(ev.event_id, held.hold_id, seats=[3])
    order = (await inv.commit(ev.event_id, held.hold_id, "idem-1", Buyer(name="Ada"))).order
    await inv.cancel(ev.event_id, order.order_id, ticket_ids=[order.tickets[0].ticket_id])
    _, box = await stores.sales.sell_at_box_office(  # box_office
        ev.tenant, ev.event_id, [ev.loaded.index.placed[14].seat.id], {}, idempotency_key="bo-1",
        buyer=Buyer(), payment_method="cash",
    )  # fmt: skip
    await stores.sales.refund(  # refund: event keys + money keys
        ev.tenant, ev.event_id, order.order_id, {order.tickets[2].ticket_id: 100}, refund_key="rf-1"
    )
    door, ticket = stores.door, order.tickets[1].ticket_id
    _, token, _ = await door.ticket_token(ev.tenant, ev.event_id, order.order_id, ticket)  # ticket_keys_put
    await door.scan(ev.tenant, ev.event_id, token, "A", "d1")  # scan: event keys + door keys
    await door.stats(ev.tenant, ev.event_id)  # checkin_stats
    await door.write_no_shows(ev.event_id)  # no_show: event keys + door keys
    # after the sale: event keys + door keys + resale keys
    after, sold = stores.after_sale, box.order.tickets[0].ticket_id
    await after.set_resale_rules(ev.tenant, ev.event_id, ResaleRules(True))
    await after.transfer(ev.tenant, ev.event_id, box.order.order_id, sold, 0, Buyer(name="Bo"))  # transfer
    _, listed = await after.list_ticket(  # resale_list
        ev.tenant, ev.event_id, box.order.order_id, sold, revision=1, price=10, seller_id="bo"
    )
    listing = listed.tickets[0].listing
    assert listing is not None
    _, held_listing = await after.hold_listing(ev.tenant, ev.event_id, sold, listing.listing_id, "cy")
    await after.commit_listing(ev.tenant, held_listing.token, "rs-1", Buyer(name="Cy"))  # resale_commit
    await after.exchange(  # exchange
        ev.tenant, ev.event_id, box.order.order_id, [sold], seat_ids=[ev.loaded.index.placed[13].seat.id],
        exchange_key="x-1",
    )  # fmt: skip
    # an exchange into another event in another slot: the saga's steps, each in one slot
    saga_from = len(script_calls)
    ev2 = await make_event(stores.seatmaps, stores.events)
    _, box2 = await stores.sales.sell_at_box_office(
        ev.tenant, ev.event_id, [ev.loaded.index.placed[9].seat.id], {}, idempotency_key="bo-2",
        buyer=Buyer(), payment_method="cash",
    )  # fmt: skip
    await after.exchange(  # xchg_lock (source), xchg_commit (target), xchg_finish (source)
        ev.tenant, ev.event_id, box2.order.order_id, [box2.order.tickets[0].ticket_id],
        seat_ids=[ev2.loaded.index.placed[0].seat.id], exchange_key="x-2", target_event_id=ev2.event_id,
    )  # fmt: skip
    saga_calls = script_calls[saga_from:]
    _check_saga_slots(saga_calls, ev.event_id, ev2.event_id)
    del script_calls[saga_from:]  # checked there: the target's calls are in ev2's slot
    await inv.set_status(ev.event_id, [10, 11], "blocked", ["free"])
    other = await inv.hold(ev.event_id, seats=ev.seats(12), request_id="r-1")
    await inv.hold(ev.event_id, seats=ev.seats(12), request_id="r-1")  # a retry replays
    await inv.replay(ev.event_id, "r-2", "f")  # best available's replay-only call
    await inv.release(ev.event_id, other.hold_id)
    await inv.reap(ev.event_id)
    await inv.snapshot(ev.event_id)
    live = await stores.live.get(ev.tenant, ev.event_id)
    await stores.live.mirror(live)  # snapshot, then the change feed reads one key
    await read_event(stores.scripts, ev.event_id)  # the audit's dump
    await stores.seatmaps.list_latest(ev.tenant, 0, 10)  # seatmap_list: a page of one tenant's maps
    privacy = Privacy(stores.redis, stores.scripts)
    await privacy.update_consent(ev.tenant, "ada@example.com", True, "crm")  # consent: the tenant's slot
    await privacy.erase_buyer(ev.tenant, "ada@example.com", "key-1")  # erase_orders per event, erase_subject
    # claim_unique: one installation-wide hash (sw:domains), claimed then released
    await stores.branding.update_platform("p-slots", {"custom_domain": "a.example"})
    await stores.branding.update_platform("p-slots", {"custom_domain": "b.example"})
    await stores.plan_limits.usage.add(ev.tenant, "", "tickets_per_month", 1, 10)  # plan_usage: {t:} slot
    # ticket types and promo codes: definitions (offer_put: the event's slot or the organizer's),
    # a commit with the offer keys, an organizer-wide code's claim (promo_claim: the organizer's slot)
    await stores.offers.put_type(ev.tenant, ev.event_id, TicketType("kid", "Kid", {"std": 500}), "create")
    await stores.offers.put_promo(ev.tenant, "", PromoCode("ALL", "amount", amount=100, max_uses=5), "create")
    typed = await inv.hold(ev.event_id, seats=ev.seats(16, 17), buyer="bea")
    _, promo_order, _ = await stores.sales.commit(
        ev.tenant, hold_token(ev.event_id, typed.hold_id), "idem-2", Buyer(),
        offer=OfferChoice({ev.loaded.index.placed[16].seat.id: "kid"}, promo_code="ALL"),
    )  # fmt: skip
    # the whole order cancelled: its organizer-wide code's use given back (promo_return: {t:} slot)
    await stores.sales.cancel(ev.tenant, ev.event_id, promo_order.order_id, [], "free", "")

    # seasons: every script over the season's keys and its events' keys (one slot, the season's)
    first_season_call = len(script_calls)
    season = await make_season(stores, n_events=2)
    held_season = await stores.season_sales.hold(
        season.season.tenant_id, season.season.season_id, [season.seat(0)]
    )
    await stores.season_sales.extend(season.season.tenant_id, held_season.token)
    await stores.season_sales.commit(season.season.tenant_id, held_season.token, "season-1", Buyer())
    # a season commit with a ticket type and an organizer-wide code: the events' offer keys too
    # (the season's slot), the code's use claimed in the organizer's
    season_tenant = season.season.tenant_id
    for event_id in season.events:
        await stores.offers.put_type(season_tenant, event_id, TicketType("kid", "Kid", {"vip": 10}), "create")
    await stores.offers.put_promo(season_tenant, "", PromoCode("SEASONALL", "amount", amount=1), "create")
    typed_season = await stores.season_sales.hold(season_tenant, season.season.season_id, [season.seat(2)])
    await stores.season_sales.commit(
        season_tenant, typed_season.token, "season-2", Buyer(),
        offer=OfferChoice({season.seat(2): "kid"}, promo_code="SEASONALL"),
    )  # fmt: skip
    released = await stores.season_sales.hold(
        season.season.tenant_id, season.season.season_id, [season.seat(1)]
    )
    await stores.season_sales.release(season.season.tenant_id, released.token)
    _, season_box = await stores.sales.sell_at_box_office(
        season.season.tenant_id, season.events[0], [season.seat(4)], {}, idempotency_key="sbo",
        buyer=Buyer(), payment_method="cash",
    )  # fmt: skip
    await stores.after_sale.exchange(  # exchange_season: both events' keys, the season's slot
        season.season.tenant_id, season.events[0], season_box.order.order_id,
        [season_box.order.tickets[0].ticket_id], seat_ids=[season.seat(5)], exchange_key="sx",
        target_event_id=season.events[1],
    )  # fmt: skip

    # moving the event to another version of its seat map (remap: one event's keys, a dry run;
    # remap_begin and remap_step: the event's keys, its move keys and its channels key)
    again = await stores.seatmaps.put(ev.tenant, ev.loaded.version.seat_map_id, ev.loaded.seatmap)
    await stores.seatmaps.publish(ev.tenant, again.seat_map_id, again.version)
    await stores.moves.move(ev.tenant, ev.event_id, again.version, dry_run=True)
    await stores.moves.move(ev.tenant, ev.event_id, again.version)

    # channels: definition, allocation, a hold with access, the close (event keys + channel keys)
    channels = stores.channels
    await channels.define(ev.tenant, ev.event_id, ChannelDef("pre", "Presale", access_code="EARLY"))
    await channels.allocate(ev.tenant, ev.event_id, "pre", [ev.loaded.index.placed[15].seat.id], {GA_AREA: 1})
    await inv.hold(ev.event_id, seats=ev.seats(15), buyer="cy", access=ChannelAccess("pre", "EARLY"))
    await channels.close(ev.tenant, ev.event_id, "pre")

    exercised = {name for name, _ in script_calls} | {name for name, _ in saga_calls}
    assert exercised == every_script(), "a script was not exercised"
    for name, script_keys in script_calls[first_season_call:]:  # the season's events, the season's scripts
        assert len(slots(script_keys)) == 1, f"{name} spans slots: {script_keys}"
        if name == "event_put" or name.startswith("season_"):
            assert slots(script_keys) == slots([keys.event_tag(season.season.season_id)])
            assert slots(script_keys) == slots([keys.event_tag(season.events[1])])
        if name.startswith("season_"):  # all but season_extend: each event's channel keys last;
            # a commit with an offer: the events' offer keys after theirs
            per_event = len(keys.EVENT_KEY_NAMES) + (
                len(keys.CHANNEL_KEY_NAMES) if name != "season_extend" else 0
            )
            base = len(keys.SEASON_KEY_NAMES) + 2 * per_event
            offered = base + 2 * len(keys.OFFER_KEY_NAMES) if name == "season_commit" else base
            assert len(script_keys) in (base, offered)
    for name, script_keys in script_calls[:first_season_call]:
        assert script_keys, f"{name} got no KEYS: a cluster could not route it"
        assert len(slots(script_keys)) == 1, f"{name} spans slots: {script_keys}"
        if name in {"consent", "erase_subject"}:
            assert slots(script_keys) == slots([keys.tenant_tag(ev.tenant)])
        if name == "event_put" or name in {
            "hold",
            "commit",
            "release",
            "cancel",
            "erase_orders",
            "scan",
            "checkin_stats",
            "no_show",
            "box_office",
            "refund",
            "transfer",
            "exchange",
            "resale_list",
            "resale_hold",
            "resale_commit",
            "remap",
        }:
            mine = [slots([keys.event_tag(ev.event_id)])]
            if name == "erase_orders":  # an erasure walks every event of the organizer
                mine.append(slots([keys.event_tag(ev2.event_id)]))
            assert slots(script_keys) in mine, name
        if name in {"promo_claim", "promo_return"}:
            assert slots(script_keys) == slots([keys.tenant_tag(ev.tenant)])
        if name == "offer_put" and script_keys[0] != keys.tenant_promos(ev.tenant):
            assert slots(script_keys) == slots([keys.event_tag(ev.event_id)])


@pytest.mark.cluster
async def test_events_spread_over_the_cluster(stores: Stores, redis_client: AnyRedis) -> None:
    """Different events land on different masters; each one's keys on exactly one."""
    nodes = set()
    for _ in range(12):
        ev = await make_event(stores.seatmaps, stores.events)
        await stores.inventory.hold(ev.event_id, seats=ev.seats(0))
        owners = {redis_client.get_node_from_key(k).name for k in ev.keys}
        assert len(owners) == 1
        nodes |= owners
        # the script's writes are on that node, where a plain read finds them
        assert await redis_client.hlen(ev.keys[keys.EVENT_KEY_NAMES.index("seats")]) == 1
    assert len(nodes) > 1, "12 events all hashed to one master: is the test cluster sharded?"


async def test_an_unreachable_cluster_is_store_unavailable() -> None:
    """redis-py wraps "no startup node answers" in a RedisClusterException, not a RedisError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = connect(f"redis+cluster://127.0.0.1:{port}", socket_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable, match="Redis Cluster unavailable"):
            await Inventory(client, ScriptRegistry(client)).reap("ev1")
    finally:
        await client.aclose()
