-- Exchanges across events (holds/exchanges.py, docs/selling.md "Exchanges across
-- events"): prepended after the inventory and after-sale preludes to
-- exchange_season.lua (one script over two events of one season's slot) and to the
-- saga's steps xchg_lock.lua, xchg_commit.lua, xchg_finish.lua (each over one slot).
-- The source event's keys come first (the preludes name them); a script over a second
-- event's 21 keys points the prelude's K_* names at them with use_event_keys(base).

local SOURCE_BASE = 0

local function xchg_fees(t)
  return (t.ticket_fee_rate or 0) + (t.ticket_fee_fixed or 0) + (t.processing_fee_rate or 0)
    + (t.processing_fee_fixed or 0)
end

-- The old tickets of an exchange (ids ARGV[base + 1 .. base + n]): in the order, valid,
-- not locked, not used at the door, nothing refunded (usable_ticket of _after_sale.lua).
-- Returns order, tickets, old tickets; or nil, reply. Source keys.
local function xchg_old_tickets(order_id, base, n)
  local order, tickets, by_id = load_order(order_id)
  if not order then return nil, {ORDER_NOT_FOUND} end
  local old = {}
  for k = 1, n do
    local id = ARGV[base + k]
    local ok, reply = usable_ticket(order_id, id, -1)
    if not ok then return nil, reply end
    local t = tickets[by_id[id]]
    if (t.refunded or 0) > 0 then return nil, {TICKET_REFUNDED, id} end
    old[#old + 1] = t
  end
  return order, tickets, old
end

-- A live hold of the current event with exactly `n` seats and no GA: hold, seats, cats;
-- or nil, reply (as exchange.lua answers it).
local function xchg_live_hold(hold_id, n, now)
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if not raw then return nil, gone_reply(hold_id) end
  if tonumber(redis.call('ZSCORE', K_HOLDEXP, hold_id)) <= now then return nil, {HOLD_EXPIRED} end
  local hold = cjson.decode(raw)
  local seats, cats = as_array(hold.seats), as_array(hold.cats)
  if type(hold.ga) == 'table' and next(hold.ga) ~= nil then return nil, {GA_NOT_IN_HOLD, '', 0} end
  if #seats ~= n then return nil, {SEAT_NOT_IN_HOLD, #seats} end
  local token = held_value(hold_id)
  for _, o in ipairs(seats) do
    if redis.call('HGET', K_SEATS, o) ~= token then return nil, {HOLD_LOST, o} end
  end
  return hold, seats, cats
end

-- The new tickets, one per old one (`old`: tickets or their snapshots), priced at the
-- current event's prices and split by the source order's terms (`sale`); or nil, reply.
local function xchg_new_tickets(seats, cats, old, ticket_prefix, sale)
  local price = event_prices()
  local fresh = {}
  for j, o in ipairs(seats) do
    local p = price(cats[j])
    if not p then return nil, {NO_PRICE, cats[j]} end
    local t = {ticket_id = ticket_prefix .. j, seat = tonumber(o), category = cats[j], price = p, status = 'valid',
      exchanged_from = old[j].ticket_id, holder = old[j].holder}
    split_ticket(t, sale.terms, sale.collector)
    fresh[j] = t
  end
  return fresh
end

-- Write the new order of an exchange in the current event: its seats sold (emitted),
-- the hold ended (if any), the order, its tickets, its idempotency key, the buyer's
-- count of places bought and an order.created lifecycle entry. `x`: {order_id, idem_key,
-- buyer, buyer_id, sale, source_event, source_order, exchange_id, hold_id}.
local function xchg_write_order(x, hold, seats, fresh, now)
  local sold = sold_value(x.order_id)
  local taken = {}
  for _, o in ipairs(seats) do
    redis.call('HSET', K_SEATS, o, sold)
    taken[#taken + 1] = tostring(o)
  end
  local seq = emit('sold', 'sold', taken, nil, 0, x.hold_id)
  if hold then
    uncount_buyer(hold.buyer, hold.count)
    end_hold(x.hold_id, hold, 'committed:' .. x.order_id, now)
  end
  count_bought(x.buyer_id, #fresh)
  local total = 0
  for _, t in ipairs(fresh) do total = total + t.price end
  local sale = x.sale
  local order = {order_id = x.order_id, hold_id = x.hold_id, idempotency_key = x.idem_key, buyer = x.buyer,
    buyer_id = x.buyer_id or '', tickets = fresh, total = total, currency = redis.call('HGET', K_META, 'currency'),
    status = 'committed', created_ms = now, updated_ms = now, seq = seq,
    collector = sale.collector, payment_method = sale.payment_method, channel = sale.channel, terms = sale.terms,
    exchanged_from_event = x.source_event, exchanged_from_order = x.source_order, exchange_id = x.exchange_id}
  local raw = cjson.encode(order)
  redis.call('HSET', K_ORDERS, x.order_id, raw)
  redis.call('HSET', K_IDEM, x.idem_key, x.order_id)
  redis.call('ZADD', K_ORDERS_Z, now, x.order_id)
  for _, t in ipairs(fresh) do redis.call('HSET', K_TICKETS, t.ticket_id, x.order_id) end
  lifecycle('order.created', x.order_id, 'exchange|' .. x.source_event .. '|' .. x.source_order .. '|' .. x.exchange_id)
  return order, raw
end

-- Give the old tickets back in the source event once their replacements are sold in
-- the target event: each 'exchanged' (its token answers "revoked: exchanged"), its seat
-- freed (while still sold to the order) or its GA place returned, the listing withdrawn,
-- the buyer's count of places bought lowered, the exchange recorded on the order with
-- the price difference, and an order.exchanged lifecycle entry. `fresh`: the new
-- tickets; `record`: the exchange record (filled in here). Source keys. Returns the order json.
local function xchg_give_back(order, tickets, old, fresh, record, now)
  local order_id = order.order_id
  local sold = sold_value(order_id)
  local freed, ga_back = {}, {}
  local from_ids, to_ids = {}, {}
  local difference, fee_difference, given = 0, 0, 0
  for j, t in ipairs(old) do
    release_place(t, sold, 'free', freed, ga_back)
    withdraw(order_id, t, 'exchanged')
    t.status = 'exchanged'
    t.exchanged_for = fresh[j].ticket_id
    t.exchanging = nil
    from_ids[j] = t.ticket_id
    to_ids[j] = fresh[j].ticket_id
    difference = difference + fresh[j].price - t.price
    fee_difference = fee_difference + xchg_fees(fresh[j]) - xchg_fees(t)
    given = given + t.price
  end
  local seq = 0
  if #freed > 0 then seq = emit('exchanged', 'free', freed, nil, 0, '') end
  for area, qty in pairs(ga_back) do
    redis.call('HINCRBY', K_GA_SOLD, area, -qty)
    seq = emit('exchanged', 'free', {}, area, -qty, '')
  end
  channel_back.flush()  -- a channel's places to it (_channels.lua: the source's channel keys)
  count_bought(order.buyer_id, -#old)
  record.from_tickets, record.to_tickets = from_ids, to_ids
  record.difference, record.fee_difference, record.seq = difference, fee_difference, seq
  local exchanges = as_array(order.exchanges)
  exchanges[#exchanges + 1] = record
  order.exchanges = exchanges
  order.total = order.total - given          -- the money moved with the tickets to the target's order
  local current, valid = 0, 0               -- the tickets left here: all cancelled is a cancelled order
  for _, t in ipairs(tickets) do
    if t.status ~= 'exchanged' then
      current = current + 1
      if t.status == 'valid' then valid = valid + 1 end
    end
  end
  if current > 0 and valid == 0 then order.status = 'cancelled' end
  local raw = save_order(order, tickets, now)
  lifecycle('order.exchanged', order_id, table.concat(from_ids, ',') .. '|' .. table.concat(to_ids, ',') .. '|'
    .. record.exchange_id .. '|' .. difference .. '|' .. record.target_event_id .. '|' .. record.target_order_id)
  return raw
end
