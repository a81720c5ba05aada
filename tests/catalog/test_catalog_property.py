"""Property test: ``catalog()`` and ``find()`` against brute force on the data written.

Random stores mix every dtype, missing and all-null arrays, arrays never written, deleted
datasets and attributes of mixed kinds. The expected statistics are recomputed from the
numpy data with the rules of the spec, and random predicates are evaluated on them in plain
Python. Predicates over attributes and statistics must match exactly; predicates over an
array's values (``x > 3`` meaning "some value of x") must never miss a dataset.
"""

from __future__ import annotations

import math
import operator
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import atlas
from atlas.storage import MemoryStorage

NAT = -(2**63)
T0 = 1_609_459_200_000_000_000
OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
FIELDS = ("dtype", "shape", "min", "max", "null_count", "row_count")

# array name -> (dtypes it may take, fills it may take, cell values)
ARRAYS: dict[str, tuple[list[str], list[Any], list[Any]]] = {
    "f": (["float32", "float64"], [None, float("nan"), 0.0], [float("nan"), -float("nan"), -0.0, 0.0, 1.5, -2.0, 3.0, float("inf"), -float("inf")]),
    "i": (["int8", "int32", "int64", "uint8"], [None, 0, 3], [0, 1, 2, 3, 5, 100]),
    "u": (["uint64"], [None, 0], [0, 7, 2**63, 2**64 - 1]),
    "s": (["string"], [None, ""], ["", "a", "b", "KNMI", "é", "ab"]),
    "t": (["timestamp_nanoseconds"], [None, NAT], [NAT, 0, 10**9, T0, T0 + 1]),
    "b": (["bool"], [None, False], [False, True]),
}

# attribute key -> strategy of (value, forced dtype or None)
ATTRS: dict[str, st.SearchStrategy[tuple[Any, str | None]]] = {
    "station": st.sampled_from(["KNMI", "DWD", "a", ""]).map(lambda v: (v, None)),
    "year": st.integers(2015, 2024).map(lambda v: (v, None)),
    "mixed": st.one_of(st.integers(-2, 2), st.sampled_from(["1", "x"])).map(lambda v: (v, None)),
    "lat": st.one_of(
        st.sampled_from([-1.5, 0.0, -0.0, 2.5, float("nan"), float("inf")]), st.integers(-3, 3)
    ).map(lambda v: (v, None)),
    "flag": st.booleans().map(lambda v: (v, None)),
    "when": st.sampled_from([0, T0, T0 + 1, NAT]).map(lambda v: (v, "timestamp_nanoseconds")),
    "n8": st.integers(-128, 127).map(lambda v: (v, "int8")),
    "big": st.sampled_from([0, 2**63, 2**64 - 1]).map(lambda v: (v, "uint64")),
}


@dataclass
class ArraySpec:
    dtype: str
    fill: Any
    data: list[Any] | None  # None: never written


@dataclass
class DatasetSpec:
    name: str
    attrs: dict[str, tuple[Any, str | None]]
    arrays: dict[str, ArraySpec]
    deleted: bool


@dataclass
class Model:
    names: list[str]
    attrs: list[dict[str, Any]]
    arrays: list[dict[str, dict[str, Any]]] = field(default_factory=list)


@st.composite
def array_spec(draw: st.DrawFn, name: str) -> ArraySpec:
    dtypes, fills, values = ARRAYS[name]
    dtype = draw(st.sampled_from(dtypes))
    fill = draw(st.sampled_from(fills))
    data = draw(st.none() | st.lists(st.sampled_from(values), min_size=1, max_size=4))
    if dtype == "uint8" and data is not None:
        data = [min(v, 255) for v in data]
    if dtype == "int8" and data is not None:
        data = [min(v, 127) for v in data]
    return ArraySpec(dtype, fill, data)


