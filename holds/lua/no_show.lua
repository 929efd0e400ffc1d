-- After an event closes, one `ticket.no_show` lifecycle entry per valid ticket
-- never scanned in, so a CRM never thanks someone who did not come. Run by the
-- reaper in batches of orders (a sold-out stadium must not block Redis in one
-- script); the progress is kept in the event's meta in the same script as the
-- entries it covers, so a crash between batches neither repeats nor skips one.
-- Orders are walked by rank in `orders_z` (creation time): a closed event takes
-- no new order, so the ranks stay put.
-- Due when the status is `closed` and the admission window, if it has an end,
-- is over (a scan can still arrive until then).
-- KEYS: the event's keys, then its door keys (holds/keys.py DOOR_KEY_NAMES).
-- Result: {OK, state, entries written} | {EVENT_NOT_FOUND}
--   state: 'open' (not closed) | 'doors_open' | 'more' | 'done'
local K_CHECKINS = KEYS[23]
local batch = tonumber(ARGV[1])   -- orders per call

local m = redis.call('HMGET', K_META, 'status', 'door_until_ms', 'no_show_next', 'no_show_done')
if not m[1] then return {EVENT_NOT_FOUND} end
if m[4] == '1' then return {OK, 'done', 0} end
local door_until = tonumber(m[2]) or 0
if m[1] ~= 'closed' then return {OK, 'open', 0} end
if door_until > 0 and now_ms() < door_until then return {OK, 'doors_open', 0} end

local first = tonumber(m[3]) or 0
local ids = redis.call('ZRANGE', K_ORDERS_Z, first, first + batch - 1)
local written = 0
for _, order_id in ipairs(ids) do
  local raw = redis.call('HGET', K_ORDERS, order_id)
  if raw then
    for _, t in ipairs(as_array(cjson.decode(raw).tickets)) do
      if t.status == 'valid' and redis.call('HEXISTS', K_CHECKINS, t.ticket_id) == 0 then
        lifecycle('ticket.no_show', order_id, t.ticket_id)
        written = written + 1
      end
    end
  end
end
redis.call('HSET', K_META, 'no_show_next', first + #ids)
if #ids < batch then
  redis.call('HSET', K_META, 'no_show_done', '1')
  return {OK, 'done', written}
end
return {OK, 'more', written}
