"""Every Redis key seatwise writes, in one place.

All keys of one inventory group (an event) carry the same ``{ev:<event_id>}``
hash tag, and all keys of one tenant's catalogue the same ``{t:<tenant_id>}``
tag, so every script touches exactly one Redis Cluster hash slot. Scripts never
build key names themselves: Python passes every key in KEYS.
"""

from __future__ import annotations

import functools

PREFIX = "sw"

# -- platform-wide (single keys, one slot each) ---------------------------------
TENANTS = f"{PREFIX}:tenants"  # hash tenant_id -> tenant record (JSON)
API_KEYS = f"{PREFIX}:apikeys"  # hash key_id -> key record (JSON, secret hashed)


def tenant_tag(tenant_id: str) -> str:
    return f"{{t:{tenant_id}}}"


def tenant_keys_index(tenant_id: str) -> str:
    """Set of key ids of one tenant."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:apikeys"


# -- a tenant's seat-map catalogue ({t:<tenant>} slot) ---------------------------
def seatmap_index(tenant_id: str) -> str:
    """Sorted set seat_map_id -> creation time (ms): listing, newest first."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:seatmaps"


def seatmap_versions(tenant_id: str, seat_map_id: str) -> str:
    """Hash version -> version record (JSON: state, stats, sha, times), plus field ``latest``."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:seatmap:{seat_map_id}:versions"


def seatmap_content(tenant_id: str, seat_map_id: str) -> str:
    """Hash version -> msgpack-encoded SeatMap (immutable once written)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:seatmap:{seat_map_id}:content"


# -- one event's inventory ({ev:<event_id>} slot) -------------------------------
EVENT_KEY_NAMES = (
    "meta",  # hash: tenant, status, limits, currency, seat-map ref (see holds/events.py)
    "prices",  # hash category -> price in minor units
    "seats",  # hash ordinal -> "h:<hold>" | "s:<order>" | "b" | "n"; free seats are absent
    "holds",  # hash hold_id -> hold record (JSON)
    "holdexp",  # zset hold_id -> expiry ms (Redis clock): lazy expiry and the reaper
    "ga_cap",  # hash GA area -> capacity
    "ga_held",  # hash GA area -> quantity held (including expired holds not yet purged)
    "ga_sold",  # hash GA area -> quantity sold
    "buyers",  # hash buyer id -> seats + GA places currently held (expired holds until purged)
    "orders",  # hash order_id -> order record (JSON)
    "idem",  # hash idempotency key -> order_id
    "orders_z",  # zset order_id -> created ms (listing)
    "tickets",  # hash ticket_id -> order_id
    "seq",  # string: last change sequence number
    "changes",  # stream of seat/GA state changes, entry id 0-<seq>
    "lifecycle",  # stream of order lifecycle entries (created, cancelled, ...)
    "holdgone",  # zset hold_id -> when it ended (ms): tombstones, kept a day
    "holdwhy",  # hash hold_id -> "expired" | "released" | "committed:<order_id>"
    "bought",  # hash buyer id -> seats + GA places bought: valid tickets of orders (max_seats_per_buyer)
    "holdreqs",  # hash request id -> "<hold_id> <fingerprint>": retried holds replay (holds/retries.py)
    "holdreqs_z",  # zset request id -> when its hold ended (ms): forgotten with the hold's tombstone
)

# Events that may have holds to reap (a plain set; the reaper only tidies, and
# removes an event once it has no hold and can take none: server/reaper.py).
ACTIVE_EVENTS = f"{PREFIX}:events:active"


# An event created into a season (holds/seasons.py) has the id "<season_id>~<random>":
# its tag is the season's, ``{ev:<season_id>}~<random>``, so every event of a season
# shares one Cluster slot and a season hold is one script (docs/selling.md). Event ids
# otherwise never contain "~" (holds/events.py new_event_id), so nothing else moves.
SEASON_SEPARATOR = "~"


def event_tag(event_id: str) -> str:
    season_id, sep, rest = event_id.partition(SEASON_SEPARATOR)
    if sep:
        return f"{{ev:{season_id}}}{sep}{rest}"
    return f"{{ev:{event_id}}}"


@functools.lru_cache(maxsize=4096)
def event_keys(event_id: str) -> tuple[str, ...]:
    """Every key of one event, in the order the Lua scripts expect them (KEYS[1..21]).

    Cached: every hold and commit passes all of them.
    """
    tag = event_tag(event_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in EVENT_KEY_NAMES)


