"""The ``seatwise`` command: run the service, and the organizer's seat-map tools.

Offline commands (``seatmap validate``, ``import-pretix``, ``render``, ``generate``)
work on files with no server. The others talk to a running server: ``--target``,
``--api-key`` and ``--tenant`` (for a platform-admin key) or ``SEATWISE_TARGET``,
``SEATWISE_API_KEY`` and ``SEATWISE_TENANT``. Read commands take ``--json``.

No command shows a traceback: a failure is one ``Error: ...`` line (naming the file
and the position in it for bad input) and exit status 1; ``SEATWISE_DEBUG=1`` lets an
unexpected exception through with its traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from seatmap.errors import SeatMapDecodeError, SeatMapInvalid, StageNotFound
from seatmap.model import Point, SeatMap, json_encoder
from server.cli_output import (
    CliError,
    decode_error,
    emit_json,
    invalid_error,
    read_input,
    step,
    table,
    warn,
    write_output,
)

if TYPE_CHECKING:
    from server.client import Client

FORMATS = ("native", "pretix")
RENDER_SUFFIXES = (".svg", ".png", ".pdf")
DEFAULT_TARGET = "127.0.0.1:50051"
F = TypeVar("F", bound=Callable[..., Any])


class _Cli(click.Group):
    """The root group: turns any unexpected exception into one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("SEATWISE_DEBUG"):
                raise
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise CliError(
                f"unexpected {type(exc).__name__}: {message} (SEATWISE_DEBUG=1 shows where)"
            ) from exc


def _read_map(path: Path, fmt: str) -> SeatMap:
    from seatmap.formats import parse

    data = read_input(path)
    try:
        with step(f"decoding {path.name} ({len(data):,} bytes, {fmt})"):
            return parse(data, "pretix" if fmt == "pretix" else "native")
    except SeatMapDecodeError as exc:
        raise decode_error(path, data, exc, fmt) from exc
    except SeatMapInvalid as exc:
        raise invalid_error(path, exc) from exc


@click.group(cls=_Cli)
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
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Prometheus /metrics port (worker i: this + i) [env SEATWISE_METRICS_PORT]; 0 = off.",
)
@click.option("--log-format", type=click.Choice(["console", "json"]), default=None)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path),
    default=None,
    help="PEM certificate: TLS [env SEATWISE_TLS_CERT].",
)
@click.option(
    "--tls-key", type=click.Path(path_type=Path), default=None, help="Its PEM key [env SEATWISE_TLS_KEY]."
)
@click.option(
    "--tls-client-ca",
    type=click.Path(path_type=Path),
    default=None,
    help="Require client certificates signed by this CA (mutual TLS) [env SEATWISE_TLS_CLIENT_CA].",
)
def serve(**flags: object) -> None:
    """Run the gRPC service (starts an embedded Redis unless --redis-url is given)."""
    from server.app import serve as run_server
    from server.config import Config
    from server.logging import configure

    try:
        config = Config.from_env().with_overrides(**flags)
        config.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    configure(config.log_format, config.log_level)
    if config.admin_key is None:
        click.echo(f"platform admin key: {config.data_dir / 'admin.key'} (created on first start)", err=True)
    run_server(config)


# --- talking to a server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """Where the server is and who we are: from the common options."""

    target: str
    api_key: str | None
    tenant: str
    tls: tuple[Path | None, Path | None, Path | None] = (None, None, None)  # CA, cert, key

    def client(self, *, tenant_scoped: bool = True) -> Client:
        from server.client import Client, channel_credentials

        if not self.api_key:
            raise CliError(
                "no API key: pass --api-key or set SEATWISE_API_KEY "
                "(the platform-admin key of 'make serve' is in var/seatwise/admin.key)"
            )
        try:
            credentials = channel_credentials(*self.tls)
        except (OSError, ValueError) as exc:
            raise CliError(f"TLS: {exc}") from exc
        return Client(
            self.target, self.api_key, self.tenant if tenant_scoped else "", credentials=credentials
        )


