"""Server CPU per unary call with many methods registered with grpc.aio, or served
from one generic handler (what ``server/wrapping.py`` does).

    uv run --frozen python -m scripts.bench.grpc_registration [--methods 1,120] [--calls 20000]
                                                               [--rounds 2] [--smoke]

grpc.aio's server loop keeps one pending request future per *registered* method
and waits on all of them (``asyncio.wait``, FIRST_COMPLETED) for every incoming
call, so a call's cost grows with the number of methods registered. seatwise.v1
has over a hundred. For each method count, an echo server in its own process
serves N methods, either registered (``add_registered_method_handlers``, as the
generated ``add_*Servicer_to_server`` does) or from one generic handler that
finds them in a dict; a client in this process calls one of them, 32 in flight.
The figure is the server process's CPU seconds per call (startup included, the
same in both), which a loaded machine disturbs less than throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import time
from collections.abc import Sequence
from typing import Any

import grpc
import uvloop

SERVICE = "bench.Many"
MODES = ("registered", "generic")


def _same(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, context: Any) -> bytes:
    return request


class _Table(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # generic in grpc-stubs only
    def __init__(self, handlers: dict[str, Any]) -> None:
        self._handlers = {f"/{SERVICE}/{name}": h for name, h in handlers.items()}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return self._handlers.get(handler_call_details.method)


async def _serve(mode: str, methods: int, ports: Any, stop: Any) -> None:
    server = grpc.aio.server()
    handlers = {
        f"M{i}": grpc.unary_unary_rpc_method_handler(
            _echo, request_deserializer=_same, response_serializer=_same
        )
        for i in range(methods)
    }
    if mode == "registered":
        server.add_registered_method_handlers(SERVICE, handlers)  # type: ignore[attr-defined]
    else:
        server.add_generic_rpc_handlers((_Table(handlers),))
    ports.put(server.add_insecure_port("127.0.0.1:0"))
    await server.start()
    await asyncio.to_thread(stop.wait)
    await server.stop(None)


def _server_process(mode: str, methods: int, ports: Any, stop: Any, cpu: Any) -> None:
    uvloop.run(_serve(mode, methods, ports, stop))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu.put(usage.ru_utime + usage.ru_stime)


async def _load(port: int, calls: int, in_flight: int) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(f"/{SERVICE}/M0", request_serializer=_same, response_deserializer=_same)
        await call(b"warm")
        left = calls

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await call(b"x" * 50)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - started


def measure(mode: str, methods: int, calls: int, in_flight: int = 32) -> tuple[float, float]:
    """(calls per second, server CPU µs per call)."""
    ctx = multiprocessing.get_context("spawn")
    ports, cpu, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_server_process, args=(mode, methods, ports, stop, cpu))
    child.start()
    try:
        elapsed = uvloop.run(_load(ports.get(timeout=30), calls, in_flight))
    finally:
        stop.set()
    seconds = cpu.get(timeout=30)
    child.join()
    return calls / elapsed, seconds / calls * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--methods", default="1,120", help="method counts, comma-separated [1,120]")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measurement [20000]")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds [2]")
    parser.add_argument("--smoke", action="store_true", help="a few hundred calls (figures meaningless)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.rounds = 300, 1
    print("methods  mode          calls/s  server CPU µs/call")
    for methods in (int(m) for m in args.methods.split(",")):
        for _ in range(args.rounds):
            for mode in MODES:
                rps, usec = measure(mode, methods, args.calls)
                print(f"{methods:7d}  {mode:11s} {rps:9,.0f}  {usec:18.1f}")


if __name__ == "__main__":
    main()
