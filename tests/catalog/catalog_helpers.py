"""Test helpers of the catalogue: a store mixing every case, and columns as Python values."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import atlas

NAN = float("nan")
OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
T0 = 1_609_459_200_000_000_000  # 2021-01-01T00:00:00 in ns


def build_store(path: Path) -> atlas.Atlas:
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


def column_values(df: pd.DataFrame, name: str) -> list[Any]:
    """A catalogue column as Python values, None where missing (tuples stay)."""
    return [None if (not isinstance(v, tuple) and pd.isna(v)) else v for v in df[name].tolist()]
