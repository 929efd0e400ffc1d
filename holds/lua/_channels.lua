-- Channels and allocations (holds/channels.py): prepended after the inventory prelude to
-- hold, box_office, snapshot and channel_*.lua. The channel keys are always the LAST four
-- KEYS (after the event's keys and, in box_office, its optional offer keys).
-- A seat allocated to an open channel has a field in K_ALLOC (ordinal -> channel id); only
-- a request with access to that channel may take it. A GA area's places reserved for a
-- channel are in K_GA_ALLOC ("<area>|<channel>" -> places still reserved) and summed per
-- area in K_GA_RESV: the general pool of an area is capacity - held - sold - reserved.
local K_CHANNELS, K_ALLOC = KEYS[#KEYS - 3], KEYS[#KEYS - 2]
local K_GA_ALLOC, K_GA_RESV = KEYS[#KEYS - 1], KEYS[#KEYS]

-- Append one allocation change to the event's stream (as emit does, same identity fields).
-- The seats and area go in fields of their own ('chseats', 'chga'), so a reader that knows
-- only seat states sees an entry that changes none. `op`: 'allocated' (the seats now belong
-- to `channel`), 'returned' (the seats are back in the general pool), 'reserved' | 'taken' |
-- 'returned' for an area: `reserved` is the area's places still reserved for `channel`.
local function emit_channel(op, channel, ordinals, area, reserved)
  local prev = last_at()
  local t = redis.call('TIME')
  stream_at = t[1] .. string.format('%06d', tonumber(t[2]))
  local seq = redis.call('INCR', K_SEQ)
  redis.call('XADD', K_CHANGES, 'MAXLEN', '~', CHANGES_MAXLEN, '0-' .. seq,
    'kind', 'channel', 'state', '', 'seats', '', 'ga', '', 'qty', 0, 'hold', '',
    'held', '', 'sold', '', 'at', stream_at, 'prev', prev,
    'op', op, 'channel', channel, 'chseats', table.concat(ordinals, ','), 'chga', area or '',
    'resv', reserved or 0)
  return seq
end

-- The channels a request may take: `named` ('' or nil: none) when `code` is its access code
-- and it is open; with `box_office`, every open box-office channel as well (a box-office
-- channel is never unlocked by a code). Returns the set, or nil and the refusal.
local function channel_access(named, code, box_office)
  local access = {}
  if named and named ~= '' then
    local raw = redis.call('HGET', K_CHANNELS, named)
    if not raw then return nil, {CHANNEL_DENIED, named} end
    local def = cjson.decode(raw)
    if def.kind == 'box_office' or def.access_code ~= code then return nil, {CHANNEL_DENIED, named} end
    if def.status ~= 'open' then return nil, {CHANNEL_CLOSED, named} end
    access[named] = true
  end
  if box_office and redis.call('EXISTS', K_CHANNELS) == 1 then
    local all = redis.call('HVALS', K_CHANNELS)
    for _, raw in ipairs(all) do
      local def = cjson.decode(raw)
      if def.kind == 'box_office' and def.status == 'open' then access[def.id] = true end
    end
  end
  return access
end

-- The ordinals ARGV[first + 1 .. first + n] allocated to a channel not in `access`.
local function channel_refused(first, n, access)
  local refused = {}
  if n == 0 or redis.call('EXISTS', K_ALLOC) == 0 then return refused end
  for i = 1, n do
    local o = ARGV[first + i]
    local ch = redis.call('HGET', K_ALLOC, o)
    if ch and not access[ch] then refused[#refused + 1] = o end
  end
  return refused
end

-- The channels of `access` in a fixed order (places are taken from them in this order).
local function sorted_access(access)
  local ids = {}
  for id in pairs(access) do ids[#ids + 1] = id end
  table.sort(ids)
  return ids
end

-- Places of GA `area` a request with `access` may take: the general pool (`free` is
-- capacity - held - sold) less every channel's reservation, plus its own channels' ones.
local function ga_room(area, free, access)
  local reserved = tonumber(redis.call('HGET', K_GA_RESV, area) or '0')
  if reserved == 0 then return free end
  local room = free - reserved
  for _, ch in ipairs(sorted_access(access)) do
    room = room + (tonumber(redis.call('HGET', K_GA_ALLOC, area .. '|' .. ch)) or 0)
  end
  return room
end

-- Take `qty` places of `area` for a request with `access` (ga_room said they fit): from its
-- channels' reservations first, then from the general pool; each channel's change is emitted.
local function ga_take(area, qty, access)
  if tonumber(redis.call('HGET', K_GA_RESV, area) or '0') == 0 then return end
  for _, ch in ipairs(sorted_access(access)) do
    if qty == 0 then return end
    local field = area .. '|' .. ch
    local r = tonumber(redis.call('HGET', K_GA_ALLOC, field)) or 0
    local take = math.min(r, qty)
    if take > 0 then
      if r == take then redis.call('HDEL', K_GA_ALLOC, field) else redis.call('HINCRBY', K_GA_ALLOC, field, -take) end
      if redis.call('HINCRBY', K_GA_RESV, area, -take) <= 0 then redis.call('HDEL', K_GA_RESV, area) end
      emit_channel('taken', ch, {}, area, r - take)
      qty = qty - take
    end
  end
end
