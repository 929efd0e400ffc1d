"""The post-run audit against a real Redis: a clean sale passes, corrupted states are caught."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from holds import keys
from holds.records import Buyer, Order, Ticket
from holds.redis_client import AnyRedis
from loadtest.audit import AuditReport, audit_event
from loadtest.recording import Ack, AckLog
from server.context import Stores
from tests.holds.factories import TestEvent, make_event

K = {name: i for i, name in enumerate(keys.EVENT_KEY_NAMES)}


@dataclass
class Sale:
    """A small event after some realistic traffic, and the acks its clients received."""

    ev: TestEvent
    orders: list[Order]
    acks: list[Ack]

    def key(self, name: str) -> str:
        return keys.event_keys(self.ev.event_id)[K[name]]

    def seat_id(self, ordinal: int) -> str:
        return self.ev.loaded.index.placed[ordinal].seat.id


def ack_of(ev: TestEvent, order: Order, replayed: bool = False) -> Ack:
    placed = ev.loaded.index.placed
    ga: dict[str, int] = {}
    for t in order.tickets:
        if t.ga_area is not None:
            ga[t.ga_area] = ga.get(t.ga_area, 0) + 1
    return Ack(
        event_id=ev.event_id,
        order_id=order.order_id,
        seat_ids=[placed[t.seat].seat.id for t in order.tickets if t.seat is not None],
        ga=ga,
        idempotency_key=order.idempotency_key,
        hold_token=f"{ev.event_id}.{order.hold_id}",
        replayed=replayed,
        attempts=1,
        ts_ms=order.created_ms,
    )


@pytest.fixture
async def sale(stores: Stores) -> Sale:
    inv = stores.inventory
    ev = await make_event(stores.seatmaps, stores.events, ga_capacity=5)
    buyer = Buyer(name="Ann")
    orders = []
    first = await inv.hold(ev.event_id, seats=ev.seats(0, 1), buyer="b1")
    orders.append((await inv.commit(ev.event_id, first.hold_id, "k1", buyer)).order)
    replay = await inv.commit(ev.event_id, first.hold_id, "k1", buyer)  # a retried commit
    assert replay.replayed
    mixed = await inv.hold(ev.event_id, seats=ev.seats(6), ga={ev.ga_area: 3}, buyer="b2")
    orders.append((await inv.commit(ev.event_id, mixed.hold_id, "k2", buyer)).order)
    refunded = await inv.hold(ev.event_id, seats=ev.seats(2, 3))
    order = (await inv.commit(ev.event_id, refunded.hold_id, "k3", buyer)).order
    orders.append(await inv.cancel(ev.event_id, order.order_id, ticket_ids=[order.tickets[0].ticket_id]))
    await inv.hold(ev.event_id, seats=ev.seats(7, 8), buyer="b3")  # still paying
    released = await inv.hold(ev.event_id, seats=ev.seats(9), ga={ev.ga_area: 1})
    await inv.release(ev.event_id, released.hold_id)
    acks = [ack_of(ev, o) for o in orders] + [ack_of(ev, orders[0], replayed=True)]
    return Sale(ev, orders, acks)


async def audit(redis_client: AnyRedis, sale: Sale, **kwargs: int) -> AuditReport:
    return await audit_event(redis_client, sale.ev.event_id, sale.acks, **kwargs)


def failing(report: AuditReport) -> set[str]:
    return {c.name for c in report.checks if not c.ok}


async def test_a_clean_sale_passes(redis_client: AnyRedis, sale: Sale) -> None:
    report = await audit(redis_client, sale)
    assert report.ok, report.format()
    assert failing(report) == set()
    assert report.stats["orders"] == 3
    assert report.stats["seats_sold"] == 4  # 0, 1, 6 and 3 (2 was refunded)
    assert report.stats["tickets_valid"] == 7  # 4 seats + 3 GA places
    assert report.stats["ga_sold"] == 3
    assert report.stats["seats_held_live"] == 2
    assert report.stats["acks"] == 4
    assert report.stats["acks_replayed"] == 1
    assert report.stats["orders_not_acknowledged"] == 0
    # the timeline is ordered by creation time; orders created in the same millisecond tie
    assert sorted(n for _, n in report.sales) == [2, 2, 4]
    assert [t for t, _ in report.sales] == sorted(o.created_ms for o in sale.orders)
    assert report.to_dict()["ok"] is True


async def test_a_double_sold_seat_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    """A second order with a valid ticket for a seat already sold: the double sale is named."""
    victim = sale.orders[0]
    forged = Order(
        order_id="oFORGED",
        hold_id="hFORGED",
        idempotency_key="k-forged",
        buyer=Buyer(),
        tickets=[Ticket(ticket_id="tF-1", category="vip", price=4200, status="valid", seat=0)],
        total=4200,
        currency="EUR",
        status="committed",
        created_ms=victim.created_ms,
        updated_ms=victim.created_ms,
    )
    await redis_client.hset(sale.key("orders"), "oFORGED", msgspec.json.encode(forged))
    await redis_client.hset(sale.key("tickets"), "tF-1", "oFORGED")
    await redis_client.hset(sale.key("idem"), "k-forged", "oFORGED")
    await redis_client.zadd(sale.key("orders_z"), {"oFORGED": victim.created_ms})
    await redis_client.xadd(sale.key("lifecycle"), {"kind": "order.created", "order": "oFORGED"})
    report = await audit(redis_client, sale)
    assert not report.ok
    assert "no_double_sale" in failing(report)
    problems = report.check("no_double_sale").problems
    assert any(sale.seat_id(0) in p and "oFORGED" in p and victim.order_id in p for p in problems), problems


async def test_a_missing_acknowledged_order_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    lost = sale.orders[1]
    await redis_client.hdel(sale.key("orders"), lost.order_id)
    report = await audit(redis_client, sale)
    assert not report.ok
    assert "acks" in failing(report)
    assert any(lost.order_id in p and "not in Redis" in p for p in report.check("acks").problems)


async def test_an_ack_with_other_seats_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    wrong = sale.acks[0]
    sale.acks[0] = msgspec.structs.replace(wrong, seat_ids=["A-2-5"])
    report = await audit(redis_client, sale)
    assert failing(report) == {"acks"}


async def test_an_order_acknowledged_under_two_keys_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    # one order told to two buyers' checkouts: a commit answered twice for different requests
    first = sale.acks[0]
    sale.acks.append(msgspec.structs.replace(first, idempotency_key="another-checkout"))
    report = await audit(redis_client, sale)
    assert failing(report) == {"acks"}
    assert any(first.order_id in p and "two idempotency keys" in p for p in report.check("acks").problems)


async def test_ga_over_capacity_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    await redis_client.hincrby(sale.key("ga_sold"), sale.ev.ga_area, 3)  # 6 sold of 5
    report = await audit(redis_client, sale)
    assert not report.ok
    problems = report.check("ga_capacity").problems
    assert any("sold 6 > capacity 5" in p for p in problems), problems


async def test_ga_held_plus_sold_over_capacity_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    await redis_client.hincrby(sale.key("ga_held"), sale.ev.ga_area, 3)  # 3 held + 3 sold of 5
    report = await audit(redis_client, sale)
    problems = report.check("ga_capacity").problems
    assert any("held 3 + sold 3 > capacity 5" in p for p in problems), problems


async def test_a_sold_seat_without_its_order_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    await redis_client.hset(sale.key("seats"), 12, "s:oGHOST")
    report = await audit(redis_client, sale)
    assert "sold_seats" in failing(report)
    assert not report.ok


async def test_a_seat_held_by_a_vanished_hold_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    await redis_client.hset(sale.key("seats"), 13, "h:hGHOST")
    report = await audit(redis_client, sale)
    assert failing(report) == {"holds"}


async def test_a_wrong_bought_counter_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    """A lost cancel's decrement would keep a buyer from buying what the limit allows."""
    assert (await audit(redis_client, sale)).ok
    await redis_client.hincrby(sale.key("bought"), "b1", 1)
    report = await audit(redis_client, sale)
    assert failing(report) == {"holds"}


