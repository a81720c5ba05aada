"""The command line on real archives: inputs and their selection, ``rm`` patterns, sizes
as ``du`` counts them, and the failed files ``atlas info`` lists."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run
from netcdf_helpers import write_profile, write_tree

import atlas


def _tree(root: Path) -> Path:
    src = root / "argo"
    write_profile(src / "aoml" / "13857" / "13857_prof.nc", seed=1)
    write_profile(src / "aoml" / "13857" / "profiles" / "R13857_001.nc", seed=2)
    write_profile(src / "kma" / "2901746" / "2901746_prof.nc", seed=3)
    write_profile(src / "kma" / "2901746" / "profiles" / "R2901746_001.nc", seed=4)
    return src


def _names(store: Path) -> list[str]:
    return sorted(atlas.Atlas.open(store).list_datasets())


def test_include_and_exclude_select_files(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    run("ingest", src, tmp_path / "a", "-q", "--include", "*_prof.nc")
    assert _names(tmp_path / "a") == ["aoml:13857:13857_prof", "kma:2901746:2901746_prof"]
    run("ingest", src, tmp_path / "b", "-q", "--exclude", "*/profiles/*", "--exclude", "kma/*")
    assert _names(tmp_path / "b") == ["aoml:13857:13857_prof"]
    proc = run("ingest", src, tmp_path / "c", "--include", "*.cdf", rc=None)
    assert_one_line_error(proc, "found no NetCDF files", "--include")
    assert not (tmp_path / "c").exists()


def test_single_files_and_several_inputs(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    one = src / "aoml" / "13857" / "13857_prof.nc"
    run("ingest", one, tmp_path / "a", "-q")
    assert _names(tmp_path / "a") == ["13857_prof"]
    run("ingest", src / "aoml", src / "kma" / "2901746" / "2901746_prof.nc", tmp_path / "b", "-q")
    assert _names(tmp_path / "b") == [
        "aoml:13857:13857_prof", "aoml:13857:profiles:R13857_001", "kma:2901746:2901746_prof",
    ]
    # names relative to --root, so that a later update of one file names it the same way
    run("ingest", one, tmp_path / "c", "-q", "--root", src)
    assert _names(tmp_path / "c") == ["aoml:13857:13857_prof"]
    run("ingest", src, tmp_path / "c", "-q", "--update")
    assert len(_names(tmp_path / "c")) == 4
    assert_one_line_error(run("ingest", tmp_path / "nope", tmp_path / "d", rc=None), "does not exist")


def test_rm_takes_patterns(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    store = tmp_path / "s"
    run("ingest", src, store, "-q")
    dry = run("rm", store, "*:profiles:*", "--dry-run")
    assert dry.stdout.split() == ["aoml:13857:profiles:R13857_001", "kma:2901746:profiles:R2901746_001"]
    assert len(_names(store)) == 4
    missing = run("rm", store, "kma:*", "nothing:*", rc=None)
    assert_one_line_error(missing, "'nothing:*'", "nothing was removed")
    assert len(_names(store)) == 4
    out = run("rm", store, "*:profiles:*", "aoml:13857:13857_prof").stdout
    assert out.startswith("removed 3 datasets")
    assert _names(store) == ["kma:2901746:2901746_prof"]


def _du_bytes(path: Path) -> int:
    done = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def test_info_and_ingest_report_room_on_disk_as_du_does(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 4)
    store = tmp_path / "store"
    report = json.loads(run("ingest", tmp_path / "src", store, "--json").stdout)
    info = json.loads(run("info", store, "--json").stdout)
    du = _du_bytes(store)
    files = [p for p in store.rglob("*") if p.is_file()]
    assert info["bytes_on_disk"] == du == report["store_bytes_after"]
    assert info["apparent_bytes"] == sum(p.stat().st_size for p in files) == report["store_apparent_bytes"]
    assert info["files_on_disk"] == len(files)
    assert info["bytes_on_disk"] > info["apparent_bytes"]  # small files take whole blocks
    text = run("info", store).stdout
    assert "(as du counts it)" in text


def test_info_lists_the_files_that_failed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, 2)
    (src / "bad.nc").write_bytes(b"CDF\x01" + os.urandom(100))
    run("ingest", src, tmp_path / "store", "-q", "--skip-errors", rc=3)
    text = run("info", tmp_path / "store").stdout
    assert "failed:    1 file could not be stored by earlier ingests" in text
    assert "\n             bad.nc: " in text
    info = json.loads(run("info", tmp_path / "store", "--json").stdout)
    assert [f["file"] for f in info["failed_files"]] == ["bad.nc"]
    again = run("ingest", src, tmp_path / "store", "--update")
    assert "1 file failed before and is unchanged, not retried" in again.stdout
    # a failure that stops an ingest (no --skip-errors) is listed too
    (src / "worse.nc").write_bytes(b"CDF\x01" + os.urandom(100))
    run("ingest", src, tmp_path / "store", "--update", rc=1)
    text = run("info", tmp_path / "store").stdout
    assert "failed:    2 files could not be stored by earlier ingests" in text
    assert "worse.nc: " in text and "(stopped the ingest of 20" in text
    assert "the next ingest tries it again" in text.split("worse.nc")[1]


# ---------------------------------------------------------------------------- the real Argo sample

ARGO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "argo"
needs_argo = pytest.mark.skipif(not ARGO.is_dir(), reason=f"the real Argo sample is not at {ARGO}")


@needs_argo
def test_real_archive_kinds_ingest_quietly_and_are_found(tmp_path: Path) -> None:
    # every kind beside the profiles (_prof, _meta, _tech, _Rtraj of five floats), and a few profiles
    store = tmp_path / "argo.atlas"
    first = run("ingest", ARGO, store, "--exclude", "*/profiles/*", "--skip-errors", "-q", rc=None)
    assert first.returncode in (0, 3), first.stderr
    assert first.stderr == ""  # no raw warning, no traceback
    out = first.stdout
    lines = out.splitlines()
    kinds = [i for i, line in enumerate(lines) if re.match(r"  \d+ x ", line)]
    assert all(lines[i + 1].startswith("      e.g. ") and lines[i + 1].endswith(".nc") for i in kinds)
    s = atlas.Atlas.open(store)
    assert "aoml:13857:13857_prof" in s.list_datasets()
    # PLATFORM_NUMBER is stored as Argo writes it, padded with blanks
    stored = s.open_dataset("aoml:13857:13857_prof").read_array("PLATFORM_NUMBER")
    assert str(stored.flat[0]).rstrip() == "13857" and str(stored.flat[0]) != "13857"
    found = run("find", store, "PLATFORM_NUMBER == '13857'").stdout.split()
    assert "aoml:13857:13857_prof" in found and not any("2901746" in n for n in found)
    # the default catalogue leaves the variables' attributes out
    table = s.catalog()
    assert "PLATFORM_NUMBER.long_name" not in table.columns and "PLATFORM_NUMBER.max" in table.columns
    assert "PLATFORM_NUMBER.long_name" in s.catalog(array_attributes=True).columns
    # an update finds nothing changed, and does not try again what failed
    again = run("ingest", ARGO, store, "--exclude", "*/profiles/*", "--update", "-q")
    assert "0 datasets added" in again.stdout and again.stderr == ""
    skipped = [line for line in out.splitlines() if line.startswith("  ") and ".nc: " in line]
    assert len(skipped) == again.stdout.count(".nc: ")
