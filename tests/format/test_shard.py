"""Dataset shards (format version 2): round trips, and damage reported as corruption."""

from __future__ import annotations

import json

import pytest

import atlas
from atlas.format import shard

META = ("json", "none")


def _records(n: int) -> tuple[list[str], list[list[object]]]:
    names = [f"d{i}" for i in range(n)]  # the even ones have an array x
    return names, [[["k", "int64", i], [["x", 10 + i, 0, None, []]] if i % 2 == 0 else []] for i in range(n)]


@pytest.mark.parametrize("meta", [("json", "none"), ("msgpack", "zstd"), ("json", "lz4")])
def test_shard_round_trips_and_names_read_from_its_prefix(meta: tuple[str, str]) -> None:
    names, records = _records(5)
    data, end = shard.encode_shard(names, records, *meta)
    assert shard.names_end(data, 5, "s") == end
    assert shard.decode_names(data[:end], 5, meta, "s") == names
    got, columns = shard.decode_records(data, 5, meta, "s")
    assert got == records
    assert list(columns) == ["x"] and columns["x"]["row"].tolist() == [0, 2, 4]
    assert columns["x"]["aid"].tolist() == [10, 12, 14] and columns["x"]["schema"].tolist() == [0, 0, 0]


def test_shard_keys_are_recognised() -> None:
    key = shard.new_shard_key(12)
    assert shard.is_shard_key(key) and key.startswith("meta/s12-")
    for bad in ("meta/s12-xyz.shard", "meta/12-" + "a" * 20 + ".shard", "data/s1-" + "a" * 20 + ".shard"):
        assert not shard.is_shard_key(bad)


def test_damaged_shards_are_corruption_naming_them() -> None:
    names, records = _records(3)
    data, end = shard.encode_shard(names, records, *META)
    head = json.loads(data[: data.index(b"\n")])
    body_end = data.index(b"\n") + 1 + head["names_length"] + head["columns_length"] + head["body_length"]
    cases = {
        "damaged header": b"[" + data[1:],
        "fails its checksum": data[: body_end - 2] + bytes([data[body_end - 2] ^ 1]) + data[body_end - 1 :],
        "bytes, not the": data[:-1],
    }
    for message, damaged in cases.items():
        with pytest.raises(atlas.CorruptionError, match=message):
            shard.decode_records(damaged, 3, META, "meta/x.shard")
    with pytest.raises(atlas.CorruptionError, match="holds 3 datasets; its manifest says 4"):
        shard.decode_names(data[:end], 4, META, "s")
    line = json.dumps({**head, "format_version": 3}).encode()
    with pytest.raises(atlas.CorruptionError, match="unsupported format version 3"):
        shard.decode_names(line + data[data.index(b"\n") :], 3, META, "s")


def test_a_shard_beyond_what_readers_accept_is_never_written() -> None:
    with pytest.raises(ValueError, match="more than readers accept"):
        shard.encode_shard(["d"], [[["blob", "string", "x" * (4 << 20)], []]], "json", "zstd")
