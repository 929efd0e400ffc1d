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
    billing_grace_days: int = 0  # days after a period ends before an unpaid organizer is suspended (0: never)


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


class Branding(msgspec.Struct, frozen=True, omit_defaults=True):
    """What storefronts render for a platform or an organizer (holds/platform/branding.py)."""

    display_name: str = ""
    slug: str = ""
    custom_domain: str = ""
    logo_url: str = ""
    favicon_url: str = ""
    primary_color: str = ""
    accent_color: str = ""
    support_email: str = ""
    sender_email: str = ""
    header_text: str = ""
    footer_text: str = ""
    updated_at_ms: int = 0


class Notification(msgspec.Struct, frozen=True, omit_defaults=True):
    """A plan limit crossed 80 % or reached 100 % in a billing period."""

    at_ms: int
    organizer_id: str
    kind: str  # limit_80 | limit_100
    limit: str
    limit_value: int
    usage: int
    period: str  # YYYY-MM
    platform_id: str = ""


platform_decoder = msgspec.json.Decoder(PlatformRecord)
branding_decoder = msgspec.json.Decoder(Branding)
notification_decoder = msgspec.json.Decoder(Notification)
audit_decoder = msgspec.json.Decoder(AuditEntry)
