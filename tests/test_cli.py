"""The ``atlas`` command, run as a subprocess (``python -m atlas``) on real NetCDF files."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_netcdf import assert_same_values, write_profile, write_tree

import atlas
from atlas.cli import LogProgress, main

ARGO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "argo"
SUBCOMMANDS = ["ingest", "ls", "show", "info", "rm", "compact", "versions", "tag", "expire", "verify", "export", "demo"]


def run(*args: str | Path, rc: int | None = 0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m atlas ARGS`` with pipes; check the exit status unless ``rc`` is None."""
    proc = subprocess.run(
        [sys.executable, "-m", "atlas", *map(str, args)], capture_output=True, text=True, timeout=120
    )
    if rc is not None:
        assert proc.returncode == rc, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def run_in_pty(*args: str | Path) -> tuple[int, str]:
    """Run ``python -m atlas ARGS`` on a pseudo-terminal 120 columns wide; return (rc, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "atlas", *map(str, args)], stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A user error: exit 1, one line on stderr, no traceback."""
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A source tree of 6 profiles (one with a group) and the store ingested from it."""
    root = tmp_path_factory.mktemp("cli")
    src = root / "src"
    write_tree(src, 5)
    write_profile(src / "north" / "grouped.nc", group=True, seed=9)
    proc = run("ingest", src, root / "store", "--json")
    report = json.loads(proc.stdout)
    assert report["datasets_added"] == 6 and report["created"]
    return src, root / "store"


# ---------------------------------------------------------------------------- help and usage


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    top = run("--help")
    for name in SUBCOMMANDS:
        assert name in top.stdout
    for name in SUBCOMMANDS:  # in-process: the same parser, without a start-up per command
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: atlas {name}")
        if name == "ingest":
            assert "':'" in out  # the naming rule is documented


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    proc = run("ingest", rc=2)
    assert "Traceback" not in proc.stderr and "SRC_DIR" in proc.stderr
    assert main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "a", "b", "--chunk-size", "lots"])
    assert exit_info.value.code == 2
    assert "invalid size" in capsys.readouterr().err


def test_missing_store_is_one_clear_line(tmp_path: Path) -> None:
    assert_one_line_error(run("info", tmp_path / "nope", rc=None), "no Atlas store", "nope")


def test_log_progress_lines() -> None:
    out = io.StringIO()
    progress = LogProgress("ingest", interval=0.0, out=out)
    progress.start(4, 4096)
    progress.advance(1, 1024)
    progress.advance(3, 3072)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ingest: 1/4 files, 1.0 KiB/4.0 KiB, ") and "ETA" in lines[0]
    assert lines[1].startswith("ingest: 4/4 files, 4.0 KiB/4.0 KiB")
    quiet = io.StringIO()
    slow = LogProgress("ingest", interval=3600.0, out=quiet)
    slow.start(4, 4096)
    slow.advance(4, 4096)
    assert quiet.getvalue() == ""  # short runs stay silent


# ---------------------------------------------------------------------------- ingest


def test_ingest_summary_groups_warnings(built: tuple[Path, Path]) -> None:
    src, _ = built
    tmp = built[1].parent / "again"
    proc = run("ingest", src, tmp)
    out = proc.stdout
    assert out.startswith(f"created {tmp}: 6 datasets added from 6 files")
    assert "1 x GroupIgnoredWarning: group '…' ignored" in out
    assert "--verbose" in out and "grouped.nc" not in out
    verbose = run("ingest", src, tmp, "--update", "--verbose").stdout
    assert "0 datasets added" in verbose and "6 already present" in verbose


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
    assert_one_line_error(run("ingest", src, store, "--update", rc=None), "broken.nc", "unchanged")
    after = atlas.Atlas.open(store)
    assert (after.version, after.list_datasets()) == (before.version, before.list_datasets())


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


# ---------------------------------------------------------------------------- read commands


def test_ls_patterns_and_json(built: tuple[Path, Path]) -> None:
    _, store = built
    names = run("ls", store).stdout.split()
    assert names == ["north:grouped", "north:p0001", "north:p0003", "south:p0000", "south:p0002", "south:p0004"]
    assert json.loads(run("ls", store, "*:p000[13]", "--json").stdout) == ["north:p0001", "north:p0003"]


@pytest.mark.skipif(not hasattr(atlas.Atlas, "find"), reason="the catalogue (Atlas.find) is not available")
def test_find_and_ls_where(built: tuple[Path, Path]) -> None:
    _, store = built
    expr = "platform >= 1003 and platform <= 1004"
    assert run("find", store, expr).stdout.split() == ["north:p0003", "south:p0004"]
    where = run("ls", store, "north:*", "--where", expr, "--json").stdout
    assert json.loads(where) == ["north:p0003"]
    assert_one_line_error(run("find", store, "platform >>> 3", rc=None), "invalid")


def test_show_is_like_ncdump(built: tuple[Path, Path]) -> None:
    _, store = built
    out = run("show", store, "south:p0002").stdout
    assert out.startswith('dataset "south:p0002" {\ndimensions:\n\ttime = 1 ;\n\tdepth = 22 ;')
    assert "\tfloat32 temp(time, depth) ;\n" in out
    assert '\t\ttemp:units = "degree_Celsius" ;' in out
    assert "\t\t// fill NaN; 22 cells, 2 null; min " in out
    assert "\ttimestamp_nanoseconds time(time) ;  // coordinate" in out
    when = str(np.datetime64("2000-01-01T00:00:00", "ns") + np.timedelta64(int(8002.25 * 86400), "s"))
    assert f"fill NaT; 1 cells, 0 null; min {when}, max {when}" in out  # times as dates
    assert '\t\t:title = "test profile 2" ;' in out and "_pyatlas_coords" not in out
    assert '\t\ttemp_qc:flag_values = 0, 1, 4 ;' in out
    assert out.rstrip().endswith("}")
    info = json.loads(run("show", store, "south:p0002", "--json").stdout)
    temp = next(v for v in info["variables"] if v["name"] == "temp")
    assert temp["dtype"] == "float32" and temp["shape"] == [1, 22] and temp["fill_value"] == "NaN"
    assert temp["stats"]["null_count"] == 2 and temp["attributes"]["units"] == "degree_Celsius"
    assert info["dimensions"] == {"time": 1, "depth": 22}  # char arrays became strings
    assert "time" in info["coordinates"]
    assert_one_line_error(run("show", store, "south:p002", rc=None), "no dataset named", "did you mean")


def test_info(built: tuple[Path, Path]) -> None:
    _, store = built
    out = run("info", store).stdout
    assert "datasets:  6" in out and "codec:     zstd" in out
    info = json.loads(run("info", store, "--json").stdout)
    assert info["datasets"] == 6 and info["bytes_on_disk"] > 0 and info["version"] in info["versions"]
    # 9 arrays per NetCDF-4 file, 8 per NetCDF-3 one (no variable-length string)
    assert info["arrays"] == 4 * 9 + 2 * 8 and info["array_names"] == 9


def test_export_round_trip_value_by_value(built: tuple[Path, Path], tmp_path: Path) -> None:
    src, store = built
    out = tmp_path / "p3.nc"
    proc = run("export", store, "north:p0003", out)
    assert proc.stdout.startswith("wrote north:p0003 to")
    with xr.open_dataset(src / "north" / "p0003.nc") as original, xr.open_dataset(out) as exported:
        assert_same_values(original.load(), exported.load())
        assert exported.attrs["title"] == "test profile 3"
        assert exported["temp"].attrs["units"] == "degree_Celsius"
        assert set(exported.coords) == set(original.coords)
    assert_one_line_error(run("export", store, "north:p0003", out, rc=None), "--overwrite")
    run("export", store, "north:p0003", out, "--overwrite")


# ---------------------------------------------------------------------------- mutating commands


def test_rm_compact_and_verify(built: tuple[Path, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(built[1], store)
    assert_one_line_error(run("rm", store, "south:p0000", "nope", rc=None), "nope")
    assert len(atlas.Atlas.open(store).list_datasets()) == 6  # nothing was removed
    proc = run("rm", store, "south:p0000", "south:p0002")
    assert proc.stdout.startswith("removed 2 datasets")
    assert "south:p0000" not in atlas.Atlas.open(store).list_datasets()
    compact = json.loads(run("compact", store, "--prune-now", "--json").stdout)
    assert compact["bytes_after"] < compact["bytes_before"]
    assert "no problems found" in run("verify", store).stdout

    segment = max((store / "data").iterdir(), key=lambda p: p.stat().st_size)
    raw = bytearray(segment.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 8] = bytes(b ^ 0xFF for b in raw[mid : mid + 8])
    segment.write_bytes(bytes(raw))
    result = json.loads(run("verify", store, "--json", rc=1).stdout)
    assert result["ok"] is False and result["problems"]


def test_demo(tmp_path: Path) -> None:
    proc = run("demo", "--dir", tmp_path, "--files", "40", "--json")
    result = json.loads(proc.stdout)
    assert result["ingest"]["datasets_added"] == 40
    summary = result["summary"]
    assert summary["variable"] == "temperature" and summary["datasets"] == 40
    assert summary["count"] > 40 * 19 and -5 < summary["min"] < summary["mean"] < summary["max"] < 40
    assert (tmp_path / "profiles").is_dir() and (tmp_path / "profiles.atlas").is_dir()


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
