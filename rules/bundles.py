"""Season bundles: a season's price per seat category, split over its events' orders.

Pure (no I/O). A season may set a *bundle price* per seat category: what one
seat costs for the whole season, usually less than the sum of its events'
prices. A season hold over every event of the season is committed at the
bundle (``holds/seasons.py``): each seat's bundle amount is split over the
events' orders by :func:`split_bundle`, in proportion to the seat's list price
in each event, so the orders add up exactly to the bundle and each order keeps
its own tickets, fees and refunds as any order does.

The split rule (docs/selling.md, "Bundle prices"): cumulative rounding down from
the last event; the first event takes the rest. With ``T`` the weights' sum and
``S_i`` the sum of the weights from event ``i`` on, event ``i > 1`` gets
``floor(A*S_i/T) - floor(A*S_{i+1}/T)`` and the first ``A - floor(A*S_2/T)``:
integer minor units, never negative, adding up to ``A`` exactly, and each within
one unit of its exact share ``A*w_i/T`` (the rounding remainder lands on the
first). Events whose weights are all 0 (free events) share the bundle equally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rules.errors import InvalidAmount

MAX_MINOR = 10**12  # the largest price the selling scripts take (as rules/promos.py)


def check_bundle_prices(prices: Mapping[str, int], categories: set[str] | frozenset[str]) -> str | None:
    """The first category at fault in ``prices`` (None: valid): known categories, whole
    amounts from 0 to MAX_MINOR."""
    for category, amount in sorted(prices.items()):
        if category not in categories:
            return category
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_MINOR:
            return category
    return None


def split_bundle(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` split over ``len(weights)`` parts in proportion to ``weights`` (the rule of
    the module docstring): exact sum, no negative part, each within one unit of its share."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InvalidAmount(f"a bundle amount is 0 or more minor units, got {amount!r}")
    if not weights:
        raise InvalidAmount("a bundle is split over one event or more")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in weights):
        raise InvalidAmount(f"weights are list prices, 0 or more minor units: {list(weights)!r}")
    if sum(weights) == 0:
        weights = [1] * len(weights)
    total = sum(weights)
    parts = [0] * len(weights)
    suffix, below = 0, 0  # the weights after the part, and the amount given to them
    for i in range(len(weights) - 1, 0, -1):
        suffix += weights[i]
        upto = amount * suffix // total
        parts[i] = upto - below
        below = upto
    parts[0] = amount - below
    return parts
