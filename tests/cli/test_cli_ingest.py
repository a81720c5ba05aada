"""``atlas ingest``, run as a subprocess (``python -m atlas``) on real NetCDF files, and its
progress output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from cli_helpers import assert_one_line_error, run, run_in_pty
from netcdf_helpers import assert_same_values, write_tree

import atlas

ARGO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "argo"


def test_ingest_summary_groups_warnings(built: tuple[Path, Path]) -> None:
    src, _ = built
    tmp = built[1].parent / "again"
    proc = run("ingest", src, tmp)
    out = proc.stdout
    assert out.startswith(f"created {tmp}: 7 datasets added from 6 files")
    assert "1 x SerializationWarning: variable '…' has _Unsigned attribute but is not of integer type" in out
    assert "--verbose" in out and out.count("grouped.nc") == 1  # once, as the kind's example
    assert "      e.g. north/grouped.nc\n" in out
    verbose = run("ingest", src, tmp, "--update", "--verbose").stdout
    assert "0 datasets added" in verbose and "6 unchanged" in verbose


def test_existing_names_need_update(built: tuple[Path, Path]) -> None:
    src, store = built
    assert_one_line_error(run("ingest", src, store, rc=None), "already in the store", "--update")


def test_update_adds_only_new_files(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 3)
    quiet = run("ingest", tmp_path / "src", tmp_path / "store", "-q")
    assert quiet.stderr == "" and quiet.stdout.startswith("created")
    write_tree(tmp_path / "src", 2, start=3)
    out = run("ingest", tmp_path / "src", tmp_path / "store", "--update", "--json").stdout
    report = json.loads(out)
    assert report["datasets_added"] == 2 and report["files_already_present"] == 3
    assert sorted(report["added"]) == ["north:p0003", "south:p0004"]
    assert len(atlas.Atlas.open(tmp_path / "store").list_datasets()) == 5


# Runs the atlas command with its commit held until every process named in ATLAS_TEST_PARTIES
# has reached its own: each then commits on the version it planned on, and all but the first
# find the store moved on.
_HELD_COMMIT = """
import os, sys, time
from pathlib import Path
import atlas.integrations.netcdf as netcdf
from atlas.cli import main

real = netcdf._commit
gate = Path(os.environ["ATLAS_TEST_GATE"])

