-- Sell seats and GA places at the box office: hold and commit in one step, no
-- storefront hold. Every seat must be free, or held by a buyer's live hold when
-- `override` is 1 (the hold keeps the seat in its list, so that buyer's commit
-- fails HOLD_LOST: the hold no longer holds all of its seats). GA places need
-- free capacity (never taken from holds). Sells while the event is on sale or
-- paused, whatever its on-sale window; a closed or draft event sells nothing.
-- The order, tickets (with their fee split), stream entries and lifecycle entry
-- are written together, exactly as commit.lua writes them; idempotent by key
-- (the same key with another request is IDEMPOTENCY_MISMATCH).
-- Result: {OK, order_json, replayed(0|1), overridden hold ids (comma-separated)}
--         | {EVENT_NOT_FOUND} | {NOT_ON_SALE, status} | {SEATS_UNAVAILABLE, {ordinal...}}
--         | {SEATS_HELD, {ordinal...}} | {GA_UNKNOWN, area, 0} | {GA_UNAVAILABLE, area, left}
--         | {NO_PRICE, category} | {IDEMPOTENCY_MISMATCH, order_id}
--         | {CHANNEL_SEATS, {ordinal...}} (allocated to a channel that is not a box-office one)
--         | the offer's replies (_offers.lua: TYPE_*, PROMO_*, SELECTION_INVALID)
local idem_key = ARGV[1]
local order_id = ARGV[2]
local buyer_json = ARGV[3]
local ticket_prefix = ARGV[4]
local purge_limit = tonumber(ARGV[5])
local sale = cjson.decode(ARGV[6])        -- {collector, payment_method, channel, terms?}
local fingerprint = ARGV[7]               -- of the request (holds/retries.py)
local override = ARGV[8] == '1'
local n_seats = tonumber(ARGV[9])
-- then n_seats ordinals, n_seats categories, then n_ga and (area, qty) pairs
local SEAT0 = 9
local ga_asked = ga_args(SEAT0 + 1 + 2 * n_seats)
-- then, when the sale names types or a promo code (with the offer keys KEYS[22..24]), the offer
local OFFER_ARG = SEAT0 + 2 + 2 * n_seats + 2 * #ga_asked
local offer = ARGV[OFFER_ARG] and ARGV[OFFER_ARG] ~= '' and cjson.decode(ARGV[OFFER_ARG]) or nil

local prior = redis.call('HGET', K_IDEM, idem_key)
if prior then
  local order_raw = redis.call('HGET', K_ORDERS, prior)
  local order = cjson.decode(order_raw)
  if order.fingerprint ~= fingerprint then return {IDEMPOTENCY_MISMATCH, prior} end
  return {OK, order_raw, 1, ''}
end
local status = redis.call('HGET', K_META, 'status')
if not status then return {EVENT_NOT_FOUND} end
if status ~= 'on_sale' and status ~= 'paused' then return {NOT_ON_SALE, status} end

local now = now_ms()
purge_expired(now, purge_limit)

-- 1. seats: free, or (override) held by a live hold
local taken, held, from_holds = {}, {}, {}
for i = 1, n_seats do
  local o = ARGV[SEAT0 + i]
  local value = redis.call('HGET', K_SEATS, o)
  local state = seat_state(value, now)
  if state == 'held' then
    held[#held + 1] = o
    from_holds[string.sub(value, 3)] = true
  elseif state ~= 'free' then
    taken[#taken + 1] = o
  end
end
if #taken > 0 then return {SEATS_UNAVAILABLE, taken} end
if #held > 0 and not override then return {SEATS_HELD, held} end
local access = channel_access('', '', true)  -- general seats and open box-office channels' (_channels.lua)
local refused = channel_refused(SEAT0, n_seats, access)
if #refused > 0 then return {CHANNEL_SEATS, refused} end
local distanced = distance_refusal(sold_value(order_id), now)  -- _distance.lua
if distanced then return distanced end

-- 2. GA capacity: held (incl. not yet purged) + sold + asked <= capacity
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  local cap = tonumber(redis.call('HGET', K_GA_CAP, area))
  if not cap then return {GA_UNKNOWN, area, 0} end
  local used = (tonumber(redis.call('HGET', K_GA_HELD, area)) or 0) + (tonumber(redis.call('HGET', K_GA_SOLD, area)) or 0)
  local room = ga_room(area, cap - used, access)
  if qty > room then return {GA_UNAVAILABLE, area, room} end
end

-- 3. prices, from the event's current prices
local price = event_prices()
local tickets = {}
local total = 0
local ordinals = {}
for i = 1, n_seats do
  local o = ARGV[SEAT0 + i]
  local cat = ARGV[SEAT0 + n_seats + i]
  local p = price(cat)
  if not p then return {NO_PRICE, cat} end
  tickets[#tickets + 1] = {ticket_id = ticket_prefix .. #tickets + 1, seat = tonumber(o), category = cat,
    price = p, status = 'valid'}
  split_ticket(tickets[#tickets], sale.terms, sale.collector)
  total = total + p
  ordinals[#ordinals + 1] = o
end
local ga_total, ga_error = ga_tickets(ga_asked, tickets, ticket_prefix, sale, price)
if not ga_total then return ga_error end
total = total + ga_total
local promo, discount = false, 0
if offer then
  local priced, why
  priced, why, discount = apply_offer(offer, tickets, sale, '', now)
  if not priced then return why end
  total, promo = priced, why
end

-- apply
local sold = sold_value(order_id)
for _, o in ipairs(ordinals) do redis.call('HSET', K_SEATS, o, sold) end
local seq = 0
if #ordinals > 0 then seq = emit('sold', 'sold', ordinals, nil, 0, '') end
for _, pair in ipairs(ga_asked) do
  channel_back.mark(tickets, pair[1], ga_take(pair[1], pair[2], access))  -- _channels.lua
  redis.call('HINCRBY', K_GA_SOLD, pair[1], pair[2])
  seq = emit('sold', 'sold', {}, pair[1], pair[2], '')
end
local overridden = {}
for hold_id in pairs(from_holds) do overridden[#overridden + 1] = hold_id end
table.sort(overridden)

local order = {order_id = order_id, hold_id = '', idempotency_key = idem_key, buyer = cjson.decode(buyer_json),
  buyer_id = '', tickets = tickets, total = total, currency = redis.call('HGET', K_META, 'currency'),
  status = 'committed', created_ms = now, updated_ms = now, seq = seq,
  collector = sale.collector, payment_method = sale.payment_method, channel = sale.channel, terms = sale.terms,
  fingerprint = fingerprint, overridden_holds = table.concat(overridden, ',')}
if promo then
  order.promo_code = promo.code
  order.discount = discount
  count_promo_use(promo.code, '')
  note_promo_origin(order, promo, offer)
end
local order_raw = cjson.encode(order)
redis.call('HSET', K_ORDERS, order_id, order_raw)
redis.call('HSET', K_IDEM, idem_key, order_id)
redis.call('ZADD', K_ORDERS_Z, now, order_id)
for _, t in ipairs(tickets) do redis.call('HSET', K_TICKETS, t.ticket_id, order_id) end
lifecycle('order.created', order_id, 'box_office')
return {OK, order_raw, 0, table.concat(overridden, ',')}
