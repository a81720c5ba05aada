"""The catalogue reads the handle's private state in one module only."""

from __future__ import annotations

import ast
from pathlib import Path

import atlas.catalog

PACKAGE = Path(atlas.catalog.__file__).parent


def test_only_source_reads_private_state() -> None:
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "source.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert found == []
