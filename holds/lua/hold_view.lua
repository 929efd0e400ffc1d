-- Read one hold with Redis's own clock, atomically and inside the event's slot.
-- (A script, not a pipeline: on Redis Cluster a pipeline cannot send TIME, and
-- the clock that decides expiry is the one of the node that owns the event.)
-- Result: {OK, hold_json, expires_ms, now_ms} | gone_reply
local hold_id = ARGV[1]

local raw = redis.call('HGET', K_HOLDS, hold_id)
local exp = redis.call('ZSCORE', K_HOLDEXP, hold_id)
if not raw or not exp then return gone_reply(hold_id) end
return {OK, raw, tonumber(exp), now_ms()}
