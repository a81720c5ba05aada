"""Block codecs: filters and compression round-trip every block, impossible sizes are refused
before anything is allocated, and large blocks are encoded and decoded piece by piece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.format import codec, segment
from atlas.format.codec import (
    DECIMAL,
    checksum,
    decode_block,
    encode_block,
    parse_codec,
    plausible_size,
    shuffle,
    unshuffle,
)


@pytest.mark.parametrize("codec_name", ["zstd", "none", "lz4"])
def test_large_blocks_encoded_in_pieces_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec_name: str) -> None:
    # make every block "large", with odd piece sizes, so the piecewise paths do all the work
    monkeypatch.setattr(codec, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(segment, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(codec, "_PIECE_BYTES", 1000)
    rng = np.random.default_rng(7)
    smooth = np.cumsum(rng.normal(size=50_001)).astype(np.float64)  # byte-shuffle wins on this
    store = atlas.Atlas.create(tmp_path / "s", codec=codec_name)
    ds = store.create_dataset("d")
    ds.define_array("x", "float64", ["t"], [smooth.size], chunk_shape=[smooth.size])
    ds.define_array("y", "int16", ["a", "b"], [301, 77], chunk_shape=[100, 77])
    ys = rng.integers(-500, 500, size=(301, 77)).astype(np.int16)
    ds.write_array("x", [0], smooth)
    ds.write_array("y", [0, 0], ys)
    store.flush()
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("d")
    np.testing.assert_array_equal(view.read_array("x"), smooth)
    np.testing.assert_array_equal(view.read_array("y"), ys)
    assert atlas.Atlas.open(tmp_path / "s").verify() == []


def test_block_decoded_in_pieces_refuses_wrong_sizes() -> None:
    raw = np.arange(40_000, dtype=np.float32).view(np.uint8)
    for filter_id in (1, 4):
        stored, _ = codec.encode_large(raw, "zstd", filter_id)
        data = bytes(stored)
        np.testing.assert_array_equal(codec._decode_large(data, filter_id, raw.size), raw)
        for wrong in (raw.size - 4, raw.size + 4):
            with pytest.raises(ValueError):
                codec._decode_large(data, filter_id, wrong)



def _raw(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values).view(np.uint8).reshape(-1)


def test_shuffle_groups_the_bytes_of_each_position_and_unshuffle_undoes_it() -> None:
    raw = _raw(np.array([0x0102, 0x0304, 0x0506], dtype="<u2"))
    assert shuffle(raw, 2).tobytes() == bytes([0x02, 0x04, 0x06, 0x01, 0x03, 0x05])
    rng = np.random.default_rng(0)
    for itemsize in (1, 2, 4, 8):
        data = rng.integers(0, 256, size=itemsize * 333, dtype=np.uint8)
        assert np.array_equal(unshuffle(shuffle(data, itemsize), itemsize), data)
    assert shuffle(raw, 1) is raw and shuffle(raw[:0], 4).size == 0


@pytest.mark.parametrize("codec_name", ["zstd", "lz4", "none"])
@pytest.mark.parametrize("filter_id", [1, 2, 4, 8])
def test_blocks_round_trip_through_every_codec_and_shuffle(codec_name: str, filter_id: int) -> None:
    rng = np.random.default_rng(filter_id)
    raw = _raw(np.cumsum(rng.integers(-3, 4, size=4096)).astype(np.int64))
    stored, crc = encode_block(raw, codec_name, filter_id)
    assert crc == checksum(stored)
    if codec_name != "none":
        assert len(stored) < raw.size  # smooth integers compress
    assert plausible_size(codec_name, len(stored), raw.size, filter_id)
    back = decode_block(stored, codec_name, filter_id, raw.size)
    assert np.array_equal(back, raw)


@pytest.mark.parametrize("codec_name", ["zstd", "lz4"])
@pytest.mark.parametrize("itemsize", [4, 8])
def test_decimal_blocks_round_trip_bit_for_bit(codec_name: str, itemsize: int) -> None:
    values = np.round(np.linspace(-50, 50, 3001), 2).astype(f"<f{itemsize}")
    values[7] = np.nan
    values[8] = -0.0
    raw = _raw(values)
    stored, _ = encode_block(raw, codec_name, DECIMAL | itemsize)
    assert len(stored) < len(encode_block(raw, codec_name, itemsize)[0])  # smaller than shuffled
    assert decode_block(stored, codec_name, DECIMAL | itemsize, raw.size).tobytes() == raw.tobytes()
    with pytest.raises(ValueError, match="does not fit"):
        encode_block(_raw(np.random.default_rng(0).random(1000)), codec_name, DECIMAL | 8)


def test_an_uncompressed_block_decodes_to_read_only_storage_bytes() -> None:
    raw = _raw(np.arange(10, dtype=np.int32))
    stored, _ = encode_block(raw, "none", 1)
    back = decode_block(stored, "none", 1, raw.size)
    assert not back.flags.writeable and back.tobytes() == raw.tobytes()


def test_impossible_block_sizes_are_refused() -> None:
    raw = _raw(np.arange(1000, dtype=np.int64))
    zstd, _ = encode_block(raw, "zstd", 8)
    with pytest.raises(ValueError, match="frame claims 8000 bytes, the index 8008"):
        decode_block(zstd, "zstd", 8, raw.size + 8)
    with pytest.raises(ValueError, match="not a zstd frame"):
        decode_block(b"definitely not zstd", "zstd", 1, 100)
    with pytest.raises(ValueError, match="expected 8001"):
        decode_block(encode_block(raw, "none", 1)[0], "none", 1, raw.size + 1)
    lz4, _ = encode_block(raw, "lz4", 8)
    with pytest.raises(Exception):  # noqa: B017 - lz4 says so in its own words
        decode_block(lz4, "lz4", 8, raw.size - 8)
    assert not plausible_size("none", 10, 11)
    assert not plausible_size("zstd", 1, 32768 + 65)
    assert plausible_size("zstd", 1, 32768 + 64)
    assert not plausible_size("lz4", 10, 10 * 256 + 65)
    assert not plausible_size("none", 10, 10, DECIMAL | 8)  # decimal blocks are always compressed


def test_codec_names_are_parsed_case_insensitively() -> None:
    assert parse_codec("ZSTD") == "zstd" and parse_codec(" uncompressed ") == "none" and parse_codec("lz4") == "lz4"
    with pytest.raises(ValueError, match="unknown codec 'gzip'"):
        parse_codec("gzip")
    with pytest.raises(TypeError, match="codec must be a str"):
        parse_codec(1)
