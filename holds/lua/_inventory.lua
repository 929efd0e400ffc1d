-- Shared prelude of every inventory script (prepended by holds/scripts.py).
-- KEYS are all keys of ONE event, in the order of holds/keys.py EVENT_KEY_NAMES,
-- so every script stays inside the event's hash slot.
local K_META, K_PRICES, K_SEATS, K_HOLDS, K_HOLDEXP = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_GA_CAP, K_GA_HELD, K_GA_SOLD, K_BUYERS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_ORDERS, K_IDEM, K_ORDERS_Z, K_TICKETS = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_SEQ, K_CHANGES, K_LIFECYCLE = KEYS[14], KEYS[15], KEYS[16]
local K_HOLDGONE, K_HOLDWHY, K_BOUGHT = KEYS[17], KEYS[18], KEYS[19]
local K_HOLDREQS, K_HOLDREQS_Z = KEYS[20], KEYS[21]

local CHANGES_MAXLEN = 200000
local TOMBSTONE_MS = 86400000
local TOMBSTONE_TRIM = 32

-- Redis's own clock: every server process agrees on expiry.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- cjson encodes an empty table as {}; holds and orders always read back as arrays.
local function as_array(value)
  if type(value) ~= 'table' then return {} end
  return value
end

-- The stream's identity: each entry carries when it was written ('at', Redis's
-- clock in microseconds) and the 'at' of the entry before it ('prev'). A replica
-- promoted without some entries writes the same sequence numbers again at other
-- times, so a mirror that read the lost ones sees 'prev' differ (holds/changefeed.py).
local stream_at = nil  -- the 'at' of the stream's last entry, once read
local function last_at()
  if stream_at == nil then
    stream_at = ''
    local last = redis.call('XREVRANGE', K_CHANGES, '+', '-', 'COUNT', 1)
    local f = last[1] and last[1][2] or {}
    for i = 1, #f, 2 do if f[i] == 'at' then stream_at = f[i + 1] end end
  end
  return stream_at
end

-- Point the K_* names above at the 21 event keys after KEYS[b] (scripts over several
-- events of one slot: a season's, an exchange's two; b = 0 is the first event's own).
local function use_event_keys(b)
  K_META, K_PRICES, K_SEATS, K_HOLDS, K_HOLDEXP = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4], KEYS[b + 5]
  K_GA_CAP, K_GA_HELD, K_GA_SOLD, K_BUYERS = KEYS[b + 6], KEYS[b + 7], KEYS[b + 8], KEYS[b + 9]
  K_ORDERS, K_IDEM, K_ORDERS_Z, K_TICKETS = KEYS[b + 10], KEYS[b + 11], KEYS[b + 12], KEYS[b + 13]
  K_SEQ, K_CHANGES, K_LIFECYCLE = KEYS[b + 14], KEYS[b + 15], KEYS[b + 16]
  K_HOLDGONE, K_HOLDWHY, K_BOUGHT = KEYS[b + 17], KEYS[b + 18], KEYS[b + 19]
  K_HOLDREQS, K_HOLDREQS_Z = KEYS[b + 20], KEYS[b + 21]
  stream_at = nil  -- emit's memo of the stream's last entry is per event
end

-- Append one change to the event's stream with id 0-<seq>, so a watcher can
-- resume from a sequence number and detect gaps after trimming. A change of a
-- GA area (called after its counts moved) carries the area's held and sold
-- counts as they are right after it, so every change can be stepped through.
local function emit(kind, state, ordinals, ga_area, ga_delta, hold_id)
  local prev = last_at()
  local t = redis.call('TIME')
  stream_at = t[1] .. string.format('%06d', tonumber(t[2]))
  local seq = redis.call('INCR', K_SEQ)
  local held, sold = '', ''
  if ga_area and ga_area ~= '' then
    held = redis.call('HGET', K_GA_HELD, ga_area) or '0'
    sold = redis.call('HGET', K_GA_SOLD, ga_area) or '0'
  end
  redis.call('XADD', K_CHANGES, 'MAXLEN', '~', CHANGES_MAXLEN, '0-' .. seq,
    'kind', kind, 'state', state, 'seats', table.concat(ordinals, ','),
    'ga', ga_area or '', 'qty', ga_delta or 0, 'hold', hold_id or '',
    'held', held, 'sold', sold, 'at', stream_at, 'prev', prev)
  return seq
