-- Commit a season hold: one order per event, each fenced as commit.lua fences (the event's
-- hold live on Redis's clock, every seat still held by it), idempotent by key in the season,
-- all or nothing. Each order, its tickets, seat changes, change-stream and lifecycle entries
-- are written as commit.lua writes them, plus a season order listing the events' orders.
-- A paused event still takes the commit (buyers paying); a closed one refuses it.
-- Priced from the season's bundle when Python passes the bundle's split, then by the offer's
-- ticket types and promo code in each event as commit.lua prices them (_season_sale.lua, _offers.lua).
-- KEYS: the season's, each event's 21, each event's offer keys (with an offer), then each event's
-- 4 channel keys (_season.lua use_event: its GA tickets name the channels their places came from).
-- Result: {OK, season_order_json, {order_json, ...}, replayed(0|1)} | {IDEMPOTENCY_MISMATCH, season order}
--         | {BUNDLE_PRICES_CHANGED} | {HOLD_NOT_FOUND} | {HOLD_RELEASED} | {HOLD_COMMITTED, season order} | {HOLD_EXPIRED}
--         | {SEASON_HOLD_CHANGED} | {SEASON_EVENT, position, {code, ...}}: that event's refusal
--           (EVENT_NOT_FOUND, NOT_ON_SALE, gone_reply, HOLD_EXPIRED, HOLD_LOST, NO_PRICE, IDEMPOTENCY_MISMATCH,
--            the offer's replies: TYPE_*, PROMO_*, SELECTION_INVALID)
local hold_id = ARGV[1]
local idem_key = ARGV[2]
local season_order_id = ARGV[3]
local buyer_json = ARGV[4]
local ticket_prefix = ARGV[5]
local purge_limit = tonumber(ARGV[6])
local sale = cjson.decode(ARGV[7])        -- {collector, payment_method, channel, terms?}: holds/records.py Sale
local events = season_event_args(8)       -- then one new order id per event
local ORDER0 = 8 + #events
local EXTRA0 = ORDER0 + #events           -- then the bundle's split (JSON, '' none: _season_sale.lua)
local bundle = (ARGV[EXTRA0 + 1] or '') ~= '' and cjson.decode(ARGV[EXTRA0 + 1]) or nil
-- then the offer: types by ordinal and the promo code (holds/offers.py SaleOffer), with the
-- events' offer keys after their inventory keys; '' none
local offer = (ARGV[EXTRA0 + 2] or '') ~= '' and cjson.decode(ARGV[EXTRA0 + 2]) or nil

local function event_orders(season_order)
  local out = {}
  for i, entry in ipairs(as_array(season_order.orders)) do
    use_event(i)
    out[i] = redis.call('HGET', K_ORDERS, entry.order_id) or ''
  end
  return out
end

local prior = redis.call('HGET', K_SEASON_ORDERS, 'key:' .. idem_key)
if prior then
  local raw = redis.call('HGET', K_SEASON_ORDERS, prior)
  local season_order = cjson.decode(raw)
  if season_order.hold_id ~= hold_id then return {IDEMPOTENCY_MISMATCH, prior} end
  return {OK, raw, event_orders(season_order), 1}
end
local rec, refused = season_hold(hold_id, events)
if not rec then return refused end
local now = now_ms()
refused = season_hold_gone(rec, now)
if refused then return refused end

-- 1. check and price every event's hold before writing any
local plans = {}
for i = 1, #events do
  use_event(i)
  local status = redis.call('HGET', K_META, 'status')
  if not status then return {SEASON_EVENT, i, {EVENT_NOT_FOUND}} end
  if status == 'closed' then return {SEASON_EVENT, i, {NOT_ON_SALE, 'closed'}} end
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if not raw then return {SEASON_EVENT, i, gone_reply(hold_id)} end
  if tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id)) <= now then return {SEASON_EVENT, i, {HOLD_EXPIRED}} end
  local hold = cjson.decode(raw)
  local seats, cats = as_array(hold.seats), as_array(hold.cats)
  local token = held_value(hold_id)
  for _, o in ipairs(seats) do
    if redis.call('HGET', K_SEATS, o) ~= token then return {SEASON_EVENT, i, {HOLD_LOST, o}} end
  end
  local other = redis.call('HGET', K_IDEM, idem_key)
  if other then return {SEASON_EVENT, i, {IDEMPOTENCY_MISMATCH, other}} end
  local price = event_prices()
  local shares = bundle_shares(bundle, i, price)
  if not shares then return {BUNDLE_PRICES_CHANGED} end
  local tickets, total = {}, 0
  for j, o in ipairs(seats) do
    local p = price(cats[j])
    if not p then return {SEASON_EVENT, i, {NO_PRICE, cats[j]}} end
    p = shares[cats[j]] or p
    tickets[j] = {ticket_id = ticket_prefix .. j, seat = o, category = cats[j], price = p, status = 'valid'}
    split_ticket(tickets[j], sale.terms, sale.collector)
    total = total + p
  end
  local ga = {}  -- the part's GA places, a ticket each (as commit.lua), at the event's list price
  if type(hold.ga) == 'table' then
    for area, qty in pairs(hold.ga) do ga[#ga + 1] = {area, qty} end
  end
  table.sort(ga, function(a, b) return a[1] < b[1] end)
  local ga_total, ga_error = ga_tickets(ga, tickets, ticket_prefix, sale, price)
  if not ga_total then return {SEASON_EVENT, i, ga_error} end
  channel_back.from_hold(tickets, hold)  -- the channels its GA places came from (_channels.lua)
  total = total + ga_total
  local promo, discount = false, 0
  if offer then
    use_event_offers(i, #events)
    local priced, why
    priced, why, discount = apply_offer(offer, tickets, sale, hold.buyer, now)
    if not priced then return {SEASON_EVENT, i, why} end
    total, promo = priced, why
  end
  plans[i] = {hold = hold, seats = seats, ga = ga, tickets = tickets, total = total, promo = promo,
    discount = discount}
end

-- 2. one order per event
local buyer = cjson.decode(buyer_json)
local orders, order_raws, season_total, currency = {}, {}, 0, ''
local season_discount, season_promo = 0, nil
for i = 1, #events do
  use_event(i)
  local plan, order_id = plans[i], ARGV[ORDER0 + i]
  local sold = sold_value(order_id)
  for _, o in ipairs(plan.seats) do redis.call('HSET', K_SEATS, o, sold) end
  local seq = 0
  if #plan.seats > 0 then seq = emit('sold', 'sold', plan.seats, nil, 0, hold_id) end
  for _, entry in ipairs(plan.ga) do
    redis.call('HINCRBY', K_GA_HELD, entry[1], -entry[2])
    redis.call('HINCRBY', K_GA_SOLD, entry[1], entry[2])
    seq = emit('sold', 'sold', {}, entry[1], entry[2], hold_id)
  end
  uncount_buyer(plan.hold.buyer, plan.hold.count)     -- the buyer's places move from held to bought
  count_bought(plan.hold.buyer, plan.hold.count)
  end_hold(hold_id, plan.hold, 'committed:' .. order_id, now)
  currency = redis.call('HGET', K_META, 'currency')
  local order = {order_id = order_id, hold_id = hold_id, idempotency_key = idem_key, buyer = buyer,
    buyer_id = plan.hold.buyer or '', tickets = plan.tickets, total = plan.total, currency = currency,
    status = 'committed', created_ms = now, updated_ms = now, seq = seq,
    collector = sale.collector, payment_method = sale.payment_method, channel = sale.channel, terms = sale.terms,
    season_order_id = season_order_id}
  if plan.promo then
    use_event_offers(i, #events)
    order.promo_code = plan.promo.code
    order.discount = plan.discount
    count_promo_use(plan.promo.code, plan.hold.buyer)
    note_season_promo(order, plan.promo, offer)
    season_discount, season_promo = season_discount + plan.discount, plan.promo.code
  end
  local order_raw = cjson.encode(order)
  redis.call('HSET', K_ORDERS, order_id, order_raw)
  redis.call('HSET', K_IDEM, idem_key, order_id)
  redis.call('ZADD', K_ORDERS_Z, now, order_id)
  for _, t in ipairs(plan.tickets) do redis.call('HSET', K_TICKETS, t.ticket_id, order_id) end
  lifecycle('order.created', order_id, '')
  purge_expired(now, purge_limit)
  orders[i] = {event_id = events[i], order_id = order_id}
  order_raws[i] = order_raw
  season_total = season_total + plan.total
end

local season_order = {season_order_id = season_order_id, season_id = rec.season_id, hold_id = hold_id,
  idempotency_key = idem_key, orders = orders, total = season_total,
  currency = currency, created_ms = now}
if bundle then season_order.bundle = true end
if season_promo then season_order.promo_code, season_order.discount = season_promo, season_discount end
local season_raw = cjson.encode(season_order)
redis.call('HSET', K_SEASON_ORDERS, season_order_id, season_raw)
redis.call('HSET', K_SEASON_ORDERS, 'key:' .. idem_key, season_order_id)
rec.status = 'committed:' .. season_order_id
save_season_hold(hold_id, rec, now, now)
return {OK, season_raw, order_raws, 0}
