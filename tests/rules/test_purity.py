"""rules/ stays pure: its modules import only the standard library's pure parts and a few libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RULES = Path(__file__).parents[2] / "rules"
ALLOWED = {
    # standard library, no I/O
    "__future__", "base64", "binascii", "collections", "csv", "dataclasses", "datetime", "decimal",
    "enum", "fractions", "functools", "io", "itertools", "math", "re", "secrets", "typing",
    # libraries
    "msgspec", "cryptography", "segno",
    "rules",
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(RULES.glob("*.py")), ids=lambda p: p.name)
def test_rules_import_no_storage_transport_or_io(module: Path) -> None:
    imported = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED, f"{module.name} imports {sorted(imported - ALLOWED)}"
