-- Publish a version: compare-and-set of its record, so a concurrent publish
-- of the same version is applied once. Publishing a published version is a no-op.
-- Result: OK | VERSION_NOT_FOUND | VERSION_CHANGED (bare codes)
local versions_key = KEYS[1]   -- hash version -> record JSON
local version = ARGV[1]
local expected = ARGV[2]       -- the draft record the caller read
local published = ARGV[3]      -- the record to store

local current = redis.call('HGET', versions_key, version)
if not current then return VERSION_NOT_FOUND end
if current ~= expected then return VERSION_CHANGED end  -- published meanwhile
redis.call('HSET', versions_key, version, published)
return OK
