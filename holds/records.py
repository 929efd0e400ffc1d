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
    suspended_for_billing: bool = False  # suspended automatically for an unpaid statement


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


class SaleTerms(msgspec.Struct, frozen=True):
    """The organizer's fee terms at the moment of sale (its plan's, in the event's
    currency), recorded with the order: a later change of plan never rewrites it."""

    plan_id: str
    ticket_fee_bps: int = 0
    processing_fee_bps: int = 0
    ticket_fee_fixed: int = 0
    processing_fee_fixed: int = 0
    refund_policy: str = "full"  # full | keep_fixed (rules/fees.py)


class Sale(msgspec.Struct, frozen=True, omit_defaults=True):
    """How an order is sold, passed to the selling script and recorded with the order."""

    collector: str  # platform | organizer: whose payment account took the money
    payment_method: str  # online, cash, card_terminal, ...
    channel: str = "storefront"  # storefront | box_office (always written: no default is omitted)
    terms: SaleTerms | None = None  # None: the organizer has no plan (omitted, never JSON null)

    def __post_init__(self) -> None:
        if self.collector not in ("platform", "organizer"):
            raise ValueError(f"unknown collector {self.collector!r}")


STOREFRONT_SALE = Sale(collector="platform", payment_method="online")


class Listing(msgspec.Struct, frozen=True):
    """A ticket offered for resale (resale_list.lua), kept on the ticket; the hold of
    the resale buyer paying for it, if any (``hold_expires_ms`` on Redis's clock)."""

    listing_id: str
    price: int
    seller_id: str
    listed_ms: int
    revision: int  # the ticket's revision when listed
    hold_id: str = ""
    hold_expires_ms: int = 0
    hold_buyer: str = ""


class Ticket(msgspec.Struct, frozen=True):
    ticket_id: str
    category: str
    price: int
    status: str  # valid | cancelled | exchanged
    seat: int | None = None  # ordinal in the event's seat map
    ga_area: str | None = None
    ga_channel: str = ""  # a GA place taken from this channel's reservation: it goes back there (channels)
    # the split at sale (rules.fees.split_ticket, computed by the script): 0 without a plan
    ticket_fee_rate: int = 0
    ticket_fee_fixed: int = 0
    processing_fee_rate: int = 0
    processing_fee_fixed: int = 0
    refunded: int = 0  # minor units refunded so far (never more than price)
    # ticket types and promo codes (docs/selling.md): "" the event's plain category price;
    # with a promo code, list_price is the price before its discount and price what was paid
    ticket_type: str = ""
    list_price: int = 0
    discount: int = 0
    # after the sale (holds/aftersale.py): each change of hands is a new revision, named in
    # the token; ``revoked[i]`` is why revision i's token stopped working (transferred | resold)
    revision: int = 0
    revoked: list[str] | dict[str, str] = []  # cjson writes an empty list as {}
    holder: Buyer | None = None  # None: the order's buyer
    reissued_ms: int = 0
    listing: Listing | None = None
    resale_id: str = ""  # the resale that made the current holder's revision
    exchanged_for: str = ""  # an exchanged ticket: the ticket that replaced it
    exchanged_from: str = ""  # a ticket from an exchange: the one it replaced
    # a cross-event exchange in flight (holds/exchanges.py) locks the ticket: its id, "" none
    exchanging: str = ""
    # the seat's ordinals before the event moved to other seat-map versions, oldest first
    # (holds/lua/remap.lua): tokens issued before a move name one of them, and still scan
    seat_was: list[int] | dict[str, str] = []  # cjson writes an empty list as {}

    @property
    def revocations(self) -> list[str]:
        return list(self.revoked) if isinstance(self.revoked, list) else []

    @property
    def platform_fee(self) -> int:
        return (
            self.ticket_fee_rate
            + self.ticket_fee_fixed
            + self.processing_fee_rate
            + self.processing_fee_fixed
        )

    @property
    def organizer_share(self) -> int:
        return self.price - self.platform_fee


