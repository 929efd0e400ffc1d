"""Building and running the gRPC server.

``create_server(config, stores)`` returns ``(server, port)`` bound but not
started, so tests bind port 0 and read the port back. ``serve`` owns the whole
process lifecycle: embedded Redis, stores, signals and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import structlog
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from holds.durability import resolve as resolve_durability
from holds.feed.retention import trim_forever
from holds.redis_client import ping as redis_ping
from server import metrics
from server.admission import Admission
from server.config import Config
from server.context import Stores
from server.declarations import ServiceDeclaration
from server.reaper import reap_forever
from server.redis_process import EmbeddedRedis, RedisKeeper
from server.servicers import (
    access,
    aftersale,
    channels,
    events,
    exports,
    feed,
    offers,
    platforms,
    reports,
    sales,
    seasons,
    seatmaps,
    sellers,
    sessions,
    tenancy,
)
from server.workers import run_workers
from server.wrapping import RpcWrapper

log = structlog.get_logger("seatwise.server")
T = TypeVar("T")

# every service this server offers, as each servicer module declares it
SERVICES: tuple[ServiceDeclaration[Any], ...] = (
    seatmaps.SERVICE,
    tenancy.SERVICE,
    events.SERVICE,
    sales.HOLD_SERVICE,
    sales.ORDER_SERVICE,
    sessions.SERVICE,
    feed.SERVICE,
    access.TICKET_SERVICE,
    access.ACCESS_SERVICE,
    aftersale.SERVICE,
    platforms.SERVICE,
    exports.SERVICE,
    reports.SERVICE,
    sellers.SERVICE,
    offers.OFFER_SERVICE,
    seasons.SERVICE,
    channels.CHANNEL_SERVICE,
)
SERVICE_NAMES = tuple(service.name for service in SERVICES)  # for health and reflection
HEALTH_PROBE_INTERVAL_S = 1.0


def create_server(config: Config, stores: Stores) -> tuple[grpc.aio.Server, int, health_aio.HealthServicer]:
    """A configured server bound to ``config.host:config.port`` (0 picks a free port)."""
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
        ("grpc.keepalive_time_ms", 60_000),
    ]
    admission = Admission(
        max_inflight=config.max_inflight or 1 << 30,
        max_lag_s=config.max_loop_lag_ms / 1000 if config.max_loop_lag_ms else float("inf"),
        max_session_stream_inflight=config.session_stream_inflight,
        max_session_inflight=config.session_inflight,
    )
    stores.admission = admission
    stores.heavy.configure(config.heavy_workers, config.heavy_per_tenant)
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=config.max_concurrent_rpcs or None)
    wrapper = RpcWrapper(
        stores.tenants, admission, platforms=stores.platforms, audit_log=stores.audit, budgets=stores.budgets
    )
    for service in SERVICES:
        wrapper.register(server, service.add_to_server, service.factory(stores), service.methods)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{config.host}:{config.port}"
    credentials = server_credentials(config)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"could not bind {config.host}:{config.port}")
    return server, port, health_servicer


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """TLS from the configured PEM files (None: plaintext); with a client CA, mutual TLS."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


