"""Dataset shards (format version 3, records by layout): round trips, and damage reported as
corruption."""

from __future__ import annotations

import json

import pytest

import atlas
from atlas.format import shard

META = ("json", "none")


def _records(n: int) -> tuple[list[str], list[list[object]]]:
    names = [f"d{i}" for i in range(n)]  # the even ones have an array x
    return names, [[["k", "int64", i], [["x", 10 + i, 0, None, []]] if i % 2 == 0 else []] for i in range(n)]


def _held(names: list[str], records: list[list[object]]) -> list[list[object]]:
    """Records as readers hold them: ``[name, attributes, entries]``, tuples inside."""
    return [
        [n, tuple(attrs), tuple((e[0], e[1], e[2], None if e[3] is None else tuple(e[3]), tuple(e[4])) for e in entries)]
        for n, (attrs, entries) in zip(names, records, strict=True)
    ]


@pytest.mark.parametrize("meta", [("json", "none"), ("msgpack", "zstd"), ("json", "lz4")])
def test_shard_round_trips_and_names_read_from_its_prefix(meta: tuple[str, str]) -> None:
    names, records = _records(5)
    data, end = shard.encode_shard(names, records, *meta)
    assert shard.names_end(data, 5, "s") == end
    assert shard.decode_names(data[:end], 5, meta, "s") == names
    got, columns, built = shard.decode_records(data, names, meta, "s")
    assert built and got == _held(names, records)
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
            shard.decode_records(damaged, names, META, "meta/x.shard")
    with pytest.raises(atlas.CorruptionError, match="holds 3 datasets; its manifest says 4"):
        shard.decode_names(data[:end], 4, META, "s")
    line = json.dumps({**head, "format_version": 4}).encode()
    with pytest.raises(atlas.CorruptionError, match="unsupported format version 4"):
        shard.decode_names(line + data[data.index(b"\n") :], 3, META, "s")


def test_a_shard_beyond_what_readers_accept_is_never_written() -> None:
    with pytest.raises(ValueError, match="more than readers accept"):
        shard.encode_shard(["d"], [[["blob", "string", "x" * (4 << 20)], []]], "json", "zstd")


def test_a_store_of_version_2_shards_reads_and_is_written_on_by_layout(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Shards written before records by layout (a list of records, format version 2) read
    as before; a commit writes version-3 shards, here the one its new dataset joins, its
    version-2 records written again by layout."""
    import numpy as np

    from atlas.format import manifest as mf

    monkeypatch.setattr(mf, "FORMAT_VERSION", 2)
    monkeypatch.setattr(shard, "LAYOUT_VERSION", 2)
    monkeypatch.setattr(shard, "encode_layouts", lambda records: [list(r) for r in records])
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    for i in range(5):
        d = store.create_dataset(f"d{i}")
        d.set_attribute("k", i)
        d.define_array("x", "float32", ["z"], [4])
        d.write_array("x", [0], np.full(4, i, np.float32))
    store.flush()
    monkeypatch.undo()
    old = [json.loads(p.read_bytes().split(b"\n", 1)[0])["format_version"] for p in (path / "meta").iterdir()]
    assert old == [2]
    again = atlas.Atlas.open(path)
    assert [again.open_dataset(f"d{i}").get_attribute("k") for i in range(5)] == list(range(5))
    assert again.open_dataset("d3").array_stats("x") == {"row_count": 4, "null_count": 0, "min": 3.0, "max": 3.0}
    d = again.create_dataset("new")
    d.set_attribute("k", 9)
    again.flush()
    heads = [json.loads(p.read_bytes().split(b"\n", 1)[0]) for p in (path / "meta").iterdir()]
    assert sorted(h["format_version"] for h in heads) == [2, 3]  # the shard "new" joined is version 3
    fresh = atlas.Atlas.open(path)
    assert fresh.find("k >= 3") == ["d3", "d4", "new"] and fresh.verify() == []
    assert fresh.read_array_across_stacked("x", [f"d{i}" for i in range(5)]).tolist()[4] == [4.0] * 4
