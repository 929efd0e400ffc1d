-- Release a season hold: every event's hold ends and frees its seats (as release.lua
-- releasing a whole hold), in one step; a channel's GA places go back to it in each event.
-- KEYS: the season's, each event's 21, then each event's 4 channel keys (_season.lua use_event).
-- Result: {OK} | {HOLD_NOT_FOUND} | {SEASON_HOLD_CHANGED} | {HOLD_RELEASED} | {HOLD_COMMITTED, season order}
--         | {HOLD_EXPIRED}
local hold_id = ARGV[1]
local purge_limit = tonumber(ARGV[2])
local events = season_event_args(3)

local rec, refused = season_hold(hold_id, events)
if not rec then return refused end
local now = now_ms()
refused = season_hold_gone(rec, now)
if refused then return refused end
for i = 1, #events do
  use_event(i)
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if raw then drop_hold(hold_id, cjson.decode(raw), 'released') end
  purge_expired(now, purge_limit)
end
rec.status = 'released'
save_season_hold(hold_id, rec, now, now)
return {OK}
