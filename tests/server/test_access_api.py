"""Tickets and the door end to end through gRPC (single Redis and cluster): tokens and
QR codes, published keys, scans by door keys, offline uploads, rotation, statistics."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import access_pb2, sales_pb2, tenancy_pb2

from rules.tickets import KeyRing, TicketKey, verify
from tests.api import Api, field_violations
from tests.server.events import make_event
from tests.server.test_sales_api import _hold

KEY_STATE = {
    access_pb2.TICKET_KEY_STATE_ACTIVE: "active",
    access_pb2.TICKET_KEY_STATE_RETIRED: "retired",
    access_pb2.TICKET_KEY_STATE_REVOKED: "revoked",
}


@pytest.fixture
async def door(organizer: Api, server: str) -> AsyncIterator[Api]:
    """A door-scanner key of 'acme', minted by its organizer."""
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_DOOR, label="gate scanners"),
        metadata=organizer.metadata,
    )
    assert created.key.role == tenancy_pb2.ROLE_DOOR
    async with Api(server, created.api_key) as api:
        yield api


async def _order(api: Api, event_id: str, *seats: str) -> sales_pb2.Order:
    hold = await _hold(api, event_id, *seats)
    committed = await api.orders.CommitHold(
        sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key=f"k-{hold.hold_token}"),
        metadata=api.metadata,
    )
    return committed.order


async def _token(
    api: Api, order: sales_pb2.Order, i: int = 0, *, png: bool = False
) -> access_pb2.GetTicketTokenResponse:
    return await api.tickets.GetTicketToken(
        access_pb2.GetTicketTokenRequest(
            event_id=order.event_id, order_id=order.order_id, ticket_id=order.tickets[i].ticket_id, qr_png=png
        ),
        metadata=api.metadata,
    )


async def _scan(
    api: Api, event_id: str, token: str, gate: str = "A", device: str = "d1"
) -> access_pb2.ScanTicketResponse:
    return await api.access.ScanTicket(
        access_pb2.ScanTicketRequest(event_id=event_id, token=token, gate=gate, device_id=device),
        metadata=api.metadata,
    )


def _ring(response: access_pb2.TicketKeysResponse) -> KeyRing:
    return KeyRing(
        TicketKey(k.key_id, k.public_key, KEY_STATE[k.state], k.created_at.seconds)  # type: ignore[arg-type]
        for k in response.keys
    )


async def test_a_ticket_scans_once_and_verifies_offline(organizer: Api, door: Api) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-0", "r0-1")
    issued = await _token(organizer, order, png=True)
    assert issued.qr_png.startswith(b"\x89PNG")
    assert issued.qr_payload == issued.token
    # a scanner verifies offline with the published keys
    ring = _ring(await door.tickets.GetTicketKeys(access_pb2.GetTicketKeysRequest(), metadata=door.metadata))
    assert verify(issued.token, ring).ticket_id == order.tickets[0].ticket_id

    admitted = await _scan(door, event_id, issued.token, "North", "dev-1")
    assert admitted.result == access_pb2.SCAN_RESULT_ADMITTED
    assert (admitted.ticket_id, admitted.seat_id) == (order.tickets[0].ticket_id, "r0-0")
    again = await _scan(door, event_id, issued.token, "South", "dev-2")
    assert again.result == access_pb2.SCAN_RESULT_ALREADY_USED
    assert (again.previous.gate, again.previous.device_id) == ("North", "dev-1")
    assert again.previous.at == admitted.scanned_at

    stats = await door.access.GetCheckInStats(
        access_pb2.GetCheckInStatsRequest(event_id=event_id), metadata=door.metadata
    )
    assert (stats.admitted, stats.remaining, stats.inside) == (1, 1, 1)
    assert [(g.name, g.count) for g in stats.by_gate] == [("North", 1)]
    assert sum(m.entries for m in stats.over_time) == 1


async def test_roles_at_the_door(organizer: Api, door: Api, admin: Api, server: str) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-0")
    token = (await _token(organizer, order)).token
    storefront_key = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT), metadata=organizer.metadata
    )
    async with Api(server, storefront_key.api_key) as storefront:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _scan(storefront, event_id, token)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (await _token(storefront, order)).token == token  # storefronts deliver tickets
    for call in (
        _token(door, order),
        door.tickets.RotateTicketKey(access_pb2.RotateTicketKeyRequest(), metadata=door.metadata),
        door.access.SetDoorRules(access_pb2.SetDoorRulesRequest(event_id=event_id), metadata=door.metadata),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # nothing was admitted by the refused calls
    assert (await _scan(door, event_id, token)).result == access_pb2.SCAN_RESULT_ADMITTED


async def test_another_organizers_ticket_leaks_nothing(
    organizer: Api, door: Api, admin: Api, server: str
) -> None:
    event_id = await make_event(organizer)
    token = (await _token(organizer, await _order(organizer, event_id, "r0-0"))).token
    async with Api(server, await admin.new_tenant_key("globex")) as globex:
        their_event = await make_event(globex)
        their_token = (await _token(globex, await _order(globex, their_event, "r0-0"))).token
        unknown = await _scan(door, event_id, their_token)
        assert unknown.result == access_pb2.SCAN_RESULT_UNKNOWN_KEY
        assert not unknown.ticket_id
        assert not unknown.token_event_id
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _scan(door, their_event, token)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    other_event = await make_event(organizer)
    wrong = await _scan(door, other_event, token)
    assert (wrong.result, wrong.token_event_id) == (access_pb2.SCAN_RESULT_WRONG_EVENT, event_id)
    forged = await _scan(door, event_id, token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"))
    assert forged.result == access_pb2.SCAN_RESULT_FORGED


async def test_cancelled_tickets_are_revoked(organizer: Api, door: Api) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-0")
    token = (await _token(organizer, order)).token
    await organizer.orders.CancelOrder(
        sales_pb2.CancelOrderRequest(event_id=event_id, order_id=order.order_id), metadata=organizer.metadata
    )
    refused = await _scan(door, event_id, token)
    assert (refused.result, refused.reason) == (access_pb2.SCAN_RESULT_REVOKED, "cancelled")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _token(organizer, order)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_rotation_and_revocation(organizer: Api, door: Api) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-0", "r0-1")
    old = await _token(organizer, order, 0)
    rotated = await organizer.tickets.RotateTicketKey(
        access_pb2.RotateTicketKeyRequest(), metadata=organizer.metadata
    )
    assert rotated.active_key_id != old.key_id
    assert {k.key_id: k.state for k in rotated.keys}[old.key_id] == access_pb2.TICKET_KEY_STATE_RETIRED
    new = await _token(organizer, order, 1)
    assert new.key_id == rotated.active_key_id
    assert (await _scan(door, event_id, new.token)).result == access_pb2.SCAN_RESULT_ADMITTED
    revoked = await organizer.tickets.RevokeTicketKey(
        access_pb2.RevokeTicketKeyRequest(key_id=old.key_id), metadata=organizer.metadata
    )
    assert {k.key_id: k.state for k in revoked.keys}[old.key_id] == access_pb2.TICKET_KEY_STATE_REVOKED
    refused = await _scan(door, event_id, old.token)
    assert (refused.result, refused.reason) == (access_pb2.SCAN_RESULT_REVOKED, "key_revoked")
    reissued = await _token(organizer, order, 0)
    assert reissued.key_id == rotated.active_key_id
    assert (await _scan(door, event_id, reissued.token)).result == access_pb2.SCAN_RESULT_ADMITTED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.tickets.RevokeTicketKey(
            access_pb2.RevokeTicketKeyRequest(key_id="nope"), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_offline_upload_reports_conflicts(organizer: Api, door: Api) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-0", "r0-1")
    tokens = [(await _token(organizer, order, i)).token for i in range(2)]
    assert (await _scan(door, event_id, tokens[0], "Main")).result == access_pb2.SCAN_RESULT_ADMITTED
    at = Timestamp()
    at.FromMilliseconds(int(time.time() * 1000) - 60_000)
    request = access_pb2.UploadOfflineScansRequest(
        event_id=event_id,
        device_id="phone-7",
        scans=[access_pb2.OfflineScan(token=t, gate="Side", scanned_at=at) for t in tokens],
    )
    first = await door.access.UploadOfflineScans(request, metadata=door.metadata)
    assert [(o.answer.result, o.conflict) for o in first.outcomes] == [
        (access_pb2.SCAN_RESULT_ALREADY_USED, True),
        (access_pb2.SCAN_RESULT_ADMITTED, False),
    ]
    assert first.outcomes[0].answer.previous.gate == "Main"
    assert (first.admitted, first.conflicts) == (1, 1)
    assert await door.access.UploadOfflineScans(request, metadata=door.metadata) == first
    stats = await door.access.GetCheckInStats(
        access_pb2.GetCheckInStatsRequest(event_id=event_id), metadata=door.metadata
    )
    assert (stats.admitted, stats.conflicts) == (2, 1)


async def test_door_rules(organizer: Api, door: Api) -> None:
    event_id = await make_event(organizer)
    order = await _order(organizer, event_id, "r0-0")
    token = (await _token(organizer, order)).token
    later, much_later = Timestamp(), Timestamp()
    later.FromSeconds(int(time.time()) + 3600)
    much_later.FromSeconds(int(time.time()) + 7200)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.access.SetDoorRules(
            access_pb2.SetDoorRulesRequest(
                event_id=event_id,
                rules=access_pb2.DoorRules(admission_from=much_later, admission_until=later),
            ),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    rules = access_pb2.DoorRules(admission_from=later, reentry=access_pb2.REENTRY_ALLOWED)
    assert (
        await organizer.access.SetDoorRules(
            access_pb2.SetDoorRulesRequest(event_id=event_id, rules=rules), metadata=organizer.metadata
        )
        == rules
    )
    early = await _scan(door, event_id, token)
    assert (early.result, early.window_from) == (access_pb2.SCAN_RESULT_OUTSIDE_WINDOW, later)
    await organizer.access.SetDoorRules(
        access_pb2.SetDoorRulesRequest(
            event_id=event_id, rules=access_pb2.DoorRules(reentry=access_pb2.REENTRY_ALLOWED)
        ),
        metadata=organizer.metadata,
    )
    assert (await _scan(door, event_id, token)).result == access_pb2.SCAN_RESULT_ADMITTED
    exit_request = access_pb2.ScanTicketRequest(event_id=event_id, token=token, gate="A", device_id="d1")
    assert (
        await door.access.ExitTicket(exit_request, metadata=door.metadata)
    ).result == access_pb2.SCAN_RESULT_ADMITTED
    assert (await _scan(door, event_id, token)).result == access_pb2.SCAN_RESULT_ADMITTED


async def test_a_bad_scan_request_names_the_field(organizer: Api, door: Api) -> None:
    event_id = await make_event(organizer)
    token = (await _token(organizer, await _order(organizer, event_id, "r0-0"))).token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _scan(door, event_id, token, gate="")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == ["gate"]
    assert (await _scan(door, event_id, token)).result == access_pb2.SCAN_RESULT_ADMITTED


async def test_two_gates_at_once_over_grpc(organizer: Api, door: Api, server: str) -> None:
    event_id = await make_event(organizer)
    token = (await _token(organizer, await _order(organizer, event_id, "r0-0"))).token
    scanners = [Api(server, door.metadata[0][1].removeprefix("Bearer ")) for _ in range(6)]
    try:
        results = await asyncio.gather(
            *(_scan(s, event_id, token, f"G{i}") for i, s in enumerate(scanners * 4))
        )
    finally:
        for s in scanners:
            await s.channel.close()
    assert Counter(r.result for r in results) == {
        access_pb2.SCAN_RESULT_ADMITTED: 1,
        access_pb2.SCAN_RESULT_ALREADY_USED: 23,
    }
