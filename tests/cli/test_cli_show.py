"""``atlas show``: one dataset described like ``ncdump -h``, or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cli_helpers import assert_one_line_error, run


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

