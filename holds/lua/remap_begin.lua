-- Begin (or resume) a move of the event to another seat-map version in chunks
-- (holds/remap.py; the steps: remap_step.lua). The event is held for `lease_ms`: meta's
-- `moving` is the lease's end, and every script that changes what the move rewrites refuses
-- with EVENT_MOVING meanwhile (_layout.lua; the reaper waits too), so what the steps copy
-- stays still; other events are not touched. Nothing of the event is rewritten here.
-- A move under way with the same digest (the same versions and mapping) is resumed where
-- it is; another one under way is refused; one whose lease ran out (its mover crashed, and
-- sales may have gone on since) is rolled back and this one starts afresh.
-- ARGV: from version (fence), to version, digest of the move, n old ordinals, lease ms.
-- Result: {MOVE_STEP, phase, cursor} | {EVENT_NOT_FOUND} | {LAYOUT_CHANGED, version now}
--         | {EVENT_MOVING, ms to wait}: another move holds the event
local from_version, to_version, digest = ARGV[1], ARGV[2], ARGV[3]
local n_old, lease_ms = tonumber(ARGV[4]), tonumber(ARGV[5])

local current = redis.call('HGET', K_META, 'seat_map_version')
if not current then return {EVENT_NOT_FOUND} end
local now = now_ms()
local lease = tonumber(redis.call('HGET', K_META, 'moving') or '0')
local m = redis.call('HMGET', K_MOVE, 'digest', 'phase', 'cursor')
if m[1] and lease > now then
  if m[1] ~= digest then return {EVENT_MOVING, math.max(50, math.min(lease - now, 1000))} end
  redis.call('HSET', K_META, 'moving', now + lease_ms)
  return {MOVE_STEP, m[2], m[3]}
end
move_rollback()  -- a lapsed move, or leftovers: nothing of it was swapped in
if current ~= from_version then return {LAYOUT_CHANGED, current} end
redis.call('HSET', K_MOVE, 'from', from_version, 'to', to_version, 'digest', digest, 'n_old', n_old,
  'phase', 'seats', 'cursor', '0', 'now', now, 'seats', 0, 'holds', 0, 'orders', 0, 'tickets', 0)
redis.call('HSET', K_META, 'moving', now + lease_ms)
return {MOVE_STEP, 'seats', '0'}
