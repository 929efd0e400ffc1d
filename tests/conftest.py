"""Shared fixtures: a real redis-server per test session, flushed between tests,
and a real gRPC server on a free port for integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from holds.redis_client import AnyRedis, connect
from server.app import create_server
from server.config import Config
from server.context import Stores
from server.redis_process import EmbeddedRedis
from tests.api import Api

ADMIN_KEY = "sw_admin_test-bootstrap-secret"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[AnyRedis]:
    client = connect(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def stores(redis_url: str, redis_client: AnyRedis) -> AsyncIterator[Stores]:
    opened = Stores.open(redis_url)
    yield opened
    await opened.close()


@pytest.fixture
async def server(stores: Stores, tmp_path: Path) -> AsyncIterator[str]:
    """A started server on 127.0.0.1:<free port>; yields its target address."""
    config = Config(port=0, data_dir=tmp_path, admin_key=ADMIN_KEY)
    await stores.tenants.put_bootstrap_key(ADMIN_KEY)
    grpc_server, port, _ = create_server(config, stores)
    await grpc_server.start()
    yield f"127.0.0.1:{port}"
    await grpc_server.stop(None)


@pytest.fixture
async def admin(server: str) -> AsyncIterator[Api]:
    async with Api(server, ADMIN_KEY) as api:
        yield api


@pytest.fixture
async def organizer(admin: Api, server: str) -> AsyncIterator[Api]:
    """An organizer key of a fresh tenant 'acme'."""
    key = await admin.new_tenant_key("acme")
    async with Api(server, key) as api:
        yield api
