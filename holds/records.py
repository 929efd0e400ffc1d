"""Stored records: msgspec Structs with their JSON codecs built once."""

from __future__ import annotations

from typing import Literal

import msgspec

RoleName = Literal[
    "platform_admin", "organizer", "storefront", "door"
]  # door: a door scanner (holds/door.py)


class TenantRecord(msgspec.Struct, frozen=True):
    tenant_id: str
    name: str
    created_at_ms: int


class ApiKeyRecord(msgspec.Struct, frozen=True):
    key_id: str
    tenant_id: str
    role: RoleName
    label: str
    secret_sha256: str
    created_at_ms: int
    revoked: bool = False


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
