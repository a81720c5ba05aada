"""The decimal filter: rounded-decimal floats stored as small integers, bit for bit."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import atlas
from atlas.format import decimal
from atlas.format import segment as seg_mod
from atlas.format.codec import DECIMAL, compress, decode_block, encode_block, shuffle

FLOATS = {4: np.float32, 8: np.float64}


def _decimals(rng: np.random.Generator, n: int, digits: int, dtype: type) -> np.ndarray:
    return np.round(rng.normal(15.0, 8.0, n), digits).astype(dtype)


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@settings(max_examples=300, deadline=None)
@given(
    itemsize=st.sampled_from([4, 8]),
    digits=st.integers(0, 6),
    n=st.integers(1, 3000),
    specials=st.lists(
        st.sampled_from(["nan", "-nan", "inf", "-inf", "-0.0", "tiny", "huge", "random", "nan-payload"]),
        max_size=40,
    ),
    seed=st.integers(0, 2**32 - 1),
)
@example(itemsize=4, digits=0, n=1, specials=[], seed=439944)  # the one value rounds to -0.0
def test_encode_decode_is_exact_for_any_mix(itemsize: int, digits: int, n: int, specials: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = _decimals(rng, n, digits, FLOATS[itemsize])
    ut = np.uint32 if itemsize == 4 else np.uint64
    for k, what in enumerate(specials):
        i = int(rng.integers(0, n))
        values[i] = {
            "nan": np.nan, "-nan": -np.nan, "inf": np.inf, "-inf": -np.inf, "-0.0": -0.0,
            "tiny": 1e-30, "huge": 3e30, "random": rng.normal(), "nan-payload": 0.0,
        }[what]
        if what == "nan-payload":  # a NaN with payload bits must keep them
            values.view(ut)[i] = (0x7FC00001 + k) if itemsize == 4 else (0x7FF8000000000001 + k)
    raw = values.view(np.uint8)
    encoded = decimal.encode(raw, itemsize)
    if encoded is not None:
        assert decimal.decode(encoded, itemsize, raw.size).tobytes() == raw.tobytes()
        for codec in ("zstd", "lz4"):
            stored, _ = encode_block(raw, codec, DECIMAL | itemsize)
            assert decode_block(stored, codec, DECIMAL | itemsize, raw.size).tobytes() == raw.tobytes()
    else:
        # rounding small negatives gives -0.0, which is an exception too (its sign has no integer)
        exceptions = len(specials) + int(np.count_nonzero((values == 0) & np.signbit(values)))
        if exceptions < n / 4:
            pytest.fail(f"decimal data with {exceptions} exceptions in {n} values was not encoded")


def test_full_precision_floats_and_mostly_missing_blocks_are_left_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    assert decimal.encode(rng.normal(size=5000).view(np.uint8), 8) is None
    mostly_nan = np.full(1000, np.nan, dtype=np.float64)
    mostly_nan[:10] = 1.5
    assert decimal.encode(mostly_nan.view(np.uint8), 8) is None
    assert decimal.encode(np.arange(10, dtype=np.int16).view(np.uint8), 2) is None  # not a float size
    # float32 noise is "decimal" with 7 digits, but no smaller that way: the store keeps shuffling
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.define_array("v", "float32", ["x"], [100_000])
    ds.write_array("v", [0], rng.normal(size=100_000).astype(np.float32))
    store.flush()
    assert set(store._index(store._variables["v"]).rows["filter"].tolist()) == {4}


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_store_uses_the_filter_and_reads_back_every_bit(tmp_path: Path, codec: str) -> None:
    rng = np.random.default_rng(3)
    store = atlas.Atlas.create(tmp_path / "s", codec=codec)
    written = {}
    for i in range(40):
        z = np.arange(int(rng.integers(50, 2000)))  # a smooth cast, as measured: 3 decimals
        temp = np.round(2 + 20 * np.exp(-z / 150) + rng.normal(0, 0.02, z.size), 3).astype(np.float32)
        temp[rng.random(temp.size) < 0.05] = np.nan
        temp[0] = -0.0
        ds = store.create_dataset(f"p{i}")
        ds.define_array("temperature", "float32", ["z"], [temp.size], fill_value=float("nan"))
        ds.write_array("temperature", [0], temp)
        written[f"p{i}"] = temp
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s")
    rows = again._index(again._variables["temperature"]).rows
    assert set(rows["filter"].tolist()) == {DECIMAL | 4}
    got = again.read_array_across("temperature", list(written))
    for g, (name, want) in zip(got, written.items(), strict=True):
        assert g is not None and _bits(g) == _bits(want), name
    assert again.verify() == []
    # much smaller than the byte-shuffled floats compressed by the same codec
    raw = np.concatenate([w.view(np.uint8) for w in written.values()])
    shuffled = len(compress(shuffle(raw, 4), codec))
    data = sum(p.stat().st_size for p in (tmp_path / "s" / "data").iterdir())
    assert data < 0.6 * shuffled, (data, shuffled)


def test_blocks_that_are_not_decimals_fall_back_within_one_write(tmp_path: Path) -> None:
    """The filter is chosen on the first block of a write; later blocks that are not
    decimals get the best other filter, and every value still reads back exactly."""
    rng = np.random.default_rng(5)
    store = atlas.Atlas.create(tmp_path / "s")
    arrays = {}
    for i in range(12):
        n = 40_000
        tiny = (rng.normal(size=n) * 1e-5).astype(np.float32)  # no decimals with 7 digits or fewer
        values = _decimals(rng, n, 2, np.float32) if i < 6 else tiny
        ds = store.create_dataset(f"d{i}")
        ds.define_array("v", "float32", ["x"], [n])
        ds.write_array("v", [0], values)
        arrays[f"d{i}"] = values
    store.flush()
    rows = store._index(store._variables["v"]).rows
    filters = set(rows["filter"].tolist())
    assert DECIMAL | 4 in filters and filters - {DECIMAL | 4}, filters
    again = atlas.Atlas.open(tmp_path / "s")
    for name, want in arrays.items():
        assert _bits(again.open_dataset(name).read_array("v")) == _bits(want)


def test_compaction_brings_old_blocks_to_the_decimal_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    values = {f"d{i}": _decimals(rng, 3000, 1, np.float64) for i in range(10)}
    real = seg_mod._choose_filters
    # a store written by a version without the filter: shuffle only
    monkeypatch.setattr(
        seg_mod, "_choose_filters",
        lambda groups, payloads, codec: [(m, k[0], k[0]) for m, k in groups],
    )
    store = atlas.Atlas.create(tmp_path / "s")
    for name, v in values.items():
        ds = store.create_dataset(name)
        ds.define_array("depth", "float64", ["z"], [v.size])
        ds.write_array("depth", [0], v)
    store.flush()
    assert set(store._index(store._variables["depth"]).rows["filter"].tolist()) == {8}
    monkeypatch.setattr(seg_mod, "_choose_filters", real)
    store = atlas.Atlas.open(tmp_path / "s")
    store.delete_dataset("d0")  # compaction rewrites variables holding dead data
    store.compact()
    again = atlas.Atlas.open(tmp_path / "s")
    assert set(again._index(again._variables["depth"]).rows["filter"].tolist()) == {DECIMAL | 8}
    for name, want in values.items():
        if name != "d0":
            assert _bits(again.open_dataset(name).read_array("depth")) == _bits(want)


def test_a_leading_exception_costs_no_more_than_a_later_one() -> None:
    values = np.round(np.linspace(0, 50, 4000), 2)
    first, second = values.copy(), values.copy()
    first[0] = second[1] = 4.123456789e14  # not a 2-digit decimal: an exception
    a, b = decimal.encode(first.view(np.uint8), 8), decimal.encode(second.view(np.uint8), 8)
    assert a is not None and b is not None and len(a) <= len(b) + 8
    assert decimal.decode(a, 8, first.nbytes).tobytes() == first.tobytes()


def test_impossible_sizes_are_refused_before_decoding() -> None:
    raw = np.round(np.linspace(0, 9, 1000), 1).view(np.uint8)
    stored, _ = encode_block(raw, "zstd", DECIMAL | 8)
    with pytest.raises(ValueError):
        decode_block(stored, "zstd", DECIMAL | 8, raw.size * 2)  # more values than the block holds
    plain, _ = encode_block(raw, "zstd", 8)
    with pytest.raises(ValueError, match="claims"):
        decode_block(plain, "zstd", 8, raw.size - 8)  # the frame says otherwise
    with pytest.raises(ValueError):
        decode_block(b"\x01", "lz4", DECIMAL | 8, raw.size)


def test_index_version_tells_old_readers_about_decimal_blocks(tmp_path: Path) -> None:
    from atlas.format.chunkindex import HEADER, ChunkIndex

    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.define_array("dec", "float64", ["x"], [500])
    ds.write_array("dec", [0], np.round(np.linspace(0, 9, 500), 1))
    ds.define_array("ints", "int32", ["x"], [500])
    ds.write_array("ints", [0], np.arange(500, dtype=np.int32))
    store.flush()
    versions = {}
    for name in ("dec", "ints"):
        run = store._variables[name].runs[0]
        data = (tmp_path / "s" / run.key).read_bytes()[run.offset : run.offset + run.length]
        versions[name] = HEADER.unpack(data[: HEADER.size])[1]
    assert versions == {"dec": 4, "ints": 4}  # by field in groups: both after the filter
    run = store._variables["dec"].runs[0]
    rows = ChunkIndex.from_bytes((tmp_path / "s" / run.key).read_bytes()[run.offset : run.offset + run.length], "t").rows
    data = bytearray(ChunkIndex(rows).to_bytes(3))  # as writers of version 3 wrote it
    data[8:12] = (1).to_bytes(4, "little")  # claims the version before the filter
    with pytest.raises(atlas.CorruptionError, match="version 1 but names decimal blocks"):
        ChunkIndex.from_bytes(bytes(data), "test")
    data[8:12] = (2).to_bytes(4, "little")  # stores from before the base are still read
    assert len(ChunkIndex.from_bytes(bytes(data), "test")) == 1
    data[8:12] = (5).to_bytes(4, "little")
    with pytest.raises(atlas.CorruptionError, match="unsupported version 5"):
        ChunkIndex.from_bytes(bytes(data), "test")


def test_format_1_blocks_without_a_base_are_still_read() -> None:
    values = np.array([1.5, 2.5, 2.0, np.nan])  # integers 15, 25, 20 at e = 1; NaN an exception
    block = (
        struct.pack("<BBBBI", 1, 1, 1, 1, 1)  # format 1, e 1, width 1, formula 1, 1 exception
        + np.array([15, 10, -5, 0], dtype=np.int8).tobytes()  # d[0] = m[0], then differences
        + bytes([0b1000])  # value 3 is the exception
        + values[3:].tobytes()
    )
    assert decimal.decode(block, 8, values.nbytes).tobytes() == values.tobytes()


def test_a_base_keeps_large_decimals_narrow() -> None:
    salinity = np.round(34.5 + np.cumsum(np.random.default_rng(3).normal(0, 0.002, 5000)), 3)
    for dtype, itemsize in ((np.float32, 4), (np.float64, 8)):
        raw = salinity.astype(dtype).view(np.uint8)
        encoded = decimal.encode(raw, itemsize)
        assert encoded is not None
        fmt, e, width, _, nexc = decimal.HEADER.unpack(bytes(encoded[: decimal.HEADER.size]))
        (base,) = decimal.BASE.unpack(bytes(encoded[decimal.HEADER.size : decimal.HEADER.size + 8]))
        assert (fmt, e, nexc) == (2, 3, 0) and base == round(float(salinity.astype(dtype)[0]) * 1000)
        assert width == 1  # steps of a few thousandths; 34500 itself would need 4 bytes
        assert decimal.decode(encoded, itemsize, raw.size).tobytes() == raw.tobytes()


def test_a_base_no_encoder_writes_is_refused() -> None:
    n = 8
    for itemsize, formula, base in ((4, 0, 2**24), (4, 0, -(2**24)), (8, 1, 2**52)):
        block = struct.pack("<BBBBIq", 2, 1, 1, formula, 0, base) + bytes(n)
        with pytest.raises(ValueError, match="base is out of range"):
            decimal.decode(block, itemsize, n * itemsize)
    ok = struct.pack("<BBBBIq", 2, 1, 1, 0, 0, 2**24 - 1) + bytes(n)
    assert np.all(decimal.decode(ok, 4, n * 4).view(np.float32) == np.float32(2**24 - 1) / np.float32(10))