def remote(*, tenant: bool = True) -> Callable[[F], F]:
    """The options of a command that calls the server, handed over as ``remote``."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            target: str,
            api_key: str | None,
            tls_ca: Path | None,
            tls_client_cert: Path | None,
            tls_client_key: Path | None,
            tenant: str = "",
            **kwargs: Any,
        ) -> Any:
            tls = (tls_ca, tls_client_cert, tls_client_key)
            return command(*args, remote=Remote(target, api_key, tenant, tls), **kwargs)

        options = [
            click.option(
                "--target", envvar="SEATWISE_TARGET", default=DEFAULT_TARGET, show_default=True,
                help="Server address [env SEATWISE_TARGET].",
            ),
            click.option("--api-key", envvar="SEATWISE_API_KEY", default=None, help="[env SEATWISE_API_KEY]"),
            click.option(
                "--tls-ca", envvar="SEATWISE_TLS_CA", type=click.Path(path_type=Path), default=None,
                help="Connect with TLS, trusting this CA (PEM) [env SEATWISE_TLS_CA].",
            ),
            click.option(
                "--tls-client-cert", envvar="SEATWISE_TLS_CLIENT_CERT", type=click.Path(path_type=Path),
                default=None, help="Client certificate for mutual TLS [env SEATWISE_TLS_CLIENT_CERT].",
            ),
            click.option(
                "--tls-client-key", envvar="SEATWISE_TLS_CLIENT_KEY", type=click.Path(path_type=Path),
                default=None, help="Its key [env SEATWISE_TLS_CLIENT_KEY].",
            ),
        ]  # fmt: skip
        if tenant:
            options.append(
                click.option(
                    "--tenant",
                    envvar="SEATWISE_TENANT",
                    default="",
                    help="Tenant to act on, with a platform-admin key [env SEATWISE_TENANT].",
                )
            )
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


json_option = click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")


def _when(timestamp: Any) -> str:
    return str(timestamp.ToJsonString()) if timestamp.seconds or timestamp.nanos else "-"


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


# --- seat maps --------------------------------------------------------------------------------


@main.group()
def seatmap() -> None:
    """Seat maps: validate, convert, render, generate (files); upload, list, publish (server)."""


@seatmap.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="native", show_default=True)
def validate_cmd(file: Path, fmt: str) -> None:
    """Exit 0 when FILE is a valid seat map; else 1, one violation per line."""
    from seatmap.validation import validate

    seatmap_ = _read_map(file, fmt)
    with step("validating"):
        report = validate(seatmap_)
    for v in report.violations:
        click.echo(f"{file}: {v.path + ': ' if v.path else ''}{v.code}: {v.message}")
    if report.total > len(report.violations):
        click.echo(f"{file}: ... and {report.total - len(report.violations)} more violation(s)")
    if report.violations:
        sys.exit(1)
    click.echo(f"valid: {summary(seatmap_)}", err=True)


def _require_valid(file: Path, seatmap_: SeatMap) -> None:
    from seatmap.validation import validate

    report = validate(seatmap_)
    if not report.ok:
        first = report.violations[0]
        where = f"{first.path}: " if first.path else ""
        more = f" (and {report.total - 1} more: seatwise seatmap validate {file})" if report.total > 1 else ""
        raise CliError(f"{file}: {where}{first.code}: {first.message}{more}")


def summary(seatmap_: SeatMap) -> str:
    """What an event built from the map will sell: seats in rows and at tables, GA places."""
    in_rows = sum(len(r.seats) for s in seatmap_.sections for r in s.rows)
    tables = [t for s in seatmap_.sections for t in s.tables]
    at_tables = sum(len(t.seats) for t in tables)
    places = sum(a.capacity for a in seatmap_.ga_areas)
    parts = [f"{in_rows:,} in rows"] + ([f"{at_tables:,} at {len(tables):,} tables"] if tables else [])
    seats = f"{in_rows + at_tables:,} seats ({', '.join(parts)})"
    text = f"{seatmap_.name!r}: {len(seatmap_.sections):,} sections, {seats}"
    if seatmap_.ga_areas:
        text += f", {places:,} general-admission places in {len(seatmap_.ga_areas):,} areas"
    return text


def _point(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Point | None:
    if value is None:
        return None
    try:
        x, y = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected X,Y in the plan's units, e.g. 500,60") from None
    return Point(x, y)


@seatmap.command("import-pretix")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--focal-point", callback=_point, help="X,Y: what best available ranks by (overrides the stage)."
)
@click.option(
    "--stage-area", metavar="NAME", help="The area that is the stage (a zone name or the text on it)."
)
def import_pretix(file: Path, output: Path, focal_point: Point | None, stage_area: str | None) -> None:
    """Convert a pretix seating plan to the native format.

    The plan's stage (or pitch) becomes the focal point best available ranks seats by;
    it is recognised by name or as the only large non-seat area.
    """
    from seatmap.pretix import import_pretix as convert
    from seatmap.validation import validate

    data = read_input(file)
    try:
        with step(f"importing {file.name} ({len(data):,} bytes)"):
            imported = convert(data, focal_point=focal_point, stage_area=stage_area)
    except SeatMapDecodeError as exc:
        raise decode_error(file, data, exc, "pretix") from exc
    except (SeatMapInvalid, StageNotFound) as exc:
        raise CliError(f"{file}: {exc}") from exc
    seatmap_ = imported.seatmap
    for message in imported.warnings:
        warn(message)
    if seatmap_.focal_point is None:
        warn("name the stage with --stage-area NAME or set --focal-point X,Y")
    else:
        source = (
            f"the stage {imported.stage!r}" if imported.stage and focal_point is None else "--focal-point"
        )
        click.echo(
            f"focal point ({seatmap_.focal_point.x:g}, {seatmap_.focal_point.y:g}) from {source}", err=True
        )
    write_output(output, json_encoder.encode(seatmap_))
    report = validate(seatmap_)
    if not report.ok:
        warn(f"the imported map has {report.total} violation(s): seatwise seatmap validate {output}")
    click.echo(f"wrote {output}: {summary(seatmap_)}", err=True)


@seatmap.command("render")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="Where to write; the extension picks the format: .svg, .png or .pdf.",
)  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="native", show_default=True)
@click.option("--width", type=click.IntRange(1, 10_000), help="Pixels (PNG, PDF; sizes an SVG).")
@click.option("--height", type=click.IntRange(1, 10_000), help="Pixels; with --width, the largest fit.")
def render_cmd(file: Path, output: Path, fmt: str, width: int | None, height: int | None) -> None:
    """Render FILE as SVG, PNG or PDF (by OUTPUT's extension), 2,400 px on the longer side by default."""
    from seatmap import render
    from seatmap.index import SeatIndex

    suffix = output.suffix.lower()
    if suffix not in RENDER_SUFFIXES:
        raise click.BadParameter(
            f"{output}: unknown extension {suffix or '(none)'!r}; use .svg, .png or .pdf", param_hint="-o"
        )
    seatmap_ = _read_map(file, fmt)
    _require_valid(file, seatmap_)
    try:
        with step(f"rendering {output.name}"):
            index = SeatIndex(seatmap_)
            if suffix == ".png":
                content = render.render_png(index, width=width, height=height)
            elif suffix == ".pdf":
                content = render.render_pdf(index, width=width, height=height)
            else:
                content = render.render_svg(index, width=width, height=height).encode()
    except (render.RenderError, render.RenderUnavailable) as exc:
        raise CliError(f"{file}: {exc}") from exc
    write_output(output, content)
    click.echo(f"wrote {output} ({len(content):,} bytes)", err=True)


@seatmap.command("generate")
@click.argument("kind", type=click.Choice(["stadium", "arena", "theatre"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def generate_cmd(kind: str, output: Path) -> None:
    """Write a realistic synthetic venue (deterministic)."""
    from seatmap.generate import GENERATORS

    with step(f"generating {kind}"):
        seatmap_ = GENERATORS[kind]()
    write_output(output, json_encoder.encode(seatmap_))
    click.echo(f"wrote {output}: {summary(seatmap_)}", err=True)


@seatmap.command("upload")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="native", show_default=True)
@click.option("--seat-map-id", default="", help="Upload a new version of this map (default: a new map).")
@click.option("--publish", is_flag=True, help="Publish the uploaded version.")
@remote()
def upload_cmd(file: Path, fmt: str, seat_map_id: str, publish: bool, remote: Remote) -> None:
    """Upload FILE as a new draft version; prints the seat map id and version."""
    data = read_input(file)
    # A bad file is reported here, naming where in it, before any server is asked.
    _require_valid(file, _read_map(file, fmt))
    with remote.client() as client:
        with step(f"uploading {file.name} ({len(data):,} bytes)"):
            info = client.upload_seatmap(data, fmt, seat_map_id)
        if publish:
            info = client.publish_seatmap(info.seat_map_id, info.version)
    click.echo(f"{info.seat_map_id} version {info.version} ({'published' if publish else 'draft'})")


@seatmap.command("publish")
@click.argument("seat_map_id")
@click.option("--version", type=int, default=0, help="The version to publish (default: the latest).")
@remote()
def publish_cmd(seat_map_id: str, version: int, remote: Remote) -> None:
    """Publish a draft version of SEAT_MAP_ID, so events can be created from it."""
    with remote.client() as client:
        version = version or client.get_seatmap(seat_map_id).latest_version
        info = client.publish_seatmap(seat_map_id, version)
    click.echo(f"{info.seat_map_id} version {info.version} (published)")


@seatmap.command("list")
@json_option
@remote()
def list_seatmaps_cmd(as_json: bool, remote: Remote) -> None:
    """The tenant's seat maps (latest version of each, newest first)."""
    from seatwise.v1 import seatmap_pb2

    with remote.client() as client:
        maps = client.list_seatmaps()
    if as_json:
        emit_json(seatmap_pb2.ListSeatMapsResponse(seat_maps=maps))
        return
    rows = [
        (
            m.seat_map_id,
            m.version,
            _enum_name(seatmap_pb2.SeatMapState, m.state, "SEAT_MAP_STATE_"),
            m.stats.seat_count,
            m.stats.ga_capacity,
            m.name,
        )
        for m in maps
    ]
    table(("SEAT MAP", "VERSION", "STATE", "SEATS", "GA PLACES", "NAME"), rows)


@seatmap.command("nearest")
@click.argument("seat_map_id")
@click.option("--x", type=float, required=True)
@click.option("--y", type=float, required=True)
@click.option("--count", type=int, default=5, show_default=True)
@json_option
@remote()
def nearest_cmd(seat_map_id: str, x: float, y: float, count: int, as_json: bool, remote: Remote) -> None:
    """The COUNT seats nearest to (X, Y) in a stored seat map."""
    from seatwise.v1 import seatmap_pb2

    with remote.client() as client:
        seats = client.query_nearest(seat_map_id, x, y, count)
    if as_json:
        emit_json(seatmap_pb2.QuerySeatsResponse(seats=seats))
        return
    rows = [(s.seat_id, s.section_id, s.group_id, s.label, s.category) for s in seats]
    table(("SEAT", "SECTION", "ROW/TABLE", "LABEL", "CATEGORY"), rows)


# --- tenants ----------------------------------------------------------------------------------


@main.group()
def tenant() -> None:
    """Tenants and API keys (platform-admin key)."""


@tenant.command("create")
@click.argument("name")
@click.option("--id", "tenant_id", default="", help="Tenant id (default: generated).")
@remote(tenant=False)
def tenant_create(name: str, tenant_id: str, remote: Remote) -> None:
    """Create a tenant and print an organizer key for it (shown once)."""
    with remote.client(tenant_scoped=False) as client:
        created_id, key = client.create_tenant_with_key(tenant_id, name)
    click.echo(f"tenant: {created_id}", err=True)
    click.echo(key)


# --- events -----------------------------------------------------------------------------------


@main.group()
def event() -> None:
    """Events: create, list, get, availability, distancing, block and unblock seats."""


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
@click.argument("seat_map_id", required=False, default="")
@click.option("--name", required=True)
@click.option("--currency", default="", help="ISO 4217 [default: EUR, or the season's].")
@click.option("--price", "prices", multiple=True, help="CATEGORY=AMOUNT in minor units (repeat).")
@click.option("--on-sale", is_flag=True, help="Open the sale at once.")
@click.option(
    "--season", "season_id", default="", help="Create it into this season (its seat map and currency)."
)
@remote()
def event_create(
    seat_map_id: str, name: str, currency: str, prices: tuple[str, ...], on_sale: bool, season_id: str,
    remote: Remote,
) -> None:  # fmt: skip
    """Create an event from the latest (published) version of SEAT_MAP_ID, or into a
    --season; prints its id."""
    if not seat_map_id and not season_id:
        raise click.UsageError("name SEAT_MAP_ID or --season")
    currency = currency or ("" if season_id else "EUR")
    with remote.client() as client:
        created = client.create_event(seat_map_id, name, currency, _parse_prices(prices), on_sale, season_id)
    click.echo(created.event_id)


def _event_row(e: Any) -> tuple[object, ...]:
    from seatwise.v1 import events_pb2

    status = _enum_name(events_pb2.EventStatus, e.status, "EVENT_STATUS_")
    return (e.event_id, status, f"{e.seat_map_id} v{e.seat_map_version}", _when(e.created_at), e.name)


@event.command("list")
@json_option
@remote()
def event_list(as_json: bool, remote: Remote) -> None:
    """The tenant's events."""
    from seatwise.v1 import events_pb2

    with remote.client() as client:
        events = client.list_events()
    if as_json:
        emit_json(events_pb2.ListEventsResponse(events=events))
        return
    table(("EVENT", "STATUS", "SEAT MAP", "CREATED", "NAME"), [_event_row(e) for e in events])


@event.command("get")
@click.argument("event_id")
@json_option
@remote()
def event_get(event_id: str, as_json: bool, remote: Remote) -> None:
    """One event: status, seat map, prices."""
    with remote.client() as client:
        e = client.get_event(event_id)
    if as_json:
        emit_json(e)
        return
    table(("EVENT", "STATUS", "SEAT MAP", "CREATED", "NAME"), [_event_row(e)])
    if e.prices:
        click.echo("")
        table(
            ("CATEGORY", f"PRICE ({e.currency}, minor units)"),
            [(p.category, p.amount_minor) for p in e.prices],
        )


def _distancing_text(e: Any) -> str:
    if not e.HasField("distancing"):
        return "no minimum distance"
    d = e.distancing
    if d.seats_in_row:
        return f"{d.seats_in_row} seat(s) free each side in the row around every group"
    return f"{d.metres:g} m free around every group ({d.layout_units_per_metre:g} layout units per metre)"


@event.command("distancing")
@click.argument("event_id")
@click.option("--seats-in-row", type=int, default=0, help="N seats kept free each side in the row.")
@click.option("--metres", type=float, default=0.0, help="Seats closer than this (metres) are kept free.")
@click.option(
    "--units-per-metre", type=float, default=0.0, help="The map's layout units per metre (default 100)."
)
@click.option("--none", "remove", is_flag=True, help="Remove the rule.")
@json_option
@remote()
def event_distancing(
    event_id: str, seats_in_row: int, metres: float, units_per_metre: float, remove: bool, as_json: bool,
    remote: Remote,
) -> None:  # fmt: skip
    """Minimum-distance seating: keep seats free around every sold or held group (docs/selling.md)."""
    if remove == bool(seats_in_row or metres):
        raise click.UsageError("give --seats-in-row or --metres (with --units-per-metre), or --none")
    with remote.client() as client:
        e = client.set_distancing(event_id, seats_in_row, metres, units_per_metre)
    if as_json:
        emit_json(e)
        return
    click.echo(f"{e.event_id}: {_distancing_text(e)}")


@event.command("availability")
@click.argument("event_id")
@json_option
@remote()
def event_availability(event_id: str, as_json: bool, remote: Remote) -> None:
    """Seat counts by category and general-admission places."""
    with remote.client() as client:
        availability = client.availability(event_id)
    if as_json:
        emit_json(availability)
        return
    click.echo(f"sequence {availability.sequence}")
    rows = [(c.key, c.free, c.held, c.sold, c.blocked + c.not_for_sale) for c in availability.by_category]
    table(("CATEGORY", "FREE", "HELD", "SOLD", "OFF SALE"), rows)
    if availability.general_admission:
        click.echo("")
        ga = [(a.area_id, a.available, a.capacity) for a in availability.general_admission]
        table(("GA AREA", "AVAILABLE", "CAPACITY"), ga)


def _set_status(
    event_id: str, seat_ids: tuple[str, ...], sections: tuple[str, ...], status: Any, remote: Remote
) -> None:
    if not seat_ids and not sections:
        raise click.UsageError("name seats, or sections with --section")
    with remote.client() as client:
        result = client.set_seat_status(event_id, list(seat_ids), list(sections), status)
    click.echo(
        f"{result.seats_changed} of {result.seats_selected} seat(s) changed (sequence {result.sequence})"
    )


@event.command("block")
@click.argument("event_id")
@click.argument("seat_ids", nargs=-1)
@click.option("--section", "sections", multiple=True, help="Every seat of this section (repeat).")
@click.option("--not-for-sale", is_flag=True, help="Mark them not for sale (kills) instead of blocked.")
@remote()
def event_block(
    event_id: str, seat_ids: tuple[str, ...], sections: tuple[str, ...], not_for_sale: bool, remote: Remote
) -> None:
    """Take free seats off sale (all or nothing: held or sold seats fail the call)."""
    from seatwise.v1 import events_pb2

    status = events_pb2.SEAT_STATUS_NOT_FOR_SALE if not_for_sale else events_pb2.SEAT_STATUS_BLOCKED
    _set_status(event_id, seat_ids, sections, status, remote)


@event.command("unblock")
@click.argument("event_id")
@click.argument("seat_ids", nargs=-1)
@click.option("--section", "sections", multiple=True, help="Every seat of this section (repeat).")
@remote()
def event_unblock(
    event_id: str, seat_ids: tuple[str, ...], sections: tuple[str, ...], remote: Remote
) -> None:
    """Put blocked or not-for-sale seats back on sale."""
    from seatwise.v1 import events_pb2

    _set_status(event_id, seat_ids, sections, events_pb2.SEAT_STATUS_FREE, remote)


def _seat_pairs(pairs: tuple[str, ...], mapping_file: Path | None) -> dict[str, str]:
    """``OLD=NEW`` pairs, after those of a JSON file ({"old seat id": "new seat id", ...})."""
    mapping: dict[str, str] = {}
    if mapping_file is not None:
        try:
            loaded = json.loads(mapping_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CliError(f"{mapping_file}: {exc}") from exc
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise CliError(f"{mapping_file}: expected a JSON object of old seat id -> new seat id")
        mapping.update(loaded)
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(f"{pair!r} is not OLD=NEW", param_hint="--map")
        mapping[old] = new
    return mapping


@event.command("move")
@click.argument("event_id")
@click.argument("version", type=int)
@click.option("--map", "pairs", multiple=True, metavar="OLD=NEW", help="Move seat OLD to seat NEW (repeat).")
@click.option(
    "--mapping-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="A JSON object of old seat id -> new seat id (--map pairs override it).",
)  # fmt: skip
@click.option(
    "--dry-run", is_flag=True, help="Report what would move and what would be lost; change nothing."
)
@json_option
@remote()
def event_move(
    event_id: str,
    version: int,
    pairs: tuple[str, ...],
    mapping_file: Path | None,
    dry_run: bool,
    as_json: bool,
    remote: Remote,
) -> None:
    """Move an event to another published VERSION of its seat map: every held, sold, blocked
    and not-for-sale seat goes to the seat --map names, else to the seat with its own id;
    refused, naming every seat that would be lost, otherwise."""
    mapping = _seat_pairs(pairs, mapping_file)
    with remote.client() as client:
        moved = client.move_event(event_id, version, mapping, dry_run)
    if as_json:
        emit_json(moved)
        return
    verb = "would move" if moved.dry_run else "moved"
    click.echo(
        f"{moved.event_id} {verb} from version {moved.from_version} to {moved.to_version}: "
        f"{moved.seats_moved} occupied seat(s), {moved.holds_moved} hold(s), "
        f"{moved.tickets_moved} ticket(s) in {moved.orders_changed} order(s)"
    )
    if moved.lost:
        click.echo("")
        table(
            ("WOULD BE LOST", "STATE"),
            [(p.seat_id or f"GA {p.ga_area_id}", p.state or p.reason) for p in moved.lost],
        )


# --- holds and orders -------------------------------------------------------------------------


@main.group()
def season() -> None:
    """Seasons and bundles: create, list, get; hold the same seats across a season's events,
    commit them (one order per event) or release them."""


_BUNDLE_HELP = "CATEGORY=AMOUNT: one seat for the whole season, in minor units (repeat)."


@season.command("create")
@click.argument("seat_map_id")
@click.option("--name", required=True)
@click.option("--currency", default="EUR", show_default=True)
@click.option("--bundle-price", "bundle_prices", multiple=True, help=_BUNDLE_HELP)
@remote()
def season_create(
    seat_map_id: str, name: str, currency: str, bundle_prices: tuple[str, ...], remote: Remote
) -> None:
    """Create a season over the latest (published) version of SEAT_MAP_ID; prints its id.
    Add events with `seatwise event create --season ID`."""
    bundle = _parse_prices(bundle_prices)
    with remote.client() as client:
        click.echo(client.create_season(seat_map_id, name, currency, bundle).season_id)


@season.command("set-prices")
@click.argument("season_id")
@click.option("--bundle-price", "bundle_prices", multiple=True, help=_BUNDLE_HELP + " None: no bundle.")
@remote()
def season_set_prices(season_id: str, bundle_prices: tuple[str, ...], remote: Remote) -> None:
    """Replace the season's bundle prices: a commit over every event of the season is priced
    from them, split over the events' orders in proportion to their prices."""
    bundle = _parse_prices(bundle_prices)
    with remote.client() as client:
        s = client.set_season_prices(season_id, bundle)
    click.echo(_bundle_text(s))


def _bundle_text(s: Any) -> str:
    return "bundle: " + (" ".join(f"{p.category}={p.amount_minor}" for p in s.bundle_prices) or "none")


def _season_row(s: Any) -> tuple[object, ...]:
    return (s.season_id, f"{s.seat_map_id} v{s.seat_map_version}", s.currency, len(s.event_ids), s.name)


@season.command("list")
@json_option
@remote()
def season_list(as_json: bool, remote: Remote) -> None:
    """The tenant's seasons."""
    from seatwise.v1 import seasons_pb2

    with remote.client() as client:
        seasons = client.list_seasons()
    if as_json:
        emit_json(seasons_pb2.ListSeasonsResponse(seasons=seasons))
        return
    table(("SEASON", "SEAT MAP", "CURRENCY", "EVENTS", "NAME"), [_season_row(s) for s in seasons])


@season.command("get")
@click.argument("season_id")
@json_option
@remote()
def season_get(season_id: str, as_json: bool, remote: Remote) -> None:
    """One season and its events."""
    with remote.client() as client:
        s = client.get_season(season_id)
    if as_json:
        emit_json(s)
        return
    table(("SEASON", "SEAT MAP", "CURRENCY", "EVENTS", "NAME"), [_season_row(s)])
    click.echo(_bundle_text(s))
    for event_id in s.event_ids:
        click.echo(event_id)


def _ga_places(values: tuple[str, ...]) -> dict[str, int]:
    """--ga AREA=PLACES options as a map (an area named twice is refused)."""
    out: dict[str, int] = {}
    for value in values:
        area, sep, places = value.partition("=")
        if not sep or not area or not places.isdigit() or area in out:
            raise click.BadParameter(f"{value!r}: expected AREA=PLACES, each area once", param_hint="--ga")
        out[area] = int(places)
    return out


@season.command("hold")
@click.argument("season_id")
@click.argument("seat_ids", nargs=-1)
@click.option("--event", "event_ids", multiple=True, help="Only these events of the season (repeat).")
@click.option(
    "--ga", "ga", multiple=True, help="AREA=PLACES of a general-admission area, in every event (repeat)."
)
@click.option("--channel", "channel_id", default="", help="Take seats allocated to this channel too...")
@click.option("--access-code", default="", help="...with the channel's access code (in every event).")
@click.option(
    "--request-id",
    default="",
    help="Reuse it on retry: the same id returns the same season hold (default: a new UUID, retried "
    "once on UNAVAILABLE or DEADLINE_EXCEEDED).",
)
@remote()
def season_hold(
    season_id: str,
    seat_ids: tuple[str, ...],
    event_ids: tuple[str, ...],
    ga: tuple[str, ...],
    channel_id: str,
    access_code: str,
    request_id: str,
    remote: Remote,
) -> None:
    """Hold SEAT_IDS (and --ga places) in every event of SEASON_ID (or the --event ones), all
    or nothing; prints the season hold token."""
    from seatwise.v1 import channels_pb2

    places = _ga_places(ga)
    if not seat_ids and not places:
        raise click.UsageError("name seats or give --ga AREA=PLACES")
    access = channels_pb2.ChannelAccess(channel_id=channel_id, access_code=access_code)
    with remote.client() as client:
        reply = client.hold_season(
            season_id, list(seat_ids), list(event_ids), request_id=request_id, access=access, ga=places
        )
    hold = reply.hold
    click.echo(hold.season_hold_token)
    held = [*hold.seat_ids, *(f"{area} x{n}" for area, n in sorted(hold.general_admission.items()))]
    replayed = " (replayed)" if reply.replayed else ""
    click.echo(
        f"seats: {' '.join(held)} in {len(hold.event_ids)} event(s); "
        f"expires {hold.expires_at.ToJsonString()}{replayed}",
        err=True,
    )


@season.command("commit")
@click.argument("season_hold_token")
@click.option("--idempotency-key", required=True, help="Reuse it on retry: the same key never sells twice.")
@click.option("--name", default="")
@click.option("--email", default="")
@click.option(
    "--type",
    "seat_types",
    multiple=True,
    help="SEAT_ID=TYPE_ID: the seat's ticket type in every event (repeat).",
)
@click.option("--promo-code", default="", help="Each event's own code, else the organizer's (one use).")
@click.option("--access-code", default="", help="Unlocks hidden ticket types (a presale).")
@remote()
def season_commit(
    season_hold_token: str, idempotency_key: str, name: str, email: str, seat_types: tuple[str, ...],
    promo_code: str, access_code: str, remote: Remote,
) -> None:  # fmt: skip
    """Commit a season hold: one order per event, printed with its tickets (at the season's
    bundle prices when it holds every event of the season)."""
    choices = _type_choices(seat_types, ())
    with remote.client() as client:
        result = client.commit_season(
            season_hold_token, idempotency_key, name, email,
            ticket_types=choices, promo_code=promo_code, access_code=access_code,
        )  # fmt: skip
    order = result.order
    note = " (replayed)" if result.replayed else ""
    note += " at the bundle price" if order.bundle_priced else ""
    click.echo(
        f"season order {order.season_order_id}{note}: {order.total.amount_minor} {order.total.currency} "
        f"minor units, {len(order.orders)} order(s)"
    )
    for event_order in order.orders:
        click.echo(f"event {event_order.event_id}:")
        _print_order(event_order)


@season.command("release")
@click.argument("season_hold_token")
@remote()
def season_release(season_hold_token: str, remote: Remote) -> None:
    """Release a season hold: its seats go back on sale in every event."""
    with remote.client() as client:
        client.release_season(season_hold_token)
    click.echo("released")


@main.command("hold")
@click.argument("event_id")
@click.argument("seat_ids", nargs=-1)
@click.option("--best", type=int, default=0, help="Hold the N best available seats instead of named ones.")
@click.option("--category", "categories", multiple=True)
@click.option("--channel", "channel_id", default="", help="Take seats allocated to this channel too...")
@click.option("--access-code", default="", help="...with the channel's access code.")
@click.option(
    "--request-id",
    default="",
    help="Reuse it on retry: the same id returns the same hold (default: a new UUID, retried once "
    "on UNAVAILABLE or DEADLINE_EXCEEDED).",
)
@remote()
def hold_cmd(
    event_id: str,
    seat_ids: tuple[str, ...],
    best: int,
    categories: tuple[str, ...],
    channel_id: str,
    access_code: str,
    request_id: str,
    remote: Remote,
) -> None:
    """Hold SEAT_IDS (or --best N); prints the hold token, seats and expiry."""
    from seatwise.v1 import channels_pb2

    if bool(best) == bool(seat_ids):
        raise click.UsageError("name seats or give --best N (not both)")
    access = channels_pb2.ChannelAccess(channel_id=channel_id, access_code=access_code)
    with remote.client() as client:
        reply = (
            client.hold_best(event_id, best, list(categories), request_id, access)
            if best
            else client.hold_seats(event_id, list(seat_ids), request_id, access)
        )
    hold = reply.hold
    replayed = " (replayed)" if reply.replayed else ""
    click.echo(hold.hold_token)
    click.echo(
        f"seats: {' '.join(hold.seat_ids)}; expires {hold.expires_at.ToJsonString()}{replayed}", err=True
    )


@main.command("hold-info")
@click.argument("hold_token")
@json_option
@remote()
def hold_info_cmd(hold_token: str, as_json: bool, remote: Remote) -> None:
    """What a hold holds and until when."""
    with remote.client() as client:
        hold = client.get_hold(hold_token)
    if as_json:
        emit_json(hold)
        return
    places = [f"{area} x{n}" for area, n in sorted(hold.general_admission.items())]
    table(
        ("HOLD", "EVENT", "EXPIRES", "SEATS"),
        [(hold.hold_token, hold.event_id, _when(hold.expires_at), " ".join([*hold.seat_ids, *places]))],
    )


@main.command("release")
@click.argument("hold_token")
@click.argument("seat_ids", nargs=-1)
@remote()
def release_cmd(hold_token: str, seat_ids: tuple[str, ...], remote: Remote) -> None:
    """Release a hold (or only SEAT_IDS of it): the seats go back on sale."""
    with remote.client() as client:
        remaining = client.release(hold_token, list(seat_ids))
    click.echo(f"released; {remaining} seat(s) still held" if remaining else "released")


def _type_choices(seat_types: tuple[str, ...], ga_types: tuple[str, ...]) -> list[Any]:
    """--type SEAT=TYPE and --ga-type AREA=TYPE:PLACES as TicketTypeChoice messages."""
    from seatwise.v1 import sales_pb2

    out = []
    for value in seat_types:
        seat_id, sep, type_id = value.partition("=")
        if not sep or not seat_id or not type_id:
            raise click.BadParameter(f"{value!r}: expected SEAT_ID=TYPE_ID", param_hint="--type")
        out.append(sales_pb2.TicketTypeChoice(seat_id=seat_id, ticket_type=type_id))
    for value in ga_types:
        area, sep, rest = value.partition("=")
        type_id, colon, places = rest.rpartition(":")
        if not sep or not colon or not area or not type_id or not places.isdigit():
            raise click.BadParameter(f"{value!r}: expected AREA=TYPE_ID:PLACES", param_hint="--ga-type")
        out.append(sales_pb2.TicketTypeChoice(ga_area_id=area, ticket_type=type_id, quantity=int(places)))
    return out


@main.command("commit")
@click.argument("hold_token")
@click.option("--idempotency-key", required=True, help="Reuse it on retry: the same key never sells twice.")
@click.option("--name", default="")
@click.option("--email", default="")
@click.option(
    "--type", "seat_types", multiple=True, help="SEAT_ID=TYPE_ID: sell the seat as a ticket type (repeat)."
)
@click.option(
    "--ga-type", "ga_types", multiple=True, help="AREA=TYPE_ID:PLACES of the hold's GA places (repeat)."
)
@click.option("--promo-code", default="", help="A promo code of the event or of its organizer.")
@click.option("--access-code", default="", help="Unlocks hidden ticket types (a presale).")
@remote()
def commit_cmd(
    hold_token: str, idempotency_key: str, name: str, email: str, seat_types: tuple[str, ...],
    ga_types: tuple[str, ...], promo_code: str, access_code: str, remote: Remote,
) -> None:  # fmt: skip
    """Commit a hold to an order; prints the order and its tickets. Places without a
    --type / --ga-type are sold at the event's category price."""
    choices = _type_choices(seat_types, ga_types)
    with remote.client() as client:
        result = client.commit(
            hold_token, idempotency_key, name, email,
            ticket_types=choices, promo_code=promo_code, access_code=access_code,
        )  # fmt: skip
    _print_order(result.order, " (replayed)" if result.replayed else "")


def _print_order(order: Any, note: str = "") -> None:
    from seatwise.v1 import sales_pb2

    status = _enum_name(sales_pb2.OrderStatus, order.status, "ORDER_STATUS_")
    click.echo(
        f"order {order.order_id}{note}: "
        f"{order.total.amount_minor} {order.total.currency} minor units ({status})"
    )
    if order.promo_code:
        click.echo(f"promo code {order.promo_code}: {order.discount.amount_minor} minor units off")
    rows = [
        (
            t.ticket_id,
            t.seat_id or t.ga_area_id,
            t.category,
            t.ticket_type or "-",
            t.price.amount_minor,
            t.revision,
            t.holder.name or t.holder.email,
            "cancelled" if t.cancelled else ("" if t.status in ("", "valid") else t.status),
        )
        for t in order.tickets
    ]
    table(("TICKET", "SEAT / GA AREA", "CATEGORY", "TYPE", "PRICE", "REV", "HOLDER", ""), rows)


@main.group()
def order() -> None:
    """Orders: get, list, cancel, transfer, exchange."""


@order.command("get")
@click.argument("event_id")
@click.argument("order_id")
@json_option
@remote()
def order_get(event_id: str, order_id: str, as_json: bool, remote: Remote) -> None:
    """One order of EVENT_ID with its tickets."""
    with remote.client() as client:
        found = client.get_order(event_id, order_id)
    if as_json:
        emit_json(found)
        return
    _print_order(found)


@order.command("list")
@click.argument("event_id")
@json_option
@remote()
def order_list(event_id: str, as_json: bool, remote: Remote) -> None:
    """The orders of EVENT_ID."""
    from seatwise.v1 import sales_pb2

    with remote.client() as client:
        orders = client.list_orders(event_id)
    if as_json:
        emit_json(sales_pb2.ListOrdersResponse(orders=orders))
        return
    rows = [
        (
            o.order_id,
            _enum_name(sales_pb2.OrderStatus, o.status, "ORDER_STATUS_"),
            len(o.tickets),
            o.total.amount_minor,
            o.total.currency,
            o.buyer.name,
        )
        for o in orders
    ]
    table(("ORDER", "STATUS", "TICKETS", "TOTAL", "CURRENCY", "BUYER"), rows)


@order.command("cancel")
@click.argument("event_id")
@click.argument("order_id")
@click.option("--ticket", "tickets", multiple=True, help="Cancel only this ticket (repeat); default: all.")
@click.option("--not-for-sale", is_flag=True, help="Mark the seats not for sale instead of back on sale.")
@click.option("--reason", default="", help="Kept with the order.")
@remote()
def order_cancel(
    event_id: str, order_id: str, tickets: tuple[str, ...], not_for_sale: bool, reason: str, remote: Remote
) -> None:
    """Cancel an order (or some of its tickets); the seats go back on sale."""
    with remote.client() as client:
        cancelled = client.cancel_order(event_id, order_id, list(tickets), not_for_sale, reason)
    _print_order(cancelled)


@order.command("transfer")
@click.argument("event_id")
@click.argument("order_id")
@click.argument("ticket_id")
@click.option(
    "--revision",
    type=int,
    default=0,
    show_default=True,
    help="The ticket's revision as last read (REV in 'order get'); a stale one is refused.",
)
@click.option("--name", default="", help="The new holder's name (or --email).")
@click.option("--email", default="")
@remote()
def order_transfer(
    event_id: str, order_id: str, ticket_id: str, revision: int, name: str, email: str, remote: Remote
) -> None:
    """Transfer TICKET_ID to another person: the old token stops working; prints the new one."""
    with remote.client() as client:
        moved = client.transfer_ticket(event_id, order_id, ticket_id, revision, name, email)
    _print_order(moved.order)
    click.echo(f"revision {moved.revision} token {moved.token}")


@order.command("exchange")
@click.argument("event_id")
@click.argument("order_id")
@click.option("--ticket", "tickets", multiple=True, required=True, help="A ticket to give up (repeat).")
@click.option("--seat", "seats", multiple=True, help="A free seat to take, one per ticket (repeat).")
@click.option("--hold", "hold_token", default="", help="Or: a hold on the seats to take (sold-out events).")
@click.option("--exchange-key", default="", help="Reuse it on retry (default: a new one).")
@click.option("--target-event", default="", help="The seats are of this other event of the organizer.")
@remote()
def order_exchange(
    event_id: str, order_id: str, tickets: tuple[str, ...], seats: tuple[str, ...], hold_token: str,
    exchange_key: str, target_event: str, remote: Remote,
) -> None:  # fmt: skip
    """Swap tickets of an order for other seats of the event (or of --target-event), all or
    nothing; prints the difference (and the new order of another event)."""
    import uuid

    with remote.client() as client:
        done = client.exchange_tickets(
            event_id, order_id, list(tickets), list(seats), hold_token, exchange_key or f"cli-{uuid.uuid4()}",
            target_event,
        )  # fmt: skip
    _print_order(done.order, " (replayed)" if done.replayed else "")
    if done.HasField("new_order"):
        _print_order(done.new_order)
    x = done.exchange
    click.echo(f"exchange {x.exchange_id}: difference {x.difference.amount_minor} {x.difference.currency}")


# -- resale (docs/selling.md) ------------------------------------------------------
@main.group()
def resale() -> None:
    """Resale of tickets: the organizer's limits, listings, purchases."""


@resale.command("rules")
@click.argument("event_id")
@click.option("--allow/--forbid", default=True, help="Whether the event's tickets may be resold.")
@click.option("--floor", type=int, default=0, help="Lowest price, minor units.")
@click.option("--cap", type=int, default=0, help="Highest price, minor units (0: none).")
@remote()
def resale_rules(event_id: str, allow: bool, floor: int, cap: int, remote: Remote) -> None:
    """Set EVENT_ID's resale limits."""
    with remote.client() as client:
        rules = client.set_resale_rules(event_id, allow, floor, cap)
    allowed = "allowed" if rules.allowed else "not allowed"
    click.echo(f"resale {allowed}: floor {rules.floor}, cap {rules.cap or 'none'}")


@resale.command("list")
@click.argument("event_id")
@click.argument("order_id")
@click.argument("ticket_id")
@click.option("--price", type=int, required=True, help="Minor units.")
@click.option("--seller", "seller_id", required=True, help="The seller's account id.")
@click.option("--revision", type=int, default=0, show_default=True)
@remote()
def resale_list(
    event_id: str, order_id: str, ticket_id: str, price: int, seller_id: str, revision: int, remote: Remote
) -> None:
    """Offer TICKET_ID for resale; prints the listing id."""
    with remote.client() as client:
        listed = client.list_for_resale(event_id, order_id, ticket_id, revision, price, seller_id)
    click.echo(listed.listing.listing_id)


@resale.command("withdraw")
@click.argument("event_id")
@click.argument("order_id")
@click.argument("ticket_id")
@remote()
def resale_withdraw(event_id: str, order_id: str, ticket_id: str, remote: Remote) -> None:
    """Withdraw TICKET_ID's listing."""
    with remote.client() as client:
        client.withdraw_listing(event_id, order_id, ticket_id)
    click.echo(f"withdrawn {ticket_id}")


@resale.command("listings")
@click.argument("event_id")
@json_option
@remote()
def resale_listings(event_id: str, as_json: bool, remote: Remote) -> None:
    """EVENT_ID's listed tickets."""
    with remote.client() as client:
        listed = client.listings(event_id)
    if as_json:
        emit_json(listed)
        return
    rows = [(li.listing_id, li.ticket_id, li.seat_id or li.ga_area_id, li.price.amount_minor, li.seller_id,
             "held" if li.held else "") for li in listed.listings]  # fmt: skip
    table(("LISTING", "TICKET", "SEAT / GA AREA", "PRICE", "SELLER", ""), rows)


@resale.command("hold")
@click.argument("event_id")
@click.argument("ticket_id")
@click.argument("listing_id")
@click.option("--buyer", "buyer_id", default="", help="The buyer's account id.")
@remote()
def resale_hold(event_id: str, ticket_id: str, listing_id: str, buyer_id: str, remote: Remote) -> None:
    """Hold a listing while the buyer pays; prints the hold token."""
    with remote.client() as client:
        held = client.hold_listing(event_id, ticket_id, listing_id, buyer_id)
    click.echo(held.hold_token)


@resale.command("buy")
@click.argument("hold_token")
@click.option("--resale-key", required=True, help="Reuse it on retry: the same key never buys twice.")
@click.option("--name", default="")
@click.option("--email", default="")
@remote()
def resale_buy(hold_token: str, resale_key: str, name: str, email: str, remote: Remote) -> None:
    """Buy a held listing: prints the resale and the buyer's ticket token."""
    with remote.client() as client:
        bought = client.commit_listing(hold_token, resale_key, name, email)
    r = bought.resale
    note = " (replayed)" if bought.replayed else ""
    click.echo(f"resale {r.resale_id}{note}: {r.price.amount_minor} {r.price.currency}, "
               f"seller payout {r.seller_payout.amount_minor}, fees {r.fees.platform_fee}")  # fmt: skip
    click.echo(f"token {bought.token}")


@resale.command("sales")
@click.argument("event_id")
@json_option
@remote()
def resale_sales(event_id: str, as_json: bool, remote: Remote) -> None:
    """EVENT_ID's resales with the sellers' payouts and times."""
    with remote.client() as client:
        found = client.resales(event_id)
    if as_json:
        emit_json(found)
        return
    rows = [(r.resale_id, r.ticket_id, r.seller_id, r.price.amount_minor, r.seller_payout.amount_minor,
             _when(r.listed_at), _when(r.accepted_at)) for r in found.resales]  # fmt: skip
    table(("RESALE", "TICKET", "SELLER", "PRICE", "PAYOUT", "LISTED", "SOLD"), rows)


# -- the lifecycle feed (docs/data.md) --------------------------------------------
@main.group()
def feed() -> None:
    """The organizer's lifecycle feed, for a CRM integration."""


@feed.command("tail")
@click.option(
    "--from", "cursor", default="", help="Resume after this cursor; default: the oldest entry kept."
)
@click.option("--from-now", is_flag=True, help="Only changes made from now on.")
@click.option("--max", "max_entries", type=int, default=0, help="Stop after this many entries (0: follow).")
@remote()
def feed_tail(cursor: str, from_now: bool, max_entries: int, remote: Remote) -> None:
    """Print the feed as JSON lines, following it until interrupted.

    Each line is an entry, or a checkpoint ({"kind": "checkpoint", "cursor": ...});
    store the "cursor" of the last line you processed and pass it to --from to resume.
    """
    import json

    from google.protobuf import json_format

    seen = 0
    with remote.client() as client:
        for message in client.feed_tail(cursor, from_now):
            if message.WhichOneof("item") == "checkpoint":
                line: dict[str, Any] = {"kind": "checkpoint", "cursor": message.checkpoint}
            else:
                line = json_format.MessageToDict(message.entry, preserving_proto_field_name=True)
            click.echo(json.dumps(line, separators=(",", ":"), ensure_ascii=False), nl=True)
            sys.stdout.flush()
            if message.WhichOneof("item") == "entry":
                seen += 1
                if max_entries and seen >= max_entries:
                    return


# --- tickets and the door (docs/door.md) ---------------------------------------------------------


@main.group()
def ticket() -> None:
    """Tickets' signed tokens and QR codes."""


@ticket.command("token")
@click.argument("order_id")
@click.argument("ticket_id")
@click.option("--event", "event_id", required=True, help="The order's event.")
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), help="Also write the QR code as a PNG."
)
@json_option
@remote()
def ticket_token_cmd(
    order_id: str, ticket_id: str, event_id: str, png: Path | None, as_json: bool, remote: Remote
) -> None:
    """The signed token of TICKET_ID of ORDER_ID (the same every time), printed; --png writes its QR code."""
    with remote.client() as client:
        issued = client.ticket_token(event_id, order_id, ticket_id, png is not None)
    if png is not None:
        write_output(png, issued.qr_png)
    if as_json:
        emit_json(issued)
        return
    click.echo(issued.token)


@main.group()
def door() -> None:
    """At the door: scan tickets (a door-scanner key)."""


@door.command("scan")
@click.argument("token")
@click.option("--event", "event_id", required=True, help="The event this door admits to.")
@click.option("--gate", required=True, help="The gate scanning (recorded and counted).")
@click.option("--device", "device_id", default="cli", show_default=True, help="This scanner's id.")
@json_option
@remote()
def door_scan_cmd(
    token: str, event_id: str, gate: str, device_id: str, as_json: bool, remote: Remote
) -> None:
    """Scan TOKEN: admitted, or exactly why not. Exit status 0 only when admitted."""
    from seatwise.v1 import access_pb2

    with remote.client() as client:
        answer = client.scan_ticket(event_id, token, gate, device_id)
    if as_json:
        emit_json(answer)
    else:
        result = _enum_name(access_pb2.ScanResult, answer.result, "SCAN_RESULT_")
        detail = [answer.reason, answer.seat_id or answer.ga_area_id, answer.category]
        if answer.result == access_pb2.SCAN_RESULT_ALREADY_USED:
            detail.append(
                f"at gate {answer.previous.gate} ({answer.previous.device_id}) {_when(answer.previous.at)}"
            )
        if answer.token_event_id:
            detail.append(f"ticket for event {answer.token_event_id}")
        click.echo(" ".join([result.upper(), *(d for d in detail if d)]))
    if answer.result != access_pb2.SCAN_RESULT_ADMITTED:
        raise SystemExit(1)


# --- platforms and organizers (issue 13): the operators' daily work ---------------------------


def _organizer_row(o: Any) -> tuple[object, ...]:
    status = f"suspended: {o.suspended_reason}" if o.suspended else "active"
    return (o.organizer_id, o.slug or "-", o.country or "-", o.plan_id or "-", status, o.name)


def _print_organizers(organizers: list[Any]) -> None:
    table(("ORGANIZER", "SLUG", "COUNTRY", "PLAN", "STATUS", "NAME"), [_organizer_row(o) for o in organizers])


@main.group()
def platform() -> None:
    """White-label platforms (root-admin key; a platform-admin key for its own)."""


@platform.command("create")
@click.argument("name")
@click.option("--id", "platform_id", default="", help="Platform id (default: generated).")
@click.option("--terms-version", default="", help="The terms organizers accept at sign-up.")
@click.option(
    "--public-sales-when-suspended", is_flag=True, help="Suspended organizers' storefronts keep selling."
)
@remote(tenant=False)
def platform_create(
    name: str, platform_id: str, terms_version: str, public_sales_when_suspended: bool, remote: Remote
) -> None:
    """Create a platform and print a platform-admin key for it (shown once)."""
    from seatwise.v1 import platform_pb2, tenancy_pb2

    with remote.client(tenant_scoped=False) as client:
        created = client.call(
            client.platforms.CreatePlatform,
            platform_pb2.CreatePlatformRequest(
                platform_id=platform_id,
                name=name,
                terms_version=terms_version,
                public_sales_when_suspended=public_sales_when_suspended,
            ),
        )
        key = client.call(
            client.tenants.CreateApiKey,
            tenancy_pb2.CreateApiKeyRequest(
                role=tenancy_pb2.ROLE_PLATFORM_ADMIN,
                platform_id=created.platform.platform_id,
                label="created by CLI",
            ),
        )
    click.echo(f"platform: {created.platform.platform_id}", err=True)
    click.echo(key.api_key)


@platform.command("list")
@json_option
@remote(tenant=False)
def platform_list(as_json: bool, remote: Remote) -> None:
    """Every platform (root admin)."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        listed = client.call(client.platforms.ListPlatforms, platform_pb2.ListPlatformsRequest(page_size=500))
    if as_json:
        emit_json(listed)
        return
    rows = [
        (p.platform_id, p.terms_version or "-", "yes" if p.public_sales_when_suspended else "no", p.name)
        for p in listed.platforms
    ]
    table(("PLATFORM", "TERMS", "SALES WHEN SUSPENDED", "NAME"), rows)


@platform.command("set")
@click.argument("platform_id", default="")
@click.option("--terms-version", default=None, help="New terms for sign-ups from now on.")
@click.option("--public-sales-when-suspended/--no-public-sales-when-suspended", default=None)
@click.option(
    "--billing-grace-days", type=click.IntRange(0, 365), default=None,
    help="Days after a month ends before an organizer that still owes for it is suspended (0: never).",
)  # fmt: skip
@remote(tenant=False)
def platform_set(
    platform_id: str,
    terms_version: str | None,
    public_sales_when_suspended: bool | None,
    billing_grace_days: int | None,
    remote: Remote,
) -> None:
    """Change a platform's settings (default: the key's own platform)."""
    from seatwise.v1 import platform_pb2

    request = platform_pb2.UpdatePlatformRequest(platform_id=platform_id)
    if billing_grace_days is not None:
        request.billing_grace_days = billing_grace_days
    if terms_version is not None:
        request.terms_version = terms_version
    if public_sales_when_suspended is not None:
        request.public_sales_when_suspended = public_sales_when_suspended
    with remote.client(tenant_scoped=False) as client:
        updated = client.call(client.platforms.UpdatePlatform, request)
    emit_json(updated.platform)


BRANDING_OPTIONS = (
    "display_name", "slug", "custom_domain", "logo_url", "favicon_url", "primary_color", "accent_color",
    "support_email", "sender_email", "header_text", "footer_text",
)  # fmt: skip


def branding_options(command: F) -> F:
    """--display-name ... --footer-text: each one given is changed ("" clears it)."""
    for name in reversed(BRANDING_OPTIONS):
        flag = "--" + name.replace("_", "-")
        command = click.option(flag, name, default=None, help=f"Set {name} ('' clears it).")(command)
    return command


def _branding(remote: Remote, organizer_id: str, platform_id: str, fields: dict[str, str | None]) -> None:
    from seatwise.v1 import platform_pb2

    changes = {name: value for name, value in fields.items() if value is not None}
    with remote.client(tenant_scoped=False) as client:
        if changes:
            update = platform_pb2.UpdateBrandingRequest(
                organizer_id=organizer_id, platform_id=platform_id, **changes
            )
            branding = client.call(client.platforms.UpdateBranding, update).branding
        else:
            request = platform_pb2.GetBrandingRequest(organizer_id=organizer_id, platform_id=platform_id)
            branding = client.call(client.platforms.GetBranding, request).branding
    emit_json(branding)


@platform.command("branding")
@click.argument("platform_id", default="")
@branding_options
@remote(tenant=False)
def platform_branding(platform_id: str, remote: Remote, **fields: str | None) -> None:
    """Show the platform's branding profile, or change the fields given (default: the key's platform)."""
    _branding(remote, "", platform_id, fields)


@platform.command("hub")
@click.argument("platform_id", default="")
@click.option("--from", "from_", default="", help="Events starting at or after (ISO 8601; default: now).")
@click.option("--until", default="", help="Events starting before.")
@click.option("--organizer", "organizer_id", default="", help="Only this organizer's events.")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@json_option
@remote(tenant=False)
def platform_hub(
    platform_id: str, from_: str, until: str, organizer_id: str, limit: int, as_json: bool, remote: Remote
) -> None:
    """Upcoming on-sale events of every organizer of the platform, soonest first."""
    from seatwise.v1 import platform_pb2

    request = platform_pb2.ListHubEventsRequest(
        platform_id=platform_id, organizer_id=organizer_id, page_size=limit
    )
    if from_:
        getattr(request, "from").FromMilliseconds(_timestamp_ms("from", from_))
    if until:
        request.until.FromMilliseconds(_timestamp_ms("until", until))
    with remote.client(tenant_scoped=False) as client:
        page = client.call(client.platforms.ListHubEvents, request)
    if as_json:
        emit_json(page)
        return
    rows = [(_when(e.starts_at), e.event_id, e.organizer_slug or e.organizer_id, e.name) for e in page.events]
    table(("STARTS", "EVENT", "ORGANIZER", "NAME"), rows)


@platform.command("key")
@click.argument("platform_id", default="")
@click.option("--label", default="created by CLI")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None)
@remote(tenant=False)
def platform_key(platform_id: str, label: str, expires_in_days: int | None, remote: Remote) -> None:
    """A new platform-admin key (shown once)."""
    import time

    from seatwise.v1 import tenancy_pb2

    request = tenancy_pb2.CreateApiKeyRequest(
        role=tenancy_pb2.ROLE_PLATFORM_ADMIN, platform_id=platform_id, label=label
    )
    if expires_in_days:
        request.expires_at.FromMilliseconds(int((time.time() + expires_in_days * 86400) * 1000))
    with remote.client(tenant_scoped=False) as client:
        created = client.call(client.tenants.CreateApiKey, request)
    click.echo(f"key: {created.key.key_id}", err=True)
    click.echo(created.api_key)


@main.group()
def organizer() -> None:
    """A platform's organizers: sign-up, suspension, the audit log (platform-admin key)."""


