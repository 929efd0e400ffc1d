-- Shared prelude of the after-sale scripts (transfer, exchange, resale_*), after
-- the inventory prelude. KEYS: the event's 21 keys, its door keys (22..25,
-- holds/keys.py DOOR_KEY_NAMES) and its resale keys (26..29, RESALE_KEY_NAMES),
-- all in the event's {ev:} slot.
local K_CHECKINS = KEYS[23]
local K_LISTINGS, K_RESALES, K_RESALES_Z = KEYS[26], KEYS[27], KEYS[28]

-- A ticket that may change hands: in the order, valid, at the revision the caller
-- read (-1: any), not used at the door. Returns order, tickets, index; or nil, reply.
local function usable_ticket(order_id, ticket_id, revision)
  local order, tickets, by_id = load_order(order_id)
  if not order then return nil, {ORDER_NOT_FOUND} end
  local i = by_id[ticket_id]
  if not i then return nil, {TICKET_NOT_IN_ORDER, ticket_id} end
  local t = tickets[i]
  if t.status ~= 'valid' then return nil, {TICKET_NOT_VALID, ticket_id, t.status} end
  if t.exchanging then return nil, {TICKET_EXCHANGING, ticket_id, t.exchanging} end  -- a cross-event exchange in flight
  if revision >= 0 and (t.revision or 0) ~= revision then
    local why = as_array(t.revoked)
    return nil, {REVISION_MISMATCH, ticket_id, t.revision or 0, why[#why] or ''}
  end
  if redis.call('HEXISTS', K_CHECKINS, ticket_id) == 1 then return nil, {TICKET_USED, ticket_id} end
  return order, tickets, i
end

-- Hand a ticket to a new holder: its next revision; the token of the revision it
-- leaves answers "revoked" with `why` at the door (scan.lua reads t.revoked).
local function reissue(t, holder, why, now)
  t.revision = (t.revision or 0) + 1
  local revoked = as_array(t.revoked)
  revoked[#revoked + 1] = why
  t.revoked = revoked
  t.holder = holder
  t.reissued_ms = now
end

-- Withdraw a ticket's listing, if it has one (the caller writes the order).
local function withdraw(order_id, t, why)
  if type(t.listing) ~= 'table' then return end
  t.listing = nil
  redis.call('HDEL', K_LISTINGS, t.ticket_id)
  lifecycle('ticket.listing_withdrawn', order_id, t.ticket_id .. '|' .. why)
end

local function save_order(order, tickets, now)
  order.tickets = tickets
  order.updated_ms = now
  local raw = cjson.encode(order)
  redis.call('HSET', K_ORDERS, order.order_id, raw)
  return raw
end
