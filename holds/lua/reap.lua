-- Tidy: purge up to ARGV[1] expired holds of one event. Correctness never
-- depends on this (expiry is lazy); it frees memory and tells watchers sooner.
-- Result: {purged, remaining_expired}
local limit = tonumber(ARGV[1])
local now = now_ms()
local purged = purge_expired(now, limit)
return {purged, redis.call('ZCOUNT', K_HOLDEXP, '-inf', now)}
