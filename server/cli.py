"""The ``seatwise`` command: run the service, and the organizer's seat-map tools.

Offline commands (validate, import-pretix, render, generate) work on files
with no server; ``upload`` and ``tenant``/``key`` talk to a running server
with an API key from ``--api-key`` or ``SEATWISE_API_KEY``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from seatmap.errors import SeatMapDecodeError, SeatMapInvalid
from seatmap.model import SeatMap, json_encoder

FORMATS = ("native", "pretix")


@contextmanager
def step(label: str) -> Iterator[None]:
    """Progress for long work, on stderr so stdout stays machine-readable."""
    click.echo(f"{label}…", err=True, nl=False)
    started = time.perf_counter()
    yield
    click.echo(f" done in {time.perf_counter() - started:.2f}s", err=True)


def _read_map(path: Path, fmt: str) -> SeatMap:
    from seatmap.formats import parse

    data = path.read_bytes()
    with step(f"decoding {path.name} ({len(data):,} bytes, {fmt})"):
        return parse(data, "pretix" if fmt == "pretix" else "native")


@click.group()
@click.version_option(package_name="seatwise")
def main() -> None:
    """seatwise: seat-map inventory and reservation service."""


@main.command()
@click.option("--host", default=None, help="Address to bind [env SEATWISE_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env SEATWISE_PORT, default 50051; 0 = any free].")
@click.option("--redis-url", default=None, help="External Redis [env SEATWISE_REDIS_URL]; default: embedded.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="[env SEATWISE_DATA_DIR].")
@click.option(
    "--workers", type=int, default=None, help="Server processes on one port [env SEATWISE_WORKERS]."
)
@click.option("--metrics-port", type=int, default=None, help="Prometheus endpoint port; 0 = off.")
@click.option("--log-format", type=click.Choice(["console", "json"]), default=None)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
def serve(**flags: object) -> None:
    """Run the gRPC service (starts an embedded Redis unless --redis-url is given)."""
    from server.app import serve as run_server
    from server.config import Config
    from server.logging import configure

    config = Config.from_env().with_overrides(**flags)
    try:
        config.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    configure(config.log_format, config.log_level)
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, addr=config.host)
    if config.admin_key is None:
        click.echo(f"platform admin key: {config.data_dir / 'admin.key'} (created on first start)", err=True)
    run_server(config)


@main.group()
def seatmap() -> None:
    """Seat-map files: validate, convert, render, generate, upload."""


@seatmap.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="native", show_default=True)
def validate_cmd(file: Path, fmt: str) -> None:
    """Exit 0 when FILE is a valid seat map; else 1, one violation per line."""
    from seatmap.validation import validate

    try:
        seatmap_ = _read_map(file, fmt)
    except SeatMapDecodeError as exc:
        click.echo(f"{exc.path}: undecodable: {exc}")
        sys.exit(1)
    except SeatMapInvalid as exc:
        for v in exc.violations:
            click.echo(f"{v.path}: {v.code}: {v.message}")
        sys.exit(1)
    with step("validating"):
        report = validate(seatmap_)
    for v in report.violations:
        click.echo(f"{v.path}: {v.code}: {v.message}")
    if report.total > len(report.violations):
        click.echo(f"... and {report.total - len(report.violations)} more violation(s)")
    if report.violations:
        sys.exit(1)
    seats = sum(len(r.seats) for s in seatmap_.sections for r in s.rows)
    click.echo(
        f"valid: {seatmap_.name!r}, {len(seatmap_.sections)} sections, {seats} seats in rows", err=True
    )


@seatmap.command("import-pretix")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def import_pretix(file: Path, output: Path) -> None:
    """Convert a pretix seating plan to the native format."""
    seatmap_ = _read_map(file, "pretix")
    output.write_bytes(json_encoder.encode(seatmap_))
    click.echo(f"wrote {output}", err=True)


@seatmap.command("render")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="native", show_default=True)
def render_cmd(file: Path, output: Path, fmt: str) -> None:
    """Render to SVG, or PNG when OUTPUT ends in .png."""
    from seatmap import render

    seatmap_ = _read_map(file, fmt)
    with step(f"rendering {output.name}"):
        if output.suffix.lower() == ".png":
            output.write_bytes(render.render_png(seatmap_))
        else:
            output.write_text(render.render_svg(seatmap_), encoding="utf-8")


@seatmap.command("generate")
@click.argument("kind", type=click.Choice(["stadium", "arena", "theatre"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def generate_cmd(kind: str, output: Path) -> None:
    """Write a realistic synthetic venue (deterministic)."""
    from seatmap.generate import GENERATORS

    with step(f"generating {kind}"):
        seatmap_ = GENERATORS[kind]()
    output.write_bytes(json_encoder.encode(seatmap_))
    click.echo(f"wrote {output}", err=True)


@seatmap.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="native", show_default=True)
@click.option("--seat-map-id", default="", help="Upload a new version of this map (default: a new map).")
@click.option("--publish", is_flag=True, help="Publish the uploaded version.")
@click.option("--target", envvar="SEATWISE_TARGET", default="127.0.0.1:50051", show_default=True)
@click.option("--api-key", envvar="SEATWISE_API_KEY", required=True, help="[env SEATWISE_API_KEY]")
@click.option("--tenant", default="", help="Tenant to act on (platform-admin keys only).")
def upload_cmd(
    file: Path, fmt: str, seat_map_id: str, publish: bool, target: str, api_key: str, tenant: str
) -> None:
    """Upload FILE as a new draft version; prints the seat map id and version."""
    from server.client import Client

    data = file.read_bytes()
    with Client(target, api_key, tenant) as client:
        with step(f"uploading {len(data):,} bytes"):
            info = client.upload_seatmap(data, fmt, seat_map_id)
        if publish:
            info = client.publish_seatmap(info.seat_map_id, info.version)
    click.echo(f"{info.seat_map_id} version {info.version} ({'published' if publish else 'draft'})")


@main.group()
def tenant() -> None:
    """Tenants and API keys (platform-admin key)."""


@tenant.command("create")
@click.argument("name")
@click.option("--id", "tenant_id", default="", help="Tenant id (default: generated).")
@click.option("--target", envvar="SEATWISE_TARGET", default="127.0.0.1:50051", show_default=True)
@click.option("--api-key", envvar="SEATWISE_API_KEY", required=True, help="A platform-admin key.")
def tenant_create(name: str, tenant_id: str, target: str, api_key: str) -> None:
    """Create a tenant and print an organizer key for it (shown once)."""
    from server.client import Client

    with Client(target, api_key, "") as client:
        created_id, key = client.create_tenant_with_key(tenant_id, name)
    click.echo(f"tenant: {created_id}", err=True)
    click.echo(key)


_target = click.option("--target", envvar="SEATWISE_TARGET", default="127.0.0.1:50051", show_default=True)
_api_key = click.option("--api-key", envvar="SEATWISE_API_KEY", required=True, help="[env SEATWISE_API_KEY]")


@seatmap.command("nearest")
@click.argument("seat_map_id")
@click.option("--x", type=float, required=True)
@click.option("--y", type=float, required=True)
@click.option("--count", type=int, default=5, show_default=True)
@_target
@_api_key
def nearest_cmd(seat_map_id: str, x: float, y: float, count: int, target: str, api_key: str) -> None:
    """The COUNT seats nearest to (X, Y) in a stored seat map."""
    from server.client import Client

    with Client(target, api_key) as client:
        for seat in client.query_nearest(seat_map_id, x, y, count):
            click.echo(
                f"{seat.seat_id}\t{seat.section_id}/{seat.group_id}\tseat {seat.label}\t{seat.category}"
            )


@main.group()
def event() -> None:
    """Events: create, availability."""


def _parse_prices(values: tuple[str, ...]) -> dict[str, int]:
    prices: dict[str, int] = {}
    for value in values:
        category, sep, amount = value.partition("=")
        if not sep or not amount.isdigit():
            raise click.BadParameter(
                f"{value!r}: expected CATEGORY=AMOUNT_IN_MINOR_UNITS", param_hint="--price"
            )
        prices[category] = int(amount)
    return prices


@event.command("create")
@click.argument("seat_map_id")
@click.option("--name", required=True)
@click.option("--currency", default="EUR", show_default=True)
@click.option("--price", "prices", multiple=True, help="CATEGORY=AMOUNT in minor units (repeat).")
@click.option("--on-sale", is_flag=True, help="Open the sale at once.")
@_target
@_api_key
def event_create(
    seat_map_id: str,
    name: str,
    currency: str,
    prices: tuple[str, ...],
    on_sale: bool,
    target: str,
    api_key: str,
) -> None:
    """Create an event from the latest (published) version of SEAT_MAP_ID; prints its id."""
    from server.client import Client

    with Client(target, api_key) as client:
        created = client.create_event(seat_map_id, name, currency, _parse_prices(prices), on_sale)
    click.echo(created.event_id)


@event.command("availability")
@click.argument("event_id")
@_target
@_api_key
def event_availability(event_id: str, target: str, api_key: str) -> None:
    """Seat counts by category and general-admission places."""
    from server.client import Client

    with Client(target, api_key) as client:
        availability = client.availability(event_id)
    click.echo(f"sequence {availability.sequence}")
    for c in availability.by_category:
        click.echo(
            f"{c.key:>12}: {c.free} free, {c.held} held, {c.sold} sold, {c.blocked + c.not_for_sale} off sale"
        )
    for ga in availability.general_admission:
        click.echo(f"{ga.area_id:>12}: {ga.available} of {ga.capacity} places available")


@main.command("hold")
@click.argument("event_id")
@click.argument("seat_ids", nargs=-1)
@click.option("--best", type=int, default=0, help="Hold the N best available seats instead of named ones.")
@click.option("--category", "categories", multiple=True)
@click.option(
    "--request-id",
    default="",
    help="Reuse it on retry: the same id returns the same hold (default: a new UUID, retried once "
    "on UNAVAILABLE or DEADLINE_EXCEEDED).",
)
@_target
@_api_key
def hold_cmd(
    event_id: str,
    seat_ids: tuple[str, ...],
    best: int,
    categories: tuple[str, ...],
    request_id: str,
    target: str,
    api_key: str,
) -> None:
    """Hold SEAT_IDS (or --best N); prints the hold token, seats and expiry."""
    from server.client import Client

    if bool(best) == bool(seat_ids):
        raise click.UsageError("name seats or give --best N (not both)")
    with Client(target, api_key) as client:
        reply = (
            client.hold_best(event_id, best, list(categories), request_id)
            if best
            else client.hold_seats(event_id, list(seat_ids), request_id)
        )
    hold = reply.hold
    replayed = " (replayed)" if reply.replayed else ""
    click.echo(hold.hold_token)
    click.echo(
        f"seats: {' '.join(hold.seat_ids)}; expires {hold.expires_at.ToJsonString()}{replayed}", err=True
    )


@main.command("commit")
@click.argument("hold_token")
@click.option("--idempotency-key", required=True, help="Reuse it on retry: the same key never sells twice.")
@click.option("--name", default="")
@click.option("--email", default="")
@_target
@_api_key
def commit_cmd(
    hold_token: str, idempotency_key: str, name: str, email: str, target: str, api_key: str
) -> None:
    """Commit a hold to an order; prints the order and its tickets."""
    from server.client import Client

    with Client(target, api_key) as client:
        result = client.commit(hold_token, idempotency_key, name, email)
    order = result.order
    replayed = " (replayed)" if result.replayed else ""
    click.echo(
        f"order {order.order_id}{replayed}: {order.total.amount_minor} {order.total.currency} minor units"
    )
    for t in order.tickets:
        click.echo(
            f"  ticket {t.ticket_id}: {t.seat_id or t.ga_area_id} ({t.category}) {t.price.amount_minor}"
        )


if __name__ == "__main__":
    main()
