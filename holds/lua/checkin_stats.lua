-- An event's check-in counters and its valid tickets, in one atomic read.
-- KEYS: the event's keys, then its door keys (holds/keys.py DOOR_KEY_NAMES).
-- Valid tickets are the sold seats plus the GA places sold: O(seats of the
-- event) to count (a read of the seats hash), fine for a dashboard's poll.
-- Result: {OK, counters (flat field/value list), sold seats, GA places sold, door rules {from, until, reentry}}
--         | {EVENT_NOT_FOUND}
local K_DOORSTATS = KEYS[25]
local m = redis.call('HMGET', K_META, 'status', 'door_from_ms', 'door_until_ms', 'door_reentry')
if not m[1] then return {EVENT_NOT_FOUND} end
local sold = 0
for _, v in ipairs(redis.call('HVALS', K_SEATS)) do
  if string.sub(v, 1, 2) == SOLD_PREFIX then sold = sold + 1 end
end
local ga = 0
for _, v in ipairs(redis.call('HVALS', K_GA_SOLD)) do ga = ga + tonumber(v) end
return {OK, redis.call('HGETALL', K_DOORSTATS), sold, ga, {m[2] or '0', m[3] or '0', m[4] or 'none'}}
