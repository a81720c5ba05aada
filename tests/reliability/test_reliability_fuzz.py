"""API input fuzzing: every call fed a mix of Python values of every type.

Names, dtypes, dims, shapes, chunk shapes, starts, fill values, data and attribute
values are drawn from a mix of valid values and hostile ones (None, bools, huge ints,
NaN/inf, odd unicode and lone surrogates, bytes, lists, tuples, dicts, numpy scalars,
arrays of odd dtypes, byte orders and memory layouts). Every call must either succeed
or raise one of the documented exception types; a failed call must change nothing
(the handle's state is compared with a model after every call); and after flush and
reopen the store must equal the model of the successful calls.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from reliability_helpers import Tally, canon

import atlas

ALLOWED = (TypeError, ValueError, KeyError, OverflowError, RuntimeError, FileExistsError, NotImplementedError)
TALLY = Tally("api_fuzz")
WINDOW = 6  # cells per axis compared for every array (arrays may be huge and sparse)
CHUNK_BUDGET = 1 << 24  # bytes a single fuzzed write or read may legitimately need

# --------------------------------------------------------------------------- value strategies

NUMPY_SCALARS = [
    np.int8(-3), np.uint8(200), np.int64(2**62), np.uint64(2**64 - 1), np.float32(1.5),
    np.float64(-0.0), np.float64("nan"), np.bool_(True), np.datetime64("2020-01-01T00:00:00", "ns"),
    np.str_("np-str"), np.bytes_(b"np-bytes"), np.float16(2.0), np.complex64(1j),
]
WEIRD_TEXT = ["", "/", "a/b", ".", "..", "_x", "x\x00y", "\ud800", "ü", "é" * 3, " ", "a.b", "a..b", "\U0001f600", "%2F", "x" * 200]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), -float("nan"), float("inf"), -0.0, 1e308, 5e-324]),
    st.text(max_size=4),
    st.sampled_from(WEIRD_TEXT),
    st.binary(max_size=4),
    st.sampled_from(NUMPY_SCALARS),
)
containers = st.one_of(
    st.lists(scalars, max_size=3),
    st.lists(scalars, max_size=3).map(tuple),
    st.dictionaries(st.text(max_size=2), scalars, max_size=2),
    st.sets(st.integers(0, 3), max_size=2),
    st.just(object()),
    st.just(range(2)),
)
ARRAY_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "bool",
    ">f8", ">i4", "float16", "complex64", "datetime64[ns]", "datetime64[us]", "U3", "S3", "O", "V4",
]


@st.composite
def arrays(draw: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = np.dtype(draw(st.sampled_from(ARRAY_DTYPES)))
    n = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        flat = rng.integers(max(info.min, -1000), min(info.max, 1000), size=n, endpoint=True).astype(dtype)
    elif dtype.kind in "fc":
        flat = rng.normal(size=n).astype(dtype)
        if n:
            flat[rng.random(n) < 0.2] = np.nan
    elif dtype.kind == "b":
        flat = rng.random(n) < 0.5
    elif dtype.kind == "M":
        flat = rng.integers(-10**12, 10**12, size=n).astype(dtype)
    elif dtype.kind == "U":
        flat = np.array([draw(st.sampled_from(WEIRD_TEXT + ["abc"]))[:3] for _ in range(n)], dtype=dtype)
    elif dtype.kind == "S":
        flat = np.array([draw(st.binary(max_size=3)) for _ in range(n)], dtype=dtype)
    elif dtype.kind == "O":
        flat = np.empty(n, dtype=object)
        flat[:] = [draw(st.one_of(st.sampled_from(WEIRD_TEXT), st.binary(max_size=2), scalars)) for _ in range(n)]
    else:
        flat = np.zeros(n, dtype=dtype)
    a = np.asarray(flat).reshape(shape)
    layout = draw(st.sampled_from(["c", "c", "c", "fortran", "strided", "readonly", "transposed"]))
    if layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim:
        big = np.concatenate([a, a], axis=-1) if a.size else a
        a = big[..., ::2] if a.size else a
    elif layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    elif layout == "transposed":
        a = a.T
    return a


values = st.one_of(scalars, containers, arrays())

DTYPE_NAMES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "bool",
    "string", "timestamp_nanoseconds", "FLOAT32", " Int8 ", "UInt16", "str", "String", "datetime64[ns]",
    "timestamp_ns", "bytes", "binary", "float16", "complex64", "i4", "<f4", "int", "object", "datetime64[us]", "",
]
dtypes = st.one_of(st.sampled_from(DTYPE_NAMES), st.sampled_from(DTYPE_NAMES[:13]), scalars)
ds_names = st.one_of(st.sampled_from(["a", "b", "c"]), st.sampled_from(["a", "b"]), st.sampled_from(WEIRD_TEXT), scalars)
array_names = st.one_of(st.sampled_from(["x", "y", "s"]), st.sampled_from(["x", "y"]), st.sampled_from(WEIRD_TEXT), scalars)
attr_keys = st.one_of(st.sampled_from(["k", "units", ""]), st.sampled_from(WEIRD_TEXT), scalars)
small_ints = st.lists(st.integers(0, 4), max_size=3)
int_seqs = st.one_of(
    small_ints,
    small_ints.map(tuple),
    small_ints.map(lambda v: np.array(v, dtype=np.int64)),
    small_ints.map(lambda v: np.array(v, dtype=np.uint8)),
    small_ints.map(lambda v: [np.int32(x) for x in v]),
    st.lists(st.sampled_from([-1, 2**31, 2**40, 2**62, 2**63, 2**64, 10**20]), min_size=1, max_size=2),
    st.lists(st.one_of(st.floats(0, 3), st.booleans(), st.text(max_size=1), st.none()), min_size=1, max_size=2),
    st.sampled_from(["ab", b"ab", None, 3, 2.5, {"a": 1}, np.array([[1, 2]]), np.array([1.5]), np.array([], dtype=float)]),
)
dims_values = st.one_of(
    st.lists(st.sampled_from(["d0", "d1", "d2"]), max_size=3),
    st.lists(st.sampled_from(["d0", "d1"]), max_size=3).map(tuple),
    st.lists(st.one_of(st.sampled_from(WEIRD_TEXT), scalars), max_size=3),
    st.sampled_from(["d0", b"d0", None, 3, np.array(["d0"])]),
)


# --------------------------------------------------------------------------- the model


def canonical_dtype(name: str) -> str:
    key = name.strip().lower()
    return {"datetime64[ns]": "timestamp_nanoseconds", "timestamp_ns": "timestamp_nanoseconds", "str": "string"}.get(key, key)


def storage_dtype(dtype: str) -> np.dtype:
    return np.dtype({"string": object, "timestamp_nanoseconds": np.int64}.get(dtype, dtype))


class ModelArray:
    def __init__(self, dtype: str, shape: tuple[int, ...], chunks: tuple[int, ...], dims: tuple[str, ...], fill: Any) -> None:
        self.dtype, self.shape, self.chunks, self.dims = dtype, shape, chunks, dims
        self.fill = None if fill is None else (float(fill) if dtype.startswith("float") else fill)
        self.writes: list[tuple[tuple[int, ...], np.ndarray]] = []
        self.attrs: dict[str, tuple[str, Any]] = {}

    def default(self) -> Any:
        if self.fill is not None:
            return self.fill
        return "" if self.dtype == "string" else 0

    def window(self, start: tuple[int, ...], stop: tuple[int, ...]) -> np.ndarray:
        shape = tuple(max(0, b - a) for a, b in zip(start, stop, strict=True))
        dt = storage_dtype(self.dtype)
        if self.dtype == "float32":
            with np.errstate(over="ignore"):
                init = np.float32(self.default())
        else:
            init = self.default()
        out = np.full(shape, init, dtype=dt)
        for st0, data in self.writes:
            lo = [max(a, s) for a, s in zip(start, st0, strict=True)]
            hi = [min(b, s + n) for b, s, n in zip(stop, st0, data.shape, strict=True)]
            if any(h <= low for low, h in zip(lo, hi, strict=True)):
                continue
            dst = tuple(slice(low - a, h - a) for low, h, a in zip(lo, hi, start, strict=True))
            src = tuple(slice(low - s, h - s) for low, h, s in zip(lo, hi, st0, strict=True))
            out[dst] = data[src]
        return out

    def meta(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape), "chunk_shape": list(self.chunks), "dimension_names": list(self.dims)}


class Model:
    def __init__(self) -> None:
        self.datasets: dict[str, dict[str, Any]] = {}

    def expected(self) -> Any:
        out = []
        for name, ds in self.datasets.items():
            arrays = []
            for aname, a in ds["arrays"].items():
                stop = tuple(min(s, WINDOW) for s in a.shape)
                attrs = {k: v for k, (_, v) in a.attrs.items()}
                arrays.append((aname, canon(a.meta()), canon(a.fill), canon(a.window((0,) * len(a.shape), stop)), canon(attrs)))
            out.append((name, tuple(arrays), canon(ds["attrs"])))
        return tuple(out)


def observed(store: atlas.Atlas) -> Any:
    out = []
    for name in store.list_datasets():
        ds = store.open_dataset(name)
        arrays = []
        for aname in ds.list_arrays():
            meta = ds.array_meta(aname)
            data = ds.read_array(aname, [0] * len(meta["shape"]), [WINDOW] * len(meta["shape"]))
            if data.dtype.kind == "M":
                data = data.view(np.int64)
            attrs = ds.array_attributes(aname)  # values only: kinds of array attributes are not public
            arrays.append((aname, canon(meta), canon(ds.array_fill_value(aname)), canon(data), canon(attrs)))
        kinds = ds.attribute_dtypes()
        out.append((name, tuple(arrays), canon({k: (kinds[k], v) for k, v in ds.attributes().items()})))
    return tuple(out)


def expected_attribute(value: Any, dtype: Any) -> tuple[str, Any]:
    if dtype is None:
        if isinstance(value, bool):
            return "bool", value
        if isinstance(value, int):
            return "int64", int(value)
        if isinstance(value, float):
            return "float64", float(value)
        return "string", str(value)
    kind = canonical_dtype(dtype)
    if kind in ("float32", "float64"):
        return kind, float(value)  # kept as given, float32 included (as the original package)
    if kind in ("bool", "string"):
        return kind, value
    return kind, int(value)


def as_model_data(dtype: str, data: np.ndarray) -> np.ndarray:
    if dtype == "string":
        flat = []
        for v in data.ravel().tolist():
            flat.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
        out = np.empty(data.shape, dtype=object)
        out.ravel()[:] = flat
        return out
    if dtype == "timestamp_nanoseconds":
        return np.array(data.view(np.int64) if data.dtype.kind == "M" else data, copy=True)
    return np.array(data, copy=True)


# --------------------------------------------------------------------------- operations

VALID_DTYPES = DTYPE_NAMES[:13]
HUGE_EXTENTS = [3, 2**31, 2**40, 2**62, 2**62 + 1, 2**63, 2**64]


def hostile(data: Any, one_in: int = 10) -> bool:
    """Whether this argument gets a hostile value (each argument independently)."""
    return data.draw(st.integers(0, one_in - 1)) == 0


def draw_dataset(data: Any, model: Model) -> Any:
    if hostile(data, 20):
        return data.draw(ds_names)
    if model.datasets and data.draw(st.integers(0, 9)) < 9:
        return data.draw(st.sampled_from(list(model.datasets)))
    return data.draw(st.sampled_from(["a", "b", "c"]))


def draw_array(data: Any, model: Model, dname: Any) -> Any:
    if hostile(data, 20):
        return data.draw(array_names)
    ds = model.datasets.get(dname) if isinstance(dname, str) else None
    if ds and ds["arrays"] and data.draw(st.integers(0, 9)) < 9:
        return data.draw(st.sampled_from(list(ds["arrays"])))
    return data.draw(st.sampled_from(["x", "y", "s", "t"]))


def valid_value(data: Any, dtype: str) -> Any:
    if dtype == "string":
        return data.draw(st.one_of(st.text(max_size=3), st.sampled_from(WEIRD_TEXT)))
    if dtype == "bool":
        return data.draw(st.booleans())
    if dtype.startswith("float"):
        return data.draw(st.one_of(st.floats(allow_nan=True), st.integers(-10, 10)))
    info = np.iinfo(np.int64 if dtype == "timestamp_nanoseconds" else np.dtype(dtype))
    return data.draw(st.one_of(st.integers(int(info.min), int(info.max)), st.sampled_from([int(info.min), int(info.max)])))


def valid_data(data: Any, a: ModelArray, shape: tuple[int, ...]) -> np.ndarray:
    n = math.prod(shape)
    flat = [valid_value(data, a.dtype) for _ in range(min(n, 64))]
    flat = (flat * (n // max(len(flat), 1) + 1))[:n]
    if a.dtype == "string":
        out = np.empty(n, dtype=object)
        out[:] = flat
        arr = out.reshape(shape)
        kind = data.draw(st.sampled_from(["O", "O", "U", "S"]))
        if kind == "U":
            arr = arr.astype(str)
        elif kind == "S":
            arr = np.array([v.encode("utf-8", "surrogatepass") for v in out], dtype=object).reshape(shape)
        return arr
    dt = storage_dtype(a.dtype)
    with np.errstate(over="ignore"):
        arr = np.array(flat, dtype=dt).reshape(shape)
    if a.dtype == "timestamp_nanoseconds" and data.draw(st.booleans()):
        arr = arr.view("datetime64[ns]")
    return arr


def draw_define(data: Any, model: Model) -> tuple[Any, ...]:
    dname = draw_dataset(data, model)
    name = data.draw(array_names) if hostile(data) else data.draw(st.sampled_from(["x", "y", "s", "t"]))
    dtype = data.draw(dtypes) if hostile(data) else data.draw(st.sampled_from(VALID_DTYPES))
    mode = data.draw(st.sampled_from(["small"] * 8 + ["huge", "hostile"]))
    if mode == "small":
        shape: Any = tuple(data.draw(st.lists(st.integers(0, 5), max_size=3)))
        chunks: Any = data.draw(st.one_of(st.none(), st.tuples(*[st.integers(1, max(s, 1)) for s in shape])))
        if hostile(data):
            chunks = data.draw(int_seqs)
    elif mode == "huge":
        rank = data.draw(st.integers(1, 3))
        shape = tuple(data.draw(st.sampled_from(HUGE_EXTENTS)) for _ in range(rank))
        # small chunks only: writing into a chunk materialises all of it in memory
        chunks = data.draw(st.sampled_from([(1,) * rank, (4,) * rank]))
    else:
        shape = data.draw(int_seqs)
        chunks = data.draw(st.one_of(st.none(), int_seqs))
    rank = len(shape) if isinstance(shape, (tuple, list)) else 1
    dims: Any = data.draw(dims_values) if hostile(data) else [f"d{i}" for i in range(rank)]
    canon_dtype = canonical_dtype(dtype) if isinstance(dtype, str) else ""
    if hostile(data, 5):
        fill = data.draw(scalars)
    elif data.draw(st.booleans()) and canon_dtype in VALID_DTYPES:
        fill = valid_value(data, canon_dtype)
    else:
        fill = None
    return ("define", dname, name, dtype, dims, shape, chunks, fill)


def draw_window(data: Any, a: ModelArray | None) -> tuple[Any, tuple[int, ...]]:
    """(start, shape of data) inside the array mostly, hostile sometimes."""
    if a is None or hostile(data):
        return data.draw(int_seqs), tuple(data.draw(st.lists(st.integers(0, 3), max_size=3)))
    start = tuple(data.draw(st.integers(0, max(min(s, 8) - 1, 0))) for s in a.shape)
    shape = tuple(data.draw(st.integers(0, max(min(s - x, 3), 0))) for s, x in zip(a.shape, start, strict=True))
    if data.draw(st.integers(0, 9)) == 0:
        shape = tuple(x + 1 for x in shape)  # out of bounds
    return list(start), shape


def draw_op(data: Any, model: Model) -> tuple[Any, ...]:
    kinds = ["create"] * 2 + ["define"] * 3 + ["write"] * 4 + ["read"] * 2 + ["attr", "array_attr", "delete_array", "delete_dataset", "flush"]
    if not model.datasets:
        kinds += ["create"] * 10
    elif sum(len(d["arrays"]) for d in model.datasets.values()) < 2:
        kinds += ["define"] * 10
    kind = data.draw(st.sampled_from(kinds))
    if kind == "create":
        return (kind, data.draw(ds_names) if hostile(data, 5) else data.draw(st.sampled_from(["a", "b", "c"])))
    if kind == "define":
        return draw_define(data, model)
    dname = draw_dataset(data, model)
    if kind in ("write", "read", "array_attr", "delete_array"):
        with_arrays = [n for n, d in model.datasets.items() if d["arrays"]]
        if with_arrays and data.draw(st.integers(0, 9)) < 8:
            dname = data.draw(st.sampled_from(with_arrays))
    if kind in ("write", "read"):
        name = draw_array(data, model, dname)
        ds = model.datasets.get(dname) if isinstance(dname, str) else None
        a = ds["arrays"].get(name) if ds and isinstance(name, str) else None
        start, shape = draw_window(data, a)
        if kind == "read":
            return (kind, dname, name, data.draw(st.sampled_from([None, start])), data.draw(st.sampled_from([None, list(shape), [9] * len(shape)])))
        if a is not None and not hostile(data, 4):
            payload = valid_data(data, a, shape)
            if data.draw(st.integers(0, 9)) == 0:
                payload = data.draw(st.sampled_from([np.asfortranarray, lambda x: x.T, lambda x: x.astype(x.dtype.newbyteorder()) if x.dtype.kind in "iuf" else x]))(payload)
        else:
            payload = data.draw(st.one_of(arrays(shape), values))
        return (kind, dname, name, start, payload)
    if kind in ("attr", "array_attr"):
        name = draw_array(data, model, dname)
        dtype = None
        if data.draw(st.booleans()):
            dtype = data.draw(dtypes) if hostile(data) else data.draw(st.sampled_from(VALID_DTYPES))
        if hostile(data, 3):
            value = data.draw(values)
        else:
            value = data.draw(st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=4)))
        key = data.draw(attr_keys) if hostile(data) else data.draw(st.sampled_from(["k", "units", "", "a/b", "_x", "ü"]))
        return (kind, dname, name, key, value, dtype)
    if kind == "delete_array":
        return (kind, dname, draw_array(data, model, dname))
    if kind == "delete_dataset":
        return (kind, dname)
    return (kind,)


def apply(store: atlas.Atlas, model: Model, op: tuple[Any, ...]) -> None:
    """Run one operation; update the model only if it succeeded."""
    kind = op[0]
    if kind == "create":
        store.create_dataset(op[1])
        model.datasets[op[1]] = {"arrays": {}, "attrs": {}}
    elif kind == "define":
        _, dname, name, dtype, dims, shape, chunks, fill = op
        store.open_dataset(dname).define_array(name, dtype, dims, shape, chunks, fill)
        shape_t = tuple(int(x) for x in shape)
        chunk_t = shape_t if chunks is None else tuple(int(x) for x in chunks)
        chunk_t = tuple(0 if s == 0 else c for s, c in zip(shape_t, chunk_t, strict=True))
        arrays = model.datasets[dname]["arrays"]
        arrays[name] = ModelArray(canonical_dtype(dtype), shape_t, chunk_t, tuple(str(d) for d in dims), fill)
    elif kind == "write":
        _, dname, name, start, data = op
        a = model.datasets.get(dname, {}).get("arrays", {}).get(name) if isinstance(dname, str) and isinstance(name, str) else None
        if a is not None and math.prod(a.chunks) * 8 > CHUNK_BUDGET:
            TALLY.add("skipped_writes_into_huge_chunks")  # a write materialises whole chunks
            return
        store.open_dataset(dname).write_array(name, start, data)
        a = model.datasets[dname]["arrays"][name]
        if data.size:
            a.writes.append((tuple(int(x) for x in start), as_model_data(a.dtype, data)))
    elif kind == "read":
        _, dname, name, start, shape = op
        a = model.datasets.get(dname, {}).get("arrays", {}).get(name) if isinstance(dname, str) and isinstance(name, str) else None
        if a is not None and shape is None and math.prod(a.shape) > CHUNK_BUDGET:
            TALLY.add("skipped_reads_of_huge_arrays")  # the result alone would not fit
            return
        got = store.open_dataset(dname).read_array(name, start, shape)
        a = model.datasets[dname]["arrays"].get(name)
        if a is None:
            assert got is None
            return
        st0 = (0,) * len(a.shape) if start is None else tuple(min(int(x), s) for x, s in zip(start, a.shape, strict=True))
        if shape is None:
            stop = a.shape
        else:
            stop = tuple(min(x + int(n), s) for x, n, s in zip(st0, shape, a.shape, strict=True))
        stop = tuple(max(x, b) for x, b in zip(st0, stop, strict=True))
        if math.prod(b - x for x, b in zip(st0, stop, strict=True)) <= 4096:
            want = a.window(st0, stop)
            got_v = got.view(np.int64) if got.dtype.kind == "M" else got
            assert canon(got_v) == canon(want), f"read_array{op[1:]} returned other values than were written"
    elif kind == "attr":
        _, dname, _, key, value, dtype = op
        store.open_dataset(dname).set_attribute(key, value, dtype)
        model.datasets[dname]["attrs"][key] = expected_attribute(value, dtype)
    elif kind == "array_attr":
        _, dname, name, key, value, dtype = op
        store.open_dataset(dname).set_array_attribute(name, key, value, dtype)
        model.datasets[dname]["arrays"][name].attrs[key] = expected_attribute(value, dtype)
    elif kind == "delete_array":
        store.open_dataset(op[1]).delete_array(op[2])
        del model.datasets[op[1]]["arrays"][op[2]]
    elif kind == "delete_dataset":
        store.delete_dataset(op[1])
        del model.datasets[op[1]]
    else:
        store.flush()


_serial = itertools.count()


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as drawn
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(data=st.data())
def fuzz_api_calls(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        store = atlas.Atlas.create(path)
        model = Model()
        for _ in range(data.draw(st.integers(1, 30))):
            op = draw_op(data, model)
            TALLY.add("calls")
            before = model.expected()
            try:
                apply(store, model, op)
            except ALLOWED as e:
                TALLY.add(f"rejected_{type(e).__name__}")
                # a failed call changes nothing (the model was not touched either)
                assert model.expected() == before
            else:
                TALLY.add("succeeded")
                TALLY.add(f"ok_{op[0]}")
            assert observed(store) == model.expected(), f"after {op!r}"
        store.flush()
        assert observed(atlas.Atlas.open(path)) == model.expected(), "flush + reopen differs from the model"


def option(valid: list[str]) -> Any:
    """Mostly one of the given names (valid or not), sometimes any value at all."""
    return st.integers(0, 9).flatmap(lambda i: st.sampled_from(valid) if i < 8 else scalars)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    codec=option(["zstd", "LZ4", " none ", "uncompressed", "Zstd", "gzip", ""]),
    meta_format=option(["json", "MsgPack", "mp", "JSON", "yaml"]),
    meta_compression=option(["none", "ZSTD", "lz4", "uncompressed", "bz2"]),
    positional=st.booleans(),
)
def fuzz_create_options(codec: Any, meta_format: Any, meta_compression: Any, positional: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        TALLY.add("calls")
        try:
            if positional:
                store = atlas.Atlas.create(path, codec, meta_format, meta_compression)
            else:
                store = atlas.Atlas.create(path, codec=codec, meta_format=meta_format, meta_compression=meta_compression)
        except ALLOWED as e:
            TALLY.add(f"rejected_{type(e).__name__}")
            assert not (path / "atlas.json").exists(), "a rejected create left a store behind"
            return
        TALLY.add("succeeded")
        ds = store.create_dataset("d")
        ds.define_array("x", "float64", ["n"], [3])
        ds.write_array("x", [0], np.array([1.0, np.nan, -0.0]))
        ds.set_attribute("k", float("nan"))
        store.flush()
        again = atlas.Atlas.open(path)
        assert canon(again.open_dataset("d").read_array("x")) == canon(np.array([1.0, np.nan, -0.0]))
        assert math.isnan(again.open_dataset("d").get_attribute("k"))


@pytest.mark.parametrize(
    "bad_path", [b"/tmp/x", 3, None, 2.5, ["a"], {"a": 1}], ids=["bytes", "int", "None", "float", "list", "dict"]
)
def test_create_and_open_with_bad_paths(bad_path: Any) -> None:
    for call in (atlas.Atlas.create, atlas.Atlas.open):
        with pytest.raises(ALLOWED):
            call(bad_path)


def test_api_fuzz_gives_documented_errors_and_keeps_the_store_consistent() -> None:
    global TALLY
    TALLY = Tally("api_fuzz")
    fuzz_api_calls()
    TALLY.report()


def test_create_options_fuzz() -> None:
    global TALLY
    TALLY = Tally("create_options_fuzz")
    fuzz_create_options()
    TALLY.report()


# --------------------------------------------------------------------------- found by the fuzz


@pytest.mark.parametrize("meta_format", ["json", "msgpack"])
@pytest.mark.parametrize("shape", [[2**62 + 1], [2**63], [2**64], [2**70]], ids=["2^62+1", "2^63", "2^64", "2^70"])
def test_an_accepted_definition_never_makes_the_store_unopenable(tmp_path: Path, shape: list[int], meta_format: str) -> None:
    """define_array must refuse a shape the reader refuses: accepting it lets one flush make
    the whole store (every other dataset included) impossible to open."""
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format)
    keep = store.create_dataset("keep")
    keep.define_array("v", "int32", ["n"], [3])
    keep.write_array("v", [0], np.array([1, 2, 3], dtype=np.int32))
    store.flush()
    ds = store.create_dataset("big")
    try:
        ds.define_array("x", "float64", ["n"], shape, [1])
    except ALLOWED:
        assert ds.array_meta("x") is None
        return
    store.flush()
    again = atlas.Atlas.open(path)
    np.testing.assert_array_equal(again.open_dataset("keep").read_array("v"), [1, 2, 3])
    assert again.open_dataset("big").array_meta("x")["shape"] == shape


def test_an_accepted_write_never_makes_flush_fail_forever(tmp_path: Path) -> None:
    """A grid of 2**80 chunks: chunk ids do not fit the index's u8. Either define/write
    refuses it, or flush works; a flush that fails on every retry leaves the handle
    unable to commit anything else."""
    path = tmp_path / "store"
    store = atlas.Atlas.create(path)
    other = store.create_dataset("other")
    other.define_array("v", "int8", ["n"], [2])
    other.write_array("v", [0], np.array([1, 2], dtype=np.int8))
    ds = store.create_dataset("grid")
    try:
        ds.define_array("x", "float64", ["a", "b"], [2**40, 2**40], [1, 1])
        ds.write_array("x", [2**40 - 1, 2**40 - 1], np.ones((1, 1)))
    except ALLOWED:
        pass
    store.flush()
    again = atlas.Atlas.open(path)
    np.testing.assert_array_equal(again.open_dataset("other").read_array("v"), [1, 2])


def test_define_array_refuses_a_chunk_larger_than_readers_accept(tmp_path: Path) -> None:
    """Readers refuse blocks over 16 GiB raw (chunkindex.MAX_BLOCK_BYTES), and a chunk is
    never split across blocks: a chunk that large could be written (by a machine with
    the memory for it) but never read back. A 32 GiB chunk must be refused at define
    time, before any write tries to materialise it."""
    from atlas.format.chunkindex import MAX_BLOCK_BYTES

    store = atlas.Atlas.create(tmp_path / "store")
    ds = store.create_dataset("d")
    with pytest.raises((ValueError, OverflowError)):
        ds.define_array("x", "uint8", ["n"], [2 * MAX_BLOCK_BYTES], chunk_shape=[2 * MAX_BLOCK_BYTES])
    assert ds.array_meta("x") is None
