"""The reply codes of the Lua scripts, each named once in Python.

``holds/lua/_replies.lua``, prepended to every script, names the same codes as
Lua locals (``local SEATS_UNAVAILABLE = 5``); ``tests/holds/test_replies.py``
checks that the two lists agree and that no script returns a bare number where
a name exists. A script answers ``{code, details...}`` (``event_put`` and
``seatmap_publish`` a bare code); each wrapper matches these members, maps
each to one named error and raises on any other reply.
"""

from __future__ import annotations

from enum import IntEnum, unique


@unique  # a code means one thing in every script
class Reply(IntEnum):
    OK = 0
    # inventory scripts (hold, release, extend, commit, cancel, set_status, hold_view)
    EVENT_NOT_FOUND = 1  # event_put too
    NOT_ON_SALE = 2
    HOLD_NOT_FOUND = 3  # also another buyer's hold: ids are not probed
    HOLD_EXPIRED = 4
    SEATS_UNAVAILABLE = 5
    GA_UNKNOWN = 6
    GA_UNAVAILABLE = 7
    LIMIT_EXCEEDED = 8
    HOLD_ID_COLLISION = 9
    SEAT_NOT_IN_HOLD = 10
    GA_NOT_IN_HOLD = 11
    HOLD_LOST = 12
    NO_PRICE = 13
    IDEMPOTENCY_MISMATCH = 14
    ORDER_NOT_FOUND = 15
    TICKET_NOT_IN_ORDER = 16
    TICKET_ALREADY_CANCELLED = 17
    WRONG_STATE = 18
    HOLD_COMMITTED = 19
    HOLD_RELEASED = 20
    # event_put
    EVENT_EXISTS = 21
    STATUS_TRANSITION = 22
    # seatmap_put
    SEATMAP_NOT_FOUND = 23
    SEATMAP_EXISTS = 24
    TOO_MANY_VERSIONS = 25
    # seatmap_publish
    VERSION_NOT_FOUND = 26
    VERSION_CHANGED = 27
    # hold
    REQUEST_MISMATCH = 28  # a request id already used for another request
    # scan (the door): a ticket's check-in answers
    ALREADY_USED = 29  # gate, device, at ms
    TICKET_REVOKED = 30  # why: cancelled | exchanged | transferred | resold | not_issued
    OUTSIDE_WINDOW = 31  # from ms, until ms, at ms
    NOT_CHECKED_IN = 32  # an exit scan of a ticket that is not inside
    REENTRY_NOT_ALLOWED = 33  # an exit scan at an event without re-entry
    # ticket_keys_put: the key ring changed since it was read (retry)
    KEYRING_CHANGED = 34
    # box_office: seats held by buyers' live holds (sold only with the override flag)
    SEATS_HELD = 35
    # refund
    REFUND_EXCEEDS_PAID = 36  # ticket id, refundable left
    REFUND_STALE = 37  # ticket id: its refunded total changed since it was read (retry)
    # claim_unique: another owner holds the name (a custom domain, a slug)
    CLAIM_TAKEN = 60  # holder
    # plan_usage: a plan limit would be exceeded
    LIMIT_REACHED = 61  # limit name, usage, thresholds to notify
    # ticket types and promo codes: at sale (commit, box_office), definitions (offer_put),
    # organizer-wide codes' uses (promo_claim)
    TYPE_UNKNOWN = 40  # type id (disabled, or hidden without its access code, alike)
    TYPE_NOT_OFFERED = 41  # type id, "channel:<channel>" | "category:<category>"
    TYPE_LIMIT = 42  # type id, max per order
    PROMO_UNKNOWN = 43  # code
    PROMO_INACTIVE = 44  # code, disabled | not_yet | expired
    PROMO_MIN_QUANTITY = 45  # code, minimum places
    PROMO_USED_UP = 46  # code, total | buyer, maximum
    SELECTION_INVALID = 47  # seat, ordinal | ga, area | buyer, code
    OFFER_EXISTS = 48  # id
    OFFER_NOT_FOUND = 49  # id
    # after the sale: transfer, exchange, resale (holds/aftersale.py)
    TICKET_NOT_VALID = 50  # ticket id, status (cancelled | exchanged)
    REVISION_MISMATCH = 51  # ticket id, current revision, why it last changed hands
    TICKET_USED = 52  # ticket id: checked in at the door
    RESALE_NOT_ALLOWED = 53
    PRICE_OUT_OF_RANGE = 54  # floor, cap (0: no cap)
    LISTING_NOT_FOUND = 55  # ticket id
    LISTING_HELD = 56  # ticket id: another resale buyer's live hold
    TICKET_REFUNDED = 57  # ticket id
    ALREADY_LISTED = 58  # ticket id
    EXCHANGE_KEY_MISMATCH = 59  # the exchange the key made
    # seasons and bundles (holds/seasons.py): season_hold, season_commit, season_release, season_extend
    SEASON_EVENT = 72  # event position (1-based), that event's reply [code, ...]
    SEASON_SEATS_UNAVAILABLE = 73  # [[position, [ordinal, ...]], ...]: every event's taken seats
    SEASON_HOLD_CHANGED = 74  # the season hold's events are not the ones given (read it again)
    SEASON_NOT_FOUND = 75
    # moving an event to another seat-map version (remap.lua; the fence of _layout.lua)
    LAYOUT_MOVED = 78  # the event's seat-map version now: the caller's ordinals are stale
    SEATS_LOST = 79  # {ordinal, state, ...}, {area, places held or sold, new capacity (-1: none), ...}
    LAYOUT_CHANGED = 80  # the event's seat-map version now: it moved since it was read
    TARGET_TAKEN = 81  # new ordinal, the old ordinal moved there first
    # minimum-distance seating (_distance.lua, in hold, box_office and exchange)
    SEATS_DISTANCED = 68  # asked ordinals within the distance of another group
    DISTANCE_RULE_CHANGED = 69  # the rule now stored: the caller's was stale (reload, retry)
    # channels and allocations (_channels.lua in hold and box_office, channel_*.lua)
    CHANNEL_SEATS = 62  # ordinals allocated to channels the request has no access to
    CHANNEL_DENIED = 63  # channel id: unknown, or the access code is wrong
    CHANNEL_CLOSED = 64  # channel id
    CHANNEL_EXISTS = 65  # channel id
    CHANNEL_NOT_FOUND = 66  # channel id
    ALLOCATION_REFUSED = 67  # "seat", [ordinal, why, ...] | "ga", area, places that can be reserved
    # exchanges across events (exchange_season.lua; the saga's xchg_*.lua, holds/exchanges.py)
    TICKET_EXCHANGING = 90  # ticket id, exchange id: locked by an exchange in flight
    EXCHANGE_ABANDONED = 91  # attempt: recovery gave this attempt up (a retry starts the next)
    EXCHANGE_STATE = 92  # status, record json: the exchange is not in the state the step needs
    # season holds with channels, distancing, request ids and general admission (season_hold.lua)
    SEASON_SEATS_REFUSED = 82  # CHANNEL_SEATS | SEATS_DISTANCED, [[position, [ordinal, ...]], ...]
    # season sales: bundle prices, ticket types and promo codes at a season commit (season_commit)
    BUNDLE_PRICES_CHANGED = 86  # an event's list price moved since the bundle was split: split again, retry
    # a seat-map move in chunks (remap_begin.lua, remap_step.lua; the fence of _layout.lua)
    EVENT_MOVING = 98  # ms to wait before a retry: the event is moving to another seat-map version
    MOVE_STEP = 99  # phase, cursor: the move goes on with this step
    MOVE_LAPSED = 100  # the move's lease ran out (or another move replaced it): rolled back, start again
    MOVE_HAS_CHANNELS = 101  # a channel was defined during the move: rolled back