end

local function lifecycle(kind, order_id, detail)
  redis.call('XADD', K_LIFECYCLE, '*', 'kind', kind, 'order', order_id, 'detail', detail or '',
    'seq', redis.call('GET', K_SEQ) or '0')
end

-- Seat values (holds/seatvalues.py decodes the same): a free seat has no field;
-- 'h:<hold>' held, 's:<order>' sold, 'b' blocked, 'n' not for sale.
local HELD_PREFIX, SOLD_PREFIX, SEAT_BLOCKED, SEAT_NOT_FOR_SALE = 'h:', 's:', 'b', 'n'
local STATUS_VALUE = {blocked = SEAT_BLOCKED, not_for_sale = SEAT_NOT_FOR_SALE}  -- free: no field
local function held_value(hold_id) return HELD_PREFIX .. hold_id end
local function sold_value(order_id) return SOLD_PREFIX .. order_id end

-- Is the seat's current value free for a new hold at time `now`?
-- Held seats whose hold has expired are free (lazy expiry: no sweeper needed).
local function seat_is_free(value, now)
  if not value then return true end
  if string.sub(value, 1, 2) ~= HELD_PREFIX then return false end
  local exp = redis.call('ZSCORE', K_HOLDEXP, string.sub(value, 3))
  return (not exp) or tonumber(exp) <= now
end

-- The state of a seat's value at time `now`, lazy expiry applied:
-- free | held | sold | blocked | not_for_sale.
local function seat_state(value, now)
  if seat_is_free(value, now) then return 'free' end
  if value == SEAT_BLOCKED then return 'blocked' end
  if value == SEAT_NOT_FOR_SALE then return 'not_for_sale' end
  if string.sub(value, 1, 2) == HELD_PREFIX then return 'held' end
  return 'sold'
end

-- Remember why a hold ended, so a late commit hears "expired" or "committed",
-- not "not found"; tombstones older than a day are trimmed a few at a time,
-- and so are the request ids of holds that ended over a day ago.
local function tombstone(hold_id, why, now)
  redis.call('ZADD', K_HOLDGONE, now, hold_id)
  redis.call('HSET', K_HOLDWHY, hold_id, why)
  local old = redis.call('ZRANGEBYSCORE', K_HOLDGONE, '-inf', now - TOMBSTONE_MS, 'LIMIT', 0, TOMBSTONE_TRIM)
  for _, id in ipairs(old) do
    redis.call('ZREM', K_HOLDGONE, id)
    redis.call('HDEL', K_HOLDWHY, id)
  end
  old = redis.call('ZRANGEBYSCORE', K_HOLDREQS_Z, '-inf', now - TOMBSTONE_MS, 'LIMIT', 0, TOMBSTONE_TRIM)
  for _, request_id in ipairs(old) do
    redis.call('ZREM', K_HOLDREQS_Z, request_id)
    redis.call('HDEL', K_HOLDREQS, request_id)
  end
end

