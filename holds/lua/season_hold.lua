-- Take the same seats in every chosen event of a season, all or nothing: every event is
-- checked (sale status and window, seats, limits per hold and per buyer, as hold.lua)
-- before anything is written; then one ordinary hold per event, all with the same hold id
-- and expiry, and one season hold record listing the events (_season.lua).
-- Result: {OK, hold_id, expires_ms, record_json} | {SEASON_NOT_FOUND} | {HOLD_ID_COLLISION}
--         | {SEASON_SEATS_UNAVAILABLE, {{position, {ordinal, ...}}, ...}} (every event's taken seats)
--         | {SEASON_EVENT, position, {EVENT_NOT_FOUND} | {NOT_ON_SALE, status} | {LIMIT_EXCEEDED, ...}}
local hold_id = ARGV[1]
local buyer = ARGV[2]
local purge_limit = tonumber(ARGV[3])
local season_id = ARGV[4]
local events = season_event_args(5)    -- then n_seats, n ordinals, n categories
local SEAT0 = 6 + #events
local n_seats = tonumber(ARGV[SEAT0])

if redis.call('EXISTS', K_SEASON) == 0 then return {SEASON_NOT_FOUND} end
if redis.call('HEXISTS', K_SEASON_HOLDS, hold_id) == 1 then return {HOLD_ID_COLLISION} end
local now = now_ms()

-- 1. check every event before writing any
local ttl, taken_by_event = nil, {}
for i = 1, #events do
  use_event(i)
  local settings, problem = sale_settings(now)
  if problem == 'no_event' then return {SEASON_EVENT, i, {EVENT_NOT_FOUND}} end
  if problem == 'not_on_sale' then return {SEASON_EVENT, i, {NOT_ON_SALE, settings.status}} end
  purge_expired(now, purge_limit)
  if redis.call('HEXISTS', K_HOLDS, hold_id) == 1 then return {HOLD_ID_COLLISION} end
  local taken = {}
  for j = 1, n_seats do
    local o = ARGV[SEAT0 + j]
    if not seat_is_free(redis.call('HGET', K_SEATS, o), now) then taken[#taken + 1] = o end
  end
  if #taken > 0 then taken_by_event[#taken_by_event + 1] = {i, taken} end
  if n_seats > settings.per_hold then return {SEASON_EVENT, i, {LIMIT_EXCEEDED, 'hold', settings.per_hold}} end
  if settings.per_buyer > 0 and buyer ~= '' then
    local current = (tonumber(redis.call('HGET', K_BUYERS, buyer)) or 0)
      + (tonumber(redis.call('HGET', K_BOUGHT, buyer)) or 0)
    if current + n_seats > settings.per_buyer then
      return {SEASON_EVENT, i, {LIMIT_EXCEEDED, 'buyer', settings.per_buyer}}
    end
  end
  if ttl == nil or settings.ttl < ttl then ttl = settings.ttl end  -- one expiry: the shortest TTL
end
if #taken_by_event > 0 then return {SEASON_SEATS_UNAVAILABLE, taken_by_event} end

-- 2. take them all
local expires = now + ttl
local token = held_value(hold_id)
for i = 1, #events do
  use_event(i)
  local hold = {buyer = buyer, seats = {}, cats = {}, ga = {}, count = n_seats, created = now, expires = expires,
    season_id = season_id}
  local ordinals = {}
  for j = 1, n_seats do
    local o = ARGV[SEAT0 + j]
    redis.call('HSET', K_SEATS, o, token)
    hold.seats[j] = tonumber(o)
    hold.cats[j] = ARGV[SEAT0 + n_seats + j]
    ordinals[j] = o
  end
  emit('held', 'held', ordinals, nil, 0, hold_id)
  if buyer ~= '' then redis.call('HINCRBY', K_BUYERS, buyer, n_seats) end
  redis.call('HSET', K_HOLDS, hold_id, cjson.encode(hold))
  redis.call('ZADD', K_HOLDEXP, expires, hold_id)
end
local seats, cats = {}, {}
for j = 1, n_seats do
  seats[j] = tonumber(ARGV[SEAT0 + j])
  cats[j] = ARGV[SEAT0 + n_seats + j]
end
local rec = {season_id = season_id, events = events, seats = seats, cats = cats, buyer = buyer, created = now,
  expires = expires, status = 'live'}
save_season_hold(hold_id, rec, expires, now)
return {OK, hold_id, expires, cjson.encode(rec)}