async def test_a_ticket_mapped_to_another_order_is_caught(redis_client: AnyRedis, sale: Sale) -> None:
    ticket = sale.orders[0].tickets[0].ticket_id
    await redis_client.hset(sale.key("tickets"), ticket, sale.orders[1].order_id)
    report = await audit(redis_client, sale)
    assert failing(report) == {"orders"}


async def test_expired_holds_are_lazily_free_and_only_warned_about(
    stores: Stores, redis_client: AnyRedis
) -> None:
    """With no reaper running, a lapsed hold stays stored: its seats count as free, the audit warns."""
    ev = await make_event(stores.seatmaps, stores.events, hold_ttl_ms=1_000)
    await stores.inventory.hold(ev.event_id, seats=ev.seats(4, 5), buyer="slow")
    await asyncio.sleep(1.2)
    report = await audit_event(redis_client, ev.event_id, [], reaper_grace_ms=0)
    assert report.ok, report.format()
    assert failing(report) == {"leases"}
    assert report.check("leases").severity == "warning"
    assert report.stats["seats_lazily_expired"] == 2
    assert report.stats["seats_held_live"] == 0
    assert report.stats["holds_expired_unpurged"] == 1


async def test_the_cli_reads_ack_files_and_exits_nonzero_on_failure(
    redis_url: str, redis_client: AnyRedis, sale: Sale, tmp_path: Path
) -> None:
    log = AckLog(tmp_path)
    for ack in sale.acks:
        log.record(ack)
    log.close()
    (tmp_path / "acks-torn.jsonl").write_bytes(b'{"event_id": "x", "ord')  # a killed writer's last line

    async def cli() -> tuple[int, dict[str, object]]:
        out = tmp_path / "audit.json"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadtest.audit", "--redis-url", redis_url,
            "--event", sale.ev.event_id, "--acks", str(tmp_path), "--json", str(out),
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        code = await asyncio.wait_for(process.wait(), timeout=60)
        return code, json.loads(out.read_text())

    code, report = await cli()
    assert code == 0
    assert report["ok"] is True
    await redis_client.hdel(sale.key("orders"), sale.orders[0].order_id)
    code, report = await cli()
    assert code == 1
    assert report["ok"] is False
