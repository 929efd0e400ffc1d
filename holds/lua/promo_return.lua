-- Give back, once, the use an order made of an organizer-wide promo code, in the
-- organizer's slot, after the order was wholly cancelled in its event's slot
-- (cancel.lua / refund.lua put it in the event's backlog; holds/offers.py).
-- Idempotent by order: the returns already made are remembered (the zset below),
-- so a retried cancel, or two processes draining the same backlog, give it back once.
-- A remembered return is forgotten after RETURNS_KEPT_MS (32 at a time): by then the
-- order has long left its event's backlog, which is the only thing that asks.
-- KEYS[1]: the organizer's promo uses hash, KEYS[2]: its returns (zset "<event>/<order>" -> ms).
-- Result: {OK, 1 (given back) | 0 (already)}
local code = ARGV[1]
local buyer = ARGV[2]                -- '' : the claim counted no buyer
local order_ref = ARGV[3]            -- '<event id>/<order id>'
local RETURNS_KEPT_MS = 30 * 86400000

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - RETURNS_KEPT_MS, 'LIMIT', 0, 32)
if #old > 0 then redis.call('ZREM', KEYS[2], unpack(old)) end
if redis.call('ZSCORE', KEYS[2], order_ref) then return {OK, 0} end
redis.call('ZADD', KEYS[2], now, order_ref)
if redis.call('HINCRBY', KEYS[1], code, -1) < 0 then redis.call('HSET', KEYS[1], code, 0) end
if buyer ~= '' then
  local key = code .. '|' .. buyer
  if redis.call('HINCRBY', KEYS[1], key, -1) <= 0 then redis.call('HDEL', KEYS[1], key) end
end
return {OK, 1}
