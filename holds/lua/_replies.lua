-- Reply codes of every script, each named once (prepended to every script by
-- holds/scripts.py). holds/replies.py names the same codes in Python, and
-- tests/holds/test_replies.py checks that the two lists agree.
local OK = 0
-- inventory scripts: {code, details...}
local EVENT_NOT_FOUND = 1           -- (event_put: bare)
local NOT_ON_SALE = 2               -- status
local HOLD_NOT_FOUND = 3            -- also another buyer's hold
local HOLD_EXPIRED = 4
local SEATS_UNAVAILABLE = 5         -- {ordinal, ...}
local GA_UNKNOWN = 6                -- area, 0
local GA_UNAVAILABLE = 7            -- area, places left
local LIMIT_EXCEEDED = 8            -- 'hold' | 'buyer', maximum
local HOLD_ID_COLLISION = 9
local SEAT_NOT_IN_HOLD = 10         -- ordinal
local GA_NOT_IN_HOLD = 11           -- area, places held
local HOLD_LOST = 12                -- ordinal no longer held by the hold
local NO_PRICE = 13                 -- category
local IDEMPOTENCY_MISMATCH = 14     -- the key's order
local ORDER_NOT_FOUND = 15
local TICKET_NOT_IN_ORDER = 16      -- ticket id
local TICKET_ALREADY_CANCELLED = 17 -- ticket id ('' : every ticket)
local WRONG_STATE = 18              -- {ordinal, state, ...}
local HOLD_COMMITTED = 19           -- order id
local HOLD_RELEASED = 20
-- event_put: bare codes, except {STATUS_TRANSITION, from, to}
local EVENT_EXISTS = 21
local STATUS_TRANSITION = 22
-- seatmap_put: {code, version or latest}
local SEATMAP_NOT_FOUND = 23
local SEATMAP_EXISTS = 24
local TOO_MANY_VERSIONS = 25
-- seatmap_publish: bare codes
local VERSION_NOT_FOUND = 26
local VERSION_CHANGED = 27
-- hold: a request id already used for another request
local REQUEST_MISMATCH = 28
-- scan: {code, details...}
local ALREADY_USED = 29             -- gate, device, at ms
local TICKET_REVOKED = 30           -- why: 'cancelled' | 'exchanged' | 'transferred' | 'resold' | 'not_issued'
local OUTSIDE_WINDOW = 31           -- from ms, until ms, at ms
local NOT_CHECKED_IN = 32           -- exit of a ticket that is not inside
local REENTRY_NOT_ALLOWED = 33      -- exit at an event without re-entry
-- ticket_keys_put: bare code
local KEYRING_CHANGED = 34
-- box_office: seats held by buyers' live holds (sell them only with override)
local SEATS_HELD = 35                -- {ordinal, ...}
-- refund: {code, details...}
local REFUND_EXCEEDS_PAID = 36       -- ticket id, refundable left
local REFUND_STALE = 37              -- ticket id: its refunded total changed since it was read (retry)
-- claim_unique: {CLAIM_TAKEN, holder}
local CLAIM_TAKEN = 60
-- plan_usage: {LIMIT_REACHED, limit name, usage, notify...}
local LIMIT_REACHED = 61
-- ticket types and promo codes at sale (_offers.lua), their definitions (offer_put.lua)
-- and organizer-wide codes' uses (promo_claim.lua): {code, details...}
local TYPE_UNKNOWN = 40              -- type id (also disabled, or hidden without its access code)
local TYPE_NOT_OFFERED = 41          -- type id, 'channel:<channel>' | 'category:<category>'
local TYPE_LIMIT = 42                -- type id, max per order
local PROMO_UNKNOWN = 43             -- code
local PROMO_INACTIVE = 44            -- code, 'disabled' | 'not_yet' | 'expired'
local PROMO_MIN_QUANTITY = 45        -- code, minimum places
local PROMO_USED_UP = 46             -- code, 'total' | 'buyer', maximum
local SELECTION_INVALID = 47         -- 'seat', ordinal | 'ga', area | 'buyer', code
local OFFER_EXISTS = 48              -- id
local OFFER_NOT_FOUND = 49           -- id
-- after the sale (transfer, exchange, resale): {code, details...}
local TICKET_NOT_VALID = 50          -- ticket id, status (cancelled | exchanged)
local REVISION_MISMATCH = 51         -- ticket id, current revision, why it last changed hands
local TICKET_USED = 52               -- ticket id: checked in at the door
local RESALE_NOT_ALLOWED = 53        -- the event does not allow resale
local PRICE_OUT_OF_RANGE = 54        -- floor, cap (0: no cap)
local LISTING_NOT_FOUND = 55         -- ticket id
local LISTING_HELD = 56              -- ticket id: another resale buyer's live hold
local TICKET_REFUNDED = 57           -- ticket id: money was given back on it
local ALREADY_LISTED = 58            -- ticket id
local EXCHANGE_KEY_MISMATCH = 59     -- exchange id the key made
-- seasons and bundles (season_hold, season_commit, season_release, season_extend): {code, details...}
local SEASON_EVENT = 72              -- event position (1-based), that event's reply {code, ...}
local SEASON_SEATS_UNAVAILABLE = 73  -- {{position, {ordinal, ...}}, ...}: every event's taken seats
local SEASON_HOLD_CHANGED = 74       -- the season hold's events are not the ones given (read it again)
local SEASON_NOT_FOUND = 75
-- moving an event to another seat-map version (remap.lua; the fence of _layout.lua): {code, details...}
local LAYOUT_MOVED = 78              -- the event's seat-map version now (the caller's ordinals are stale)
local SEATS_LOST = 79                -- {ordinal, state, ...}, {area, places held or sold, new capacity (-1 none), ...}
local LAYOUT_CHANGED = 80            -- the event's seat-map version now (it moved since it was read)
local TARGET_TAKEN = 81              -- new ordinal, the old ordinal moved there first
-- minimum-distance seating (_distance.lua, in hold, box_office and exchange)
local SEATS_DISTANCED = 68           -- {ordinal, ...}: asked seats within the distance of another group
local DISTANCE_RULE_CHANGED = 69     -- the rule now stored (the caller's was stale: reload, retry)
-- channels and allocations (_channels.lua in hold and box_office, channel_*.lua): {code, details...}
local CHANNEL_SEATS = 62             -- {ordinal...}: seats allocated to channels the request has no access to
local CHANNEL_DENIED = 63            -- channel id: unknown, or the access code is wrong
local CHANNEL_CLOSED = 64            -- channel id
local CHANNEL_EXISTS = 65            -- channel id
local CHANNEL_NOT_FOUND = 66         -- channel id
local ALLOCATION_REFUSED = 67        -- 'seat', {ordinal, why, ...} | 'ga', area, places that can be reserved
-- exchanges across events (exchange_season.lua; the saga's xchg_*.lua, holds/exchanges.py): {code, details...}
local TICKET_EXCHANGING = 90         -- ticket id, exchange id: locked by an exchange in flight
local EXCHANGE_ABANDONED = 91        -- attempt: recovery gave this attempt up (a retry starts the next)
local EXCHANGE_STATE = 92            -- status, record json: the exchange is not in the state the step needs
-- season holds with channels, distancing, request ids and general admission (season_hold.lua)
local SEASON_SEATS_REFUSED = 82      -- CHANNEL_SEATS | SEATS_DISTANCED, {{position, {ordinal, ...}}, ...}
-- season sales: bundle prices, ticket types and promo codes at a season commit (season_commit, _season_sale.lua)
local BUNDLE_PRICES_CHANGED = 86     -- an event's list price moved since the bundle was split (split again, retry)
-- a seat-map move in chunks (remap_begin.lua, remap_step.lua; the fence of _layout.lua): {code, details...}
local EVENT_MOVING = 98              -- ms to wait before a retry: the event is moving to another seat-map version
local MOVE_STEP = 99                 -- phase, cursor: the move goes on with this step
local MOVE_LAPSED = 100              -- the move's lease ran out (or another move replaced it): rolled back, start again
local MOVE_HAS_CHANNELS = 101        -- a channel was defined during the move: rolled back