@st.composite
def dataset_spec(draw: st.DrawFn, i: int) -> DatasetSpec:
    keys = draw(st.lists(st.sampled_from(sorted(ATTRS)), unique=True))
    attrs = {k: draw(ATTRS[k]) for k in keys}
    names = draw(st.lists(st.sampled_from(sorted(ARRAYS)), unique=True))
    arrays = {a: draw(array_spec(a)) for a in names}
    return DatasetSpec(f"d{i}", attrs, arrays, draw(st.sampled_from([False, False, True])))


def _np_data(spec: ArraySpec) -> np.ndarray:
    assert spec.data is not None
    if spec.dtype == "string":
        return np.array(spec.data, dtype=object)
    if spec.dtype == "timestamp_nanoseconds":
        return np.array(spec.data, dtype=np.int64)
    return np.array(spec.data, dtype=spec.dtype)


def _fkey(x: float) -> int:
    """IEEE total order key of a float."""
    bits = struct.unpack(">q", struct.pack(">d", x))[0]
    return bits ^ ((bits >> 63) & 0x7FFFFFFFFFFFFFFF)


def _brute_stats(spec: ArraySpec) -> tuple[dict[str, Any] | None, list[Any]]:
    """Expected stats and non-null values, from the data as written (spec rules)."""
    if spec.data is None:
        return None, []
    cells = _np_data(spec).tolist()
    if spec.dtype in ("float32", "float64"):
        cells = [float(v) for v in cells]
    fill = spec.fill
    if fill is None:
        values = cells
    elif isinstance(fill, float) and math.isnan(fill):
        values = [v for v in cells if not math.isnan(v)]
    else:
        values = [v for v in cells if v != fill]  # 0.0 matches -0.0
    key = _fkey if spec.dtype.startswith("float") else None
    stats = {
        "row_count": len(cells),
        "null_count": len(cells) - len(values),
        "min": min(values, key=key) if values else None,
        "max": max(values, key=key) if values else None,
    }
    return stats, values


def _build(specs: list[DatasetSpec], mode: str, touch: list[bool]) -> tuple[atlas.Atlas, Model]:
    """The store, as the writer's handle (``fresh``), reopened (``reopen``: raw manifest
    records), or reopened, catalogued, then partly materialised (``mixed``)."""
    mem = MemoryStorage()
    s = atlas.Atlas.create(mem)
    for spec in specs:
        ds = s.create_dataset(spec.name)
        for k, (v, dtype) in spec.attrs.items():
            ds.set_attribute(k, v, dtype=dtype)
        for a, arr in spec.arrays.items():
            ds.define_array(a, arr.dtype, ["i"], [len(arr.data) if arr.data else 3], fill_value=arr.fill)
            if arr.data is not None:
                ds.write_array(a, [0], _np_data(arr))
    s.flush()
    for spec in specs:
        if spec.deleted:
            s.delete_dataset(spec.name)
    if mode != "fresh":
        s.flush()
        s = atlas.Atlas.open(mem)
    if mode == "mixed":
        s.catalog()  # remembers the raw records...
        for name, t in zip(s.list_datasets(), touch, strict=False):
            if t:  # ...some of which become DatasetState objects
                view = s.open_dataset(name)
                view.attributes()
                for a in view.list_arrays():
                    view.array_stats(a)
    live = [sp for sp in specs if not sp.deleted]
    model = Model([sp.name for sp in live], [{k: v for k, (v, _) in sp.attrs.items()} for sp in live])
    for sp in live:
        arrays = {}
        for a, arr in sp.arrays.items():
            stats, values = _brute_stats(arr)
            arrays[a] = {
                "dtype": arr.dtype,
                "shape": (len(arr.data) if arr.data else 3,),
                "stats": stats,
                "values": values,
            }
        model.arrays.append(arrays)
    return s, model


# ------------------------------------------------------------------------------ the catalogue


