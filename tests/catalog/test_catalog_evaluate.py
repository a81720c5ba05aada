"""Search semantics: predicates over attributes and statistics are exact, predicates over an
array's values a superset decided from min and max, NaN follows IEEE and the total order of
statistics, and values that cannot be compared are refused."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from catalog_helpers import NAN, OPS

import atlas
from atlas.catalog.columns import Column, object_array
from atlas.catalog.evaluate import ArrayValues, Evaluator, exact_compare
from atlas.catalog.predicate import parse


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


# ---------------------------------------------------------------------------------- the evaluator


def _column(kind: str, values: list[Any], nulls: list[bool], dtype: Any = None) -> Column:
    return Column(kind, np.array(values, dtype=dtype), np.array(nulls, dtype=bool))


def _evaluator(resolved: dict[str, Column | ArrayValues]) -> Evaluator:
    n = {len(r.mask if isinstance(r, Column) else r.declared.mask) for r in resolved.values()}.pop()
    return Evaluator(n, lambda name, text: resolved[name])


def _masks(evaluator: Evaluator, text: str) -> tuple[list[bool], list[bool]]:
    certain, possible = evaluator.evaluate(parse(text))
    return certain.tolist(), possible.tolist()


def test_exact_comparisons_of_ints_with_floats_and_beyond_the_dtype() -> None:
    ints = np.array([2**53, 2**53 + 1, -5], dtype=np.int64)
    assert exact_compare(ints, "==", 2**53 + 1).tolist() == [False, True, False]
    assert exact_compare(ints, ">", 2.0**53).tolist() == [False, True, False]
    assert exact_compare(ints, "<", -4.5).tolist() == [False, False, True]
    assert exact_compare(ints, ">=", -4.5).tolist() == [True, True, False]
    assert exact_compare(ints, "==", 1.5).tolist() == [False, False, False]
    assert exact_compare(ints, "<", math.inf).tolist() == [True, True, True]
    assert exact_compare(ints, "!=", NAN).tolist() == [True, True, True]
    assert exact_compare(ints, ">", 2**70).tolist() == [False, False, False]
    assert exact_compare(ints, ">", -(2**70)).tolist() == [True, True, True]
    floats = np.array([2.0**53, 1.5, NAN])
    assert exact_compare(floats, "==", 2**53 + 1).tolist() == [False, False, False]  # not rounded to 2**53
    assert exact_compare(floats, "<", 2**53 + 1).tolist() == [True, True, False]
    uints = np.array([2**64 - 1], dtype=np.uint64)
    assert exact_compare(uints, "==", 2**64 - 1).tolist() == [True]
    assert exact_compare(uints, ">", -1).tolist() == [True]


def test_an_arrays_values_give_certain_and_possible_datasets() -> None:
    # x in [0, 10], x == 5 everywhere, declared without statistics, not declared
    low = _column("float", [0.0, 5.0, 0.0, 0.0], [False, False, True, True])
    high = _column("float", [10.0, 5.0, 0.0, 0.0], [False, False, True, True])
    declared = _column("string", ["float64", "float64", "float64", ""], [False, False, False, True], object)
    evaluator = _evaluator({"x": ArrayValues(low, high, declared)})
    assert _masks(evaluator, "x == 5") == ([False, True, False, False], [True, True, False, False])
    assert _masks(evaluator, "not x == 5") == ([False, False, True, True], [True, False, True, True])
    assert _masks(evaluator, "x > 7") == ([True, False, False, False], [True, False, False, False])
    assert _masks(evaluator, "x != 5") == ([True, False, False, False], [True, False, False, False])
    assert _masks(evaluator, "x in [5, 20]") == ([False, True, False, False], [True, True, False, False])
    assert _masks(evaluator, "x not in [5]") == ([True, False, False, False], [True, False, False, False])
    assert _masks(evaluator, "isnull(x)") == ([False, False, False, True], [False, False, False, True])
    assert _masks(evaluator, "x == float('nan')") == ([False] * 4, [False] * 4)


def test_columns_compare_by_kind() -> None:
    evaluator = _evaluator({
        "i": _column("int", [1, -2, 0], [False, False, True], np.int64),
        "u": _column("uint", [2**64 - 1, 1, 0], [False, False, True], np.uint64),
        "f": _column("float", [1.0, NAN, 3.0], [False, False, False]),
        "s": _column("string", ["a", "b", ""], [False, False, True], object),
        "m": _column("object", [1, "1", None], [False, False, True], object),
        "shape": Column("shape", object_array([(1,), (2, 3), None]), np.array([False, False, True])),
    })
    assert _masks(evaluator, "u > i")[0] == [True, True, False]  # int64 vs uint64, exactly
    assert _masks(evaluator, "f == i")[0] == [True, False, False]
    assert _masks(evaluator, "f != i")[0] == [False, True, False]  # NaN != -2 (IEEE); null never
    assert _masks(evaluator, "m == 1")[0] == [True, False, False]  # "1" is not 1
    assert _masks(evaluator, "m > 0")[0] == [True, False, False]  # a str does not compare: False
    assert _masks(evaluator, "shape == (2, 3)")[0] == [False, True, False]
    assert _masks(evaluator, "s in ['b', 'c']")[0] == [False, True, False]
    assert _masks(evaluator, "s not in ['b']")[0] == [True, False, False]
    assert _masks(evaluator, "isnan(f) or isnull(s)")[0] == [False, True, True]
    for text, fragment in [("s > 1", "string values with 1"), ("s == i", "string with integer"),
                           ("shape < (2,)", "a shape compares")]:
        with pytest.raises(ValueError, match=fragment):
            evaluator.evaluate(parse(text))
