"""NetCDF-4 groups go in and come back: every group of a file becomes a dataset
(``FILE#GROUP:PATH``), ``open_as_xarray_dataset("FILE/GROUP/PATH")`` gives what
``xr.open_dataset(file, group="GROUP/PATH")`` gives, ``atlas export`` rebuilds the file with
its groups, and ``--update`` replaces a file's datasets together."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
from test_cf_files import assert_same_decoded

import atlas
from atlas.cli import main as cli_main
from atlas.integrations.groups import place_of, resolve
from atlas.integrations.netcdf import IngestError, ingest_directory
from atlas.integrations.netcdf.provenance import recorded

#: The groups of the file ``write_grouped`` writes, as xarray names them, parents first.
GROUPS = ["/", "/engineering", "/engineering/battery", "/empty", "/notes"]


def write_grouped(path: Path, seed: int = 0, with_notes: bool = True) -> Path:
    """A NetCDF-4 file with nested groups: group-local dimensions, dimensions used from the
    parent and the root (one unlimited), attributes on groups, an empty group, a group of
    attributes only, CF-decoded times, strings and packed values in a group."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = f"float {seed}"
        nc.platform = np.int32(7000 + seed)
        nc.createDimension("n_prof", 2)
        nc.createDimension("time", None)  # unlimited, used only in a group
        nc.createDimension("unused", 5)  # used by no variable at all
        pres = nc.createVariable("pres", "f4", ("n_prof",), fill_value=np.float32(99999.0))
        pres.units = "decibar"
        pres[:] = [5.0, 10.0 + seed]
        eng = nc.createGroup("engineering")
        eng.comment = "engineering data"
        eng.setncattr("sensor_count", np.int16(3))
        eng.createDimension("n_sensor", 3)
        eng.createDimension("strlen", 8)
        t = eng.createVariable("time", "f8", ("time",))  # the root's unlimited dimension
        t.units = "days since 2000-01-01"
        t.calendar = "standard"
        t[0:4] = 9000.5 + np.arange(4) + seed
        temp = eng.createVariable("board_temp", "i2", ("n_prof", "n_sensor"), fill_value=np.int16(-32768))
        temp.scale_factor, temp.add_offset = 0.01, 20.0
        temp.set_auto_maskandscale(False)
        temp[:] = rng.integers(-500, 500, (2, 3)).astype("i2")
        temp[1, 2] = -32768
        name = eng.createVariable("sensor_name", "S1", ("n_sensor", "strlen"))
        name[:] = netCDF4.stringtochar(np.array([b"CTD", b"OXY", b"PH"], dtype="S8"))
        label = eng.createVariable("label", str, ("n_sensor",))
        label[:] = np.array(["a", f"b{seed}", "é"], dtype=object)
        bat = eng.createGroup("battery")
        bat.note = "deeper"
        bat.createDimension("n_cell", 4)
        volts = bat.createVariable("volts", "f4", ("n_sensor", "n_cell"))  # the parent's dimension
        volts.units = "V"
        volts[:] = (12 + rng.normal(0, 0.1, (3, 4))).astype("f4")
        count = bat.createVariable("cycles", "i4", ("n_prof",))  # the root's
        count[:] = [10 + seed, 11]
        nc.createGroup("empty")
        if with_notes:
            notes = nc.createGroup("notes")
            notes.history = "written by the atlas tests"
            notes.setncattr("values", np.array([1.5, 2.5], dtype="f8"))
    return path


def _walk(nc: Any) -> list[Any]:
    out = [nc]
    for g in nc.groups.values():
        out.extend(_walk(g))
    return out


def _layout(path: Path) -> list[tuple[str, list[tuple[str, int, bool]], list[str]]]:
    """Each group's path, the dimensions it defines (in order) and its variables (their
    order is xarray's, compared by ``assert_same_group``)."""
    with netCDF4.Dataset(path) as nc:
        return [
            (g.path, [(n, len(d), d.isunlimited()) for n, d in g.dimensions.items()], sorted(g.variables))
            for g in _walk(nc)
        ]


