"""String chunks: a table of UTF-8 byte lengths followed by the bytes, round-tripping any
Python ``str``; user data checked and converted to an object array of ``str``."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from atlas.format.strings import decode_strings, encode_strings, to_string_array


def _objects(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@pytest.mark.parametrize("count", [0, 1, 3, 64, 65, 500])  # the one-string, small and numpy paths
def test_strings_round_trip_at_every_size(count: int) -> None:
    pool = ["", "a", "tête", "日本", "x" * 300, "\udcff lone surrogate", "nul\x00inside"]
    values = [pool[i % len(pool)] + str(i) * (i % 3) for i in range(count)]
    raw = encode_strings(_objects(values))
    assert raw.dtype == np.uint8
    lengths = struct.unpack_from(f"<{count}I", raw.tobytes())
    assert list(lengths) == [len(v.encode("utf-8", "surrogatepass")) for v in values]
    back = decode_strings(raw, count)
    assert back.dtype == object and back.tolist() == values


def test_ascii_only_chunks_decode_the_same() -> None:
    values = [f"station-{i}" for i in range(200)]
    assert decode_strings(encode_strings(_objects(values)), 200).tolist() == values


def test_a_two_dimensional_chunk_is_encoded_in_row_major_order() -> None:
    grid = np.array([["a", "bb"], ["ccc", "d"]], dtype=object)
    assert decode_strings(encode_strings(grid), 4).tolist() == ["a", "bb", "ccc", "d"]


@pytest.mark.parametrize("count", [1, 3, 100])
def test_inconsistent_chunks_are_refused(count: int) -> None:
    raw = encode_strings(_objects(["ab"] * count)).tobytes()
    with pytest.raises(ValueError, match="do not add up"):
        decode_strings(raw + b"z", count)
    with pytest.raises(ValueError, match="do not add up"):
        decode_strings(raw[:-1], count)
    with pytest.raises(ValueError, match="shorter than its length table"):
        decode_strings(raw[: 4 * count - 1], count)


def test_user_data_becomes_an_object_array_of_str() -> None:
    got = to_string_array(np.array(["a", "bc"]))  # numpy unicode
    assert got.dtype == object and got.tolist() == ["a", "bc"]
    got = to_string_array(np.array([b"x", b"\xff"]))  # bytes: UTF-8 with replacement
    assert got.tolist() == ["x", "\ufffd"]
    mixed = np.array([["a", b"b"], [np.str_("c"), "d"]], dtype=object)
    got = to_string_array(mixed)
    assert got.shape == (2, 2) and got.tolist() == [["a", "b"], ["c", "d"]]
    assert all(type(v) is str for v in got.ravel())
    with pytest.raises(TypeError, match="found int"):
        to_string_array(np.array(["a", 1], dtype=object))
    with pytest.raises(TypeError, match="needs str data"):
        to_string_array(np.arange(3))
