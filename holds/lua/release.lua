-- Release a whole hold, or some of its seats / GA places.
-- Result: {OK, remaining_count} | gone_reply | {HOLD_EXPIRED} | {SEAT_NOT_IN_HOLD, ordinal}
--         | {GA_NOT_IN_HOLD, area, places held}
local hold_id = ARGV[1]
local purge_limit = tonumber(ARGV[2])
local n_seats = tonumber(ARGV[3])          -- 0 with no GA: release everything
local ga_asked = ga_args(4 + n_seats)      -- {area, qty} pairs

local now = now_ms()
local raw = redis.call('HGET', K_HOLDS, hold_id)
if not raw then purge_expired(now, purge_limit); return gone_reply(hold_id) end
local hold = cjson.decode(raw)
local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id))
if exp <= now then purge_expired(now, purge_limit); return {HOLD_EXPIRED} end
hold.seats = as_array(hold.seats)
hold.cats = as_array(hold.cats)
if type(hold.ga) ~= 'table' then hold.ga = {} end

if n_seats == 0 and #ga_asked == 0 then
  drop_hold(hold_id, hold, 'released')
  purge_expired(now, purge_limit)
  return {OK, 0}
end

-- partial: validate everything first (all-or-nothing), then apply
local position = {}
for i, o in ipairs(hold.seats) do position[tostring(o)] = i end
for i = 1, n_seats do
  if not position[ARGV[3 + i]] then return {SEAT_NOT_IN_HOLD, ARGV[3 + i]} end
end
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  if (hold.ga[area] or 0) < qty then return {GA_NOT_IN_HOLD, area, hold.ga[area] or 0} end
end

local token = held_value(hold_id)
local drop = {}
local freed = {}
for i = 1, n_seats do
  local o = ARGV[3 + i]
  drop[position[o]] = true
  if redis.call('HGET', K_SEATS, o) == token then
    redis.call('HDEL', K_SEATS, o)
    freed[#freed + 1] = o
  end
end
local seats, cats = {}, {}
for i, o in ipairs(hold.seats) do
  if not drop[i] then
    seats[#seats + 1] = o
    cats[#cats + 1] = hold.cats[i]
  end
end
hold.seats, hold.cats = seats, cats
if #freed > 0 then emit('released', 'free', freed, nil, 0, hold_id) end
local released = n_seats
for _, pair in ipairs(ga_asked) do
  local area, qty = pair[1], pair[2]
  redis.call('HINCRBY', K_GA_HELD, area, -qty)
  hold.ga[area] = hold.ga[area] - qty
  if hold.ga[area] == 0 then hold.ga[area] = nil end
  released = released + qty
  emit('released', 'free', {}, area, -qty, hold_id)
  channel_back.partial(hold, area, hold.ga[area] or 0, qty)  -- to their channels (_channels.lua)
end
hold.count = hold.count - released
uncount_buyer(hold.buyer, released)
if hold.count <= 0 then
  end_hold(hold_id, hold, 'released', now)
  return {OK, 0}
end
redis.call('HSET', K_HOLDS, hold_id, cjson.encode(hold))
return {OK, hold.count}
