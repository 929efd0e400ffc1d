-- A promo code's use given back when its order ends (docs/selling.md, "A cancelled
-- order gives its use back"), prepended to cancel.lua and refund.lua after the
-- inventory prelude. The script passes the event's promo uses hash and its backlog
-- of organizer-wide give-backs (holds/keys.py PROMO_BACK_KEY_NAMES, {ev:} slot).

-- Call after the order's new status is set, with its status before the change.
-- Once the order is wholly cancelled (every ticket), its use of a code is given back
-- in the event's uses (in total, and for the buyer it was counted for): the very
-- counts _offers.lua checks for an event's code, so a new sale can use it at once.
-- An organizer-wide code's use lives in the organizer's slot: the order goes to the
-- backlog, and the service gives it back there once (promo_return.lua, holds/offers.py).
-- `promo_returned` on the order makes this happen once per order, whatever is retried.
local function give_promo_back(order, was, k_uses, k_backlog, now)
  if (order.promo_code or '') == '' or order.promo_returned then return end
  if order.status ~= 'cancelled' or was == 'cancelled' then return end
  local code = order.promo_code
  if redis.call('HINCRBY', k_uses, code, -1) < 0 then redis.call('HSET', k_uses, code, 0) end
  local buyer = order.buyer_id or ''
  if buyer ~= '' then
    local key = code .. '|' .. buyer
    if redis.call('HINCRBY', k_uses, key, -1) <= 0 then redis.call('HDEL', k_uses, key) end
  end
  order.promo_returned = true
  -- a season order's organizer-wide use ('season'): given back once all its orders are cancelled
  if order.promo_scope == 'organizer' or order.promo_scope == 'season' then
    redis.call('ZADD', k_backlog, now, order.order_id)
  end
end
