-- Move an event to another version of its seat map in ONE script (holds/remap.py): a dry
-- run's check and counts; moves are made in chunks (remap_begin.lua, remap_step.lua) to the
-- same final state, and this whole-move path stays as their reference (tests compare them).
-- Python derived the whole mapping (rules/remap.py): one target ordinal per seat of the
-- current version (-1: none). Every occupied seat (held by a live hold, sold, blocked,
-- not for sale) and every valid ticket's seat must have a target, no two may share one,
-- and every GA area with places held or sold must exist in the new version with room
-- for them; otherwise the answer names every seat and area that would be lost and
-- nothing is written. Then the seats hash, the holds' seat lists and the orders'
-- tickets are rewritten to the new ordinals (each moved ticket keeps its former
-- ordinals in `seat_was`, so the tokens already issued still scan), the GA areas
-- follow the new version, meta names it, and one change-stream entry (kind 'layout')
-- tells every mirror to start over; a lifecycle entry records the move for the feed.
-- Holds keep the categories they were held at (their buyer saw those prices); sold
-- tickets keep category and price. O(seats occupied + holds + orders): an organizer's
-- rare change, never on a request path.
-- Result: {OK, seq, seats moved, holds rewritten, orders rewritten, tickets moved, dry(0|1)}
--         | {EVENT_NOT_FOUND} | {LAYOUT_CHANGED, version now}
--         | {SEATS_LOST, {ordinal, state, ...}, {area, places, capacity, ...}}
--         | {TARGET_TAKEN, new ordinal, old ordinal}
local from_version = ARGV[1]       -- the version the mapping was derived from (fence)
local to_version = ARGV[2]
local dry = ARGV[3] == '1'         -- check and count only; write nothing
local n_old = tonumber(ARGV[4])    -- then n_old targets, one per old ordinal (0-based order)
local T0 = 4
-- then n_ga (area, capacity, category) triples
local G0 = T0 + n_old + 1

local current = redis.call('HGET', K_META, 'seat_map_version')
if not current then return {EVENT_NOT_FOUND} end
if current ~= from_version then return {LAYOUT_CHANGED, current} end
-- a move in chunks holds the event (_layout.lua): no second move writes meanwhile
if not dry and tonumber(redis.call('HGET', K_META, 'moving') or '0') > now_ms() then return {EVENT_MOVING, 1000} end

local NO_TARGET = -1
local function target(o)
  local i = tonumber(o)
  if i == nil or i < 0 or i >= n_old then return NO_TARGET end
  return tonumber(ARGV[T0 + 1 + i])
end

local now = now_ms()
-- 1. check, writing nothing
local lost_seats, lost_ga = {}, {}
local taken = {}            -- new ordinal -> old ordinal
local moved = {}            -- {old, new, value}
local seats = redis.call('HGETALL', K_SEATS)
for i = 1, #seats, 2 do
  local o, value = seats[i], seats[i + 1]
  local state = seat_state(value, now)
  if state ~= 'free' then
    local n = target(o)
    if n < 0 then
      lost_seats[#lost_seats + 1] = o
      lost_seats[#lost_seats + 1] = state
    elseif taken[n] then
      return {TARGET_TAKEN, n, taken[n]}
    else
      taken[n] = o
      moved[#moved + 1] = {o, n, value}
    end
  end
end
local new_ga = remap_ga_args(G0)
local live_ga = {}          -- area -> places held by live holds
local holds = redis.call('HGETALL', K_HOLDS)
for i = 1, #holds, 2 do
  local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, holds[i]))
  local hold = cjson.decode(holds[i + 1])
  if exp and exp > now and type(hold.ga) == 'table' then
    for area, qty in pairs(hold.ga) do live_ga[area] = (live_ga[area] or 0) + qty end
  end
end
lost_ga = remap_lost_ga(new_ga, function(area) return live_ga[area] or 0 end)
if #lost_seats > 0 or #lost_ga > 0 then return {SEATS_LOST, lost_seats, lost_ga} end

-- counts (what a dry run reports; a move counts the orders as it rewrites them)
local hold_count = 0
for i = 1, #holds, 2 do
  local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, holds[i]))
  if exp and exp > now and #as_array(cjson.decode(holds[i + 1]).seats) > 0 then hold_count = hold_count + 1 end
end
-- Each order's tickets whose seat changes ordinal get the new one (_remap.lua).
local function moved_order(raw, write) return remap_order(raw, write, target) end

-- Every order through moved_order (`write` false: counted only); orders changed, tickets moved.
local function rewrite_orders(write)
  local order_count, ticket_count = 0, 0
  local flat = redis.call('HGETALL', K_ORDERS)   -- not HSCAN: it may return an order twice
  for i = 1, #flat, 2 do
    local moves, json = moved_order(flat[i + 1], write)
    if moves > 0 then
      order_count, ticket_count = order_count + 1, ticket_count + moves
      if write then redis.call('HSET', K_ORDERS, flat[i], json) end
    end
  end
  return order_count, ticket_count
end
if dry then
  local order_count, ticket_count = rewrite_orders(false)
  return {OK, tonumber(redis.call('GET', K_SEQ) or '0'), #moved, hold_count, order_count, ticket_count, 1}
end

-- 2. apply: expired holds go first (their seats read free above: nothing of theirs moves)
while purge_expired(now, 500) == 500 do end
redis.call('DEL', K_SEATS)
local batch = {}
for _, m in ipairs(moved) do
  batch[#batch + 1] = m[2]
  batch[#batch + 1] = m[3]
  if #batch >= 1000 then redis.call('HSET', K_SEATS, unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('HSET', K_SEATS, unpack(batch)) end
holds = redis.call('HGETALL', K_HOLDS)
for i = 1, #holds, 2 do
  local hold = cjson.decode(holds[i + 1])
  local list = as_array(hold.seats)
  if #list > 0 then
    for k, o in ipairs(list) do list[k] = target(o) end
    hold.seats = list
    redis.call('HSET', K_HOLDS, holds[i], cjson.encode(hold))
  end
end
local order_count, ticket_count = rewrite_orders(true)
local seq = remap_finish(new_ga, from_version, to_version, now)
return {OK, seq, #moved, hold_count, order_count, ticket_count, 0}
