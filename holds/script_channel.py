"""One pipelined connection per process for the inventory scripts: the hot path.

redis-py's asyncio client spends much of a HoldSeats' CPU on each EVALSHA
(argument encoding in Python, a pooled connection checked out and back, retry
and observability wrappers; figures in docs/performance.md); a hold is one
script call. A :class:`ScriptChannel` sends every script call of the process
over one socket instead, replies matched to calls in order (Redis answers a
connection's commands in the order it received them), the commands of one
event-loop turn written in one syscall, commands packed and replies parsed by
hiredis, the C packer and parser redis-py itself uses.

A Redis Cluster gets one channel per primary (:class:`ClusterChannels`), a
call going to the primary that redis-py's slot map names for its first key;
a redirection (MOVED, ASK), a cluster in flux or a broken connection hands
that call to redis-py's cluster client, which follows the redirection and
refreshes the slot map the channels read. TLS and RESP3 stay on redis-py
(:func:`for_client` returns None). Errors are redis-py's exception classes,
so :func:`holds.redis_client.wrap_errors` maps them as before; a connection
that breaks fails its calls with ``ConnectionError`` and the next call
reconnects. Redis keeps a connection's replies in order, so a caller that
gives up (its RPC deadline) leaves its reply to be read and dropped; a reply
overdue by ``stall_s`` means the connection is dead (a half-open socket) and
it is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
import redis.exceptions
from redis._parsers.base import BaseParser  # private: no public API maps an error reply to its exception
from redis.asyncio.cluster import RedisCluster

EncodableArg = str | int | float | bytes

# A reply this overdue means the socket is dead, not that Redis is slow:
# scripts cap their work per call and Redis answers BUSY after 5 s.
STALL_S = 10.0

# hiredis' stub types the argument as a 1-tuple and leaves the result untyped
_pack_command = cast(Callable[[tuple[EncodableArg, ...]], bytes], hiredis.pack_command)


def pack(args: Sequence[EncodableArg]) -> bytes:
    """A whole command in RESP, packed as redis-py packs it (by hiredis; a bad argument is a DataError)."""
    try:
        return _pack_command(tuple(args))
    except TypeError as exc:
        raise redis.exceptions.DataError(f"invalid command argument: {exc}") from exc


class ScriptCommands:
    """Packs ``EVALSHA sha numkeys keys... args...`` for one script."""

    def __init__(self, sha: str) -> None:
        self.sha = sha

    def evalsha(self, keys: Sequence[str], args: Sequence[EncodableArg]) -> bytes:
        return pack(("EVALSHA", self.sha, len(keys), *keys, *args))


@dataclass(frozen=True)
class Address:
    """Where and how to connect: a unix socket path or host and port, and the handshake."""

    path: str | None = None
    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    connect_timeout: float | None = 5.0


def _parse_error(message: str) -> Exception:
    # redis-py's own mapping: NOSCRIPT -> NoScriptError, LOADING -> BusyLoadingError, ...
    error: Exception = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error


class _Protocol(asyncio.Protocol):
    """The socket: writes coalesced per loop turn, replies resolved in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(protocolError=redis.exceptions.InvalidResponse, replyError=_parse_error)
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._outbox: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        error = redis.exceptions.ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}")
        while self._pending:
            future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)

    @property
    def usable(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = self._reader.gets()
            except redis.exceptions.InvalidResponse:
                self.abort()  # the stream is corrupt: nothing after this can be matched
                return
            if reply is False:
                return
            future, _ = pending.popleft()
            if not future.done():  # else its caller gave up; the reply is dropped
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self._transport is None:
            raise redis.exceptions.ConnectionError("connection to Redis is closed")
        loop = asyncio.get_running_loop()
        if self._pending and self._pending[0][1] < time.monotonic() - STALL_S:
            self.abort()
            raise redis.exceptions.ConnectionError(
                f"no reply from Redis for {STALL_S:.0f} s: connection closed"
            )
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((future, time.monotonic()))
        self._outbox.append(command)
        if len(self._outbox) == 1:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        if self._transport is not None and self._outbox:
            self._transport.write(b"".join(self._outbox))
        self._outbox.clear()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails what is pending


class ScriptChannel:
    """Calls over one connection, opened on first use and reopened after a failure."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    async def execute(self, command: bytes) -> Any:
        """Send one packed command and return its reply (errors raised as redis-py's)."""
        protocol = self._protocol
        if protocol is None or not protocol.usable:
            protocol = await self._connect()
        return await protocol.send(command)

    async def send_all(self, commands: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Send packed commands in this order on one connection, in one write; a future
        per reply (a WAIT last thus covers the commands before it)."""
        protocol = self._protocol
        if protocol is None or not protocol.usable:
            protocol = await self._connect()
        return [protocol.send(command) for command in commands]

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            # shield: one caller's deadline must not cancel the others' connection attempt
            return await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        a = self.address
        try:
            async with asyncio.timeout(a.connect_timeout):
                if a.path is not None:
                    _, protocol = await loop.create_unix_connection(_Protocol, a.path)
                else:
                    _, protocol = await loop.create_connection(_Protocol, a.host, a.port)
                handshake = []
                if a.password is not None:
                    auth = ("AUTH", a.username, a.password) if a.username else ("AUTH", a.password)
                    handshake.append(protocol.send(pack(auth)))
                if a.db:
                    handshake.append(protocol.send(pack(("SELECT", a.db))))
                try:
                    await asyncio.gather(*handshake)
                except BaseException:
                    protocol.abort()
                    raise
        except TimeoutError as exc:
            raise redis.exceptions.TimeoutError(
                f"connecting to Redis took over {a.connect_timeout} s"
            ) from exc
        except OSError as exc:
            raise redis.exceptions.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        self._protocol = protocol
        return protocol

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None:
            self._protocol.abort()
            await self._protocol.closed
            self._protocol = None


class ClusterChannels:
    """A channel per primary of a Redis Cluster, chosen by the slot of a call's first key."""

    # a call that meets one of these goes to redis-py's cluster client instead,
    # which follows redirections and refreshes the slot map these channels read
    REROUTE = (
        redis.exceptions.MovedError,
        redis.exceptions.AskError,
        redis.exceptions.TryAgainError,
        redis.exceptions.ClusterDownError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.SlotNotCoveredError,
    )

    def __init__(self, client: RedisCluster, template: Address) -> None:
        self._client = client
        self._template = template
        self._channels: dict[tuple[str, int], ScriptChannel] = {}

    async def execute(self, command: bytes, key: str) -> Any:
        return await (await self.channel_for(key)).execute(command)

    async def channel_for(self, key: str) -> ScriptChannel:
        """The channel to the primary that redis-py's slot map names for ``key``."""
        if not self._client.nodes_manager.slots_cache:  # redis-py builds the slot map on first use
            await self._client.initialize()
        node = self._client.get_node_from_key(key)  # SlotNotCoveredError when no primary has it
        if node is None:
            raise redis.exceptions.SlotNotCoveredError(f"no primary serves the slot of {key!r}")
        where = (str(node.host), int(node.port))
        channel = self._channels.get(where)
        if channel is None:
            address = Address(
                host=where[0],
                port=where[1],
                username=self._template.username,
                password=self._template.password,
                connect_timeout=self._template.connect_timeout,
            )
            channel = self._channels[where] = ScriptChannel(address)
        return channel

    def open_channels(self) -> list[ScriptChannel]:
        """The channels made so far, one per primary used."""
        return list(self._channels.values())

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.aclose()
        self._channels.clear()


def for_client(client: Any) -> ScriptChannel | ClusterChannels | None:
    """Channels to the same Redis as redis-py ``client``, or None where only
    redis-py will do (TLS, RESP3, a credential provider)."""
    if isinstance(client, RedisCluster):
        kwargs = client.connection_kwargs
        plain = kwargs.get("connection_class", aioredis.Connection) is aioredis.Connection  # not TLS
        if not plain or kwargs.get("protocol") not in (None, 2, "2") or kwargs.get("credential_provider"):
            return None
        template = Address(
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            connect_timeout=kwargs.get("socket_connect_timeout"),
        )
        return ClusterChannels(client, template)
    if not isinstance(client, aioredis.Redis):
        return None
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if kwargs.get("protocol") not in (None, 2, "2") or kwargs.get("credential_provider") is not None:
        return None
    connect_timeout = kwargs.get("socket_connect_timeout")
    common: dict[str, Any] = {
        "db": int(kwargs.get("db") or 0),
        "username": kwargs.get("username"),
        "password": kwargs.get("password"),
        "connect_timeout": connect_timeout,
    }
    if pool.connection_class is aioredis.UnixDomainSocketConnection:
        return ScriptChannel(Address(path=kwargs["path"], **common))
    if pool.connection_class is aioredis.Connection:
        return ScriptChannel(
            Address(host=kwargs.get("host", "localhost"), port=int(kwargs.get("port", 6379)), **common)
        )
    return None  # TLS or a custom connection class