def held(*args, **kwargs):
    (gate / os.environ["ATLAS_TEST_ME"]).touch()
    deadline = time.monotonic() + 60
    while len(list(gate.iterdir())) < int(os.environ["ATLAS_TEST_PARTIES"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return real(*args, **kwargs)

netcdf._commit = held
sys.exit(main(sys.argv[1:]))
"""


def _held_ingests(tmp_path: Path, *argvs: list[str | Path]) -> list[subprocess.CompletedProcess[str]]:
    """Run ``atlas ARGV`` for each argv at once, each commit held until all are ready to commit."""
    script = tmp_path / "held_commit.py"
    script.write_text(_HELD_COMMIT)
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, script, *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "ATLAS_TEST_GATE": str(gate), "ATLAS_TEST_ME": str(i), "ATLAS_TEST_PARTIES": str(len(argvs))},
        )
        for i, argv in enumerate(argvs)
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    assert len(list(gate.iterdir())) == len(argvs)
    return done


def test_concurrent_updates_with_different_files_both_land(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_tree(tmp_path / "first", 2)
    run("ingest", tmp_path / "first", store, "--root", tmp_path, "-q")
    write_tree(tmp_path / "a", 3, start=10)
    write_tree(tmp_path / "b", 3, start=20)
    ingests = _held_ingests(
        tmp_path,
        *(["ingest", tmp_path / d, store, "--root", tmp_path, "--update", "--json", "-j", "1"] for d in ("a", "b")),
    )
    for proc in ingests:
        assert proc.returncode == 0, proc.stderr
    reports = [json.loads(p.stdout) for p in ingests]
    assert sorted(r["version"] for r in reports) == [2, 3]
    fresh = atlas.Atlas.open(store)
    assert fresh.version == 3 and fresh.verify() == []
    names = fresh.list_datasets()
    assert len(names) == 8 and set(reports[0]["added"]) | set(reports[1]["added"]) == set(names[2:])
    for r in reports:
        for name in r["added"]:
            assert fresh.open_dataset(name).get_attribute("_atlas_source").startswith(name.split(":")[0])


def test_concurrent_updates_adding_the_same_file_fail_one_with_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_tree(tmp_path / "src", 2)
    run("ingest", tmp_path / "src", store, "-q")
    write_tree(tmp_path / "src", 1, start=5)
    ingests = _held_ingests(tmp_path, *(["ingest", tmp_path / "src", store, "--update", "-q"] for _ in range(2)))
    failed = [p for p in ingests if p.returncode != 0]
    assert len(failed) == 1 and sum(p.returncode == 0 for p in ingests) == 1
    assert_one_line_error(
        failed[0],
        "another process changed the store",
        "dataset 'north:p0005' created by this ingest and created by the other",
        "nothing was committed. Run the command again",
    )
    assert "reopen" not in failed[0].stderr.lower()
    assert atlas.Atlas.open(store).version == 2


def test_corrupt_file_fails_cleanly_or_is_skipped(tmp_path: Path) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 3)
    (src / "south" / "broken.nc").write_bytes(b"CDF\x01" + os.urandom(200))
    proc = run("ingest", src, store, rc=None)
    assert_one_line_error(proc, "south/broken.nc", "--skip-errors")
    assert not store.exists()  # the store it created is gone again

    proc = run("ingest", src, store, "--skip-errors", rc=3)
    assert "3 datasets added from 4 files" in proc.stdout
    assert "skipped 1 file:\n  south/broken.nc: " in proc.stdout
    assert atlas.Atlas.open(store).list_datasets() == ["north:p0001", "south:p0000", "south:p0002"]

    write_tree(src, 1, start=3)  # a good new file, and the broken one still there
    before = atlas.Atlas.open(store)
    retried = run("ingest", src, store, "--update", "--retry-failed", rc=None)
    assert_one_line_error(retried, "broken.nc", "unchanged")
    after = atlas.Atlas.open(store)
    assert (after.version, after.list_datasets()) == (before.version, before.list_datasets())
    # without --retry-failed, the file that failed before (unchanged) is not tried again
    proc = run("ingest", src, store, "--update")
    assert "1 dataset added" in proc.stdout
    assert "1 file failed before and is unchanged, not retried (--retry-failed retries it):" in proc.stdout
    assert "south/broken.nc: " in proc.stdout


def test_progress_bar_on_a_terminal_and_log_lines_when_piped(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 4)
    rc, out = run_in_pty("ingest", tmp_path / "src", tmp_path / "tty")
    assert rc == 0, out
    assert "ingest 4/4 files: 100%|" in out and "\r" in out
    assert "created" in out

    proc = run("ingest", tmp_path / "src", tmp_path / "piped")
    assert proc.stderr == ""  # no bar; a run this short prints no log lines either
    assert proc.stdout.startswith("created")


def test_parallel_ingest_and_codec(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 20)
    args = ["-j", "2", "--codec", "lz4", "--meta-format", "json", "--meta-compression", "none", "--json"]
    report = json.loads(run("ingest", tmp_path / "src", tmp_path / "store", *args).stdout)
    assert report["datasets_added"] == 20
    info = json.loads(run("info", tmp_path / "store", "--json").stdout)
    assert info["codec"] == "lz4" and info["datasets"] == 20
    assert_one_line_error(
        run("ingest", tmp_path / "src", tmp_path / "store", "--update", "--codec", "zstd", rc=None),
        "codec",
    )


# ---------------------------------------------------------------------------- real Argo profiles


@pytest.mark.skipif(not ARGO.is_dir(), reason=f"real Argo profiles not found at {ARGO}")
def test_real_argo_profiles(tmp_path: Path) -> None:
    # a few profiles of every float, linked into a private tree to keep the test quick
    src = tmp_path / "argo"
    picked = []
    for float_dir in sorted(p for p in ARGO.glob("*/*") if p.is_dir()):
        for f in sorted((float_dir / "profiles").glob("*.nc"))[:6]:
            link = src / f.relative_to(ARGO)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f)
            picked.append(f)
    report = json.loads(run("ingest", src, tmp_path / "store", "--json").stdout)
    assert report["datasets_added"] == len(picked) and not report["skipped"]
    store = atlas.Atlas.open(tmp_path / "store")
    names = store.list_datasets()
    temps = [t for t in store.read_array_across("TEMP", names) if t is not None]
    assert len(temps) == len(picked)
    flat = np.concatenate([t.ravel() for t in temps])
    assert -3 < np.nanmin(flat) < np.nanmax(flat) < 40
    out = run("show", tmp_path / "store", names[0]).stdout
    assert "\tfloat32 TEMP(N_PROF, N_LEVELS) ;" in out and "timestamp_nanoseconds JULD(N_PROF) ;" in out
    exported = tmp_path / "one.nc"
    run("export", tmp_path / "store", names[0], exported)
    with xr.open_dataset(picked[0]) as original, xr.open_dataset(exported) as back:
        assert_same_values(original.load(), back.load())
