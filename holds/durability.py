"""Changes acknowledged only once replicas have them: a failover cannot lose them.

Redis replicates asynchronously: a primary that dies before its replica
received a change loses it when the replica is promoted, although the client
was told it happened. For a commit that means a sold ticket vanishes and its
seat is sold again. So every change that creates or revokes tickets (commits,
cancellations) is followed by ``WAIT <replicas> <timeout>`` on the connection
that made it, and acknowledged only when enough replicas confirm it; WAIT
covers everything the primary did before, holds included.

WAIT blocks its connection, so these changes travel over a connection of
their own per primary (:class:`GroupCommit`), never the holds' channel, and
the changes of one event-loop turn share one WAIT (a group commit: one
replication round trip for a burst of commits, not one each). A change that
replicas do not confirm in time answers :class:`NotReplicated`
(``UNAVAILABLE``): it may have been applied, and a retry with the same
idempotency key returns it or makes it, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from holds.errors import StoreUnavailable
from holds.redis_client import AnyRedis
from holds.script_channel import ClusterChannels, ScriptChannel, for_client, pack

DEFAULT_TIMEOUT_MS = 500


@dataclass(frozen=True)
class Durability:
    """``replicas``: how many replicas must confirm a ticket change before it is
    acknowledged (0: the primary's reply is enough, as with no replicas)."""

    replicas: int = 0
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __post_init__(self) -> None:
        if self.replicas < 0 or self.timeout_ms < 1:
            raise ValueError("replicas must be 0 or more and the timeout at least 1 ms")


class NotReplicated(StoreUnavailable):
    def __init__(self, operation: str, confirmed: int, wanted: int) -> None:
        super().__init__(
            f"{operation}: confirmed by {confirmed} of {wanted} replica(s) in time; it may have been"
            " applied: retry with the same idempotency key"
        )


class GroupCommit:
    """Commands acknowledged once ``durability.replicas`` replicas have them, over one
    connection: the commands of one event-loop turn go out together, then one WAIT."""

    def __init__(self, channel: ScriptChannel, durability: Durability) -> None:
        self._channel = channel
        self._durability = durability
        self._wait = pack(("WAIT", durability.replicas, durability.timeout_ms))
        self._pending: list[tuple[bytes, str, asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.waits = 0  # WAITs sent: for tests and benchmarks

    async def execute(self, command: bytes, operation: str) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, operation, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: Sequence[tuple[bytes, str, asyncio.Future[Any]]]) -> None:
        try:
            sent = await self._channel.send_all([command for command, _, _ in batch] + [self._wait])
        except Exception as exc:  # not sent: nothing was applied
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.waits += 1
        replies = await asyncio.gather(*sent, return_exceptions=True)
        confirmed = replies[-1]
        wanted = self._durability.replicas
        for (_, operation, future), reply in zip(batch, replies[:-1], strict=True):
            if future.done():
                continue  # its caller gave up
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            elif isinstance(confirmed, BaseException):
                future.set_exception(NotReplicated(operation, 0, wanted))
            elif int(confirmed) < wanted:
                future.set_exception(NotReplicated(operation, int(confirmed), wanted))
            else:
                future.set_result(reply)

    async def aclose(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await self._channel.aclose()


class ReplicatedWrites:
    """Where a process's acknowledged-by-replicas commands go: a group commit per
    primary over channels of their own, or redis-py (TLS) with WAIT pipelined
    after the command on the same connection."""

    def __init__(self, client: AnyRedis, durability: Durability) -> None:
        self.durability = durability
        self._client = client
        self._channels = for_client(client)  # connections of their own: WAIT blocks its connection
        self._groups: dict[int, GroupCommit] = {}
        self._node_clients: dict[tuple[str, int], aioredis.Redis] = {}
        self._refreshing: asyncio.Future[Any] | None = None  # one slot-map refresh at a time

    async def execute(self, command: bytes, args: Sequence[Any], key: str, operation: str) -> Any:
        """``command`` (packed ``args``) on the primary of ``key``, acknowledged by replicas."""
        channel: ScriptChannel | None = None
        if isinstance(self._channels, ScriptChannel):
            channel = self._channels
        elif isinstance(self._channels, ClusterChannels):
            channel = await self._channels.channel_for(key)
        if channel is None:
            return await self._via_redis_py(args, key, operation)
        group = self._groups.get(id(channel))
        if group is None:
            group = self._groups[id(channel)] = GroupCommit(channel, self.durability)
        try:
            return await group.execute(command, operation)
        except ClusterChannels.REROUTE:
            # MOVED, or the primary gone (a failover): unlike the holds' channels these
            # calls are not handed to redis-py (WAIT must follow the change on its
            # connection), so re-read the slot map here: the caller's retry (UNAVAILABLE,
            # same idempotency key) then goes to the primary that serves the key now
            if isinstance(self._channels, ClusterChannels):
                await self._refresh_slots()
            raise

    async def _refresh_slots(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._client.nodes_manager.initialize())
        with contextlib.suppress(Exception):  # the cluster may still be failing over
            await asyncio.shield(self._refreshing)

    async def _via_redis_py(self, args: Sequence[Any], key: str, operation: str) -> Any:
        client: Any = self._client
        if isinstance(client, RedisCluster):
            client = await self._node_client(client, key)
        async with client.pipeline(transaction=False) as pipe:  # one connection: WAIT covers the command
            pipe.execute_command(*args)
            pipe.execute_command("WAIT", self.durability.replicas, self.durability.timeout_ms)
            reply, confirmed = await pipe.execute()
        if int(confirmed) < self.durability.replicas:
            raise NotReplicated(operation, int(confirmed), self.durability.replicas)
        return reply

    async def _node_client(self, cluster: RedisCluster, key: str) -> aioredis.Redis:
        """A plain client of the primary serving ``key`` (a cluster pipeline cannot send
        WAIT: it has no key), with the cluster client's connection settings."""
        if not cluster.nodes_manager.slots_cache:
            await cluster.initialize()
        node = cluster.get_node_from_key(key)
        if node is None:
            raise redis.exceptions.SlotNotCoveredError(f"no primary serves the slot of {key!r}")
        where = (str(node.host), int(node.port))
        client = self._node_clients.get(where)
        if client is None:
            kwargs = {k: v for k, v in cluster.connection_kwargs.items() if k not in ("host", "port")}
            pool = aioredis.ConnectionPool(host=where[0], port=where[1], **kwargs)
            client = self._node_clients[where] = aioredis.Redis(connection_pool=pool)
        return client

    async def aclose(self) -> None:
        for node_client in self._node_clients.values():
            await node_client.aclose()
        self._node_clients.clear()
        for group in self._groups.values():
            await group.aclose()
        self._groups.clear()
        if self._channels is not None:
            await self._channels.aclose()


async def connected_replicas(client: AnyRedis) -> int:
    """The fewest replicas connected to any primary (0 when one has none)."""
    if isinstance(client, RedisCluster):
        replies = await client.info("replication", target_nodes=RedisCluster.PRIMARIES)
        infos = list(replies.values()) if isinstance(replies, dict) and "role" not in replies else [replies]
    else:
        infos = [await client.info("replication")]
    return min((int(info.get("connected_slaves", 0)) for info in infos), default=0)


async def resolve(client: AnyRedis, replicas: int, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Durability:
    """The durability to use: ``replicas`` as given, or with -1 (auto) one replica's
    confirmation when every primary has a replica connected, else none."""
    if replicas < 0:
        replicas = 1 if await connected_replicas(client) > 0 else 0
    return Durability(replicas, timeout_ms)