@organizer.command("signup")
@click.argument("name")
@click.option("--slug", required=True, help="Unique within the platform: 3-40 of a-z, 0-9, '-'.")
@click.option("--country", required=True, help="ISO 3166-1 alpha-2, e.g. DE.")
@click.option("--plan", "plan_id", default="")
@click.option(
    "--accept-terms", "terms", default="", help="The platform's terms version the organizer accepted."
)
@click.option("--platform", "platform_id", default="", help="Root admin: the platform.")
@remote(tenant=False)
def organizer_signup(
    name: str, slug: str, country: str, plan_id: str, terms: str, platform_id: str, remote: Remote
) -> None:
    """Sign an organizer up; prints its organizer-admin key (shown once)."""
    from seatwise.v1 import platform_pb2

    request = platform_pb2.SignUpOrganizerRequest(
        platform_id=platform_id, name=name, slug=slug, country=country, plan_id=plan_id,
        accepted_terms_version=terms, key_label="created by CLI",
    )  # fmt: skip
    with remote.client(tenant_scoped=False) as client:
        signed = client.call(client.platforms.SignUpOrganizer, request)
    click.echo(f"organizer: {signed.organizer.organizer_id}", err=True)
    click.echo(signed.api_key)


@organizer.command("list")
@click.option("--platform", "platform_id", default="", help="Root admin: the platform (default: none).")
@json_option
@remote(tenant=False)
def organizer_list(platform_id: str, as_json: bool, remote: Remote) -> None:
    """The platform's organizers."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        listed = client.call(
            client.platforms.ListOrganizers,
            platform_pb2.ListOrganizersRequest(platform_id=platform_id, page_size=500),
        )
    if as_json:
        emit_json(listed)
        return
    _print_organizers(list(listed.organizers))


@organizer.command("get")
@click.argument("organizer_id")
@json_option
@remote(tenant=False)
def organizer_get(organizer_id: str, as_json: bool, remote: Remote) -> None:
    """One organizer."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        got = client.call(
            client.platforms.GetOrganizer, platform_pb2.GetOrganizerRequest(organizer_id=organizer_id)
        )
    if as_json:
        emit_json(got.organizer)
        return
    _print_organizers([got.organizer])


