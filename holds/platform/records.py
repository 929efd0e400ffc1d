"""Platform records: msgspec Structs with their JSON codecs built once."""

from __future__ import annotations

import msgspec


class PlatformRecord(msgspec.Struct, frozen=True):
    """A white-label operator above its organizers."""

    platform_id: str
    name: str
    created_at_ms: int
    terms_version: str = ""  # the terms an organizer must accept to sign up ("" = none to accept)
    public_sales_when_suspended: bool = False  # do a suspended organizer's storefronts keep selling?


class AuditEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who (key, role, its platform), acting as whom (organizer), what (method,
    target ids), how it ended (gRPC status name), when (ms)."""

    at_ms: int
    actor_key_id: str
    actor_role: str
    method: str
    outcome: str
    actor_platform_id: str = ""
    organizer_id: str = ""  # the organizer concerned (acted as, or the target)
    platform_id: str = ""  # the platform concerned
    acting: bool = False  # an operator acting as the organizer (x-seatwise-tenant)
    targets: dict[str, str] = {}


platform_decoder = msgspec.json.Decoder(PlatformRecord)
audit_decoder = msgspec.json.Decoder(AuditEntry)
