"""CPU per HoldSeats at each layer of seatwise's hold path, in one process.

    uv run --frozen python -m scripts.bench.hold_layers [--calls 10000] [--in-flight 32] [--rounds 3]
                                                        [--smoke]

An embedded Redis (``appendfsync no``: Redis runs in its own process and its
cost is not the subject) and seatwise's server in this process, used only to
set up through the API (tenant, storefront key, the ~90k-seat stadium, one
event per layer). Then HoldSeats of distinct adjacent pairs, ``--in-flight``
at a time, called at each layer directly:

1. ``Inventory.hold``: the hold script over the script channel, arguments ready;
2. ``Sales.hold_seats``: + the event's context, seat ids to ordinals, the record;
3. ``HoldServicer.HoldSeats``: + the protobuf reply;
4. the registered handler: + decoding the request bytes and the wrapper
   (authentication, admission, deadline, metrics, error mapping);
5. a sales session's message (``SalesService.Session``, one stream opened
   ahead, through the wrapper): decoding the ``SessionRequest``, the stream's
   reader, a task per message, the answer and its serialization, the wrapper's
   stream loop, as gRPC would drive them (this process's side of a session
   message; a driver's future and queue hop per message is included).

Each figure is CPU seconds of this process per call, and the difference of two
rows is what that layer adds. The last line is Redis' own time per hold script
(``INFO commandstats``), which the other figures do not include. gRPC's own
per-call cost is not in these figures; ``scripts.bench.sales`` measures it
(its echo and ceiling rows).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, cast

import grpc
from seatwise.v1 import sales_pb2, session_pb2

from scripts.bench.harness import cpu_per_call, run_with_scratch_redis
from scripts.bench.sales import ADMIN_KEY, Setup, build_venue
from server.app import create_server
from server.auth import Principal, set_principal
from server.config import Config
from server.context import Stores
from server.servicers import sessions
from server.servicers.sales import HOLD_SERVICE, HoldServicer
from server.wrapping import RpcWrapper

HOLD_SEATS = "/seatwise.v1.HoldService/HoldSeats"


class BenchContext:
    """What the wrapper reads of a grpc.aio servicer context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float:
        return 30.0

    def set_trailing_metadata(self, trailers: tuple[tuple[str, str], ...]) -> None:
        self.trailers = trailers  # the request id the wrapper echoes

    async def abort(self, code: grpc.StatusCode, details: str, trailers: Any = ()) -> None:
        raise RuntimeError(f"{code}: {details}")

    async def send_initial_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.initial = metadata


class SessionDriver:
    """One session stream driven in this process as gRPC would: requests in as bytes,
    answers serialized; :meth:`call` sends one message and waits for its answer."""

    def __init__(self, handler: grpc.RpcMethodHandler[Any, Any], context: BenchContext) -> None:
        decode, behaviour = handler.request_deserializer, handler.stream_stream
        encode = handler.response_serializer
        assert decode is not None
        assert behaviour is not None
        assert encode is not None
        self._decode = decode
        self._encode = encode
        self._requests: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._answers = cast(AsyncIterator[Any], behaviour(cast(Any, self._incoming()), cast(Any, context)))
        self._reader = asyncio.create_task(self._read())
        self._next = 0

    async def _incoming(self) -> AsyncIterator[Any]:
        while (raw := await self._requests.get()) is not None:
            yield self._decode(raw)

    async def _read(self) -> None:
        async for answer in self._answers:
            raw: bytes = self._encode(answer)
            parsed = session_pb2.SessionResponse.FromString(raw)
            self._waiting.pop(parsed.correlation_id).set_result(raw)

    async def call(self, request: sales_pb2.HoldSeatsRequest) -> bytes:
        self._next += 1
        correlation_id = str(self._next)
        message = session_pb2.SessionRequest(correlation_id=correlation_id, hold_seats=request)
        raw = message.SerializeToString()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        self._requests.put_nowait(raw)
        return await future

    async def close(self) -> None:
        self._requests.put_nowait(None)
        await self._reader


def pairs(rows: Sequence[list[str]]) -> Iterator[list[str]]:
    for row in rows:
        for i in range(0, len(row) - 1, 2):
            yield row[i : i + 2]


async def evalsha_usec(stores: Stores) -> float:
    stats = await stores.redis.info("commandstats")
    return float(stats["cmdstat_evalsha"]["usec_per_call"])


# A layer: given an event and the seat pairs to hold, the inputs prepared ahead
# (not timed) and the call that takes one of them.
Layer = Callable[[str, list[list[str]]], Awaitable[tuple[list[Any], Callable[[Any], Awaitable[Any]]]]]


