-- A consistent read of one event's availability at one sequence number.
-- Result: {seq, now_ms, {ordinal, value, ...}, {hold_id, expires, ...} (live holds that hold seats),
--          {area, cap, held, sold, ...}, {oldest retained seq}, the last entry's 'at' (the prelude's emit)}
--         with ARGV[1] = 'channels' (the channel keys passed last): then also
--         {ordinal, channel, ...} (allocated seats), {"<area>|<channel>", places reserved, ...}
local now = now_ms()
local seq = tonumber(redis.call('GET', K_SEQ) or '0')
local seats = redis.call('HGETALL', K_SEATS)
local holds = redis.call('ZRANGEBYSCORE', K_HOLDEXP, '(' .. now, '+inf', 'WITHSCORES')
local ga = {}
local caps = redis.call('HGETALL', K_GA_CAP)
for i = 1, #caps, 2 do
  local area = caps[i]
  ga[#ga + 1] = area
  ga[#ga + 1] = caps[i + 1]
  ga[#ga + 1] = redis.call('HGET', K_GA_HELD, area) or '0'
  ga[#ga + 1] = redis.call('HGET', K_GA_SOLD, area) or '0'
end
local first = redis.call('XRANGE', K_CHANGES, '-', '+', 'COUNT', 1)
local oldest = 0
if #first > 0 then oldest = tonumber(string.match(first[1][1], '%-(%d+)$')) end
if ARGV[1] == 'channels' then
  return {seq, now, seats, holds, ga, oldest, last_at(), redis.call('HGETALL', K_ALLOC), redis.call('HGETALL', K_GA_ALLOC)}
end
return {seq, now, seats, holds, ga, oldest, last_at()}
