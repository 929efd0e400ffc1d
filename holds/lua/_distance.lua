-- Minimum-distance seating (docs/selling.md), prepended after the inventory prelude to
-- hold.lua, box_office.lua and exchange.lua. Which seats are neighbours is the seat map's geometry,
-- computed in Python (seatmap/distancing.py) from the rule Python knows; the script
-- checks that rule is still the event's (meta 'distancing') before trusting it.
-- Python appends to ARGV, last: 'distancing', the rule's text, one
-- '<asked ordinal>:<neighbour>,<neighbour>,...' per asked seat, then how many
-- arguments that was (2 + seats). Missing arguments read as "no rule known", so an
-- event with a rule answers DISTANCE_RULE_CHANGED: a caller can never skip the check.
local DISTANCE_MARK = 'distancing'

-- nil when every asked seat keeps the distance from every other group (a seat whose
-- value is `own`: the asking hold or order is the same group), else
-- {DISTANCE_RULE_CHANGED, stored rule} (Python reloads it and asks again) or
-- {SEATS_DISTANCED, {asked ordinal...}}: a neighbour is sold, or held by a live hold.
-- `last`: where the arguments end (their count's position; a season hold passes one set
-- per event, holds/lua/season_hold.lua).
local function distance_refusal_at(own, now, last)
  local n = tonumber(ARGV[last]) or -1
  local base = last - n
  local rule = ''
  if n >= 2 and ARGV[base] == DISTANCE_MARK then rule = ARGV[base + 1] else n = -1 end
  local stored = redis.call('HGET', K_META, 'distancing') or ''
  if stored ~= rule then return {DISTANCE_RULE_CHANGED, stored} end
  if rule == '' then return nil end
  local refused = {}
  for i = base + 2, last - 1 do
    local spec = ARGV[i]
    local sep = string.find(spec, ':', 1, true)
    for o in string.gmatch(string.sub(spec, sep + 1), '%d+') do
      local value = redis.call('HGET', K_SEATS, o)
      if value and value ~= own then
        local prefix = string.sub(value, 1, 2)
        if prefix == SOLD_PREFIX or (prefix == HELD_PREFIX and not seat_is_free(value, now)) then
          refused[#refused + 1] = string.sub(spec, 1, sep - 1)
          break
        end
      end
    end
  end
  if #refused > 0 then return {SEATS_DISTANCED, refused} end
  return nil
end

local function distance_refusal(own, now) return distance_refusal_at(own, now, #ARGV) end
