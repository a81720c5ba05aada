"""``atlas.integrations.netcdf.files``: which files an ingest takes, and the dataset name
each one gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas.integrations.netcdf.files import (
    collect_sources,
    dataset_name,
    find_netcdf_files,
    matches,
)


@pytest.mark.parametrize(
    ("relpath", "name"),
    [
        ("a.nc", "a"),
        ("aoml/13857/profiles/R13857_001.nc", "aoml:13857:profiles:R13857_001"),
        ("x/y.NC4", "x:y"),
        ("run.cdf", "run"),
        ("model/out.netcdf", "model:out"),
        ("_scratch/run1.nc4", ":_scratch:run1"),
        ("_a.nc", ":_a"),
        ("d/_a.nc", "d:_a"),
        ("a.b.nc", "a.b"),
        ("été/données.nc", "été:données"),
    ],
)
def test_dataset_name(relpath: str, name: str) -> None:
    assert dataset_name(relpath) == name


def test_find_netcdf_files_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    for rel in ["b/2.nc", "b/10.nc4", "a.cdf", "c/d/e.netcdf", "UPPER.NC", "notes.txt", "x.nc.bak",
                ".hidden.nc", ".cache/z.nc", "b/.nc"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 3)
    found = find_netcdf_files(tmp_path)
    assert [f.relpath for f in found] == ["UPPER.NC", "a.cdf", "b/10.nc4", "b/2.nc", "c/d/e.netcdf"]
    assert [f.name for f in found] == ["UPPER", "a", "b:10", "b:2", "c:d:e"]
    assert all(f.size == 3 for f in found)


def test_matches_names_without_a_slash_and_paths_with_one() -> None:
    assert matches("aoml/13857/R1_prof.nc", "*_prof.nc")
    assert not matches("aoml/13857/R1_meta.nc", "*_prof.nc")
    assert matches("aoml/13857/R1_prof.nc", "aoml/*")  # * crosses / in a path pattern
    assert not matches("csiro/aoml.nc", "aoml/*")
    assert not matches("a/B.nc", "b.nc")  # case matters


def _tree(root: Path, rels: list[str]) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 4)


def test_collect_sources_of_one_directory(tmp_path: Path) -> None:
    _tree(tmp_path / "src", ["a/1_prof.nc", "a/1_meta.nc", "b/2_prof.nc", "b/skip/3_prof.nc"])
    root, files = collect_sources([tmp_path / "src"], include=["*_prof.nc"], exclude=["b/skip/*"])
    assert root == tmp_path / "src"
    assert [(f.relpath, f.name) for f in files] == [("a/1_prof.nc", "a:1_prof"), ("b/2_prof.nc", "b:2_prof")]
    assert all(f.size == 4 and f.mtime_ns > 0 for f in files)


def test_collect_sources_of_several_inputs_share_their_deepest_root(tmp_path: Path) -> None:
    _tree(tmp_path / "argo", ["aoml/1.nc", "csiro/2.nc", "single.data"])
    root, files = collect_sources(
        [tmp_path / "argo" / "aoml", tmp_path / "argo" / "csiro", tmp_path / "argo" / "aoml", tmp_path / "argo" / "single.data"]
    )
    assert root == tmp_path / "argo"
    assert [f.name for f in files] == ["aoml:1", "csiro:2", "single.data"]  # a named file whatever its ending
    root, files = collect_sources([tmp_path / "argo" / "aoml"], root=tmp_path)
    assert root == tmp_path and [f.name for f in files] == ["argo:aoml:1"]


def test_collect_sources_refuses_what_it_cannot_take(tmp_path: Path) -> None:
    _tree(tmp_path / "src", ["a.nc"])
    with pytest.raises(ValueError, match="at least one"):
        collect_sources([])
    with pytest.raises(ValueError, match="does not exist"):
        collect_sources([tmp_path / "missing"])
    with pytest.raises(ValueError, match="is not under the root"):
        collect_sources([tmp_path / "src"], root=tmp_path / "elsewhere")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(ValueError, match="neither a directory nor a file"):
            collect_sources([tmp_path / "pipe"])
