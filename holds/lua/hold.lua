-- Take (or add to) a hold: all-or-nothing over seats and GA quantities.
-- Result: {OK, hold_id, expires_ms, seq, hold_json} on success, else {code, ...} (holds/inventory.py).
local hold_id = ARGV[1]
local add_to_existing = ARGV[2] == '1'
local buyer = ARGV[3]
local purge_limit = tonumber(ARGV[4])
local n_seats = tonumber(ARGV[5])
-- then n_seats ordinals, n_seats categories, then n_ga, then (area, qty) pairs
local ga_asked = ga_args(6 + 2 * n_seats)

local now = now_ms()
local settings, problem = sale_settings(now)
if problem == 'no_event' then return {EVENT_NOT_FOUND} end
if problem == 'not_on_sale' then return {NOT_ON_SALE, settings.status} end
purge_expired(now, purge_limit)

local hold
if add_to_existing then
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if not raw then return gone_reply(hold_id) end
  local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id))
  if exp <= now then return {HOLD_EXPIRED} end
  hold = cjson.decode(raw)
  if hold.buyer ~= buyer then return {HOLD_NOT_FOUND} end  -- another buyer's token
else
  if redis.call('HEXISTS', K_HOLDS, hold_id) == 1 then return {HOLD_ID_COLLISION} end
  hold = {buyer = buyer, seats = {}, cats = {}, ga = {}, count = 0, created = now, expires = now + settings.ttl}
end
hold.seats = as_array(hold.seats)
hold.cats = as_array(hold.cats)
if type(hold.ga) ~= 'table' then hold.ga = {} end

-- 1. every seat must be free (lazily expired holds count as free)
local taken = {}
for i = 1, n_seats do
  local o = ARGV[5 + i]
  if not seat_is_free(redis.call('HGET', K_SEATS, o), now) then taken[#taken + 1] = o end
end
if #taken > 0 then return {SEATS_UNAVAILABLE, taken} end

-- 2. GA capacity: held (incl. not yet purged) + sold + asked <= capacity
local ga_total = 0
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  local cap = tonumber(redis.call('HGET', K_GA_CAP, area))
  if not cap then return {GA_UNKNOWN, area, 0} end
  local used = (tonumber(redis.call('HGET', K_GA_HELD, area)) or 0) + (tonumber(redis.call('HGET', K_GA_SOLD, area)) or 0)
  if used + qty > cap then return {GA_UNAVAILABLE, area, cap - used} end
  ga_total = ga_total + qty
end

-- 3. limits per hold and per buyer
local adding = n_seats + ga_total
if hold.count + adding > settings.per_hold then return {LIMIT_EXCEEDED, 'hold', settings.per_hold} end
if settings.per_buyer > 0 and buyer ~= '' then
  local current = tonumber(redis.call('HGET', K_BUYERS, buyer)) or 0
  if current + adding > settings.per_buyer then return {LIMIT_EXCEEDED, 'buyer', settings.per_buyer} end
end

-- apply
local token = held_value(hold_id)
local ordinals = {}
for i = 1, n_seats do
  local o = ARGV[5 + i]
  redis.call('HSET', K_SEATS, o, token)
  hold.seats[#hold.seats + 1] = tonumber(o)
  hold.cats[#hold.cats + 1] = ARGV[5 + n_seats + i]
  ordinals[#ordinals + 1] = o
end
local seq = 0
if #ordinals > 0 then seq = emit('held', 'held', ordinals, nil, 0, hold_id) end
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  redis.call('HINCRBY', K_GA_HELD, area, qty)
  hold.ga[area] = (hold.ga[area] or 0) + qty
  seq = emit('held', 'held', {}, area, qty, hold_id)
end
hold.count = hold.count + adding
if buyer ~= '' then redis.call('HINCRBY', K_BUYERS, buyer, adding) end
local encoded = cjson.encode(hold)
redis.call('HSET', K_HOLDS, hold_id, encoded)
redis.call('ZADD', K_HOLDEXP, hold.expires, hold_id)
return {OK, hold_id, hold.expires, seq, encoded}
