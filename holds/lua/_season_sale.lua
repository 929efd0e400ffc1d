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