async def layers(redis_url: str, calls: int, in_flight: int, rounds: int) -> None:
    stores = Stores.open(redis_url, read_timeout=False)
    await stores.tenants.put_bootstrap_key(ADMIN_KEY)
    server, port, _health = create_server(Config(host="127.0.0.1", port=0), stores)
    await server.start()
    setup = Setup(f"127.0.0.1:{port}")
    try:
        venue = build_venue()
        await setup.keys()
        await setup.upload(venue.content)
        record = await stores.tenants.authenticate(setup.storefront_key)
        assert record is not None
        tenant = record.tenant_id
        all_pairs = list(pairs(venue.rows))
        if calls * 2 > len(all_pairs):
            raise SystemExit(f"--calls at most {len(all_pairs) // 2}: each call holds two seats")
        context = BenchContext((("authorization", f"Bearer {setup.storefront_key}"),))
        servicer = HoldServicer(stores.sales, stores.rate_limits)
        handler = RpcWrapper(stores.tenants, stores.admission).wrap(
            HOLD_SEATS,
            grpc.unary_unary_rpc_method_handler(
                servicer.HoldSeats,
                request_deserializer=sales_pb2.HoldSeatsRequest.FromString,
                response_serializer=sales_pb2.HoldResponse.SerializeToString,
            ),
            HOLD_SERVICE.methods["HoldSeats"],
        )
        decode, behaviour = handler.request_deserializer, handler.unary_unary
        assert decode is not None
        assert behaviour is not None
        # layers below the wrapper read the principal it would have set
        set_principal(Principal(key_id=record.key_id, role=record.role, tenant_id=tenant))

        async def inventory(event_id: str, seats: list[list[str]]) -> tuple[list[Any], Any]:
            ctx = await stores.sales.context(tenant, event_id)
            placed = ctx.loaded.index.placed
            args = [[(o, placed[o].seat.category) for o in stores.sales.ordinals(ctx, p)] for p in seats]
            return args, lambda a: stores.inventory.hold(event_id, seats=a)

        async def sales(event_id: str, seats: list[list[str]]) -> tuple[list[Any], Any]:
            return seats, lambda p: stores.sales.hold_seats(tenant, event_id, p)

        def requests(event_id: str, seats: list[list[str]]) -> list[sales_pb2.HoldSeatsRequest]:
            return [sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=p) for p in seats]

        async def servicer_layer(event_id: str, seats: list[list[str]]) -> tuple[list[Any], Any]:
            return requests(event_id, seats), lambda r: servicer.HoldSeats(r, cast(Any, context))

        async def registered(event_id: str, seats: list[list[str]]) -> tuple[list[Any], Any]:
            raw = [r.SerializeToString() for r in requests(event_id, seats)]
            return raw, lambda b: behaviour(decode(b), cast(Any, context))

        session_handler = RpcWrapper(stores.tenants, stores.admission).wrap(
            sessions.METHOD,
            grpc.stream_stream_rpc_method_handler(
                sessions.SessionServicer(stores).Session,
                request_deserializer=sessions.decode_request,
                response_serializer=session_pb2.SessionResponse.SerializeToString,
            ),
            sessions.SERVICE.methods["Session"],
        )
        drivers: list[SessionDriver] = []

        async def session_layer(event_id: str, seats: list[list[str]]) -> tuple[list[Any], Any]:
            driver = SessionDriver(session_handler, context)
            drivers.append(driver)
            return requests(event_id, seats), driver.call

        steps: list[tuple[str, Layer]] = [
            ("1 Inventory.hold (script call)", inventory),
            ("2 Sales.hold_seats", sales),
            ("3 HoldServicer.HoldSeats", servicer_layer),
            ("4 registered handler (decode + wrapper)", registered),
            ("5 session message (stream, wrapper, encode)", session_layer),
        ]
        # as the server does once a map is loaded: the venue's million objects out of the collector's way
        gc.collect()
        gc.freeze()
        print(
            f"HoldSeats of 2 seats, {calls:,} calls, {in_flight} in flight: "
            f"µs of CPU per call, best of {rounds}"
        )
        best = {label: float("inf") for label, _ in steps}
        script_us = float("inf")
        for _round in range(rounds):  # layers interleaved, so a noisy minute hits them alike
            for label, layer in steps:
                # a warm-up on one event, the measurement on a fresh one (same seats, same state)
                for _run in ("warm-up", "measured"):
                    event_id = await setup.event(label)
                    items, call = await layer(event_id, all_pairs[:calls])
                    await stores.redis.config_resetstat()
                    used = await cpu_per_call(call, items, in_flight) * 1e6
                    while drivers:
                        await drivers.pop().close()
                best[label] = min(best[label], used)
                script_us = min(script_us, await evalsha_usec(stores))
        report(best, script_us)
    finally:
        await setup.close()
        await server.stop(None)
        await stores.close()


def report(best: dict[str, float], script_us: float) -> None:
    previous = 0.0
    for label, used in best.items():
        if label.startswith("5"):  # beside the unary handler: what a session adds to the servicer
            previous = best["3 HoldServicer.HoldSeats"]
        print(f"  {label:<44} {used:>8.1f}  (+{used - previous:.1f})")
        previous = used
    print(f"  Redis' own time per hold script (INFO commandstats, best) {script_us:>8.1f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.hold_layers", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=10_000, help="HoldSeats per layer and round [10000]")
    parser.add_argument("--in-flight", type=int, default=32, help="calls in flight [32]")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per layer; the best is shown [3]")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: few calls, figures meaningless")
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.rounds = 100, 1
    run_with_scratch_redis(
        "seatwise-hold-layers-", lambda url: layers(url, args.calls, args.in_flight, args.rounds)
    )


if __name__ == "__main__":
    main()
