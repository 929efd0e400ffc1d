-- Cancel a whole order or some of its tickets. Seats return to sale (or to
-- not-for-sale when asked), GA places to capacity; the order records which
-- tickets are cancelled, and a lifecycle entry is written with the change.
-- Cancelling the last valid ticket gives the order's promo code use back
-- (_promo_back.lua; KEYS: the event's 21, then holds/keys.py PROMO_BACK_KEY_NAMES).
-- Result: {OK, order_json} | {ORDER_NOT_FOUND} | {TICKET_NOT_IN_ORDER, ticket_id}
--         | {TICKET_ALREADY_CANCELLED, ticket_id or ''}
local order_id = ARGV[1]
local release_to = ARGV[2]        -- 'free' or 'not_for_sale'
local reason = ARGV[3]
local n_tickets = tonumber(ARGV[4])   -- 0: every valid ticket
local K_PROMO_USES, K_PROMO_BACKLOG = KEYS[22], KEYS[23]   -- holds/keys.py PROMO_BACK_KEY_NAMES

local order, tickets, by_id = load_order(order_id)
if not order then return {ORDER_NOT_FOUND} end

local chosen = {}
if n_tickets == 0 then
  for i, t in ipairs(tickets) do if t.status == 'valid' then chosen[#chosen + 1] = i end end
  if #chosen == 0 then return {TICKET_ALREADY_CANCELLED, ''} end
else
  local seen = {}
  for k = 1, n_tickets do
    local id = ARGV[4 + k]
    local i = by_id[id]
    if not i then return {TICKET_NOT_IN_ORDER, id} end
    if tickets[i].status ~= 'valid' or seen[i] then return {TICKET_ALREADY_CANCELLED, id} end
    seen[i] = true
    chosen[#chosen + 1] = i
  end
end

for _, i in ipairs(chosen) do  -- a ticket locked by a cross-event exchange in flight (holds/exchanges.py)
  if tickets[i].exchanging then return {TICKET_EXCHANGING, tickets[i].ticket_id, tickets[i].exchanging} end
end
local now = now_ms()
local sold = sold_value(order_id)
local freed = {}
local ga_back = {}
for _, i in ipairs(chosen) do
  local t = tickets[i]
  release_place(t, sold, release_to, freed, ga_back)
  t.status = 'cancelled'
  t.listing = nil             -- a resale listing ends with its ticket (the index is tidied lazily)
end
count_bought(order.buyer_id, -#chosen)    -- the buyer may buy as many again
local state = release_to == 'not_for_sale' and 'not_for_sale' or 'free'
if #freed > 0 then emit('cancelled', state, freed, nil, 0, '') end
for area, qty in pairs(ga_back) do
  redis.call('HINCRBY', K_GA_SOLD, area, -qty)
  emit('cancelled', 'free', {}, area, -qty, '')
end
channel_back.flush()  -- a channel's places to it (_channels.lua)
local remaining = 0
for _, t in ipairs(tickets) do if t.status == 'valid' then remaining = remaining + 1 end end
order.tickets = tickets
local was = order.status
order.status = remaining == 0 and 'cancelled' or 'partially_cancelled'
order.updated_ms = now
give_promo_back(order, was, K_PROMO_USES, K_PROMO_BACKLOG, now)
local ids = {}
for _, i in ipairs(chosen) do ids[#ids + 1] = tickets[i].ticket_id end
local order_raw = cjson.encode(order)
redis.call('HSET', K_ORDERS, order_id, order_raw)
lifecycle(remaining == 0 and 'order.cancelled' or 'order.tickets_cancelled', order_id,
  table.concat(ids, ',') .. '|' .. reason)
return {OK, order_raw}
