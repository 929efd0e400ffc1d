"""Faults over sales sessions: a server or a client process killed mid-flight.

Issue 15: a session killed mid-flight (client or server process) loses no acknowledged
order and commits nothing twice when the client retries with its idempotency keys.
Both tests wait on what they observe (acknowledgements, commits in flight), never on
the clock, and check the event's ledger in Redis: one order at most per hold, one sale
per seat, every acknowledged order kept.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import sales_pb2

from holds.redis_client import connect
from holds.sales import Sales, parse_token
from tests.api import Api
from tests.server.conftest import settle_calls
from tests.server.faults import Service, on_sale_event, spawned_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
GONE = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)  # hold expired, released


def _plan(rows: int, seats: int, buyers: int) -> list[list[list[str]]]:
    """Each buyer's holds, two adjacent seats each, no seat in two buyers' plans."""
    pairs = [[f"r{r}-{n}", f"r{r}-{n + 1}"] for r in range(rows) for n in range(0, seats - 1, 2)]
    return [pairs[b::buyers] for b in range(buyers)]


async def _ledger(redis_url: str, event_id: str) -> dict[str, dict[str, Any]]:
    """The event's orders as stored, once checked: one order at most per hold, each seat
    sold to exactly the order holding its ticket, no seat in two orders."""
    client = connect(redis_url)
    try:
        stored = await client.hgetall(f"sw:{{ev:{event_id}}}:orders")
        seat_values = await client.hgetall(f"sw:{{ev:{event_id}}}:seats")
    finally:
        await client.aclose()
    orders = {k.decode(): json.loads(v) for k, v in stored.items()}
    per_hold = collections.Counter(o["hold_id"] for o in orders.values())
    assert max(per_hold.values(), default=0) <= 1, f"a hold made two orders: {per_hold.most_common(3)}"
    ticket_seats = [str(t["seat"]) for o in orders.values() for t in o["tickets"]]
    assert len(ticket_seats) == len(set(ticket_seats)), "a seat is in two orders"
    sold = {k.decode(): v.decode().removeprefix("s:") for k, v in seat_values.items() if v.startswith(b"s:")}
    assert sold == {str(t["seat"]): o["order_id"] for o in orders.values() for t in o["tickets"]}
    return orders


async def _buy(client: SeatwiseClient, event_id: str, pair: Sequence[str]) -> str | None:
    """A hold's token; None once the server is gone (a plain hold is never retried)."""
    while True:
        try:
            return str((await client.hold_seats(event_id, pair)).hold.hold_token)
        except SeatwiseError as exc:
            if exc.code is not grpc.StatusCode.RESOURCE_EXHAUSTED:  # shed by a loaded server: again
                return None
            await asyncio.sleep(0.05)


async def _idempotency_keys_used(redis_url: str, event_id: str) -> set[str]:
    """The idempotency keys the server has made orders for."""
    client = connect(redis_url)
    try:
        return {k.decode() for k in await client.hkeys(f"sw:{{ev:{event_id}}}:idem")}
    finally:
        await client.aclose()


class ServerKiller:
    """Buyers' commits over sessions, the server killed (SIGKILL) at one's start: that commit's
    outcome is then surely unknown to the client. It happens once ``after`` orders are
    acknowledged (something to lose), preferably while the server has made an order the
    client has not heard of (the case idempotency keys are for): the server is frozen
    (SIGSTOP) at a commit's start, Redis shows what it made, and it is killed there or let go
    on until ``anyway`` orders are acknowledged."""

    def __init__(self, proc: subprocess.Popen[bytes], redis_url: str, event_id: str) -> None:
        self.proc, self.redis_url, self.event_id = proc, redis_url, event_id
        self.after, self.anyway = 8, 40
        self.commits: dict[str, str] = {}  # idempotency key -> hold token, every commit asked for
        self.acked: dict[str, str] = {}  # idempotency key -> order id
        self.unknown: dict[str, grpc.StatusCode] = {}  # commits whose outcome the client did not get
        self.pending: set[str] = set()
        self.frozen: asyncio.Task[None] | None = None
        self.killed = False

    async def buyer(self, client: SeatwiseClient, pairs: list[list[str]]) -> None:
        for n, pair in enumerate(pairs):
            token = None if self.killed else await _buy(client, self.event_id, pair)
            if token is None:
                return
            idem = f"pay-{pair[0]}-{n}"
            self.commits[idem] = token
            self.pending.add(idem)
            commit = asyncio.ensure_future(client.commit_hold(token, idem))
            if not self.killed and self.frozen is None and len(self.acked) >= self.after:
                self.proc.send_signal(signal.SIGSTOP)  # before this commit is even sent
                self.frozen = asyncio.create_task(self._kill_or_thaw())
            try:
                self.acked[idem] = (await commit).order.order_id
            except SeatwiseError as exc:
                self.unknown[idem] = exc.code
            finally:
                self.pending.discard(idem)

    async def _kill_or_thaw(self) -> None:
        made = await _idempotency_keys_used(self.redis_url, self.event_id)
        if self.pending & made or len(self.acked) >= self.anyway:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.killed = True
        else:
            self.proc.send_signal(signal.SIGCONT)
            self.frozen = None


