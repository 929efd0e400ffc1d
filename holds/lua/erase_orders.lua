-- Anonymize one buyer in one event (GDPR erasure; holds/feed/privacy.py): the
-- given orders whose buyer email still matches lose name, email and payment
-- reference (tickets, seats, totals stay); the buyer ids of those orders (and the
-- email, if a storefront used it as buyer id) are replaced by `marker` in the
-- orders, live holds and per-buyer counts (the counts keep their values).
-- Lifecycle entries hold no personal data (the feed reads the order), so
-- erasing the order erases the feed too.
-- Result: {OK, orders_erased, holds_erased}
local email = ARGV[1]             -- normalized
local marker = ARGV[2]            -- 'erased-<random>': the new buyer id
local n_orders = tonumber(ARGV[3])
local n_ids = tonumber(ARGV[4 + n_orders])

local ids = {}
for i = 1, n_ids do ids[ARGV[4 + n_orders + i]] = true end
ids[email] = true

local orders_erased = 0
for i = 1, n_orders do
  local order_id = ARGV[3 + i]
  local raw = redis.call('HGET', K_ORDERS, order_id)
  if raw then
    local order = cjson.decode(raw)
    local b = order.buyer or {}
    if type(b.email) == 'string' and string.lower(b.email) == email then
      if order.buyer_id and order.buyer_id ~= '' then ids[order.buyer_id] = true end
      order.buyer = {name = '', email = '', marketing_consent = false, payment_reference = '', erased = true}
      if ids[order.buyer_id] then order.buyer_id = marker end
      redis.call('HSET', K_ORDERS, order_id, cjson.encode(order))
      orders_erased = orders_erased + 1
    end
  end
end

local holds_erased = 0
local all = redis.call('HGETALL', K_HOLDS)
for i = 1, #all, 2 do
  local hold = cjson.decode(all[i + 1])
  if hold.buyer and ids[hold.buyer] then
    hold.buyer = marker
    redis.call('HSET', K_HOLDS, all[i], cjson.encode(hold))
    holds_erased = holds_erased + 1
  end
end

for id, _ in pairs(ids) do
  for _, key in ipairs({K_BUYERS, K_BOUGHT}) do
    local n = redis.call('HGET', key, id)
    if n then
      redis.call('HDEL', key, id)
      redis.call('HINCRBY', key, marker, n)
    end
  end
end
return {OK, orders_erased, holds_erased}
