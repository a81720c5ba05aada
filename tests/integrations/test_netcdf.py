"""NetCDF ingest (``atlas.integrations.netcdf``): round trips, streaming, atomicity, update
and skip-errors. Naming and finding files, and decoding one, are tested with their modules
(``test_netcdf_files.py``, ``test_netcdf_reading.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
from netcdf_helpers import assert_same_values, write_profile, write_tree

import atlas
from atlas.integrations.netcdf import (
    IngestError,
    dataset_name,
    find_netcdf_files,
    ingest_directory,
)

# write_profile, write_tree and assert_same_values live in netcdf_helpers; other tests
# that import them from test_netcdf still can.


def _same_attr(a: Any, b: Any) -> bool:
    if isinstance(a, (str, bytes)) or isinstance(b, (str, bytes)):
        return bool(a == b)
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


# ---------------------------------------------------------------------------- ingest


def test_ingest_round_trips_every_file(tmp_path: Path) -> None:
    paths = write_tree(tmp_path / "src", 6)
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    assert report.created and len(report.added) == 6 and not report.skipped
    assert report.bytes_in == sum(p.stat().st_size for p in paths)
    assert report.store_bytes_after and report.store_bytes_after > 0
    store = atlas.Atlas.open(tmp_path / "store")
    assert store.list_datasets() == [f.name for f in find_netcdf_files(tmp_path / "src")]
    for path in paths:
        name = dataset_name(path.relative_to(tmp_path / "src").as_posix())
        got = store.open_as_xarray_dataset(name)
        with xr.open_dataset(path) as expected:
            expected = expected.load()
            assert_same_values(expected, got)
            assert set(got.coords) == set(expected.coords)
            assert got.encoding["unlimited_dims"] == expected.encoding["unlimited_dims"] == set()
            for k, v in expected.attrs.items():
                assert _same_attr(v, got.attrs[k]), k
            for var in expected.variables:
                for k, v in expected[var].attrs.items():
                    assert _same_attr(v, got[var].attrs[k]), (var, k)


def test_ingest_with_worker_processes(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 18)
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=2)
    assert len(report.added) == 18
    store = atlas.Atlas.open(tmp_path / "store")
    assert len(store.list_datasets()) == 18
    assert store.verify() == []


def test_large_file_is_streamed_in_dask_blocks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    big = rng.normal(size=(200, 1000))
    with netCDF4.Dataset(src / "big.nc", "w") as nc:
        nc.createDimension("t", 200)
        nc.createDimension("x", 1000)
        v = nc.createVariable("field", "f8", ("t", "x"), fill_value=-1e30)
        v[:] = big
        nc.createVariable("t", "i4", ("t",))[:] = np.arange(200)
    report = ingest_directory(src, tmp_path / "store", jobs=1, chunk_size=200_000, max_inline_bytes=100_000)
    assert report.added == ["big"]
    view = atlas.Atlas.open(tmp_path / "store").open_dataset("big")
    meta = view.array_meta("field")
    assert meta is not None and meta["shape"] == [200, 1000] and meta["chunk_shape"] == [25, 1000]
    np.testing.assert_array_equal(view.read_array("field"), big)


def test_failure_leaves_an_existing_store_unchanged(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 3)
    ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    before = atlas.Atlas.open(tmp_path / "store")
    write_tree(tmp_path / "src", 2, start=3)
    (tmp_path / "src" / "zz_bad.nc").write_bytes(b"not netcdf at all")
    with pytest.raises(IngestError, match="zz_bad.nc.*unchanged"):
        ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1, update=True)
    after = atlas.Atlas.open(tmp_path / "store")
    assert after.version == before.version
    assert after.list_datasets() == before.list_datasets()


def test_failure_removes_a_store_it_created(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 2)
    (tmp_path / "src" / "bad.nc").write_bytes(b"garbage")
    with pytest.raises(IngestError, match="bad.nc"):
        ingest_directory(tmp_path / "src", tmp_path / "new", jobs=1)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError):
        ingest_directory(tmp_path / "src", tmp_path / "empty", jobs=1)
    assert (tmp_path / "empty").is_dir() and not os.listdir(tmp_path / "empty")


def test_refuses_a_non_empty_directory_that_is_not_a_store(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(IngestError, match="not an Atlas store"):
        ingest_directory(tmp_path / "src", tmp_path / "other", jobs=1)
    assert os.listdir(tmp_path / "other") == ["keep.txt"]


def test_skip_errors_commits_the_rest_and_says_why(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 3)
    (tmp_path / "src" / "bad.nc").write_bytes(b"garbage")
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1, skip_errors=True)
    assert len(report.added) == 3
    assert [f for f, _ in report.skipped] == ["bad.nc"]
    assert "bad" not in atlas.Atlas.open(tmp_path / "store").list_datasets()


def test_update_adds_only_new_files(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 3)
    ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    with pytest.raises(IngestError, match="--update"):
        ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    write_tree(tmp_path / "src", 2, start=3)
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1, update=True)
    assert report.files_present == 3 and len(report.added) == 2 and not report.created
    assert len(atlas.Atlas.open(tmp_path / "store").list_datasets()) == 5
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1, update=True)
    assert report.added == [] and report.files_present == 5


def test_name_collisions_are_refused_or_skipped(tmp_path: Path) -> None:
    write_profile(tmp_path / "src" / "a.nc")
    write_profile(tmp_path / "src" / "a.nc4")
    with pytest.raises(IngestError, match="both become dataset 'a'"):
        ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1, skip_errors=True)
    assert report.added == ["a"] and [f for f, _ in report.skipped] == ["a.nc4"]


def test_no_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(IngestError, match="found no NetCDF files"):
        ingest_directory(tmp_path / "src", tmp_path / "store")
    assert not (tmp_path / "store").exists()
