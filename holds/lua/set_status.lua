-- Block, unblock or mark seats not-for-sale, conditionally and all-or-nothing:
-- every seat must currently be in one of the allowed previous states.
-- Result: {OK, seq, changed} | {EVENT_NOT_FOUND} | {WRONG_STATE, {ordinal, state, ...}}
local target = ARGV[1]        -- 'free' | 'blocked' | 'not_for_sale'
local allowed = ARGV[2]       -- comma list of allowed previous states: free,blocked,not_for_sale
local n_seats = tonumber(ARGV[3])

if redis.call('EXISTS', K_META) == 0 then return {EVENT_NOT_FOUND} end
local ok = {}
for s in string.gmatch(allowed, '[^,]+') do ok[s] = true end
local now = now_ms()

local wrong = {}
local change = {}
for i = 1, n_seats do
  local o = ARGV[3 + i]
  local state = seat_state(redis.call('HGET', K_SEATS, o), now)
  -- a sold seat belongs to its order's valid ticket: only cancelling the order frees it
  if not ok[state] or state == 'sold' then
    wrong[#wrong + 1] = o
    wrong[#wrong + 1] = state
  elseif state ~= target then
    change[#change + 1] = o
  end
end
if #wrong > 0 then return {WRONG_STATE, wrong} end
for _, o in ipairs(change) do
  if STATUS_VALUE[target] then redis.call('HSET', K_SEATS, o, STATUS_VALUE[target]) else redis.call('HDEL', K_SEATS, o) end
end
local seq = tonumber(redis.call('GET', K_SEQ) or '0')
if #change > 0 then seq = emit('status', target, change, nil, 0, '') end
return {OK, seq, #change}
