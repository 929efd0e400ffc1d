-- Seasons and bundles: prepended to the season scripts after the inventory prelude.
-- KEYS: the season's keys (holds/keys.py SEASON_KEY_NAMES), then the 21 keys of each
-- event of the call in turn. Every one carries the season's {ev:<season_id>} tag
-- (an event of a season has the id <season_id>~<random>), so the script stays in one
-- Cluster slot. use_event(i) points the prelude's K_* names at event i's keys, so every
-- helper of _inventory.lua (sale_settings, seat_is_free, emit, end_hold, ...) works on it.
local K_SEASON, K_SEASON_HOLDS, K_SEASON_ORDERS, K_SEASON_HOLDS_Z = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local SEASON_KEY_COUNT, EVENT_KEY_COUNT = 5, 21
local season_n = 0  -- the events of the call (season_event_args)

-- The scripts that give places back or take them (holds/scripts.py CHANNEL_SCRIPTS) also get
-- each event's 4 channel keys, last of all in the events' order: use_event points _channels.lua's
-- names at event i's too, so a release, an expiry purged or a sale finds its channels.
local function use_event(i)
  use_event_keys(SEASON_KEY_COUNT + (i - 1) * EVENT_KEY_COUNT)
  if channel_back.use then channel_back.use(#KEYS - 4 * (season_n - i + 1)) end
end

-- The event ids of the call: ARGV[base] = n, then n ids (the order of their keys).
local function season_event_args(base)
  local out = {}
  for j = 1, tonumber(ARGV[base]) do out[j] = ARGV[base + j] end
  season_n = #out
  return out
end

-- A season hold record and the reply when it cannot be used: not found, another set of
-- events than the caller's (read it again), released or committed. Expiry is the caller's.
local function season_hold(hold_id, events)
  local raw = redis.call('HGET', K_SEASON_HOLDS, hold_id)
  if not raw then return nil, {HOLD_NOT_FOUND} end
  local rec = cjson.decode(raw)
  local mine = as_array(rec.events)
  if #mine ~= #events then return nil, {SEASON_HOLD_CHANGED} end
  for i, e in ipairs(events) do
    if mine[i] ~= e then return nil, {SEASON_HOLD_CHANGED} end
  end
  return rec, nil
end

-- Answer why a season hold that is not live cannot be used (nil: it is live at `now`).
local function season_hold_gone(rec, now)
  if rec.status == 'released' then return {HOLD_RELEASED} end
  if string.sub(rec.status, 1, 10) == 'committed:' then return {HOLD_COMMITTED, string.sub(rec.status, 11)} end
  if rec.expires <= now then return {HOLD_EXPIRED} end
  return nil
end

-- A season hold's request id (season_hold.lua) in K_SEASON_HOLDS: "req:<id>" -> "<hold id>
-- <fingerprint>" (a hold id never contains ':'), listed in the record's `reqs`.
local SEASON_REQUEST_PREFIX = 'req:'

-- Store a season hold record; `ends` is when it ended or will end (ms). Records that ended
-- over a day ago are forgotten a few at a time, like single holds' tombstones, and with
-- them their request ids. An ended record keeps no buyer id: the orders carry it (and
-- EraseBuyer erases it there).
local function save_season_hold(hold_id, rec, ends, now)
  if rec.status ~= 'live' then rec.buyer = '' end
  redis.call('HSET', K_SEASON_HOLDS, hold_id, cjson.encode(rec))
  redis.call('ZADD', K_SEASON_HOLDS_Z, ends, hold_id)
  local old = redis.call('ZRANGEBYSCORE', K_SEASON_HOLDS_Z, '-inf', now - TOMBSTONE_MS, 'LIMIT', 0, TOMBSTONE_TRIM)
  for _, id in ipairs(old) do
    local raw = redis.call('HGET', K_SEASON_HOLDS, id)
    if raw then
      for _, r in ipairs(as_array(cjson.decode(raw).reqs)) do
        redis.call('HDEL', K_SEASON_HOLDS, SEASON_REQUEST_PREFIX .. r)
      end
    end
    redis.call('ZREM', K_SEASON_HOLDS_Z, id)
    redis.call('HDEL', K_SEASON_HOLDS, id)
  end
end
