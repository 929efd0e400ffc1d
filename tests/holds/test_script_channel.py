"""The pipelined script channel against a real Redis: replies matched to their
calls, errors as redis-py's, reconnects, AUTH/SELECT, stalled sockets."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection

from holds import script_channel
from holds.keys import event_keys
from holds.redis_client import connect
from holds.script_channel import Address, ClusterChannels, ScriptChannel, ScriptCommands, for_client, pack
from holds.scripts import ScriptRegistry
from server.redis_process import EmbeddedRedis
from tests.cluster import LocalCluster
from tests.processes import free_port

ECHO = "return {ARGV[1], #KEYS, tonumber(ARGV[2]) or -1}"
# busy for ARGV[1] seconds (a script cannot sleep)
SLEEP = (
    "local t = redis.call('TIME'); local s = t[1] + t[2] / 1e6; "
    "repeat local n = redis.call('TIME') until n[1] + n[2] / 1e6 - s > tonumber(ARGV[1]); return 1"
)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, to kill, pause or lock with a password."""
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="everysec", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def channel(own_redis: EmbeddedRedis) -> AsyncIterator[ScriptChannel]:
    opened = for_client(connect(own_redis.url))
    assert opened is not None
    yield opened
    await opened.aclose()


async def _load(url: str, source: str) -> str:
    client = connect(url)
    try:
        return str(await client.script_load(source))
    finally:
        await client.aclose()


class Tier(enum.StrEnum):
    PREMIUM = "premium"


def test_commands_are_packed_exactly_as_redis_py_packs_them() -> None:
    args = ("EVALSHA", "abc", 2, "{ev:1}:a", "{ev:1}:b", "é", -7, 2.5, b"\x00\xff", 10**20, Tier.PREMIUM)
    assert pack(args) == b"".join(Connection().pack_command(*args))
    commands = ScriptCommands("abc")
    script_args = ["é", -7, 2.5, b"\x00\xff", 10**20, Tier.PREMIUM]
    assert commands.evalsha(["{ev:1}:a", "{ev:1}:b"], script_args) == pack(args)
    with pytest.raises(redis.exceptions.DataError):
        pack(["SET", True])  # as redis-py: a bool is not an argument


async def test_concurrent_calls_each_get_their_own_reply(
    own_redis: EmbeddedRedis, channel: ScriptChannel
) -> None:
    sha = await _load(own_redis.url, ECHO)
    commands = ScriptCommands(sha)
    replies = await asyncio.gather(
        *(channel.execute(commands.evalsha(["{t}:a", "{t}:b"], [f"call-{n}", n])) for n in range(2000))
    )
    assert replies == [[f"call-{n}".encode(), 2, n] for n in range(2000)]


async def test_error_replies_raise_redis_py_errors_and_the_connection_goes_on(
    own_redis: EmbeddedRedis, channel: ScriptChannel
) -> None:
    with pytest.raises(redis.exceptions.NoScriptError):
        await channel.execute(ScriptCommands("0" * 40).evalsha([], []))
    with pytest.raises(redis.exceptions.ResponseError, match="attempt to compare"):
        await channel.execute(pack(("EVAL", "return 1 < {}", 0)))
    assert await channel.execute(pack(("EVAL", "return 'still here'", 0))) == b"still here"


async def test_a_caller_that_gives_up_leaves_the_next_reply_to_its_owner(channel: ScriptChannel) -> None:
    slow = channel.execute(pack(("EVAL", SLEEP, 0, 0.3)))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow, 0.05)
    assert await channel.execute(pack(("EVAL", "return ARGV[1]", 0, "mine"))) == b"mine"


async def test_a_lost_connection_fails_its_calls_and_the_next_call_reconnects(
    own_redis: EmbeddedRedis, channel: ScriptChannel
) -> None:
    assert await channel.execute(pack(("PING",))) == b"PONG"
    pending = asyncio.ensure_future(channel.execute(pack(("EVAL", SLEEP, 0, 5))))
    await asyncio.sleep(0.1)
    own_redis.kill()
    with pytest.raises(redis.exceptions.ConnectionError):
        await pending
    with pytest.raises(redis.exceptions.ConnectionError):
        await channel.execute(pack(("PING",)))  # nothing to reconnect to
    own_redis.start()
    assert await channel.execute(pack(("PING",))) == b"PONG"