@organizer.command("suspend")
@click.argument("organizer_id")
@click.option("--reason", required=True, help="Shown to the organizer with every refused call.")
@remote(tenant=False)
def organizer_suspend(organizer_id: str, reason: str, remote: Remote) -> None:
    """Suspend an organizer: its management calls fail until reinstated."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        done = client.call(
            client.platforms.SuspendOrganizer,
            platform_pb2.SuspendOrganizerRequest(organizer_id=organizer_id, reason=reason),
        )
    _print_organizers([done.organizer])


@organizer.command("reinstate")
@click.argument("organizer_id")
@remote(tenant=False)
def organizer_reinstate(organizer_id: str, remote: Remote) -> None:
    """Lift an organizer's suspension."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        done = client.call(
            client.platforms.ReinstateOrganizer,
            platform_pb2.ReinstateOrganizerRequest(organizer_id=organizer_id),
        )
    _print_organizers([done.organizer])


@organizer.command("audit")
@click.argument("organizer_id", default="")
@click.option("--platform", "platform_id", default="", help="Root admin: a platform's log.")
@click.option("--method", default="", help="Only this method, e.g. SuspendOrganizer.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@remote(tenant=False)
def organizer_audit(
    organizer_id: str, platform_id: str, method: str, limit: int, as_json: bool, remote: Remote
) -> None:
    """The audit log, newest first: an organizer's, or (no id) the platform's."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        page = client.call(
            client.platforms.ListAuditLog,
            platform_pb2.ListAuditLogRequest(
                organizer_id=organizer_id, platform_id=platform_id, method=method, page_size=limit
            ),
        )
    if as_json:
        emit_json(page)
        return
    rows = [
        (
            _when(e.at),
            e.actor_key_id,
            "acting" if e.acting else "-",
            e.organizer_id or "-",
            e.method,
            e.outcome,
        )
        for e in page.entries
    ]
    table(("AT", "KEY", "AS", "ORGANIZER", "METHOD", "OUTCOME"), rows)


@organizer.command("branding")
@click.argument("organizer_id", default="")
@branding_options
@remote(tenant=False)
def organizer_branding(organizer_id: str, remote: Remote, **fields: str | None) -> None:
    """Show an organizer's branding profile, or change the fields given (default: the key's organizer)."""
    _branding(remote, organizer_id, "", fields)


@organizer.command("export")
@click.option("--platform", "platform_id", default="", help="Root admin: the platform.")
@click.option("--from", "from_", default="", help="Start of the tickets-sold period (default: this month).")
@click.option("--until", default="", help="Its end (exclusive).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@remote(tenant=False)
def organizer_export(platform_id: str, from_: str, until: str, output: Path, remote: Remote) -> None:
    """The platform's organizers as CSV (id, name, slug, plan, status, created, tickets sold)."""
    from seatwise.v1 import platform_pb2

    if bool(from_) != bool(until):
        raise CliError("--from and --until go together (default: the current month)")
    request = platform_pb2.ExportOrganizersRequest(platform_id=platform_id)
    if from_:
        request.period_start.FromMilliseconds(_timestamp_ms("from", from_))
        request.period_end.FromMilliseconds(_timestamp_ms("until", until))
    partial = output.with_name(output.name + ".part")
    rows = 0
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with remote.client(tenant_scoped=False) as client, partial.open("wb") as out:
            for chunk in client.export_organizers(request):
                out.write(chunk.data)
                rows = chunk.rows_so_far
        partial.replace(output)
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"{rows} organizers -> {output}", err=True)


