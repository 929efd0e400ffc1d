-- Create, update or disable one ticket type or promo code definition
-- (holds/offers.py). KEYS[1]: the definitions hash (an event's ttypes or promos,
-- or an organizer's promos); KEYS[2]: the event's meta (must exist when
-- check_event is 1). The definition JSON was checked in Python (rules/promos.py).
-- Result: {OK, definition_json} | {EVENT_NOT_FOUND} | {OFFER_EXISTS, id}
--         | {OFFER_NOT_FOUND, id} | {LIMIT_EXCEEDED, 'definitions', maximum}
local mode = ARGV[1]                 -- create | update | disable
local id = ARGV[2]
local definition = ARGV[3]           -- the whole new definition ('' to disable)
local check_event = ARGV[4] == '1'
local most = tonumber(ARGV[5])       -- definitions per hash

if check_event and redis.call('EXISTS', KEYS[2]) == 0 then return {EVENT_NOT_FOUND} end
local current = redis.call('HGET', KEYS[1], id)
if mode == 'create' then
  if current then return {OFFER_EXISTS, id} end
  if redis.call('HLEN', KEYS[1]) >= most then return {LIMIT_EXCEEDED, 'definitions', most} end
  redis.call('HSET', KEYS[1], id, definition)
  return {OK, definition}
end
if not current then return {OFFER_NOT_FOUND, id} end
if mode == 'disable' then
  local d = cjson.decode(current)
  d.disabled = true
  definition = cjson.encode(d)
end
redis.call('HSET', KEYS[1], id, definition)
return {OK, definition}
