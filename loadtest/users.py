"""The concrete Locust users of every scenario (Locust picks user classes by name).

Each scenario in :mod:`loadtest.scenarios` names its users here; they only set
weights and tunables on the journeys of :mod:`loadtest.buyers`.
"""

from __future__ import annotations

from locust import between

from loadtest.buyers import BestAvailableBuyer, Browser, GaBuyer, HotSeatBuyer, SeatPicker, Watcher
from loadtest.gateway import GatewayBuyer

# -- stadium on-sale spike: thousands arrive within seconds; most take best available --------------


# Between journeys a spike user's slot is refilled at once: the on-sale's queue is long, so the next
# buyer is already waiting (only the page load in between). Paying (think_s) stays 1-5 s.


class SpikeBestBuyer(BestAvailableBuyer):
    weight = 6
    wait_time = between(0.0, 0.5)
    think_s = (1.0, 5.0)


class SpikePicker(SeatPicker):
    weight = 3
    wait_time = between(0.0, 0.5)
    think_s = (1.0, 5.0)


class SpikeWatcher(Watcher):
    weight = 1


# -- stadium on-sale through storefront gateways: each Locust process drives one asyncio gateway ------
# One Locust user is one buyer coroutine in its process's gateway (loadtest/gateway.py,
# loadtest/storefront.py): --users is the number of buyers, --spawn-rate how fast they arrive.
# Their holds, releases and commits go over the gateway's sales sessions; they browse its cache.


class GatewayStadiumBuyer(GatewayBuyer):
    pass


# -- hot-seat contention: everyone wants the front rows of the best sections -----------------------


class HotSeatRusher(HotSeatBuyer):
    weight = 9
    wait_time = between(0.2, 1.0)
    think_s = (1.0, 4.0)


class HotSeatWatcher(Watcher):
    weight = 1


# -- GA rush: a standing floor sells by quantity; a few buy seats ----------------------------------


class GaRusher(GaBuyer):
    weight = 8
    wait_time = between(0.5, 2.0)
    think_s = (1.0, 5.0)


class ArenaSeatBuyer(BestAvailableBuyer):
    weight = 2
    wait_time = between(0.5, 2.0)
    think_s = (1.0, 5.0)


# -- browse-and-watch crowds: many streams open while a few buy -----------------------------------


class CrowdWatcher(Watcher):
    weight = 6


class CrowdBrowser(Browser):
    weight = 2


class CrowdBuyer(BestAvailableBuyer):
    weight = 1


class CrowdPicker(SeatPicker):
    weight = 1


# -- soak: steady buying for a long time, short leases, slow payers whose holds expire -------------


class SoakBuyer(BestAvailableBuyer):
    weight = 5
    think_s = (2.0, 24.0)  # past the 20 s lease now and then: the commit must be refused
    abandon_rate = 0.3


class SoakPicker(SeatPicker):
    weight = 3
    think_s = (2.0, 24.0)
    abandon_rate = 0.3


class SoakGaBuyer(GaBuyer):
    weight = 1
    think_s = (2.0, 24.0)
    abandon_rate = 0.3


class SoakWatcher(Watcher):
    weight = 1