_EVENT_KEY_INDEX = {name: i for i, name in enumerate(EVENT_KEY_NAMES)}


def event_key(event_id: str, name: str) -> str:
    """One named key of an event (``name`` from EVENT_KEY_NAMES)."""
    return event_keys(event_id)[_EVENT_KEY_INDEX[name]]


# -- a season's own records ({ev:<season_id>}: the slot its events share) ----------
# Passed to the season scripts before the events' keys (KEYS[1..3], then 21 per event).
SEASON_KEY_NAMES = (
    "season",  # hash: tenant, name, seat_map_id, seat_map_version, currency, created_ms
    "season_holds",  # hash season hold id -> record (JSON, holds/seasons.py SeasonHoldRecord);
    # "req:<request id>" -> "<hold id> <fingerprint>": a retry-safe season hold's request
    # (holds/lua/_season.lua), forgotten with its record
    "season_orders",  # hash season order id -> record (JSON); "key:<idempotency key>" -> its id
    "season_holds_z",  # zset season hold id -> when it ended (ms): forgotten a day later
    "season_events",  # zset event id -> creation ms: the season's events
)


@functools.lru_cache(maxsize=1024)
def season_keys(season_id: str) -> tuple[str, ...]:
    """A season's keys, in the order of SEASON_KEY_NAMES; tagged ``{ev:<season_id>}``, the
    slot of every event of the season (the names never clash with an event's: no event
    key name is one of these)."""
    tag = event_tag(season_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in SEASON_KEY_NAMES)


def tenant_seasons(tenant_id: str) -> str:
    """Sorted set season_id -> creation ms, per tenant (listing)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:seasons"


def event_index(tenant_id: str) -> str:
    """Sorted set event_id -> creation ms, per tenant."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:events"


# -- money given back (holds/refunds.py) ------------------------------------------
# Passed to the refund script after the event's keys, as KEYS[22..23]; same {ev:} tag.
MONEY_KEY_NAMES = (
    "refunds",  # hash refund key -> refund record (JSON, holds.records.Refund)
    "refunds_z",  # zset refund key -> when it was made (ms): statements read a period
)


@functools.lru_cache(maxsize=4096)
def money_keys(event_id: str) -> tuple[str, ...]:
    """The event's refund keys, in the order of MONEY_KEY_NAMES."""
    tag = event_tag(event_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in MONEY_KEY_NAMES)


# -- ticket types and promo codes (holds/offers.py) --------------------------------
# Passed to the selling scripts (commit, box_office) after the event's keys, as
# KEYS[22..24], only when a sale names a type or a promo code; same {ev:} tag.
OFFER_KEY_NAMES = (
    "ttypes",  # hash type_id -> ticket type (JSON, rules.promos.TicketType)
    "promos",  # hash code -> the event's own promo code (JSON, rules.promos.PromoCode)
    "promouses",  # hash code -> orders that used it here; "<code>|<buyer id>" -> that buyer's
)


@functools.lru_cache(maxsize=4096)
def offer_keys(event_id: str) -> tuple[str, ...]:
    """The event's offer keys, in the order of OFFER_KEY_NAMES."""
    tag = event_tag(event_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in OFFER_KEY_NAMES)


# Passed to the scripts that can end a whole order (cancel: KEYS[22..23]; refund: after its
# money keys, KEYS[24..25]) so the order's promo code use is given back (_promo_back.lua).
PROMO_BACK_KEY_NAMES = (
    "promouses",  # the event's promo uses (OFFER_KEY_NAMES' own key)
    "promoback",  # zset order_id -> ms: wholly cancelled orders whose organizer-wide code's use is
    # still to be given back in the organizer's slot (promo_return.lua; holds/offers.py drains it)
)


@functools.lru_cache(maxsize=4096)
def promo_back_keys(event_id: str) -> tuple[str, ...]:
    """The event's keys of promo give-backs, in the order of PROMO_BACK_KEY_NAMES."""
    tag = event_tag(event_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in PROMO_BACK_KEY_NAMES)


