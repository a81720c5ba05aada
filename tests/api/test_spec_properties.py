"""Property-based conformance tests: random schemas, write windows and flush / reopen
interleavings checked against a plain numpy model."""

from __future__ import annotations

import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atlas

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOAT_DTYPES = ["float32", "float64"]
ALL_DTYPES = [*INT_DTYPES, *FLOAT_DTYPES, "timestamp_nanoseconds", "string"]
CODECS = ["zstd", "lz4", "none"]
META = [(f, c) for f in ("json", "msgpack") for c in ("none", "zstd", "lz4")]
WORDS = ["", "a", "b", "ab", "é", "日本", "🚀", "x y", "zz"]
NAT = -(2**63)


def _np_type(dtype: str) -> np.dtype:
    if dtype == "string":
        return np.dtype(object)
    if dtype == "timestamp_nanoseconds":
        return np.dtype(np.int64)
    return np.dtype(dtype)


def _random_block(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random data in the form ``write_array`` wants (int64 for timestamps)."""
    if dtype == "string":
        idx = rng.integers(0, len(WORDS), size=shape)
        out = np.empty(shape, dtype=object)
        for pos in np.ndindex(*shape):
            out[pos] = WORDS[int(idx[pos])]
        return out
    t = _np_type(dtype)
    if t.kind == "f":
        return np.asarray(rng.standard_normal(size=shape) * 100, dtype=t)
    info = np.iinfo(t)
    return np.asarray(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=t))


def _as_model(dtype: str, read: np.ndarray) -> np.ndarray:
    return read.view(np.int64) if dtype == "timestamp_nanoseconds" else read


def _assert_matches(dtype: str, read: np.ndarray, model: np.ndarray) -> None:
    assert read is not None
    assert read.shape == model.shape
    if dtype == "string":
        assert read.dtype == object
        assert read.tolist() == model.tolist()
        return
    if dtype == "timestamp_nanoseconds":
        assert read.dtype == np.dtype("datetime64[ns]")
    else:
        assert read.dtype == model.dtype
    np.testing.assert_array_equal(_as_model(dtype, read), model)


@st.composite
def schemas(draw, dtypes=ALL_DTYPES, max_rank=3, max_dim=6):
    dtype = draw(st.sampled_from(dtypes))
    rank = draw(st.integers(0, max_rank))
    shape = [draw(st.integers(1, max_dim)) for _ in range(rank)]
    chunks = [draw(st.integers(1, d)) for d in shape]
    return dtype, shape, chunks


def _fill_strategy(dtype: str):
    if dtype == "string":
        return st.none()  # string fills are covered by dedicated tests
    if dtype in FLOAT_DTYPES:
        return st.none() | st.sampled_from([0.0, -1.5, 2.0, float("nan")])
    if dtype == "timestamp_nanoseconds":
        return st.none() | st.sampled_from([NAT, 0, 10**18])
    info = np.iinfo(dtype)
    return st.none() | st.integers(int(info.min), int(info.max))


@st.composite
def windows(draw, shape):
    """A (start, shape) window that may run past the end (reads clip)."""
    start = [draw(st.integers(0, d)) for d in shape]
    size = [draw(st.integers(0, d + 1)) for d in shape]
    return start, size


@st.composite
def in_bounds_blocks(draw, shape):
    start = [draw(st.integers(0, d - 1)) for d in shape]
    size = [draw(st.integers(1, d - s)) for d, s in zip(shape, start, strict=True)]
    return start, size


def _window_slices(start, size):
    return tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))


def _window(model: np.ndarray, start, size=None) -> np.ndarray:
    """numpy-slicing model of a (clipped) read window; always an ndarray."""
    if model.ndim == 0:
        return model.copy()
    if size is None:
        return model[tuple(slice(s, None) for s in start)]
    return model[_window_slices(start, size)]


# ---------------------------------------------------------------------------
# Data: writes, reads, flush and reopen against a numpy model
# ---------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_writes_reads_flushes_and_reopens_match_numpy_model(data):
    dtype, shape, chunks = data.draw(schemas(), label="schema")
    fill = data.draw(_fill_strategy(dtype), label="fill")
    codec = data.draw(st.sampled_from(CODECS), label="codec")
    meta_format, meta_compression = data.draw(st.sampled_from(META), label="meta")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    if fill is None:
        model = np.zeros(shape, dtype=_np_type(dtype))
        if dtype == "string":
            model[...] = ""
    else:
        model = np.full(shape, fill, dtype=_np_type(dtype))
    flushed = model.copy()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        store = atlas.Atlas.create(path, codec, meta_format, meta_compression)
        ds = store.create_dataset("ds")
        ds.define_array("a", dtype, [f"d{i}" for i in range(len(shape))], shape, chunks, fill)
        store.flush()

        ops = data.draw(
            st.lists(st.sampled_from(["write", "write", "read", "flush", "reopen"]), max_size=10),
            label="ops",
        )
        for op in ops:
            if op == "write":
                start, size = data.draw(in_bounds_blocks(shape), label="block")
                block = _random_block(rng, dtype, tuple(size))
                ds.write_array("a", start, block)
                model[_window_slices(start, size)] = block
            elif op == "read":
                start, size = data.draw(windows(shape), label="window")
                _assert_matches(dtype, ds.read_array("a", start, size), _window(model, start, size))
                _assert_matches(dtype, ds.read_array("a", start=start), _window(model, start))
            elif op == "flush":
                store.flush()
                flushed = model.copy()
            else:  # reopen: unflushed changes are lost
                store = atlas.Atlas.open(path)
                ds = store.open_dataset("ds")
                model = flushed.copy()
            _assert_matches(dtype, ds.read_array("a"), model)

        store.flush()
        again = atlas.Atlas.open(path).open_dataset("ds")
        _assert_matches(dtype, again.read_array("a"), model)
        assert again.array_meta("a") == {
            "dtype": dtype,
            "shape": shape,
            "chunk_shape": chunks,
            "dimension_names": [f"d{i}" for i in range(len(shape))],
        }


# ---------------------------------------------------------------------------
# Stats against a chunk-granular model
# ---------------------------------------------------------------------------


def _is_null(dtype: str, value, fill) -> bool:
    if fill is None:
        return False
    if dtype in FLOAT_DTYPES and math.isnan(fill):
        return math.isnan(value)
    return value == fill  # 0.0 == -0.0 as required


def _value_pool(dtype: str, fill):
    if dtype in FLOAT_DTYPES:
        pool = [0.0, -0.0, 1.5, -2.25, 1e30, -7.0]
        if fill is not None:
            pool.append(fill)
        return pool
    if dtype == "timestamp_nanoseconds":
        return [NAT, -5, 0, 7, 10**18] + ([fill] if fill is not None else [])
    info = np.iinfo(dtype)
    return [int(info.min), int(info.max), 0, 1] + ([fill] if fill is not None else [])


@SETTINGS
@given(data=st.data())
def test_stats_match_chunk_granular_model(data):
    dtype, shape, chunks = data.draw(
        schemas(dtypes=[*INT_DTYPES, *FLOAT_DTYPES, "timestamp_nanoseconds"]), label="schema"
    )
    fill = data.draw(_fill_strategy(dtype), label="fill")
    pool = _value_pool(dtype, fill)
    t = _np_type(dtype)
    model = np.full(shape, 0 if fill is None else fill, dtype=t)
    grid = [math.ceil(d / c) for d, c in zip(shape, chunks, strict=True)]
    written_chunks = np.zeros(grid, dtype=bool)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        store = atlas.Atlas.create(path)
        ds = store.create_dataset("ds")
        ds.define_array("a", dtype, [f"d{i}" for i in range(len(shape))], shape, chunks, fill)
        for _ in range(data.draw(st.integers(0, 4), label="n_writes")):
            start, size = data.draw(in_bounds_blocks(shape), label="block")
            values = data.draw(
                st.lists(
                    st.sampled_from(pool), min_size=int(np.prod(size)), max_size=int(np.prod(size))
                ),
                label="values",
            )
            block = np.array(values, dtype=t).reshape(size)
            ds.write_array("a", start, block)
            model[_window_slices(start, size)] = block
            written_chunks[
                tuple(
                    slice(s // c, (s + n - 1) // c + 1)
                    for s, n, c in zip(start, size, chunks, strict=True)
                )
            ] = True
        store.flush()

        stats = ds.array_stats("a")
        if not written_chunks.any():
            assert stats is None
            return

        nulls = 0
        values = []
        for pos in np.ndindex(*shape):
            chunk = tuple(p // c for p, c in zip(pos, chunks, strict=True))
            value = model[pos].item()
            if not written_chunks[chunk] or _is_null(dtype, value, fill):
                nulls += 1
            else:
                values.append(value)
        assert stats["row_count"] == int(np.prod(shape))
        assert stats["null_count"] == nulls
        if values:
            assert stats["min"] == min(values)
            assert stats["max"] == max(values)
            kind = float if dtype in FLOAT_DTYPES else int
            assert type(stats["min"]) is kind and type(stats["max"]) is kind
        else:
            assert stats["min"] is None and stats["max"] is None
        reopened = atlas.Atlas.open(path).open_dataset("ds").array_stats("a")
        assert reopened == stats


# ---------------------------------------------------------------------------
# Dataset catalogue and attributes against a dict model
# ---------------------------------------------------------------------------

NAMES = ["a", "b", "ü", "x.y"]

attr_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


def _same_value(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def _check_catalogue(store: atlas.Atlas, model: dict[str, dict]) -> None:
    assert store.list_datasets() == list(model)
    for name in NAMES:
        assert store.dataset_exists(name) is (name in model)
    for name, attrs in model.items():
        got = store.open_dataset(name).attributes()
        assert list(got) == list(attrs)
        assert all(_same_value(got[k], v) for k, v in attrs.items())


operations = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    # An attribute set on the i-th live dataset (if any).
    st.tuples(
        st.just("attr"), st.integers(0, 3), st.sampled_from(["k", "", "z", "_a"]), attr_values
    ),
    st.tuples(
        st.just("attr"), st.integers(0, 3), st.sampled_from(["k", "", "z", "_a"]), attr_values
    ),
    st.tuples(st.just("flush")),
    st.tuples(st.just("reopen")),
)


@SETTINGS
@given(
    meta=st.sampled_from(META),
    ops=st.lists(operations, max_size=15),
)
def test_catalogue_and_attributes_match_model_across_flush_and_reopen(meta, ops):
    def copy(m):
        return {name: dict(attrs) for name, attrs in m.items()}

    live: dict[str, dict] = {}
    flushed: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        store = atlas.Atlas.create(path, meta_format=meta[0], meta_compression=meta[1])
        for op in ops:
            kind = op[0]
            if kind == "create":
                if op[1] in live:
                    with pytest.raises(FileExistsError):
                        store.create_dataset(op[1])
                else:
                    store.create_dataset(op[1])
                    live[op[1]] = {}
            elif kind == "delete":
                if op[1] in live:
                    store.delete_dataset(op[1])
                    del live[op[1]]
                else:
                    with pytest.raises(KeyError):
                        store.delete_dataset(op[1])
            elif kind == "attr":
                _, index, key, value = op
                if live:
                    name = list(live)[index % len(live)]
                    store.open_dataset(name).set_attribute(key, value)
                    live[name][key] = value
            elif kind == "flush":
                store.flush()
                flushed = copy(live)
            else:
                store = atlas.Atlas.open(path)
                live = copy(flushed)
            _check_catalogue(store, live)
        store.flush()
        _check_catalogue(atlas.Atlas.open(path), live)


# ---------------------------------------------------------------------------
# One array name, many datasets with their own shapes and chunkings
# ---------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_same_array_name_across_datasets_uses_each_schema(data):
    dtype = data.draw(st.sampled_from(ALL_DTYPES), label="dtype")
    n = data.draw(st.integers(1, 4), label="n_datasets")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        store = atlas.Atlas.create(path)
        for i in range(n):
            _, shape, chunks = data.draw(schemas(dtypes=[dtype], max_rank=2), label="schema")
            ds = store.create_dataset(f"ds{i}")
            ds.define_array("v", dtype, [f"d{k}" for k in range(len(shape))], shape, chunks)
            block = _random_block(rng, dtype, tuple(shape))
            ds.write_array("v", [0] * len(shape), block)
            models[f"ds{i}"] = block
            if data.draw(st.booleans(), label="flush"):
                store.flush()
        store.create_dataset("without")
        names = data.draw(
            st.lists(
                st.sampled_from([*models, "without", "unknown"]), min_size=1, max_size=6
            ).filter(lambda xs: any(x in models for x in xs)),
            label="names",
        )
        for handle in (store, None):
            if handle is None:
                store.flush()
                handle = atlas.Atlas.open(path)
            for name, model in models.items():
                _assert_matches(dtype, handle.open_dataset(name).read_array("v"), model)
            if dtype == "string":
                continue  # string cross-dataset reads have dedicated tests
            out = handle.read_array_across("v", names)
            assert len(out) == len(names)
            for name, got in zip(names, out, strict=True):
                if name in models:
                    _assert_matches(dtype, got, models[name])
                else:
                    assert got is None
