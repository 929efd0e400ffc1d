-- Exchange tickets of an order for other seats of the same event, one for one,
-- in one step: the new seats are sold to the order (emitted first) and then the
-- old places are released, so no other buyer can take either in between; every
-- check passes before anything is written (all or nothing). The new seats are
-- free seats named by the caller, or the seats of a live hold the caller made
-- (fenced by the hold, as a commit: on a sold-out event the box office holds the
-- seat it wants first, then exchanges onto it). New tickets are priced at the
-- event's current prices and split by the order's recorded terms; the old ones
-- become 'exchanged' (their tokens answer "revoked: exchanged"). The price
-- difference is added to the order's total and recorded with the exchange.
-- Idempotent by exchange key (kept in the order's exchanges). A key an exchange into another
-- event holds in the event's xsagas (holds/exchanges.py: in flight, or done) is another request's.
-- KEYS: the after-sale keys (holds/keys.py after_sale_keys), the event's xsagas, its channel keys.
-- Result: {OK, order_json, exchange_json, replayed(0|1)} | {EVENT_NOT_FOUND} | {NOT_ON_SALE, status}
--         | {ORDER_NOT_FOUND} | {TICKET_NOT_IN_ORDER, id} | {TICKET_NOT_VALID, id, status}
--         | {TICKET_USED, id} | {TICKET_REFUNDED, id} | {SEATS_UNAVAILABLE, {ordinal...}}
--         | {NO_PRICE, category} | gone_reply | {HOLD_EXPIRED} | {HOLD_LOST, ordinal}
--         | {EXCHANGE_KEY_MISMATCH, exchange_id} | {SEAT_NOT_IN_HOLD, seats held} | {GA_NOT_IN_HOLD, '', 0}
--           (a hold that is not exactly one seat per ticket exchanged)
local order_id = ARGV[1]
local exchange_key = ARGV[2]
local exchange_id = ARGV[3]
local ticket_prefix = ARGV[4]
local hold_id = ARGV[5]               -- '': the seats below, which must be free
local fingerprint = ARGV[6]
local purge_limit = tonumber(ARGV[7])
local n_old = tonumber(ARGV[8])       -- then n_old ticket ids
local OLD0 = 8
local n_new = tonumber(ARGV[OLD0 + n_old + 1])   -- then n_new ordinals, n_new categories
local NEW0 = OLD0 + n_old + 1
local K_XSAGAS = KEYS[30]

local status = redis.call('HGET', K_META, 'status')
if not status then return {EVENT_NOT_FOUND} end
local order, tickets, by_id = load_order(order_id)
if not order then return {ORDER_NOT_FOUND} end
local exchanges = as_array(order.exchanges)
for _, x in ipairs(exchanges) do
  if x.exchange_key == exchange_key then
    if x.fingerprint ~= fingerprint then return {EXCHANGE_KEY_MISMATCH, x.exchange_id} end
    return {OK, cjson.encode(order), cjson.encode(x), 1}
  end
end
local saga = redis.call('HGET', K_XSAGAS, exchange_key)
if saga then
  local rec = cjson.decode(saga)
  if rec.status == 'locked' or rec.status == 'done' then return {EXCHANGE_KEY_MISMATCH, rec.exchange_id} end
end
if status ~= 'on_sale' and status ~= 'paused' then return {NOT_ON_SALE, status} end
local now = now_ms()

-- 1. the old tickets: in the order, valid, not used at the door, nothing refunded
local old = {}
for k = 1, n_old do
  local id = ARGV[OLD0 + k]
  local order_ok, reply = usable_ticket(order_id, id, -1)
  if not order_ok then return reply end
  local t = tickets[by_id[id]]
  if (t.refunded or 0) > 0 then return {TICKET_REFUNDED, id} end
  old[#old + 1] = t
end

-- 2. the new seats: a live hold's, or free ones
local ordinals, cats, hold = {}, {}, nil
if hold_id ~= '' then
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if not raw then return gone_reply(hold_id) end
  if tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id)) <= now then return {HOLD_EXPIRED} end
  hold = cjson.decode(raw)
  ordinals, cats = as_array(hold.seats), as_array(hold.cats)
  if type(hold.ga) == 'table' and next(hold.ga) ~= nil then return {GA_NOT_IN_HOLD, '', 0} end
  if #ordinals ~= n_old then return {SEAT_NOT_IN_HOLD, #ordinals} end
  local token = held_value(hold_id)
  for _, o in ipairs(ordinals) do
    if redis.call('HGET', K_SEATS, o) ~= token then return {HOLD_LOST, o} end
  end
