-- Create an event's inventory keys, or update its settings, atomically.
-- Creating fails if the event exists; updating checks the status transition.
-- Result: OK | EVENT_NOT_FOUND | EVENT_EXISTS | {STATUS_TRANSITION, from, to} (bare codes but the last)
local K_META, K_PRICES, K_GA_CAP = KEYS[1], KEYS[2], KEYS[3]
local K_LIFECYCLE = KEYS[4]       -- the event's lifecycle stream: a status change is a feed entry
local mode = ARGV[1]              -- 'create' | 'update'
local new_status = ARGV[2]        -- '' keeps the status
local n_meta = tonumber(ARGV[3])  -- then n_meta field/value pairs
local base = 4 + 2 * n_meta
local replace_prices = ARGV[base] == '1'
local n_prices = tonumber(ARGV[base + 1])
local gbase = base + 2 + 2 * n_prices
local n_ga = tonumber(ARGV[gbase])

-- draft -> on_sale <-> paused -> closed; closed is final
local allowed = {
  draft = {draft = true, on_sale = true, paused = true, closed = true},
  on_sale = {on_sale = true, paused = true, closed = true},
  paused = {paused = true, on_sale = true, closed = true},
  closed = {closed = true},
}

local exists = redis.call('EXISTS', K_META) == 1
if mode == 'create' and exists then return EVENT_EXISTS end
if mode == 'update' and not exists then return EVENT_NOT_FOUND end
if new_status ~= '' and mode == 'update' then
  local current = redis.call('HGET', K_META, 'status')
  if not allowed[current][new_status] then return {STATUS_TRANSITION, current, new_status} end
end
for i = 0, n_meta - 1 do
  redis.call('HSET', K_META, ARGV[4 + 2 * i], ARGV[5 + 2 * i])
end
local previous_status = redis.call('HGET', K_META, 'status')
if new_status ~= '' then redis.call('HSET', K_META, 'status', new_status) end
-- feed (holds/feed/): an update that changes the status is recorded with the change
if mode == 'update' and new_status ~= '' and new_status ~= previous_status then
  redis.call('XADD', K_LIFECYCLE, '*', 'kind', 'event.status_changed', 'order', '',
    'detail', previous_status .. '|' .. new_status, 'seq', '0')
end
if replace_prices then
  redis.call('DEL', K_PRICES)
  for i = 0, n_prices - 1 do
    redis.call('HSET', K_PRICES, ARGV[base + 2 + 2 * i], ARGV[base + 3 + 2 * i])
  end
end
for i = 0, n_ga - 1 do
  redis.call('HSET', K_GA_CAP, ARGV[gbase + 1 + 2 * i], ARGV[gbase + 2 + 2 * i])
end
return OK
