-- Record a buyer's marketing decision for one tenant (keys in the {t:<tenant>} slot):
-- the newest decided_at wins (an equal time: the later arrival). An applied
-- decision is a 'consent.changed' entry of the tenant's feed stream, which names
-- the buyer by subject id only (the subjects hash maps it to the email until erased).
-- Result: {OK, decision_json, applied(0|1)}
local K_CONSENT, K_SUBJECTS, K_FEED = KEYS[1], KEYS[2], KEYS[3]
local email = ARGV[1]             -- normalized (holds/feed/privacy.py)
local new_subject = ARGV[2]       -- used when the buyer has no subject yet
local opted_in = ARGV[3] == '1'
local source = ARGV[4]
local decided_at_ms = tonumber(ARGV[5])
local recorded_ms = tonumber(ARGV[6])

local subject = new_subject
local current = redis.call('HGET', K_CONSENT, email)
if current then
  local decision = cjson.decode(current)
  subject = decision.subject
  if tonumber(decision.decided_at_ms) > decided_at_ms then return {OK, current, 0} end
end
local decision = cjson.encode({subject = subject, opted_in = opted_in, source = source,
  decided_at_ms = decided_at_ms, recorded_ms = recorded_ms})
redis.call('HSET', K_CONSENT, email, decision)
redis.call('HSET', K_SUBJECTS, subject, email)
redis.call('XADD', K_FEED, '*', 'kind', 'consent.changed', 'subject', subject, 'detail', decision)
return {OK, decision, 1}