else
  purge_expired(now, purge_limit)
  local taken = {}
  for j = 1, n_new do
    local o = ARGV[NEW0 + j]
    ordinals[j], cats[j] = o, ARGV[NEW0 + n_new + j]
    if not seat_is_free(redis.call('HGET', K_SEATS, o), now) then taken[#taken + 1] = o end
  end
  if #taken > 0 then return {SEATS_UNAVAILABLE, taken} end
  local distanced = distance_refusal(sold_value(order_id), now)  -- _distance.lua
  if distanced then return distanced end
end

-- 3. the new tickets, priced now and split by the order's terms
local price = event_prices()
local fresh = {}
local difference, fee_difference = 0, 0
local function fees(t)
  return (t.ticket_fee_rate or 0) + (t.ticket_fee_fixed or 0) + (t.processing_fee_rate or 0)
    + (t.processing_fee_fixed or 0)
end
for j, o in ipairs(ordinals) do
  local p = price(cats[j])
  if not p then return {NO_PRICE, cats[j]} end
  local t = {ticket_id = ticket_prefix .. j, seat = tonumber(o), category = cats[j], price = p, status = 'valid',
    exchanged_from = old[j].ticket_id, holder = old[j].holder}
  split_ticket(t, order.terms, order.collector)
  fresh[#fresh + 1] = t
  difference = difference + p - old[j].price
  fee_difference = fee_difference + fees(t) - fees(old[j])
end

-- apply: take the new seats, then release the old places
local sold = sold_value(order_id)
local taken_now = {}
for _, o in ipairs(ordinals) do
  redis.call('HSET', K_SEATS, o, sold)
  taken_now[#taken_now + 1] = tostring(o)
end
local seq = emit('sold', 'sold', taken_now, nil, 0, hold_id)
if hold then
  uncount_buyer(hold.buyer, hold.count)
  end_hold(hold_id, hold, 'committed:' .. order_id, now)
end
local freed, ga_back = {}, {}
local from_ids, to_ids = {}, {}
for j, t in ipairs(old) do
  if t.seat ~= nil then
    local o = tostring(t.seat)
    if redis.call('HGET', K_SEATS, o) == sold then
      redis.call('HDEL', K_SEATS, o)
      freed[#freed + 1] = o
    end
  else
    ga_back[t.ga_area] = (ga_back[t.ga_area] or 0) + 1
    if t.ga_channel then channel_back.ticket(t) end  -- _channels.lua
  end
  withdraw(order_id, t, 'exchanged')
  t.status = 'exchanged'
  t.exchanged_for = fresh[j].ticket_id
  from_ids[#from_ids + 1] = t.ticket_id
  to_ids[#to_ids + 1] = fresh[j].ticket_id
end
if #freed > 0 then seq = emit('exchanged', 'free', freed, nil, 0, '') end
for area, qty in pairs(ga_back) do
  redis.call('HINCRBY', K_GA_SOLD, area, -qty)
  seq = emit('exchanged', 'free', {}, area, -qty, '')
end
channel_back.flush()  -- _channels.lua
for _, t in ipairs(fresh) do
  tickets[#tickets + 1] = t
  redis.call('HSET', K_TICKETS, t.ticket_id, order_id)
end
local record = {exchange_id = exchange_id, exchange_key = exchange_key, fingerprint = fingerprint,
  created_ms = now, from_tickets = from_ids, to_tickets = to_ids, difference = difference,
  fee_difference = fee_difference, hold_id = hold_id, seq = seq}
exchanges[#exchanges + 1] = record
order.exchanges = exchanges
order.total = order.total + difference
local raw = save_order(order, tickets, now)
lifecycle('order.exchanged', order_id,
  table.concat(from_ids, ',') .. '|' .. table.concat(to_ids, ',') .. '|' .. exchange_id .. '|' .. difference)
return {OK, raw, cjson.encode(record), 0}
