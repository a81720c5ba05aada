"""The records section of a shard (format version 3): records grouped by layout.

Similar datasets share their structure: the same attribute keys and kinds, the same arrays
with the same array attributes. A record ``[attributes, entries]`` (see ``docs/format.md``)
is stored as the index of its *layout*, which holds that structure once, followed by its
*values*: the attribute values, then for each array its statistics (four values, when it
has them) and its attribute values. Array ids and schemas are not repeated: the shard's
columns section holds them.

Decoding builds each record straight into the form readers hold (tuples), with one small
function per layout, and takes each array's id and schema from the (checked) columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import CorruptionError

Layout = tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]]  # attribute keys and kinds; arrays
Columns = dict[str, np.ndarray]


def _layout_of(attrs: Sequence[Any], entries: Sequence[Any]) -> tuple[Any, ...]:
    """The structure of a record, hashable: attribute keys and kinds, then for each array its
    name, how many statistics it has (-1: none) and its attribute keys and kinds."""
    arrays = tuple((e[0], -1 if e[3] is None else len(e[3]), _keys_and_kinds(e[4])) for e in entries)
    return _keys_and_kinds(attrs), arrays


def _keys_and_kinds(flat: Sequence[Any]) -> tuple[Any, ...]:
    if len(flat) % 3:
        raise ValueError("an attribute list is not [key, kind, value, ...]")
    out: list[Any] = []
    for i in range(0, len(flat), 3):
        out += (flat[i], flat[i + 1])
    return tuple(out)


def encode_layouts(records: Sequence[Sequence[Any]]) -> list[Any]:
    """``[layouts, rows]`` for records ``[attributes, entries]``: each layout as
    ``[[key, kind, ...], [[array, statistics, [key, kind, ...]], ...]]`` (``statistics``:
    how many the array has, -1 for none), each row as ``[layout, value, ...]``."""
    index: dict[tuple[Any, ...], int] = {}
    layouts: list[Any] = []
    rows: list[list[Any]] = []
    for attrs, entries in records:
        key = _layout_of(attrs, entries)
        at = index.get(key)
        if at is None:
            at = index[key] = len(layouts)
            layouts.append([list(key[0]), [[name, stats, list(kk)] for name, stats, kk in key[1]]])
        row: list[Any] = [at]
        row += attrs[2::3]
        for e in entries:
            if e[3] is not None:
                row += e[3]
            row += e[4][2::3]
        rows.append(row)
    return [layouts, rows]


def _checked_layout(raw: Any, where: str) -> Layout:
    """A layout as decoded, its structure checked (the names and kinds themselves are
    checked when a dataset is used, as in every record)."""
    try:
        attrs, arrays = raw
        if type(attrs) is not list or len(attrs) % 2 or type(arrays) is not list:
            raise ValueError
        checked = []
        for name, stats, kk in arrays:
            if type(name) is not str or type(stats) is not int or not -1 <= stats <= 16 or type(kk) is not list or len(kk) % 2:
                raise ValueError
            checked.append((name, stats, tuple(kk)))
    except (TypeError, ValueError):
        raise CorruptionError(f"shard {where}: a record layout is malformed") from None
    if len({a[0] for a in checked}) != len(checked):
        raise CorruptionError(f"shard {where}: a record layout lists an array twice")
    return tuple(attrs), tuple(checked)


def _builder(layout: Layout) -> tuple[Callable[..., list[Any]], int]:
    """The function building a record of ``layout`` from its name, its values and each
    array's id and schema, and the number of values. Its code holds positions only: keys,
    kinds and names are constants it is given."""
    consts: list[Any] = []

    def const(x: Any) -> str:
        consts.append(x)
        return f"c[{len(consts) - 1}]"

    pos = 1

    def values(n: int) -> list[str]:
        nonlocal pos
        out = [f"v[{pos + i}]" for i in range(n)]
        pos += n
        return out

    def flat(keys_kinds: tuple[Any, ...]) -> str:
        parts: list[str] = []
        for i in range(0, len(keys_kinds), 2):
            parts += (const(keys_kinds[i]), const(keys_kinds[i + 1]), *values(1))
        return "(" + "".join(p + "," for p in parts) + ")"

    attrs, arrays = layout
    attrs_code = flat(attrs)
    entries = []
    for j, (name, stats, kk) in enumerate(arrays):
        stats_code = "(" + "".join(p + "," for p in values(stats)) + ")" if stats >= 0 else "None"
        entries.append(f"({const(name)},a{j},s{j},{stats_code},{flat(kk)})")
    args = "".join(f",a{j},s{j}" for j in range(len(arrays)))
    source = f"lambda n,v{args}:[n,{attrs_code},(" + "".join(e + "," for e in entries) + ")]"
    build = eval(compile(source, "<shard layout>", "eval"), {"c": tuple(consts)})  # positions only
    return build, pos - 1


def _generic(layout: Layout) -> tuple[Callable[..., list[Any]], int]:
    """A builder of ``layout`` that is not compiled: it makes the same records as
    :func:`_builder`'s, with one slice assignment per attribute list and a loop over the
    arrays. Compiling the code of a wide layout (an Argo file's 60 arrays and 170
    attributes) takes milliseconds, more than building a few hundred records this way."""
    attrs, arrays = layout
    n_attrs = len(attrs) // 2

    def template(keys_kinds: tuple[Any, ...]) -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(keys_kinds), 2):
            out += (keys_kinds[i], keys_kinds[i + 1], None)
        return out

    attr_template = template(attrs)
    plan = []
    pos = 1 + n_attrs
    for name, stats, kk in arrays:
        plan.append((name, pos, stats, template(kk), len(kk) // 2))
        pos += max(stats, 0) + len(kk) // 2

    def build(n: str, v: list[Any], *ids: Any) -> list[Any]:
        flat = attr_template.copy()
        flat[2::3] = v[1 : 1 + n_attrs]
        entries = []
        for j, (name, at, stats, kk_template, n_keys) in enumerate(plan):
            values: tuple[Any, ...] | None = tuple(v[at : at + stats]) if stats >= 0 else None
            at += max(stats, 0)
            array_attrs: tuple[Any, ...] = ()
            if n_keys:
                kk = kk_template.copy()
                kk[2::3] = v[at : at + n_keys]
                array_attrs = tuple(kk)
            entries.append((name, ids[2 * j], ids[2 * j + 1], values, array_attrs))
        return [n, tuple(flat), tuple(entries)]

    return build, pos - 1


def _built(layout: Layout, members: int) -> tuple[Callable[..., list[Any]], int]:
    """The builder of ``layout`` for ``members`` more records of it. A compiled one is made
    once per process (shards of one store share their layouts; a store of many layouts
    makes at most ``_BUILDERS_KEPT`` of them at a time), for a narrow layout at once, for a
    wide one when it has served ``COMPILE_AFTER`` records: until then the generic builder
    costs less than compiling."""
    try:
        hit = _BUILDERS.get(layout)
    except TypeError:  # a kind that is no string (the record's decoder says what is wrong)
        return _builder(layout)
    if hit is None:
        if _width(layout) > NARROW_VALUES:
            served = _SERVED.get(layout, 0) + members
            if served < COMPILE_AFTER:
                if len(_SERVED) >= _BUILDERS_KEPT:
                    _SERVED.clear()
                _SERVED[layout] = served
                return _generic(layout)
            _SERVED.pop(layout, None)
        if len(_BUILDERS) >= _BUILDERS_KEPT:
            _BUILDERS.clear()
        hit = _BUILDERS[layout] = _builder(layout)
    return hit


def _width(layout: Layout) -> int:
    """How many values a record of ``layout`` holds."""
    attrs, arrays = layout
    return len(attrs) // 2 + sum(max(stats, 0) + len(kk) // 2 for _, stats, kk in arrays)


_BUILDERS: dict[Layout, tuple[Callable[..., list[Any]], int]] = {}
_BUILDERS_KEPT = 4096
#: Layouts of at most this many values are compiled at once (it takes well under a millisecond).
NARROW_VALUES = 64
#: A wider layout is compiled once it has served this many records (in all shards).
COMPILE_AFTER = 256
_SERVED: dict[Layout, int] = {}


def decode_layouts(body: Any, names: Sequence[str], columns: Columns, where: str) -> list[list[Any]]:
    """The records ``[name, attributes, entries]`` of a shard from its records section
    (decoded ``[layouts, rows]``) and its checked columns, which must list exactly the arrays
    the layouts give each dataset."""
    n = len(names)
    if type(body) is not list or len(body) != 2 or type(body[0]) is not list or type(body[1]) is not list:
        raise CorruptionError(f"shard {where}: the records section is not [layouts, rows]")
    raw_layouts, rows = body
    if len(rows) != n:
        raise CorruptionError(f"shard {where}: the records section holds {len(rows)} records, not {n}")
    layouts = [_checked_layout(raw, where) for raw in raw_layouts]
    try:
        firsts = [row[0] for row in rows]
        if set(map(type, firsts)) - {int}:
            raise TypeError
        which = np.array(firsts, dtype=np.int64) if n else np.zeros(0, np.int64)
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        raise CorruptionError(f"shard {where}: a record is malformed") from None
    if n and (int(which.min()) < 0 or int(which.max()) >= len(layouts)):
        raise CorruptionError(f"shard {where}: a record names an unknown layout")
    out: list[Any] = [None] * n
    covered: dict[str, int] = {}
    order = np.argsort(which, kind="stable")  # each layout's rows together, in row order
    bounds = np.concatenate([[0], np.cumsum(np.bincount(which, minlength=len(layouts)))]).tolist()
    for at, layout in enumerate(layouts):
        members = order[bounds[at] : bounds[at + 1]]
        if not len(members):
            continue
        build, width = _built(layout, len(members))
        picked = [rows[r] for r in members.tolist()]
        if set(map(type, picked)) != {list} or set(map(len, picked)) != {width + 1}:
            raise CorruptionError(f"shard {where}: a record does not hold the values its layout lists")
        ids: list[list[Any]] = []
        for name, _, _ in layout[1]:
            col = columns.get(name)
            found = np.searchsorted(col["row"], members) if col is not None else None
            if col is None or found is None or int(found.max()) >= len(col) or not np.array_equal(col["row"][found], members):
                raise CorruptionError(f"shard {where}: its array columns disagree with its records")
            covered[name] = covered.get(name, 0) + len(members)
            ids += (col["aid"][found].tolist(), col["schema"][found].tolist())
        for r, record in zip(members.tolist(), map(build, [names[r] for r in members.tolist()], picked, *ids), strict=True):
            out[r] = record
    if covered != {name: len(col) for name, col in columns.items()}:
        raise CorruptionError(f"shard {where}: its array columns disagree with its records")
    return out
