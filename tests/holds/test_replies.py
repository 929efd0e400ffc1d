"""The boundary between the scripts and Python: reply codes are named once in
Lua and once in Python and agree; seat values are written and read alike."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from holds import keys, seatvalues
from holds.redis_client import AnyRedis
from holds.replies import Reply
from holds.scripts import (
    PRELUDES,
    REPLIES_HEADER,
    Script,
    ScriptRegistry,
    script_source,
)

_CONSTANT = re.compile(r"^local ([A-Z][A-Z0-9_]*) = (-?\d+)\b")
# a bare number where a code belongs: `return 5`, `return {5` or `return {5, ...}`
_BARE_CODE = re.compile(r"\breturn\s*\{?\s*-?\d+\b")


def _lua(name: str) -> str:
    return (resources.files("holds") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def _scripts() -> list[str]:
    lua = resources.files("holds") / "lua"
    return sorted(p.name.removesuffix(".lua") for p in lua.iterdir() if p.name.endswith(".lua"))


def _code_lines(source: str) -> list[str]:
    return [line.split("--", 1)[0] for line in source.splitlines()]


def test_the_lua_header_names_exactly_the_python_codes() -> None:
    lines = [line for line in _code_lines(_lua(REPLIES_HEADER)) if line.strip()]
    unnamed = [line for line in lines if not _CONSTANT.match(line)]
    assert not unnamed, f"not a `local NAME = N` line: {unnamed}"
    in_lua = [(m.group(1), int(m.group(2))) for line in lines if (m := _CONSTANT.match(line))]
    assert in_lua == [(r.name, r.value) for r in Reply]


@pytest.mark.parametrize(
    "name",
    [n for n in _scripts() if n not in PRELUDES],
)
def test_every_script_gets_the_codes_it_names_and_returns_none_bare(name: str) -> None:
    """Each script is prepended with the reply codes it names (every code is a Lua local,
    and a function has at most 200), in _replies.lua's order, and returns none bare."""
    source = script_source(name).splitlines()
    header = _lua(REPLIES_HEADER).splitlines()
    known = set(header)
    n = next(i for i, line in enumerate(source) if line not in known)
    given, body = source[:n], "\n".join(source[n:])
    assert given == [line for line in header if line in given], "not in _replies.lua's order"
    declared = {m.group(1) for line in given if (m := _CONSTANT.match(line))}
    named = set(re.findall(r"\b[A-Z][A-Z0-9_]*\b", "\n".join(_code_lines(body))))
    missing = (named & {r.name for r in Reply}) - declared
    assert not missing, f"{name} names codes it was not given: {sorted(missing)}"
    bare = [line.strip() for line in _code_lines(body) if _BARE_CODE.search(line)]
    assert not bare, f"{name} returns a bare code; name it in {REPLIES_HEADER}.lua: {bare}"


async def test_the_registry_has_one_attribute_per_script(redis_client: AnyRedis) -> None:
    registry = ScriptRegistry(redis_client)
    scripts = {name: s for name, s in vars(registry).items() if isinstance(s, Script)}
    assert all(s.name == name for name, s in scripts.items())
    assert set(scripts) == set(_scripts()) - PRELUDES


@pytest.mark.parametrize("value", ["h:hA1", "s:oB2", "b", "n", "x", "h", ""])
def test_seat_values_decode_alike_from_str_and_bytes(value: str) -> None:
    state, owner = seatvalues.decode(value)
    assert seatvalues.decode(value.encode()) == (state, owner.encode())


def test_seat_values_round_trip() -> None:
    assert seatvalues.decode(seatvalues.held_by("hA1")) == ("held", "hA1")
    assert seatvalues.decode(seatvalues.sold_to("oB2")) == ("sold", "oB2")
    assert seatvalues.decode(None) == ("free", "")
    assert seatvalues.decode("bb")[0] == "invalid"


async def test_the_prelude_writes_seat_values_as_python_reads_them(redis_client: AnyRedis) -> None:
    probe = script_source("snapshot").removesuffix(_lua("snapshot"))  # codes + prelude, no script
    probe += (
        "return {held_value(ARGV[1]), sold_value(ARGV[2]), STATUS_VALUE.blocked, STATUS_VALUE.not_for_sale}"
    )
    ks = keys.event_keys("evProbe")
    written = await redis_client.eval(probe, len(ks), *ks, "hA1", "oB2")
    assert [v.decode() for v in written] == [
        seatvalues.held_by("hA1"),
        seatvalues.sold_to("oB2"),
        seatvalues.BLOCKED,
        seatvalues.NOT_FOR_SALE,
    ]
