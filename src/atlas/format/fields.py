"""Catalogue fields of a shard: each attribute key and each array's statistics over the
shard's datasets, as typed columns a catalogue query reads alone (format versions 2 and 3).

A shard's records hold everything; the fields repeat, by key, what ``find`` and
``catalog()`` need, so that they read a few small ranges of each shard instead of decoding
every record. A field is one small file part:

* a header line, JSON: ``{"dtype": NAME}`` (the attribute's one dtype) or
  ``{"dtypes": [NAME, ...]}`` (one per value), and
  ``"blocks": [[count, kind, length, shared], ...]``;
* then each block: ``count`` rows (``uint32``, increasing, within the shard; absent when
  ``shared`` is ``k`` > 0: the rows of block ``k``, counted from 1) and ``length`` bytes of
  values: ``i4``,
  ``i8`` (int32, int64), ``f4``, ``f8`` (float32, float64; ``f4`` only when every value is
  one exactly), ``b1`` (bool) little-endian, ``json`` (a JSON list of ``count``
  manifest-encoded values), or ``u2``/``u4`` (values that repeat: ``count`` indexes, uint16
  or uint32, into the JSON list of distinct values that follows them).

An attribute field (``a:KEY``) has one block: the rows holding the key and their values. A
statistics field (``s:ARRAY``) has five: ``row_count``, ``null_count``, ``min`` and ``max``,
each at the rows where it is not null, then ``schema``: the schema number of the array at
each row that has statistics. Values are manifest-encoded (``docs/format.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from ..errors import CorruptionError

ATTRIBUTE = "a:"
STATISTICS = "s:"
#: The statistics blocks of an array's field, in order.
STAT_BLOCKS = ("row_count", "null_count", "min", "max", "schema")

_BINARY: dict[str, np.dtype[Any]] = {
    "i4": np.dtype("<i4"), "i8": np.dtype("<i8"), "f4": np.dtype("<f4"), "f8": np.dtype("<f8"), "b1": np.dtype("?"),
}
_INDEX: dict[str, np.dtype[Any]] = {"u2": np.dtype("<u2"), "u4": np.dtype("<u4")}
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True, slots=True)
class Block:
    """Values at rows of a shard: ``rows`` the increasing ``<u4`` positions in the shard
    (a view of the field's bytes), ``values`` a numpy array (binary kinds) or a list."""

    rows: np.ndarray
    values: np.ndarray | list[Any]


@dataclass(frozen=True, slots=True)
class Field:
    """One decoded field: its blocks and the dtype name of each value (``dtype`` when all
    share one, else ``dtypes``)."""

    blocks: tuple[Block, ...]
    dtype: str | None
    dtypes: list[str] | None


def _kind(values: list[Any]) -> tuple[str, np.ndarray | None]:
    """The narrowest kind that holds ``values`` exactly, and them as an array (None: JSON)."""
    types = set(map(type, values))
    if types == {float}:
        wide = np.array(values, dtype="<f8")
        narrow = wide.astype("<f4")
        if np.array_equal(narrow.astype("<f8"), wide, equal_nan=True):
            return "f4", narrow
        return "f8", wide
    if types == {bool}:
        return "b1", np.array(values, dtype="?")
    if types == {int} and _INT64[0] <= min(values) and max(values) <= _INT64[1]:
        kind = "i4" if _INT32[0] <= min(values) and max(values) <= _INT32[1] else "i8"
        return kind, np.array(values, dtype=_BINARY[kind])
    return "json", None


def _distinct(values: list[Any]) -> tuple[str, bytes] | None:
    """Values that repeat as indexes into the list of distinct ones (kind ``u2``/``u4``), or
    None when they do not repeat enough (or cannot be told apart by hashing)."""
    index: dict[tuple[type, Any], int] = {}
    distinct: list[Any] = []

    def number(v: Any) -> int:
        key = (float, v.hex()) if type(v) is float else (type(v), v)  # 1, 1.0, True, -0.0 and 0.0 differ
        at = index.get(key)
        if at is None:
            at = index[key] = len(distinct)
            distinct.append(v)
        return at

    try:
        at = list(map(number, values))
    except TypeError:  # lists among them
        return None
    if 2 * len(index) > len(values):
        return None
    kind = "u2" if len(index) <= 1 << 16 else "u4"
    return kind, np.array(at, dtype=_INDEX[kind]).tobytes() + orjson.dumps(distinct)


def _encode(head: dict[str, Any], blocks: list[tuple[list[int], list[Any]]]) -> bytes:
    specs, parts = [], []
    earlier: list[list[int]] = []
    for rows, values in blocks:
        kind, array = _kind(values) if values else ("i4", np.zeros(0, dtype="<i4"))
        if array is None:
            coded = _distinct(values)
            kind, raw = coded if coded is not None else ("json", orjson.dumps(values))
        else:
            raw = array.tobytes()
        # the rows of an earlier block (its number, from 1) are not stored again
        shared = next((i + 1 for i, before in enumerate(earlier) if before == rows), 0)
        specs.append([len(rows), kind, len(raw), shared])
        if not shared:
            parts.append(np.array(rows, dtype="<u4").tobytes())
        parts.append(raw)
        earlier.append(rows)
    head["blocks"] = specs
    return orjson.dumps(head) + b"\n" + b"".join(parts)


_first = itemgetter(0)


def entry_names(entries: Any) -> tuple[Any, ...]:
    """The array names of a record's entries, in order (its layout)."""
    return tuple(map(_first, entries))


def by_layout(lists: list[Any], key_of: Any) -> dict[tuple[Any, ...], list[int]]:
    """Rows grouped by the layout of their list (``key_of`` gives it), in order of first
    appearance: similar datasets share one layout, so each key is then picked out of all of
    them at once."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for row, layout in enumerate(map(key_of, lists)):
        rows = groups.get(layout)
        if rows is None:
            groups[layout] = [row]
        else:
            rows.append(row)
    return groups


def _gathered(parts: list[tuple[list[int], list[Any], list[Any]]]) -> tuple[list[int], list[Any], list[Any]]:
    """Rows and two lists of items of several layouts as one, in row order."""
    if len(parts) == 1:
        return parts[0]
    triples = sorted((r, a, b) for rows, xs, ys in parts for r, a, b in zip(rows, xs, ys, strict=True))
    return [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]


def _present(rows: list[int], values: list[Any]) -> tuple[list[int], list[Any]]:
    """The rows and values where a value is not None."""
    if None not in values:
        return rows, values
    keep = [v is not None for v in values]
    return list(compress(rows, keep)), list(compress(values, keep))


def fields_of(records: list[Any]) -> dict[str, bytes]:
    """The encoded fields of a shard's records (``[attributes, entries]`` each): attribute
    keys in order of first appearance, then arrays' statistics in order of first appearance."""
    flats = [r[0] for r in records]
    attrs: dict[str, list[tuple[list[int], list[Any], list[Any]]]] = {}
    for layout, rows in by_layout(flats, lambda f: tuple(f[0::3])).items():
        group = [flats[r] for r in rows]
        for j, key in enumerate(layout):
            dtypes = list(map(itemgetter(3 * j + 1), group))
            attrs.setdefault(key, []).append((rows, dtypes, list(map(itemgetter(3 * j + 2), group))))
    entry_lists = [r[1] for r in records]
    stats: dict[str, list[tuple[list[int], list[Any], list[Any]]]] = {}
    for layout, rows in by_layout(entry_lists, entry_names).items():
        entries = [es[j] for es in (entry_lists[r] for r in rows) for j in range(len(layout))]
        for j, name in enumerate(layout):
            picked = entries[j :: len(layout)]
            found_rows, found = _present(rows, [e[3] for e in picked])
            schemas = [e[2] for e, st in zip(picked, map(itemgetter(3), picked), strict=True) if st is not None]
            stats.setdefault(name, []).append((found_rows, found, schemas))
    out: dict[str, bytes] = {}
    for key, parts in attrs.items():
        rows, dtypes, values = _gathered(parts)
        head: dict[str, Any] = {"dtype": dtypes[0]} if dtypes.count(dtypes[0]) == len(dtypes) else {"dtypes": dtypes}
        out[ATTRIBUTE + key] = _encode(head, [(rows, values)])
    for name, parts in stats.items():
        rows, found, schemas = _gathered(parts)
        blocks = [_present(rows, list(map(itemgetter(i), found))) for i in range(4)]
        blocks.append((rows, schemas))
        out[STATISTICS + name] = _encode({}, blocks)
    return out


def decode_field(data: bytes | bytearray | memoryview, rows: int, where: str) -> Field:
    """A field of a shard of ``rows`` datasets; ``CorruptionError`` naming ``where`` if it
    is malformed."""
    buf = memoryview(data)
    try:
        nl = bytes(buf[:4096]).find(b"\n")
        if nl < 0:
            nl = bytes(buf).find(b"\n")
        if nl < 0:
            raise ValueError("no header line")
        head = json.loads(bytes(buf[:nl]))
        blocks_spec = head["blocks"]
        dtype, dtypes = head.get("dtype"), head.get("dtypes")
        if not isinstance(blocks_spec, list) or (dtype is not None and type(dtype) is not str):
            raise ValueError("bad header")
        pos = nl + 1
        blocks: list[Block] = []
        for count, kind, length, shared in blocks_spec:
            if type(count) is not int or type(length) is not int or not 0 <= count <= rows or length < 0:
                raise ValueError("bad block")
            if type(shared) is int and 0 < shared <= len(blocks) and len(blocks[shared - 1].rows) == count:
                at = blocks[shared - 1].rows
            elif shared == 0:
                at = np.frombuffer(buf, "<u4", count, pos)
                pos += 4 * count
                if count and (int(at[-1]) >= rows or (count > 1 and bool((at[1:] <= at[:-1]).any()))):
                    raise ValueError("rows out of order or beyond the shard")
            else:
                raise ValueError("bad shared rows")
            raw = buf[pos : pos + length]
            if len(raw) != length:
                raise ValueError("truncated")
            pos += length
            if kind == "json":
                values: Any = orjson.loads(raw)
                if type(values) is not list or len(values) != count:
                    raise ValueError("value list of the wrong length")
            elif kind in _INDEX:
                width = _INDEX[kind].itemsize * count
                if width > length:
                    raise ValueError("indexes beyond the block")
                distinct = orjson.loads(raw[width:])
                at_values = np.frombuffer(raw, _INDEX[kind], count)
                if type(distinct) is not list or (count and int(at_values.max()) >= len(distinct)):
                    raise ValueError("an index beyond the distinct values")
                values = list(map(distinct.__getitem__, at_values.tolist()))
            else:
                values = np.frombuffer(raw, _BINARY[kind])
                if len(values) != count:
                    raise ValueError("values of the wrong length")
            blocks.append(Block(at, values))
        if pos != len(buf) or not blocks:
            raise ValueError("length disagrees with its blocks")
        if dtypes is not None and (type(dtypes) is not list or len(dtypes) != len(blocks[0].rows)):
            raise ValueError("one dtype name per value expected")
    except (ValueError, TypeError, KeyError, IndexError, orjson.JSONDecodeError) as e:
        raise CorruptionError(f"{where}: a catalogue field is malformed: {e}") from None
    return Field(tuple(blocks), dtype, dtypes)


def same_field(a: Field, b: Field) -> bool:
    """Whether two decoded fields hold the same rows, values and dtype names."""
    if (a.dtype, a.dtypes) != (b.dtype, b.dtypes) or len(a.blocks) != len(b.blocks):
        return False
    for x, y in zip(a.blocks, b.blocks, strict=True):
        if not np.array_equal(x.rows, y.rows) or type(x.values) is not type(y.values):
            return False
        if isinstance(x.values, np.ndarray):
            assert isinstance(y.values, np.ndarray)
            if x.values.dtype != y.values.dtype or not np.array_equal(
                x.values, y.values, equal_nan=x.values.dtype.kind == "f"
            ):
                return False
        elif x.values != y.values:
            return False
    return True
