-- Take the same seats and GA places in every chosen event of a season, all or nothing: every
-- event is checked as hold.lua checks a new hold (sale status and window, seats free, the
-- channel access and allocations of _channels.lua, the minimum-distance rule of _distance.lua,
-- GA room, limits per hold and per buyer) before anything is written; then one ordinary hold per
-- event, all with the same hold id and expiry, and one season hold record listing the
-- events (_season.lua).
-- KEYS: the season's keys and 21 per event (_season.lua), then the 4 channel keys of each
-- event in the same order (use_event points at them), so the last four are the last event's.
-- A request id already recorded in the season is answered before anything else is checked
-- (as hold.lua answers one): with the same fingerprint, the season hold it made as it is now
-- (replayed = 1) or why it is gone; with another fingerprint, {REQUEST_MISMATCH}.
-- Result: {OK, hold_id, expires_ms, record_json, replayed(0|1)} | {SEASON_NOT_FOUND} | {HOLD_ID_COLLISION}
--         | {REQUEST_MISMATCH} | {HOLD_NOT_FOUND} | {HOLD_RELEASED} | {HOLD_COMMITTED, season order}
--         | {HOLD_EXPIRED} (a replayed request's hold is gone)
--         | {SEASON_SEATS_UNAVAILABLE, {{position, {ordinal, ...}}, ...}} (every event's taken seats)
--         | {SEASON_SEATS_REFUSED, CHANNEL_SEATS | SEATS_DISTANCED, {{position, {ordinal, ...}}, ...}}
--         | {SEASON_EVENT, position, {EVENT_NOT_FOUND} | {NOT_ON_SALE, status} | {LIMIT_EXCEEDED, ...}
--           | {CHANNEL_DENIED, id} | {CHANNEL_CLOSED, id} | {DISTANCE_RULE_CHANGED, rule}
--           | {GA_UNKNOWN, area, 0} | {GA_UNAVAILABLE, area, places the request may take}}
local hold_id = ARGV[1]
local buyer = ARGV[2]
local purge_limit = tonumber(ARGV[3])
local season_id = ARGV[4]
local request_id = ARGV[5]        -- '' : the request is not retry-safe
local fingerprint = ARGV[6]       -- of the request as the API received it (holds/retries.py)
local events = season_event_args(7)    -- then n_seats, n ordinals, n categories
local SEAT0 = 8 + #events
local n_seats = tonumber(ARGV[SEAT0])
-- then n_ga, then (area, qty) pairs: taken in every event
local ga_asked = ga_args(SEAT0 + 1 + 2 * n_seats)
local ga_total = 0
for _, pair in ipairs(ga_asked) do ga_total = ga_total + pair[2] end
local places = n_seats + ga_total
-- then the channel the request has access to ('' none) and its access code (_channels.lua),
-- the same for every event
local CH_ARG = SEAT0 + 2 + 2 * n_seats + 2 * #ga_asked
-- then one set of distancing arguments per event, in the events' order, each ending with its
-- count (_distance.lua): found from the end, the last event's last
local rule_end = {}
do
  local last = #ARGV
  for i = #events, 1, -1 do
    rule_end[i] = last
    last = last - tonumber(ARGV[last]) - 1
  end
end

if redis.call('EXISTS', K_SEASON) == 0 then return {SEASON_NOT_FOUND} end
local now = now_ms()

-- 0. a retry: answer what the first attempt did, whatever the seats and the sale look like now
if request_id ~= '' then
  local prior = redis.call('HGET', K_SEASON_HOLDS, SEASON_REQUEST_PREFIX .. request_id)
  if prior then
    local sep = string.find(prior, ' ', 1, true)
    local prior_hold = string.sub(prior, 1, sep - 1)
    if string.sub(prior, sep + 1) ~= fingerprint then return {REQUEST_MISMATCH} end
    local raw = redis.call('HGET', K_SEASON_HOLDS, prior_hold)
    if not raw then return {HOLD_NOT_FOUND} end
    local prior_rec = cjson.decode(raw)
    local gone = season_hold_gone(prior_rec, now)
    if gone then return gone end
    return {OK, prior_hold, prior_rec.expires, raw, 1}
  end
end
if redis.call('HEXISTS', K_SEASON_HOLDS, hold_id) == 1 then return {HOLD_ID_COLLISION} end

-- 1. check every event before writing any: on sale, every seat free (every event's named)
local ttl, taken_by_event, settings_of = nil, {}, {}
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
  settings_of[i] = settings
  if ttl == nil or settings.ttl < ttl then ttl = settings.ttl end  -- one expiry: the shortest TTL
end
if #taken_by_event > 0 then return {SEASON_SEATS_UNAVAILABLE, taken_by_event} end

-- 2. channels, then distancing, in each event as hold.lua checks them (every event's seats named)
local token = held_value(hold_id)
local in_channel, distanced, access_of = {}, {}, {}
for i = 1, #events do
  use_event(i)
  local access, denied = channel_access(ARGV[CH_ARG], ARGV[CH_ARG + 1], false)
  if not access then return {SEASON_EVENT, i, denied} end
  access_of[i] = access
  local refused = channel_refused(SEAT0, n_seats, access)
  if #refused > 0 then in_channel[#in_channel + 1] = {i, refused} end
  local far = distance_refusal_at(token, now, rule_end[i])
  if far and far[1] == SEATS_DISTANCED then
    distanced[#distanced + 1] = {i, far[2]}
  elseif far then
    return {SEASON_EVENT, i, far}
  end
end
if #in_channel > 0 then return {SEASON_SEATS_REFUSED, CHANNEL_SEATS, in_channel} end
if #distanced > 0 then return {SEASON_SEATS_REFUSED, SEATS_DISTANCED, distanced} end

-- 3. GA room (held, incl. not yet purged, + sold + asked <= capacity, less other channels'
-- reservations), then limits per hold and per buyer, in each event
for i = 1, #events do
  use_event(i)
  for _, pair in ipairs(ga_asked) do
    local area, qty = pair[1], pair[2]
    local cap = tonumber(redis.call('HGET', K_GA_CAP, area))
    if not cap then return {SEASON_EVENT, i, {GA_UNKNOWN, area, 0}} end
    local used = (tonumber(redis.call('HGET', K_GA_HELD, area)) or 0) + (tonumber(redis.call('HGET', K_GA_SOLD, area)) or 0)
    local room = ga_room(area, cap - used, access_of[i])
    if qty > room then return {SEASON_EVENT, i, {GA_UNAVAILABLE, area, room}} end
  end
  local settings = settings_of[i]
  if places > settings.per_hold then return {SEASON_EVENT, i, {LIMIT_EXCEEDED, 'hold', settings.per_hold}} end
  if settings.per_buyer > 0 and buyer ~= '' then
    local current = (tonumber(redis.call('HGET', K_BUYERS, buyer)) or 0)
      + (tonumber(redis.call('HGET', K_BOUGHT, buyer)) or 0)
    if current + places > settings.per_buyer then
      return {SEASON_EVENT, i, {LIMIT_EXCEEDED, 'buyer', settings.per_buyer}}
    end
  end
end

-- 4. take them all
local expires = now + ttl
for i = 1, #events do
  use_event(i)
  local hold = {buyer = buyer, seats = {}, cats = {}, ga = {}, count = places, created = now, expires = expires,
    season_id = season_id}
  local ordinals = {}
  for j = 1, n_seats do
    local o = ARGV[SEAT0 + j]
    redis.call('HSET', K_SEATS, o, token)
    hold.seats[j] = tonumber(o)
    hold.cats[j] = ARGV[SEAT0 + n_seats + j]
    ordinals[j] = o
  end
  if n_seats > 0 then emit('held', 'held', ordinals, nil, 0, hold_id) end
  for _, pair in ipairs(ga_asked) do
    local area, qty = pair[1], pair[2]
    channel_back.note(hold, area, ga_take(area, qty, access_of[i]))  -- given back to them (_channels.lua)
    redis.call('HINCRBY', K_GA_HELD, area, qty)
    hold.ga[area] = qty
    emit('held', 'held', {}, area, qty, hold_id)
  end
  if buyer ~= '' then redis.call('HINCRBY', K_BUYERS, buyer, places) end
  redis.call('HSET', K_HOLDS, hold_id, cjson.encode(hold))
  redis.call('ZADD', K_HOLDEXP, expires, hold_id)
end
local seats, cats, ga = {}, {}, {}
for j = 1, n_seats do
  seats[j] = tonumber(ARGV[SEAT0 + j])
  cats[j] = ARGV[SEAT0 + n_seats + j]
end
for _, pair in ipairs(ga_asked) do ga[pair[1]] = pair[2] end
local rec = {season_id = season_id, events = events, seats = seats, cats = cats, ga = ga, buyer = buyer,
  created = now, expires = expires, status = 'live'}
if request_id ~= '' then  -- kept as long as the record (save_season_hold forgets both)
  redis.call('HSET', K_SEASON_HOLDS, SEASON_REQUEST_PREFIX .. request_id, hold_id .. ' ' .. fingerprint)
  rec.reqs = {request_id}
end
save_season_hold(hold_id, rec, expires, now)
return {OK, hold_id, expires, cjson.encode(rec), 0}
