"""The commands that list and summarise a store: ``atlas ls``, ``atlas find`` and ``atlas info``."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import assert_one_line_error, run


def test_ls_patterns_and_json(built: tuple[Path, Path]) -> None:
    _, store = built
    names = run("ls", store).stdout.split()
    assert names == [
        "north:grouped", "north:grouped#engineering", "north:p0001", "north:p0003", "south:p0000", "south:p0002",
        "south:p0004",
    ]
    assert json.loads(run("ls", store, "*:p000[13]", "--json").stdout) == ["north:p0001", "north:p0003"]


def test_find_and_ls_where(built: tuple[Path, Path]) -> None:
    _, store = built
    expr = "platform >= 1003 and platform <= 1004"
    assert run("find", store, expr).stdout.split() == ["north:p0003", "south:p0004"]
    where = run("ls", store, "north:*", "--where", expr, "--json").stdout
    assert json.loads(where) == ["north:p0003"]
    assert_one_line_error(run("find", store, "platform >>> 3", rc=None), "invalid")


def test_info(built: tuple[Path, Path]) -> None:
    _, store = built
    out = run("info", store).stdout
    assert "datasets:  7" in out and "codec:     zstd" in out
    info = json.loads(run("info", store, "--json").stdout)
    assert info["datasets"] == 7 and info["bytes_on_disk"] > 0 and info["version"] in info["versions"]
    # 9 arrays per NetCDF-4 file, 8 per NetCDF-3 one (no variable-length string), 1 in the group
    assert info["arrays"] == 4 * 9 + 2 * 8 + 1 and info["array_names"] == 10
