-- Commit a hold to an order: fenced by the hold token, idempotent by key.
-- Succeeds only if the hold is live (Redis clock) and every seat is still held
-- by exactly this hold. The order, its tickets, the seat changes, the change
-- stream entry and the lifecycle entry are written together.
-- A paused event still takes the commits of its live holds (buyers paying);
-- a closed one takes none (an earlier commit's replay still answers).
-- Result: {OK, order_json, replayed(0|1)} | {NOT_ON_SALE, 'closed'} | gone_reply | {HOLD_EXPIRED}
--         | {HOLD_LOST, ordinal} | {NO_PRICE, category} | {IDEMPOTENCY_MISMATCH, order_id}
--         | the offer's replies (_offers.lua: TYPE_*, PROMO_*, SELECTION_INVALID)
local hold_id = ARGV[1]
local idem_key = ARGV[2]
local order_id = ARGV[3]
local buyer_json = ARGV[4]
local ticket_prefix = ARGV[5]
local purge_limit = tonumber(ARGV[6])
local sale = cjson.decode(ARGV[7])        -- {collector, payment_method, channel, terms?}: holds/inventory.py
local offer = ARGV[8] and cjson.decode(ARGV[8]) or nil  -- types and promo code (holds/offers.py SaleOffer):
                                          -- given with the offer keys (KEYS[22..24]), else absent

local prior = redis.call('HGET', K_IDEM, idem_key)
if prior then
  local order_raw = redis.call('HGET', K_ORDERS, prior)
  local order = cjson.decode(order_raw)
  if order.hold_id ~= hold_id then return {IDEMPOTENCY_MISMATCH, prior} end
  return {OK, order_raw, 1}
end
if redis.call('HGET', K_META, 'status') == 'closed' then return {NOT_ON_SALE, 'closed'} end

local now = now_ms()
local raw = redis.call('HGET', K_HOLDS, hold_id)
if not raw then purge_expired(now, purge_limit); return gone_reply(hold_id) end
local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id))
if exp <= now then purge_expired(now, purge_limit); return {HOLD_EXPIRED} end
local hold = cjson.decode(raw)
local seats = as_array(hold.seats)
local cats = as_array(hold.cats)
local token = held_value(hold_id)
for _, o in ipairs(seats) do
  if redis.call('HGET', K_SEATS, o) ~= token then return {HOLD_LOST, o} end
end

-- price every place from the event's current prices
local price = event_prices()
local tickets = {}
local total = 0
for i, o in ipairs(seats) do
  local p = price(cats[i])
  if not p then return {NO_PRICE, cats[i]} end
  tickets[#tickets + 1] = {ticket_id = ticket_prefix .. #tickets + 1, seat = o, category = cats[i],
    price = p, status = 'valid'}
  split_ticket(tickets[#tickets], sale.terms, sale.collector)
  total = total + p
end
local ga = {}
if type(hold.ga) == 'table' then
  for area, qty in pairs(hold.ga) do ga[#ga + 1] = {area, qty} end
end
table.sort(ga, function(a, b) return a[1] < b[1] end)
local ga_total, ga_error = ga_tickets(ga, tickets, ticket_prefix, sale, price)
if not ga_total then return ga_error end
channel_back.from_hold(tickets, hold)  -- the channels its GA places came from (_channels.lua)
total = total + ga_total
local promo, discount = false, 0
if offer then
  local priced, why
  priced, why, discount = apply_offer(offer, tickets, sale, hold.buyer, now)
  if not priced then return why end
  total, promo = priced, why
end

-- apply
local sold = sold_value(order_id)
for _, o in ipairs(seats) do redis.call('HSET', K_SEATS, o, sold) end
local seq = 0
if #seats > 0 then seq = emit('sold', 'sold', seats, nil, 0, hold_id) end
for _, entry in ipairs(ga) do
  redis.call('HINCRBY', K_GA_HELD, entry[1], -entry[2])
  redis.call('HINCRBY', K_GA_SOLD, entry[1], entry[2])
  seq = emit('sold', 'sold', {}, entry[1], entry[2], hold_id)
end
uncount_buyer(hold.buyer, hold.count)     -- the buyer's places move from held to bought
count_bought(hold.buyer, hold.count)
end_hold(hold_id, hold, 'committed:' .. order_id, now)

local order = {order_id = order_id, hold_id = hold_id, idempotency_key = idem_key, buyer = cjson.decode(buyer_json),
  buyer_id = hold.buyer or '',
  tickets = tickets, total = total, currency = redis.call('HGET', K_META, 'currency'), status = 'committed',
  created_ms = now, updated_ms = now, seq = seq,
  collector = sale.collector, payment_method = sale.payment_method, channel = sale.channel, terms = sale.terms}
if promo then
  order.promo_code = promo.code
  order.discount = discount
  count_promo_use(promo.code, hold.buyer)
  note_promo_origin(order, promo, offer)
end
local order_raw = cjson.encode(order)
redis.call('HSET', K_ORDERS, order_id, order_raw)
redis.call('HSET', K_IDEM, idem_key, order_id)
redis.call('ZADD', K_ORDERS_Z, now, order_id)
for _, t in ipairs(tickets) do redis.call('HSET', K_TICKETS, t.ticket_id, order_id) end
lifecycle('order.created', order_id, '')
purge_expired(now, purge_limit)
return {OK, order_raw, 0}
