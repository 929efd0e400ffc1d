-- Allocate seats and GA places of an event to one open channel (holds/channels.py), all or
-- nothing. A seat may be allocated while free, held (the hold keeps it), blocked or not for
-- sale, never when sold or allocated to another channel; GA places only from the area's
-- general pool (capacity - held - sold - reserved for every channel).
-- ARGV[1] channel id, ARGV[2] n seats, then n ordinals, then n_ga and (area, places) pairs.
-- Result: {OK, seats newly allocated, GA places reserved, seq}
--         | {EVENT_NOT_FOUND} | {CHANNEL_NOT_FOUND, id} | {CHANNEL_CLOSED, id}
--         | {GA_UNKNOWN, area, 0} | {ALLOCATION_REFUSED, 'seat', {ordinal, why, ...}}
--         | {ALLOCATION_REFUSED, 'ga', area, places the area's general pool has}
local channel_id = ARGV[1]
local n_seats = tonumber(ARGV[2])
local SEAT0 = 2
local ga_asked = ga_args(SEAT0 + 1 + n_seats)

if redis.call('EXISTS', K_META) == 0 then return {EVENT_NOT_FOUND} end
local raw = redis.call('HGET', K_CHANNELS, channel_id)
if not raw then return {CHANNEL_NOT_FOUND, channel_id} end
if cjson.decode(raw).status ~= 'open' then return {CHANNEL_CLOSED, channel_id} end
local now = now_ms()

local refused, fresh = {}, {}
for i = 1, n_seats do
  local o = ARGV[SEAT0 + i]
  local owner = redis.call('HGET', K_ALLOC, o)
  if owner and owner ~= channel_id then
    refused[#refused + 1] = o
    refused[#refused + 1] = 'allocated to channel ' .. owner
  elseif seat_state(redis.call('HGET', K_SEATS, o), now) == 'sold' then
    refused[#refused + 1] = o
    refused[#refused + 1] = 'sold'
  elseif not owner then
    fresh[#fresh + 1] = o
  end
end
if #refused > 0 then return {ALLOCATION_REFUSED, 'seat', refused} end
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  local cap = tonumber(redis.call('HGET', K_GA_CAP, area))
  if not cap then return {GA_UNKNOWN, area, 0} end
  local used = (tonumber(redis.call('HGET', K_GA_HELD, area)) or 0) + (tonumber(redis.call('HGET', K_GA_SOLD, area)) or 0)
  local room = cap - used - (tonumber(redis.call('HGET', K_GA_RESV, area)) or 0)
  if qty > room then return {ALLOCATION_REFUSED, 'ga', area, math.max(room, 0)} end
end

local seq = tonumber(redis.call('GET', K_SEQ) or '0')
for _, o in ipairs(fresh) do redis.call('HSET', K_ALLOC, o, channel_id) end
if #fresh > 0 then seq = emit_channel('allocated', channel_id, fresh, nil, 0) end
local places = 0
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  local r = redis.call('HINCRBY', K_GA_ALLOC, area .. '|' .. channel_id, qty)
  redis.call('HINCRBY', K_GA_RESV, area, qty)
  seq = emit_channel('reserved', channel_id, {}, area, r)
  places = places + qty
end
return {OK, #fresh, places, seq}
