"""Stored records: msgspec Structs with their JSON codecs built once."""

from __future__ import annotations

from typing import Literal

import msgspec

# Roles (docs/platform.md). "organizer" is the organizer admin (its stored name
# since before platforms). Records written before platforms (schema 1) said
# "platform_admin" for the installation's admin: read as "root_admin"
# (holds/platform/migration.py).
RoleName = Literal[
    "root_admin", "platform_admin", "organizer", "box_office", "door", "storefront", "reporting"
]  # fmt: skip

# The schema new records are written with; records without the field are schema 1.
RECORD_SCHEMA = 2


class TenantRecord(msgspec.Struct, frozen=True):
    """An organizer (called a tenant since before platforms): ``platform_id`` ""
    is an organizer directly under the root admin (every tenant written before
    platforms)."""

    tenant_id: str
    name: str
    created_at_ms: int
    platform_id: str = ""
    slug: str = ""  # unique within its platform (sign-up); "" for organizers created directly
    country: str = ""  # ISO 3166-1 alpha-2
    plan_id: str = ""
    terms_version: str = ""  # the platform's terms the organizer accepted at sign-up
    suspended: bool = False
    suspended_reason: str = ""
    schema: int = 1


class ApiKeyRecord(msgspec.Struct, frozen=True):
    """A key names its organizer (``tenant_id``) or, for a platform admin, its
    platform (``platform_id``); a root admin's names neither."""

    key_id: str
    tenant_id: str
    role: RoleName
    label: str
    secret_sha256: str
    created_at_ms: int
    revoked: bool = False
    platform_id: str = ""
    expires_at_ms: int = 0  # 0: never
    schema: int = 1


class SeatMapStats(msgspec.Struct, frozen=True):
    seat_count: int
    section_count: int
    row_count: int
    table_count: int
    ga_area_count: int
    ga_capacity: int
    categories: list[str]


class SeatMapVersion(msgspec.Struct, frozen=True):
    seat_map_id: str
    version: int
    name: str
    state: Literal["draft", "published"]
    stats: SeatMapStats
    content_sha256: str
    created_at_ms: int
    published_at_ms: int = 0


json_encoder = msgspec.json.Encoder()
tenant_decoder = msgspec.json.Decoder(TenantRecord)
api_key_decoder = msgspec.json.Decoder(ApiKeyRecord)
seatmap_version_decoder = msgspec.json.Decoder(SeatMapVersion)


class Buyer(msgspec.Struct, frozen=True):
    name: str = ""
    email: str = ""
    marketing_consent: bool = False
    payment_reference: str = ""
    erased: bool = False  # anonymized by EraseBuyer (holds/feed/privacy.py): name, email, reference empty


class Ticket(msgspec.Struct, frozen=True):
    ticket_id: str
    category: str
    price: int
    status: str  # valid | cancelled
    seat: int | None = None  # ordinal in the event's seat map
    ga_area: str | None = None


class Order(msgspec.Struct, frozen=True):
    order_id: str
    hold_id: str
    idempotency_key: str
    buyer: Buyer
    tickets: list[Ticket]
    total: int
    currency: str
    status: str  # committed | partially_cancelled | cancelled
    created_ms: int
    updated_ms: int
    seq: int = 0
    buyer_id: str = ""  # the hold's buyer id: cancelling gives back that buyer's per-buyer quota


class HoldRecord(msgspec.Struct, frozen=True):
    """A hold as the scripts store it; ``ga`` is area -> quantity."""

    buyer: str
    seats: list[int] | dict[str, int]  # cjson writes an empty list as {}
    cats: list[str] | dict[str, str]
    ga: dict[str, int]
    count: int
    created: int
    expires: int
    reqs: list[str] | dict[str, str] = []  # request ids that made or added to it (holds/retries.py)

    @property
    def seat_ordinals(self) -> list[int]:
        return list(self.seats) if isinstance(self.seats, list) else []

    @property
    def categories(self) -> list[str]:
        return list(self.cats) if isinstance(self.cats, list) else []

    @property
    def request_ids(self) -> list[str]:
        return list(self.reqs) if isinstance(self.reqs, list) else []


order_decoder = msgspec.json.Decoder(Order)
hold_decoder = msgspec.json.Decoder(HoldRecord)
