-- Take (or add to) a hold: all-or-nothing over seats and GA quantities.
-- Result: {OK, hold_id, expires_ms, seq, hold_json, replayed(0|1)} on success, else {code, ...}
-- (holds/inventory.py). A request id already recorded is answered before anything else is
-- checked: with the same fingerprint, the hold it made as it is now (replayed = 1), or why that
-- hold is gone (gone_reply, {HOLD_EXPIRED}); with another fingerprint, {REQUEST_MISMATCH}.
-- Channels (_channels.lua): {CHANNEL_DENIED, id} | {CHANNEL_CLOSED, id} for the channel named,
-- {CHANNEL_SEATS, {ordinal...}} for seats allocated to channels the request has no access to.
local hold_id = ARGV[1]
local mode = ARGV[2]              -- 'new' | 'add' (to hold_id) | 'replay' (answer a known request id only)
local buyer = ARGV[3]
local purge_limit = tonumber(ARGV[4])
local request_id = ARGV[5]        -- '' : the request is not retry-safe
local fingerprint = ARGV[6]       -- of the request as the API received it (holds/retries.py)
local n_seats = tonumber(ARGV[7])
-- then n_seats ordinals (ARGV[SEAT0 + i]), n_seats categories, then n_ga, then (area, qty) pairs
local SEAT0 = 7
local ga_asked = ga_args(SEAT0 + 1 + 2 * n_seats)
-- then the channel the request has access to ('' none) and its access code (_channels.lua)
local CH_ARG = SEAT0 + 2 + 2 * n_seats + 2 * #ga_asked

local now = now_ms()
local settings, problem = sale_settings(now)
if problem == 'no_event' then return {EVENT_NOT_FOUND} end

-- 0. a retry: answer what the first attempt did, whatever the seats and the sale look like now
if request_id ~= '' then
  local prior = redis.call('HGET', K_HOLDREQS, request_id)
  if prior then
    local sep = string.find(prior, ' ', 1, true)
    local prior_hold = string.sub(prior, 1, sep - 1)
    if string.sub(prior, sep + 1) ~= fingerprint then return {REQUEST_MISMATCH} end
    local raw = redis.call('HGET', K_HOLDS, prior_hold)
    if not raw then return gone_reply(prior_hold) end
    local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, prior_hold))
    if exp <= now then return {HOLD_EXPIRED} end
    return {OK, prior_hold, exp, tonumber(redis.call('GET', K_SEQ) or '0'), raw, 1}
  end
end
if mode == 'replay' then return {HOLD_NOT_FOUND} end
if problem == 'not_on_sale' then return {NOT_ON_SALE, settings.status} end
purge_expired(now, purge_limit)

local hold
if mode == 'add' then
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
  local o = ARGV[SEAT0 + i]
  if not seat_is_free(redis.call('HGET', K_SEATS, o), now) then taken[#taken + 1] = o end
end
if #taken > 0 then return {SEATS_UNAVAILABLE, taken} end
local access, denied = channel_access(ARGV[CH_ARG], ARGV[CH_ARG + 1], false)
if not access then return denied end
local refused = channel_refused(SEAT0, n_seats, access)
if #refused > 0 then return {CHANNEL_SEATS, refused} end
local distanced = distance_refusal(held_value(hold_id), now)  -- _distance.lua
if distanced then return distanced end

-- 2. GA capacity: held (incl. not yet purged) + sold + asked <= capacity
local ga_total = 0
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  local cap = tonumber(redis.call('HGET', K_GA_CAP, area))
  if not cap then return {GA_UNKNOWN, area, 0} end
  local used = (tonumber(redis.call('HGET', K_GA_HELD, area)) or 0) + (tonumber(redis.call('HGET', K_GA_SOLD, area)) or 0)
  local room = ga_room(area, cap - used, access)
  if qty > room then return {GA_UNAVAILABLE, area, room} end
  ga_total = ga_total + qty
end

-- 3. limits per hold and per buyer: what the buyer holds (expired holds until purged) and
-- has bought (valid tickets) for this event, whichever session or process asks
local adding = n_seats + ga_total
if hold.count + adding > settings.per_hold then return {LIMIT_EXCEEDED, 'hold', settings.per_hold} end
if settings.per_buyer > 0 and buyer ~= '' then
  local current = (tonumber(redis.call('HGET', K_BUYERS, buyer)) or 0)
    + (tonumber(redis.call('HGET', K_BOUGHT, buyer)) or 0)
  if current + adding > settings.per_buyer then return {LIMIT_EXCEEDED, 'buyer', settings.per_buyer} end
end

-- apply
local token = held_value(hold_id)
local ordinals = {}
for i = 1, n_seats do
  local o = ARGV[SEAT0 + i]
  redis.call('HSET', K_SEATS, o, token)
  hold.seats[#hold.seats + 1] = tonumber(o)
  hold.cats[#hold.cats + 1] = ARGV[SEAT0 + n_seats + i]
  ordinals[#ordinals + 1] = o
end
local seq = 0
if #ordinals > 0 then seq = emit('held', 'held', ordinals, nil, 0, hold_id) end
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  channel_back.note(hold, area, ga_take(area, qty, access))  -- _channels.lua
  redis.call('HINCRBY', K_GA_HELD, area, qty)
  hold.ga[area] = (hold.ga[area] or 0) + qty
  seq = emit('held', 'held', {}, area, qty, hold_id)
end
hold.count = hold.count + adding
if buyer ~= '' then redis.call('HINCRBY', K_BUYERS, buyer, adding) end
if request_id ~= '' then  -- kept while the hold lives, then as long as its tombstone (end_hold)
  redis.call('HSET', K_HOLDREQS, request_id, hold_id .. ' ' .. fingerprint)
  local reqs = as_array(hold.reqs)
  reqs[#reqs + 1] = request_id
  hold.reqs = reqs
end
local encoded = cjson.encode(hold)
redis.call('HSET', K_HOLDS, hold_id, encoded)
redis.call('ZADD', K_HOLDEXP, hold.expires, hold_id)
return {OK, hold_id, hold.expires, seq, encoded, 0}
