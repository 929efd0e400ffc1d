-- Define a channel of an event (holds/channels.py): ARGV[1] its id, ARGV[2] its definition
-- (JSON: id, name, kind 'storefront' | 'box_office', access_code, status 'open').
-- Result: {OK, definition with created_ms} | {EVENT_NOT_FOUND} | {CHANNEL_EXISTS, id}
local channel_id = ARGV[1]
local def = cjson.decode(ARGV[2])

if redis.call('EXISTS', K_META) == 0 then return {EVENT_NOT_FOUND} end
if redis.call('HEXISTS', K_CHANNELS, channel_id) == 1 then return {CHANNEL_EXISTS, channel_id} end
def.created_ms = now_ms()
local encoded = cjson.encode(def)
redis.call('HSET', K_CHANNELS, channel_id, encoded)
return {OK, encoded}
