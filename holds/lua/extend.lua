-- Extend a live hold by the event's hold TTL (or ARGV[2] ms when given), never
-- past created + the event's total hold lifetime cap. Only while the event
-- takes new holds: a pause or a close lets the holds in flight run out.
-- Result: {OK, new_expires_ms, capped(0|1), hold_json} | {EVENT_NOT_FOUND} | {NOT_ON_SALE, status}
--         | gone_reply | {HOLD_EXPIRED}
local hold_id = ARGV[1]
local requested_ms = tonumber(ARGV[2])    -- 0: the event's hold TTL

local now = now_ms()
local settings, problem = sale_settings(now)
if problem == 'no_event' then return {EVENT_NOT_FOUND} end
if problem == 'not_on_sale' then return {NOT_ON_SALE, settings.status} end
local raw = redis.call('HGET', K_HOLDS, hold_id)
if not raw then return gone_reply(hold_id) end
local exp = tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id))
if exp <= now then return {HOLD_EXPIRED} end
local hold = cjson.decode(raw)
local ttl = requested_ms > 0 and requested_ms or settings.ttl
local wanted = now + ttl
local limit = hold.created + settings.lifetime
local new_exp = math.min(wanted, limit)
local capped = 0
if wanted > limit then capped = 1 end
if new_exp < exp then new_exp = exp end   -- extending never shortens
hold.expires = new_exp
local encoded = cjson.encode(hold)
redis.call('HSET', K_HOLDS, hold_id, encoded)
redis.call('ZADD', K_HOLDEXP, new_exp, hold_id)
return {OK, new_exp, capped, encoded}
