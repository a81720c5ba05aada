"""``atlas.format.layouts``: a shard's records grouped by layout hold each structure once,
come back as readers hold them, and refuse values and columns that do not add up."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import atlas
from atlas.format import shard
from atlas.format.codec import checksum

META = ("json", "none")


def _held(names: list[str], records: list[list[object]]) -> list[list[object]]:
    """Records as readers hold them: ``[name, attributes, entries]``, tuples inside."""
    return [
        [n, tuple(attrs), tuple((e[0], e[1], e[2], None if e[3] is None else tuple(e[3]), tuple(e[4])) for e in entries)]
        for n, (attrs, entries) in zip(names, records, strict=True)
    ]


def test_records_by_layout_hold_each_structure_once() -> None:
    """Datasets alike share one layout; ids and schemas come from the columns only; each
    array's statistics and attributes come back in place, tuples as readers hold them."""
    names = [f"p{i}" for i in range(6)]
    records: list[list[object]] = [
        [["station", "string", f"S{i}", "cycle", "int64", i],
         [["t", 100 + 2 * i, 0, [5, 0, 1.5, 2.5], ["units", "string", "K"]], ["u", 101 + 2 * i, 1, None, []]]]
        for i in range(5)
    ] + [[[], []]]
    data, _ = shard.encode_shard(names, records, *META)
    head = json.loads(data[: data.index(b"\n")])
    body_at = data.index(b"\n") + 1 + head["names_length"] + head["columns_length"]
    layouts, rows = json.loads(data[body_at : body_at + head["body_length"]])
    assert len(layouts) == 2 and rows[0] == [0, "S0", 0, 5, 0, 1.5, 2.5, "K"] and rows[5] == [1]
    got, columns, built = shard.decode_records(data, names, META, "s")
    assert built and got == _held(names, records)
    assert columns["t"]["aid"].tolist() == [100, 102, 104, 106, 108]


def _layout_shard(layouts: object, rows: object, columns: dict[str, list[tuple[int, int, int]]], n: int) -> bytes:
    """A shard whose records section is ``[layouts, rows]`` as given, its columns as given
    (row, id, schema each), checksums intact."""
    names = [f"d{i}" for i in range(n)]
    data, _ = shard.encode_shard(names, [[[], []] for _ in range(n)], *META)
    nl = data.index(b"\n")
    head = json.loads(data[:nl])
    names_part = data[nl + 1 : nl + 1 + head["names_length"]]
    cols = [np.array(rows_, dtype=shard.COLUMN_DTYPE) for rows_ in columns.values()]
    cols_part = b"".join(c.tobytes() for c in cols)
    body = json.dumps([layouts, rows]).encode()
    head.update(
        columns=[[name, len(c)] for name, c in zip(columns, cols, strict=True)],
        columns_length=len(cols_part), columns_crc32c=checksum(cols_part),
        body_length=len(body), body_crc32c=checksum(body), fields=[],
    )
    return json.dumps(head).encode() + b"\n" + names_part + cols_part + body


@pytest.mark.parametrize(
    ("layouts", "rows", "columns", "message"),
    [
        ([], [[0], [0]], {}, "unknown layout"),
        ([[["k"], []]], [[0, 1], [0, 2]], {}, "layout is malformed"),
        ([[[], [["x", -1, []], ["x", -1, []]]]], [[0], [0]], {}, "lists an array twice"),
        ([[["k", "int64"], []]], [[0, 1], [0]], {}, "does not hold the values its layout lists"),
        ([[[], [["x", -1, []]]]], [[0], [0]], {"x": [(0, 5, 0)]}, "columns disagree"),
        ([[[], []]], [[0], [0]], {"x": [(0, 5, 0)]}, "columns disagree"),
        ([[[], [["x", 4, []]]]], [[0, 1, 2, 3, 4], [0, 1, 2, 3]], {"x": [(0, 5, 0), (1, 6, 0)]}, "values its layout"),
        ("not a list", [[0], [0]], {}, "is not \\[layouts, rows\\]"),
        ([[[], []]], [[0]], {}, "holds 1 records, not 2"),
        ([[[], []]], [["0"], [0]], {}, "a record is malformed"),
    ],
)
def test_records_by_layout_that_do_not_add_up_are_corruption(
    layouts: object, rows: object, columns: dict[str, list[tuple[int, int, int]]], message: str
) -> None:
    data = _layout_shard(layouts, rows, columns, 2)
    with pytest.raises(atlas.CorruptionError, match=message):
        shard.decode_records(data, ["d0", "d1"], META, "s")