def tenant_promos(tenant_id: str) -> str:
    """Hash code -> an organizer-wide promo code (JSON, rules.promos.PromoCode, scope organizer)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:promos"


def tenant_promo_uses(tenant_id: str) -> str:
    """Hash code -> uses claimed of an organizer-wide code; "<code>|<buyer id>" -> that buyer's
    (promo_claim.lua: claimed in this slot before the event's commit applies the code)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:promouses"


def tenant_promo_returns(tenant_id: str) -> str:
    """Zset "<event id>/<order id>" -> ms: organizer-wide codes' uses given back by cancelled
    orders (promo_return.lua: once per order), forgotten after 30 days."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:promoreturns"


# -- channels and allocations (holds/channels.py) -------------------------------
# Passed to hold, box_office, snapshot and the channel scripts as the LAST four
# KEYS (after the event's keys and, for box_office, its optional offer keys);
# holds/lua/_channels.lua names them from the end (KEYS[#KEYS - 3 ..]); same {ev:} tag.
# season_hold gets each chosen event's four after all the events' own keys, in the same
# order (the last four are the last event's) and points the names at each in turn.
CHANNEL_KEY_NAMES = (
    "channels",  # hash channel_id -> channel definition (JSON, holds.channels.Channel)
    "alloc",  # hash ordinal -> channel_id: seats allocated to an open channel (absent: general pool)
    "ga_alloc",  # hash "<area>|<channel_id>" -> places of the area still reserved for the channel
    "ga_resv",  # hash area -> places reserved for all open channels (the sum of ga_alloc's)
)


@functools.lru_cache(maxsize=4096)
def channel_keys(event_id: str) -> tuple[str, ...]:
    """The event's channel keys, in the order of CHANNEL_KEY_NAMES."""
    tag = event_tag(event_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in CHANNEL_KEY_NAMES)


@functools.lru_cache(maxsize=4096)
def channel_script_keys(event_id: str) -> tuple[str, ...]:
    """KEYS of hold, snapshot and the channel scripts: the event's keys, then its channel keys."""
    return (*event_keys(event_id), *channel_keys(event_id))


# -- tickets and the door (holds/door.py) ---------------------------------------
# Passed to the door scripts (scan, checkin_stats) after the event's keys, as
# KEYS[22..25]; same {ev:} tag, so a scan stays in the event's slot.
DOOR_KEY_NAMES = (
    "ticketkeys",  # hash ticket_id -> signing key id recorded when its token was first issued
    "checkins",  # hash ticket_id -> "in|out|<gate>|<device>|<at ms>": a ticket's latest door state
    "scanids",  # hash scan id (offline uploads: device|ticket|scanned_at) -> the answer given
    "doorstats",  # hash counters: admitted, entries, exits, conflicts, g:<gate>, c:<category>, m:<minute>
)


@functools.lru_cache(maxsize=4096)
def door_keys(event_id: str) -> tuple[str, ...]:
    """The event's door keys, in the order of DOOR_KEY_NAMES."""
    tag = event_tag(event_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in DOOR_KEY_NAMES)


# -- after the sale: resale listings and resales (holds/aftersale.py) -----------------
# Passed to the after-sale scripts (transfer, exchange, resale_*) after the event's
# keys and its door keys, as KEYS[26..29]; same {ev:} tag.
RESALE_KEY_NAMES = (
    "listings",  # hash ticket_id -> order_id of listed tickets (the listing itself is on the ticket)
    "resales",  # hash resale_id -> resale record (JSON, holds.records.Resale); key:<resale key> -> id
    "resales_z",  # zset resale_id -> when it was committed (ms)
    "ledgerdue",  # zset resale_id -> ms: resales not yet in their seller's ledger (holds/platform/sellers.py)
)


@functools.lru_cache(maxsize=4096)
def resale_keys(event_id: str) -> tuple[str, ...]:
    """The event's resale keys, in the order of RESALE_KEY_NAMES."""
    tag = event_tag(event_id)
    return tuple(f"{PREFIX}:{tag}:{name}" for name in RESALE_KEY_NAMES)


def after_sale_keys(event_id: str) -> tuple[str, ...]:
    """KEYS of the after-sale scripts: the event's keys, its door keys, its resale keys."""
    return (*event_keys(event_id), *door_keys(event_id), *resale_keys(event_id))


# -- exchanges across events (holds/exchanges.py) -----------------------------------
# An exchange into an event in another slot is a saga; its record lives in the SOURCE
# event's slot, passed to xchg_lock.lua and xchg_finish.lua after the after-sale keys.
def exchange_sagas(event_id: str) -> str:
    """Hash exchange key -> the cross-slot exchange's record (JSON, holds/exchanges.py Saga)."""
    return f"{PREFIX}:{event_tag(event_id)}:xsagas"


# Zset "<source event>\x1f<target event>\x1f<attempt>\x1f<exchange key>" -> when recovery may
# look at that attempt (ms): every attempt of a cross-slot exchange is written here before
# it takes anything and removed once its record is final (one slot of its own, single commands).
EXCHANGES_PENDING = f"{PREFIX}:exchanges:pending"


def ticket_signing_keys(tenant_id: str) -> str:
    """Hash of a tenant's ticket keys: ``ring`` (published KeyRing JSON), ``version``,
    ``seed:<key id>`` (the private seed, encrypted when a secret is configured)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:ticketkeys"


def event_owner() -> str:
    """Hash event_id -> tenant_id: resolves (and authorizes) an event from its id alone."""
    return f"{PREFIX}:event-owner"


# -- data leaving the service: a tenant's feed, consent and audit ({t:<tenant>} slot; holds/feed/)
def tenant_feed(tenant_id: str) -> str:
    """Stream of the tenant's own feed entries (consent.changed, buyer.erased), merged
    into the feed with the events' ``lifecycle`` streams; no personal data (a subject id)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:feed"


def tenant_consent(tenant_id: str) -> str:
    """Hash buyer email (normalized) -> latest marketing decision (JSON: subject, opted_in,
    source, decided_at_ms, recorded_ms)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:consent"


def tenant_consent_ids(tenant_id: str) -> str:
    """Hash buyer id (the storefront's, as given at hold or commit) -> latest marketing
    decision, as :func:`tenant_consent`: a CRM that knows the buyer by id (holds/feed/privacy.py)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:consent-ids"


def tenant_subjects(tenant_id: str) -> str:
    """Hash subject id -> buyer email (``sub_...``) or buyer id (``bid_...``): what the tenant
    feed's entries refer to (erased with the buyer)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:subjects"


def tenant_feed_trimmed(tenant_id: str) -> str:
    """Hash stream name (event id, "" for the tenant's own) -> the newest entry id retention
    trimmed from it: a cursor before it has missed entries (OUT_OF_RANGE)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:feed-trimmed"


# -- platforms and organizers (issue 13, holds/platform/) -------------------------
# Single keys, one slot each, each used by single commands:
PLATFORMS = f"{PREFIX}:platforms"  # hash platform_id -> platform record (JSON)
ROOT_AUDIT = f"{PREFIX}:audit:root"  # stream: audit entries of root-level changes (no organizer, no platform)
DOMAINS = f"{PREFIX}:domains"  # hash custom domain -> "p:<platform_id>" | "t:<tenant_id>" (HSETNX: unique)
PLATFORM_SLUGS = f"{PREFIX}:platform-slugs"  # hash platform branding slug -> platform_id (HSETNX: unique)


def platform_tag(platform_id: str) -> str:
    return f"{{p:{platform_id}}}"


def platform_organizers(platform_id: str) -> str:
    """Sorted set organizer (tenant) id -> creation ms: the platform's organizers."""
    return f"{PREFIX}:{platform_tag(platform_id)}:organizers"


def platform_slugs(platform_id: str) -> str:
    """Hash slug -> organizer id: slugs are unique within a platform (HSETNX)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:slugs"


def platform_keys_index(platform_id: str) -> str:
    """Set of the key ids of the platform's admins."""
    return f"{PREFIX}:{platform_tag(platform_id)}:apikeys"


def platform_plans(platform_id: str) -> str:
    """Hash plan_id -> fee plan (JSON, rules.fees.FeePlan)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:plans"


def platform_hub(platform_id: str) -> str:
    """Sorted set event id -> start ms: the platform's events on sale with a start time,
    every organizer's (the hub's index: holds/platform/hub.py)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:hub"


def platform_hub_organizer(platform_id: str, organizer_id: str) -> str:
    """As :func:`platform_hub`, one organizer's events (the hub's organizer filter)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:hub:org:{organizer_id}"


def platform_hub_built(platform_id: str) -> str:
    """String: set once the hub's index was built from the events written before it existed."""
    return f"{PREFIX}:{platform_tag(platform_id)}:hub:built"


def platform_audit(platform_id: str) -> str:
    """Stream: audit entries of the platform and of every organizer under it."""
    return f"{PREFIX}:{platform_tag(platform_id)}:audit"


def seller_rules(platform_id: str) -> str:
    """String: the platform's seller-score rules (JSON, rules.seller_scores.ScoringRules)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:seller_rules"


def seller_orders(platform_id: str, seller_id: str) -> str:
    """Hash order_id -> the resale seller's order (JSON, rules.seller_scores.SellerOrder)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:seller:{seller_id}:orders"


def seller_orders_by_time(platform_id: str, seller_id: str) -> str:
    """Sorted set order_id -> placed ms: pruning orders older than any window."""
    return f"{PREFIX}:{platform_tag(platform_id)}:seller:{seller_id}:orders_z"


def seller_ratings(platform_id: str, seller_id: str) -> str:
    """Hash platform criterion -> the seller's rating on it (basis points of 1)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:seller:{seller_id}:ratings"


def seller_fee_locks(platform_id: str, seller_id: str) -> str:
    """Hash quarter start ms -> the fee locked for that quarter (JSON, first computed wins)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:seller:{seller_id}:fee_locks"


def platform_branding(platform_id: str) -> str:
    """String: the platform's branding profile (JSON, holds/platform/records.py Branding)."""
    return f"{PREFIX}:{platform_tag(platform_id)}:branding"


def platform_notifications(platform_id: str) -> str:
    """Stream: plan-limit notifications of the platform's organizers."""
    return f"{PREFIX}:{platform_tag(platform_id)}:notifications"


def tenant_branding(tenant_id: str) -> str:
    """String: the organizer's branding profile (JSON)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:branding"


def tenant_notifications(tenant_id: str) -> str:
    """Stream: the organizer's plan-limit notifications."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:notifications"


def tenant_usage(tenant_id: str, period: str) -> str:
    """Hash limit name -> usage in billing period ``period`` (YYYY-MM), and
    ``n:<limit>:<threshold>`` markers of notifications already recorded."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:usage:{period}"


def tenant_active_events(tenant_id: str) -> str:
    """Set of the organizer's events that are not closed (the active-events limit)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:active-events"


def tenant_charges(tenant_id: str) -> str:
    """Hash charge id ("setup", "monthly:YYYY-MM") -> the plan charge (JSON, rules.statements.PlanCharge)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:charges"


def tenant_charges_z(tenant_id: str) -> str:
    """Sorted set charge id -> when it was billed (ms): statements read a period."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:charges_z"


def tenant_billing(tenant_id: str) -> str:
    """Hash billing period (YYYY-MM) -> its state once the period ended: "paid",
    "clear" (nothing owed) or "due" (owes the platform, not marked paid)."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:billing"


def tenant_audit(tenant_id: str) -> str:
    """Stream: audit entries concerning one organizer (in its catalogue's slot): audited
    calls (holds/platform/audit.py) and erasures (erase_subject.lua), one format."""
    return f"{PREFIX}:{tenant_tag(tenant_id)}:audit"


# -- rate limits (server/ratelimit.py) --------------------------------------------
# The prefix of the limits library's counters: it names them itself,
# "<prefix>:LIMITER/<key|buyer>/<event_id>/<key id|buyer id>/<amount>/<multiples>/<granularity>",
# one key each (fixed window), expiring with its window.
RATE_LIMITS_PREFIX = f"{PREFIX}:ratelimit"


# -- a seat-map move in chunks (holds/remap.py: remap_begin.lua, remap_step.lua) --
# Passed after the event's keys, then the event's ``channels`` key (a channel defined
# during a move rolls it back); same {ev:} tag. The new state is written beside the old
# and swapped in by the last step (RENAME), so readers never see half a move.
MOVE_KEY_NAMES = (
    "move",  # hash: the move in progress (from, to, digest, phase, cursor, frozen now, counts)
    "move_map",  # hash old ordinal -> new ordinal (-1: none), filled by the seats phase
    "move_lost",  # hash old ordinal -> state: occupied seats without a target (a refusal names them)
    "seats_next",  # the seats hash of the target version, built beside ``seats``
    "holds_next",  # the holds with their seats rewritten, built beside ``holds``
    "orders_next",  # the orders with their tickets rewritten, built beside ``orders``
)


@functools.lru_cache(maxsize=1024)
def move_script_keys(event_id: str) -> tuple[str, ...]:
    """KEYS of remap_begin and remap_step: the event's keys, its move keys, its ``channels``."""
    tag = event_tag(event_id)
    move = tuple(f"{PREFIX}:{tag}:{name}" for name in MOVE_KEY_NAMES)
    return (*event_keys(event_id), *move, channel_keys(event_id)[0])