class Exchange(msgspec.Struct, frozen=True):
    """Tickets of an order swapped for other seats (exchange.lua): ``difference`` is
    what the buyer owes (negative: is owed), ``fee_difference`` the platform's part of it."""

    exchange_id: str
    exchange_key: str
    created_ms: int
    from_tickets: list[str] | dict[str, str]
    to_tickets: list[str] | dict[str, str]
    difference: int
    fee_difference: int
    fingerprint: str = ""
    hold_id: str = ""
    seq: int = 0
    # an exchange into another event (holds/exchanges.py): the order there with the new tickets
    target_event_id: str = ""
    target_order_id: str = ""


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
    # who took the buyer's money and how (rules/fees.py Collector; rules/statements.py PaymentMethod);
    # orders written before these fields read as the platform's storefront checkout
    collector: str = "platform"
    payment_method: str = "online"
    terms: SaleTerms | None = None  # the organizer's plan at sale; None: no plan, no fees
    channel: str = "storefront"  # storefront | box_office
    fingerprint: str = ""  # box office: of the request, so a reused idempotency key is told apart
    overridden_holds: str = ""  # box office: holds whose seats were sold over them (comma-separated)
    promo_code: str = ""  # the promo code the order used ("" none); discount: its total off the tickets
    discount: int = 0
    # where the code counts its use: "" the event, "organizer" the organizer's slot, "season"
    # the organizer's slot once for the whole season order; for ``promo_buyer`` ("" none);
    # ``promo_returned``: the whole order was cancelled and its use given back (_promo_back.lua;
    # an organizer-wide code's in its slot by holds/offers.py, a season order's once all are)
    promo_scope: str = ""
    promo_buyer: str = ""
    promo_returned: bool = False
    exchanges: list[Exchange] | dict[str, str] = []  # exchange.lua; cjson writes an empty list as {}
    # an order made by an exchange from another event (holds/exchanges.py): where the tickets came from
    exchanged_from_event: str = ""
    exchanged_from_order: str = ""
    exchange_id: str = ""
    season_order_id: str = ""  # one of a season order's (season_commit.lua; holds/seasons.py)

    @property
    def exchange_list(self) -> list[Exchange]:
        return list(self.exchanges) if isinstance(self.exchanges, list) else []


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
    # "<area>|<channel>" -> places of ``ga`` taken from that channel's reservation (_channels.lua)
    chga: dict[str, int] = {}

    @property
    def seat_ordinals(self) -> list[int]:
        return list(self.seats) if isinstance(self.seats, list) else []

    @property
    def categories(self) -> list[str]:
        return list(self.cats) if isinstance(self.cats, list) else []

    @property
    def request_ids(self) -> list[str]:
        return list(self.reqs) if isinstance(self.reqs, list) else []


class RefundLine(msgspec.Struct, frozen=True):
    """One ticket's part of a refund: the amount paid back and the fees given back
    (rules.fees.reverse of the ticket's recorded split, computed in Python)."""

    ticket_id: str
    amount: int
    ticket_fee_rate: int = 0
    ticket_fee_fixed: int = 0
    processing_fee_rate: int = 0
    processing_fee_fixed: int = 0
    refunded_before: int = 0  # the ticket's refunded total this line was computed on


class Refund(msgspec.Struct, frozen=True):
    """A refund of (part of) an order, idempotent by ``refund_key``; the order's
    currency, collector and payment method are copied so a statement reads it alone."""

    refund_id: str
    refund_key: str
    order_id: str
    lines: list[RefundLine]
    created_ms: int
    currency: str
    collector: str = "platform"
    payment_method: str = "online"
    refund_policy: str = "full"
    reason: str = ""
    release_to: str = ""  # "": seats stay sold (partial amount); free | not_for_sale: tickets cancelled
    fingerprint: str = ""  # of the request: a reused refund key is told apart

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


class Resale(msgspec.Struct, frozen=True):
    """A listed ticket bought by a resale buyer (resale_commit.lua): the price, the
    platform's fees on it (rules.fees.split_ticket under the organizer's plan), the
    seller's payout, and the seller's times for seller metrics."""

    resale_id: str
    resale_key: str
    order_id: str
    ticket_id: str
    listing_id: str
    hold_id: str
    seller_id: str
    seller: Buyer
    buyer: Buyer
    price: int
    currency: str
    seller_payout: int
    revision: int  # the ticket's revision the buyer holds
    listed_ms: int
    accepted_ms: int  # the buyer's commit
    delivered_ms: int  # the buyer's token issued (at the commit: the revision is the buyer's at once)
    buyer_id: str = ""
    ticket_fee_rate: int = 0
    ticket_fee_fixed: int = 0
    processing_fee_rate: int = 0
    processing_fee_fixed: int = 0


order_decoder = msgspec.json.Decoder(Order)
resale_decoder = msgspec.json.Decoder(Resale)
exchange_decoder = msgspec.json.Decoder(Exchange)
refund_decoder = msgspec.json.Decoder(Refund)
hold_decoder = msgspec.json.Decoder(HoldRecord)
