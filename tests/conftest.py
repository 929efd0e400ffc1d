"""Shared fixtures: a real redis-server per test session, flushed between tests,
and a real gRPC server on a free port for integration tests.

Redis topologies: every test gets the single node (``redis_server``, a unix
socket) unless its directory's conftest opts in to both topologies with
:func:`parametrize_redis_topology` (tests/holds, and the sales API tests of
tests/server); those run once per topology, ``[single]`` and ``[cluster]``,
the cluster being a local 3-master Redis Cluster (tests/cluster.py) started
once per session on first use. ``--redis=single|cluster|both`` (or env
``SEATWISE_TEST_REDIS``) narrows that; cluster runs carry the ``cluster``
marker, so ``-m "not cluster"`` skips them too. A test marked
``@pytest.mark.cluster`` (in any directory) runs on the cluster only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from holds.redis_client import AnyRedis, connect
from server.app import create_server
from server.config import Config
from server.context import Stores
from server.redis_process import EmbeddedRedis
from tests.api import Api
from tests.cluster import LocalCluster

# The servers the tests run in process log to stderr, as `seatwise serve` does
# once configured: CLI tests read the commands' stdout, which must be theirs alone.
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

ADMIN_KEY = "sw_admin_test-bootstrap-secret"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendfsync="always")
    server.start()
    yield server
    server.stop()


TOPOLOGIES = ("single", "cluster")
TOPOLOGY_CHOICES = {"single": ("single",), "cluster": ("cluster",), "both": TOPOLOGIES}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis",
        choices=sorted(TOPOLOGY_CHOICES),
        default=os.environ.get("SEATWISE_TEST_REDIS", "both"),
        help="Redis topologies for the tests that run on both (default: both; env SEATWISE_TEST_REDIS)",
    )


def _parametrize(metafunc: pytest.Metafunc, allowed: tuple[str, ...]) -> None:
    if "redis_topology" in metafunc.fixturenames:
        chosen = [t for t in TOPOLOGY_CHOICES[metafunc.config.getoption("redis")] if t in allowed]
        metafunc.parametrize("redis_topology", chosen, indirect=True)


def parametrize_redis_topology(metafunc: pytest.Metafunc) -> None:
    """Run ``metafunc``'s test once per selected topology (call from a pytest_generate_tests)."""
    if metafunc.definition.get_closest_marker("cluster") is None:  # else done below
        _parametrize(metafunc, TOPOLOGIES)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``cluster`` anywhere runs on the cluster only (skipped by --redis=single)."""
    if metafunc.definition.get_closest_marker("cluster") is not None:
        _parametrize(metafunc, ("cluster",))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("redis_topology") == "cluster":
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local 3-master Redis Cluster (AOF, appendfsync always), started on first use."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"), appendfsync="always")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_topology(request: pytest.FixtureRequest) -> str:
    """``single`` unless the test is parametrized over topologies."""
    return str(getattr(request, "param", "single"))


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_topology: str) -> str:
    if redis_topology == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[AnyRedis]:
    client = connect(redis_url)
    await client.flushall()  # on a cluster, redis-py sends FLUSHALL to every primary
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
