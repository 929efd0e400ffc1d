"""The on-sale scenarios: which users, in what mix, on which venue, in which shape.

Plain data, so the runner can read it without importing Locust (which
monkey-patches the process for gevent). The users are classes of
:mod:`loadtest.users`, named here; the shapes are those of :mod:`loadtest.shapes`.
:mod:`loadtest.locustfile` binds the scenario named in ``SEATWISE_LOADTEST_SCENARIO``.
To add a scenario, add its users to :mod:`loadtest.users` and a
:class:`Scenario` to :data:`SCENARIOS`.
"""

from __future__ import annotations

from dataclasses import dataclass

SHAPE_NAMES = ("spike", "step", "soak")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    venue: str
    hold_ttl_s: float
    users: tuple[str, ...]  # class names in loadtest.users
    shape: str  # one of SHAPE_NAMES
    default_users: int
    default_spawn_rate: float
    default_duration_s: float


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "stadium-spike",
            "the ~90k-seat stadium goes on sale; thousands of buyers arrive within seconds",
            "stadium",
            60.0,
            ("SpikeBestBuyer", "SpikePicker", "SpikeWatcher"),
            "spike",
            2000,
            500,
            60,
        ),
        Scenario(
            "stadium-gateway",
            "the stadium on-sale through storefront gateways: asyncio buyers over batched sessions"
            " and one availability cache per Locust process",
            "stadium",
            60.0,
            ("GatewayStadiumBuyer",),
            "spike",
            2000,
            500,
            90,  # issue 15: the stadium sold out within 90 s
        ),
        Scenario(
            "hot-seat",
            "everyone wants specific seats in the front rows of the best sections",
            "stadium",
            60.0,
            ("HotSeatRusher", "HotSeatWatcher"),
            "spike",
            1000,
            500,
            60,
        ),
        Scenario(
            "ga-rush",
            "an arena's 3,200-place standing floor sells by quantity (HoldGeneralAdmission)",
            "arena",
            30.0,
            ("GaRusher", "ArenaSeatBuyer"),
            "spike",
            1500,
            500,
            60,
        ),
        Scenario(
            "browse-watch",
            "crowds hold WatchAvailability streams open and browse while others buy",
            "stadium-lower",
            60.0,
            ("CrowdWatcher", "CrowdBrowser", "CrowdBuyer", "CrowdPicker"),
            "step",
            600,
            100,
            120,
        ),
        Scenario(
            "soak",
            "steady buying on an arena for a long time, with 20 s leases and slow payers",
            "arena",
            20.0,
            ("SoakBuyer", "SoakPicker", "SoakGaBuyer", "SoakWatcher"),
            "soak",
            300,
            20,
            600,
        ),
    )
}
