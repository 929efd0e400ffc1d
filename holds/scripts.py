"""Lua scripts as package resources, registered once per client.

Each ``holds/lua/<name>.lua`` names its inputs at the top. A :class:`Script`
runs by EVALSHA and falls back to loading the source on NOSCRIPT (a Redis
restart or failover empties the script cache), so callers never see it.
A registry made by :meth:`ScriptRegistry.open` sends the calls over a
:class:`~holds.script_channel.ScriptChannel` where the client allows it (the
server's hot path); otherwise through redis-py.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis.exceptions

from holds import metrics
from holds.durability import Durability, ReplicatedWrites
from holds.redis_client import AnyRedis, raise_store_error, wrap_errors
from holds.script_channel import (
    ClusterChannels,
    EncodableArg,
    ScriptChannel,
    ScriptCommands,
    for_client,
    pack,
)

# Lua in Redis has no imports: shared code is prepended at load time. Every
# script gets the reply codes (holds/replies.py names the same in Python);
# scripts over one event's keys also get the inventory prelude's helpers.
REPLIES_HEADER = "_replies"
INVENTORY_PRELUDE = "_inventory"
# the selling scripts also get ticket types and promo codes (after the inventory prelude)
OFFERS_PRELUDE = "_offers"
OFFER_SCRIPTS = frozenset({"commit", "box_office"})
# the scripts that can end a whole order give its promo code's use back (after the inventory prelude)
PROMO_BACK_PRELUDE = "_promo_back"
PROMO_BACK_SCRIPTS = frozenset({"cancel", "refund"})
# minimum-distance seating: the scripts that take seats for a new group check it
DISTANCE_PRELUDE = "_distance"
DISTANCE_SCRIPTS = frozenset({"hold", "box_office", "exchange", "exchange_season", "season_hold"})
AFTER_SALE_PRELUDE = "_after_sale"  # after the inventory prelude: transfer, exchange, resale
AFTER_SALE_SCRIPTS = frozenset({"transfer", "exchange", "resale_list", "resale_hold", "resale_commit"})
# exchanges across events (holds/exchanges.py): after the after-sale prelude
XCHG_PRELUDE = "_xchg"
XCHG_SCRIPTS = frozenset({"exchange_season", "xchg_lock", "xchg_commit", "xchg_finish"})
SEASON_PRELUDE = "_season"  # after the inventory prelude: a season's keys, its events' (holds/seasons.py)
SEASON_SCRIPTS = frozenset({"season_hold", "season_commit", "season_release", "season_extend"})
# a season commit's bundle prices, ticket types and promo codes (after _season and _offers)
SEASON_SALE_PRELUDE = "_season_sale"
SEASON_SALE_SCRIPTS = frozenset({"season_commit"})
# the seat-map version fence, right before the script's own code: scripts that take seat
# ordinals from Python or answer with them (their last argument is the caller's version)
LAYOUT_PRELUDE = "_layout"
# (and those that change what a seat-map move rewrites, which it holds off meanwhile: all of
# them, and resale_hold and erase_orders, whose callers pass '' as the version)
LAYOUT_FENCED = frozenset(
    {
        "hold",
        "release",
        "extend",
        "set_status",
        "hold_view",
        "box_office",
        "exchange",
        "scan",
        "exchange_season",
    }
    | {"commit", "cancel", "refund", "transfer", "resale_list", "resale_commit"}
    | {"resale_hold", "erase_orders"}
)
# the move's own helpers (after the inventory prelude): the whole move and the move in chunks
REMAP_PRELUDE = "_remap"
REMAP_SCRIPTS = frozenset({"remap", "remap_begin", "remap_step"})
# channels and allocations (after the inventory prelude): the scripts given the channel keys last;
# those of the second and third lines give a channel's GA places back to it (a release, an
# expiry, a cancel, an exchange; a script over several events gets each event's)
CHANNELS_PRELUDE = "_channels"
CHANNEL_SCRIPTS = frozenset(
    {"hold", "box_office", "snapshot", "channel_put", "channel_allocate", "channel_close", "season_hold"}
    | {"release", "reap", "commit", "cancel", "refund", "exchange"}
    | {"season_commit", "season_release", "exchange_season", "xchg_commit", "xchg_finish"}
)
INVENTORY_SCRIPTS = frozenset(
    {
        "hold",
        "release",
        "extend",
        "commit",
        "cancel",
        "set_status",
        "snapshot",
        "reap",
        "hold_view",
        "event_dump",
        "erase_orders",
        "scan",
        "checkin_stats",
        "no_show",
        "box_office",
        "refund",
        "remap",
        "remap_begin",
        "remap_step",
    }
    | AFTER_SALE_SCRIPTS
    | XCHG_SCRIPTS
    | SEASON_SCRIPTS
    | CHANNEL_SCRIPTS
)


def _read(name: str) -> str:
    return (resources.files("holds") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


# the files that are not scripts of their own: prepended to the scripts that use them
PRELUDES = frozenset(
    {
        REPLIES_HEADER,
        INVENTORY_PRELUDE,
        OFFERS_PRELUDE,
        AFTER_SALE_PRELUDE,
        PROMO_BACK_PRELUDE,
        SEASON_PRELUDE,
        SEASON_SALE_PRELUDE,
        LAYOUT_PRELUDE,
        DISTANCE_PRELUDE,
        CHANNELS_PRELUDE,
        XCHG_PRELUDE,
        REMAP_PRELUDE,
    }
)


@cache
def _source(name: str) -> str:
    parts = [REPLIES_HEADER, INVENTORY_PRELUDE, name] if name in INVENTORY_SCRIPTS else [REPLIES_HEADER, name]
    if name in OFFER_SCRIPTS:
        parts.insert(2, OFFERS_PRELUDE)
    if name in AFTER_SALE_SCRIPTS or name in XCHG_SCRIPTS:
        parts.insert(2, AFTER_SALE_PRELUDE)
    if name in XCHG_SCRIPTS:
        parts.insert(-1, XCHG_PRELUDE)
    if name in PROMO_BACK_SCRIPTS:
        parts.insert(2, PROMO_BACK_PRELUDE)
    if name in SEASON_SCRIPTS:
        parts.insert(2, SEASON_PRELUDE)
    if name in SEASON_SALE_SCRIPTS:
        parts[-1:-1] = [OFFERS_PRELUDE, SEASON_SALE_PRELUDE]
    if name in LAYOUT_FENCED:
        parts.insert(-1, LAYOUT_PRELUDE)
    if name in DISTANCE_SCRIPTS:
        parts.insert(2, DISTANCE_PRELUDE)
    if name in CHANNEL_SCRIPTS:
        parts.insert(2, CHANNELS_PRELUDE)
    if name in REMAP_SCRIPTS:
        parts.insert(2, REMAP_PRELUDE)
    rest = "\n".join(_read(part) for part in parts[1:])
    return _replies_used_by(rest) + "\n" + rest


_REPLY = re.compile(r"^local ([A-Z][A-Z0-9_]*) = ", re.M)


def _replies_used_by(code: str) -> str:
    """The reply codes ``code`` names: a Lua function has at most 200 locals, and every
    code in _replies.lua is one (the scripts with the most preludes would pass it)."""
    used = set(re.findall(r"\b[A-Z][A-Z0-9_]*\b", code))
    lines = _read(REPLIES_HEADER).splitlines()
    return "\n".join(line for line in lines if (m := _REPLY.match(line)) is None or m.group(1) in used)


def script_source(name: str) -> str:
    """The full source of a script as Redis runs it (reply codes and prelude included)."""
    return _source(name)


class Replication:
    """Where a registry's scripts send changes that replicas must confirm (none: the
    primary's reply is the acknowledgement). Shared by the registry's scripts."""

    def __init__(self) -> None:
        self.writes: ReplicatedWrites | None = None


class Script:
    """One Lua script bound to one client (and its channel, when it has one)."""

    def __init__(
        self,
        client: AnyRedis,
        name: str,
        channel: ScriptChannel | ClusterChannels | None = None,
        replication: Replication | None = None,
    ) -> None:
        self.name = name
        self.source = _source(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self._client = client
        self._channel = channel
        self._commands = ScriptCommands(self.sha)
        self._operation = f"script {name}"
        self._replication = replication or Replication()
        self._seconds = metrics.SCRIPT_SECONDS.labels(name)

    async def __call__(self, keys: Sequence[str], args: Sequence[EncodableArg]) -> Any:
        started = time.perf_counter()
        try:  # wrap_errors, spelled out: an async context manager per call costs the hot path
            try:
                if isinstance(self._channel, ScriptChannel):
                    return await self._channel.execute(self._commands.evalsha(keys, args))
                if isinstance(self._channel, ClusterChannels):
                    try:
                        return await self._channel.execute(self._commands.evalsha(keys, args), keys[0])
                    except ClusterChannels.REROUTE:
                        pass  # redis-py's cluster client follows the slot to its node
                return await self._client.evalsha(self.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                # EVAL caches the script again for the following EVALSHA calls.
                return await self._client.eval(self.source, len(keys), *keys, *args)
        except Exception as exc:
            raise_store_error(self._operation, exc)
            raise
        finally:
            self._seconds.observe(time.perf_counter() - started)

    async def replicated(self, keys: Sequence[str], args: Sequence[EncodableArg]) -> Any:
        """As a call, but acknowledged only once the configured number of replicas
        has the change (``holds/durability.py``): for changes that create or revoke
        tickets. Without a durability setting, the same as calling the script."""
        writes = self._replication.writes
        if writes is None:
            return await self(keys, args)
        started = time.perf_counter()
        async with wrap_errors(self._operation):
            try:
                full: tuple[EncodableArg, ...] = ("EVALSHA", self.sha, len(keys), *keys, *args)
                return await writes.execute(pack(full), full, keys[0], self._operation)
            except redis.exceptions.NoScriptError:  # nothing ran: send the source this once
                full = ("EVAL", self.source, len(keys), *keys, *args)
                return await writes.execute(pack(full), full, keys[0], self._operation)
            finally:
                self._seconds.observe(time.perf_counter() - started)


class ScriptRegistry:
    """The scripts of one client, one attribute per ``holds/lua/<name>.lua``, kept
    for the client's life (``scripts.hold`` leads an editor from a call to its script)."""

    def __init__(self, client: AnyRedis, channel: ScriptChannel | ClusterChannels | None = None) -> None:
        self._client = client
        self.channel = channel
        self._replication = Replication()
        # over one event's keys (INVENTORY_SCRIPTS): holds/inventory.py, holds/inspection.py
        self.hold = self._script("hold")
        self.release = self._script("release")
        self.extend = self._script("extend")
        self.commit = self._script("commit")
        self.cancel = self._script("cancel")
        self.set_status = self._script("set_status")
        self.snapshot = self._script("snapshot")
        self.reap = self._script("reap")
        self.hold_view = self._script("hold_view")
        self.event_dump = self._script("event_dump")
        self.box_office = self._script("box_office")  # holds/inventory.py
        self.refund = self._script("refund")  # over the event's keys and money keys: holds/inventory.py
        self.remap = self._script("remap")  # moving an event to another seat-map version: holds/remap.py
        self.remap_begin = self._script("remap_begin")  # the same in chunks (event keys + move keys)
        self.remap_step = self._script("remap_step")
        # an event's settings: holds/events.py
        self.event_put = self._script("event_put")
        # a tenant's seat maps: holds/seatmaps.py
        self.seatmap_put = self._script("seatmap_put")
        self.seatmap_publish = self._script("seatmap_publish")
        self.seatmap_list = self._script("seatmap_list")
        # data leaving the service (holds/feed/): consent and erasure
        self.consent = self._script("consent")
        self.erase_subject = self._script("erase_subject")
        self.erase_orders = self._script("erase_orders")  # over one event's keys
        # tickets and the door: holds/door.py (event keys + door keys), holds/ticket_keys.py
        self.scan = self._script("scan")
        self.checkin_stats = self._script("checkin_stats")
        self.no_show = self._script("no_show")
        self.ticket_keys_put = self._script("ticket_keys_put")
        # platforms (holds/platform/): unique names (domains, slugs), plan-limit usage
        self.claim_unique = self._script("claim_unique")
        self.plan_usage = self._script("plan_usage")
        # ticket types and promo codes: holds/offers.py (definitions; organizer-wide codes' uses)
        self.offer_put = self._script("offer_put")
        self.promo_claim = self._script("promo_claim")
        self.promo_return = self._script("promo_return")  # a cancelled order's use, once
        # after the sale (event keys + door keys + resale keys): holds/aftersale.py
        self.transfer = self._script("transfer")
        self.exchange = self._script("exchange")
        self.resale_list = self._script("resale_list")
        self.resale_hold = self._script("resale_hold")
        self.resale_commit = self._script("resale_commit")
        # exchanges across events (holds/exchanges.py): a season's two events in one script,
        # the saga's steps over the source's keys (+ its xsagas) or the target's
        self.exchange_season = self._script("exchange_season")
        self.xchg_lock = self._script("xchg_lock")
        self.xchg_commit = self._script("xchg_commit")
        self.xchg_finish = self._script("xchg_finish")
        # seasons (season keys + each event's keys, one slot): holds/seasons.py
        self.season_hold = self._script("season_hold")
        self.season_commit = self._script("season_commit")
        self.season_release = self._script("season_release")
        self.season_extend = self._script("season_extend")
        # channels and allocations (event keys + channel keys): holds/channels.py
        self.channel_put = self._script("channel_put")
        self.channel_allocate = self._script("channel_allocate")
        self.channel_close = self._script("channel_close")

    def _script(self, name: str) -> Script:
        return Script(self._client, name, self.channel, self._replication)

    def use_durability(self, durability: Durability) -> None:
        """Acknowledge ticket changes once ``durability.replicas`` replicas have them."""
        if self._replication.writes is not None:
            raise RuntimeError("durability is set once, before the first call")
        if durability.replicas > 0:
            self._replication.writes = ReplicatedWrites(self._client, durability)

    @property
    def durability(self) -> Durability:
        writes = self._replication.writes
        return writes.durability if writes is not None else Durability()

    @classmethod
    def open(cls, client: AnyRedis) -> ScriptRegistry:
        """Scripts over a channel of their own when ``client`` allows one; close with :meth:`aclose`."""
        return cls(client, for_client(client))

    async def aclose(self) -> None:
        if self._replication.writes is not None:
            await self._replication.writes.aclose()
        if self.channel is not None:
            await self.channel.aclose()