def _values(df: pd.DataFrame, col: str) -> list[Any]:
    """A catalogue column as Python values, None where missing (NaN values stay NaN)."""
    arr = df[col].array
    if isinstance(arr, pd.arrays.FloatingArray):
        return [None if m else float(v) for v, m in zip(arr._data.tolist(), arr._mask.tolist(), strict=True)]
    if df[col].dtype == np.dtype("datetime64[ns]"):
        ns = df[col].to_numpy().view(np.int64).tolist()
        return [None if v == NAT else v for v in ns]
    isna = df[col].isna().tolist() if df[col].dtype != object else [v is pd.NA for v in df[col]]
    vals = df[col].tolist()
    return [None if m else (v.item() if isinstance(v, np.generic) else v) for v, m in zip(vals, isna, strict=True)]


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (floats bit for bit)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and struct.pack(">d", a) == struct.pack(">d", b)
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _expected_field(model: Model, i: int, a: str | None, f: str | None) -> Any:
    arr = model.arrays[i].get(a)
    if arr is None:
        return None
    if f in ("dtype", "shape"):
        return arr[f]
    return None if arr["stats"] is None else arr["stats"][f]


def _check_catalog(s: atlas.Atlas, model: Model) -> None:
    df = s.catalog()
    assert list(df.index) == model.names
    keys = sorted({k for attrs in model.attrs for k in attrs})
    assert sorted(c for c in df.columns if "." not in c) == keys
    columns = [(k, None, None) for k in keys] + [(f"{a}.{f}", a, f) for a in s.list_arrays() for f in FIELDS]
    for col, a, f in columns:
        got_col = _values(df, col)
        for i, got in enumerate(got_col):
            exp = model.attrs[i].get(col) if a is None else _expected_field(model, i, a, f)
            if exp == NAT and isinstance(exp, int):
                is_ts = col == "when" or (a is not None and _expected_field(model, i, a, "dtype") == "timestamp_nanoseconds")
                if is_ts:
                    exp = None  # NaT shows as missing in a datetime column (documented)
            if isinstance(exp, int) and not isinstance(exp, bool) and isinstance(got, float):
                exp = float(exp)  # ints among floats
            assert (exp is None and got is None) or _same(exp, got), (model.names[i], col, exp, got)


# ------------------------------------------------------------------------------ predicates


@dataclass
class Pred:
    text: str
    exact: bool
    # (model, row) -> bool
    fn: Any


