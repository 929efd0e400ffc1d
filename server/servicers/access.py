"""seatwise.v1.TicketService and AccessService: thin translation onto holds.door.

Every outcome of a scan that is about the ticket (forged, unknown key, revoked,
wrong event, outside the window, already used) is an *answer*; errors are for
the request (a missing gate: INVALID_ARGUMENT; another tenant's event: NOT_FOUND).
"""

from __future__ import annotations

from seatwise.v1 import access_pb2, access_pb2_grpc

from holds.door import Direction, Door, DoorRules, OfflineScan, ScanOutcome, ticket_of_claim
from holds.errors import InvalidRequest
from rules.tickets import KeyRing, qr_payload, qr_png
from server.auth import DOOR, ORGANIZER, SALES, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context
from server.servicers.convert import millis_of, ts

RESULT = {
    "admitted": access_pb2.SCAN_RESULT_ADMITTED,
    "already_used": access_pb2.SCAN_RESULT_ALREADY_USED,
    "revoked": access_pb2.SCAN_RESULT_REVOKED,
    "wrong_event": access_pb2.SCAN_RESULT_WRONG_EVENT,
    "outside_window": access_pb2.SCAN_RESULT_OUTSIDE_WINDOW,
    "forged": access_pb2.SCAN_RESULT_FORGED,
    "unknown_key": access_pb2.SCAN_RESULT_UNKNOWN_KEY,
    "not_checked_in": access_pb2.SCAN_RESULT_NOT_CHECKED_IN,
}
KEY_STATE = {
    "active": access_pb2.TICKET_KEY_STATE_ACTIVE,
    "retired": access_pb2.TICKET_KEY_STATE_RETIRED,
    "revoked": access_pb2.TICKET_KEY_STATE_REVOKED,
}
_DIRECTION: dict[int, Direction] = {
    access_pb2.SCAN_DIRECTION_UNSPECIFIED: "entry",
    access_pb2.SCAN_DIRECTION_ENTRY: "entry",
    access_pb2.SCAN_DIRECTION_EXIT: "exit",
}


def scan_pb(outcome: ScanOutcome) -> access_pb2.ScanTicketResponse:
    out = access_pb2.ScanTicketResponse(result=RESULT[outcome.result], reason=outcome.reason)
    claims = outcome.claims
    if claims is not None and outcome.result != "wrong_event":
        out.ticket_id = ticket_of_claim(claims.ticket_id)
        out.order_id = claims.order_id
        out.seat_id = outcome.seat_id
        out.ga_area_id = claims.place if isinstance(claims.place, str) else ""
    if outcome.result == "wrong_event" and claims is not None:
        out.token_event_id = claims.event_id
        out.reason = ""
    out.category = outcome.category
    if outcome.at_ms:
        out.scanned_at.CopyFrom(ts(outcome.at_ms))
    if outcome.previous is not None:
        gate, device, at = outcome.previous
        out.previous.gate = gate
        out.previous.device_id = device
        out.previous.at.CopyFrom(ts(at))
    start, until = outcome.window
    if start:
        out.window_from.CopyFrom(ts(start))
    if until:
        out.window_until.CopyFrom(ts(until))
    return out


def rules_pb(rules: DoorRules) -> access_pb2.DoorRules:
    out = access_pb2.DoorRules(
        reentry=access_pb2.REENTRY_ALLOWED if rules.reentry == "allowed" else access_pb2.REENTRY_NONE
    )
    if rules.admission_from_ms:
        out.admission_from.CopyFrom(ts(rules.admission_from_ms))
    if rules.admission_until_ms:
        out.admission_until.CopyFrom(ts(rules.admission_until_ms))
    return out


def keys_pb(ring: KeyRing) -> access_pb2.TicketKeysResponse:
    out = access_pb2.TicketKeysResponse(active_key_id=ring.active.key_id if ring.active else "")
    for key in sorted(ring, key=lambda k: (k.created_at, k.key_id)):
        added = out.keys.add(key_id=key.key_id, public_key=key.public_key, state=KEY_STATE[key.state])
        added.created_at.FromSeconds(key.created_at)
    return out


