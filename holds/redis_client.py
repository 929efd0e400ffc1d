"""Connecting to Redis (single node or Cluster) and wrapping driver errors.

``connect`` returns redis-py's asyncio client: ``redis.asyncio.Redis`` for a
``redis://`` / ``unix://`` URL, ``RedisCluster`` for ``redis+cluster://``.
Every store call goes through :func:`wrap_errors`, the one place that turns
driver exceptions into :class:`~holds.errors.StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from holds.errors import StoreUnavailable

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
    OSError,
)


def connect(url: str, *, socket_timeout: float = 5.0, max_connections: int = 256) -> AnyRedis:
    """A client for ``url``; no I/O happens until the first command."""
    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url(
            "redis://" + url.removeprefix(CLUSTER_SCHEME),
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            max_connections=max_connections,
        )
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        max_connections=max_connections,
        health_check_interval=30,
    )


@asynccontextmanager
async def wrap_errors(operation: str) -> AsyncIterator[None]:
    """Map driver failures to StoreUnavailable, naming the operation."""
    try:
        yield
    except redis.exceptions.NoScriptError:
        raise  # handled by the script runner, which reloads and retries
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"{operation}: Redis unavailable ({type(exc).__name__}: {exc})") from exc
    except redis.exceptions.RedisError as exc:
        raise StoreUnavailable(f"{operation}: Redis error ({type(exc).__name__}: {exc})") from exc
