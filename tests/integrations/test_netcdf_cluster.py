"""``atlas.dask.ingest`` and ``atlas ingest --dask``: NetCDF files ingested by the process
workers of a ``distributed.LocalCluster`` give the store a local ingest gives."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atlas
import atlas.dask
from atlas.integrations.netcdf import IngestError, ingest_directory
from atlas.integrations.netcdf import cluster as cluster_module
from atlas.integrations.netcdf.synthetic import write_synthetic_profiles

distributed = pytest.importorskip("distributed")

ARGO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "argo"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic_profiles(folder, 40, seed=3, floats=5)
    return folder


def argo_files() -> list[Path]:
    """Every 12th profile file of the shared Argo sample (54 of 650)."""
    if not ARGO.is_dir():
        pytest.skip(f"the Argo sample is not here ({ARGO} is missing)")
    return sorted(ARGO.glob("**/profiles/*.nc"))[::12]


def local_ingest(sources: Any, path: Path, **options: Any) -> atlas.Atlas:
    ingest_directory(sources, path, jobs=1, **options)
    return atlas.Atlas.open(path)


def same_stores(got: atlas.Atlas, want: atlas.Atlas) -> None:
    """Names (in order), arrays, values, attributes and statistics are all the same."""
    assert got.list_datasets() == want.list_datasets()
    assert got.list_arrays() == want.list_arrays()
    for name in want.list_datasets():
        a, b = got.open_dataset(name), want.open_dataset(name)
        assert _plain(a.attributes()) == _plain(b.attributes()), name
        assert a.attribute_dtypes() == b.attribute_dtypes(), name
        assert a.list_arrays() == b.list_arrays(), name
        for arr in b.list_arrays():
            assert a.array_meta(arr) == b.array_meta(arr), (name, arr)
            assert _plain(a.array_fill_value(arr)) == _plain(b.array_fill_value(arr)), (name, arr)
            assert _plain(a.array_attributes(arr)) == _plain(b.array_attributes(arr)), (name, arr)
            assert _plain(a.array_stats(arr)) == _plain(b.array_stats(arr)), (name, arr)
            np.testing.assert_array_equal(a.read_array(arr), b.read_array(arr), err_msg=f"{name} {arr}")


def _plain(value: Any) -> Any:
    """A value with NaNs made comparable, and arrays as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


# ---------------------------------------------------------------------------- equal to a local ingest


def test_synthetic_files_on_a_cluster_equal_a_local_ingest(client: Any, synthetic: Path, tmp_path: Path) -> None:
    want = local_ingest(synthetic, tmp_path / "local")
    report = atlas.dask.ingest(synthetic, tmp_path / "cluster", client, task_files=6)
    assert len(report.added) == 40 and report.created and report.version == 1 and not report.skipped
    got = atlas.Atlas.open(tmp_path / "cluster")
    same_stores(got, want)
    assert got.verify() == []


def test_argo_files_on_a_cluster_equal_a_local_ingest(client: Any, tmp_path: Path) -> None:
    files = argo_files()
    want = local_ingest(files, tmp_path / "local", root=ARGO)
    report = atlas.dask.ingest(files, tmp_path / "cluster", client, root=ARGO, task_files=8)
    assert len(report.added) == len(files) and report.bytes_in == sum(p.stat().st_size for p in files)
    got = atlas.Atlas.open(tmp_path / "cluster")
    same_stores(got, want)
    assert got.verify() == [] and got.verify().unreferenced_files == 0


def test_a_cluster_ingests_into_s3(
    client: Any, synthetic: Path, tmp_path: Path, s3_bucket: str, s3_options: dict[str, Any]
) -> None:
    if ARGO.is_dir():
        sources, root = argo_files()[:30], ARGO
    else:
        sources, root = [synthetic], None
    want = local_ingest(sources, tmp_path / "local", root=root)
    location = f"s3://{s3_bucket}/argo"
    report = atlas.dask.ingest(sources, location, client, root=root, storage_options=s3_options, task_files=8)
    assert report.store == location and not report.skipped
    got = atlas.Atlas.open(location, **s3_options)
    same_stores(got, want)
    assert got.verify() == []


# ---------------------------------------------------------------------------- a worker killed


def _kill_after_writing_ahead() -> int:
    """In a worker: the first task to take its changes (its chunks written ahead into the
    store) then kills this process, as a machine lost mid-task would."""
    from atlas.core import changes

    real = changes.changes_of

    def changes_then_die(store: Any) -> Any:
        real(store)
        os.kill(os.getpid(), signal.SIGKILL)

    changes.changes_of = changes_then_die  # type: ignore[assignment]
    return os.getpid()


def test_a_worker_killed_mid_task_changes_nothing(client: Any, synthetic: Path, tmp_path: Path) -> None:
    want = local_ingest(synthetic, tmp_path / "local")
    victim = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(_kill_after_writing_ahead, workers=[victim])[victim]
    report = atlas.dask.ingest(synthetic, tmp_path / "cluster", client, task_files=4)
    assert len(report.added) == 40 and not report.skipped
    assert pid not in client.run(os.getpid).values()  # that worker died (its nanny started another)
    got = atlas.Atlas.open(tmp_path / "cluster")
    same_stores(got, want)
    check = got.verify()
    assert check == []
    assert check.unreferenced_files > 0  # the dead attempt's segments, named by no version
    got.compact(grace_period=0)
    assert got.verify().unreferenced_files == 0
    same_stores(atlas.Atlas.open(tmp_path / "cluster"), want)
    client.wait_for_workers(2)


# ---------------------------------------------------------------------------- reruns and failures


