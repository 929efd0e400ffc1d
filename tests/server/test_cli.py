"""The ``seatwise`` command: never a traceback, one-line errors naming the file, and the
organizer's and support person's commands against a real server."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from seatmap.generate import theatre
from seatmap.model import json_encoder
from server.cli import main, summary
from server.cli_output import table
from tests.conftest import ADMIN_KEY
from tests.processes import free_port
from tests.server.maps import small_map

PRETIX = Path(__file__).parents[1] / "seatmap" / "data" / "pretix_small.json"

BAD_FILES: dict[str, bytes] = {
    "notjson.json": b"not json\n",
    "empty.json": b"",
    "blank.json": b"  \n",
    "incomplete.json": b'{"name": "x", "categories": [',
    "array.json": b"[1, 2]",
    "schema.json": b'{"name": "x", "categories": [{"key": "a b", "label": "A"}], "sections": []}',
    "nosections.json": b'{"name": "x", "categories": [{"key": "a", "label": "A"}]}',
    "pretix.json": PRETIX.read_bytes(),  # fine for import-pretix, wrong as a native map
    "native.json": json_encoder.encode(theatre()),  # fine as a native map, wrong for import-pretix
}
DEAD = f"127.0.0.1:{free_port()}"  # nothing listens there

# Every command that reads a file, as it is called; "{file}" is replaced.
EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plan.json"
FILE_COMMANDS: list[list[str]] = [
    ["seatmap", "validate", "{file}"],
    ["seatmap", "validate", "--format", "pretix", "{file}"],
    ["seatmap", "import-pretix", "{file}", "-o", "{out}.json"],
    ["seatmap", "render", "{file}", "-o", "{out}.svg"],
    ["seatmap", "render", "{file}", "-o", "{out}.png", "--width", "200"],
    ["seatmap", "render", "{file}", "-o", "{out}.pdf"],
    ["seatmap", "upload", "{file}", "--api-key", "k", "--target", DEAD],
]
# Every command that calls the server, with a key but no server to answer.
REMOTE_COMMANDS: list[list[str]] = [
    ["seatmap", "list"],
    ["seatmap", "publish", "sm"],
    ["seatmap", "nearest", "sm", "--x", "1", "--y", "2"],
    ["tenant", "create", "Demo"],
    ["event", "create", "sm", "--name", "x"],
    ["event", "create", "--season", "ss1", "--name", "x"],
    ["season", "create", "sm", "--name", "x"],
    ["season", "create", "sm", "--name", "x", "--bundle-price", "a=1"],
    ["season", "set-prices", "ss1", "--bundle-price", "a=1"],
    ["season", "list"],
    ["season", "get", "ss1"],
    ["season", "hold", "ss1", "s1"],
    ["season", "commit", "tok", "--idempotency-key", "k"],
    ["season", "commit", "tok", "--idempotency-key", "k", "--type", "s1=child", "--promo-code", "P"],
    ["season", "release", "tok"],
    ["event", "list"],
    ["event", "get", "ev"],
    ["event", "availability", "ev"],
    ["event", "distancing", "ev", "--seats-in-row", "1"],
    ["event", "block", "ev", "s1"],
    ["event", "unblock", "ev", "s1"],
    ["event", "move", "ev", "2", "--map", "a=b", "--dry-run"],
    ["hold", "ev", "s1"],
    ["hold-info", "tok"],
    ["release", "tok"],
    ["commit", "tok", "--idempotency-key", "k"],
    ["order", "get", "ev", "o1"],
    ["order", "list", "ev"],
    ["order", "cancel", "ev", "o1"],
    ["feed", "tail", "--max", "1"],
    ["ticket", "token", "o1", "t1", "--event", "ev"],
    ["door", "scan", "tok", "--event", "ev", "--gate", "A"],
    # after the sale (issue 14)
    ["order", "transfer", "ev", "o1", "t1", "--name", "Bob"],
    ["order", "exchange", "ev", "o1", "--ticket", "t1", "--seat", "s2"],
    ["resale", "rules", "ev", "--floor", "1"],
    ["resale", "list", "ev", "o1", "t1", "--price", "1", "--seller", "s"],
    ["resale", "withdraw", "ev", "o1", "t1"],
    ["resale", "listings", "ev"],
    ["resale", "hold", "ev", "t1", "l1"],
    ["resale", "buy", "tok", "--resale-key", "k", "--name", "Bob"],
    ["resale", "sales", "ev"],
    # platforms and organizers (issue 13)
    ["platform", "create", "P"],
    ["platform", "list"],
    ["platform", "set", "p1", "--terms-version", "v2"],
    ["platform", "key", "p1"],
    ["organizer", "signup", "O", "--slug", "org", "--country", "DE"],
    ["organizer", "list"],
    ["organizer", "get", "t1"],
    ["organizer", "suspend", "t1", "--reason", "r"],
    ["organizer", "reinstate", "t1"],
    ["organizer", "audit"],
    ["platform", "branding", "--display-name", "P"],
    ["platform", "hub"],
    ["organizer", "branding", "t1"],
    ["organizer", "export", "-o", "organizers.csv"],
    ["organizer", "notifications"],
    ["organizer", "plan", "t1", "gold"],
    ["organizer", "paid", "t1", "2026-01"],
    ["organizer", "statement", "t1", "--from", "2026-01-01", "--until", "2026-02-01"],
    ["platform", "plan", "create", "docs/examples/plan.json"],
    ["platform", "plan", "list"],
    # exports and reports (issue 16)
    ["export", "orders", "ev", "-o", "export.csv"],
    ["report", "show", "ev"],
    ["report", "chart", "ev", "-o", "chart.png"],
    ["report", "heatmap", "ev", "-o", "heat.png"],
    # ticket types and promo codes (issue 14)
    ["ticket-type", "create", "ev", "child", "--name", "Child", "--price", "std=500"],
    ["ticket-type", "update", "ev", "child", "--name", "Child", "--price", "std=500"],
    ["ticket-type", "disable", "ev", "child"],
    ["ticket-type", "list", "ev"],
    ["promo", "create", "TEN", "--percent", "10"],
    ["promo", "update", "TEN", "--percent", "10"],
    ["promo", "disable", "TEN"],
    ["promo", "list"],
    # channels and allocations (issue 14)
    ["channel", "create", "ev", "pre", "--name", "Presale", "--access-code", "EARLY"],
    ["channel", "allocate", "ev", "pre", "s1"],
    ["channel", "close", "ev", "pre"],
    ["channel", "list", "ev"],
]


def _names(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    names: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names |= _names(command, (*prefix, name))
        else:
            names.add((*prefix, name))
    return names


def test_every_command_is_exercised_here() -> None:
    names = _names(main)
    # each listed command line names its command by its longest prefix that is one
    covered = {
        next(tuple(c[:k]) for k in range(len(c), 0, -1) if tuple(c[:k]) in names)
        for c in FILE_COMMANDS + REMOTE_COMMANDS
    }
    covered |= {("seatmap", "generate"), ("serve",)}  # generate takes no input; serve is the server
    assert names == covered


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    clean = {
        "SEATWISE_API_KEY": None,
        "SEATWISE_TENANT": None,
        "SEATWISE_TARGET": None,
        "SEATWISE_DEBUG": None,
    }
    return CliRunner().invoke(main, list(args), env={**clean, **(env or {})})  # type: ignore[dict-item]


def assert_one_line_error(result: Result, *mentions: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for mention in mentions:
        assert mention in errors[0], errors[0]
    return errors[0]


class Cli:
    """The CLI as one organizer against a running server: never a traceback, and
    the exit status asked for (``ok=None``: left to the caller)."""

    def __init__(self, server: str, tenant: str) -> None:
        self.env = {"SEATWISE_TARGET": server, "SEATWISE_API_KEY": ADMIN_KEY, "SEATWISE_TENANT": tenant}

    async def __call__(self, *args: str, ok: bool | None = True) -> Result:
        result = await asyncio.to_thread(run, *args, env=self.env)
        assert "Traceback" not in result.output
        if ok is not None:
            assert (result.exit_code == 0) == ok, result.output
        return result


async def theatre_on_sale(
    server: str, tmp_path: Path, tenant: str, name: str, prices: dict[str, int]
) -> tuple[Cli, str, str]:
    """A new organizer ``tenant`` with the theatre uploaded and an event ``name`` on
    sale at ``prices`` (by category): its CLI, the seat map's id and the event's."""
    cli = Cli(server, tenant)
    await asyncio.to_thread(
        run, "tenant", "create", f"{name} Hall", "--id", tenant, env=cli.env | {"SEATWISE_TENANT": ""}
    )
    theatre_file = tmp_path / "theatre.json"
    theatre_file.write_bytes(BAD_FILES["native.json"])
    seat_map_id = (await cli("seatmap", "upload", str(theatre_file), "--publish")).stdout.split()[0]
    price_args = [arg for category, price in prices.items() for arg in ("--price", f"{category}={price}")]
    event_id = (
        await cli("event", "create", seat_map_id, "--name", name, "--on-sale", *price_args)
    ).stdout.strip()
    return cli, seat_map_id, event_id


def theatre_prices(*amounts: int) -> dict[str, int]:
    """The theatre's four categories, priced in this order (one amount: all alike)."""
    categories = ("premium", "standard", "economy", "restricted")
    return dict(zip(categories, amounts * len(categories) if len(amounts) == 1 else amounts, strict=True))


