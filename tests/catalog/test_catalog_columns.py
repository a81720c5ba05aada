"""Typed columns: the kind manifest values are given, and their merging and projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from atlas.catalog.columns import Column, merge_columns, relocated, scatter, typed_column
from atlas.dtypes import encode_float
from atlas.errors import CorruptionError


def _typed(values: list[object], dtypes: list[str], n: int = 4) -> Column:
    rows = np.arange(len(values), dtype=np.intp)
    return typed_column(n, rows, values, dtypes, dtypes, "metadata of here")


def test_values_are_typed_by_their_dtypes() -> None:
    assert _typed([1, -2], ["int8", "int64"]).kind == "int"
    assert _typed([2**64 - 1], ["uint64"]).kind == "uint"
    assert _typed([1, 2], ["uint8", "uint32"]).kind == "int"
    floats = _typed([1.5, encode_float(math.nan), 3], ["float32", "float64", "int32"])  # NaN as the manifest has it
    assert floats.kind == "float" and np.isnan(floats.values[1]) and floats.mask.tolist() == [False] * 3 + [True]
    assert _typed([True], ["bool"]).kind == "bool"
    assert _typed(["a"], ["string"]).kind == "string"
    assert _typed([0], ["timestamp_nanoseconds"]).kind == "timestamp"
    assert _typed([], []).kind == "null"


def test_values_that_no_numpy_dtype_holds_exactly_stay_python_values() -> None:
    mixed = _typed([1, "x"], ["int32", "string"])
    assert mixed.kind == "object" and mixed.values[:2].tolist() == [1, "x"]
    beyond = _typed([2**64 - 1, -1], ["uint64", "int8"])  # no int64 or uint64 holds both
    assert beyond.kind == "object" and beyond.values[:2].tolist() == [2**64 - 1, -1]
    inexact = _typed([2**53 + 1, 0.5], ["int64", "float64"])  # not exact as a float64
    assert inexact.kind == "object" and inexact.values[0] == 2**53 + 1


def test_malformed_values_name_where_they_are() -> None:
    with pytest.raises(CorruptionError, match="metadata of here"):
        _typed(["zz"], ["int32"])
    with pytest.raises(CorruptionError, match="bad encoded float 'nan'"):
        _typed([1.5, "nan", 3], ["float64", "float64", "int32"])
    with pytest.raises(CorruptionError, match="unknown dtype"):
        _typed([1], ["int33"])


def test_merging_and_relocating_columns() -> None:
    a = Column("int", np.array([1, 0, 0]), np.array([False, True, True]))
    b = Column("int", np.array([0, 7, 0]), np.array([True, False, True]))
    merged = merge_columns(a, b)
    assert merged is not None and merged.values[:2].tolist() == [1, 7] and merged.mask.tolist() == [False, False, True]
    assert merge_columns(a, Column("string", np.array(["", "x", ""], dtype=object), b.mask)) is None
    moved = relocated(merged, np.array([2, -1, 0], dtype=np.intp), 4)
    assert moved.values[2] == 1 and moved.mask.tolist() == [True, True, False, True]


def test_a_column_every_row_fills_takes_its_values_as_they_are() -> None:
    values = np.array([3, 1, 2], dtype=np.int64)
    out, mask = scatter(3, np.arange(3), values, 0, np.int64)
    assert out is values and not mask.any()  # nothing filled, then overwritten
    out, mask = scatter(4, np.array([0, 2, 3]), values, -1, np.int64)
    assert out.tolist() == [3, -1, 1, 2] and mask.tolist() == [False, True, False, False]
    out, mask = scatter(3, np.array([0, 2, 1]), values, 0, np.int64)  # not in order: placed
    assert out.tolist() == [3, 2, 1] and not mask.any()
