-- Store a new version of a seat map: the version number, record and content
-- land together or not at all. All keys carry the tenant's hash tag.
-- Result: {OK, version} | {SEATMAP_NOT_FOUND, 0} | {SEATMAP_EXISTS, 0} | {TOO_MANY_VERSIONS, latest}
local index_key = KEYS[1]      -- zset seat_map_id -> created ms
local versions_key = KEYS[2]   -- hash version -> record JSON, and 'latest'
local content_key = KEYS[3]    -- hash version -> msgpack content
local seat_map_id = ARGV[1]
local now_ms = tonumber(ARGV[2])
local must_exist = ARGV[3] == '1'
local record = ARGV[4]
local content = ARGV[5]
local max_versions = tonumber(ARGV[6])

local exists = redis.call('EXISTS', versions_key) == 1
if must_exist and not exists then return {SEATMAP_NOT_FOUND, 0} end
if (not must_exist) and exists then return {SEATMAP_EXISTS, 0} end
local latest = tonumber(redis.call('HGET', versions_key, 'latest') or '0')
if latest >= max_versions then return {TOO_MANY_VERSIONS, latest} end

local version = redis.call('HINCRBY', versions_key, 'latest', 1)
redis.call('HSET', versions_key, version, record)
redis.call('HSET', content_key, version, content)
redis.call('ZADD', index_key, 'NX', now_ms, seat_map_id)
return {OK, version}
