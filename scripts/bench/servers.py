"""The server side of the gRPC benchmarks, run as a child process so a server
never shares an interpreter with the load (:class:`scripts.bench.harness.ChildServer`):

    python -m scripts.bench.servers echo --port 50099 [--redis-url URL] [--workers N]
    python -m scripts.bench.servers seatwise [--profile OUT.prof] [--with-ceiling] \\
        -- serve --port ... --redis-url ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import signal
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from scripts.bench.ceiling import Ceiling, serve_in_seatwise


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve_echo(port: int, redis_url: str | None = None) -> None:
    """A bare grpc.aio server: one generic async handler echoing the request bytes, plus health.

    With ``redis_url`` it also serves the HoldSeats-shaped ceiling (:mod:`scripts.bench.ceiling`)."""
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    )
    echo = grpc.unary_unary_rpc_method_handler(_echo)
    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo})
    server.add_generic_rpc_handlers((handler,))
    ceiling = None
    if redis_url is not None:
        ceiling = Ceiling(redis_url)
        await ceiling.open()
        server.add_generic_rpc_handlers((ceiling.handler(),))
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)
    if ceiling is not None:
        await ceiling.aclose()


def run_seatwise(cli_args: list[str], profile: str | None) -> None:
    """``seatwise <cli_args>`` in this process, under cProfile when ``profile`` names an output file."""
    from server.cli import main as cli_main

    def go() -> None:
        with contextlib.suppress(SystemExit):
            cli_main(cli_args, standalone_mode=False)

    if not profile:
        go()
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        go()
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.servers", description="benchmark servers")
    sub = parser.add_subparsers(dest="command", required=True)
    echo = sub.add_parser("echo", help="a bare grpc.aio echo server")
    echo.add_argument("--port", type=int, required=True)
    echo.add_argument("--workers", type=int, default=1, help="processes on one port, as seatwise")
    echo.add_argument("--redis-url", default=None, help="also serve the HoldSeats-shaped ceiling")
    sw = sub.add_parser("seatwise", help="the seatwise CLI in this process, optionally profiled")
    sw.add_argument("--profile", default=None, help="write cProfile stats here on exit")
    sw.add_argument(
        "--with-ceiling",
        action="store_true",
        help="also serve the ceiling, and it wrapped (scripts/bench/ceiling.py)",
    )
    sw.add_argument("cli_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "echo":
        # the same event loop as `seatwise serve`, so the ratio compares like with like
        from server.app import run_loop

        if args.workers > 1:
            from server.workers import supervise

            def echo_worker(_index: int) -> None:
                run_loop(serve_echo(args.port, args.redis_url))

            supervise(args.workers, echo_worker, port=args.port)
        else:
            run_loop(serve_echo(args.port, args.redis_url))
    else:
        cli_args = [a for a in args.cli_args if a != "--"]
        if args.with_ceiling:
            serve_in_seatwise()
        run_seatwise(cli_args, args.profile)


if __name__ == "__main__":
    main()