async def watch_health(stores: Stores, health_servicer: health_aio.HealthServicer) -> None:
    """Serve health from Redis reachability: NOT_SERVING while it is down."""
    serving: bool | None = None
    while True:
        started = time.perf_counter()
        try:
            ok = await asyncio.wait_for(redis_ping(stores.redis), timeout=HEALTH_PROBE_INTERVAL_S)
        except Exception:
            ok = False
        if ok:
            metrics.REDIS_PING.set(time.perf_counter() - started)
        if ok != serving:
            status = (
                health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ("", *SERVICE_NAMES):
                await health_servicer.set(name, status)
            log.info("health.changed", serving=ok)
            serving = ok
        await asyncio.sleep(HEALTH_PROBE_INTERVAL_S)


def admin_key_for(config: Config) -> str:
    """The configured bootstrap key, or one generated once into data_dir/admin.key (mode 0600)."""
    if config.admin_key:
        return config.admin_key
    path = config.data_dir / "admin.key"
    if path.exists():
        return path.read_text().strip()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    key = f"sw_admin_{secrets.token_urlsafe(24)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


async def run(config: Config, redis_url: str) -> None:
    """Serve until SIGINT/SIGTERM, then drain in-flight calls for ``grace_s``. A signal
    during startup (a deploy that changed its mind, a supervisor stopping workers that
    are still starting) stops it cleanly too: whatever startup was waiting for is given
    up and the process exits 0, rather than dying of the signal half-started."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stores = Stores.open(
        redis_url,
        timeout_s=config.redis_timeout_s,
        read_timeout=False,
        ticket_key_secret=config.ticket_key_secret,
    )
    try:
        started = await _unless_stopped(stop, _start(config, stores))
        if started is None:
            log.info("server.stopped", before_serving=True)
            return
        server, health_servicer, tasks = started
        await stop.wait()
        log.info("server.stopping", grace_s=config.grace_s)
        await health_servicer.enter_graceful_shutdown()
        await stop_server(server, stores, config.grace_s)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await stores.close()
    log.info("server.stopped")


async def _start(
    config: Config, stores: Stores
) -> tuple[grpc.aio.Server, health_aio.HealthServicer, list[asyncio.Task[None]]]:
    """Everything up to serving: the server started and its background tasks running."""
    if not config.ticket_key_secret:
        log.warning("ticket_keys.unencrypted", hint="set SEATWISE_TICKET_KEY_SECRET (a Fernet key)")
    durability = await resolve_durability(stores.redis, config.replica_acks, config.replica_ack_timeout_ms)
    stores.scripts.use_durability(durability)
    log.info("durability", replica_acks=durability.replicas, timeout_ms=durability.timeout_ms)
    await stores.tenants.put_bootstrap_key(admin_key_for(config))
    server, port, health_servicer = create_server(config, stores)
    await server.start()
    tasks = [
        asyncio.create_task(watch_health(stores, health_servicer)),
        asyncio.create_task(reap_forever(stores)),
        asyncio.create_task(stores.admission.watch_loop_lag()),
        asyncio.create_task(trim_forever(stores.redis, config.feed_retention_days)),
    ]
    tls = "off" if config.tls_cert is None else "mutual" if config.tls_client_ca is not None else "on"
    log.info("server.started", address=f"{config.host}:{port}", pid=os.getpid(), tls=tls)
    return server, health_servicer, tasks


async def _unless_stopped(stop: asyncio.Event, startup: Coroutine[Any, Any, T]) -> T | None:
    """``startup``'s result, or None (``startup`` cancelled) when ``stop`` is set first.
    A startup that finished as the stop came is kept: it is stopped gracefully after."""
    starting = asyncio.ensure_future(startup)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if starting.done():
        return starting.result()
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return None


async def stop_server(server: grpc.aio.Server, stores: Stores, grace_s: float | None) -> None:
    """Stop gracefully: sales sessions answer what they have in flight and end with
    UNAVAILABLE (clients move to another process), then gRPC drains the rest for
    ``grace_s`` and cancels what is left."""
    stores.stopping.set()
    await server.stop(grace_s)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop (libuv's event loop: less per-call overhead than asyncio's)."""
    import uvloop

    uvloop.run(main)


def serve(config: Config) -> None:
    """The `seatwise serve` entry point: embedded Redis unless a URL is configured."""
    config.check()
    # resolved once, before any worker is forked: workers must not race to create it
    config = replace(config, admin_key=admin_key_for(config))
    keeper: RedisKeeper | None = None
    redis_url = config.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(Path(config.data_dir) / "redis", appendfsync=config.appendfsync)
        embedded.start()
        keeper = RedisKeeper(embedded)  # started again should it exit unasked
        redis_url = embedded.url
        log.info("redis.embedded_started", socket=str(embedded.socket_path), appendfsync=config.appendfsync)

    def serve_one(index: int = 0) -> None:  # one ordinary single-process server (each worker runs one)
        if config.metrics_port:  # in the process whose metrics it serves: worker i on port + i
            from prometheus_client import start_http_server

            start_http_server(config.metrics_port + index, addr=config.host)
            log.info("metrics.serving", port=config.metrics_port + index)
        run_loop(run(config, redis_url))

    try:
        if config.workers > 1:  # the supervisor reaps Redis too: it tells the keeper
            run_workers(config, serve_one, keeper.exited if keeper is not None else None)
        else:
            if keeper is not None:
                threading.Thread(target=keeper.watch, name="redis-keeper", daemon=True).start()
            serve_one()
    finally:
        if keeper is not None:
            keeper.stop()
            log.info("redis.embedded_stopped")
