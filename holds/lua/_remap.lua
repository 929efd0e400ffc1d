-- Moving an event to another seat-map version (holds/remap.py): prepended after the inventory
-- prelude to remap.lua (the whole move in one script: dry runs) and to remap_begin.lua and
-- remap_step.lua (the move in chunks). KEYS of the chunked scripts: the event's 21, then its
-- move keys (holds/keys.py MOVE_KEY_NAMES), then its `channels` key.
local K_MOVE, K_MOVE_MAP, K_MOVE_LOST = KEYS[22], KEYS[23], KEYS[24]
local K_SEATS_NEXT, K_HOLDS_NEXT, K_ORDERS_NEXT = KEYS[25], KEYS[26], KEYS[27]
local K_MOVE_CHANNELS = KEYS[28]

-- An order's tickets whose seat changes ordinal get the new one (`target(o)`; -1: a cancelled
-- or exchanged ticket's seat without a target) and keep the old one in `seat_was`.
-- Returns how many tickets moved and the order's new JSON (nil: none moved, or not `write`).
local function remap_order(raw, write, target)
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

-- GA areas of the target version: ARGV[base] = n, then n (area, capacity, category) triples.
local function remap_ga_args(base)
  local new_ga = {}
  for j = 0, tonumber(ARGV[base]) - 1 do
    new_ga[ARGV[base + 1 + 3 * j]] = {tonumber(ARGV[base + 2 + 3 * j]), ARGV[base + 3 + 3 * j]}
  end
  return new_ga
end

-- GA areas that would lose places: {area, places held by live holds or sold, new capacity
-- (-1: not in the target), ...}; `live_ga(area)` the places live holds have there.
local function remap_lost_ga(new_ga, live_ga)
  local lost_ga = {}
  local caps = redis.call('HGETALL', K_GA_CAP)
  for i = 1, #caps, 2 do
    local area = caps[i]
    local places = live_ga(area) + (tonumber(redis.call('HGET', K_GA_SOLD, area)) or 0)
    local wanted = new_ga[area]
    if places > 0 and (not wanted or wanted[1] < places) then
      lost_ga[#lost_ga + 1] = area
      lost_ga[#lost_ga + 1] = places
      lost_ga[#lost_ga + 1] = wanted and wanted[1] or -1
    end
  end
  return lost_ga
end

-- The GA areas follow the target version, meta names it, one `layout` entry tells every
-- mirror to start over and a lifecycle entry records the move. Returns the entry's seq.
local function remap_finish(new_ga, from_version, to_version, now)
  local caps = redis.call('HGETALL', K_GA_CAP)
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
  return seq
end

-- A chunked move held the event from `frozen` (its begin) to `now`: its holds could be neither
-- committed nor extended meanwhile, and every one live at `frozen` gets that time back on its
-- lease (the lease set is the expiry every script reads), so it has after the move what it had
-- left when the move began. Called in the step that ends the move (the swap, or a refusal).
local function move_give_time(frozen, now)
  local gap = now - frozen
  if gap <= 0 then return end
  local live = redis.call('ZRANGEBYSCORE', K_HOLDEXP, '(' .. frozen, '+inf', 'WITHSCORES')
  local batch = {}
  for i = 1, #live, 2 do
    batch[#batch + 1] = tonumber(live[i + 1]) + gap
    batch[#batch + 1] = live[i]
    if #batch >= 1000 then redis.call('ZADD', K_HOLDEXP, 'XX', unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('ZADD', K_HOLDEXP, 'XX', unpack(batch)) end
end

-- A chunked move given up (refused, lapsed): what it wrote beside goes, the event sells again.
local function move_rollback()
  redis.call('UNLINK', K_MOVE, K_MOVE_MAP, K_MOVE_LOST, K_SEATS_NEXT, K_HOLDS_NEXT, K_ORDERS_NEXT)
  redis.call('HDEL', K_META, 'moving')
end