@organizer.command("notifications")
@click.argument("organizer_id", default="")
@click.option("--platform", "platform_id", default="", help="Root admin: a platform's notifications.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@remote(tenant=False)
def organizer_notifications(
    organizer_id: str, platform_id: str, limit: int, as_json: bool, remote: Remote
) -> None:
    """Plan-limit notifications (80 % and 100 %), newest first: an organizer's, or (no id) the platform's."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        page = client.call(
            client.platforms.ListNotifications,
            platform_pb2.ListNotificationsRequest(
                organizer_id=organizer_id, platform_id=platform_id, page_size=limit
            ),
        )
    if as_json:
        emit_json(page)
        return
    rows = [
        (_when(n.at), n.organizer_id, n.period, n.kind, n.limit, f"{n.usage}/{n.limit_value}")
        for n in page.notifications
    ]
    table(("AT", "ORGANIZER", "PERIOD", "KIND", "LIMIT", "USED"), rows)


@organizer.command("statement")
@click.argument("organizer_id", default="")
@click.option("--from", "from_", required=True, help="Start of the period (ISO 8601; UTC if no zone).")
@click.option("--until", required=True, help="Its end (exclusive); at most 400 days after --from.")
@click.option(
    "--platform", "platform_id", default="", help="Root admin, no organizer: this platform's roll-up."
)
@remote(tenant=False)
def organizer_statement(organizer_id: str, from_: str, until: str, platform_id: str, remote: Remote) -> None:
    """An organizer's statement for a period as CSV on stdout; without ORGANIZER_ID, a
    platform admin's key gets the roll-up of all its organizers (docs/money.md)."""
    from seatwise.v1 import platform_pb2

    request = platform_pb2.GetStatementRequest(
        organizer_id=organizer_id, platform_id=platform_id, include_csv=True
    )
    request.period_start.FromMilliseconds(_timestamp_ms("from", from_))
    request.period_end.FromMilliseconds(_timestamp_ms("until", until))
    with remote.client(tenant_scoped=False) as client:
        got = client.call(client.platforms.GetStatement, request)
    click.echo(got.csv.decode(), nl=False)


@platform.group("plan")
def platform_plan() -> None:
    """The platform's plans: create, list (docs/platform.md#plans)."""


@platform_plan.command("create")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--platform", "platform_id", default="", help="Root admin: the platform.")
@remote(tenant=False)
def platform_plan_create(plan_file: Path, platform_id: str, remote: Remote) -> None:
    """Create a plan from a JSON file: the fields of seatwise.v1.Plan, e.g.
    {"plan_id": "std", "default_currency": "EUR", "prices": {"EUR": {"monthly_fee": 2900}},
    "ticket_fee_bps": 500, "features": {"own_payment_account": false}}."""
    from google.protobuf import json_format
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        try:
            plan = json_format.Parse(plan_file.read_text(encoding="utf-8"), platform_pb2.Plan())
        except OSError as exc:
            raise CliError(f"{plan_file}: cannot read: {exc.strerror or exc}") from exc
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise CliError(f"{plan_file}: not a plan: {exc}") from exc
        created = client.call(
            client.platforms.CreatePlan, platform_pb2.CreatePlanRequest(platform_id=platform_id, plan=plan)
        )
    click.echo(created.plan.plan_id)


@platform_plan.command("list")
@click.option("--platform", "platform_id", default="", help="Root admin: the platform.")
@json_option
@remote(tenant=False)
def platform_plan_list(platform_id: str, as_json: bool, remote: Remote) -> None:
    """The platform's plans."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        listed = client.call(
            client.platforms.ListPlans, platform_pb2.ListPlansRequest(platform_id=platform_id)
        )
    if as_json:
        emit_json(listed)
        return
    rows = [
        (p.plan_id, p.default_currency, p.ticket_fee_bps, p.processing_fee_bps, ",".join(sorted(p.prices)))
        for p in listed.plans
    ]
    table(("PLAN", "CURRENCY", "TICKET BPS", "PROCESSING BPS", "PRICED IN"), rows)


@organizer.command("plan")
@click.argument("organizer_id")
@click.argument("plan_id")
@remote(tenant=False)
def organizer_plan(organizer_id: str, plan_id: str, remote: Remote) -> None:
    """Move an organizer to another plan of its platform, at once."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        done = client.call(
            client.platforms.ChangePlan,
            platform_pb2.ChangePlanRequest(organizer_id=organizer_id, plan_id=plan_id),
        )
    click.echo(f"plan: {done.previous_plan_id or '-'} -> {done.organizer.plan_id}", err=True)
    _print_organizers([done.organizer])


