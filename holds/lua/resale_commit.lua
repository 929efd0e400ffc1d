-- Commit a resale buyer's hold on a listing: ownership moves to the buyer (the
-- ticket's next revision; the seller's token answers "revoked: resold"), the
-- listing ends, and a resale record keeps the price, the fees (computed in
-- Python with rules/fees.py on the listing's price), the seller's payout and
-- the seller's times (listed, accepted, delivered) for seller metrics.
-- Fenced by the hold (live, on this listing) and idempotent by resale key.
-- Result: {OK, resale_json, order_json, replayed(0|1)} | {LISTING_NOT_FOUND, id}
--         | {HOLD_NOT_FOUND} | {HOLD_EXPIRED} | {IDEMPOTENCY_MISMATCH, resale id}
--         | {REFUND_STALE, id} (the listing's price is not the one the fees were computed on)
--         | usable_ticket's replies
local ticket_id = ARGV[1]
local listing_id = ARGV[2]
local hold_id = ARGV[3]
local resale_key = ARGV[4]
local resale_id = ARGV[5]
local buyer = cjson.decode(ARGV[6])   -- holds.records.Buyer
local price = tonumber(ARGV[7])
local parts = {tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])}
local K_LEDGER_DUE = KEYS[29]          -- resales still to enter their seller's ledger (holds/platform/sellers.py)

local prior = redis.call('HGET', K_RESALES, 'key:' .. resale_key)
if prior then
  local raw = redis.call('HGET', K_RESALES, prior)
  local record = cjson.decode(raw)
  if record.hold_id ~= hold_id then return {IDEMPOTENCY_MISMATCH, prior} end
  return {OK, raw, redis.call('HGET', K_ORDERS, record.order_id) or '', 1}
end
local order_id = redis.call('HGET', K_LISTINGS, ticket_id)
if not order_id then return {LISTING_NOT_FOUND, ticket_id} end
local order, tickets, i = usable_ticket(order_id, ticket_id, -1)
if not order then return tickets end
local t = tickets[i]
local listing = t.listing
if type(listing) ~= 'table' or listing.listing_id ~= listing_id then return {LISTING_NOT_FOUND, ticket_id} end
if listing.hold_id ~= hold_id then return {HOLD_NOT_FOUND} end
local now = now_ms()
if listing.hold_expires_ms <= now then return {HOLD_EXPIRED} end
if listing.price ~= price then return {REFUND_STALE, ticket_id} end
if (t.revision or 0) ~= listing.revision then return {REVISION_MISMATCH, ticket_id, t.revision or 0, ''} end

local seller_holder = t.holder or order.buyer
t.listing = nil
redis.call('HDEL', K_LISTINGS, ticket_id)
reissue(t, buyer, 'resold', now)
t.resale_id = resale_id
local fees = parts[1] + parts[2] + parts[3] + parts[4]
local record = {resale_id = resale_id, resale_key = resale_key, order_id = order_id, ticket_id = ticket_id,
  listing_id = listing_id, hold_id = hold_id, seller_id = listing.seller_id, seller = seller_holder,
  buyer = buyer, buyer_id = listing.hold_buyer, price = price, currency = order.currency,
  ticket_fee_rate = parts[1], ticket_fee_fixed = parts[2], processing_fee_rate = parts[3],
  processing_fee_fixed = parts[4], seller_payout = price - fees, revision = t.revision,
  listed_ms = listing.listed_ms, accepted_ms = now, delivered_ms = now}
local raw = cjson.encode(record)
redis.call('HSET', K_RESALES, resale_id, raw)
redis.call('HSET', K_RESALES, 'key:' .. resale_key, resale_id)
redis.call('ZADD', K_RESALES_Z, now, resale_id)
redis.call('ZADD', K_LEDGER_DUE, now, resale_id)
local order_raw = save_order(order, tickets, now)
lifecycle('ticket.resold', order_id, ticket_id .. '|' .. resale_id .. '|' .. t.revision)
return {OK, raw, order_raw, 0}
