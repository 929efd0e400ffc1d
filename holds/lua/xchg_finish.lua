-- Steps (d) and the undo of (b) of an exchange into an event in another slot
-- (holds/exchanges.py), in the source event, by the exchange key's record:
--   'commit'  (d): the target order exists (ARGV[4], its json): the locked old tickets
--             become 'exchanged' (tokens revoked), their places go back, the exchange and
--             the price difference are recorded on the order; the record is 'done'.
--   'abort'   the target commit was refused for good (ARGV[4]: why): the tickets are
--             unlocked, nothing else changed; the record is 'aborted' at its attempt.
--   'abandon' recovery gives up ARGV[3]'s attempt when it never locked anything: no record
--             or an aborted one is marked aborted at that attempt, so that attempt's late
--             lock is refused (EXCHANGE_ABANDONED); a locked or done record is answered.
-- Each is idempotent: a record already past the step is answered as it is.
-- KEYS: the source's after-sale keys, then its 'xsagas', then its 4 channel keys (_channels.lua:
-- a channel's GA places go back to it).
-- Result: {OK, record_json, order_json ('' none)} | {EXCHANGE_STATE, status ('absent'), record_json}
local K_XSAGAS = KEYS[30]
local key = ARGV[1]
local mode = ARGV[2]
local attempt = tonumber(ARGV[3])
local detail = ARGV[4]

local raw = redis.call('HGET', K_XSAGAS, key)
local rec = raw and cjson.decode(raw)
local now = now_ms()
if mode == 'abandon' then
  if not rec then
    rec = {status = 'aborted', attempt = attempt, exchange_key = key, reason = 'abandoned', created_ms = now}
  elseif rec.status == 'aborted' and rec.attempt < attempt then
    rec.attempt, rec.reason = attempt, 'abandoned'
  else
    return {OK, raw, ''}
  end
  raw = cjson.encode(rec)
  redis.call('HSET', K_XSAGAS, key, raw)
  return {OK, raw, ''}
end
if not rec then return {EXCHANGE_STATE, 'absent', ''} end
if rec.status == 'done' then return {OK, raw, redis.call('HGET', K_ORDERS, rec.order_id) or ''} end
if rec.status ~= 'locked' then return {EXCHANGE_STATE, rec.status, raw} end

local order, tickets, by_id = load_order(rec.order_id)
local old = {}
for j, id in ipairs(as_array(rec.tickets)) do old[j] = tickets[by_id[id]] end
local order_raw
if mode == 'abort' then
  for _, t in ipairs(old) do
    if t.exchanging == rec.exchange_id then t.exchanging = nil end
  end
  order_raw = save_order(order, tickets, now)
  lifecycle('order.exchange_abandoned', rec.order_id,
    table.concat(as_array(rec.tickets), ',') .. '|' .. rec.exchange_id .. '|' .. detail)
  rec.status, rec.reason = 'aborted', detail
else
  local target = cjson.decode(detail)
  local record = {exchange_id = rec.exchange_id, exchange_key = key, fingerprint = rec.fingerprint,
    created_ms = now, hold_id = rec.hold_id, target_event_id = rec.target_event_id,
    target_order_id = rec.target_order_id}
  order_raw = xchg_give_back(order, tickets, old, as_array(target.tickets), record, now)
  rec.status = 'done'
end
rec.commit = ''                            -- the buyer's details live on in the orders only
rec.finished_ms = now
raw = cjson.encode(rec)
redis.call('HSET', K_XSAGAS, key, raw)
return {OK, raw, order_raw}
