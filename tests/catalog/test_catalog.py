"""Catalogue and search: columns and types against a hand-written model, predicate semantics,
hostile predicate strings, and the guarantee that only metadata is used."""

from __future__ import annotations

import math
import operator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import atlas

NAN = float("nan")
OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
T0 = 1_609_459_200_000_000_000  # 2021-01-01T00:00:00 in ns


def _build(path: Path) -> atlas.Atlas:
    """A store with mixed schemas: missing arrays and attributes, a deleted dataset, an
    all-null array, an array never written, per-dataset dtypes, strings, bools, timestamps."""
    s = atlas.Atlas.create(path)
    a = s.create_dataset("a")
    a.set_attribute("station", "KNMI")
    a.set_attribute("year", 2021)
    a.set_attribute("lat", 52.1)
    a.set_attribute("ok", True)
    a.set_attribute("launch", T0, dtype="timestamp_nanoseconds")
    a.set_attribute("serial", 2**64 - 1, dtype="uint64")
    a.define_array("temperature", "float32", ["z"], [4], fill_value=NAN)
    a.write_array("temperature", [0], np.array([10, NAN, 31.5, -2], dtype=np.float32))
    a.define_array("depth", "float64", ["z"], [3])
    a.write_array("depth", [0], np.array([0.0, 500.0, 1200.0]))
    a.define_array("flag", "bool", ["z"], [2])
    a.write_array("flag", [0], np.array([False, False]))
    a.define_array("label", "string", ["z"], [2])
    a.write_array("label", [0], np.array(["x", "yy"], dtype=object))
    a.define_array("time", "timestamp_nanoseconds", ["t"], [2])
    a.write_array("time", [0], np.array([T0, T0 + 10**9], dtype=np.int64))
    a.define_array("qc", "int16", ["z"], [2])
    a.write_array("qc", [0], np.array([-3, 4], dtype=np.int16))

    b = s.create_dataset("b")
    b.set_attribute("year", "2021")  # a str here: the year column mixes kinds
    b.set_attribute("lat", float("nan"))
    b.set_attribute("ok", False)
    b.define_array("temperature", "float32", ["z"], [4], fill_value=NAN)
    b.write_array("temperature", [0], np.full(4, NAN, dtype=np.float32))  # all null
    b.define_array("depth", "float64", ["z"], [5])  # never written: no stats
    b.define_array("label", "string", ["z"], [1], fill_value="")
    b.write_array("label", [0], np.array(["KNMI"], dtype=object))

    c = s.create_dataset("c")  # deleted below
    c.set_attribute("station", "GONE")
    c.define_array("temperature", "float32", ["z"], [1])
    c.write_array("temperature", [0], np.array([99.0], dtype=np.float32))

    s.create_dataset("d")  # nothing at all

    e = s.create_dataset("e")
    e.set_attribute("station", "DWD")
    e.set_attribute("year", 2019)
    e.set_attribute("lat", -3)  # an int among floats
    e.define_array("temperature", "float64", ["z"], [2])  # another dtype for the same name
    e.write_array("temperature", [0], np.array([25.0, 35.0]))
    e.define_array("qc", "uint64", ["z"], [1])
    e.write_array("qc", [0], np.array([7], dtype=np.uint64))
    e.define_array("time", "timestamp_nanoseconds", ["t"], [1], fill_value=-(2**63))
    e.write_array("time", [0], np.array([-(2**63)], dtype=np.int64))  # NaT fill: all null
    s.flush()
    s.delete_dataset("c")
    s.flush()
    return s


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("catalog") / "store"
    _build(p)
    return p


@pytest.fixture(params=["reopened", "touched"])
def store(request: pytest.FixtureRequest, store_path: Path) -> atlas.Atlas:
    """The store as raw manifest records, and with every dataset materialised."""
    s = atlas.Atlas.open(store_path)
    if request.param == "touched":
        for n in s.list_datasets():
            s.open_dataset(n).attributes()
            for arr in s.open_dataset(n).list_arrays():
                s.open_dataset(n).array_stats(arr)
    return s


def _col(df: pd.DataFrame, name: str) -> list[Any]:
    return [None if (not isinstance(v, tuple) and pd.isna(v)) else v for v in df[name].tolist()]


# ---------------------------------------------------------------------------------- catalog