@organizer.command("paid")
@click.argument("organizer_id")
@click.argument("period")
@remote(tenant=False)
def organizer_paid(organizer_id: str, period: str, remote: Remote) -> None:
    """Mark an organizer's statement of PERIOD (YYYY-MM) paid; reinstates it if billing suspended it."""
    from seatwise.v1 import platform_pb2

    with remote.client(tenant_scoped=False) as client:
        done = client.call(
            client.platforms.MarkStatementPaid,
            platform_pb2.MarkStatementPaidRequest(organizer_id=organizer_id, period=period),
        )
    if done.reinstated:
        click.echo("reinstated", err=True)
    _print_organizers([done.organizer])


# --- exports and reports (docs/data.md#exports, #reports) --------------------------------------

EXPORT_KINDS = ("orders", "tickets", "checkins", "contacts", "statement")


def _timestamp_ms(name: str, value: str) -> int:
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"--{name}: not a date or time (ISO 8601, e.g. 2026-05-01T18:00Z): {value}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@main.command("export")
@click.argument("kind", type=click.Choice(EXPORT_KINDS))
@click.argument("event_id", default="")
@click.option("--format", "fmt", type=click.Choice(("csv", "jsonl")), default="csv", show_default=True)
@click.option(
    "--bom", is_flag=True, help="CSV: start with a UTF-8 byte-order mark (for spreadsheet programs)."
)
@click.option(
    "--from", "from_", default="", help="Only rows at or after this time (ISO 8601; UTC if no zone)."
)
@click.option("--until", default="", help="Only rows before this time.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@remote()
def export_cmd(
    kind: str, event_id: str, fmt: str, bom: bool, from_: str, until: str, output: Path, remote: Remote
) -> None:
    """Export KIND (orders, tickets, checkins, contacts, statement) of EVENT_ID (default: all) to a file.

    Contacts are the buyers who opted in to marketing (their newest decision). A statement
    covers --from to --until (both required, at most 400 days). The file is written as it
    streams in, to OUTPUT.part, and renamed when complete.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from seatwise.v1 import reports_pb2

    request = reports_pb2.ExportRequest(
        kind=reports_pb2.ExportKind.Value(f"EXPORT_KIND_{kind.upper()}"),
        format=reports_pb2.EXPORT_FORMAT_JSONL if fmt == "jsonl" else reports_pb2.EXPORT_FORMAT_CSV,
        event_id=event_id,
        bom=bom,
    )
    if from_:
        getattr(request, "from").FromMilliseconds(_timestamp_ms("from", from_))
    if until:
        request.until.FromMilliseconds(_timestamp_ms("until", until))
    if kind == "statement" and not (from_ and until):
        raise CliError("a statement needs --from and --until")
    partial = output.with_name(output.name + ".part")
    rows = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with (
            remote.client() as client,
            partial.open("wb") as out,
            Progress(*columns, console=Console(stderr=True), transient=True) as progress,
        ):
            task = progress.add_task(f"exporting {kind}", total=None)
            for chunk in client.export(request):
                if chunk.rows_estimate:
                    progress.update(task, total=chunk.rows_estimate)
                out.write(chunk.data)
                rows = chunk.rows_so_far
                progress.update(task, completed=rows)
        partial.replace(output)
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"{rows} {kind} rows -> {output}", err=True)


class _ReportGroup(click.Group):
    """``seatwise report EVENT`` is ``seatwise report show EVENT``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_ReportGroup)
