"""Fixtures of the command tests: a store ingested from a small tree of NetCDF files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run
from netcdf_helpers import write_profile, write_tree


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A source tree of 6 profiles (one with a group: 7 datasets) and the store ingested from it."""
    root = tmp_path_factory.mktemp("cli")
    src = root / "src"
    write_tree(src, 5)
    write_profile(src / "north" / "grouped.nc", group=True, seed=9)
    proc = run("ingest", src, root / "store", "--json")
    report = json.loads(proc.stdout)
    assert report["datasets_added"] == 7 and report["created"]
    return src, root / "store"
