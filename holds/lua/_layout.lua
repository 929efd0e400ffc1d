-- The seat-map version fence (prepended, right before the script's own code, to the
-- scripts that take seat ordinals from Python or answer with them: holds/scripts.py
-- LAYOUT_FENCED). Python appends the version its ordinals come from as the LAST
-- argument ('' : unfenced, for callers that hold no seat map); it is taken off ARGV
-- here, so the script reads its arguments as before. An event moved to another
-- version since the caller loaded its seat map (remap.lua, remap_step.lua) answers
-- {LAYOUT_MOVED, version now} and nothing runs: the caller drops what it cached and
-- asks again.
-- A move in chunks (holds/remap.py) holds the event for a short lease, renewed by each
-- step: meta's `moving` is the lease's end (Redis's clock). While it runs these scripts
-- answer {EVENT_MOVING, ms to wait} and change nothing, so the state the move copies
-- stays still; other events are not touched. A lease that ran out (the mover died) no
-- longer refuses: the next begin of a move rolls the dead one's leftovers back.
local LAYOUT_EXPECTED = table.remove(ARGV)
do
  local fence = redis.call('HMGET', K_META, 'seat_map_version', 'moving')
  local lease = tonumber(fence[2] or '')
  if lease and lease > now_ms() then
    local left = lease - now_ms()
    return {EVENT_MOVING, math.max(50, math.min(left, 1000))}
  end
  if LAYOUT_EXPECTED ~= nil and LAYOUT_EXPECTED ~= '' and fence[1] and fence[1] ~= LAYOUT_EXPECTED then
    return {LAYOUT_MOVED, fence[1]}
  end
end