async def test_a_stalled_connection_is_closed_and_replaced(
    own_redis: EmbeddedRedis, channel: ScriptChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(script_channel, "STALL_S", 0.2)
    admin = connect(own_redis.url)
    # no replies, like a half-open socket; long enough that a loaded machine's delays between
    # the steps below cannot outlast it (the last PING waits for its end)
    await admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(channel.execute(pack(("PING",))), 0.1)
    await asyncio.sleep(0.2)
    with pytest.raises(redis.exceptions.ConnectionError, match="no reply"):
        await channel.execute(pack(("PING",)))
    assert await channel.execute(pack(("PING",))) == b"PONG"  # a new connection, answered once the pause ends
    await admin.aclose()


async def test_auth_and_database_come_from_the_client_url(own_redis: EmbeddedRedis) -> None:
    admin = connect(own_redis.url)
    await admin.execute_command("CONFIG", "SET", "requirepass", "s3cret")
    await admin.aclose()
    for url in (
        f"redis://:s3cret@127.0.0.1:{own_redis.port}/3",
        f"unix://:s3cret@{own_redis.socket_path}?db=3",
    ):
        client = connect(url)
        channel = for_client(client)
        assert channel is not None
        assert (
            await channel.execute(pack(("EVAL", "return redis.call('SET', KEYS[1], 'x')", 1, "k"))) == b"OK"
        )
        assert await client.get("k") == b"x"  # the same database as redis-py's
        assert await client.delete("k") == 1
        await channel.aclose()
        await client.aclose()
    wrong = ScriptChannel(Address(host="127.0.0.1", port=own_redis.port, password="wrong"))
    with pytest.raises(redis.exceptions.AuthenticationError):
        await wrong.execute(pack(("PING",)))
    admin = aioredis.Redis(host="127.0.0.1", port=own_redis.port, password="s3cret")
    await admin.execute_command("CONFIG", "SET", "requirepass", "")
    await admin.aclose()


async def test_nothing_listening_is_a_connection_error() -> None:
    channel = ScriptChannel(Address(host="127.0.0.1", port=free_port(), connect_timeout=1.0))
    with pytest.raises(redis.exceptions.ConnectionError, match="cannot connect"):
        await channel.execute(pack(("PING",)))


def test_only_plain_single_node_clients_get_a_channel() -> None:
    assert for_client(aioredis.Redis.from_url("redis://localhost:6379/0")) is not None
    assert for_client(aioredis.Redis.from_url("unix:///tmp/x.sock")) is not None
    assert for_client(aioredis.Redis.from_url("rediss://localhost:6379/0")) is None  # TLS: redis-py
    assert for_client(aioredis.Redis.from_url("redis://localhost:6379/0", protocol=3)) is None
    assert isinstance(for_client(connect("redis+cluster://localhost:7000")), ClusterChannels)
    assert for_client(RedisCluster(host="localhost", port=7000, ssl=True)) is None


async def test_scripts_reload_after_the_script_cache_is_flushed(own_redis: EmbeddedRedis) -> None:
    """A restarted or failed-over Redis has no scripts: NOSCRIPT is handled under the caller."""
    client = connect(own_redis.url)
    registry = ScriptRegistry.open(client)
    assert registry.channel is not None
    snapshot = registry.snapshot
    keys = event_keys("e1")
    before = await snapshot(keys, [])
    await client.script_flush()
    after = await snapshot(keys, [])
    assert after[:1] + after[2:] == before[:1] + before[2:]  # all but the clock
    assert await client.script_exists(snapshot.sha) == [True]  # loaded again for the next EVALSHA
    await registry.aclose()
    await client.aclose()


@pytest.mark.cluster
async def test_cluster_calls_go_to_the_primary_of_their_slot(redis_cluster: LocalCluster) -> None:
    client = connect(redis_cluster.url)
    channels = for_client(client)
    assert isinstance(channels, ClusterChannels)
    script = "return redis.call('INCR', KEYS[1])"
    sha = ScriptCommands(str(await client.script_load(script)))
    # keys in many slots, so every primary gets some: a wrong node would answer MOVED
    keys = [f"{{ev:spread{n}}}:counter" for n in range(30)]
    replies = await asyncio.gather(*(channels.execute(sha.evalsha([k], []), k) for k in keys))
    assert replies == [1] * len(keys)
    assert [int(await client.get(k)) for k in keys] == [1] * len(keys)
    await client.delete(*keys)
    await channels.aclose()
    await client.aclose()


@pytest.mark.cluster
async def test_a_stale_slot_map_hands_the_call_to_redis_py(
    redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot that moved (MOVED from the node the map names) is followed by redis-py's client."""
    client = connect(redis_cluster.url)
    registry = ScriptRegistry.open(client)
    assert isinstance(registry.channel, ClusterChannels)
    keys = event_keys("stale-map")
    before = await registry.snapshot(keys, [])  # the map is built; the right node answers
    right = client.get_node_from_key(keys[0])
    wrong = next(n for n in client.get_primaries() if n.name != right.name)
    monkeypatch.setattr(client, "get_node_from_key", lambda key, replica=False: wrong)
    with pytest.raises(redis.exceptions.MovedError):  # what the channel alone would say
        await registry.channel.execute(ScriptCommands(registry.snapshot.sha).evalsha(keys, []), keys[0])
    after = await registry.snapshot(keys, [])  # MOVED -> redis-py, same answer
    assert after[:1] + after[2:] == before[:1] + before[2:]
    await registry.aclose()
    await client.aclose()
