-- The seat-map version fence (prepended, right before the script's own code, to the
-- scripts that take seat ordinals from Python or answer with them: holds/scripts.py
-- LAYOUT_FENCED). Python appends the version its ordinals come from as the LAST
-- argument ('' : unfenced, for callers that hold no seat map); it is taken off ARGV
-- here, so the script reads its arguments as before. An event moved to another
-- version since the caller loaded its seat map (remap.lua) answers {LAYOUT_MOVED,
-- version now} and nothing runs: the caller drops what it cached and asks again.
local LAYOUT_EXPECTED = table.remove(ARGV)
if LAYOUT_EXPECTED ~= nil and LAYOUT_EXPECTED ~= '' then
  local layout_now = redis.call('HGET', K_META, 'seat_map_version')
  if layout_now and layout_now ~= LAYOUT_EXPECTED then return {LAYOUT_MOVED, layout_now} end
end
