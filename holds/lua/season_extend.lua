-- Extend a live season hold: every event's hold gets the same new expiry, now + the
-- shortest hold TTL of its events (or ARGV[2] ms when given), never past the earliest
-- created + total hold lifetime cap of its events, never shorter. Only while every
-- event takes new holds (as extend.lua).
-- Result: {OK, new_expires_ms, capped(0|1), record_json} | {HOLD_NOT_FOUND} | {SEASON_HOLD_CHANGED}
--         | {HOLD_RELEASED} | {HOLD_COMMITTED, season order} | {HOLD_EXPIRED}
--         | {SEASON_EVENT, position, {EVENT_NOT_FOUND} | {NOT_ON_SALE, status} | gone_reply | {HOLD_EXPIRED}}
local hold_id = ARGV[1]
local requested_ms = tonumber(ARGV[2])    -- 0: the events' shortest hold TTL
local events = season_event_args(3)

local rec, refused = season_hold(hold_id, events)
if not rec then return refused end
local now = now_ms()
refused = season_hold_gone(rec, now)
if refused then return refused end
local ttl, limit, holds = nil, nil, {}
for i = 1, #events do
  use_event(i)
  local settings, problem = sale_settings(now)
  if problem == 'no_event' then return {SEASON_EVENT, i, {EVENT_NOT_FOUND}} end
  if problem == 'not_on_sale' then return {SEASON_EVENT, i, {NOT_ON_SALE, settings.status}} end
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if not raw then return {SEASON_EVENT, i, gone_reply(hold_id)} end
  if tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id)) <= now then return {SEASON_EVENT, i, {HOLD_EXPIRED}} end
  holds[i] = cjson.decode(raw)
  if ttl == nil or settings.ttl < ttl then ttl = settings.ttl end
  local cap = holds[i].created + settings.lifetime
  if limit == nil or cap < limit then limit = cap end
end
local wanted = now + (requested_ms > 0 and requested_ms or ttl)
local new_exp = math.min(wanted, limit)
local capped = 0
if wanted > limit then capped = 1 end
if new_exp < rec.expires then new_exp = rec.expires end   -- extending never shortens
for i = 1, #events do
  use_event(i)
  holds[i].expires = new_exp
  redis.call('HSET', K_HOLDS, hold_id, cjson.encode(holds[i]))
  redis.call('ZADD', K_HOLDEXP, new_exp, hold_id)
end
rec.expires = new_exp
save_season_hold(hold_id, rec, new_exp, now)
return {OK, new_exp, capped, cjson.encode(rec)}
