-- Move an event to another version of its seat map, atomically (holds/remap.py).
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
local n_ga = tonumber(ARGV[T0 + n_old + 1])   -- then n_ga (area, capacity, category) triples
local G0 = T0 + n_old + 1

local current = redis.call('HGET', K_META, 'seat_map_version')
if not current then return {EVENT_NOT_FOUND} end
if current ~= from_version then return {LAYOUT_CHANGED, current} end

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
local new_ga = {}
for j = 0, n_ga - 1 do
  new_ga[ARGV[G0 + 1 + 3 * j]] = {tonumber(ARGV[G0 + 2 + 3 * j]), ARGV[G0 + 3 + 3 * j]}
end
local live_ga = {}          -- area -> places held by live holds
local holds = redis.call('HGETALL', K_HOLDS)
for i = 1, #holds, 2 do
  local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, holds[i]))
  local hold = cjson.decode(holds[i + 1])
  if exp and exp > now and type(hold.ga) == 'table' then
    for area, qty in pairs(hold.ga) do live_ga[area] = (live_ga[area] or 0) + qty end
  end
end
local caps = redis.call('HGETALL', K_GA_CAP)
for i = 1, #caps, 2 do
  local area = caps[i]
  local places = (live_ga[area] or 0) + (tonumber(redis.call('HGET', K_GA_SOLD, area)) or 0)
  local wanted = new_ga[area]
  if places > 0 and (not wanted or wanted[1] < places) then
    lost_ga[#lost_ga + 1] = area
    lost_ga[#lost_ga + 1] = places
    lost_ga[#lost_ga + 1] = wanted and wanted[1] or -1
  end
end
if #lost_seats > 0 or #lost_ga > 0 then return {SEATS_LOST, lost_seats, lost_ga} end

-- counts (what a dry run reports; a move counts the orders as it rewrites them)
local hold_count = 0
for i = 1, #holds, 2 do
  local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, holds[i]))
  if exp and exp > now and #as_array(cjson.decode(holds[i + 1]).seats) > 0 then hold_count = hold_count + 1 end
end
-- Each order's tickets whose seat changes ordinal get the new one (-1: a cancelled or
-- exchanged ticket's seat without a target) and keep the old one in `seat_was`.
-- Returns how many tickets moved and the order's new JSON (nil: none moved, or not `write`).
local function moved_order(raw, write)
  local moves = 0
  if not string.find(raw, '"seat":%d') then return moves, nil end  -- general admission only
  local order = cjson.decode(raw)
  for _, t in ipairs(as_array(order.tickets)) do
    local o = tonumber(t.seat)
    if o ~= nil and o >= 0 then
      local n = target(o)
      if n ~= o then
        moves = moves + 1
        local was = as_array(t.seat_was)
        was[#was + 1] = o
        t.seat_was = was
        t.seat = n
      end
    end
  end
  return moves, write and moves > 0 and cjson.encode(order) or nil
end

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
for i = 1, #caps, 2 do
  if not new_ga[caps[i]] then
    redis.call('HDEL', K_GA_CAP, caps[i])
    redis.call('HDEL', K_GA_HELD, caps[i])
    redis.call('HDEL', K_GA_SOLD, caps[i])
    redis.call('HDEL', K_META, 'ga_category:' .. caps[i])
  end
end
for area, spec in pairs(new_ga) do
  redis.call('HSET', K_GA_CAP, area, spec[1])
  redis.call('HSET', K_META, 'ga_category:' .. area, spec[2])
end
redis.call('HSET', K_META, 'seat_map_version', to_version, 'updated_at_ms', tostring(now))
local seq = emit('layout', 'moved', {}, nil, 0, '')
redis.call('XADD', K_LIFECYCLE, '*', 'kind', 'event.seat_map_moved', 'order', '',
  'detail', from_version .. '|' .. to_version, 'seq', seq)
return {OK, seq, #moved, hold_count, order_count, ticket_count, 0}
