"""Model-based test: random sequences of the whole API checked against a plain numpy/dict model.

Covers define, write (any window, across chunks), delete array / dataset, attributes,
flush, reopen, compact, and crashes (a handle dropped without flushing).
"""

from __future__ import annotations

import copy
import itertools
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

import atlas

DTYPES = ["int16", "uint8", "float32", "float64", "bool", "timestamp_nanoseconds", "string"]
NAMES = ["a", "b", "ü/x".replace("/", ""), "temp"]


def _np_dtype(dtype: str) -> Any:
    special = {"timestamp_nanoseconds": np.dtype(np.int64), "string": np.dtype(object)}
    return special[dtype] if dtype in special else np.dtype(dtype)


def _random_data(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "string":
        return np.array([f"s{x}" for x in rng.integers(0, 50, size=shape).ravel()], dtype=object).reshape(shape)
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.startswith("float"):
        x = np.asarray(rng.integers(-5, 5, size=shape)).astype(dtype)
        x[rng.random(shape) < 0.2] = np.nan
        return x
    info = np.iinfo(_np_dtype(dtype))
    return np.asarray(rng.integers(max(info.min, -100), min(info.max, 100), size=shape, dtype=_np_dtype(dtype)))


def _fill_for(dtype: str, rng: np.random.Generator) -> Any:
    if rng.random() < 0.4:
        return None
    return {"string": "", "bool": False, "float32": float("nan"), "float64": 0.0}.get(dtype, 0)


class ModelArray:
    serial = itertools.count()

    def __init__(self, dtype: str, shape: tuple[int, ...], chunks: tuple[int, ...], fill: Any) -> None:
        self.uid = next(ModelArray.serial)
        self.dtype, self.shape, self.chunks, self.fill = dtype, shape, chunks, fill
        init = fill if fill is not None else ("" if dtype == "string" else 0)
        self.data = np.full(shape, init, dtype=_np_dtype(dtype))
        self.written: set[tuple[int, ...]] = set()
        self.ever_written = False

    def stats(self) -> dict[str, Any] | None:
        if not self.ever_written:
            return None
        rows = int(np.prod(self.shape))
        nulls = 0
        values = []
        grid = [range(math.ceil(s / c)) for s, c in zip(self.shape, self.chunks, strict=True)]
        for coords in itertools.product(*grid):
            sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, self.chunks, strict=True))
            block = self.data[sl].ravel()
            if coords not in self.written:
                nulls += block.size
                continue
            if self.fill is not None:
                if isinstance(self.fill, float) and math.isnan(self.fill):
                    mask = np.isnan(block)
                else:
                    mask = block == self.fill
                nulls += int(mask.sum())
                block = block[~mask]
            values.extend(block.tolist())
        lo = hi = None
        if values:
            if self.dtype.startswith("float"):
                arr = np.array(values, dtype=np.float64)
                keys = arr.view(np.int64) ^ ((arr.view(np.int64) >> 63) & np.int64(2**63 - 1))
                lo, hi = float(arr[keys.argmin()]), float(arr[keys.argmax()])
            elif self.dtype == "string":
                lo, hi = min(values).encode(), max(values).encode()
            else:
                lo, hi = min(values), max(values)
        return {"row_count": rows, "null_count": nulls, "min": lo, "max": hi}


def _same_stats(got: dict | None, exp: dict | None) -> bool:
    if got is None or exp is None:
        return got is exp
    if got["row_count"] != exp["row_count"] or got["null_count"] != exp["null_count"]:
        return False
    for k in ("min", "max"):
        a, b = got[k], exp[k]
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            continue
        if isinstance(a, (bytes, bytearray)) or isinstance(b, bytes):
            if bytes(a) != bytes(b):
                return False
        elif a != b:
            return False
    return True


@settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
class StoreMachine(RuleBasedStateMachine):
    datasets = Bundle("datasets")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="atlas-sm-"))
        self.path = self.dir / "store"
        self.store = atlas.Atlas.create(self.path, codec="lz4")
        self.model: dict[str, dict[str, Any]] = {}  # current (buffered) state
        self.committed: dict[str, dict[str, Any]] = {}
        self.stats: dict[tuple[str, str], Any] = {}  # stats as of the last flush
        self.rng = np.random.default_rng(0)

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=datasets, name=st.sampled_from(["d1", "d2", "d3", "Ω d", "x.y"]))
    def create(self, name: str) -> str:
        if name in self.model:
            return name
        self.store.create_dataset(name)
        self.model[name] = {"arrays": {}, "attrs": {}}
        return name

    @rule(ds=datasets, name=st.sampled_from(NAMES), dtype=st.sampled_from(DTYPES),
          shape=st.lists(st.integers(1, 9), min_size=0, max_size=3), seed=st.integers(0, 2**16))
    def define(self, ds: str, name: str, dtype: str, shape: list[int], seed: int) -> None:
        if ds not in self.model or name in self.model[ds]["arrays"]:
            return
        rng = np.random.default_rng(seed)
        chunks = tuple(int(rng.integers(1, s + 1)) for s in shape)
        fill = _fill_for(dtype, rng)
        self.store.open_dataset(ds).define_array(name, dtype, [f"d{i}" for i in range(len(shape))], shape, list(chunks), fill)
        self.model[ds]["arrays"][name] = ModelArray(dtype, tuple(shape), chunks, fill)

    @rule(ds=datasets, seed=st.integers(0, 2**16))
    def write(self, ds: str, seed: int) -> None:
        if ds not in self.model or not self.model[ds]["arrays"]:
            return
        rng = np.random.default_rng(seed)
        name = sorted(self.model[ds]["arrays"])[int(rng.integers(len(self.model[ds]["arrays"])))]
        m: ModelArray = self.model[ds]["arrays"][name]
        start = [int(rng.integers(0, s)) for s in m.shape]
        size = [int(rng.integers(1, s - a + 1)) for a, s in zip(start, m.shape, strict=True)]
        data = _random_data(rng, m.dtype, tuple(size))
        self.store.open_dataset(ds).write_array(name, start, data)
        sl = tuple(slice(a, a + n) for a, n in zip(start, size, strict=True))
        m.data[sl] = data
        m.ever_written = True
        ranges = [range(a // c, (a + n - 1) // c + 1) for a, n, c in zip(start, size, m.chunks, strict=True)]
        m.written.update(itertools.product(*ranges))

    @rule(ds=datasets, key=st.sampled_from(["k", "units", "", "_x"]),
          value=st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True), st.text(max_size=5), st.booleans()))
    def set_attr(self, ds: str, key: str, value: Any) -> None:
        if ds not in self.model:
            return
        self.store.open_dataset(ds).set_attribute(key, value)
        self.model[ds]["attrs"][key] = value

    @rule(ds=datasets, seed=st.integers(0, 100))
    def delete_array(self, ds: str, seed: int) -> None:
        if ds not in self.model or not self.model[ds]["arrays"]:
            return
        names = sorted(self.model[ds]["arrays"])
        name = names[seed % len(names)]
        self.store.open_dataset(ds).delete_array(name)
        del self.model[ds]["arrays"][name]

    @rule(ds=datasets)
    def delete_dataset(self, ds: str) -> None:
        if ds not in self.model:
            return
        self.store.delete_dataset(ds)
        del self.model[ds]

    @rule()
    def flush(self) -> None:
        self.store.flush()
        self._committed_now()

    def _committed_now(self) -> None:
        self.committed = copy.deepcopy(self.model)
        self.stats = {
            (d, a, m.uid): m.stats() for d, v in self.model.items() for a, m in v["arrays"].items()
        }

    @rule()
    def reopen(self) -> None:
        self.store.flush()
        self._committed_now()
        self.store = atlas.Atlas.open(self.path)

    @rule()
    def crash(self) -> None:
        self.store.buffer_bytes = 1  # whatever was buffered goes to orphan segments
        self.store = atlas.Atlas.open(self.path)
        self.model = copy.deepcopy(self.committed)

    @rule()
    def compact(self) -> None:
        self.store.compact()
        self._committed_now()

    @invariant()
    def matches_model(self) -> None:
        assert self.store.list_datasets() == list(self.model)
        live = sorted({a for v in self.model.values() for a in v["arrays"]})
        assert self.store.list_arrays() == live
        names = list(self.model)
        for aname in live:
            got_all = self.store.read_array_across(aname, names + ["missing"])
            assert got_all[-1] is None
            for name, got in zip(names, got_all, strict=False):
                m = self.model[name]["arrays"].get(aname)
                if m is None:
                    assert got is None
                    continue
                exp = m.data.view("datetime64[ns]") if m.dtype == "timestamp_nanoseconds" else m.data
                np.testing.assert_array_equal(got, exp)
            holders = [n for n in names if aname in self.model[n]["arrays"]]
            kinds = {(self.model[n]["arrays"][aname].dtype, self.model[n]["arrays"][aname].shape) for n in holders}
            if len(kinds) == 1:
                stacked = self.store.read_array_across_stacked(aname, holders)
                for k, n in enumerate(holders):
                    m = self.model[n]["arrays"][aname]
                    exp = m.data.view("datetime64[ns]") if m.dtype == "timestamp_nanoseconds" else m.data
                    np.testing.assert_array_equal(stacked[k], exp)
        for name, v in self.model.items():
            view = self.store.open_dataset(name)
            assert view.list_arrays() == list(v["arrays"])
            got_attrs = view.attributes()
            assert list(got_attrs) == list(v["attrs"])
            for k, val in v["attrs"].items():
                g = got_attrs[k]
                assert (isinstance(val, float) and math.isnan(val) and math.isnan(g)) or g == val
            for aname, m in v["arrays"].items():
                got = view.read_array(aname)
                exp = m.data.view("datetime64[ns]") if m.dtype == "timestamp_nanoseconds" else m.data
                np.testing.assert_array_equal(got, exp)
                if m.shape:
                    start = [s // 2 for s in m.shape]
                    win = view.read_array(aname, start, [2] * len(m.shape))
                    np.testing.assert_array_equal(win, exp[tuple(slice(a, a + 2) for a in start)])
                key = (name, aname, m.uid)
                if key in self.stats:
                    assert _same_stats(view.array_stats(aname), self.stats[key]), (
                        view.array_stats(aname), self.stats[key])
                else:
                    assert view.array_stats(aname) is None


TestStoreMachine = StoreMachine.TestCase