def test_catalog_rows_and_attribute_columns(store: atlas.Atlas) -> None:
    df = store.catalog(arrays=[])
    assert list(df.index) == ["a", "b", "d", "e"]
    assert df.index.name == "dataset"
    assert list(df.columns) == ["station", "year", "lat", "ok", "launch", "serial"]
    assert str(df["station"].dtype) == "string"
    assert _col(df, "station") == ["KNMI", None, None, "DWD"]
    assert df["year"].dtype == object  # int in some datasets, str in another
    assert _col(df, "year") == [2021, "2021", None, 2019]
    assert str(df["lat"].dtype) == "Float64"
    lat = df["lat"].array
    assert lat[0] == 52.1 and lat[3] == -3.0 and lat[2] is pd.NA
    assert math.isnan(lat._data[1]) and not lat._mask[1]  # a NaN value is not a missing value
    assert str(df["ok"].dtype) == "boolean"
    assert _col(df, "ok") == [True, False, None, None]
    assert df["launch"].dtype == np.dtype("datetime64[ns]")
    assert df["launch"].iloc[0] == pd.Timestamp("2021-01-01") and pd.isna(df["launch"].iloc[1])
    assert str(df["serial"].dtype) == "UInt64"
    assert df["serial"].iloc[0] == 2**64 - 1


def test_catalog_array_columns(store: atlas.Atlas) -> None:
    df = store.catalog(arrays=["temperature", "depth"], attributes=[])
    assert list(df.columns) == [
        f"{a}.{f}" for a in ("temperature", "depth")
        for f in ("dtype", "shape", "min", "max", "null_count", "row_count")
    ]
    assert _col(df, "temperature.dtype") == ["float32", "float32", None, "float64"]
    assert _col(df, "temperature.shape") == [(4,), (4,), None, (2,)]
    assert str(df["temperature.min"].dtype) == "Float64"
    assert _col(df, "temperature.min") == [-2.0, None, None, 25.0]  # b is all null
    assert _col(df, "temperature.max") == [31.5, None, None, 35.0]
    assert str(df["temperature.null_count"].dtype) == "Int64"
    assert _col(df, "temperature.null_count") == [1, 4, None, 0]
    assert _col(df, "temperature.row_count") == [4, 4, None, 2]
    assert _col(df, "depth.shape") == [(3,), (5,), None, None]
    assert _col(df, "depth.max") == [1200.0, None, None, None]  # b: never written
    assert _col(df, "depth.row_count") == [3, None, None, None]


def test_catalog_kinds_of_statistics(store: atlas.Atlas) -> None:
    df = store.catalog(arrays=["flag", "label", "time", "qc"], attributes=[])
    assert str(df["flag.min"].dtype) == "boolean"
    assert _col(df, "flag.max") == [False, None, None, None]
    assert str(df["label.min"].dtype) == "string"
    assert _col(df, "label.min") == ["x", "KNMI", None, None]
    assert _col(df, "label.max") == ["yy", "KNMI", None, None]
    assert df["time.min"].dtype == np.dtype("datetime64[ns]")
    assert df["time.max"].iloc[0] == pd.Timestamp("2021-01-01 00:00:01")
    assert pd.isna(df["time.min"].iloc[3]) and _col(df, "time.null_count")[3] == 1
    assert str(df["qc.min"].dtype) == "Int64"  # int16 and uint64 datasets
    assert _col(df, "qc.min") == [-3, None, None, 7]


def test_catalog_defaults_and_arguments(store: atlas.Atlas) -> None:
    df = store.catalog()
    arrays = store.list_arrays()
    assert arrays == ["depth", "flag", "label", "qc", "temperature", "time"]
    assert list(df.columns[:6]) == ["station", "year", "lat", "ok", "launch", "serial"]
    assert len(df.columns) == 6 + 6 * len(arrays)
    assert store.catalog(arrays=[], attributes=[]).shape == (4, 0)
    unknown = store.catalog(arrays=["nope"], attributes=["missing"])
    assert unknown.isna().all().all()
    with pytest.raises(TypeError):
        store.catalog(arrays="temperature")
    with pytest.raises(TypeError):
        store.catalog(attributes=[1])


