-- The tenant's part of erasing a buyer (keys in the {t:<tenant>} slot), run after
-- every event's orders and holds were anonymized (erase_orders.lua): forget the
-- buyer's consent decision and subject mapping (so the tenant feed's entries about
-- them name nobody), then write a 'buyer.erased' feed entry and an audit entry.
-- Neither entry holds personal data. Result: {OK, subject}
local K_CONSENT, K_SUBJECTS, K_FEED, K_AUDIT = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local email = ARGV[1]
local new_subject = ARGV[2]       -- when the buyer never had one
local actor = ARGV[3]             -- the API key id that asked
local orders_erased = ARGV[4]
local holds_erased = ARGV[5]
local events_scanned = ARGV[6]
local order_refs = ARGV[7]        -- '<event>/<order>,...'
local actor_role = ARGV[8]
local tenant = ARGV[9]
-- KEYS[5]: the decisions by buyer id; ARGV[10..]: the buyer's ids (of its erased orders),
-- whose decisions and subjects go too
local K_CONSENT_IDS = KEYS[5]
for i = 10, #ARGV do
  local by_id = redis.call('HGET', K_CONSENT_IDS, ARGV[i])
  if by_id then redis.call('HDEL', K_SUBJECTS, cjson.decode(by_id).subject) end
  redis.call('HDEL', K_CONSENT_IDS, ARGV[i])
end

local subject = new_subject
local current = redis.call('HGET', K_CONSENT, email)
if current then subject = cjson.decode(current).subject end
redis.call('HDEL', K_CONSENT, email)
redis.call('HDEL', K_SUBJECTS, subject)
redis.call('XADD', K_FEED, '*', 'kind', 'buyer.erased', 'subject', subject, 'detail', order_refs)
-- the organizer's audit log, in the entry format every audited call uses
-- (holds/platform/records.py AuditEntry, ListAuditLog)
local t = redis.call('TIME')
local entry = cjson.encode({
  at_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
  actor_key_id = actor, actor_role = actor_role, method = '/seatwise.v1.FeedService/EraseBuyer',
  outcome = 'OK', organizer_id = tenant,
  targets = {subject = subject, orders = orders_erased, holds = holds_erased, events = events_scanned},
})
redis.call('XADD', K_AUDIT, 'MAXLEN', '~', 100000, '*', 'e', entry)
return {OK, subject}
