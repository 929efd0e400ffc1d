-- Claim or release a unique name (a custom domain, a branding slug) in one hash
-- whose values are '<owner> <claimed ms>'. A claim sets the field when it is
-- free, already the owner's, or exactly `stale` (a holder the caller found
-- abandoned: a crash between a claim and the profile's write); compare and
-- set, so two claimers of an abandoned name cannot both win. A release deletes
-- the field only while the owner holds it.
-- Result: OK | {CLAIM_TAKEN, holder value}
local K_NAMES = KEYS[1]
local mode = ARGV[1]              -- 'claim' | 'release'
local name = ARGV[2]
local owner = ARGV[3]
local stale = ARGV[4]             -- '' : none
local now_ms = ARGV[5]

local holder = redis.call('HGET', K_NAMES, name)
-- (an organizer slug's value is its organizer id alone: written by sign-up)
local held_by_owner = holder and (holder == owner or string.sub(holder, 1, #owner + 1) == owner .. ' ')
if mode == 'release' then
  if held_by_owner then redis.call('HDEL', K_NAMES, name) end
  return OK
end
if holder and not held_by_owner and (stale == '' or holder ~= stale) then
  return {CLAIM_TAKEN, holder}
end
redis.call('HSET', K_NAMES, name, owner .. ' ' .. now_ms)
return OK
