-- The latest version record of each seat map of one page, in one round trip.
-- KEYS: the versions hashes of the maps (one tenant, one hash slot).
-- Result: per key {latest version number (0: gone), record JSON or false}.
local out = {}
for i, versions_key in ipairs(KEYS) do
  local latest = redis.call('HGET', versions_key, 'latest')
  local record = false
  if latest then record = redis.call('HGET', versions_key, latest) or false end
  out[i] = {tonumber(latest or '0'), record}
end
return out
