-- A ticket at the door: an entry or an exit, atomic and once-only.
-- KEYS: the event's keys (the prelude names them), then its door keys
-- (holds/keys.py DOOR_KEY_NAMES): ticketkeys, checkins, scanids, doorstats.
-- The token was verified in Python; this checks the ticket itself: it is in
-- this event's order as the token says and still valid, the admission window,
-- and its door state, and records the check-in, its counters and a lifecycle
-- entry in the same script. An offline upload names its scan (scan_id): the
-- answer is kept, so uploading the same batch again answers the same.
-- Result: {OK, 'in'|'out', at ms, category, first entry (1|0), seat ordinal now (-1: GA)} | {EVENT_NOT_FOUND}
--         | {TICKET_REVOKED, why} | {OUTSIDE_WINDOW, from ms, until ms, at ms}
--         | {ALREADY_USED, gate, device, at ms} | {NOT_CHECKED_IN} | {REENTRY_NOT_ALLOWED}
local K_CHECKINS, K_SCANIDS, K_DOORSTATS = KEYS[23], KEYS[24], KEYS[25]
local direction = ARGV[1]          -- 'entry' | 'exit'
local ticket_id = ARGV[2]
local order_id = ARGV[3]
local place = ARGV[4]              -- 's:<ordinal>' | 'g:<area>' (as the token says)
local gate = ARGV[5]
local device = ARGV[6]
local at = tonumber(ARGV[7])       -- 0: Redis's clock (online); else the device's clock (offline)
local scan_id = ARGV[8]            -- '' online

-- A token issued before the event moved to another seat-map version names the seat's
-- ordinal then (remap.lua keeps each in the ticket's `seat_was`): still this ticket's place.
local function former_place(t, p)
  for _, o in ipairs(as_array(t.seat_was)) do
    if p == 's:' .. tostring(o) then return true end
  end
  return false
end

local function answer(reply)
  if scan_id ~= '' then redis.call('HSET', K_SCANIDS, scan_id, cjson.encode(reply)) end
  return reply
end

if scan_id ~= '' then
  local prior = redis.call('HGET', K_SCANIDS, scan_id)
  if prior then return cjson.decode(prior) end
end
local m = redis.call('HMGET', K_META, 'status', 'door_from_ms', 'door_until_ms', 'door_reentry')
if not m[1] then return {EVENT_NOT_FOUND} end
if at == 0 then at = now_ms() end
local reentry = m[4] == 'allowed'

-- the token's revision: a ticket handed to someone else (transfer, resale) has a
-- new revision, named in its token's ticket id as '<id>~<revision>' (none: 0)
local claimed = 0
local base, rev = string.match(ticket_id, '^(.-)~(%d+)$')
if base then ticket_id, claimed = base, tonumber(rev) end

-- the ticket: in this order, for this place, at this revision, still valid
if redis.call('HGET', K_TICKETS, ticket_id) ~= order_id then return answer({TICKET_REVOKED, 'not_issued'}) end
local order = cjson.decode(redis.call('HGET', K_ORDERS, order_id))
local ticket = nil
for _, t in ipairs(as_array(order.tickets)) do
  if t.ticket_id == ticket_id then ticket = t end
end
if not ticket then return answer({TICKET_REVOKED, 'not_issued'}) end
local its_place = ticket.seat ~= nil and ('s:' .. tostring(ticket.seat)) or ('g:' .. tostring(ticket.ga_area))
if its_place ~= place and not former_place(ticket, place) then return answer({TICKET_REVOKED, 'not_issued'}) end
local current_rev = ticket.revision or 0
if claimed < current_rev then return answer({TICKET_REVOKED, as_array(ticket.revoked)[claimed + 1] or 'reissued'}) end
if claimed > current_rev then return answer({TICKET_REVOKED, 'not_issued'}) end
if ticket.status ~= 'valid' then return answer({TICKET_REVOKED, ticket.status}) end
if ticket.exchanging then return answer({TICKET_REVOKED, 'exchanging'}) end  -- until its cross-event exchange ends

local current = redis.call('HGET', K_CHECKINS, ticket_id)
local state, was_gate, was_device, was_at = nil, '', '', '0'
if current then
  state, was_gate, was_device, was_at = string.match(current, '^(%a+)|(.-)|(.-)|(%d+)$')
end
local category = ticket.category or ''

if direction == 'exit' then
  if not reentry then return answer({REENTRY_NOT_ALLOWED}) end
  if state ~= 'in' then return answer({NOT_CHECKED_IN}) end
  redis.call('HSET', K_CHECKINS, ticket_id, 'out|' .. gate .. '|' .. device .. '|' .. at)
  redis.call('HINCRBY', K_DOORSTATS, 'exits', 1)
  lifecycle('ticket.checked_out', order_id, ticket_id .. '|' .. gate .. '|' .. device .. '|' .. at)
  return answer({OK, 'out', at, category, 0, tonumber(ticket.seat) or -1})
end

local from, till = tonumber(m[2]) or 0, tonumber(m[3]) or 0
if (from > 0 and at < from) or (till > 0 and at >= till) then
  return answer({OUTSIDE_WINDOW, from, till, at})
end
if state == 'in' or (state == 'out' and not reentry) then
  if scan_id ~= '' then redis.call('HINCRBY', K_DOORSTATS, 'conflicts', 1) end
  return answer({ALREADY_USED, was_gate, was_device, was_at})
end

local first = state == nil and 1 or 0
if type(ticket.listing) == 'table' then   -- a ticket used at the door is no longer for resale
  ticket.listing = nil
  redis.call('HSET', K_ORDERS, order_id, cjson.encode(order))
  lifecycle('ticket.listing_withdrawn', order_id, ticket_id .. '|scanned')
end
redis.call('HSET', K_CHECKINS, ticket_id, 'in|' .. gate .. '|' .. device .. '|' .. at)
if first == 1 then
  redis.call('HINCRBY', K_DOORSTATS, 'admitted', 1)
  redis.call('HINCRBY', K_DOORSTATS, 'c:' .. category, 1)
end
redis.call('HINCRBY', K_DOORSTATS, 'entries', 1)
redis.call('HINCRBY', K_DOORSTATS, 'g:' .. gate, 1)
redis.call('HINCRBY', K_DOORSTATS, 'm:' .. math.floor(at / 60000), 1)
lifecycle('ticket.checked_in', order_id, ticket_id .. '|' .. gate .. '|' .. device .. '|' .. at)
return answer({OK, 'in', at, category, first, tonumber(ticket.seat) or -1})
