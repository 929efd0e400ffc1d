"""The embedded Redis and its keeper: a Redis that dies is started again with its data."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from server import redis_process
from server.redis_process import RESTART_ATTEMPTS, EmbeddedRedis, RedisKeeper

WAIT_S = 60.0  # a safety net against a hang, never a measured time


def _client(embedded: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(embedded.socket_path))


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def _watched(keeper: RedisKeeper) -> threading.Thread:
    thread = threading.Thread(target=keeper.watch, daemon=True)
    thread.start()
    return thread


def test_a_killed_redis_is_started_again_with_every_acknowledged_write(embedded: EmbeddedRedis) -> None:
    _client(embedded).set("acknowledged", "yes")  # appendfsync always: on disk before the reply
    keeper = RedisKeeper(embedded)
    thread = _watched(keeper)
    killed = embedded.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)  # a crash, the OOM killer
    _until(lambda: embedded.pid not in (None, killed) and embedded.running, "Redis started again")
    assert _client(embedded).get("acknowledged") == b"yes"
    assert thread.is_alive()  # still watching: a second death is handled too
    keeper.stop()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert not embedded.running


def test_a_redis_that_shuts_down_is_left_down(embedded: EmbeddedRedis) -> None:
    keeper = RedisKeeper(embedded)
    thread = _watched(keeper)
    assert embedded.pid is not None
    os.kill(embedded.pid, signal.SIGTERM)  # Redis shuts down and exits 0: not a death
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert not embedded.running


def test_a_redis_that_cannot_start_again_is_left_down_after_a_few_attempts(
    embedded: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    keeper = RedisKeeper(embedded, sleep=pauses.append)
    killed = embedded.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    embedded.wait()
    failing = shutil.which("false")  # a server that exits at once, as one with a broken AOF does
    assert failing is not None
    monkeypatch.setattr(redis_process, "find_redis_server", lambda: failing)
    assert not keeper.restart(-signal.SIGKILL)
    assert len(pauses) == RESTART_ATTEMPTS - 1
    assert not embedded.running


def test_the_supervisor_hears_of_redis_only(embedded: EmbeddedRedis) -> None:
    """Under --workers the supervisor reaps every child and tells the keeper: a worker's
    exit is not Redis', Redis' death restarts it."""
    keeper = RedisKeeper(embedded)
    first = embedded.pid
    assert first is not None
    keeper.exited(first + 1_000_000, 1)  # not Redis
    assert embedded.pid == first
    os.kill(first, signal.SIGKILL)
    keeper.exited(first, embedded.wait() or -signal.SIGKILL)
    assert embedded.pid != first
    assert embedded.running
    keeper.stop()
