-- Tidy: purge up to ARGV[1] expired holds of one event. Correctness never
-- depends on this (expiry is lazy); it frees memory and tells watchers sooner.
-- Result: {purged, remaining_expired, finished}: finished is 1 when no hold is
-- left and none can be taken any more (closed, or past the end of its on-sale
-- window), so the event can leave the reaper's set.
local limit = tonumber(ARGV[1])
local now = now_ms()
-- a seat-map move in chunks holds the event (_layout.lua): its holds stay as the move copies them
local moving = tonumber(redis.call('HGET', K_META, 'moving') or '0') > now
local purged = moving and 0 or purge_expired(now, limit)
local remaining = redis.call('ZCOUNT', K_HOLDEXP, '-inf', now)
local finished = 0
if redis.call('ZCARD', K_HOLDEXP) == 0 and not moving then
  local status, until_ms = unpack(redis.call('HMGET', K_META, 'status', 'onsale_until_ms'))
  until_ms = tonumber(until_ms) or 0
  if status == 'closed' or status == false or (until_ms > 0 and now >= until_ms) then finished = 1 end
end
return {purged, remaining, finished}
