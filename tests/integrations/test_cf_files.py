"""Real and generated NetCDF files go in through ``atlas ingest`` and come back unchanged.

For every file: ``xr.open_dataset(src, decode_cf=False)`` and the same of the file
``atlas export`` writes are identical (variables and their order, dims with the char
``STRINGnn`` dims, dtypes, attributes with their types, values NaN-aware), and
``open_as_xarray_dataset`` gives what ``xr.open_dataset(src)`` gives (dtypes, values, attrs
and ``.encoding``'s ``_FillValue``, units, calendar and dtype).

The shared Argo sample (``../shared/data/argo``) gives one file of every kind (a profile,
``_prof``, ``_meta``, ``_tech``, ``_Rtraj``, and the ``_Rtraj`` whose dates before 1900
decode to cftime); generated files add what it lacks: other calendars, unlimited dims,
NC_STRING variables, scale_factor/add_offset packing, NETCDF4 types.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Any

import cftime
import netCDF4
import numpy as np
import pytest
import xarray as xr

import atlas
from atlas.cli import main as cli_main
from atlas.integrations.netcdf import dataset_name, ingest_directory

ARGO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "argo"


def _argo_kinds() -> list[Any]:
    if not ARGO.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"real Argo sample not found at {ARGO}"))]
    picks = {
        "profile": sorted(ARGO.glob("aoml/*/profiles/*.nc"))[:1],
        "prof": sorted(ARGO.glob("*/*/*_prof.nc"))[:1],
        "meta": sorted(ARGO.glob("*/*/*_meta.nc"))[:1],
        "tech": sorted(ARGO.glob("*/*/*_tech.nc"))[:1],
        "Rtraj": sorted(ARGO.glob("csiro/*/*_Rtraj.nc"))[:1],
        "Rtraj-cftime": sorted(ARGO.glob("kma/*/*_Rtraj.nc"))[:1],  # JULD before 1900
    }
    return [
        pytest.param(files[0], id=kind) if files
        else pytest.param(None, id=kind, marks=pytest.mark.skip(reason=f"no {kind} file under {ARGO}"))
        for kind, files in picks.items()
    ]


def _same_value(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def assert_same_file(src: Path, out: Path) -> None:
    """The on-disk (decode_cf=False) views of two files are identical, types included."""
    with xr.open_dataset(src, decode_cf=False) as a, xr.open_dataset(out, decode_cf=False) as b:
        assert list(a.variables) == list(b.variables)
        xr.testing.assert_identical(a, b)
        for k in a.variables:
            va, vb = a[k].variable, b[k].variable
            assert va.dims == vb.dims and va.dtype == vb.dtype, k
            assert set(va.attrs) == set(vb.attrs), k
            for name in va.attrs:
                assert _same_value(va.attrs[name], vb.attrs[name]), (k, name, va.attrs[name], vb.attrs[name])
        assert list(a.attrs) == list(b.attrs)
        assert a.encoding.get("unlimited_dims", set()) == b.encoding.get("unlimited_dims", set())


def assert_same_decoded(src: Path, got: xr.Dataset) -> None:
    """``open_as_xarray_dataset`` agrees with ``xr.open_dataset`` of the source."""
    with xr.open_dataset(src) as want:
        assert list(want.variables) == list(got.variables)
        assert set(want.coords) == set(got.coords)
        for k in want.variables:
            w, g = want[k].variable, got[k].variable
            # str may come as U or object (xarray's own suite allows either for strings)
            assert w.dtype == g.dtype or {w.dtype.kind, g.dtype.kind} <= {"U", "O"}, k
            assert w.equals(g), k
            assert set(w.attrs) == set(g.attrs), k
            for key in ("_FillValue", "units", "calendar", "dtype"):
                assert (key in w.encoding) == (key in g.encoding), (k, key)
                if key == "dtype" and {np.dtype(w.encoding[key]).kind, np.dtype(g.encoding[key]).kind} <= {"U", "O"}:
                    continue  # a vlen str: xarray says U or object
                if key in w.encoding:
                    assert _same_value(w.encoding[key], g.encoding[key]), (k, key)


def _ingest_and_export(files: list[Path], root: Path, tmp_path: Path, fmt: str = "NETCDF4") -> tuple[atlas.Atlas, list[Path]]:
    store_path = tmp_path / "store"
    report = ingest_directory(root, store_path, jobs=1)
    assert report.skipped == [] and len(report.added) == len(files)
    outs = []
    for f in files:
        name = dataset_name(f.relative_to(root).as_posix())
        out = tmp_path / f"{name.replace(':', '_')}.out.nc"
        assert cli_main(["export", str(store_path), name, str(out), "--format", fmt]) == 0
        outs.append(out)
    return atlas.Atlas.open(store_path), outs


@pytest.mark.parametrize("src", _argo_kinds())
def test_every_argo_file_kind_round_trips(src: Path, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "f").mkdir(parents=True)
    os.symlink(src, root / "f" / src.name)
    umask = os.umask(0o027)
    try:
        store, (out,) = _ingest_and_export([root / "f" / src.name], root, tmp_path, fmt="source")
    finally:
        os.umask(umask)
    with netCDF4.Dataset(out) as nc:
        assert nc.data_model == "NETCDF3_CLASSIC"  # --format source: the source's own
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # a new file's usual mode, the umask's
    assert_same_file(src, out)
    name = dataset_name(f"f/{src.name}")
    nc4 = tmp_path / "nc4.nc"
    assert cli_main(["export", str(tmp_path / "store"), name, str(nc4), "--format", "NETCDF4"]) == 0
    with netCDF4.Dataset(nc4) as nc:
        assert nc.data_model == "NETCDF4"
    assert_same_file(src, nc4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xr.SerializationWarning)  # cftime dates, as xarray warns
        got = store.open_as_xarray_dataset(name)
        assert_same_decoded(src, got)
        with xr.open_dataset(tmp_path / "store", engine="atlas", group=name) as eng:
            xr.testing.assert_identical(got, eng)


def test_cftime_dates_are_stored_as_their_numbers(tmp_path: Path) -> None:
    """Dates xarray decodes to cftime (a non-standard calendar) are held as the CF numbers."""
    root = tmp_path / "gen"
    _generated(root)
    ingest_directory(root, tmp_path / "s", jobs=1)
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("calendars")
    assert view.array_meta("noleap")["dtype"] == "float64"
    assert view.array_meta("old")["dtype"] == "float64"  # year 1500: outside datetime64[ns]
    with xr.open_dataset(root / "calendars.nc", decode_cf=False) as raw:
        np.testing.assert_array_equal(view.read_array("noleap"), raw.noleap.values)


def _generated(root: Path) -> list[Path]:
    """Files covering what the Argo sample lacks."""
    root.mkdir(parents=True)
    paths = []
    p = root / "calendars.nc"  # non-standard calendars and dates outside datetime64[ns]
    with netCDF4.Dataset(p, "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)  # unlimited
        nc.createDimension("n", 3)
        for name, cal, units in (
            ("noleap", "noleap", "days since 0001-01-01"), ("d360", "360_day", "hours since 2000-01-01"),
            ("old", "standard", "days since 1500-01-01"), ("julian", "julian", "days since 1800-01-01"),
        ):
            v = nc.createVariable(name, "f8", ("time",), fill_value=-1.0)
            v.units, v.calendar = units, cal
            # no masked cell: xarray decodes one as the reference date, not NaT
            v[0:4] = [0.0, 31.5, 60.25, 400.0]
        t = nc.createVariable("td", "i4", ("time",))
        t.units = "seconds"
        t[0:4] = [0, 60, 3600, 86400]
        nc.title = "calendars"
    paths.append(p)
    p = root / "netcdf4.nc"  # NC_STRING, packing, unsigned, int64, groups of attributes
    with netCDF4.Dataset(p, "w", format="NETCDF4") as nc:
        nc.createDimension("x", 4)
        nc.createDimension("c", 5)
        s = nc.createVariable("names", str, ("x",))
        s[:] = np.array(["a", "bcd", "", "é"], dtype=object)
        s.long_name = "vlen strings"
        packed = nc.createVariable("temp", "i2", ("x",), fill_value=np.int16(-32768))
        packed.set_auto_maskandscale(False)
        packed.scale_factor, packed.add_offset = np.float32(0.01), np.float32(20.0)
        packed.units = "degC"
        packed[:] = np.array([0, 150, -32768, -200], dtype="i2")
        u = nc.createVariable("count", "u2", ("x",), fill_value=np.uint16(65535))
        u[:] = np.array([1, 2, 65535, 4], dtype="u2")
        big = nc.createVariable("big", "i8", ("x",))
        big[:] = np.array([2**40, -1, 0, 7], dtype="i8")
        big.valid_range = np.array([-(2**50), 2**50], dtype="i8")
        chars = nc.createVariable("code", "S1", ("x", "c"), fill_value=b" ")
        chars[:] = netCDF4.stringtochar(np.array([b"ab", b"cdefg", b"", b"  "], dtype="S5"))
        nc.history = "generated"
        nc.setncattr("float_attr", np.float32(1.5))
    paths.append(p)
    return paths


def test_generated_files_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "gen"
    files = _generated(root)
    store, outs = _ingest_and_export(files, root, tmp_path)
    for src, out in zip(files, outs, strict=True):
        assert_same_file(src, out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", xr.SerializationWarning)
            assert_same_decoded(src, store.open_as_xarray_dataset(dataset_name(src.name)))
    cal = store.open_as_xarray_dataset("calendars")
    assert isinstance(cal.noleap.values[0], cftime.DatetimeNoLeap)
    assert cal.noleap.encoding["calendar"] == "noleap"
    assert cal.encoding["unlimited_dims"] == {"time"}
    packed = store.open_dataset("netcdf4").read_array("temp")
    np.testing.assert_allclose(packed, [20.0, 21.5, np.nan, 18.0], rtol=1e-6)  # physical in scans


def _written_by_other_tools(root: Path) -> Path:
    """What xarray's own encoding does not give back: masked and sub-microsecond cftime
    dates, ``_Unsigned`` without a ``_FillValue``, a date variable whose last cell is
    missing."""
    root.mkdir(parents=True)
    p = root / "others.nc"
    with netCDF4.Dataset(p, "w", format="NETCDF4") as nc:
        nc.createDimension("n", 3)
        for name, cal in (("d360", "360_day"), ("noleap", "noleap"), ("old", "standard"), ("std", "standard")):
            v = nc.createVariable(name, "f8", ("n",), fill_value=-999.0)
            v.units = "days since 1500-01-01" if name == "old" else "days since 2000-01-01"
            v.calendar = cal
            v[:] = [0.5, -999.0, -999.0] if name == "std" else [0.123456789012345, 12345.678901234567, -999.0]
        for name, extra in (("u_plain", {}), ("u_missing", {"missing_value": np.int8(-1)})):
            u = nc.createVariable(name, "i1", ("n",))
            u.set_auto_maskandscale(False)
            u._Unsigned = "true"
            for k, value in extra.items():
                u.setncattr(k, value)
            u[:] = np.array([0, 10, -1], "i1")
    return p


def test_files_of_other_tools_round_trip(tmp_path: Path) -> None:
    src = _written_by_other_tools(tmp_path / "gen")
    for fmt in ("NETCDF4", "NETCDF3_CLASSIC"):
        store, (out,) = _ingest_and_export([src], src.parent, tmp_path / fmt, fmt=fmt)
        assert_same_file(src, out)  # the file's own numbers, the fill where masked, _Unsigned
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xr.SerializationWarning)
        got = store.open_as_xarray_dataset("others")  # "std" ends with NaT
        assert_same_decoded(src, got)
        with xr.open_dataset(src) as want:
            xr.testing.assert_identical(want, got)
        assert got.u_plain.dtype == np.dtype("u1") and got.u_plain.values.tolist() == [0, 10, 255]
    view = store.open_dataset("others")
    np.testing.assert_array_equal(view.read_array("d360"), [0.123456789012345, 12345.678901234567, -999.0])
    assert view.array_fill_value("d360") == -999.0
    # a file too large to decode whole is streamed: the same numbers
    ingest_directory(src.parent, tmp_path / "streamed", jobs=1, max_inline_bytes=1, chunk_size=1 << 20)
    assert cli_main(["export", str(tmp_path / "streamed"), "others", str(tmp_path / "streamed.nc")]) == 0
    assert_same_file(src, tmp_path / "streamed.nc")


def test_decode_options_match_xarray(tmp_path: Path) -> None:
    root = tmp_path / "gen"
    files = _generated(root)
    store_path = tmp_path / "store"
    ingest_directory(root, store_path, jobs=1)
    store = atlas.Atlas.open(store_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xr.SerializationWarning)
        for options in (
            {"decode_cf": False}, {"mask_and_scale": False}, {"decode_times": False},
            {"use_cftime": True}, {"concat_characters": False}, {"decode_timedelta": True},
            {"drop_variables": ["temp"]},
        ):
            for src in files:
                name = dataset_name(src.name)
                with xr.open_dataset(src, **options) as want:
                    got = store.open_as_xarray_dataset(name, **options)
                    xr.testing.assert_identical(want, got)
                    with xr.open_dataset(store_path, engine="atlas", group=name, **options) as eng:
                        xr.testing.assert_identical(want, eng)


def test_attribute_edits_win_over_the_record(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = xr.Dataset({"t": ("x", np.arange(3.0, dtype="f4"), {"units": "K", "long_name": "temp"})}, attrs={"a": 1})
    view = store.add_xarray_dataset(ds, "d", encoding={"t": {"dtype": "i2", "scale_factor": 0.5}})
    view.set_attribute("t.units", "degC")  # the 0.10 layout stays the catalogue's and editable
    view.set_attribute("t.comment", "new")
    view.set_attribute("b", "two")
    out = store.open_as_xarray_dataset("d")
    assert out.t.attrs == {"units": "degC", "long_name": "temp", "comment": "new"}
    assert out.attrs == {"a": 1, "b": "two"}
    assert out.t.encoding["scale_factor"] == 0.5 and out.t.encoding["dtype"] == np.dtype("i2")


def test_datasets_without_the_record_open_as_before(tmp_path: Path) -> None:
    """A dataset written before the CF record existed (simulated by blanking it: the API
    deletes no attribute) opens in the 0.10 layout: explicit fills as _FillValue
    attributes, nothing decoded."""
    store = atlas.Atlas.create(tmp_path / "s")
    ds = xr.Dataset({"i": ("x", np.array([1, -1, 3], "i4"), {"_FillValue": np.int32(-1)})})
    view = store.add_xarray_dataset(ds, "old")
    view.set_attribute("_pyatlas_cf", "")
    store.flush()
    out = atlas.Atlas.open(tmp_path / "s").open_as_xarray_dataset("old")
    assert out.i.dtype == np.dtype("i4") and out.i.attrs == {"_FillValue": -1}
    np.testing.assert_array_equal(out.i.values, [1, -1, 3])


def test_a_failing_variable_is_named(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = xr.Dataset({"ok": ("x", [1.0]), "waves": ("x", np.array([1 + 2j]))})
    with pytest.raises(NotImplementedError, match="'waves'"):
        store.add_xarray_dataset(ds, "d")
    with pytest.raises(ValueError, match="unexpected encoding parameters for variable 'ok'"):
        store.add_xarray_dataset(ds.drop_vars("waves"), "d", encoding={"ok": {"bogus": 1}})
    assert store.list_datasets() == []


def test_float16_is_held_as_float32_and_given_back_as_float16(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = xr.Dataset({"h": ("x", np.array([1.5, np.nan, -2.25], dtype="f2"))})
    view = store.add_xarray_dataset(ds, "d")
    assert view.array_meta("h")["dtype"] == "float32"
    out = store.open_as_xarray_dataset("d")
    assert out.h.dtype == np.dtype("f2") and out.h.encoding["dtype"] == np.dtype("f2")
    xr.testing.assert_identical(out, ds)


def test_remembered_encodings_are_what_encoding_again_gives(tmp_path: Path) -> None:
    """Files of one kind share encodings of their number and bytes variables: a file
    encoded after another of its kind is encoded as it is alone."""
    from atlas.integrations import cf

    files = sorted(ARGO.glob("*/*/profiles/*.nc"))[:40:4] + _generated(tmp_path / "gen")
    if len(files) < 4:
        pytest.skip(f"real Argo sample not found at {ARGO}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = []
        for f in files:
            with xr.open_dataset(f) as ds:
                decoded.append(ds.load())
        alone = []
        for ds in decoded:
            cf._ENCODED.clear()
            alone.append(cf.encode_dataset(ds).record())
        cf._ENCODED.clear()
        together = [cf.encode_dataset(ds).record() for ds in decoded]
    assert cf._ENCODED  # remembered
    assert together == alone


def test_nul_padded_text_keeps_its_char_dimension_and_no_coordinates_are_added(tmp_path: Path) -> None:
    """Text in a char array padded with NULs and decoded by its ``_Encoding`` (shorter than
    the array's char dimension) is written back at the dimension's width, without xarray's
    warning; variables that had no ``coordinates`` attribute get none."""
    from atlas.integrations.netcdf import write_synthetic_profiles

    files = write_synthetic_profiles(tmp_path / "src", 2)
    store_path = tmp_path / "store"
    report = ingest_directory(tmp_path / "src", store_path, jobs=1)
    assert report.skipped == [] and not [w for w in report.warnings if "String dimension" in w.message]
    store = atlas.Atlas.open(store_path)
    for f in files:
        name = dataset_name(f.relative_to(tmp_path / "src").as_posix())
        out = tmp_path / f"{name.replace(':', '_')}.nc"
        assert cli_main(["export", str(store_path), name, str(out)]) == 0
        assert_same_file(f, out)
        assert_same_decoded(f, store.open_as_xarray_dataset(name))
        with xr.open_dataset(out, decode_cf=False) as got:
            assert got["platform_id"].dims[-1] == "string16" and "coordinates" not in got["platform_id"].attrs
