"""The scripts' reply codes are named once in Lua and once in Python, and agree."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from holds.replies import Reply
from holds.scripts import INVENTORY_PRELUDE, REPLIES_HEADER, script_source

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


@pytest.mark.parametrize("name", [n for n in _scripts() if n not in (REPLIES_HEADER, INVENTORY_PRELUDE)])
def test_every_script_gets_the_codes_and_returns_none_bare(name: str) -> None:
    source = script_source(name)
    assert source.startswith(_lua(REPLIES_HEADER))
    body = source.removeprefix(_lua(REPLIES_HEADER))
    bare = [line.strip() for line in _code_lines(body) if _BARE_CODE.search(line)]
    assert not bare, f"{name} returns a bare code; name it in {REPLIES_HEADER}.lua: {bare}"