class TicketServicer(access_pb2_grpc.TicketServiceServicer):
    def __init__(self, door: Door) -> None:
        self._door = door

    async def GetTicketToken(
        self, request: access_pb2.GetTicketTokenRequest, context: Context
    ) -> access_pb2.GetTicketTokenResponse:
        _, token, key_id = await self._door.ticket_token(
            current_principal().require_tenant(), request.event_id, request.order_id, request.ticket_id
        )
        return access_pb2.GetTicketTokenResponse(
            token=token,
            qr_payload=qr_payload(token),
            qr_png=qr_png(token) if request.qr_png else b"",
            key_id=key_id,
        )

    async def GetTicketKeys(
        self, request: access_pb2.GetTicketKeysRequest, context: Context
    ) -> access_pb2.TicketKeysResponse:
        return keys_pb(await self._door.ticket_keys.ring(current_principal().require_tenant()))

    async def RotateTicketKey(
        self, request: access_pb2.RotateTicketKeyRequest, context: Context
    ) -> access_pb2.TicketKeysResponse:
        return keys_pb(await self._door.ticket_keys.rotate(current_principal().require_tenant()))

    async def RevokeTicketKey(
        self, request: access_pb2.RevokeTicketKeyRequest, context: Context
    ) -> access_pb2.TicketKeysResponse:
        tenant = current_principal().require_tenant()
        return keys_pb(await self._door.ticket_keys.revoke(tenant, request.key_id))


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(self, door: Door) -> None:
        self._door = door

    async def _scan(self, request: access_pb2.ScanTicketRequest, direction: Direction) -> ScanOutcome:
        _, outcome = await self._door.scan(
            current_principal().require_tenant(),
            request.event_id,
            request.token,
            request.gate,
            request.device_id,
            direction=direction,
        )
        return outcome

    async def ScanTicket(
        self, request: access_pb2.ScanTicketRequest, context: Context
    ) -> access_pb2.ScanTicketResponse:
        return scan_pb(await self._scan(request, "entry"))

    async def ExitTicket(
        self, request: access_pb2.ScanTicketRequest, context: Context
    ) -> access_pb2.ScanTicketResponse:
        return scan_pb(await self._scan(request, "exit"))

    async def UploadOfflineScans(
        self, request: access_pb2.UploadOfflineScansRequest, context: Context
    ) -> access_pb2.UploadOfflineScansResponse:
        scans = []
        for i, s in enumerate(request.scans):
            direction = _DIRECTION.get(s.direction)
            if direction is None:
                raise InvalidRequest(f"scans[{i}].direction", "unknown direction")
            scans.append(
                OfflineScan(
                    s.token,
                    s.gate,
                    millis_of(s.scanned_at, f"scans[{i}].scanned_at", since_1970=True),
                    direction,
                )
            )
        _, outcomes = await self._door.upload_offline(
            current_principal().require_tenant(), request.event_id, request.device_id, scans
        )
        out = access_pb2.UploadOfflineScansResponse()
        for i, outcome in enumerate(outcomes):
            conflict = outcome.result != "admitted"
            out.outcomes.add(index=i, answer=scan_pb(outcome), conflict=conflict)
            out.admitted += not conflict
            out.conflicts += conflict
        return out

    async def GetCheckInStats(
        self, request: access_pb2.GetCheckInStatsRequest, context: Context
    ) -> access_pb2.GetCheckInStatsResponse:
        stats = await self._door.stats(current_principal().require_tenant(), request.event_id)
        out = access_pb2.GetCheckInStatsResponse(
            admitted=stats.admitted,
            remaining=stats.remaining,
            inside=stats.inside,
            entries=stats.entries,
            exits=stats.exits,
            conflicts=stats.conflicts,
            rules=rules_pb(stats.rules),
        )
        for name, count in sorted(stats.by_gate.items()):
            out.by_gate.add(name=name, count=count)
        for name, count in sorted(stats.by_category.items()):
            out.by_category.add(name=name, count=count)
        for minute, count in stats.by_minute.items():
            out.over_time.add(minute=ts(minute), entries=count)
        return out

    async def SetDoorRules(
        self, request: access_pb2.SetDoorRulesRequest, context: Context
    ) -> access_pb2.DoorRules:
        r = request.rules
        if r.reentry not in (
            access_pb2.REENTRY_UNSPECIFIED,
            access_pb2.REENTRY_NONE,
            access_pb2.REENTRY_ALLOWED,
        ):
            raise InvalidRequest("rules.reentry", "unknown re-entry rule")
        rules = DoorRules(
            millis_of(r.admission_from, "rules.admission_from", since_1970=True)
            if r.HasField("admission_from")
            else 0,
            millis_of(r.admission_until, "rules.admission_until", since_1970=True)
            if r.HasField("admission_until")
            else 0,
            "allowed" if r.reentry == access_pb2.REENTRY_ALLOWED else "none",
        )
        return rules_pb(
            await self._door.set_rules(current_principal().require_tenant(), request.event_id, rules)
        )


TICKET_SERVICE = ServiceDeclaration(
    descriptor=access_pb2.DESCRIPTOR.services_by_name["TicketService"],
    add_to_server=access_pb2_grpc.add_TicketServiceServicer_to_server,
    factory=lambda stores: TicketServicer(stores.door),
    methods={
        "GetTicketToken": MethodRule(SALES),  # storefronts deliver tickets
        "GetTicketKeys": MethodRule(SALES | DOOR),  # public: scanners verify offline
        "RotateTicketKey": MethodRule(ORGANIZER),
        "RevokeTicketKey": MethodRule(ORGANIZER),
    },
)
ACCESS_SERVICE = ServiceDeclaration(
    descriptor=access_pb2.DESCRIPTOR.services_by_name["AccessService"],
    add_to_server=access_pb2_grpc.add_AccessServiceServicer_to_server,
    factory=lambda stores: AccessServicer(stores.door),
    methods={
        "ScanTicket": MethodRule(DOOR),
        "ExitTicket": MethodRule(DOOR),
        "UploadOfflineScans": MethodRule(DOOR),
        "GetCheckInStats": MethodRule(DOOR),
        "SetDoorRules": MethodRule(ORGANIZER),
    },
)