@pytest.mark.parametrize("command", FILE_COMMANDS, ids=lambda c: " ".join(c[:3]))
def test_bad_files_give_one_line_naming_the_file(tmp_path: Path, command: list[str]) -> None:
    for name, content in BAD_FILES.items():
        path = tmp_path / name
        path.write_bytes(content)
        args = [a.replace("{file}", str(path)).replace("{out}", str(tmp_path / "out" / "x")) for a in command]
        result = run(*args)
        reads_pretix = "import-pretix" in command or "pretix" in command
        acceptable = name == ("pretix.json" if reads_pretix else "native.json")
        if acceptable:
            continue  # a good file for this command (upload then fails on the dead server, tested below)
        if "validate" in command and result.stdout:  # a decodable map: its violations, one per line
            assert result.exit_code == 1
            assert all(line.startswith(f"{path}: ") for line in result.stdout.splitlines())
            continue
        error = assert_one_line_error(result, str(path))
        assert ": : " not in error  # never an empty position
        if name in ("empty.json", "blank.json"):
            assert error == f"Error: {path}: the file is empty"


def test_errors_say_where_and_what(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notjson.json").write_bytes(b'{\n  "name": nope\n}')
    Path("incomplete.json").write_bytes(BAD_FILES["incomplete.json"])
    Path("pretix.json").write_bytes(BAD_FILES["pretix.json"])
    Path("native.json").write_bytes(BAD_FILES["native.json"])
    error = assert_one_line_error(run("seatmap", "validate", "notjson.json"))
    assert error.startswith("Error: notjson.json:2:15: JSON is malformed")
    error = assert_one_line_error(run("seatmap", "render", "incomplete.json", "-o", "x.png"))
    assert error == "Error: incomplete.json:1:30: the JSON ends early: is the file complete?"
    error = assert_one_line_error(run("seatmap", "validate", "pretix.json"))
    assert "looks like a pretix plan" in error
    error = assert_one_line_error(run("seatmap", "import-pretix", "native.json", "-o", "x.json"))
    assert "looks like a seatwise seat map already" in error
    assert_one_line_error(run("seatmap", "validate", "missing.json"), "missing.json: cannot read")


def test_progress_and_errors_never_share_a_line(tmp_path: Path) -> None:
    path = tmp_path / "notjson.json"
    path.write_bytes(b"not json")
    result = run("seatmap", "validate", str(path))
    assert result.stderr.splitlines() == [f"Error: {path}:1:5: JSON is malformed: invalid character"]
    path.write_bytes(BAD_FILES["nosections.json"])
    result = run("seatmap", "validate", str(path))
    assert result.exit_code == 1
    assert (
        result.stdout == f"{path}: empty_map: seat map 'x' has no sections and no general-admission areas\n"
    )
    assert all(
        line.endswith(tuple("0123456789s")) for line in result.stderr.splitlines()
    )  # "...: done in 0.00s"


@pytest.mark.parametrize("command", REMOTE_COMMANDS, ids=" ".join)
def test_without_a_server_or_a_key_there_is_a_hint_not_a_traceback(command: list[str]) -> None:
    error = assert_one_line_error(run(*command), "no API key", "SEATWISE_API_KEY")
    assert "--api-key" in error
    result = run(*command, "--api-key", "k", "--target", DEAD)
    assert_one_line_error(result, "UNAVAILABLE")
    assert "start one with 'make serve'" in result.stderr


def test_validate_counts_table_seats_and_ga_places(tmp_path: Path) -> None:
    path = tmp_path / "theatre.json"
    path.write_bytes(BAD_FILES["native.json"])
    result = run("seatmap", "validate", str(path))
    assert result.exit_code == 0
    assert (
        "valid: 'Synthetic Theatre': 14 sections, 1,297 seats (1,265 in rows, 32 at 8 tables)"
        in result.stderr
    )
    from seatmap.generate import arena

    assert summary(arena()).endswith("3,200 general-admission places in 1 areas")


def test_import_pretix_takes_the_stage_or_warns(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "imported.json"
    result = run("seatmap", "import-pretix", str(PRETIX), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "focal point (500, 60) from the stage 'Bühne'" in result.stderr
    assert json.loads(out.read_bytes())["focal_point"] == [500.0, 60.0]
    plan = json.loads(PRETIX.read_bytes())
    plan["zones"] = [z for z in plan["zones"] if z["rows"]]  # no stage drawn
    stageless = tmp_path / "stageless.json"
    stageless.write_text(json.dumps(plan))
    result = run("seatmap", "import-pretix", str(stageless), "-o", str(out))
    assert result.exit_code == 0
    assert "warning: no stage recognised" in result.stderr
    assert "--stage-area NAME or set --focal-point X,Y" in result.stderr
    result = run("seatmap", "import-pretix", str(stageless), "-o", str(out), "--focal-point", "10,20")
    assert "focal point (10, 20) from --focal-point" in result.stderr
    result = run("seatmap", "import-pretix", str(PRETIX), "-o", str(out), "--stage-area", "Orchestra")
    assert_one_line_error(result, "no drawn area is named 'Orchestra'", "'Bühne'")
    result = run("seatmap", "import-pretix", str(PRETIX), "-o", str(out), "--focal-point", "x")
    assert result.exit_code == 2
    assert "expected X,Y" in result.stderr


def test_render_picks_the_format_from_the_extension(tmp_path: Path) -> None:
    for suffix, magic in ((".svg", b"<svg"), (".png", b"\x89PNG"), (".pdf", b"%PDF")):
        out = tmp_path / f"pretix{suffix}"
        result = run("seatmap", "render", str(PRETIX), "--format", "pretix", "-o", str(out), "--width", "300")
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(magic)
    result = run("seatmap", "render", str(PRETIX), "--format", "pretix", "-o", str(tmp_path / "x.jpg"))
    assert result.exit_code == 2
    assert "use .svg, .png or .pdf" in result.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_tables_are_aligned_whatever_the_cell_widths(capsys: pytest.CaptureFixture[str]) -> None:
    table(("CATEGORY", "FREE", "SOLD"), [("a-very-long-category-key-indeed", 1200, 3), ("vip", 5, 10_000)])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "CATEGORY                          FREE    SOLD",
        "a-very-long-category-key-indeed  1,200       3",
        "vip                                  5  10,000",
    ]


# --- against a server --------------------------------------------------------------------------


async def test_the_organizer_and_support_commands(server: str, tmp_path: Path) -> None:
    base = {"SEATWISE_TARGET": server, "SEATWISE_API_KEY": ADMIN_KEY}

    async def cli(*args: str, tenant: str | None = "demo", ok: bool = True) -> Result:
        env = base | ({"SEATWISE_TENANT": tenant} if tenant else {})
        result = await asyncio.to_thread(run, *args, env=env)
        assert "Traceback" not in result.output
        if ok:
            assert result.exit_code == 0, result.output
        return result

    organizer_key = (await cli("tenant", "create", "Demo Hall", "--id", "demo", tenant=None)).stdout.strip()
    theatre_file = tmp_path / "theatre.json"
    theatre_file.write_bytes(BAD_FILES["native.json"])
    # The platform-admin key acts on the tenant named by SEATWISE_TENANT (or --tenant).
    uploaded = await cli("seatmap", "upload", str(theatre_file))
    seat_map_id = uploaded.stdout.split()[0]
    assert uploaded.stdout.endswith("version 1 (draft)\n")
    listed = await cli("seatmap", "list")
    assert re.search(rf"^{seat_map_id}\s+1\s+draft\s+1,297\s+0\s+Synthetic Theatre$", listed.stdout, re.M)
    assert (await cli("seatmap", "publish", seat_map_id)).stdout == f"{seat_map_id} version 1 (published)\n"
    as_json = json.loads((await cli("seatmap", "list", "--json")).stdout)
    assert as_json["seat_maps"][0]["state"] == "SEAT_MAP_STATE_PUBLISHED"

    prices = ["--price", "premium=8900", "--price", "standard=5900", "--price", "economy=3900"]
    created = await cli(
        "event", "create", seat_map_id, "--name", "Opening", "--on-sale", *prices, "--price", "restricted=100"
    )
    event_id = created.stdout.strip()
    assert event_id in (await cli("event", "list")).stdout
    assert (
        json.loads((await cli("event", "get", event_id, "--json")).stdout)["status"] == "EVENT_STATUS_ON_SALE"
    )
    assert "premium" in (await cli("event", "get", event_id)).stdout
    # minimum-distance seating: set, shown, refused with the field named, removed
    rule = await cli("event", "distancing", event_id, "--metres", "1.5")
    assert rule.stdout == f"{event_id}: 1.5 m free around every group (100 layout units per metre)\n"
    assert_one_line_error(
        await cli("event", "distancing", event_id, "--seats-in-row", "99", ok=False),
        "distancing.seats_in_row",
    )
    neither = await cli("event", "distancing", event_id, ok=False)
    assert (neither.exit_code, "give --seats-in-row or --metres" in neither.stderr) == (2, True)
    removed = await cli("event", "distancing", event_id, "--none")
    assert removed.stdout == f"{event_id}: no minimum distance\n"

    # A season over the same map: two events, the same seat held in both and committed
    season_id = (await cli("season", "create", seat_map_id, "--name", "Series")).stdout.strip()
    for night in ("Night 1", "Night 2"):
        await cli("event", "create", "--season", season_id, "--name", night, "--on-sale", *prices)
    bundle = [
        "--bundle-price",
        "premium=15000",
        "--bundle-price",
        "standard=10000",
        "--bundle-price",
        "economy=7000",
    ]
    set_ = await cli("season", "set-prices", season_id, *bundle)
    assert set_.stdout == "bundle: economy=7000 premium=15000 standard=10000\n"
    assert_one_line_error(
        await cli("season", "set-prices", season_id, "--bundle-price", "balcony=1", ok=False),
        "bundle_prices[balcony]",
    )
    assert (
        len((await cli("season", "get", season_id)).stdout.strip().splitlines()) == 5
    )  # header, row, bundle, 2 events
    assert season_id in (await cli("season", "list")).stdout
    season_token = (await cli("season", "hold", season_id, "SR-A-3")).stdout.strip()
    sold = await cli("season", "commit", season_token, "--idempotency-key", "season-1", "--name", "Ada")
    assert sold.stdout.startswith("season order ")
    assert " at the bundle price: " in sold.stdout.splitlines()[0]
    assert sold.stdout.count("\nevent ") == 2
    refused = await cli("season", "hold", season_id, "SR-A-3", ok=False)
    assert_one_line_error(refused, "FAILED_PRECONDITION")
    first = await cli("season", "hold", season_id, "SR-A-5", "--request-id", "season-r1")
    again = await cli("season", "hold", season_id, "SR-A-5", "--request-id", "season-r1")
    assert (again.stdout, "(replayed)" in again.stderr) == (first.stdout, True)
    bad_ga = await cli("season", "hold", season_id, "--ga", "floor", ok=False)
    assert (bad_ga.exit_code, "expected AREA=PLACES" in bad_ga.stderr) == (2, True)

    # Without naming the tenant, the admin key is told how to.
    refused = await cli("hold", event_id, "--best", "2", tenant=None, ok=False)
    assert_one_line_error(refused, "PERMISSION_DENIED")
    assert "--tenant / SEATWISE_TENANT" in refused.stderr
    token = (
        await cli("hold", event_id, "--best", "2", "--category", "premium", "--tenant", "demo")
    ).stdout.strip()
    held = json.loads((await cli("hold-info", token, "--json")).stdout)
    assert len(held["seat_ids"]) == 2
    assert "released" in (await cli("release", token)).stdout
    assert_one_line_error(await cli("hold-info", token, ok=False), "the hold was released")

    blocked = await cli("event", "block", event_id, "SC-A-1", "SC-A-2")
    assert blocked.stdout.startswith("2 of 2 seat(s) changed")
    availability = (await cli("event", "availability", event_id)).stdout
    assert re.search(r"^premium\s+\S+\s+0\s+0\s+2$", availability, re.M)
    assert (await cli("event", "unblock", event_id, "SC-A-1", "SC-A-2")).stdout.startswith("2 of 2")

    # An organizer key needs no tenant.
    organizer = {"SEATWISE_API_KEY": organizer_key}
    token = (await asyncio.to_thread(run, "hold", event_id, "SC-A-3", env=base | organizer)).stdout.strip()
    committed = await asyncio.to_thread(run, "commit", token, "--idempotency-key", "k1", env=base | organizer)
    order_id = committed.stdout.split()[1].rstrip(":")
    assert f"{order_id}" in (await cli("order", "list", event_id)).stdout
    order = json.loads((await cli("order", "get", event_id, order_id, "--json")).stdout)
    assert order["tickets"][0]["seat_id"] == "SC-A-3"
    cancelled = await cli("order", "cancel", event_id, order_id, "--reason", "refund")
    assert "(cancelled)" in cancelled.stdout.splitlines()[0]
    counts = json.loads((await cli("event", "availability", event_id, "--json")).stdout)
    premium = next(c for c in counts["by_category"] if c["key"] == "premium")
    assert "sold" not in premium  # back on sale: proto3 JSON leaves zero counts out


async def test_ticket_token_and_door_scan(server: str, tmp_path: Path) -> None:
    cli, _, event_id = await theatre_on_sale(server, tmp_path, "door", "Doors", theatre_prices(100))
    token = (await cli("hold", event_id, "SC-A-3")).stdout.strip()
    order_id = (await cli("commit", token, "--idempotency-key", "k1")).stdout.split()[1].rstrip(":")
    ticket_id = json.loads((await cli("order", "get", event_id, order_id, "--json")).stdout)["tickets"][0][
        "ticket_id"
    ]
    png = tmp_path / "ticket.png"
    issued = await cli("ticket", "token", order_id, ticket_id, "--event", event_id, "--png", str(png))
    assert png.read_bytes().startswith(b"\x89PNG")
    ticket_token = issued.stdout.strip()
    admitted = await cli("door", "scan", ticket_token, "--event", event_id, "--gate", "North")
    assert admitted.stdout.split()[:2] == ["ADMITTED", "SC-A-3"]
    again = await cli("door", "scan", ticket_token, "--event", event_id, "--gate", "South", ok=None)
    assert again.exit_code == 1
    assert again.stdout.startswith("ALREADY_USED")
    assert "at gate North (cli)" in again.stdout


async def test_ticket_types_and_promo_codes(server: str, tmp_path: Path) -> None:
    cli, _, event_id = await theatre_on_sale(server, tmp_path, "typed", "Typed", theatre_prices(1000))
    await cli("ticket-type", "create", event_id, "child", "--name", "Child", "--price", "premium=400",
              "--max-per-order", "2")  # fmt: skip
    await cli("ticket-type", "create", event_id, "fans", "--name", "Presale", "--price", "premium=700",
              "--access-code", "EARLY", "--channel", "storefront")  # fmt: skip
    offered = await cli("ticket-type", "list", event_id, "--offered", "--json")
    assert [t["type_id"] for t in json.loads(offered.stdout)["ticket_types"]] == ["child"]
    offered = await cli("ticket-type", "list", event_id, "--offered", "--access-code", "EARLY")
    assert "fans" in offered.stdout
    bad = await cli("ticket-type", "create", event_id, "x", "--name", "X", "--price", "balcony=1", ok=False)
    assert_one_line_error(bad, "INVALID_ARGUMENT")
    assert "ticket_type.prices[balcony]" in bad.stderr
    await cli("promo", "create", "TEN", "--percent", "10", "--max-uses", "5")  # organizer-wide
    await cli("promo", "create", "EVT", "--event", event_id, "--amount", "50", "--min-quantity", "3")
    token = (await cli("hold", event_id, "SC-A-3")).stdout.strip()
    refused = await cli("commit", token, "--idempotency-key", "k1", "--promo-code", "EVT", ok=False)
    assert_one_line_error(refused, "FAILED_PRECONDITION", "promo_code 'EVT' needs at least 3")
    committed = await cli("commit", token, "--idempotency-key", "k1", "--promo-code", "TEN",
                          "--type", "SC-A-3=child")  # fmt: skip
    assert "promo code TEN: 40 minor units off" in committed.stdout
    assert "child" in committed.stdout
    listed = json.loads((await cli("promo", "list", "--json")).stdout)["promo_codes"]
    assert [(p["code"], p["uses"], p["organizer_wide"]) for p in listed] == [("TEN", "1", True)]
    await cli("promo", "disable", "TEN")
    await cli("promo", "update", "EVT", "--event", event_id, "--amount", "60")
    await cli("ticket-type", "update", event_id, "child", "--name", "Kid", "--price", "premium=300")
    await cli("ticket-type", "disable", event_id, "fans")
    listed_types = await cli("ticket-type", "list", event_id)
    assert "Kid" in listed_types.stdout
    assert "disabled" in listed_types.stdout
    assert "disabled" in (await cli("promo", "list")).stdout


async def test_channel_commands(server: str, tmp_path: Path) -> None:
    cli, _, event_id = await theatre_on_sale(server, tmp_path, "chan", "Channels", theatre_prices(1000))
    await cli("channel", "create", event_id, "pre", "--name", "Presale", "--access-code", "EARLY")
    await cli("channel", "create", event_id, "door", "--name", "Door", "--box-office")
    allocated = await cli("channel", "allocate", event_id, "pre", "SC-A-3", "SC-A-4")
    assert allocated.stdout.startswith("2 seat(s), 0 place(s) allocated")
    refused = await cli("hold", event_id, "SC-A-3", ok=False)
    assert_one_line_error(refused, "FAILED_PRECONDITION")
    token = await cli("hold", event_id, "SC-A-3", "--channel", "pre", "--access-code", "EARLY")
    assert token.stdout.strip()
    listed = json.loads((await cli("channel", "list", event_id, "--json")).stdout)["channels"]
    assert [c["channel_id"] for c in listed] == ["door", "pre"]
    closed = await cli("channel", "close", event_id, "pre")
    assert closed.stdout.startswith("2 seat(s), 0 place(s) back in the general pool")
    assert "closed" in (await cli("channel", "list", event_id)).stdout
    await cli("hold", event_id, "SC-A-4")  # general now
    whole = await cli("channel", "allocate", event_id, "door", "--row", "SC/SC-B", "--row", "SL/SL-A")
    assert whole.stdout.startswith("17 seat(s), 0 place(s) allocated")  # SC-B's 9 and SL-A's 8


async def test_after_sale_commands(server: str, tmp_path: Path) -> None:
    cli, _, event_id = await theatre_on_sale(
        server, tmp_path, "after", "After", theatre_prices(300, 200, 100, 100)
    )
    hold = (await cli("hold", event_id, "SC-A-3", "SC-A-4")).stdout.strip()
    order_id = (await cli("commit", hold, "--idempotency-key", "k1")).stdout.split()[1].rstrip(":")
    tickets = json.loads((await cli("order", "get", event_id, order_id, "--json")).stdout)["tickets"]
    first, second = tickets[0]["ticket_id"], tickets[1]["ticket_id"]
    old_token = (await cli("ticket", "token", order_id, first, "--event", event_id)).stdout.strip()

    moved = await cli("order", "transfer", event_id, order_id, first, "--name", "Bob")
    assert "Bob" in moved.stdout
    assert moved.stdout.splitlines()[-1].startswith("revision 1 token ")
    revoked = await cli("door", "scan", old_token, "--event", event_id, "--gate", "North", ok=None)
    assert revoked.stdout.split()[:2] == ["REVOKED", "transferred"]

    await cli("resale", "rules", event_id, "--floor", "50", "--cap", "500")
    listing_id = (
        await cli(
            "resale",
            "list",
            event_id,
            order_id,
            first,
            "--revision",
            "1",
            "--price",
            "250",
            "--seller",
            "bob",
        )
    ).stdout.strip()
    assert listing_id in (await cli("resale", "listings", event_id)).stdout
    held = (await cli("resale", "hold", event_id, first, listing_id, "--buyer", "cy")).stdout.strip()
    bought = await cli("resale", "buy", held, "--resale-key", "r1", "--name", "Cy")
    assert bought.stdout.startswith("resale ")
    assert ": 250 " in bought.stdout.splitlines()[0]
    assert "bob" in (await cli("resale", "sales", event_id)).stdout

    # the second ticket: listed, withdrawn, then exchanged for a free seat
    await cli("resale", "list", event_id, order_id, second, "--price", "100", "--seller", "ada")
    await cli("resale", "withdraw", event_id, order_id, second)
    assert second not in (await cli("resale", "listings", event_id)).stdout
    swapped = await cli("order", "exchange", event_id, order_id, "--ticket", second, "--seat", "SC-A-9")
    assert "SC-A-9" in swapped.stdout
    assert "exchanged" in swapped.stdout
    assert swapped.stdout.splitlines()[-1].startswith("exchange ")


async def test_exports_and_reports(server: str, tmp_path: Path) -> None:
    cli, _, event_id = await theatre_on_sale(server, tmp_path, "rep", "Figures", theatre_prices(100))
    token = (await cli("hold", event_id, "SC-A-3")).stdout.strip()
    await cli("commit", token, "--idempotency-key", "k1", "--name", "=cmd|' /C calc'!A0", "--email", "a@b.c")
    out = tmp_path / "orders.csv"
    exported = await cli("export", "orders", event_id, "--bom", "-o", str(out))
    assert "1 orders rows" in exported.stderr
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfevent_id,")
    assert b",'=cmd|" in data  # guarded
    assert not (tmp_path / "orders.csv.part").exists()
    lines = tmp_path / "tickets.jsonl"
    await cli("export", "tickets", "--format", "jsonl", "-o", str(lines))  # every event
    assert json.loads(lines.read_text())["seat_id"] == "SC-A-3"
    statement = tmp_path / "statement.csv"
    today = datetime.now(UTC).date()
    period = ("--from", str(today - timedelta(days=1)), "--until", str(today + timedelta(days=1)))
    await cli("export", "statement", *period, "-o", str(statement))
    assert statement.read_text().splitlines()[0].startswith("organizer_id,period_start,period_end,currency")
    assert ",sales,online,1.00,100" in statement.read_text()
    no_period = await cli("export", "statement", "-o", str(statement), ok=False)
    assert "--from and --until" in no_period.output
    shown = await cli("report", event_id)
    assert "revenue gross: 1.00 EUR" in shown.stdout
    assert "fees: 0.00 EUR" in shown.stdout  # no plan
    assert "revenue net: 1.00 EUR" in shown.stdout
    figures = json.loads((await cli("report", event_id, "--json")).stdout)
    assert figures["tickets_sold"] == "1"
    chart, heat = tmp_path / "sales.png", tmp_path / "heat.svg"
    await cli("report", "chart", event_id, "-o", str(chart))
    await cli("report", "heatmap", event_id, "--by", "time", "-o", str(heat))
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert heat.read_text().count('class="seat sh-0"') == 1


async def test_the_operators_commands(server: str, tmp_path: Path) -> None:
    root = {"SEATWISE_TARGET": server, "SEATWISE_API_KEY": ADMIN_KEY}

    async def cli(env: dict[str, str], *args: str, ok: bool = True) -> Result:
        result = await asyncio.to_thread(run, *args, env=env)
        assert "Traceback" not in result.output
        assert (result.exit_code == 0) == ok, result.output
        return result

    created = await cli(root, "platform", "create", "Fair Tickets", "--id", "fair", "--terms-version", "v1")
    assert "platform: fair" in created.stderr
    platform = {"SEATWISE_TARGET": server, "SEATWISE_API_KEY": created.stdout.strip()}
    assert "fair" in (await cli(root, "platform", "list")).stdout
    signed = await cli(
        platform,
        "organizer",
        "signup",
        "Hall One",
        "--slug",
        "hall-one",
        "--country",
        "DE",
        "--accept-terms",
        "v1",
    )
    organizer_id = signed.stderr.split("organizer: ")[1].split()[0]
    assert signed.stdout.strip().startswith("sw_")
    assert "hall-one" in (await cli(platform, "organizer", "list")).stdout
    refused = await cli(platform, "organizer", "signup", "X", "--slug", "admin", "--country", "DE", ok=False)
    assert "reserved" in refused.stderr
    suspended = await cli(platform, "organizer", "suspend", organizer_id, "--reason", "unpaid")
    assert "suspended: unpaid" in suspended.stdout
    assert "active" in (await cli(platform, "organizer", "reinstate", organizer_id)).stdout
    audit = await cli(platform, "organizer", "audit", organizer_id)
    assert "PlatformService/SuspendOrganizer" in audit.stdout
    assert "PlatformService/ReinstateOrganizer" in audit.stdout
    assert (
        json.loads((await cli(platform, "organizer", "get", organizer_id, "--json")).stdout)["slug"]
        == "hall-one"
    )
    updated = await cli(platform, "platform", "set", "--public-sales-when-suspended")
    assert json.loads(updated.stdout)["public_sales_when_suspended"] is True
    assert (await cli(platform, "platform", "key", "--expires-in-days", "30")).stdout.startswith("sw_")

    # branding, the hub, the organizers' export, plans and billing
    branded = await cli(
        platform, "platform", "branding", "--display-name", "Fair", "--primary-color", "#AABBCC"
    )
    assert json.loads(branded.stdout)["primary_color"] == "#aabbcc"
    assert json.loads((await cli(platform, "platform", "branding")).stdout)["display_name"] == "Fair"
    refused = await cli(
        platform, "organizer", "branding", organizer_id, "--logo-url", "http://x.example", ok=False
    )
    assert "logo_url" in refused.stderr
    org_branded = await cli(
        platform, "organizer", "branding", organizer_id, "--custom-domain", "hall.example"
    )
    assert json.loads(org_branded.stdout)["custom_domain"] == "hall.example"
    assert "STARTS" in (await cli(platform, "platform", "hub", "--from", "2026-01-01")).stdout
    exported = Path(tmp_path) / "organizers.csv"
    done = await cli(platform, "organizer", "export", "-o", str(exported))
    assert "1 organizers" in done.stderr
    assert exported.read_text().splitlines()[1].startswith(f"{organizer_id},Hall One,hall-one,")
    assert "KIND" in (await cli(platform, "organizer", "notifications")).stdout
    plan_file = Path(tmp_path) / "gold.json"
    plan_file.write_text(json.dumps({"plan_id": "gold", "default_currency": "EUR",
                                     "prices": {"EUR": {"monthly_fee": 2900}}}))  # fmt: skip
    assert (await cli(platform, "platform", "plan", "create", str(plan_file))).stdout.strip() == "gold"
    # the documented example is a valid plan
    assert (await cli(platform, "platform", "plan", "create", str(EXAMPLE_PLAN))).stdout.strip() == "standard"
    assert "gold" in (await cli(platform, "platform", "plan", "list")).stdout
    plan_file.write_text('{"plan_id": "bad", "nope": 1}')
    bad = await cli(platform, "platform", "plan", "create", str(plan_file), ok=False)
    assert "not a plan" in bad.stderr
    assert "-> gold" in (await cli(platform, "organizer", "plan", organizer_id, "gold")).stderr
    period = ("--from", "2026-01-01", "--until", "2026-12-31")
    statement = await cli(platform, "organizer", "statement", organizer_id, *period)
    assert statement.stdout.startswith("organizer_id,period_start,period_end,currency")
    rollup = await cli(platform, "organizer", "statement", *period)  # no sale, no charge yet: a header
    assert rollup.stdout.splitlines() == [statement.stdout.splitlines()[0]]
    paid = await cli(platform, "organizer", "paid", organizer_id, "2020-01")
    assert "active" in paid.stdout
    bad = await cli(platform, "organizer", "paid", organizer_id, "2020-13", ok=False)
    assert "period" in bad.stderr


async def test_event_move(server: str, tmp_path: Path) -> None:
    """seatwise event move: a dry run lists what would be lost, a refusal names it, a move moves."""
    base = {"SEATWISE_TARGET": server, "SEATWISE_API_KEY": ADMIN_KEY, "SEATWISE_TENANT": "mover"}

    async def cli(*args: str, ok: bool = True) -> Result:
        result = await asyncio.to_thread(run, *args, env=base)
        assert "Traceback" not in result.output
        if ok:
            assert result.exit_code == 0, result.output
        return result

    await cli("tenant", "create", "Mover Hall", "--id", "mover")
    v1_file, v2_file = tmp_path / "v1.json", tmp_path / "v2.json"
    v1_file.write_bytes(small_map(rows=3))
    doc = json.loads(small_map(rows=3))
    doc["sections"][0]["rows"] = doc["sections"][0]["rows"][1:]  # row r0 removed
    v2_file.write_text(json.dumps(doc))
    seat_map_id = (await cli("seatmap", "upload", str(v1_file), "--publish")).stdout.split()[0]
    event_id = (
        await cli("event", "create", seat_map_id, "--name", "Move", "--on-sale", "--price", "front=100",
                  "--price", "back=50", "--price", "floor=10")
    ).stdout.strip()  # fmt: skip
    await cli("seatmap", "upload", str(v2_file), "--seat-map-id", seat_map_id, "--publish")
    token = (await cli("hold", event_id, "r0-1", "r1-1")).stdout.strip()

    dry = (await cli("event", "move", event_id, "2", "--dry-run")).stdout
    assert dry.startswith(f"{event_id} would move from version 1 to 2")
    assert re.search(r"^r0-1\s+held$", dry, re.M)
    refused = await cli("event", "move", event_id, "2", ok=False)
    assert_one_line_error(refused, "FAILED_PRECONDITION", "r0-1 (held)")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"r0-1": "r1-5"}))
    moved = await cli("event", "move", event_id, "2", "--mapping-file", str(mapping), "--json")
    assert json.loads(moved.stdout)["seats_moved"] == 2
    assert json.loads((await cli("hold-info", token, "--json")).stdout)["seat_ids"] == ["r1-5", "r1-1"]
