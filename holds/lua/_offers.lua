-- Ticket types and promo codes at sale: rules/promos.py in Lua, prepended to the
-- selling scripts (commit.lua, box_office.lua) after the inventory prelude.
-- The offer keys (holds/keys.py OFFER_KEY_NAMES) come after the 21 inventory keys
-- only when a sale names a type or a code: a plain sale reads nothing more.
local K_TTYPES, K_PROMOS, K_PROMOUSES = KEYS[22], KEYS[23], KEYS[24]

-- Is `def` (a ticket type) sold on `channel`? No channels listed: every channel.
local function on_channel(def, channel)
  if type(def.channels) ~= 'table' or #def.channels == 0 then return true end
  for _, c in ipairs(def.channels) do if c == channel then return true end end
  return false
end

-- The type each ticket is sold as: seats by ordinal, GA places of an area by
-- their typed counts in type order, the rest untyped (the category price).
-- Sets ticket_type and the type's price. Returns nil, or the error reply.
local function retype(offer, tickets, channel)
  local seat_types = type(offer.seats) == 'table' and offer.seats or {}
  local ga_left = {}
  if type(offer.ga) == 'table' then
    for area, by_type in pairs(offer.ga) do
      local list = {}
      for type_id, qty in pairs(by_type) do list[#list + 1] = {type_id, qty} end
      table.sort(list, function(a, b) return a[1] < b[1] end)
      ga_left[area] = list
    end
  end
  local defs, counts, matched = {}, {}, {}
  for _, t in ipairs(tickets) do
    local type_id = ''
    if t.seat then
      local key = tostring(t.seat)
      if seat_types[key] then type_id = seat_types[key]; matched[key] = true end
    elseif ga_left[t.ga_area] then
      for _, entry in ipairs(ga_left[t.ga_area]) do
        if entry[2] > 0 then type_id = entry[1]; entry[2] = entry[2] - 1; break end
      end
    end
    if type_id ~= '' then
      if defs[type_id] == nil then
        local raw = redis.call('HGET', K_TTYPES, type_id)
        defs[type_id] = raw and cjson.decode(raw) or false
      end
      local def = defs[type_id]
      if not def or def.disabled then return {TYPE_UNKNOWN, type_id} end
      if def.access_code and def.access_code ~= '' and def.access_code ~= offer.access then
        return {TYPE_UNKNOWN, type_id}                      -- hidden: not told apart from unknown
      end
      if not on_channel(def, channel) then return {TYPE_NOT_OFFERED, type_id, 'channel:' .. channel} end
      local p = def.prices[t.category]
      if not p then return {TYPE_NOT_OFFERED, type_id, 'category:' .. t.category} end
      counts[type_id] = (counts[type_id] or 0) + 1
      if (def.max_per_order or 0) > 0 and counts[type_id] > def.max_per_order then
        return {TYPE_LIMIT, type_id, def.max_per_order}
      end
      t.ticket_type = type_id
      t.price = p
    end
  end
  for key in pairs(seat_types) do
    if not matched[key] then return {SELECTION_INVALID, 'seat', key} end
  end
  for area, list in pairs(ga_left) do
    for _, entry in ipairs(list) do
      if entry[2] > 0 then return {SELECTION_INVALID, 'ga', area} end
    end
  end
  return nil
end

-- The order's promo code, checked: the event's own code, else the organizer-wide
-- definition Python passed (its uses were claimed in the organizer's slot first:
-- holds/offers.py). Returns the code's definition (nil: no code), or nil and the error reply.
local function check_promo(offer, n_places, buyer, now)
  local code = offer.promo or ''
  if code == '' then return nil end
  local raw = redis.call('HGET', K_PROMOS, code)
  local org = false
  if not raw and (offer.org_promo or '') ~= '' then raw = offer.org_promo; org = true end
  if not raw then return nil, {PROMO_UNKNOWN, code} end
  local p = cjson.decode(raw)
  if p.disabled then return nil, {PROMO_INACTIVE, code, 'disabled'} end
  local from, till = p.valid_from_ms or 0, p.valid_until_ms or 0
  if from > 0 and now < from then return nil, {PROMO_INACTIVE, code, 'not_yet'} end
  if till > 0 and now >= till then return nil, {PROMO_INACTIVE, code, 'expired'} end
  if n_places < (p.min_quantity or 0) then return nil, {PROMO_MIN_QUANTITY, code, p.min_quantity} end
  local per_buyer = p.max_uses_per_buyer or 0
  if per_buyer > 0 and (buyer or '') == '' then return nil, {SELECTION_INVALID, 'buyer', code} end
  if org and (offer.org_used_up or '') ~= '' then         -- its claim was refused (holds/offers.py)
    local scope, most = string.match(offer.org_used_up, '^(%a+):(%d+)$')
    return nil, {PROMO_USED_UP, code, scope, tonumber(most)}
  end
  if not org then
    local most = p.max_uses or 0
    if most > 0 and (tonumber(redis.call('HGET', K_PROMOUSES, code)) or 0) >= most then
      return nil, {PROMO_USED_UP, code, 'total', most}
    end
    if per_buyer > 0 and (tonumber(redis.call('HGET', K_PROMOUSES, code .. '|' .. buyer)) or 0) >= per_buyer then
      return nil, {PROMO_USED_UP, code, 'buyer', per_buyer}
    end
  end
  return p
end

-- Apply a sale's offer to its priced `tickets` (in place): types, then the promo
-- code's discount off each ticket (rules/promos.py discount: half-even, at most
-- the price), then each ticket's fee split on what the buyer pays.
-- Returns the order's total, the promo definition (or false) and the discount
-- given; or nil and the error reply. Nothing is written: count_promo_use does.
local function apply_offer(offer, tickets, sale, buyer, now)
  local err = retype(offer, tickets, sale.channel or 'storefront')  -- omitted when the default
  if err then return nil, err end
  local promo, promo_err = check_promo(offer, #tickets, buyer, now)
  if promo_err then return nil, promo_err end
  local total, off_total = 0, 0
  for _, t in ipairs(tickets) do
    if promo then
      local off = promo.kind == 'percent' and rate_part(t.price, promo.bps) or promo.amount
      if off > t.price then off = t.price end
      t.list_price = t.price
      t.discount = off
      t.price = t.price - off
      off_total = off_total + off
    end
    split_ticket(t, sale.terms, sale.collector)
    total = total + t.price
  end
  return total, promo or false, off_total
end

-- Count one use of a promo code by an order (every check passed): in total and
-- per buyer (an anonymous order counts in total only).
local function count_promo_use(code, buyer)
  redis.call('HINCRBY', K_PROMOUSES, code, 1)
  if (buyer or '') ~= '' then redis.call('HINCRBY', K_PROMOUSES, code .. '|' .. buyer, 1) end
end

-- Where an order's code counts its use, so that cancelling the whole order can give it
-- back (_promo_back.lua): an organizer-wide code in the organizer's slot, for the buyer
-- its claim counted ("" none: holds/offers.py SaleOffer.org_buyer).
local function note_promo_origin(order, promo, offer)
  if promo.scope == 'organizer' then
    order.promo_scope = 'organizer'
    if (offer.org_buyer or '') ~= '' then order.promo_buyer = offer.org_buyer end
  end
end
