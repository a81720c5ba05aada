"""Catalogue fields of a shard: each attribute key and array's statistics, read alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

import atlas
from atlas.format import fields, shard

META = ("json", "none")


def _records() -> tuple[list[str], list[list[object]]]:
    names = ["a", "b", "c", "d"]
    records: list[list[object]] = [
        [["k", "int64", 1, "s", "string", "x", "f", "float64", 0.5], [["v", 1, 0, [3, 0, 1.5, 2.5], []]]],
        [["k", "int64", 2, "f", "float64", "NaN"], [["v", 2, 1, [3, 3, None, None], []]]],
        [["s", "string", "y", "flag", "bool", True], []],
        [["k", "uint64", 2**64 - 1], [["v", 3, 0, None, []], ["w", 4, 0, [1, 0, 7, 7], []]]],
    ]
    return names, records


def _fields_of(data: bytes, rows: int, meta: tuple[str, str]) -> dict[str, fields.Field]:
    head = shard.parse_header(data, rows, "s")
    assert head.fields is not None
    return {n: shard.decode_shard_field(head, n, data, 0, meta[1], "s") for n in head.fields}


@pytest.mark.parametrize("meta", [("json", "none"), ("msgpack", "zstd")])
def test_fields_repeat_what_the_records_say_by_key(meta: tuple[str, str]) -> None:
    names, records = _records()
    data, _ = shard.encode_shard(names, records, *meta)
    got = _fields_of(data, 4, meta)
    assert list(got) == ["a:k", "a:s", "a:f", "a:flag", "s:v", "s:w"]  # keys in order of first appearance
    k = got["a:k"]
    assert k.blocks[0].rows.tolist() == [0, 1, 3] and k.dtypes == ["int64", "int64", "uint64"]
    assert k.blocks[0].values == [1, 2, 2**64 - 1]  # beyond int64: kept exact, as JSON
    f = got["a:f"]
    assert f.dtype == "float64" and f.blocks[0].values == [0.5, "NaN"]  # NaN spelled out, as in records
    flag = got["a:flag"].blocks[0]
    assert flag.rows.tolist() == [2] and flag.values.dtype == bool and flag.values.tolist() == [True]
    v = got["s:v"]
    row_count, null_count, low, high, schema = v.blocks
    assert row_count.rows.tolist() == [0, 1] and row_count.values.tolist() == [3, 3]
    assert null_count.values.tolist() == [0, 3]
    assert low.rows.tolist() == [0] and low.values.dtype == np.float32 and low.values.tolist() == [1.5]  # exact
    assert high.values.tolist() == [2.5]
    assert schema.rows.tolist() == [0, 1] and schema.values.tolist() == [0, 1]
    assert row_count.values.dtype == np.int32  # the narrowest that holds them
    assert schema.rows is null_count.rows  # stored once for blocks of the same rows
    assert got["a:f"].blocks[0].values == [0.5, "NaN"]
    assert got["s:w"].blocks[2].values.tolist() == [7]


def test_values_keep_their_exact_kind() -> None:
    records: list[list[object]] = [
        [["x", "float64", 0.1, "n", "int64", 2**40], []],  # 0.1 is no float32; 2**40 no int32
        [["x", "float64", 0.25, "n", "int64", -1], []],
    ]
    got = {n: fields.decode_field(raw, 2, "s") for n, raw in fields.fields_of(records).items()}
    x, n = got["a:x"].blocks[0].values, got["a:n"].blocks[0].values
    assert x.dtype == np.float64 and x.tolist() == [0.1, 0.25]
    assert n.dtype == np.int64 and n.tolist() == [2**40, -1]


def test_damaged_fields_are_corruption_naming_the_field() -> None:
    names, records = _records()
    data, _ = shard.encode_shard(names, records, *META)
    head = shard.parse_header(data, 4, "s")
    assert head.fields is not None
    at, length, _ = head.fields["a:k"]
    flipped = data[: at + length - 1] + bytes([data[at + length - 1] ^ 1]) + data[at + length :]
    with pytest.raises(atlas.CorruptionError, match="fails its checksum"):
        shard.decode_shard_field(head, "a:k", flipped, 0, "none", "s")
    part = data[at : at + length]
    bad_rows = part.replace(b'"blocks":[[3,', b'"blocks":[[9,')
    for damaged in (part[:-1], bad_rows, b"{}\n", b"no header"):
        with pytest.raises(atlas.CorruptionError, match="a catalogue field is malformed"):
            fields.decode_field(damaged, 4, "s")
    rows_beyond = fields.fields_of([[[], []], [[], []], [["k", "int64", 1], []]])["a:k"]
    with pytest.raises(atlas.CorruptionError, match="beyond the shard"):
        fields.decode_field(rows_beyond, 2, "s")


def test_a_shard_without_fields_says_so() -> None:
    names, records = _records()
    data, end = shard.encode_shard(names, records, *META)
    nl = data.index(b"\n")
    head = json.loads(data[:nl])
    fields_bytes = sum(length for _, length, _ in head["fields"])
    del head["fields"]  # as shards written before fields existed
    old = json.dumps(head).encode() + data[nl : len(data) - fields_bytes]
    parsed = shard.parse_header(old, 4, "s")
    assert parsed.fields is None and parsed.length == len(old)
    got, _, built = shard.decode_records(old, names, META, "s")
    held = [[tuple(a), tuple((*e[:3], e[3] and tuple(e[3]), tuple(e[4])) for e in es)] for a, es in records]
    assert built and [r[1:] for r in got] == held


def test_verify_finds_fields_that_disagree_with_their_records(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A shard written with fields that lie (checksums intact) is caught by verify(), and
    find answers from the fields: the check guards what the catalogue reads."""
    path = tmp_path / "s"
    s = atlas.Atlas.create(path)
    for i in range(3):
        s.create_dataset(f"d{i}").set_attribute("k", i)
    real = shard.fields_of

    def lying(records):  # type: ignore[no-untyped-def]
        return real([[["k", "int64", 7], r[1]] if r[0] else r for r in records])

    monkeypatch.setattr(shard, "fields_of", lying)
    s.flush()
    monkeypatch.setattr(shard, "fields_of", real)
    reopened = atlas.Atlas.open(path)
    assert reopened.find("k == 7") == ["d0", "d1", "d2"]  # what the fields say
    problems = list(reopened.verify())
    assert len(problems) == 1 and "catalogue fields disagree with its records" in problems[0]
    s2 = atlas.Atlas.open(path)
    s2.open_dataset("d0").set_attribute("k", 5)
    s2.flush()  # the rewritten shard's fields are true again
    assert list(atlas.Atlas.open(path).verify()) == []
    assert atlas.Atlas.open(path).find("k == 7") == []