def _same_value(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def assert_same_group(src: Path, out: Path, group: str) -> None:
    """One group of two files, on disk (decode_cf=False): identical, types included."""
    with xr.open_dataset(src, group=group, decode_cf=False) as a, xr.open_dataset(out, group=group, decode_cf=False) as b:
        xr.testing.assert_identical(a, b)
        assert list(a.variables) == list(b.variables) and list(a.attrs) == list(b.attrs)
        assert dict(a.sizes) == dict(b.sizes)
        for k in a.variables:
            assert a[k].dtype == b[k].dtype and a[k].dims == b[k].dims, k
            for name in a[k].attrs:
                assert _same_value(a[k].attrs[name], b[k].attrs[name]), (k, name)
        for name in a.attrs:
            assert _same_value(a.attrs[name], b.attrs[name]), name
        assert a.encoding.get("unlimited_dims") == b.encoding.get("unlimited_dims")


@pytest.fixture
def grouped(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    write_grouped(src / "floats" / "f1.nc")
    write_grouped(src / "floats" / "f2.nc", seed=1)
    report = ingest_directory(src, tmp_path / "store", jobs=1)
    assert report.skipped == []
    return src, tmp_path / "store"


def test_every_group_is_a_dataset(grouped: tuple[Path, Path]) -> None:
    _, store_path = grouped
    store = atlas.Atlas.open(store_path)
    names = ["floats:f1", "floats:f1#engineering", "floats:f1#engineering:battery", "floats:f1#empty", "floats:f1#notes"]
    assert store.list_datasets() == names + [n.replace("f1", "f2") for n in names]
    root = place_of(store.open_dataset("floats:f1"))
    assert root is not None and root.path == "/" and root.parent is None
    assert root.dims == [("n_prof", 2, False), ("time", 4, True), ("unused", 5, False)]
    assert root.subgroups == names[1:]
    deep = place_of(store.open_dataset("floats:f1#engineering:battery"))
    assert deep is not None
    assert (deep.path, deep.parent, deep.dims) == ("/engineering/battery", "floats:f1#engineering", [("n_cell", 4, False)])
    # every dataset of a file records the file as its source
    sources = {recorded(store.open_dataset(n)) for n in names}
    assert len(sources) == 1 and next(iter(sources)).path == "floats/f1.nc"  # type: ignore[union-attr]
    # FILE/GROUP/PATH names a group's dataset as xarray names the group
    assert resolve(store, "floats:f1/engineering/battery") == "floats:f1#engineering:battery"
    assert resolve(store, "floats:f1/") == "floats:f1"
    with pytest.raises(KeyError, match="no group '/nope'"):
        resolve(store, "floats:f1/nope")


@pytest.mark.parametrize("group", GROUPS)
def test_open_as_xarray_dataset_gives_what_xarray_gives_of_the_group(grouped: tuple[Path, Path], group: str) -> None:
    src, store_path = grouped
    store = atlas.Atlas.open(store_path)
    name = "floats:f1" + ("" if group == "/" else group)
    for options in ({}, {"decode_cf": False}, {"decode_times": False}):
        with xr.open_dataset(src / "floats" / "f1.nc", group=group, **options) as want:
            xr.testing.assert_identical(want.load(), store.open_as_xarray_dataset(name, **options).load())
            with xr.open_dataset(store_path, engine="atlas", group=name, **options) as eng:
                xr.testing.assert_identical(want.load(), eng.load())
    got = store.open_as_xarray_dataset(name)
    assert_same_decoded_group(src / "floats" / "f1.nc", group, got)


def assert_same_decoded_group(src: Path, group: str, got: xr.Dataset) -> None:
    """As ``assert_same_decoded`` of test_cf_files, for one group."""
    with xr.open_dataset(src, group=group) as want:
        assert want.encoding["unlimited_dims"] == got.encoding["unlimited_dims"]
    if group == "/":
        assert_same_decoded(src, got)
        return
    with xr.open_dataset(src, group=group) as want:
        assert list(want.variables) == list(got.variables)
        for k in want.variables:
            w, g = want[k].variable, got[k].variable
            assert w.equals(g) and w.attrs.keys() == g.attrs.keys(), k
            for key in ("_FillValue", "units", "calendar", "scale_factor"):
                assert (key in w.encoding) == (key in g.encoding), (k, key)


def test_export_rebuilds_the_file_with_its_groups(grouped: tuple[Path, Path], tmp_path: Path) -> None:
    src, store_path = grouped
    out = tmp_path / "f1.out.nc"
    assert cli_main(["export", str(store_path), "floats:f1", str(out)]) == 0
    original = src / "floats" / "f1.nc"
    assert _layout(out) == _layout(original)  # groups, their own dimensions, variables
    for group in GROUPS:
        assert_same_group(original, out, group)
    with netCDF4.Dataset(out) as nc, netCDF4.Dataset(original) as orig:
        assert nc.groups["empty"].ncattrs() == [] and not nc.groups["empty"].variables
        assert nc.groups["notes"].__dict__.keys() == orig.groups["notes"].__dict__.keys()
        np.testing.assert_array_equal(nc.groups["notes"].values, orig.groups["notes"].values)
    # a group's dataset exports as a file of it and the groups under it
    part = tmp_path / "eng.nc"
    assert cli_main(["export", str(store_path), "floats:f1/engineering", str(part)]) == 0
    with netCDF4.Dataset(part) as nc:
        assert list(nc.groups) == ["battery"] and set(nc.variables) == {"time", "board_temp", "sensor_name", "label"}
    with xr.open_dataset(part, group="battery", decode_cf=False) as a, xr.open_dataset(
        original, group="engineering/battery", decode_cf=False
    ) as b:
        xr.testing.assert_identical(a, b)


def test_export_refuses_a_format_without_groups(grouped: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    _, store_path = grouped
    code = cli_main(["export", str(store_path), "floats:f1", str(tmp_path / "x.nc"), "--format", "NETCDF3_CLASSIC"])
    assert code == 1 and "only the NETCDF4 format" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


def test_large_files_with_groups_are_streamed_group_by_group(tmp_path: Path) -> None:
    src = tmp_path / "src"
    path = write_grouped(src / "f1.nc")
    ingest_directory(src, tmp_path / "streamed", jobs=1, max_inline_bytes=10)
    ingest_directory(src, tmp_path / "inline", jobs=1)
    streamed, inline = atlas.Atlas.open(tmp_path / "streamed"), atlas.Atlas.open(tmp_path / "inline")
    assert streamed.list_datasets() == inline.list_datasets()
    for group in GROUPS:
        name = "f1" + ("" if group == "/" else group)
        with xr.open_dataset(path, group=group) as want:
            xr.testing.assert_identical(want.load(), streamed.open_as_xarray_dataset(name).load())
    assert place_of(streamed.open_dataset("f1")) == place_of(inline.open_dataset("f1"))


def test_update_replaces_all_datasets_of_a_changed_file(grouped: tuple[Path, Path]) -> None:
    src, store_path = grouped
    version = atlas.Atlas.open(store_path).version
    report = ingest_directory(src, store_path, jobs=1, update=True)
    assert report.added == [] and report.files_present == 2
    assert atlas.Atlas.open(store_path).version == version
    f2 = src / "floats" / "f2.nc"
    os.remove(f2)
    write_grouped(f2, seed=5, with_notes=False)  # one group fewer, other values
    report = ingest_directory(src, store_path, jobs=1, update=True)
    names = ["floats:f2", "floats:f2#engineering", "floats:f2#engineering:battery", "floats:f2#empty"]
    assert report.added == names and report.replaced == names and report.files_present == 1
    store = atlas.Atlas.open(store_path)
    assert not store.dataset_exists("floats:f2#notes")
    assert [n for n in store.list_datasets() if n.startswith("floats:f2")] == names
    root = place_of(store.open_dataset("floats:f2"))
    assert root is not None and root.subgroups == names[1:]
    with xr.open_dataset(f2, group="engineering/battery") as want:
        xr.testing.assert_identical(want.load(), store.open_as_xarray_dataset("floats:f2/engineering/battery").load())
    digests = {recorded(store.open_dataset(n)).sha256 for n in names}  # type: ignore[union-attr]
    assert len(digests) == 1
    assert store.verify() == []


def test_a_file_fails_whole_when_one_of_its_groups_cannot_be_stored(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_grouped(src / "a.nc")
    bad = write_grouped(src / "b.nc", seed=2)
    with netCDF4.Dataset(bad, "a") as nc:
        g = nc.groups["engineering"].groups["battery"]
        cmplx = g.createCompoundType(np.dtype([("re", "f8"), ("im", "f8")]), "complex128")
        v = g.createVariable("impedance", cmplx, ("n_cell",))
        v[:] = np.zeros(4, dtype=[("re", "f8"), ("im", "f8")])
    with pytest.raises(IngestError, match="b.nc"):
        ingest_directory(src, tmp_path / "strict", jobs=1)
    report = ingest_directory(src, tmp_path / "store", jobs=1, skip_errors=True)
    assert [f for f, _ in report.skipped] == ["b.nc"]
    assert [n for n in atlas.Atlas.open(tmp_path / "store").list_datasets() if n.startswith("b")] == []


def test_a_group_whose_name_is_taken_fails_its_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_grouped(src / "f.nc")
    write_grouped(src / "f#empty.nc", seed=3, with_notes=False)  # its root group is dataset "f#empty"
    report = ingest_directory(src, tmp_path / "store", jobs=1, skip_errors=True)
    ((file, reason),) = report.skipped
    assert file == "f.nc" and "its group /empty would be dataset 'f#empty' of f#empty.nc" in reason
    store = atlas.Atlas.open(tmp_path / "store")
    assert [n for n in store.list_datasets() if not n.startswith("f#empty")] == []


def test_the_ingest_report_and_json_name_every_dataset(grouped: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    src, _ = grouped
    assert cli_main(["ingest", str(src), str(tmp_path / "again"), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["datasets_added"] == 10 and report["files_found"] == 2 and report["skipped"] == []