class _StopAfter:
    """Progress that stops the ingest after ``n`` files (as a client killed would)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.started = 0

    def start(self, files: int, nbytes: int) -> None:
        self.started = files

    def advance(self, files: int, nbytes: int) -> None:
        self.n -= files
        if self.n < 0:
            raise KeyboardInterrupt

    def stage(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_rerun_goes_on_from_the_last_commit(client: Any, synthetic: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(synthetic, source)
    want = local_ingest(source, tmp_path / "local")
    path = tmp_path / "cluster"
    with pytest.raises(KeyboardInterrupt):
        atlas.dask.ingest(
            source, path, client, skip_errors=True, commit_every_files=10, task_files=5, progress=_StopAfter(22)
        )
    stopped = atlas.Atlas.open(path)
    assert len(stopped.list_datasets()) == 20 and stopped.version == 2  # two commits of 10 files
    progress = _StopAfter(1000)
    report = atlas.dask.ingest(source, path, client, update=True, task_files=5, progress=progress)
    assert report.files_present == 20 and len(report.added) == 20 and progress.started == 20
    same_stores(atlas.Atlas.open(path), want)
    again = atlas.dask.ingest(source, path, client, update=True)
    assert again.files_present == 40 and not again.added
    # a file that changed replaces its dataset, as a local update does
    write_synthetic_profiles(source, 1, seed=9, floats=5)
    changed = atlas.dask.ingest(source, path, client, update=True)
    assert changed.replaced == ["5900000:profiles:5900000_001"] and changed.files_present == 39
    local_ingest(source, tmp_path / "local", update=True)
    same_stores(atlas.Atlas.open(path), atlas.Atlas.open(tmp_path / "local"))


@pytest.fixture
def with_a_bad_file(synthetic: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    write_synthetic_profiles(folder, 12, seed=3, floats=3)
    (folder / "5900001" / "profiles" / "5900001_002.nc").write_bytes(b"not a NetCDF file at all")
    return folder


def test_a_failing_file_commits_nothing(client: Any, with_a_bad_file: Path, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"5900001/profiles/5900001_002.nc: .*Nothing was committed"):
        atlas.dask.ingest(with_a_bad_file, tmp_path / "new", client, task_files=2)
    assert not (tmp_path / "new").exists()  # the store it created is removed
    existing = atlas.Atlas.create(tmp_path / "old")
    with pytest.raises(IngestError, match="the store is unchanged"):
        atlas.dask.ingest(with_a_bad_file, tmp_path / "old", client, task_files=2)
    assert atlas.Atlas.open(tmp_path / "old").version == existing.version
    with pytest.raises(IngestError, match="periodic commits need skip_errors"):
        atlas.dask.ingest(with_a_bad_file, tmp_path / "old", client, commit_every_files=5)


def test_skip_errors_commits_the_rest_and_records_the_failure(
    client: Any, with_a_bad_file: Path, tmp_path: Path
) -> None:
    want = local_ingest(with_a_bad_file, tmp_path / "local", skip_errors=True)
    report = atlas.dask.ingest(with_a_bad_file, tmp_path / "cluster", client, skip_errors=True, task_files=3)
    assert [f for f, _ in report.skipped] == ["5900001/profiles/5900001_002.nc"] and len(report.added) == 11
    same_stores(atlas.Atlas.open(tmp_path / "cluster"), want)
    log = json.loads((tmp_path / "cluster" / "ingest" / "failures.json").read_text())
    assert [f["file"] for f in log["failures"]] == ["5900001/profiles/5900001_002.nc"]
    again = atlas.dask.ingest(with_a_bad_file, tmp_path / "cluster", client, update=True, skip_errors=True)
    assert not again.added and [f for f, _ in again.failed_before] == ["5900001/profiles/5900001_002.nc"]


class _CrashOn(distributed.WorkerPlugin):
    """On every worker (those started again too): reading the file ``name`` kills the
    process, as a crash of the NetCDF library would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def setup(self, worker: Any) -> None:
        from atlas.integrations.netcdf import workers

        real, name = workers.read_file, self.name

        def read_file(path: str, max_inline: int) -> Any:
            if path.endswith(name):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, max_inline)

        workers.read_file = read_file  # type: ignore[assignment]


def test_a_file_that_kills_its_worker_fails_by_itself(synthetic: Path, tmp_path: Path) -> None:
    import dask

    bad = "5900002_003.nc"
    want = local_ingest(synthetic, tmp_path / "local", exclude=[bad])
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        c.register_plugin(_CrashOn(bad))
        report = atlas.dask.ingest(synthetic, tmp_path / "cluster", c, skip_errors=True, task_files=8)
    assert report.skipped == [("5900002/profiles/5900002_003.nc", cluster_module.WORKER_DIED)]
    assert len(report.added) == 39
    same_stores(atlas.Atlas.open(tmp_path / "cluster"), want)


# ---------------------------------------------------------------------------- the command line and set-up


def test_the_command_line_runs_a_local_cluster(synthetic: Path, tmp_path: Path, capsys: Any) -> None:
    from atlas.cli import main

    want = local_ingest(synthetic, tmp_path / "local")
    assert main(["ingest", str(synthetic), str(tmp_path / "cluster"), "--dask", "local:2", "-q"]) == 0
    assert "40 datasets added" in capsys.readouterr().out
    same_stores(atlas.Atlas.open(tmp_path / "cluster"), want)
    assert main(["ingest", str(synthetic), str(tmp_path / "x"), "--dask", "local:0"]) == 1
    assert "local:N" in capsys.readouterr().err
    assert main(["ingest", str(synthetic), str(tmp_path / "x"), "--dask", "local:2", "--jobs", "2"]) == 1
    assert "--jobs is for a local ingest" in capsys.readouterr().err


def test_without_distributed_the_error_says_what_to_install(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'atlas\[distributed\]'"):
        atlas.dask.ingest(synthetic, tmp_path / "s")
