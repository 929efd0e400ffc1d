-- Count an organizer's use of a plan limit in a billing period, refusing what
-- would exceed it; records each 80 % / 100 % threshold once per period (a
-- marker in the usage hash and an entry of the organizer's notifications).
-- Keys in the organizer's {t:<tenant>} slot.
-- ARGV[2] now (ms), ARGV[6] the period (YYYY-MM), ARGV[7] the platform id, ARGV[8] the organizer id.
-- Modes:
--   'add'    ARGV[3] limit name, ARGV[4] amount, ARGV[5] limit (0: none): counts the amount,
--            refusing when the period's usage would pass the limit
--   'count'  as 'add', never refusing (what already happened: tickets of a committed order)
--   'peak'   as 'add' for a size (a seat map's places): refused above the limit, the period's
--            usage is the largest size seen
--   'event'  ARGV[3] event id, ARGV[4] events-per-month limit, ARGV[5] active-events limit:
--            counts one event created this period and adds it to the active set
--   'claim'  as 'add', but the amount goes to '<name>:claimed' (places of a sale not yet
--            made: holds/platform/notifications.py TicketClaim); refused when sold + claimed
--            + amount would pass the limit; no threshold is recorded until the sale is made
--   'settle' ARGV[4] the claimed amount to drop, ARGV[9] the amount the sale made (0: none,
--            the claim given back): counted as 'count' does, thresholds on what was sold
-- Result: {OK, notify...} | {LIMIT_REACHED, limit name, usage, notify...}
-- where notify is a flat list of limit name, threshold (80|100), usage, limit.
local K_USAGE, K_ACTIVE, K_NOTES = KEYS[1], KEYS[2], KEYS[3]
local mode = ARGV[1]
local now_ms = ARGV[2]
local period = ARGV[6]
local platform = ARGV[7]
local organizer = ARGV[8]

local notify = {}
local function note(name, threshold, usage, limit)
  if redis.call('HSETNX', K_USAGE, 'n:' .. name .. ':' .. threshold, now_ms) == 1 then
    for _, v in ipairs({name, threshold, usage, limit}) do notify[#notify + 1] = v end
    redis.call('XADD', K_NOTES, 'MAXLEN', '~', 10000, '*', 'e', cjson.encode({
      at_ms = tonumber(now_ms), organizer_id = organizer, kind = 'limit_' .. threshold,
      limit = name, limit_value = limit, usage = usage, period = period, platform_id = platform}))
  end
end
local function crossed(name, before, after, limit)
  if limit <= 0 then return end
  if before * 100 < 80 * limit and after * 100 >= 80 * limit then note(name, 80, after, limit) end
  if before < limit and after >= limit then note(name, 100, after, limit) end
end
local function refused(name, usage, limit)
  note(name, 100, usage, limit)
  local reply = {LIMIT_REACHED, name, usage}
  for _, v in ipairs(notify) do reply[#reply + 1] = v end
  return reply
end

if mode == 'add' or mode == 'count' then
  local name, amount, limit = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local before = tonumber(redis.call('HGET', K_USAGE, name) or '0')
  if mode == 'add' and limit > 0 and before + amount > limit then return refused(name, before, limit) end
  local after = redis.call('HINCRBY', K_USAGE, name, amount)
  crossed(name, before, after, limit)
elseif mode == 'claim' then
  local name, amount, limit = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local sold = tonumber(redis.call('HGET', K_USAGE, name) or '0')
  local claimed = tonumber(redis.call('HGET', K_USAGE, name .. ':claimed') or '0')
  if limit > 0 and sold + claimed + amount > limit then return refused(name, sold + claimed, limit) end
  redis.call('HINCRBY', K_USAGE, name .. ':claimed', amount)
elseif mode == 'settle' then
  local name, claimed, limit, made = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[9])
  if redis.call('HINCRBY', K_USAGE, name .. ':claimed', -claimed) <= 0 then
    redis.call('HDEL', K_USAGE, name .. ':claimed')
  end
  if made > 0 then
    local before = tonumber(redis.call('HGET', K_USAGE, name) or '0')
    crossed(name, before, redis.call('HINCRBY', K_USAGE, name, made), limit)
  end
elseif mode == 'peak' then
  local name, size, limit = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local before = tonumber(redis.call('HGET', K_USAGE, name) or '0')
  if limit > 0 and size > limit then return refused(name, size, limit) end
  if size > before then
    redis.call('HSET', K_USAGE, name, size)
    crossed(name, before, size, limit)
  end
else
  local event_id, per_month, active = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local created = tonumber(redis.call('HGET', K_USAGE, 'events_per_month') or '0')
  local running = redis.call('SCARD', K_ACTIVE)
  if per_month > 0 and created + 1 > per_month then return refused('events_per_month', created, per_month) end
  if active > 0 and running + 1 > active then return refused('active_events', running, active) end
  redis.call('HINCRBY', K_USAGE, 'events_per_month', 1)
  redis.call('SADD', K_ACTIVE, event_id)
  crossed('events_per_month', created, created + 1, per_month)
  crossed('active_events', running, running + 1, active)
end
local reply = {OK}
for _, v in ipairs(notify) do reply[#reply + 1] = v end
return reply
