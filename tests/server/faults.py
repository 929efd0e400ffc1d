"""What the fault tests share: a server in this process on its own redis-server, or a
``seatwise serve`` process on one (killed and started again), an on-sale event, health."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import create_server, watch_health
from server.config import Config
from server.context import Stores
from server.redis_process import EmbeddedRedis
from tests.api import Api
from tests.processes import free_port, spawn_serve
from tests.server.events import make_event

ADMIN_KEY = "sw_admin_fault-test-secret"


class Service:
    """A server in this process on its own redis-server, with the health watcher running."""

    def __init__(self, data_dir: Path) -> None:
        self.redis = EmbeddedRedis(data_dir / "redis")
        self.data_dir = data_dir

    async def start(self) -> None:
        self.redis.start()
        self.stores = Stores.open(self.redis.url, timeout_s=1.0)
        await self.stores.tenants.put_bootstrap_key(ADMIN_KEY)
        self.server, port, self.health = create_server(Config(port=0, data_dir=self.data_dir), self.stores)
        await self.server.start()
        self.health_task = asyncio.create_task(watch_health(self.stores, self.health))
        self.target = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        self.health_task.cancel()
        await self.server.stop(None)
        await self.stores.close()
        self.redis.stop()


async def on_sale_event(target: str, rows: int = 2, seats: int = 6) -> tuple[Api, str]:
    admin = Api(target, ADMIN_KEY)
    key = await admin.new_tenant_key("acme")
    await admin.__aexit__()
    api = Api(target, key)
    event_id = await make_event(
        api, rows=rows, seats_per_row=seats, name="Fault night", max_seats_per_hold=50
    )
    return api, event_id


async def health(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return int(response.status)


async def wait_health(target: str, wanted: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await health(target) == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health never became {wanted}")


def spawn_server(redis_url: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    settings = {"redis_url": redis_url, "port": str(port), "admin_key": ADMIN_KEY, "data_dir": str(data_dir),
                "log_level": "warning"}  # fmt: skip
    return spawn_serve(settings, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def until_up(target: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if await health(target) == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("server did not come up")


class SpawnedServer:
    """A ``seatwise serve`` process on an embedded Redis of its own, to kill and start again
    on the same port (as a restarted process)."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path
        self.redis = EmbeddedRedis(tmp_path / "redis")
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> subprocess.Popen[bytes]:
        self.proc = spawn_server(self.redis.url, self.port, self.data_dir)
        await until_up(self.target)
        return self.proc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@contextlib.asynccontextmanager
async def spawned_server(tmp_path: Path) -> AsyncIterator[SpawnedServer]:
    server = SpawnedServer(tmp_path)
    server.redis.start()
    try:
        await server.start()
        yield server
    finally:
        server.kill()
        server.redis.stop()
