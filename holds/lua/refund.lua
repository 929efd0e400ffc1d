-- Refund (part of) an order, idempotent by refund key. KEYS: the event's keys
-- (the prelude names them), then its money keys (holds/keys.py MONEY_KEY_NAMES).
-- Each line names a ticket, the amount paid back, the ticket's refunded total
-- the fee reversal was computed on (rules.fees.reverse, in Python), and that
-- reversal. Atomic here: a ticket's refunded total never exceeds its price, and
-- a line computed on a total that has changed since (a concurrent refund) is
-- refused whole (REFUND_STALE: read again and retry). With release_to, the
-- refunded tickets that are still valid are cancelled too, their seats back on
-- sale ('free') or kept 'not_for_sale', as cancel.lua does (a ticket cancelled
-- before only gets its money back); a refund that leaves no ticket valid gives the
-- order's promo code use back (_promo_back.lua; its keys after the money keys).
-- Result: {OK, refund_json, order_json, replayed(0|1)} | {ORDER_NOT_FOUND}
--         | {TICKET_NOT_IN_ORDER, ticket_id}
--         | {REFUND_EXCEEDS_PAID, ticket_id, refundable left} | {REFUND_STALE, ticket_id}
--         | {IDEMPOTENCY_MISMATCH, refund_id} | {TICKET_NOT_VALID, ticket_id, 'exchanged'}
local K_REFUNDS, K_REFUNDS_Z = KEYS[22], KEYS[23]
local K_PROMO_USES, K_PROMO_BACKLOG = KEYS[24], KEYS[25]   -- holds/keys.py PROMO_BACK_KEY_NAMES
local refund_key = ARGV[1]
local refund_id = ARGV[2]
local order_id = ARGV[3]
local reason = ARGV[4]
local release_to = ARGV[5]          -- '' (tickets stay valid) | 'free' | 'not_for_sale'
local fingerprint = ARGV[6]
local n = tonumber(ARGV[7])         -- then 7 values per line
local LINE0, WIDTH = 7, 7

local prior = redis.call('HGET', K_REFUNDS, refund_key)
if prior then
  local record = cjson.decode(prior)
  if record.fingerprint ~= fingerprint then return {IDEMPOTENCY_MISMATCH, record.refund_id} end
  return {OK, prior, redis.call('HGET', K_ORDERS, record.order_id) or '', 1}
end
local order, tickets, by_id = load_order(order_id)
if not order then return {ORDER_NOT_FOUND} end

-- validate every line first (all-or-nothing)
local lines = {}
local asked = {}   -- ticket index -> amount over this refund's lines
for k = 0, n - 1 do
  local base = LINE0 + k * WIDTH
  local id = ARGV[base + 1]
  local i = by_id[id]
  if not i then return {TICKET_NOT_IN_ORDER, id} end
  if asked[i] then return {TICKET_NOT_IN_ORDER, id} end   -- a ticket once per refund (Python checks first)
  local t = tickets[i]
  if t.status == 'exchanged' then return {TICKET_NOT_VALID, id, t.status} end   -- its money moved to its replacement
  if t.exchanging then return {TICKET_EXCHANGING, id, t.exchanging} end   -- a cross-event exchange in flight
  local amount, before = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local refunded = t.refunded or 0
  if refunded ~= before then return {REFUND_STALE, id} end
  if refunded + amount > t.price then return {REFUND_EXCEEDS_PAID, id, t.price - refunded} end
  asked[i] = amount
  lines[#lines + 1] = {ticket_id = id, amount = amount, refunded_before = before,
    ticket_fee_rate = tonumber(ARGV[base + 4]), ticket_fee_fixed = tonumber(ARGV[base + 5]),
    processing_fee_rate = tonumber(ARGV[base + 6]), processing_fee_fixed = tonumber(ARGV[base + 7])}
end

local now = now_ms()
local was = order.status
for i, amount in pairs(asked) do
  tickets[i].refunded = (tickets[i].refunded or 0) + amount
  tickets[i].listing = nil    -- a refunded ticket is not for resale (the index is tidied lazily)
end
local ids = {}
for _, line in ipairs(lines) do ids[#ids + 1] = line.ticket_id end
if release_to ~= '' then
  local sold = sold_value(order_id)
  local freed, ga_back = {}, {}
  local cancelled = 0
  for _, line in ipairs(lines) do
    local t = tickets[by_id[line.ticket_id]]
    if t.status == 'valid' then  -- cancelled before: its place is already back
      release_place(t, sold, release_to, freed, ga_back)
    end
    if t.status == 'valid' then cancelled = cancelled + 1 end
    t.status = 'cancelled'
  end
  count_bought(order.buyer_id, -cancelled)
  local state = release_to == 'not_for_sale' and 'not_for_sale' or 'free'
  if #freed > 0 then emit('cancelled', state, freed, nil, 0, '') end
  for area, qty in pairs(ga_back) do
    redis.call('HINCRBY', K_GA_SOLD, area, -qty)
    emit('cancelled', 'free', {}, area, -qty, '')
  end
  channel_back.flush()  -- a channel's places to it (_channels.lua)
  local remaining = 0
  for _, t in ipairs(tickets) do if t.status == 'valid' then remaining = remaining + 1 end end
  order.status = remaining == 0 and 'cancelled' or 'partially_cancelled'
end
order.tickets = tickets
order.updated_ms = now
give_promo_back(order, was, K_PROMO_USES, K_PROMO_BACKLOG, now)
local order_raw = cjson.encode(order)
redis.call('HSET', K_ORDERS, order_id, order_raw)
local policy = 'full'
if type(order.terms) == 'table' and order.terms.refund_policy then policy = order.terms.refund_policy end
local record = {refund_id = refund_id, refund_key = refund_key, order_id = order_id, lines = lines,
  created_ms = now, currency = order.currency, collector = order.collector or 'platform',
  payment_method = order.payment_method or 'online', refund_policy = policy, reason = reason,
  release_to = release_to, fingerprint = fingerprint}
local refund_raw = cjson.encode(record)
redis.call('HSET', K_REFUNDS, refund_key, refund_raw)
redis.call('ZADD', K_REFUNDS_Z, now, refund_key)
lifecycle('order.refunded', order_id, refund_id .. '|' .. table.concat(ids, ',') .. '|' .. reason)
return {OK, refund_raw, order_raw, 0}
