-- List a ticket for resale, or withdraw its listing. The listing lives on the
-- ticket (its price, seller, time, the revision listed, and the resale buyer's
-- hold once a buyer holds it), so every script that cancels, refunds,
-- transfers, exchanges or admits the ticket withdraws it in the same step; the
-- resale keys' `listings` hash (ticket id -> order id) finds listings to browse.
-- The event's limits are read here, so a change of them applies at once:
-- meta resale ('allowed' or not), resale_floor, resale_cap (minor units, 0: no cap).
-- Result: {OK, order_json} | {EVENT_NOT_FOUND} | {NOT_ON_SALE, status} | {RESALE_NOT_ALLOWED}
--         | {PRICE_OUT_OF_RANGE, floor, cap} | {ALREADY_LISTED, id} | {LISTING_NOT_FOUND, id}
--         | {LISTING_HELD, id} | usable_ticket's replies
local op = ARGV[1]                   -- 'list' | 'withdraw'
local order_id = ARGV[2]
local ticket_id = ARGV[3]
local revision = tonumber(ARGV[4])   -- -1: any (withdraw)
local price = tonumber(ARGV[5])
local seller = ARGV[6]
local listing_id = ARGV[7]

local m = redis.call('HMGET', K_META, 'status', 'resale', 'resale_floor', 'resale_cap')
if not m[1] then return {EVENT_NOT_FOUND} end
local order, tickets, i = usable_ticket(order_id, ticket_id, revision)
if not order then return tickets end
local t = tickets[i]
local now = now_ms()
if op == 'withdraw' then
  if type(t.listing) ~= 'table' then return {LISTING_NOT_FOUND, ticket_id} end
  if t.listing.hold_id ~= '' and t.listing.hold_expires_ms > now then return {LISTING_HELD, ticket_id} end
  withdraw(order_id, t, 'withdrawn')
else
  if m[2] ~= 'allowed' then return {RESALE_NOT_ALLOWED} end
  if m[1] ~= 'on_sale' and m[1] ~= 'paused' then return {NOT_ON_SALE, m[1]} end
  local floor, cap = tonumber(m[3]) or 0, tonumber(m[4]) or 0
  if price < floor or (cap > 0 and price > cap) then return {PRICE_OUT_OF_RANGE, floor, cap} end
  if type(t.listing) == 'table' then return {ALREADY_LISTED, ticket_id} end
  t.listing = {listing_id = listing_id, price = price, seller_id = seller, listed_ms = now,
    revision = t.revision or 0, hold_id = '', hold_expires_ms = 0, hold_buyer = ''}
  redis.call('HSET', K_LISTINGS, ticket_id, order_id)
  lifecycle('ticket.listed', order_id, ticket_id .. '|' .. price .. '|' .. listing_id)
end
return {OK, save_order(order, tickets, now)}
