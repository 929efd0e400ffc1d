-- Close a channel (holds/channels.py): at once, its seats go back to the general pool (their
-- allocation is deleted; a held seat keeps its hold, a sold one its order) and its areas'
-- reserved places are returned; a hold naming the channel is refused from now on. Closing a
-- closed channel changes nothing.
-- ARGV[1] channel id.
-- Result: {OK, seats returned (not sold), GA places returned, seq, already closed (0|1)}
--         | {EVENT_NOT_FOUND} | {CHANNEL_NOT_FOUND, id}
local channel_id = ARGV[1]

if redis.call('EXISTS', K_META) == 0 then return {EVENT_NOT_FOUND} end
local raw = redis.call('HGET', K_CHANNELS, channel_id)
if not raw then return {CHANNEL_NOT_FOUND, channel_id} end
local def = cjson.decode(raw)
local seq = tonumber(redis.call('GET', K_SEQ) or '0')
if def.status == 'closed' then return {OK, 0, 0, seq, 1} end
local now = now_ms()
def.status = 'closed'
def.closed_ms = now
redis.call('HSET', K_CHANNELS, channel_id, cjson.encode(def))

local returned, unsold = {}, 0
local alloc = redis.call('HGETALL', K_ALLOC)
for i = 1, #alloc, 2 do
  if alloc[i + 1] == channel_id then
    local o = alloc[i]
    redis.call('HDEL', K_ALLOC, o)
    returned[#returned + 1] = o
    if seat_state(redis.call('HGET', K_SEATS, o), now) ~= 'sold' then unsold = unsold + 1 end
  end
end
if #returned > 0 then seq = emit_channel('returned', channel_id, returned, nil, 0) end
local places = 0
local areas = redis.call('HKEYS', K_GA_CAP)
table.sort(areas)
for _, area in ipairs(areas) do
  local field = area .. '|' .. channel_id
  local r = tonumber(redis.call('HGET', K_GA_ALLOC, field)) or 0
  if r > 0 then
    redis.call('HDEL', K_GA_ALLOC, field)
    if redis.call('HINCRBY', K_GA_RESV, area, -r) <= 0 then redis.call('HDEL', K_GA_RESV, area) end
    seq = emit_channel('returned', channel_id, {}, area, 0)
    places = places + r
  end
end
return {OK, unsold, places, seq, 0}
