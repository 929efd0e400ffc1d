-- Step (c) of an exchange into an event in another slot (holds/exchanges.py): in the
-- target event, commit the exchange's hold as the new order, fenced as commit.lua (the
-- hold live on Redis's clock, every seat still held by it, one seat per old ticket, no
-- GA) and idempotent by the commit key derived from the exchange key: a replay answers
-- the order. The new tickets are priced at the target's prices and split by the source
-- order's terms; each names the ticket it replaces. KEYS: the target's 21 keys, then its
-- 4 channel keys (_channels.lua: the places of an expired hold purged here go back to them).
-- Result: {OK, order_json, replayed(0|1)} | {IDEMPOTENCY_MISMATCH, order id} | {EVENT_NOT_FOUND}
--         | {NOT_ON_SALE, 'closed'} | gone_reply | {HOLD_EXPIRED} | {HOLD_LOST, ordinal}
--         | {SEAT_NOT_IN_HOLD, seats held} | {GA_NOT_IN_HOLD, '', 0} | {NO_PRICE, category}
local hold_id = ARGV[1]
local commit_key = ARGV[2]
local order_id = ARGV[3]
local purge_limit = tonumber(ARGV[4])
local x = cjson.decode(ARGV[5])       -- the lock's record 'commit': buyer, sale, source, old tickets

local prior = redis.call('HGET', K_IDEM, commit_key)
if prior then
  local raw = redis.call('HGET', K_ORDERS, prior)
  if cjson.decode(raw).hold_id ~= hold_id then return {IDEMPOTENCY_MISMATCH, prior} end
  return {OK, raw, 1}
end
local status = redis.call('HGET', K_META, 'status')
if not status then return {EVENT_NOT_FOUND} end
if status == 'closed' then return {NOT_ON_SALE, 'closed'} end
local now = now_ms()
local old = as_array(x.old)
local hold, seats, cats = xchg_live_hold(hold_id, #old, now)
if not hold then
  purge_expired(now, purge_limit)
  return seats
end
local fresh, refused = xchg_new_tickets(seats, cats, old, x.ticket_prefix, x.sale)
if not fresh then return refused end
x.order_id, x.idem_key, x.hold_id = order_id, commit_key, hold_id
local _, raw = xchg_write_order(x, hold, seats, fresh, now)
purge_expired(now, purge_limit)
return {OK, raw, 0}
