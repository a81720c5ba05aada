"""``atlas show``: one dataset described like ``ncdump -h``, or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from cli_helpers import assert_one_line_error, run

import atlas
from atlas.cli import describe_dataset


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


def test_show_agrees_with_open_as_xarray_dataset(tmp_path: Path) -> None:
    """Coordinates and attributes are xarray's, also where the conventions are subtle."""
    store = atlas.Atlas.create(tmp_path / "store")
    core = store.create_dataset("core")  # written without xarray: no coordinates marker
    core.define_array("z", "float64", ["z"], [3])
    core.write_array("z", [0], np.arange(3.0))
    core.define_array("q", "int16", ["z"], [3], None, -1)
    core.write_array("q", [0], np.array([1, 2, 3], dtype="int16"))
    core.set_attribute("q.units", "count")
    core.set_array_attribute("q", "units", "own")
    core.set_array_attribute("q", "long_name", "quality")
    core.set_attribute("listed", "json:[1, 2]")
    ds = xr.Dataset(
        {"t": ("x", np.array([1.5, 2.5], dtype="float32"), {"_FillValue": -999.0, "units": "K"})},
        coords={"x": [10, 20]},
        attrs={"title": "t"},
    )
    store.add_xarray_dataset(ds, "xr")
    store.flush()
    for name in ("core", "xr"):
        info = describe_dataset(store, name)
        xds = store.open_as_xarray_dataset(name, decode_cf=False)  # the on-disk attributes, as ncdump
        assert info["coordinates"] == list(xds.coords)
        assert info["attributes"] == xds.attrs
        for v in info["variables"]:
            assert v["coordinate"] == (v["name"] in xds.coords)
            assert v["attributes"] == xds[v["name"]].attrs
    out = run("show", tmp_path / "store", "core").stdout
    assert "\tfloat64 z(z) ;  // coordinate\n" in out
    assert '\t\tq:units = "count" ;\n\t\tq:long_name = "quality" ;\n\t\tq:_FillValue = -1 ;\n' in out
    assert "\t\t:listed = 1, 2 ;" in out
    out = run("show", tmp_path / "store", "xr").stdout
    assert '\t\tt:units = "K" ;\n' in out and "\t\tt:_FillValue = -999.0 ;\n" in out  # on-disk order
    assert "\t\t// fill -999.0; 2 cells" in out


def test_show_takes_a_group_by_its_path_in_the_file(built: tuple[Path, Path]) -> None:
    _, store = built
    out = run("show", store, "north:grouped/engineering").stdout
    assert "float32 battery(n) ;" in out and ':comment = "engineering data" ;' in out
    assert out == run("show", store, "north:grouped#engineering").stdout.replace(
        "north:grouped#engineering", "north:grouped/engineering"
    )
    assert_one_line_error(run("show", store, "north:grouped/nope", rc=None), "no group '/nope'")