async def test_server_killed_mid_flight_over_sessions_then_retries_commit_each_hold_once(
    tmp_path: Path,
) -> None:
    async with spawned_server(tmp_path) as server:
        target, redis = server.target, server.redis
        api, event_id = await on_sale_event(target, rows=8, seats=20)
        key = api.metadata[0][1].removeprefix("Bearer ")
        await api.__aexit__()
        assert server.proc is not None
        run = ServerKiller(server.proc, redis.url, event_id)
        async with SeatwiseClient(target, key, sessions=2, connections=2) as client:
            await asyncio.gather(*(run.buyer(client, pairs) for pairs in _plan(8, 20, 16)))
        assert run.killed, "the server was never killed with commits in flight"
        assert run.unknown, "no commit was caught by the kill"
        assert set(run.unknown.values()) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
        made_unanswered = await _idempotency_keys_used(redis.url, event_id) - set(run.acked)

        await server.start()  # the same port, as a restarted process
        resent = sorted(run.acked)[::3]  # a sample of the acknowledged ones: the buyer never knew
        recovered: dict[str, str] = {}
        async with SeatwiseClient(target, key, sessions=2, connections=2) as client:
            for idem in [*run.unknown, *resent]:
                reply = await client.commit_hold(run.commits[idem], idem)  # the same hold, the same key
                if idem in run.acked:
                    assert reply.order.order_id == run.acked[idem], "a retried commit made another order"
                    assert reply.replayed
                else:  # the order the server made before it died, or made now
                    assert reply.replayed == (idem in made_unanswered)
                    recovered[idem] = reply.order.order_id

        async with Api(target, key) as api:
            for idem, order_id in run.acked.items():  # nothing acknowledged was lost
                read = await api.orders.GetOrder(
                    sales_pb2.GetOrderRequest(event_id=event_id, order_id=order_id), metadata=api.metadata
                )
                assert read.order.status == sales_pb2.ORDER_STATUS_COMMITTED
                assert read.order.idempotency_key == idem
        orders = await _ledger(redis.url, event_id)
        made = {**run.acked, **recovered}
        assert len(set(made.values())) == len(made) == len(run.commits)  # one order per commit asked for
        assert set(orders) == set(made.values())
        for idem, order_id in made.items():
            assert orders[order_id]["hold_id"] == parse_token(run.commits[idem])[1]
        assert sum(len(o["tickets"]) for o in orders.values()) == 2 * len(made)


# -- a client process killed mid-flight ----------------------------------------------------------


def _child_main(argv: list[str]) -> None:
    """The storefront process that gets killed: ``target key event_id log plan(JSON)``."""
    target, key, event_id, log_path, plan = argv
    asyncio.run(_child_buyers(target, key, event_id, Path(log_path), json.loads(plan)))


async def _child_buyers(
    target: str, key: str, event_id: str, log_path: Path, plan: list[list[list[str]]]
) -> None:
    with log_path.open("a") as log:

        def note(*fields: str) -> None:  # a whole line, flushed: the parent reads it after the kill
            log.write(" ".join(fields) + "\n")
            log.flush()

        async with SeatwiseClient(target, key, sessions=2, connections=2) as client:

            async def buyer(pairs: list[list[str]]) -> None:
                for n, pair in enumerate(pairs):
                    token = await _buy(client, event_id, pair)
                    assert token is not None, "the server must survive the client"
                    idem = f"pay-{pair[0]}-{n}"
                    note("commit", token, idem)
                    note("ack", idem, (await client.commit_hold(token, idem)).order.order_id)

            await asyncio.gather(*(buyer(pairs) for pairs in plan))