def test_catalog_is_identical_for_raw_and_materialised_records(store_path: Path) -> None:
    raw = atlas.Atlas.open(store_path)
    touched = atlas.Atlas.open(store_path)
    for n in touched.list_datasets()[::2]:
        touched.open_dataset(n).attributes()
        for arr in touched.open_dataset(n).list_arrays():
            touched.open_dataset(n).array_stats(arr)
    pd.testing.assert_frame_equal(raw.catalog(), touched.catalog())


def test_catalog_reflects_live_state_and_last_flushed_stats(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    ds = s.create_dataset("x")
    ds.define_array("v", "int32", ["i"], [2])
    ds.write_array("v", [0], np.array([1, 2], dtype=np.int32))
    ds.set_attribute("k", 1)
    df = s.catalog()
    assert _col(df, "k") == [1] and _col(df, "v.dtype") == ["int32"]
    assert _col(df, "v.max") == [None]  # stats are computed at flush
    s.flush()
    assert _col(s.catalog(), "v.max") == [2]
    ds.write_array("v", [0], np.array([5, 9], dtype=np.int32))
    assert _col(s.catalog(), "v.max") == [2]  # as of the last flush, like array_stats
    s.flush()
    assert _col(s.catalog(), "v.max") == [9]
    assert s.find("v.max == 9") == ["x"]
    s.delete_dataset("x")
    assert s.catalog().shape[0] == 0 and s.find("k == 1") == []


def test_attribute_clashing_with_an_array_field_is_renamed(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    ds = s.create_dataset("x")
    ds.define_array("temperature", "float64", ["i"], [1])
    ds.write_array("temperature", [0], np.array([3.0]))
    ds.set_attribute("temperature.max", "not a number")  # an xarray-style variable attribute
    ds.set_attribute("temperature.units", "K")
    s.flush()
    df = s.catalog()
    assert _col(df, "attr:temperature.max") == ["not a number"]
    assert _col(df, "temperature.max") == [3.0]
    assert _col(df, "temperature.units") == ["K"]
    assert s.find("temperature.max == 3") == ["x"]
    assert s.find("`attr:temperature.max` == 'not a number'") == ["x"]
    assert s.find("temperature.units == 'K'") == ["x"]


def test_only_metadata_is_read(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = atlas.Atlas.open(store_path)
    calls: list[str] = []

    def boom(*args: Any, **kwargs: Any) -> Any:
        calls.append(repr(args)[:80])
        raise AssertionError("the catalogue must not read stored data")

    for meth in ("get", "get_many_ranges", "get_range"):
        if hasattr(s._storage, meth):
            monkeypatch.setattr(s._storage, meth, boom)
    s.catalog()
    s.find("temperature > 30 or label == 'x' or depth.max >= 1000")
    assert calls == []
    assert all(v.index is None for v in s._variables.values())  # no chunk index loaded
    assert all(isinstance(r, list) for r in s._datasets.values())  # nothing materialised


# ---------------------------------------------------------------------------------- find


def test_find_the_issue_example(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    for i, (station, tmax, dmax) in enumerate(
        [("KNMI", 31.0, 1500.0), ("KNMI", 29.0, 1500.0), ("DWD", 35.0, 2000.0), ("KNMI", 33.0, 800.0)]
    ):
        ds = s.create_dataset(f"p{i}")
        ds.set_attribute("station", station)
        ds.define_array("temperature", "float32", ["z"], [2])
        ds.write_array("temperature", [0], np.array([4.0, tmax], dtype=np.float32))
        ds.define_array("depth", "float64", ["z"], [2])
        ds.write_array("depth", [0], np.array([0.0, dmax]))
    s.flush()
    names = s.find("temperature.max > 30 and depth.max >= 1000 and station == 'KNMI'")
    assert names == ["p0"]
    assert [a.tolist() for a in s.read_array_across("temperature", names)] == [[4.0, 31.0]]
    assert s.find(station="KNMI") == ["p0", "p1", "p3"]
    assert s.find("temperature.max > 30", station=["DWD", "KNMI"]) == ["p0", "p2", "p3"]
    assert s.find(**{"depth.max": 1500}) == ["p0", "p1"]
    assert s.find() == s.list_datasets() == s.find("  ")


def test_find_attributes_exactly(store: atlas.Atlas) -> None:
    assert store.find("station == 'KNMI'") == ["a"]
    assert store.find("station != 'KNMI'") == ["e"]  # missing values never compare
    assert store.find("not station == 'KNMI'") == ["b", "d", "e"]
    assert store.find("station is None") == ["b", "d"]
    assert store.find("notnull(station)") == ["a", "e"]
    assert store.find("year == 2021") == ["a"]  # the str "2021" of b is not 2021
    assert store.find("year == '2021'") == ["b"]
    assert store.find("year > 2000") == ["a", "e"]
    assert store.find("lat < 0") == ["e"]
    assert store.find("lat >= -3.0 and lat <= 52.1") == ["a", "e"]
    assert store.find("isnan(lat)") == ["b"]
    assert store.find("lat != 1") == ["a", "b", "e"]  # NaN != 1 (IEEE)
    assert store.find("ok") == ["a"]
    assert store.find("not ok") == ["b", "d", "e"]
    assert store.find("ok == False") == ["b"]
    assert store.find("launch >= ts('2021-01-01')") == ["a"]
    assert store.find("launch < '2021-01-01T00:00:00.000000001'") == ["a"]
    assert store.find("launch > timestamp('2021-01-01T01:00+02:00')") == ["a"]  # tz-aware: UTC
    assert store.find("serial == 18446744073709551615") == ["a"]
    assert store.find("serial > 9223372036854775807") == ["a"]
    assert store.find("serial > 1e30") == []


def test_find_statistics_exactly(store: atlas.Atlas) -> None:
    assert store.find("temperature.max > 30") == ["a", "e"]
    assert store.find("temperature.max > 31.5") == ["e"]
    assert store.find("temperature.null_count > 0") == ["a", "b"]
    assert store.find("temperature.row_count == 4") == ["a", "b"]
    assert store.find("isnull(temperature.min)") == ["b", "d"]
    assert store.find("temperature.dtype == 'float64'") == ["e"]
    assert store.find("temperature.shape == (4,)") == ["a", "b"]
    assert store.find("depth.shape != (3,)") == ["b"]
    assert store.find("notnull(depth.dtype) and depth.row_count is None") == ["b"]
    assert store.find("label.min == 'KNMI'") == ["b"]
    assert store.find("flag.max == False") == ["a"]
    assert store.find("time.min >= '2021-01-01' and time.max < ts('2021-01-01 00:00:02')") == ["a"]
    assert store.find("qc.min < 0") == ["a"]
    assert store.find("qc.max > 5") == ["e"]
    assert store.find("0 < temperature.max <= 32") == ["a"]  # chained
    assert store.find("temperature.max > temperature.min") == ["a", "e"]  # column vs column
    assert store.find("qc.max >= serial") == []


def test_find_values_of_an_array_is_a_superset(store: atlas.Atlas) -> None:
    # some value above 30: decided exactly by max
    assert store.find("temperature > 30") == ["a", "e"]
    assert store.find("any(temperature) > 30") == ["a", "e"]
    assert store.find("temperature < 0") == ["a"]
    # an equality needs the data: every dataset whose range holds the value is returned
    assert store.find("temperature == 20") == ["a"]  # within [-2, 31.5]: possible
    assert store.find("temperature == 30") == ["a", "e"]
    assert store.find("temperature == 100") == []
    assert store.find("temperature in [20, 40]") == ["a"]
    assert store.find("label == 'KNMI'") == ["b"]  # min == max == 'KNMI': certain
    assert store.find("label == 'y'") == ["a"]  # 'x' <= 'y' <= 'yy': possible
    # negation keeps the superset: "no value is 20" may hold for a (it holds: no 20 there)
    assert store.find("not temperature == 20") == ["a", "b", "d", "e"]
    assert store.find("not label == 'KNMI'") == ["a", "d", "e"]  # b certainly has 'KNMI'
    assert store.find("label != 'KNMI'") == ["a"]
    assert store.find("isnull(depth)") == ["d", "e"]
    assert store.find("isnan(temperature)") == []


def test_values_superset_never_misses_a_match(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    s = atlas.Atlas.create(tmp_path / "s")
    data = {}
    for i in range(40):
        x = rng.integers(0, 20, int(rng.integers(1, 6))).astype(np.int64)
        data[f"d{i}"] = x
        ds = s.create_dataset(f"d{i}")
        ds.define_array("x", "int64", ["i"], [len(x)])
        ds.write_array("x", [0], x)
    s.flush()
    for c in range(-1, 22):
        for op in ("==", "!=", "<", "<=", ">", ">="):
            expr = f"x {op} {c}"
            truth = [n for n, x in data.items() if OPS[op](x, c).any()]
            found = s.find(expr)
            assert set(truth) <= set(found), expr
            if op != "==":
                assert found == truth, expr
            nfound = s.find(f"not ({expr})")
            ntruth = [n for n, x in data.items() if not OPS[op](x, c).any()]
            assert set(ntruth) <= set(nfound), expr
        members = [c, c + 3]
        truth = [n for n, x in data.items() if np.isin(x, members).any()]
        assert set(truth) <= set(s.find(f"x in {members}"))
        truth = [n for n, x in data.items() if (~np.isin(x, members)).any()]
        assert set(truth) <= set(s.find(f"x not in {members}"))


def test_find_quoted_names(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    ds = s.create_dataset("x")
    ds.set_attribute("sea level", 1.5)
    ds.set_attribute("class", "A")
    ds.set_attribute("ünï", 3)
    ds.set_attribute("a`b", 1)
    ds.define_array("my var", "int8", ["i"], [1])
    ds.write_array("my var", [0], np.array([4], dtype=np.int8))
    ds.define_array("a.b", "int8", ["i"], [1])
    ds.write_array("a.b", [0], np.array([5], dtype=np.int8))
    s.flush()
    assert s.find("`sea level` > 1") == ["x"]
    assert s.find("`class` == 'A'") == ["x"]
    assert s.find("ünï == 3") == ["x"]
    assert s.find("`my var`.max == 4 and `my var`.row_count == 1") == ["x"]
    assert s.find("`my var.max` == 4") == ["x"]
    assert s.find("a.b.max == 5 and `a.b`.min == 5 and any(`a.b`) == 5") == ["x"]
    assert s.find("`my var` == 4") == ["x"]
    ds.set_attribute("tag", "q`uote")
    assert s.find("tag == 'q`uote' or tag == \"`\"") == ["x"]  # backticks inside strings
    with pytest.raises(ValueError, match="unterminated"):
        s.find("`sea level > 1")


def test_find_rejects_type_mismatches_and_unknown_names(store: atlas.Atlas) -> None:
    for expr, fragment in [
        ("station == 3", "station == 3"),
        ("lat > 'x'", "lat > 'x'"),
        ("ok == 1", "ok == 1"),
        ("temperature.max > '3'", "temperature.max > '3'"),
        ("launch > 1.5", "launch > 1.5"),
        ("launch > 'not a date'", "not a date"),
        ("statoin == 'KNMI'", "statoin"),
        ("temperature.maxx > 1", "temperature.maxx"),
        ("any(station) > 1", "any(station)"),
        ("temperature > depth", "temperature > depth"),
        ("temperature.shape > (1,)", "temperature.shape > (1,)"),
        ("station", "station"),
    ]:
        with pytest.raises(ValueError, match="invalid predicate") as e:
            store.find(expr)
        assert fragment in str(e.value), (expr, str(e.value))
    with pytest.raises(TypeError):
        store.find(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.find(station=object())


HOSTILE = [
    "__import__('os').system('touch /tmp/atlas_pwned')",
    "open('/etc/passwd').read() == ''",
    "().__class__.__bases__[0].__subclasses__()",
    "station.__class__ == 1",
    "[x for x in ()]",
    "lambda: 1",
    "station == 'a' if 1 else 2",
    "(y := 1)",
    "station[0] == 'K'",
    "station == f'{1}'",
    "station == b'KNMI'",
    "year + 1 > 2",
    "year ** 999999 > 1",
    "-year > 1",
    "year == 1j",
    "year == ...",
    "year == {1: 2}",
    "year == [1, 2]",
    "year in year",
    "year in [station]",
    "year in [None]",
    "year == None",
    "year is 1",
    "ts(station) > 1",
    "ts('2021', tz='UTC') > 1",
    "float('1.5') > 1",
    "eval('1') == 1",
    "isnull(1)",
    "isnull(year, station)",
    "1 == 1",
    "station == 'x'; import os",
    "station = 'x'",
    "station == 'x' \\\n and 1",
    "station ==",
    "",
    "\x00",
    "year == 1" + " and (year == 1" * 300 + ")" * 300,
    "not " * 100_000 + "ok",
    "not " * 4_000 + "ok",
    "~" * 15_000 + "ok",
    "(" * 1000 + "ok" + ")" * 1000,
    "year == " + "9" * 5000,
    "`a`.`b`(1)",
    "`x` `y`",
    "__q0_ == 1",
]


@pytest.mark.parametrize("expr", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_predicates_are_rejected(store: atlas.Atlas, expr: str) -> None:
    if not expr:
        assert store.find(expr) == store.list_datasets()
        return
    with pytest.raises(ValueError, match="invalid predicate"):
        store.find(expr)
    assert not Path("/tmp/atlas_pwned").exists()


def test_nan_values_follow_the_total_order_of_statistics(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    for name, data in (("n", [NAN, 5.0, -1.0]), ("m", [-NAN, 2.0]), ("z", [-0.0, 0.0])):
        ds = s.create_dataset(name)
        ds.define_array("f", "float64", ["i"], [len(data)])  # no fill: NaN is a value
        ds.write_array("f", [0], np.array(data))
    s.flush()
    df = s.catalog(arrays=["f"])
    mx = df["f.max"].array
    assert math.isnan(mx._data[0]) and not mx._mask[0]  # NaN is the max, and not missing
    assert s.find("f.max > 3") == []  # IEEE on the statistic itself
    assert s.find("isnan(f.max)") == ["n"]
    assert s.find("isnan(f.min)") == ["m"]
    assert s.find("isnan(f)") == ["n", "m"]
    # over the values, a NaN bound leaves that side open: 5 > 3 is in n
    assert s.find("f > 3") == ["n"]
    assert s.find("f < 0") == ["n", "m"]
    assert s.find("f == 5") == ["n"]
    assert s.find("not f > 3") == ["n", "m", "z"]
    assert s.find("f == 0") == ["n", "m", "z"]  # 0 lies within every range (-0.0 == 0)
    assert s.find("f == -1.5") == ["m"]  # below n's min, within m's open lower side
    assert s.find("f.min == 0 and f.max == -0.0") == ["z"]
    assert s.find("f != 0") == ["n", "m"]


def test_catalog_follows_changes_after_earlier_calls(tmp_path: Path) -> None:
    """Repeated calls reuse what was read from the manifest; changes made since must show."""
    path = tmp_path / "s"
    s = atlas.Atlas.create(path)
    for i in range(30):
        ds = s.create_dataset(f"d{i:02d}")
        ds.set_attribute("k", i)
        ds.define_array("v", "int32" if i % 7 else "float64", ["i"], [2])
        if i % 5:
            data = np.array([i, 2 * i], dtype=np.int32 if i % 7 else np.float64)
            ds.write_array("v", [0], data)
    s.flush()

    def fresh() -> pd.DataFrame:
        return atlas.Atlas.open(path).catalog()

    s = atlas.Atlas.open(path)
    pd.testing.assert_frame_equal(s.catalog(), fresh())
    s.open_dataset("d03").set_attribute("k", "three")  # another kind in one materialised dataset
    s.open_dataset("d04").set_attribute("new", True)
    s.delete_dataset("d05")
    d = s.create_dataset("zz")
    d.define_array("v", "uint64", ["i"], [1])
    d.write_array("v", [0], np.array([2**64 - 1], dtype=np.uint64))
    s.open_dataset("d06").read_array("v")
    before = s.catalog()
    assert _col(before, "k")[3] == "three" and "d05" not in before.index and before.index[-1] == "zz"
    assert _col(before, "v.max")[-1] is None  # not flushed yet
    s.flush()
    after = s.catalog()
    pd.testing.assert_frame_equal(after, fresh())
    assert after["v.max"].dtype == object  # int32, float64 and uint64 beyond int64 together
    assert s.find("v.max > 18446744073709551614") == ["zz"]
    assert s.find("k == 'three' or new") == ["d03", "d04"]
    assert s.find("k >= 28") == ["d28", "d29"]
    s.delete_dataset("zz")
    s.open_dataset("d03").set_attribute("k", 3)
    pd.testing.assert_frame_equal(s.catalog(), s.catalog())
    assert str(s.catalog()["k"].dtype) == "Int64"
    assert s.find("k == 3") == ["d03"]
    for name in s.list_datasets()[::3]:  # most datasets gone from the snapshot
        s.delete_dataset(name)
    s.flush()
    pd.testing.assert_frame_equal(s.catalog(), fresh())
