"""HoldSeats-shaped handlers that do no business work: the ceiling of any HoldSeats.

They run in the echo server's process (same grpc.aio server, same uvloop), so
their throughput next to the bare echo shows what a HoldSeats handler costs
before it does anything of its own:

- ``HoldShaped``: decode a ``HoldSeatsRequest``, build and encode a
  ``HoldResponse`` for its seats. What gRPC plus protobuf cost for this method.
- ``HoldShapedRedis``: the same plus one round trip to Redis over seatwise's
  own script channel (an ``EVALSHA`` reading the requested seats from a hash).
  The least a hold can do, since a hold must ask Redis.
- ``HoldShapedRedisWrite``: the same, but the script also writes the requested
  seats (``HSET``), so under ``appendfsync always`` Redis appends it to its AOF
  and fsyncs before answering, as it must for a hold. The least a *durable*
  hold can cost; reported beside the read ceiling, which the goals use.

The real HoldSeats adds authentication, validation, the hold script itself and
metrics to the second; the gap between it and these is what our code costs.

``seatwise serve`` can serve them too (``python -m scripts.bench.servers
seatwise --with-ceiling``), with one more: ``HoldShapedRedisWrapped``, the
read ceiling behind seatwise's own wrapper under HoldSeats' rule
(authentication, admission, the call budget, request ids, metrics), and
``HoldShapedRedisWriteWrapped``, the durable-write ceiling behind the same
wrapper. In seatwise's process the ceiling shows what the process itself
costs, and the wrapped one what the wrapper adds to a call before any hold
logic runs. The wrapped durable write is a HoldSeats with every piece of hold
logic taken out: the most a unary HoldSeats can reach.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import sales_pb2

from holds.script_channel import ScriptChannel, ScriptCommands, for_client
from server.config import Config
from server.context import Stores
from server.servicers.sales import HOLD_SERVICE
from server.wrapping import RpcWrapper

SERVICE = "bench.Ceiling"
SHAPED_METHOD = f"/{SERVICE}/HoldShaped"
SHAPED_REDIS_METHOD = f"/{SERVICE}/HoldShapedRedis"
SHAPED_WRITE_METHOD = f"/{SERVICE}/HoldShapedRedisWrite"
WRAPPED_METHOD = f"/{SERVICE}/HoldShapedRedisWrapped"
WRAPPED_WRITE_METHOD = f"/{SERVICE}/HoldShapedRedisWriteWrapped"
# reads the requested seats, as the hold script's first step does
READ_SEATS = "return redis.call('HMGET', KEYS[1], unpack(ARGV))"
# reads the requested seats, then marks them (a hold's one durable write, in miniature)
WRITE_SEATS = """
local seen = redis.call('HMGET', KEYS[1], unpack(ARGV))
for i = 1, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], 'h') end
return seen
"""
TOKEN = "h" * 43  # as long as a real hold token


def reply_for(request: sales_pb2.HoldSeatsRequest) -> sales_pb2.HoldResponse:
    return sales_pb2.HoldResponse(
        hold=sales_pb2.Hold(
            hold_token=TOKEN,
            event_id=request.event_id,
            seat_ids=request.seat_ids,
            expires_at=Timestamp(seconds=1_800_000_000),
            buyer_id=request.buyer_id,
        )
    )


class Ceiling:
    def __init__(self, redis_url: str) -> None:
        self._client = aioredis.from_url(redis_url)
        channel = for_client(self._client)
        if not isinstance(channel, ScriptChannel):
            raise ValueError(f"the ceiling needs a single, plain Redis; got {redis_url!r}")
        self._channel: ScriptChannel = channel
        self._commands: ScriptCommands | None = None
        self._writes: ScriptCommands | None = None
        self._opened = asyncio.Event()

    async def open(self) -> None:
        sha = await self._client.script_load(READ_SEATS)
        self._commands = ScriptCommands(sha)
        self._writes = ScriptCommands(await self._client.script_load(WRITE_SEATS))
        self._opened.set()

    async def aclose(self) -> None:
        await self._channel.aclose()
        await self._client.aclose()

    async def shaped(self, request: sales_pb2.HoldSeatsRequest, context: Any) -> sales_pb2.HoldResponse:
        return reply_for(request)

    async def shaped_redis(self, request: sales_pb2.HoldSeatsRequest, context: Any) -> sales_pb2.HoldResponse:
        if self._commands is None:  # seatwise opens the ceiling as it starts serving
            await self._opened.wait()
        assert self._commands is not None
        return await self._round_trip(self._commands, request)

    async def shaped_write(self, request: sales_pb2.HoldSeatsRequest, context: Any) -> sales_pb2.HoldResponse:
        if self._writes is None:
            await self._opened.wait()
        assert self._writes is not None
        return await self._round_trip(self._writes, request)

    async def _round_trip(
        self, script: ScriptCommands, request: sales_pb2.HoldSeatsRequest
    ) -> sales_pb2.HoldResponse:
        key = f"{{ceiling:{request.event_id}}}:seats"
        await self._channel.execute(script.evalsha([key], list(request.seat_ids)))
        return reply_for(request)

    def handler(self, wrapper: RpcWrapper | None = None) -> grpc.GenericRpcHandler[Any, Any]:
        """The ceiling's methods; with ``wrapper`` (seatwise's), also the wrapped read and
        durable-write ceilings."""

        def method(behaviour: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=sales_pb2.HoldSeatsRequest.FromString,
                response_serializer=sales_pb2.HoldResponse.SerializeToString,
            )

        methods = {
            "HoldShaped": method(self.shaped),
            "HoldShapedRedis": method(self.shaped_redis),
            "HoldShapedRedisWrite": method(self.shaped_write),
        }
        if wrapper is not None:
            rule = HOLD_SERVICE.methods["HoldSeats"]
            methods["HoldShapedRedisWrapped"] = wrapper.wrap(WRAPPED_METHOD, method(self.shaped_redis), rule)
            methods["HoldShapedRedisWriteWrapped"] = wrapper.wrap(
                WRAPPED_WRITE_METHOD, method(self.shaped_write), rule
            )
        return grpc.method_handlers_generic_handler(SERVICE, methods)


def serve_in_seatwise() -> None:
    """Make ``seatwise serve`` in this process serve the ceiling too, the wrapped read
    ceiling behind a wrapper of its own built as seatwise builds its (same stores)."""
    import server.app as app

    create_server = app.create_server

    def with_ceiling(config: Config, stores: Stores) -> tuple[grpc.aio.Server, int, Any]:
        if config.redis_url is None:
            raise ValueError("the ceiling in seatwise needs --redis-url")
        server, port, health = create_server(config, stores)
        ceiling = Ceiling(config.redis_url)
        _opening.add(asyncio.get_running_loop().create_task(ceiling.open()))
        wrapper = RpcWrapper(
            stores.tenants,
            stores.admission,
            platforms=stores.platforms,
            audit_log=stores.audit,
            budgets=stores.budgets,
        )
        server.add_generic_rpc_handlers((ceiling.handler(wrapper),))
        return server, port, health

    app.create_server = with_ceiling


_opening: set[asyncio.Task[None]] = set()  # keeps the opening task referenced