def _render(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "float('nan')"
        if math.isinf(v):
            return "float('inf')" if v > 0 else "float('-inf')"
        return repr(v)
    return repr(v)


def _cmp(v: Any, op: str, c: Any) -> bool:
    if v is None:
        return False
    try:
        return bool(OPS[op](v, c))
    except TypeError:
        return False


def _name_value(model: Model, i: int, name: str) -> Any:
    if "." in name:
        a, f = name.split(".")
        return _expected_field(model, i, a, f)
    return model.attrs[i].get(name)


@st.composite
def atom(draw: st.DrawFn, model: Model) -> Pred | None:
    rows = range(len(model.names))
    choice = draw(st.sampled_from(["attr", "field", "values", "null", "nan", "in"]))
    if choice in ("attr", "null", "nan", "in"):
        keys = sorted({k for attrs in model.attrs for k in attrs})
        fields = sorted({f"{a}.{f}" for arrs in model.arrays for a in arrs for f in FIELDS})
        pool = keys + (fields if choice != "attr" else [])
        if not pool:
            return None
        name = draw(st.sampled_from(pool))
    elif choice == "field":
        fields = sorted({f"{a}.{f}" for arrs in model.arrays for a in arrs for f in ("min", "max", "null_count", "row_count")})
        if not fields:
            return None
        name = draw(st.sampled_from(fields))
    else:
        arrays = sorted({a for arrs in model.arrays for a, x in arrs.items()})
        if not arrays:
            return None
        name = draw(st.sampled_from(arrays))
    if choice == "null":
        neg = draw(st.booleans())
        return Pred(
            f"{'notnull' if neg else 'isnull'}({name})",
            True,
            lambda m, i: (_name_value(m, i, name) is not None) == neg,
        )
    if choice == "nan":
        if name.endswith((".dtype", ".shape")):
            return None
        return Pred(
            f"isnan({name})", True, lambda m, i: isinstance(v := _name_value(m, i, name), float) and math.isnan(v)
        )
    if choice == "values":
        existing = [v for i in rows for v in model.arrays[i].get(name, {}).get("values", [])]
        if not existing:
            return None
        c = draw(st.sampled_from(existing))
        if isinstance(c, int) and not isinstance(c, bool) and draw(st.booleans()):
            c = c + draw(st.sampled_from([-1, 1]))
        op = draw(st.sampled_from(sorted(OPS)))
        return Pred(
            f"{name} {op} {_render(c)}",
            False,
            lambda m, i: any(_cmp(v, op, c) for v in m.arrays[i].get(name, {}).get("values", [])),
        )
    existing = [v for i in rows if (v := _name_value(model, i, name)) is not None]
    if not existing:
        return None
    c = draw(st.sampled_from(existing))
    if isinstance(c, int) and not isinstance(c, bool) and draw(st.booleans()):
        c = c + draw(st.sampled_from([-1, 1]))
    if name.endswith(".dtype") or name.endswith(".shape"):
        op = draw(st.sampled_from(["==", "!="]))
    else:
        op = draw(st.sampled_from(sorted(OPS)))
    if choice == "in":
        c2 = draw(st.sampled_from(existing))
        if isinstance(c, tuple) or isinstance(c2, tuple):
            return None
        neg = draw(st.booleans())
        return Pred(
            f"{name} {'not in' if neg else 'in'} [{_render(c)}, {_render(c2)}]",
            True,
            lambda m, i: (v := _name_value(m, i, name)) is not None
            and (any(_cmp(v, '==', x) for x in (c, c2)) != neg),
        )
    return Pred(f"{name} {op} {_render(c)}", True, lambda m, i: _cmp(_name_value(m, i, name), op, c))


@st.composite
def predicate(draw: st.DrawFn, model: Model, depth: int = 0) -> Pred | None:
    kind = draw(st.sampled_from(["atom", "atom", "and", "or", "not"] if depth < 2 else ["atom"]))
    if kind == "atom":
        return draw(atom(model))
    if kind == "not":
        p = draw(predicate(model, depth + 1))
        if p is None:
            return None
        return Pred(f"not ({p.text})", p.exact, lambda m, i: not p.fn(m, i))
    a = draw(predicate(model, depth + 1))
    b = draw(predicate(model, depth + 1))
    if a is None or b is None:
        return a or b
    if kind == "and":
        return Pred(f"({a.text}) and ({b.text})", a.exact and b.exact, lambda m, i: a.fn(m, i) and b.fn(m, i))
    return Pred(f"({a.text}) or ({b.text})", a.exact and b.exact, lambda m, i: a.fn(m, i) or b.fn(m, i))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 7).flatmap(lambda n: st.tuples(*[dataset_spec(i) for i in range(n)])),
    st.sampled_from(["fresh", "reopen", "mixed"]),
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.data(),
)
def test_catalog_and_find_against_brute_force(
    specs: tuple[DatasetSpec, ...], mode: str, touch: list[bool], data: st.DataObject
) -> None:
    s, model = _build(list(specs), mode, touch)
    _check_catalog(s, model)
    for _ in range(10):
        p = data.draw(predicate(model))
        if p is None:
            continue
        found = s.find(p.text)
        truth = [n for i, n in enumerate(model.names) if p.fn(model, i)]
        event("exact" if p.exact else "superset")
        event(f"matches {'none' if not truth else 'all' if len(truth) == len(model.names) else 'some'}")
        event(f"superset strictly larger: {set(found) != set(truth)}")
        if p.exact:
            assert found == truth, (p.text, found, truth)
        else:
            assert set(truth) <= set(found), (p.text, found, truth)
            assert found == [n for n in model.names if n in set(found)]  # store order