def test_values_that_repeat_are_stored_once_and_indexed() -> None:
    """Repeated strings (a platform, a project name...) are kept as indexes into their
    distinct values; 1, 1.0 and True stay apart; lists, and values that barely repeat, stay
    a plain JSON list."""
    many = [[["p", "string", f"float_{i % 3}", "m", "int64" if i % 4 else "bool", 1 if i % 4 else True], []] for i in range(12)]
    got = {n: fields.decode_field(raw, 12, "s") for n, raw in fields.fields_of(many).items()}
    assert got["a:p"].blocks[0].values == [f"float_{i % 3}" for i in range(12)]
    mixed = got["a:m"].blocks[0].values
    assert mixed == [1 if i % 4 else True for i in range(12)] and [type(v) for v in mixed][:2] == [bool, int]
    raw = fields.fields_of(many)["a:p"]
    assert b'"blocks":[[12,"u2",' in raw and raw.count(b"float_") == 3
    lists = [[["v", "string", ["a"] if i % 2 else "x"], []] for i in range(6)]
    assert b'"json"' in fields.fields_of(lists)["a:v"]
    unique = [[["s", "string", f"S{i}"], []] for i in range(6)]
    assert b'"json"' in fields.fields_of(unique)["a:s"]
    bad = raw.replace(b'["float_0","float_1","float_2"]', b'["float_0","float_1"]   ')
    with pytest.raises(atlas.CorruptionError, match="beyond the distinct values|malformed"):
        fields.decode_field(bad, 12, "s")


def test_repeated_values_keep_the_sign_of_zero() -> None:
    """-0.0 equals 0.0 (and 0) but is another value: indexing repeated values keeps it,
    as the records do (a latitude of -0.0 was read back from the catalogue as 0.0)."""
    values: list[object] = [0.0, -0.0, 0, 0.0, -0.0, 0, 0.0, 1.5]
    many = [[["lat", "float64" if type(v) is float else "int64", v], []] for v in values]
    raw = fields.fields_of(many)["a:lat"]
    assert b'"u2"' in raw  # indexed: the values repeat
    got = fields.decode_field(raw, len(values), "s").blocks[0].values
    assert [(type(v), repr(v)) for v in got] == [(type(v), repr(v)) for v in values]


def test_the_catalogue_keeps_a_negative_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import math

    s = atlas.Atlas.create(tmp_path / "s")
    for name, v in [("d1", 0.0), ("d3", -0.0), ("d4", 0), ("d5", 0.0)]:
        s.create_dataset(name).set_attribute("lat", v)
    s.flush()
    lat = atlas.Atlas.open(tmp_path / "s").catalog(attributes=["lat"], arrays=[])["lat"].tolist()
    assert [math.copysign(1, v) for v in lat] == [1, -1, 1, 1]
