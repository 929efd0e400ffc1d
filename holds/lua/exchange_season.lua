-- Exchange tickets of an order for seats of ANOTHER event of the same season, in one
-- step (the events of a season share one hash slot: holds/keys.py event_tag). KEYS: the
-- source event's after-sale keys (holds/keys.py after_sale_keys: 21 + door + resale),
-- then the target event's 21 keys, then the source's 4 channel keys and the target's 4
-- (_channels.lua: a channel's GA places go back to it in the source, an expired hold's
-- purged in the target). As exchange.lua, all or nothing and in this order:
-- the new seats (free seats named by the caller, or a live hold on the target event with
-- one seat per ticket) are sold to a new order in the target event (emitted first), then
-- the old tickets become 'exchanged' and their places go back in the source event. The
-- new tickets are priced at the target's prices and split by the source order's terms;
-- the price difference and the target order are recorded with the exchange on the
-- source order. Idempotent by exchange key (kept in the source order's exchanges).
-- Result: {OK, source order_json, exchange_json, target order_json, replayed(0|1)}
--         | exchange.lua's refusals | {LAYOUT_MOVED, target version now}
--         | {IDEMPOTENCY_MISMATCH, order}: the target's order key is taken
local order_id = ARGV[1]
local exchange_key = ARGV[2]
local exchange_id = ARGV[3]
local ticket_prefix = ARGV[4]
local hold_id = ARGV[5]               -- '': the seats below, which must be free (target event)
local fingerprint = ARGV[6]
local purge_limit = tonumber(ARGV[7])
local target_event = ARGV[8]
local target_order_id = ARGV[9]
local target_idem = ARGV[10]          -- the target order's idempotency key
local target_version = ARGV[11]       -- the target's seat-map version the ordinals come from
local source_event = ARGV[12]
local n_old = tonumber(ARGV[13])      -- then n_old ticket ids
local OLD0 = 13
local n_new = tonumber(ARGV[OLD0 + n_old + 1])   -- then n_new ordinals, n_new categories
local NEW0 = OLD0 + n_old + 1
local TARGET_BASE = 29

local status = redis.call('HGET', K_META, 'status')
if not status then return {EVENT_NOT_FOUND} end
local order, tickets, old = load_order(order_id)
if not order then return {ORDER_NOT_FOUND} end
for _, x in ipairs(as_array(order.exchanges)) do
  if x.exchange_key == exchange_key then
    if x.fingerprint ~= fingerprint then return {EXCHANGE_KEY_MISMATCH, x.exchange_id} end
    use_event_keys(TARGET_BASE)
    return {OK, cjson.encode(order), cjson.encode(x), redis.call('HGET', K_ORDERS, x.target_order_id or '') or '', 1}
  end
end
if status ~= 'on_sale' and status ~= 'paused' then return {NOT_ON_SALE, status} end
local now = now_ms()
order, tickets, old = xchg_old_tickets(order_id, OLD0, n_old)
if not order then return tickets end

-- the target event: its seats, priced at its prices
use_event_keys(TARGET_BASE)
local target_status = redis.call('HGET', K_META, 'status')
if not target_status then return {EVENT_NOT_FOUND} end
if target_status ~= 'on_sale' and target_status ~= 'paused' then return {NOT_ON_SALE, target_status} end
local layout_now = redis.call('HGET', K_META, 'seat_map_version')
if target_version ~= '' and layout_now and layout_now ~= target_version then return {LAYOUT_MOVED, layout_now} end
local taken_by = redis.call('HGET', K_IDEM, target_idem)
if taken_by then return {IDEMPOTENCY_MISMATCH, taken_by} end
local hold, seats, cats = nil, {}, {}
if hold_id ~= '' then
  hold, seats, cats = xchg_live_hold(hold_id, n_old, now)
  if not hold then return seats end
else
  purge_expired(now, purge_limit)
  local taken = {}
  for j = 1, n_new do
    local o = ARGV[NEW0 + j]
    seats[j], cats[j] = o, ARGV[NEW0 + n_new + j]
    if not seat_is_free(redis.call('HGET', K_SEATS, o), now) then taken[#taken + 1] = o end
  end
  if #taken > 0 then return {SEATS_UNAVAILABLE, taken} end
  local distanced = distance_refusal(sold_value(target_order_id), now)  -- _distance.lua, the target's rule
  if distanced then return distanced end
end
local sale = {collector = order.collector or 'platform', payment_method = order.payment_method or 'online',
  channel = order.channel or 'storefront', terms = order.terms}
local fresh, refused = xchg_new_tickets(seats, cats, old, ticket_prefix, sale)
if not fresh then return refused end

-- apply: the new order in the target event, then the old places back in the source
local x = {order_id = target_order_id, idem_key = target_idem, buyer = order.buyer, buyer_id = order.buyer_id or '',
  sale = sale, source_event = source_event, source_order = order_id, exchange_id = exchange_id,
  hold_id = hold_id}
local _, target_raw = xchg_write_order(x, hold, seats, fresh, now)
use_event_keys(SOURCE_BASE)
channel_back.use(#KEYS - 8)  -- the source's channel keys (_channels.lua)
local record = {exchange_id = exchange_id, exchange_key = exchange_key, fingerprint = fingerprint,
  created_ms = now, hold_id = hold_id, target_event_id = target_event, target_order_id = target_order_id}
local raw = xchg_give_back(order, tickets, old, fresh, record, now)
return {OK, raw, cjson.encode(record), target_raw, 0}
