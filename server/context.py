"""The stores one server process shares across its servicers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from holds.aftersale import AfterSale
from holds.channels import Channels
from holds.door import Door
from holds.events import EventStore
from holds.inventory import Inventory
from holds.live import LiveEvents
from holds.offers import Offers
from holds.platform.audit import AuditLog
from holds.platform.branding import BrandingStore
from holds.platform.dues import Dues
from holds.platform.hub import Hub
from holds.platform.notifications import PlanLimitsOf, PlanUsage
from holds.platform.platforms import PlatformStore
from holds.platform.sellers import NativeResales
from holds.platform.tenants import TenantStore
from holds.redis_client import AnyRedis, connect
from holds.remap import SeatMapMoves
from holds.sales import Sales
from holds.scripts import ScriptRegistry
from holds.seasons import SeasonSales, SeasonStore
from holds.seatmaps import SeatMapStore
from holds.ticket_keys import TicketKeyStore
from server.admission import Admission
from server.deadlines import Budgets
from server.heavy import HeavyWork
from server.ratelimit import SalesLimiter


@dataclass
class Stores:
    redis: AnyRedis
    scripts: ScriptRegistry
    tenants: TenantStore
    seatmaps: SeatMapStore
    events: EventStore
    inventory: Inventory
    live: LiveEvents
    sales: Sales
    offers: Offers  # ticket types and promo codes (the selling scripts apply them)
    channels: Channels  # channels and allocations (the hold and box-office scripts check them)
    door: Door
    after_sale: AfterSale  # transfers, exchanges, resale
    platforms: PlatformStore
    audit: AuditLog
    branding: BrandingStore
    plan_limits: PlanLimitsOf  # plan limits, their usage per period and notifications
    hub: Hub
    dues: Dues  # billing state: automatic suspension of unpaid organizers (run by server/reaper.py)
    rate_limits: SalesLimiter  # per-event limits on hold-taking calls
    seasons: SeasonStore  # seasons of events (holds/seasons.py)
    season_sales: SeasonSales  # season holds and orders
    moves: SeatMapMoves  # moving events to another version of their seat map
    admission: Admission = field(default_factory=Admission)
    budgets: Budgets = field(default_factory=Budgets)  # unary calls' and session messages' (one timer)
    heavy: HeavyWork = field(default_factory=HeavyWork)  # started on first use
    # Set when the server begins a graceful stop (server/app.py, stop_server): open
    # sales sessions stop reading, answer what is in flight and end UNAVAILABLE.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def open(
        cls,
        redis_url: str,
        *,
        timeout_s: float = 5.0,
        read_timeout: bool = True,
        ticket_key_secret: str | None = None,
    ) -> Stores:
        """``read_timeout`` False: no per-read socket timeout; the server bounds every
        call with its RPC's deadline instead (one timer less per Redis command).
        ``ticket_key_secret``: encrypts organizers' ticket keys at rest (holds/ticket_keys.py)."""
        client = connect(
            redis_url, socket_timeout=timeout_s if read_timeout else None, connect_timeout=timeout_s
        )
        scripts = ScriptRegistry.open(client)
        seatmaps = SeatMapStore(client, scripts)
        tenants = TenantStore(client)
        hub = Hub(client, tenants)
        events = EventStore(client, scripts, on_change=hub.track)
        inventory = Inventory(client, scripts)
        live = LiveEvents(client, events, seatmaps, inventory)
        platforms = PlatformStore(client, tenants)
        plan_limits = PlanLimitsOf(tenants, platforms, PlanUsage(client, scripts))
        audit = AuditLog(client)
        offers = Offers(client, scripts, live)
        sales = Sales(live, inventory, platforms.organizer_plan, limits=plan_limits, offers=offers)
        door = Door(client, scripts, live, inventory, TicketKeyStore(client, scripts, ticket_key_secret))
        seasons = SeasonStore(client)
        channels = Channels(client, scripts, live)
        return cls(
            redis=client,
            scripts=scripts,
            tenants=tenants,
            seatmaps=seatmaps,
            events=events,
            inventory=inventory,
            live=live,
            sales=sales,
            offers=offers,
            channels=channels,
            door=door,
            after_sale=AfterSale(client, scripts, sales, inventory, door, NativeResales(client, tenants)),
            platforms=platforms,
            audit=audit,
            branding=BrandingStore(client, scripts, tenants, platforms),
            plan_limits=plan_limits,
            hub=hub,
            dues=Dues(client, tenants, platforms, audit),
            rate_limits=SalesLimiter(client, redis_url, timeout_s=timeout_s),
            seasons=seasons,
            season_sales=SeasonSales(client, scripts, seasons, sales, limits=plan_limits, offers=offers),
            moves=SeatMapMoves(
                events, seatmaps, scripts, on_moved=live.forget, has_channels=channels.any_defined
            ),
        )

    async def close(self) -> None:
        await self.heavy.close()
        await self.live.close()
        await self.scripts.aclose()
        await self.rate_limits.aclose()
        await self.redis.aclose()
