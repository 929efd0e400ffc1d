-- A resale buyer holds a listed ticket for a while (the listing's hold; the
-- seat itself stays sold to its order). One live hold per listing: another
-- buyer's is LISTING_HELD; an expired one is replaced (lazy expiry). The lease is
-- the event's hold TTL.
-- Result: {OK, expires_ms, price, order_id} | {EVENT_NOT_FOUND} | {NOT_ON_SALE, status}
--         | {LISTING_NOT_FOUND, id} | {LISTING_HELD, id}
local ticket_id = ARGV[1]
local listing_id = ARGV[2]
local hold_id = ARGV[3]
local buyer = ARGV[4]

local status = redis.call('HGET', K_META, 'status')
if not status then return {EVENT_NOT_FOUND} end
if status ~= 'on_sale' and status ~= 'paused' then return {NOT_ON_SALE, status} end
local order_id = redis.call('HGET', K_LISTINGS, ticket_id)
if not order_id then return {LISTING_NOT_FOUND, ticket_id} end
local order, tickets, by_id = load_order(order_id)
local t = order and tickets[by_id[ticket_id]]
if not t or t.status ~= 'valid' or type(t.listing) ~= 'table' then
  redis.call('HDEL', K_LISTINGS, ticket_id)   -- withdrawn by a script without the index: tidy it
  return {LISTING_NOT_FOUND, ticket_id}
end
if t.listing.listing_id ~= listing_id then return {LISTING_NOT_FOUND, ticket_id} end
local now = now_ms()
local ttl = tonumber(redis.call('HGET', K_META, 'hold_ttl_ms')) or 600000   -- the event's hold lease
if t.listing.hold_id ~= '' and t.listing.hold_expires_ms > now then return {LISTING_HELD, ticket_id} end
t.listing.hold_id = hold_id
t.listing.hold_expires_ms = now + ttl
t.listing.hold_buyer = buyer
save_order(order, tickets, now)
return {OK, now + ttl, t.listing.price, order_id}
