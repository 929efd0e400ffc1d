-- One step of a move in chunks (holds/remap.py; begun by remap_begin.lua), bounded by the
-- chunk sizes so the shard serves other events between steps. The event's state stays still
-- meanwhile (_layout.lua), every step renews the lease, and the new state is written beside
-- the old one (KEYS: holds/keys.py MOVE_KEY_NAMES) until the last step swaps it in, so a
-- reader sees the old version whole until then. The phases, in order, with what the
-- whole-move script (remap.lua) does, to the same final state:
--   seats   old ordinals [cursor, cursor + n) with their targets from Python: the mapping is
--           kept (move_map); each occupied seat (at the move's frozen `now`) goes to
--           seats_next at its target, or to move_lost when it has none
--   holds   HSCAN: each hold that is not expired, its seats rewritten, to holds_next; the
--           places of live holds per GA area counted (once per hold: HSET says it is new)
--   check   lost seats or GA places: rolled back, {SEATS_LOST, ...} as remap.lua answers
--   purge   expired holds purged (as remap.lua does, in order of expiry), `n` per step
--   orders  HSCAN: every order to orders_next, its tickets' seats rewritten
--   swap    seats_next, holds_next, orders_next replace seats, holds, orders (UNLINK, RENAME);
--           GA areas, meta, the `layout` and lifecycle entries as remap.lua; every live hold's
--           lease moved on by the time the move held the event (move_give_time: O(live holds),
--           also on a refusal in a step); the lease ends
-- ARGV: digest, seats per step, records per step, lease ms, start, n, n targets (the seats
-- phase only: old ordinals start..start+n-1), then n_ga (area, capacity, category) triples.
-- Result: {MOVE_STEP, phase, cursor}: the next step | {OK, seq, seats, holds, orders, tickets, 0}
--         | {MOVE_LAPSED}: rolled back, begin again | {SEATS_LOST, {ordinal, state, ...}, {area, ...}}
--         | {TARGET_TAKEN, new ordinal, old ordinal} | {MOVE_HAS_CHANNELS}
local digest = ARGV[1]
local seat_chunk, record_chunk, lease_ms = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local start, n_t = tonumber(ARGV[5]), tonumber(ARGV[6])
local T0 = 6
local G0 = T0 + n_t + 1

local now = now_ms()
local m = redis.call('HMGET', K_MOVE, 'digest', 'phase', 'cursor', 'now', 'n_old', 'from', 'to')
if m[1] ~= digest then return {MOVE_LAPSED} end
if tonumber(redis.call('HGET', K_META, 'moving') or '0') <= now then
  move_rollback()
  return {MOVE_LAPSED}
end
redis.call('HSET', K_META, 'moving', now + lease_ms)
local phase, cursor, frozen, n_old = m[2], m[3], tonumber(m[4]), tonumber(m[5])

local map_memo = {}
local function target(o)
  local key = tostring(o)
  if map_memo[key] == nil then map_memo[key] = tonumber(redis.call('HGET', K_MOVE_MAP, key)) or -1 end
  return map_memo[key]
end

local function advance(next_phase, next_cursor)
  redis.call('HSET', K_MOVE, 'phase', next_phase, 'cursor', next_cursor)
  return {MOVE_STEP, next_phase, tostring(next_cursor)}
end

if phase == 'seats' then
  if start ~= tonumber(cursor) or n_t > seat_chunk then return {MOVE_STEP, phase, cursor} end
  local fields = {}
  for i = 0, n_t - 1 do fields[i + 1] = start + i end
  local values = n_t > 0 and redis.call('HMGET', K_SEATS, unpack(fields)) or {}
  local map, moved = {}, 0
  for i = 0, n_t - 1 do
    local o, n = start + i, tonumber(ARGV[T0 + 1 + i])
    map[#map + 1] = o
    map[#map + 1] = n
    if #map >= 1000 then redis.call('HSET', K_MOVE_MAP, unpack(map)); map = {} end
    local value = values[i + 1]
    local state = seat_state(value, frozen)
    if state ~= 'free' then
      if n < 0 then
        redis.call('HSET', K_MOVE_LOST, o, state)
      elseif redis.call('HSETNX', K_SEATS_NEXT, n, value) == 0 then
        move_give_time(frozen, now)
        move_rollback()
        return {TARGET_TAKEN, n, o}
      else
        moved = moved + 1
      end
    end
  end
  if #map > 0 then redis.call('HSET', K_MOVE_MAP, unpack(map)) end
  redis.call('HINCRBY', K_MOVE, 'seats', moved)
  if start + n_t >= n_old then return advance('holds', '0') end
  return advance('seats', start + n_t)
end

if phase == 'holds' then
  local scan = redis.call('HSCAN', K_HOLDS, cursor, 'COUNT', record_chunk)
  local flat = scan[2]
  for i = 1, #flat, 2 do
    local hold_id, raw = flat[i], flat[i + 1]
    local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id))
    if not (exp and exp <= frozen) then  -- an expired hold is purged, not moved
      local hold = cjson.decode(raw)
      local list = as_array(hold.seats)
      local out = raw
      if #list > 0 then
        for k, o in ipairs(list) do list[k] = target(o) end
        hold.seats = list
        out = cjson.encode(hold)
      end
      if redis.call('HSET', K_HOLDS_NEXT, hold_id, out) == 1 and exp then  -- live, counted once
        if #list > 0 then redis.call('HINCRBY', K_MOVE, 'holds', 1) end
        if type(hold.ga) == 'table' then
          for area, qty in pairs(hold.ga) do redis.call('HINCRBY', K_MOVE, 'ga:' .. area, qty) end
        end
      end
    end
  end
  if scan[1] == '0' then return advance('check', '0') end
  return advance('holds', scan[1])
end

if phase == 'check' then
  local lost_ga = remap_lost_ga(remap_ga_args(G0), function(area)
    return tonumber(redis.call('HGET', K_MOVE, 'ga:' .. area)) or 0
  end)
  local lost_seats = redis.call('HGETALL', K_MOVE_LOST)
  if #lost_seats > 0 or #lost_ga > 0 then
    move_give_time(frozen, now)
    move_rollback()
    return {SEATS_LOST, lost_seats, lost_ga}
  end
  return advance('purge', '0')
end

if phase == 'purge' then
  if purge_expired(frozen, record_chunk) < record_chunk then return advance('orders', '0') end
  return advance('purge', '0')
end

if phase == 'orders' then
  local scan = redis.call('HSCAN', K_ORDERS, cursor, 'COUNT', record_chunk)
  local flat = scan[2]
  for i = 1, #flat, 2 do
    local moves, json = remap_order(flat[i + 1], true, target)
    if redis.call('HSET', K_ORDERS_NEXT, flat[i], json or flat[i + 1]) == 1 and moves > 0 then
      redis.call('HINCRBY', K_MOVE, 'orders', 1)
      redis.call('HINCRBY', K_MOVE, 'tickets', moves)
    end
  end
  if scan[1] == '0' then return advance('swap', '0') end
  return advance('orders', scan[1])
end

-- swap: O(1) but for the GA areas and the live holds' leases (UNLINK frees the old hashes in
-- the background)
if redis.call('EXISTS', K_MOVE_CHANNELS) == 1 then
  move_give_time(frozen, now)
  move_rollback()
  return {MOVE_HAS_CHANNELS}
end
for _, pair in ipairs({{K_SEATS, K_SEATS_NEXT}, {K_HOLDS, K_HOLDS_NEXT}, {K_ORDERS, K_ORDERS_NEXT}}) do
  redis.call('UNLINK', pair[1])
  if redis.call('EXISTS', pair[2]) == 1 then redis.call('RENAME', pair[2], pair[1]) end
end
local counts = redis.call('HMGET', K_MOVE, 'seats', 'holds', 'orders', 'tickets')
local seq = remap_finish(remap_ga_args(G0), m[6], m[7], now)
move_give_time(frozen, now)  -- the holds get back the time the event was held (_remap.lua)
redis.call('UNLINK', K_MOVE, K_MOVE_MAP, K_MOVE_LOST)
redis.call('HDEL', K_META, 'moving')
return {OK, seq, tonumber(counts[1]), tonumber(counts[2]), tonumber(counts[3]), tonumber(counts[4]), 0}