def _compiled_layouts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The layouts whose builders are compiled from now on (none made before counts)."""
    from atlas.format import layouts

    compiled: list[object] = []
    real = layouts._builder

    def counted(layout: layouts.Layout) -> object:
        compiled.append(layout)
        return real(layout)

    monkeypatch.setattr(layouts, "_builder", counted)
    monkeypatch.setattr(layouts, "_BUILDERS", {})
    monkeypatch.setattr(layouts, "_SERVED", {})
    return compiled


def test_a_layout_is_made_into_a_builder_once_and_rows_are_grouped_by_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards of a store share their layouts: reading another shard of known layouts makes
    no builder again; records of many layouts, interleaved, come back in their order."""
    import orjson

    from atlas.format import layouts

    made = _compiled_layouts(monkeypatch)
    records = [[f"d{i}", (f"k{i % 7}", "int64", i), ()] for i in range(50)]
    body = orjson.loads(orjson.dumps(layouts.encode_layouts([r[1:] for r in records])))
    for _ in range(2):
        got = layouts.decode_layouts(body, [r[0] for r in records], {}, "shard")
        assert [list(r) for r in got] == [list(r) for r in records]
    assert len(made) == 7


def _wide_records(n: int) -> list[list[Any]]:
    """Records of one wide layout (an Argo-like file: many attributes and arrays, some arrays
    with statistics and attributes of their own, one without statistics)."""
    out = []
    for i in range(n):
        attrs = tuple(x for k in range(40) for x in (f"key{k}", "string" if k % 2 else "int64", f"v{i}" if k % 2 else i + k))
        entries = tuple(
            (
                f"VAR{j}",
                None if j == 3 else (10, j, float(i), float(i + j)),
                ("units", "string", "degree_Celsius", "valid_min", "float64", -2.5) if j % 4 == 0 else (),
            )
            for j in range(12)
        )
        out.append([f"d{i}", attrs, entries])
    return out


def test_a_wide_layout_is_built_without_compiling_until_it_has_served_many_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compiling a wide layout's builder costs more than building a few hundred records
    generically: a shard of few such records is built without compiling, and the records
    are the same as the compiled builder makes."""
    import orjson

    from atlas.format import layouts

    compiled = _compiled_layouts(monkeypatch)
    monkeypatch.setattr(layouts, "COMPILE_AFTER", 25)
    records = _wide_records(10)
    stored = [[attrs, [(name, 0, 0, stats, aattrs) for name, stats, aattrs in entries]] for _, attrs, entries in records]
    body = orjson.loads(orjson.dumps(layouts.encode_layouts(stored)))
    columns = {
        f"VAR{j}": np.array([(r, 100 * r + j + 1, j) for r in range(10)], dtype=[("row", "<u4"), ("aid", "<u8"), ("schema", "<u4")])
        for j in range(12)
    }
    names = [r[0] for r in records]
    expected = [
        [name, attrs, tuple((n, 100 * i + j + 1, j, stats, aattrs) for j, (n, stats, aattrs) in enumerate(entries))]
        for i, (name, attrs, entries) in enumerate(records)
    ]
    assert layouts.decode_layouts(body, names, columns, "shard") == expected  # 10 served: generic
    assert layouts.decode_layouts(body, names, columns, "shard") == expected  # 20 served: generic
    assert compiled == []
    assert layouts.decode_layouts(body, names, columns, "shard") == expected  # 30 served: compiled
    assert len(compiled) == 1
    assert layouts.decode_layouts(body, names, columns, "shard") == expected  # compiled once
    assert len(compiled) == 1
