-- Season sales: bundle prices, ticket types and promo codes at a season commit
-- (holds/seasons.py), prepended to season_commit.lua after _season.lua and _offers.lua.

-- The bundle shares of event i: {category = its part of the bundle}, for the categories
-- Python priced from the season's bundle (rules/bundles.py split_bundle over the events'
-- list prices). Each list price the split was made from is checked against the event's
-- price now: nil when one moved (the caller splits again), so the orders always add up
-- to the bundle exactly. `bundle`: {category = {{list price, share} per event}} or nil.
local function bundle_shares(bundle, i, price)
  local shares = {}
  if not bundle then return shares end
  for cat, per_event in pairs(bundle) do
    local entry = per_event[i]
    if not entry or price(cat) ~= entry[1] then return nil end
    shares[cat] = entry[2]
  end
  return shares
end

-- Point _offers.lua's key names at event i's offer keys (holds/keys.py OFFER_KEY_NAMES),
-- which Python passes after every event's 21 keys when the commit names a type or a code.
local function use_event_offers(i, n_events)
  local b = SEASON_KEY_COUNT + n_events * EVENT_KEY_COUNT + (i - 1) * 3
  K_TTYPES, K_PROMOS, K_PROMOUSES = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3]
end

-- Where an order of a season order counts its code's use. An event's own code: in the
-- event, like any order (a wholly cancelled order gives it back: _promo_back.lua). An
-- organizer-wide code: one use for the whole season order, claimed once in the organizer's
-- slot for the buyer the claim counted (holds/seasons.py); scope 'season': a wholly cancelled
-- order goes to its event's backlog like an organizer-scoped one, and holds/offers.py gives
-- the one use back once every order of the season order is cancelled, once.
local function note_season_promo(order, promo, offer)
  if promo.scope == 'organizer' then
    order.promo_scope = 'season'
    if (offer.org_buyer or '') ~= '' then order.promo_buyer = offer.org_buyer end
  end
end