def report() -> None:
    """An event's figures (report EVENT), its sales chart and seat-map heat maps."""


@report.command("show")
@click.argument("event_id")
@json_option
@remote()
def report_show(event_id: str, as_json: bool, remote: Remote) -> None:
    """Seats by status, category and section; orders, revenue, sales pace, holds, check-ins."""
    from seatwise.v1 import reports_pb2

    with remote.client() as client:
        r = client.call(client.reports.GetEventReport, reports_pb2.GetEventReportRequest(event_id=event_id))
    if as_json:
        emit_json(r)
        return
    from rules.money import format_minor

    def money(m: Any) -> str:
        return f"{format_minor(m.amount_minor, m.currency)} {m.currency}" if m.currency else "-"

    click.echo(f"{r.name} ({r.event_id})")
    names = ("free", "held", "sold", "blocked", "not_for_sale")
    groups = [("total", "", r.seats)]
    groups += [("category", g.key, g.seats) for g in r.by_category]
    groups += [("section", g.key, g.seats) for g in r.by_section]
    table(
        ("BY", "KEY", *(n.upper() for n in names)),
        [(b, k, *(getattr(s, n) for n in names)) for b, k, s in groups],
    )
    fees = money(r.fees) if r.fees_recorded else "not recorded by some orders"
    lines = [
        ("orders", f"{r.orders} ({r.orders_cancelled} cancelled)"),
        ("tickets sold", f"{r.tickets_sold} ({r.tickets_cancelled} cancelled)"),
        ("revenue gross", money(r.revenue_gross)),
        ("fees", fees),
        ("revenue net", money(r.revenue_net) if r.fees_recorded else "-"),
        ("peak tickets/minute", str(r.peak_tickets_per_minute)),
        ("first / last sale", f"{_when(r.first_sale)} / {_when(r.last_sale)}"),
        ("holds (last day)", f"{r.holds_committed} committed, {r.holds_released} released, "
                             f"{r.holds_expired} expired"),
        ("checked in", f"{r.checked_in} ({r.checkin_rate:.1%})"),
    ]  # fmt: skip
    for label, value in lines:
        click.echo(f"{label:>20}: {value}")


@report.command("chart")
@click.argument("event_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--width", type=click.IntRange(200, 4000), default=1200, show_default=True)
@click.option("--height", type=click.IntRange(150, 4000), default=600, show_default=True)
@remote()
def report_chart(event_id: str, output: Path, width: int, height: int, remote: Remote) -> None:
    """Tickets sold per minute, and in total, as a PNG."""
    from seatwise.v1 import reports_pb2

    with remote.client() as client, step("drawing the sales chart"):
        image = client.call(
            client.reports.RenderSalesChart,
            reports_pb2.RenderSalesChartRequest(event_id=event_id, width=width, height=height),
        )
    write_output(output, image.content)
    click.echo(f"wrote {output}", err=True)


@report.command("heatmap")
@click.argument("event_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--by", type=click.Choice(("status", "time")), default="status", show_default=True,
              help="Colour seats by status (sold, held, free) or sold seats by time of sale.")  # fmt: skip
@click.option("--width", type=click.IntRange(1, 10_000), default=None, help="Pixels (PNG).")
@remote()
def report_heatmap(event_id: str, output: Path, by: str, width: int | None, remote: Remote) -> None:
    """The seat map as a heat map; SVG or PNG by OUTPUT's suffix (.svg, .png)."""
    from seatwise.v1 import reports_pb2

    suffix = output.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise CliError(f"{output}: the file name must end in .svg or .png")
    fmt = reports_pb2.REPORT_IMAGE_FORMAT_SVG if suffix == ".svg" else reports_pb2.REPORT_IMAGE_FORMAT_PNG
    colouring = (
        reports_pb2.HEAT_MAP_COLOURING_TIME_OF_SALE if by == "time" else reports_pb2.HEAT_MAP_COLOURING_STATUS
    )
    with remote.client() as client, step("drawing the heat map"):
        image = client.call(
            client.reports.RenderHeatMap,
            reports_pb2.RenderHeatMapRequest(
                event_id=event_id, format=fmt, colouring=colouring, width=width or 0
            ),
        )
    write_output(output, image.content)
    click.echo(f"wrote {output}", err=True)


# --- ticket types and promo codes (docs/selling.md) ------------------------------------------


@main.group("ticket-type")
def ticket_type() -> None:
    """An event's ticket types (adult, child, concession, presale...): a price per category."""


_CHANNELS = ("storefront", "box_office")


def _ticket_type_message(
    type_id: str, name: str, prices: tuple[str, ...], max_per_order: int, channels: tuple[str, ...],
    access_code: str,
) -> Any:  # fmt: skip
    from seatwise.v1 import events_pb2, offers_pb2, sales_pb2

    channel_pb = {
        "storefront": sales_pb2.SALES_CHANNEL_STOREFRONT,
        "box_office": sales_pb2.SALES_CHANNEL_BOX_OFFICE,
    }
    return offers_pb2.TicketType(
        type_id=type_id, name=name, max_per_order=max_per_order, access_code=access_code,
        prices=[events_pb2.CategoryPrice(category=c, amount_minor=a)
                for c, a in _parse_prices(prices).items()],
        channels=[channel_pb[c] for c in channels],
    )  # fmt: skip