-- End a hold: drop its record and lease, and remember why (`why` as tombstone's).
-- Its request ids stay as long as the tombstone, so a late retry hears why the
-- hold is gone instead of holding seats a second time.
local function end_hold(hold_id, hold, why, now)
  redis.call('HDEL', K_HOLDS, hold_id)
  redis.call('ZREM', K_HOLDEXP, hold_id)
  for _, request_id in ipairs(as_array(hold.reqs)) do redis.call('ZADD', K_HOLDREQS_Z, now, request_id) end
  tombstone(hold_id, why, now)
end

-- Give back `n` places of a buyer's per-buyer count (none for an anonymous hold).
local function uncount_buyer(buyer, n)
  if buyer and buyer ~= '' then
    if redis.call('HINCRBY', K_BUYERS, buyer, -n) <= 0 then redis.call('HDEL', K_BUYERS, buyer) end
  end
end

-- Change a buyer's count of places bought (valid tickets; none for an anonymous hold).
local function count_bought(buyer, n)
  if buyer and buyer ~= '' and n ~= 0 then
    if redis.call('HINCRBY', K_BOUGHT, buyer, n) <= 0 then redis.call('HDEL', K_BOUGHT, buyer) end
  end
end

-- GA arguments: ARGV[base] = n, then n (area, quantity) pairs; as a list of {area, qty}.
local function ga_args(base)
  local out = {}
  for j = 0, tonumber(ARGV[base]) - 1 do
    out[#out + 1] = {ARGV[base + 1 + 2 * j], tonumber(ARGV[base + 2 + 2 * j])}
  end
  return out
end

-- Why a hold that is not in the holds hash is gone: 'expired', 'released',
-- 'committed:<order>'; never existed (or ended over a day ago) is HOLD_NOT_FOUND.
local function gone_reply(hold_id)
  local why = redis.call('HGET', K_HOLDWHY, hold_id)
  if not why then return {HOLD_NOT_FOUND} end
  if why == 'expired' then return {HOLD_EXPIRED} end
  if why == 'released' then return {HOLD_RELEASED} end
  return {HOLD_COMMITTED, string.sub(why, 11)}                    -- order id
end

-- Set by _channels.lua in the scripts given the channel keys: a GA place taken from a
-- channel's reservation goes back to that channel while it is open (`hold`: a dropped
-- hold's; `ticket`: a cancelled ticket's, noted until the caller's channel_places_back).
local channel_back = {}

-- Drop one hold: free the seats that still point at it, give back GA and buyer counts.
local function drop_hold(hold_id, hold, kind)
  local token = held_value(hold_id)
  local freed = {}
  for _, o in ipairs(as_array(hold.seats)) do
    if redis.call('HGET', K_SEATS, o) == token then
      redis.call('HDEL', K_SEATS, o)
      freed[#freed + 1] = o
    end
  end
  if #freed > 0 then emit(kind, 'free', freed, nil, 0, hold_id) end
  if type(hold.ga) == 'table' then
    for area, qty in pairs(hold.ga) do
      redis.call('HINCRBY', K_GA_HELD, area, -qty)
      emit(kind, 'free', {}, area, -qty, hold_id)
    end
    if channel_back.hold then channel_back.hold(hold) end
  end
  uncount_buyer(hold.buyer, hold.count or 0)
  end_hold(hold_id, hold, kind, now_ms())
end

-- Purge up to `limit` expired holds (tidying; correctness never depends on it).
local function purge_expired(now, limit)
  local expired = redis.call('ZRANGEBYSCORE', K_HOLDEXP, '-inf', now, 'LIMIT', 0, limit)
  for _, hold_id in ipairs(expired) do
    local raw = redis.call('HGET', K_HOLDS, hold_id)
    if raw then
      drop_hold(hold_id, cjson.decode(raw), 'expired')
    else
      redis.call('ZREM', K_HOLDEXP, hold_id)
    end
  end
  return #expired
end

-- The event's sale settings, read inside the script so a change applies at once.
local function sale_settings(now)
  local m = redis.call('HMGET', K_META, 'status', 'onsale_from_ms', 'onsale_until_ms', 'hold_ttl_ms',
    'max_lifetime_ms', 'max_seats_per_hold', 'max_seats_per_buyer')
  if not m[1] then return nil, 'no_event' end
  local s = {
    status = m[1], from = tonumber(m[2]) or 0, ['until'] = tonumber(m[3]) or 0,
    ttl = tonumber(m[4]), lifetime = tonumber(m[5]),
    per_hold = tonumber(m[6]), per_buyer = tonumber(m[7]) or 0,
  }
  if s.status ~= 'on_sale' then return s, 'not_on_sale' end
  if s.from > 0 and now < s.from then return s, 'not_on_sale' end
  if s['until'] > 0 and now >= s['until'] then return s, 'not_on_sale' end
  return s, nil
end

-- The fee split of one ticket at sale: rules/fees.py split_ticket in Lua (the
-- property test tests/holds/test_fee_split.py checks the two agree). Lua numbers
-- are doubles, exact below 2^53: a price (at most 10^12) is cut into
-- hi * 10000 + lo so that no product exceeds 10^12, and the remainder is taken
-- with math.fmod (exact), so the half-even rounding is exact too.
local function rate_part(price, bps)
  local lo = math.fmod(price, 10000)
  local hi = (price - lo) / 10000
  local n = lo * bps                                  -- < 10^8
  local r = math.fmod(n, 10000)
  local q = hi * bps + (n - r) / 10000
  if 2 * r > 10000 or (2 * r == 10000 and math.fmod(q, 2) == 1) then q = q + 1 end
  return q
end

-- terms: the order's recorded sale terms (nil: no plan, no fees); collector: who took the money.
-- Sets the ticket's four fee parts, each taken from what is left of the price in order.
local function split_ticket(ticket, terms, collector)
  if not terms then return end
  local processing = collector == 'platform'
  local wanted = {
    rate_part(ticket.price, terms.ticket_fee_bps), terms.ticket_fee_fixed,
    processing and rate_part(ticket.price, terms.processing_fee_bps) or 0,
    processing and terms.processing_fee_fixed or 0,
  }
  local left = ticket.price
  local names = {'ticket_fee_rate', 'ticket_fee_fixed', 'processing_fee_rate', 'processing_fee_fixed'}
  for i, name in ipairs(names) do
    local part = math.min(wanted[i], left)
    ticket[name] = part
    left = left - part
  end
end

-- Prices from the event's current prices, each category read once per script run.
local function event_prices()
  local memo = {}
  return function(cat)
    if memo[cat] == nil then memo[cat] = tonumber(redis.call('HGET', K_PRICES, cat)) or false end
    return memo[cat]
  end
end

-- Append one priced ticket per GA place of `places` ({{area, qty}, ...}) to `tickets`,
-- each split by the sale's terms. Returns the amount added, or nil and the error reply.
local function ga_tickets(places, tickets, ticket_prefix, sale, price)
  local total = 0
  for _, place in ipairs(places) do
    local cat = redis.call('HGET', K_META, 'ga_category:' .. place[1])
    local p = price(cat or '')
    if not p then return nil, {NO_PRICE, cat or place[1]} end
    for _ = 1, place[2] do
      tickets[#tickets + 1] = {ticket_id = ticket_prefix .. #tickets + 1, ga_area = place[1], category = cat,
        price = p, status = 'valid'}
      split_ticket(tickets[#tickets], sale.terms, sale.collector)
      total = total + p
    end
  end
  return total
end

-- An order with its tickets and each ticket's index by id; nil when there is none.
local function load_order(order_id)
  local raw = redis.call('HGET', K_ORDERS, order_id)
  if not raw then return nil end
  local order = cjson.decode(raw)
  local tickets = as_array(order.tickets)
  local by_id = {}
  for i, t in ipairs(tickets) do by_id[t.ticket_id] = i end
  return order, tickets, by_id
end

-- A cancelled or refunded ticket's place goes back: its seat (while still sold to
-- the order: `sold` is the order's seat value) to free or not-for-sale, noted in
-- `freed`; a GA place counted in `ga_back` (area -> places) for the caller to return.
local function release_place(t, sold, release_to, freed, ga_back)
  if t.seat ~= nil then
    local o = tostring(t.seat)
    if redis.call('HGET', K_SEATS, o) == sold then
      if release_to == 'not_for_sale' then redis.call('HSET', K_SEATS, o, SEAT_NOT_FOR_SALE) else redis.call('HDEL', K_SEATS, o) end
      freed[#freed + 1] = o
    end
  else
    ga_back[t.ga_area] = (ga_back[t.ga_area] or 0) + 1
    if t.ga_channel and channel_back.ticket then channel_back.ticket(t) end
  end
end
