-- Claim (delta 1) or give back (delta -1) one use of an organizer-wide promo
-- code, in the organizer's slot, before the event's commit applies it
-- (holds/offers.py; docs/selling.md says why the uses are counted here).
-- A claim is refused when the code is used up, in total or by this buyer.
-- KEYS[1]: the organizer's promos hash, KEYS[2]: its promo uses hash.
-- Result: {OK, uses_after} | {PROMO_UNKNOWN, code} | {PROMO_USED_UP, code, 'total' | 'buyer', maximum}
local code = ARGV[1]
local buyer = ARGV[2]                -- '' : anonymous (no per-buyer count)
local delta = tonumber(ARGV[3])

local raw = redis.call('HGET', KEYS[1], code)
if not raw then return {PROMO_UNKNOWN, code} end
local p = cjson.decode(raw)
local buyer_key = code .. '|' .. buyer
if delta > 0 then
  local most, per_buyer = p.max_uses or 0, p.max_uses_per_buyer or 0
  if most > 0 and (tonumber(redis.call('HGET', KEYS[2], code)) or 0) >= most then
    return {PROMO_USED_UP, code, 'total', most}
  end
  if per_buyer > 0 and buyer ~= '' and (tonumber(redis.call('HGET', KEYS[2], buyer_key)) or 0) >= per_buyer then
    return {PROMO_USED_UP, code, 'buyer', per_buyer}
  end
end
local uses = redis.call('HINCRBY', KEYS[2], code, delta)
if uses < 0 then redis.call('HSET', KEYS[2], code, 0); uses = 0 end
if buyer ~= '' then
  if redis.call('HINCRBY', KEYS[2], buyer_key, delta) <= 0 then redis.call('HDEL', KEYS[2], buyer_key) end
end
return {OK, uses}
