-- Anonymize one buyer in one event (GDPR erasure; holds/feed/privacy.py): the
-- given orders whose buyer email still matches lose name, email and payment
-- reference (tickets, seats, totals stay); tickets of the given orders held by
-- the person (a transfer or resale made them the holder) lose the holder's name
-- and email; resale records name neither as seller nor as buyer. The buyer ids
-- of those orders (and the email, if a storefront used it as buyer id) are
-- replaced by `marker` in the orders, live holds, per-buyer counts (the counts
-- keep their values) and resale records. Lifecycle entries hold no personal
-- data (the feed reads the order), so erasing the order erases the feed too.
-- KEYS: the event's keys, its door keys, its resale keys (holds/keys.py after_sale_keys).
-- Result: {OK, orders_erased, holds_erased}
local email = ARGV[1]             -- normalized
local marker = ARGV[2]            -- 'erased-<random>': the new buyer id
local n_orders = tonumber(ARGV[3])
local n_ids = tonumber(ARGV[4 + n_orders])

local ids = {}
for i = 1, n_ids do ids[ARGV[4 + n_orders + i]] = true end
ids[email] = true

local K_RESALES = KEYS[27]
local ERASED = {name = '', email = '', marketing_consent = false, payment_reference = '', erased = true}
local function is_them(person)
  return type(person) == 'table' and type(person.email) == 'string' and string.lower(person.email) == email
end

local orders_erased = 0
for i = 1, n_orders do
  local order_id = ARGV[3 + i]
  local raw = redis.call('HGET', K_ORDERS, order_id)
  if raw then
    local order = cjson.decode(raw)
    local changed = false
    if is_them(order.buyer) then
      if order.buyer_id and order.buyer_id ~= '' then ids[order.buyer_id] = true end
      order.buyer = ERASED
      if ids[order.buyer_id] then order.buyer_id = marker end
      if order.promo_buyer and ids[order.promo_buyer] then order.promo_buyer = marker end
      orders_erased = orders_erased + 1
      changed = true
    end
    for _, t in ipairs(as_array(order.tickets)) do
      if is_them(t.holder) then
        t.holder = ERASED
        changed = true
      end
    end
    if changed then redis.call('HSET', K_ORDERS, order_id, cjson.encode(order)) end
  end
end

local resales = redis.call('HGETALL', K_RESALES)
for i = 1, #resales, 2 do
  if string.sub(resales[i], 1, 4) ~= 'key:' then  -- 'key:<resale key>' -> id: no personal data
    local resale = cjson.decode(resales[i + 1])
    local changed = false
    if is_them(resale.seller) then resale.seller = ERASED; changed = true end
    if is_them(resale.buyer) then resale.buyer = ERASED; changed = true end
    if resale.seller_id and ids[resale.seller_id] then resale.seller_id = marker; changed = true end
    if resale.buyer_id and ids[resale.buyer_id] then resale.buyer_id = marker; changed = true end
    if changed then redis.call('HSET', K_RESALES, resales[i], cjson.encode(resale)) end
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
