"""Connecting to Redis (single node or Cluster) and wrapping driver errors.

``connect`` returns redis-py's asyncio client: ``redis.asyncio.Redis`` for a
``redis://`` / ``unix://`` URL, ``RedisCluster`` for ``redis+cluster://``.
Every store call goes through :func:`wrap_errors`, the one place that turns
driver exceptions into store errors: a failure of the connection (or of the
cluster's routing) is :class:`~holds.errors.StoreUnavailable` (retry with
backoff); an error *reply* (Redis understood the command and refused it) is
:class:`~holds.errors.StoreFault` (a bug: retrying gets the same answer).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from holds import metrics
from holds.errors import StoreFault, StoreUnavailable

# redis.asyncio.Redis or RedisCluster. Typed as Any on purpose: redis-py's
# annotations give every command ``Awaitable[Any] | Any`` (one signature for the
# sync and async clients), which strict mypy cannot use; the stores decode every
# reply explicitly instead, and the tests run them against a real server.
AnyRedis: TypeAlias = Any

CLUSTER_SCHEME = "redis+cluster://"

# Failures of the connection rather than of our request: the call may be
# retried by the client once Redis is back.
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    # error replies that describe the server's state, not the command: out of
    # memory, a slot moving during a resharding
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.AskError,  # and MovedError
    redis.exceptions.InvalidResponse,  # a garbled reply: the connection is unusable
    OSError,
)
# RedisCluster raises these outside RedisError: a slot no node serves (a failover
# under way); and, wrapping the ConnectionError, "cannot be connected" when no
# startup node answers. Other RedisClusterExceptions are programming errors
# (keys of different slots in one command) and must not look retryable.
_CLUSTER_UNAVAILABLE = (redis.exceptions.SlotNotCoveredError,)
# A write on a connection that a failover just closed under the call (seen inside
# RedisCluster, which disconnects a failed node's connections while other calls
# use them): the command was never sent, so a retry is safe. uvloop raises
# RuntimeError("unable to perform operation on <TCPTransport closed=True ...>; the
# handler is closed"); redis-py's own connection, once its writer is gone,
# AttributeError("'NoneType' object has no attribute 'writelines'"). Both matched
# narrowly (type, message, and for the latter where it was raised): any other
# RuntimeError or AttributeError stays a bug.
_CLOSED_TRANSPORT = ("unable to perform operation on", "the handler is closed")
_NO_WRITER = "'NoneType' object has no attribute 'write"
_REDIS_CONNECTION = os.path.join("redis", "asyncio", "connection.py")


def connect(
    url: str, *, socket_timeout: float | None = 5.0, connect_timeout: float = 5.0, max_connections: int = 256
) -> AnyRedis:
    """A client for ``url``; no I/O happens until the first command.

    ``socket_timeout`` None: no timeout per read (redis-py then skips a timer per
    command); the caller bounds every call instead, as the server does with the
    RPC's deadline.
    """
    if url.startswith(CLUSTER_SCHEME):
        # One startup node is enough: the client reads CLUSTER SLOTS from it and
        # follows MOVED/ASK. max_connections is per node.
        return RedisCluster.from_url(
            "redis://" + url.removeprefix(CLUSTER_SCHEME),
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            max_connections=max_connections,
            health_check_interval=30,
        )
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        max_connections=max_connections,
        health_check_interval=30,
    )


async def ping(client: AnyRedis) -> bool:
    """True when Redis answers; on a Cluster, when every primary answers (any one
    of them down makes the events in its slots unavailable)."""
    if isinstance(client, RedisCluster):
        return bool(await client.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await client.ping())


def store_error(operation: str, exc: BaseException) -> StoreUnavailable | StoreFault | None:
    """The store error a driver failure stands for, or None when ``exc`` is not
    one (or is NOSCRIPT, which the script runner handles by reloading):
    StoreUnavailable for the connection, StoreFault for an error reply."""
    if isinstance(exc, redis.exceptions.NoScriptError):
        return None
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"{operation}: Redis unavailable ({type(exc).__name__}: {exc})")
    if isinstance(exc, redis.exceptions.RedisClusterException):
        if not isinstance(exc, _CLUSTER_UNAVAILABLE) and not isinstance(exc.__cause__, _UNAVAILABLE):
            return None
        return StoreUnavailable(f"{operation}: Redis Cluster unavailable ({type(exc).__name__}: {exc})")
    if isinstance(exc, redis.exceptions.RedisError):  # ResponseError, DataError, ...
        return StoreFault(f"{operation}: Redis refused the command ({type(exc).__name__}: {exc})")
    if _closed_transport(exc):
        return StoreUnavailable(f"{operation}: Redis connection closed under the call ({exc})")
    return None


def _closed_transport(exc: BaseException) -> bool:
    message = str(exc)
    if type(exc) is RuntimeError:
        return all(part in message for part in _CLOSED_TRANSPORT)
    if type(exc) is AttributeError and message.startswith(_NO_WRITER):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and tb.tb_frame.f_code.co_filename.endswith(_REDIS_CONNECTION)
    return False


@asynccontextmanager
async def wrap_errors(operation: str) -> AsyncIterator[None]:
    """Map driver failures to StoreUnavailable or StoreFault, naming the operation."""
    try:
        yield
    except Exception as exc:
        raise_store_error(operation, exc)
        raise


def raise_store_error(operation: str, exc: Exception) -> None:
    """Raise (from ``exc``) the store error ``exc`` stands for, counted; return when it
    stands for none. :func:`wrap_errors` without a context manager, for the hot path."""
    mapped = store_error(operation, exc)
    if mapped is None:
        return
    (metrics.REDIS_UNAVAILABLE if isinstance(mapped, StoreUnavailable) else metrics.REDIS_FAULT).inc()
    raise mapped from exc
