-- Channels and allocations (holds/channels.py): prepended after the inventory prelude to
-- hold, box_office, snapshot, channel_*.lua and the scripts that give GA places back
-- (release, reap, commit, cancel, refund, exchange, the season scripts, the cross-event
-- exchange's: holds/scripts.py CHANNEL_SCRIPTS). The channel keys are always the LAST four
-- KEYS (after the event's keys and any group's keys); a script over several events passes
-- each event's four, the last event's last, and switches with channel_back.use.
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
-- Returns what came from channels, {{channel, places}, ...} in the order taken.
local function ga_take(area, qty, access)
  local takes = {}
  if tonumber(redis.call('HGET', K_GA_RESV, area) or '0') == 0 then return takes end
  for _, ch in ipairs(sorted_access(access)) do
    if qty == 0 then return takes end
    local field = area .. '|' .. ch
    local r = tonumber(redis.call('HGET', K_GA_ALLOC, field)) or 0
    local take = math.min(r, qty)
    if take > 0 then
      if r == take then redis.call('HDEL', K_GA_ALLOC, field) else redis.call('HINCRBY', K_GA_ALLOC, field, -take) end
      if redis.call('HINCRBY', K_GA_RESV, area, -take) <= 0 then redis.call('HDEL', K_GA_RESV, area) end
      emit_channel('taken', ch, {}, area, r - take)
      takes[#takes + 1] = {ch, take}
      qty = qty - take
    end
  end
  return takes
end

-- GA places taken from a channel's reservation remember it: a hold in `chga`
-- ("<area>|<channel>" -> places, part of hold.ga[area]), a ticket in `ga_channel`. When they
-- go back (release, expiry, cancel, refund, exchange) they return to that channel while it
-- is open, else to the general pool, in the script that frees them.
-- (One table of functions, channel_back of the prelude: a script has at most 200 locals.)
channel_back.open_memo = {}
function channel_back.open(ch)
  local open_memo = channel_back.open_memo
  local at = K_CHANNELS .. '|' .. ch  -- per event: a script over several events switches keys
  if open_memo[at] == nil then
    local raw = redis.call('HGET', K_CHANNELS, ch)
    open_memo[at] = raw and cjson.decode(raw).status == 'open' or false
  end
  return open_memo[at]
end

-- Scripts over several events of one slot (a season's, an exchange's two) pass each event's
-- four channel keys: point the names above at those after KEYS[b].
function channel_back.use(b)
  K_CHANNELS, K_ALLOC, K_GA_ALLOC, K_GA_RESV = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
end

-- `n` places of `area` go back to `channel`'s reservation if it is open (emitted: op
-- 'restored', `resv` the places now reserved); else they stay in the general pool.
function channel_back.reserve(area, ch, n)
  if n <= 0 or not channel_back.open(ch) then return end
  local r = redis.call('HINCRBY', K_GA_ALLOC, area .. '|' .. ch, n)
  redis.call('HINCRBY', K_GA_RESV, area, n)
  emit_channel('restored', ch, {}, area, r)
end

-- The fields of a hold's chga, sorted, each as {field, area, channel, places}.
function channel_back.places(hold)
  local out = {}
  if type(hold.chga) ~= 'table' then return out end
  for f, n in pairs(hold.chga) do
    local area, ch = string.match(f, '^(.*)|([^|]*)$')
    out[#out + 1] = {f, area, ch, n}
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

-- Note in `hold` the places of `area` that ga_take took from channels.
function channel_back.note(hold, area, takes)
  if #takes == 0 then return end
  local chga = type(hold.chga) == 'table' and hold.chga or {}
  for _, take in ipairs(takes) do
    local f = area .. '|' .. take[1]
    chga[f] = (chga[f] or 0) + take[2]
  end
  hold.chga = chga
end

-- A hold releases `qty` places of `area` and keeps `kept`: its general places go first, then
-- its channels' in reverse order of id (ga_take took channels first, in order of id).
function channel_back.partial(hold, area, kept, qty)
  if type(hold.chga) ~= 'table' then return end
  local mine, from_channels = {}, 0
  for _, p in ipairs(channel_back.places(hold)) do
    if p[2] == area then
      mine[#mine + 1] = p
      from_channels = from_channels + p[4]
    end
  end
  local owed = qty - math.max(0, math.min(qty, kept + qty - from_channels))  -- after the general ones
  for i = #mine, 1, -1 do
    if owed == 0 then break end
    local p = mine[i]
    local n = math.min(owed, p[4])
    if n == p[4] then hold.chga[p[1]] = nil else hold.chga[p[1]] = p[4] - n end
    channel_back.reserve(area, p[3], n)
    owed = owed - n
  end
  if next(hold.chga) == nil then hold.chga = nil end
end

-- A whole hold dropped (released or expired): every channel place back.
function channel_back.hold(hold)
  for _, p in ipairs(channel_back.places(hold)) do channel_back.reserve(p[2], p[3], p[4]) end
end

-- A cancelled (refunded, exchanged) GA ticket's place: noted here, given back to its channel
-- by channel_back.flush, which the script calls after it moved the area's sold count.
channel_back.tickets = {}
function channel_back.ticket(t)
  local f = t.ga_area .. '|' .. t.ga_channel
  channel_back.tickets[f] = (channel_back.tickets[f] or 0) + 1
end
function channel_back.flush()
  local tickets_back = channel_back.tickets
  local fields = {}
  for f in pairs(tickets_back) do fields[#fields + 1] = f end
  table.sort(fields)
  for _, f in ipairs(fields) do
    local area, ch = string.match(f, '^(.*)|([^|]*)$')
    channel_back.reserve(area, ch, tickets_back[f])
  end
  channel_back.tickets = {}
end

-- Mark `area`'s GA tickets not yet marked with the channels `takes` ({{channel, places}, ...})
-- they came from, `places` tickets each.
function channel_back.mark(tickets, area, takes)
  local k = 1
  for _, take in ipairs(takes) do
    local n = take[2]
    while n > 0 and k <= #tickets do
      local t = tickets[k]
      if t.ga_area == area and not t.ga_channel then
        t.ga_channel = take[1]
        n = n - 1
      end
      k = k + 1
    end
  end
end

-- A committed hold's channel places pass to its tickets.
function channel_back.from_hold(tickets, hold)
  for _, p in ipairs(channel_back.places(hold)) do channel_back.mark(tickets, p[2], {{p[3], p[4]}}) end
end
