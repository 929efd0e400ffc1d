-- Step (b) of an exchange into an event in another slot (holds/exchanges.py): in the
-- source event, check the old tickets (in the order, valid, unlocked, unused at the
-- door, nothing refunded), lock them against transfer, resale, refund, cancel, scan and
-- a second exchange (each ticket's `exchanging`), withdraw their listings, and record
-- the exchange's intent keyed by its exchange key, all in one step. The target hold
-- (step a) was taken before. A record already locked or done by this exchange is
-- answered as it is (a retry or a concurrent call joins it); one that recovery aborted
-- for this attempt or a later one is EXCHANGE_ABANDONED (a retry starts the next attempt).
-- KEYS: the source's after-sale keys (holds/keys.py after_sale_keys), then its 'xsagas'.
-- Result: {OK, record_json} | {EXCHANGE_ABANDONED, attempt} | {EXCHANGE_KEY_MISMATCH, exchange id}
--         | {EVENT_NOT_FOUND} | {NOT_ON_SALE, status} | the old tickets' refusals (xchg_old_tickets)
local K_XSAGAS = KEYS[30]
local key = ARGV[1]
local attempt = tonumber(ARGV[2])
local fingerprint = ARGV[3]
local exchange_id = ARGV[4]
local order_id = ARGV[5]
local target_event = ARGV[6]
local hold_id = ARGV[7]
local owned = tonumber(ARGV[8])       -- 1: the exchange made the hold (released if it fails)
local target_order_id = ARGV[9]
local commit_key = ARGV[10]
local ticket_prefix = ARGV[11]
local source_event = ARGV[12]
local n_old = tonumber(ARGV[13])      -- then n_old ticket ids
local OLD0 = 13

local raw = redis.call('HGET', K_XSAGAS, key)
local rec = raw and cjson.decode(raw)
if rec and (rec.status == 'locked' or rec.status == 'done') then
  if rec.fingerprint ~= fingerprint then return {EXCHANGE_KEY_MISMATCH, rec.exchange_id} end
  return {OK, raw}
end
if rec and rec.attempt >= attempt then return {EXCHANGE_ABANDONED, rec.attempt} end

local status = redis.call('HGET', K_META, 'status')
if not status then return {EVENT_NOT_FOUND} end
local order, tickets, old = load_order(order_id)
if not order then return {ORDER_NOT_FOUND} end
for _, x in ipairs(as_array(order.exchanges)) do
  if x.exchange_key == key then return {EXCHANGE_KEY_MISMATCH, x.exchange_id} end
end
if status ~= 'on_sale' and status ~= 'paused' then return {NOT_ON_SALE, status} end
order, tickets, old = xchg_old_tickets(order_id, OLD0, n_old)
if not order then return tickets end

local now = now_ms()
local ids, snapshot = {}, {}
for j, t in ipairs(old) do
  withdraw(order_id, t, 'exchanged')
  t.exchanging = exchange_id
  ids[j] = t.ticket_id
  snapshot[j] = {ticket_id = t.ticket_id, holder = t.holder}
end
save_order(order, tickets, now)
local commit = {buyer = order.buyer, buyer_id = order.buyer_id or '', source_event = source_event,
  source_order = order_id, exchange_id = exchange_id, ticket_prefix = ticket_prefix, old = snapshot,
  sale = {collector = order.collector or 'platform', payment_method = order.payment_method or 'online',
    channel = order.channel or 'storefront', terms = order.terms}}
rec = {status = 'locked', attempt = attempt, exchange_key = key, fingerprint = fingerprint,
  exchange_id = exchange_id, order_id = order_id, tickets = ids, target_event_id = target_event,
  hold_id = hold_id, owned = owned, target_order_id = target_order_id, commit_key = commit_key,
  created_ms = now, commit = cjson.encode(commit)}
raw = cjson.encode(rec)
redis.call('HSET', K_XSAGAS, key, raw)
lifecycle('order.exchange_started', order_id, table.concat(ids, ',') .. '|' .. exchange_id .. '|' .. target_event)
return {OK, raw}
