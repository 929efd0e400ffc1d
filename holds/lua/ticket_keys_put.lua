-- Replace a tenant's ticket key ring if nobody changed it since it was read
-- (compare and set on its version), with a new key's private seed if any.
-- KEYS[1]: holds/keys.py ticket_signing_keys(tenant).
-- Result: {OK, new version} | {KEYRING_CHANGED}
local expected = ARGV[1]           -- the version read ('' : no ring yet)
local ring = ARGV[2]               -- the KeyRing's JSON
local seed_field = ARGV[3]         -- 'seed:<key id>' or '' (no new key)
local seed = ARGV[4]
if (redis.call('HGET', KEYS[1], 'version') or '') ~= expected then return {KEYRING_CHANGED} end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'ring', ring)
if seed_field ~= '' then redis.call('HSETNX', KEYS[1], seed_field, seed) end
return {OK, version}