def _read_log(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(idempotency key -> hold token of each commit sent, idempotency key -> order id acknowledged)."""
    commits: dict[str, str] = {}
    acks: dict[str, str] = {}
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):  # being written
            break
        kind, first, second = line.split()
        if kind == "commit":
            commits[second] = first
        else:
            acks[first] = second
    return commits, acks


def _spawn_buyers(args: list[str], stderr_path: Path) -> subprocess.Popen[bytes]:
    """The storefront process, in its own process group (killed whole)."""
    code = "import sys; from tests.server.test_session_faults import _child_main; _child_main(sys.argv[1:])"
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip


class Gate:
    """Commits past the first ``passing`` are applied, then their answers wait for ``opened``:
    the client certainly dies with commits the server made but never answered."""

    def __init__(self, passing: int) -> None:
        self.passing = passing
        self.waiting = 0
        self.opened = asyncio.Event()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        commit = Sales.commit

        async def gated(sales: Sales, *args: Any, **kwargs: Any) -> Any:
            result = await commit(sales, *args, **kwargs)
            if self.passing > 0:
                self.passing -= 1
            elif not self.opened.is_set():
                self.waiting += 1
                await self.opened.wait()
            return result

        monkeypatch.setattr(Sales, "commit", gated)


async def test_client_killed_mid_flight_then_retries_get_each_hold_committed_once(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, event_id = await on_sale_event(service.target, rows=4, seats=16)
    key = api.metadata[0][1].removeprefix("Bearer ")
    await api.__aexit__()
    gate = Gate(passing=8)
    gate.install(monkeypatch)
    log_path, stderr_path = tmp_path / "buyers.log", tmp_path / "child.err"
    child = _spawn_buyers(
        [service.target, key, event_id, str(log_path), json.dumps(_plan(4, 16, 8))], stderr_path
    )
    try:
        give_up = time.monotonic() + 25
        while not (len(_read_log(log_path)[1]) >= 5 and gate.waiting >= 3):
            assert child.poll() is None, f"the buyers' process ended first: {stderr_path.read_text()}"
            assert time.monotonic() < give_up, "the buyers never got orders with commits in flight"
            await asyncio.sleep(0.02)  # the server runs in this loop meanwhile
    finally:
        with contextlib.suppress(ProcessLookupError):  # it ended by itself: the assertion says why
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    unanswered = gate.waiting  # applied, never answered: the client died first
    gate.opened.set()
    await settle_calls(service.stores, timeout_s=20)

    commits, acks = _read_log(log_path)
    made_unanswered = await _idempotency_keys_used(service.redis.url, event_id) - set(acks)
    assert len(made_unanswered) >= unanswered >= 3
    made: dict[str, str] = {}
    refused: dict[str, SeatwiseError] = {}
    async with SeatwiseClient(service.target, key, sessions=2, connections=2) as client:
        for idem, token in commits.items():  # the restarted storefront retries every commit it logged
            try:
                reply = await client.commit_hold(token, idem)
            except SeatwiseError as exc:
                refused[idem] = exc
                continue
            made[idem] = reply.order.order_id
            if idem in acks:
                assert reply.order.order_id == acks[idem], "a retried commit made another order"
                assert reply.replayed
            else:  # the order the server made before the client died, or made now
                assert reply.replayed == (idem in made_unanswered)
    assert not set(refused) & set(acks), f"acknowledged orders lost: {refused}"
    assert all(exc.code in GONE for exc in refused.values()), refused  # the hold expired or was released
    orders = await _ledger(service.redis.url, event_id)
    assert set(orders) == set(made.values())  # every order is one of a logged commit, once
    assert len(set(made.values())) == len(made)
    for idem, order_id in made.items():
        assert orders[order_id]["hold_id"] == parse_token(commits[idem])[1]
