"""The inventory tests run against a single Redis and against a local Redis Cluster."""

from __future__ import annotations

import pytest

from tests.conftest import parametrize_redis_topology


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_redis_topology(metafunc)
