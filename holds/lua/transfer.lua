-- Transfer a ticket to another person: the ticket keeps its id, seat and money,
-- gets a new holder and its next revision, so the token of the revision it
-- leaves is revoked at once ('transferred' at the door) and the new holder's
-- token is the new revision's. A listing of the ticket is withdrawn with it.
-- Fenced by the revision the caller read: a second transfer of the same
-- revision (a retry, or a race with a resale) is REVISION_MISMATCH.
-- Result: {OK, order_json, revision} | {ORDER_NOT_FOUND} | {TICKET_NOT_IN_ORDER, id}
--         | {TICKET_NOT_VALID, id, status} | {REVISION_MISMATCH, id, revision, why} | {TICKET_USED, id}
local order_id = ARGV[1]
local ticket_id = ARGV[2]
local revision = tonumber(ARGV[3])
local holder = cjson.decode(ARGV[4])     -- holds.records.Buyer

local order, tickets, i = usable_ticket(order_id, ticket_id, revision)
if not order then return tickets end
local now = now_ms()
local t = tickets[i]
withdraw(order_id, t, 'transferred')
reissue(t, holder, 'transferred', now)
local raw = save_order(order, tickets, now)
lifecycle('ticket.transferred', order_id, ticket_id .. '|' .. t.revision)
return {OK, raw, t.revision}