def _ticket_type_options(command: F) -> F:
    options = [
        click.option("--name", required=True, help="What the buyer reads: Child, Concession, ..."),
        click.option("--price", "prices", multiple=True, required=True,
                     help="CATEGORY=AMOUNT in minor units (repeat); other categories are not sold as it."),
        click.option("--max-per-order", type=click.IntRange(0, 10_000), default=0, show_default=True,
                     help="At most this many per order (0: no limit)."),
        click.option("--channel", "channels", type=click.Choice(_CHANNELS), multiple=True,
                     help="Where it is sold (repeat; default: everywhere)."),
        click.option("--access-code", default="",
                     help="Hide the type: offered only with this code (presale)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _print_types(types: Any, as_json: bool) -> None:
    from seatwise.v1 import offers_pb2, sales_pb2

    if as_json:
        emit_json(offers_pb2.ListTicketTypesResponse(ticket_types=types))
        return
    rows = [
        (
            t.type_id, t.name, ", ".join(f"{p.category}={p.amount_minor}" for p in t.prices),
            t.max_per_order or "-",
            ",".join(_enum_name(sales_pb2.SalesChannel, c, "SALES_CHANNEL_") for c in t.channels) or "all",
            "hidden" if t.access_code else "", "disabled" if t.disabled else "",
        )
        for t in types
    ]  # fmt: skip
    table(("TYPE", "NAME", "PRICES", "MAX/ORDER", "CHANNELS", "", ""), rows)


@ticket_type.command("create")
@click.argument("event_id")
@click.argument("type_id")
@_ticket_type_options
@remote()
def ticket_type_create(
    event_id: str, type_id: str, name: str, prices: tuple[str, ...], max_per_order: int,
    channels: tuple[str, ...], access_code: str, remote: Remote,
) -> None:  # fmt: skip
    """Add ticket type TYPE_ID to EVENT_ID."""
    from seatwise.v1 import offers_pb2

    message = _ticket_type_message(type_id, name, prices, max_per_order, channels, access_code)
    with remote.client() as client:
        created = client.call(
            client.offers.CreateTicketType,
            offers_pb2.PutTicketTypeRequest(event_id=event_id, ticket_type=message),
        )
    _print_types([created], False)


@ticket_type.command("update")
@click.argument("event_id")
@click.argument("type_id")
@_ticket_type_options
@remote()
def ticket_type_update(
    event_id: str, type_id: str, name: str, prices: tuple[str, ...], max_per_order: int,
    channels: tuple[str, ...], access_code: str, remote: Remote,
) -> None:  # fmt: skip
    """Replace ticket type TYPE_ID of EVENT_ID with this definition (enabled again)."""
    from seatwise.v1 import offers_pb2

    message = _ticket_type_message(type_id, name, prices, max_per_order, channels, access_code)
    with remote.client() as client:
        updated = client.call(
            client.offers.UpdateTicketType,
            offers_pb2.PutTicketTypeRequest(event_id=event_id, ticket_type=message),
        )
    _print_types([updated], False)


@ticket_type.command("disable")
@click.argument("event_id")
@click.argument("type_id")
@remote()
def ticket_type_disable(event_id: str, type_id: str, remote: Remote) -> None:
    """Stop selling ticket type TYPE_ID (tickets sold as it stay valid)."""
    from seatwise.v1 import offers_pb2

    with remote.client() as client:
        disabled = client.call(
            client.offers.DisableTicketType,
            offers_pb2.DisableTicketTypeRequest(event_id=event_id, type_id=type_id),
        )
    _print_types([disabled], False)


@ticket_type.command("list")
@click.argument("event_id")
@click.option("--offered", is_flag=True, help="Only what a storefront may offer (a seller's view).")
@click.option("--access-code", default="", help="With --offered: also the types this code unlocks.")
@click.option("--channel", type=click.Choice(_CHANNELS), default="storefront", show_default=True,
              help="With --offered: the channel selling.")  # fmt: skip
@json_option
@remote()
def ticket_type_list(
    event_id: str, offered: bool, access_code: str, channel: str, as_json: bool, remote: Remote
) -> None:
    """The event's ticket types."""
    from seatwise.v1 import offers_pb2, sales_pb2

    with remote.client() as client:
        if offered:
            request = offers_pb2.ListOfferedTicketTypesRequest(
                event_id=event_id, access_code=access_code,
                channel=sales_pb2.SALES_CHANNEL_BOX_OFFICE if channel == "box_office"
                else sales_pb2.SALES_CHANNEL_STOREFRONT,
            )  # fmt: skip
            listed = client.call(client.offers.ListOfferedTicketTypes, request)
        else:
            listed = client.call(
                client.offers.ListTicketTypes, offers_pb2.ListTicketTypesRequest(event_id=event_id)
            )
    _print_types(listed.ticket_types, as_json)


@main.group()
def promo() -> None:
    """Promo codes: percent or amount off each ticket, per event or organizer-wide (--event "")."""


def _promo_message(
    code: str, percent: str, amount: int, valid_from: str, valid_until: str, min_quantity: int,
    max_uses: int, max_uses_per_buyer: int,
) -> Any:  # fmt: skip
    from google.protobuf.timestamp_pb2 import Timestamp
    from seatwise.v1 import offers_pb2

    if bool(percent) == bool(amount):
        raise click.UsageError("give --percent or --amount (one of them)")
    message = offers_pb2.PromoCode(
        code=code, min_quantity=min_quantity, max_uses=max_uses, max_uses_per_buyer=max_uses_per_buyer
    )
    if percent:
        whole, _, frac = percent.partition(".")
        if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
            raise click.BadParameter(
                f"{percent!r}: a percentage with at most two decimals", param_hint="--percent"
            )
        message.kind = offers_pb2.PROMO_KIND_PERCENT
        message.percent_bps = int(whole) * 100 + int((frac + "00")[:2])
    else:
        message.kind = offers_pb2.PROMO_KIND_AMOUNT
        message.amount_minor = amount
    for field, value in (("valid_from", valid_from), ("valid_until", valid_until)):
        if value:
            stamp = Timestamp()
            try:
                stamp.FromJsonString(value)
            except ValueError as exc:
                raise click.BadParameter(f"{value!r}: an RFC 3339 time (2026-06-01T18:00:00Z)",
                                         param_hint=f"--{field.replace('_', '-')}") from exc  # fmt: skip
            getattr(message, field).CopyFrom(stamp)
    return message


def _promo_options(command: F) -> F:
    options = [
        click.option("--event", "event_id", default="",
                     help="The event (default: every event of the organizer)."),
        click.option("--percent", default="", help="Percent off each ticket (12.5), rounded half to even."),
        click.option("--amount", type=click.IntRange(0), default=0, help="Minor units off each ticket."),
        click.option("--valid-from", default="", help="RFC 3339 time (default: now)."),
        click.option("--valid-until", default="", help="RFC 3339 time (default: no end)."),
        click.option("--min-quantity", type=click.IntRange(0), default=0, help="Places the order must have."),
        click.option("--max-uses", type=click.IntRange(0), default=0, help="Orders in total (0: unlimited)."),
        click.option("--max-uses-per-buyer", type=click.IntRange(0), default=0,
                     help="Orders per buyer id (0: unlimited)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _print_promos(promos: Any, as_json: bool) -> None:
    from seatwise.v1 import offers_pb2

    if as_json:
        emit_json(offers_pb2.ListPromoCodesResponse(promo_codes=promos))
        return
    rows = [
        (
            p.code,
            f"{p.percent_bps / 100:g}%" if p.kind == offers_pb2.PROMO_KIND_PERCENT
            else f"{p.amount_minor} minor",
            _when(p.valid_from), _when(p.valid_until), p.min_quantity or "-",
            f"{p.uses}/{p.max_uses or '∞'}", p.max_uses_per_buyer or "-",
            "organizer" if p.organizer_wide else "event", "disabled" if p.disabled else "",
        )
        for p in promos
    ]  # fmt: skip
    table(("CODE", "OFF EACH TICKET", "FROM", "UNTIL", "MIN QTY", "USES", "PER BUYER", "SCOPE", ""), rows)


@promo.command("create")
@click.argument("code")
@_promo_options
@remote()
def promo_create(code: str, event_id: str, remote: Remote, **fields: Any) -> None:
    """Create promo code CODE."""
    from seatwise.v1 import offers_pb2

    message = _promo_message(code, **fields)
    with remote.client() as client:
        created = client.call(
            client.offers.CreatePromoCode,
            offers_pb2.PutPromoCodeRequest(event_id=event_id, promo_code=message),
        )
    _print_promos([created], False)


@promo.command("update")
@click.argument("code")
@_promo_options
@remote()
def promo_update(code: str, event_id: str, remote: Remote, **fields: Any) -> None:
    """Replace promo code CODE with this definition (enabled again; its uses are kept)."""
    from seatwise.v1 import offers_pb2

    message = _promo_message(code, **fields)
    with remote.client() as client:
        updated = client.call(
            client.offers.UpdatePromoCode,
            offers_pb2.PutPromoCodeRequest(event_id=event_id, promo_code=message),
        )
    _print_promos([updated], False)


@promo.command("disable")
@click.argument("code")
@click.option("--event", "event_id", default="", help="The event (default: the organizer-wide code).")
@remote()
def promo_disable(code: str, event_id: str, remote: Remote) -> None:
    """Stop accepting promo code CODE."""
    from seatwise.v1 import offers_pb2

    with remote.client() as client:
        disabled = client.call(
            client.offers.DisablePromoCode, offers_pb2.DisablePromoCodeRequest(event_id=event_id, code=code)
        )
    _print_promos([disabled], False)


@promo.command("list")
@click.option("--event", "event_id", default="", help="The event (default: the organizer-wide codes).")
@json_option
@remote()
def promo_list(event_id: str, as_json: bool, remote: Remote) -> None:
    """Promo codes with their uses."""
    from seatwise.v1 import offers_pb2

    with remote.client() as client:
        listed = client.call(
            client.offers.ListPromoCodes, offers_pb2.ListPromoCodesRequest(event_id=event_id)
        )
    _print_promos(listed.promo_codes, as_json)


@main.group()
def channel() -> None:
    """An event's channels: seats and GA places set aside for presale, partners, the box office."""


def _print_channels(channels: Any, as_json: bool) -> None:
    from seatwise.v1 import channels_pb2

    if as_json:
        emit_json(channels_pb2.ListChannelsResponse(channels=channels))
        return
    rows = [
        (c.channel_id, c.name, _enum_name(channels_pb2.ChannelKind, c.kind, "CHANNEL_KIND_"),
         "closed" if c.closed else "open")
        for c in channels
    ]  # fmt: skip
    table(("CHANNEL", "NAME", "KIND", "STATUS"), rows)


@channel.command("create")
@click.argument("event_id")
@click.argument("channel_id")
@click.option("--name", required=True, help="Presale, Partner X, Sponsors, ...")
@click.option("--box-office", is_flag=True, help="The box office's sales take its seats (no access code).")
@click.option("--access-code", default="", help="What a storefront names to take its seats (required "
              "unless --box-office).")  # fmt: skip
@remote()
def channel_create(
    event_id: str, channel_id: str, name: str, box_office: bool, access_code: str, remote: Remote
) -> None:
    """Define channel CHANNEL_ID of EVENT_ID."""
    from seatwise.v1 import channels_pb2

    kind = channels_pb2.CHANNEL_KIND_BOX_OFFICE if box_office else channels_pb2.CHANNEL_KIND_STOREFRONT
    message = channels_pb2.Channel(channel_id=channel_id, name=name, kind=kind, access_code=access_code)
    with remote.client() as client:
        created = client.call(
            client.channels.DefineChannel,
            channels_pb2.DefineChannelRequest(event_id=event_id, channel=message),
        )
    _print_channels([created], False)


@channel.command("allocate")
@click.argument("event_id")
@click.argument("channel_id")
@click.argument("seat_ids", nargs=-1)
@click.option("--ga", "ga", multiple=True, help="AREA=PLACES to reserve for the channel (repeat).")
@click.option("--section", "sections", multiple=True, help="Every seat of this section (repeat).")
@click.option("--row", "rows", multiple=True, help="Every seat of this row, SECTION/ROW (repeat).")
@remote()
def channel_allocate(
    event_id: str,
    channel_id: str,
    seat_ids: tuple[str, ...],
    ga: tuple[str, ...],
    sections: tuple[str, ...],
    rows: tuple[str, ...],
    remote: Remote,
) -> None:
    """Allocate SEAT_IDS (whole --section and --row too, and --ga places) of EVENT_ID to
    CHANNEL_ID, all or nothing."""
    from seatwise.v1 import channels_pb2

    places: dict[str, int] = {}
    for item in ga:
        area, _, qty = item.partition("=")
        if not area or not qty.isdigit():
            raise click.BadParameter(f"{item!r}: AREA=PLACES", param_hint="--ga")
        places[area] = int(qty)
    request = channels_pb2.AllocateToChannelRequest(
        event_id=event_id,
        channel_id=channel_id,
        seat_ids=list(seat_ids),
        general_admission=places,
        section_ids=list(sections),
        rows=list(rows),
    )
    with remote.client() as client:
        done = client.call(client.channels.AllocateToChannel, request)
    click.echo(
        f"{done.seats_allocated} seat(s), {done.places_reserved} place(s) allocated"
        f" (sequence {done.sequence})"
    )


@channel.command("close")
@click.argument("event_id")
@click.argument("channel_id")
@remote()
def channel_close(event_id: str, channel_id: str, remote: Remote) -> None:
    """Close CHANNEL_ID: its unsold seats and places return to the general pool at once."""
    from seatwise.v1 import channels_pb2

    with remote.client() as client:
        closed = client.call(
            client.channels.CloseChannel,
            channels_pb2.CloseChannelRequest(event_id=event_id, channel_id=channel_id),
        )
    if closed.already_closed:
        click.echo(f"channel {channel_id} was already closed")
    else:
        click.echo(
            f"{closed.seats_returned} seat(s), {closed.places_returned} place(s) back in the general pool"
        )


@channel.command("list")
@click.argument("event_id")
@json_option
@remote()
def channel_list(event_id: str, as_json: bool, remote: Remote) -> None:
    """The event's channels."""
    from seatwise.v1 import channels_pb2

    with remote.client() as client:
        listed = client.call(
            client.channels.ListChannels, channels_pb2.ListChannelsRequest(event_id=event_id)
        )
    _print_channels(listed.channels, as_json)


if __name__ == "__main__":
    main()
