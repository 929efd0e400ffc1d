"""The stores one server process shares across its servicers."""

from __future__ import annotations

from dataclasses import dataclass, field

from holds.availability import AvailabilityMirrors
from holds.events import EventStore
from holds.inventory import Inventory
from holds.redis_client import AnyRedis, connect
from holds.sales import Sales
from holds.scripts import ScriptRegistry
from holds.seatmaps import SeatMapStore
from holds.tenants import TenantStore
from server.admission import Admission


@dataclass
class Stores:
    redis: AnyRedis
    scripts: ScriptRegistry
    tenants: TenantStore
    seatmaps: SeatMapStore
    sales: Sales
    admission: Admission = field(default_factory=Admission)

    @classmethod
    def open(cls, redis_url: str, *, timeout_s: float = 5.0, read_timeout: bool = True) -> Stores:
        """``read_timeout`` False: no per-read socket timeout; the server bounds every
        call with its RPC's deadline instead (one timer less per Redis command)."""
        client = connect(
            redis_url, socket_timeout=timeout_s if read_timeout else None, connect_timeout=timeout_s
        )
        scripts = ScriptRegistry.open(client)
        seatmaps = SeatMapStore(client, scripts)
        inventory = Inventory(client, scripts)
        sales = Sales(
            EventStore(client, scripts), seatmaps, inventory, AvailabilityMirrors(client, inventory)
        )
        return cls(redis=client, scripts=scripts, tenants=TenantStore(client), seatmaps=seatmaps, sales=sales)

    async def close(self) -> None:
        await self.sales.mirrors.close()
        await self.scripts.aclose()
        await self.redis.aclose()
