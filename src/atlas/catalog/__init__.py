"""The catalogue: find datasets by attributes and statistics without reading their data.

``Atlas.catalog()`` tabulates dataset attributes and per-array metadata (dtype, shape and the
statistics computed at flush) as a ``pandas.DataFrame``; ``Atlas.find()`` selects dataset
names with a small, safe predicate language over the same columns.

Both are built from the in-memory metadata alone and never read array data. Only the
requested attributes and arrays are picked out, column by column with C-level iteration over
the manifest records as they were loaded (they are not materialised into dataset objects).
Those records never change, so what was read from them is remembered by the handle and later
calls only re-read datasets that were materialised since (opened, written, re-created).
The manifest itself is untouched: no index or column is added to the metadata layout.

The predicate language
----------------------

A predicate is a Python *expression* that is parsed with :mod:`ast` and checked against an
allow-list; it is never evaluated by Python. It consists of:

* names: ``station``, ``temperature.max``, ``depth.null_count``; a part that is not a plain
  identifier is quoted with backticks: ```my var`.max``, ```sea-level```;
* literals: numbers, strings, ``True``/``False``, ``float('nan')``, ``float('inf')``,
  timestamps ``ts('2021-06-01')`` (also ``timestamp(...)``; tz-aware values are converted to
  UTC), lists/tuples of literals after ``in`` / ``not in``, a tuple of ints to compare a
  ``.shape`` with;
* comparisons ``== != < <= > >=`` (chains such as ``0 <= lat < 30`` too), ``in``, ``not in``,
  ``is None`` / ``is not None``;
* ``and``, ``or``, ``not`` (``&``, ``|``, ``~`` are accepted as synonyms around parenthesised
  predicates);
* functions ``isnull(x)``, ``notnull(x)``, ``isnan(x)`` and ``any(array)``.

Anything else (calls, subscripts, arithmetic, lambdas, attribute access on literals...) is
rejected with a ``ValueError`` that quotes the offending fragment.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain, compress, repeat
from operator import attrgetter, eq, getitem, is_, is_not, itemgetter, not_
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from ..dtypes import DTYPES, decode_float, decode_value
from ..errors import CorruptionError

if TYPE_CHECKING:
    import pandas as pd

    from ..core.atlas import Store as Atlas
    from ..core.state import ArrayState, DatasetState, Schema
else:

    class _Pandas:
        """pandas, imported at first use: ``import atlas`` stays light (pandas alone adds
        ~30,000 objects that every full garbage collection of the process walks)."""

        def __getattr__(self, name: str) -> Any:
            import pandas

            return getattr(pandas, name)

    pd = _Pandas()

__all__ = ["FIELDS", "catalog", "find"]

#: Per-array catalogue fields, in column order.
FIELDS = ("dtype", "shape", "min", "max", "null_count", "row_count")

#: Prefix of an attribute column whose key clashes with an ``ARRAY.FIELD`` column.
ATTR_PREFIX = "attr:"

_MAX_EXPR_CHARS = 20_000
_EXACT_FLOAT_INT = 2**53
_NAT = np.iinfo(np.int64).min

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_AST_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}

Mask = np.ndarray  # 1-D bool, one entry per live dataset


class _SchemaSource(Protocol):
    """The store's schema table (indexable by the schema numbers of manifest records)."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Schema: ...


# ============================================================================ typed columns


class _Col:
    """A typed column over the live datasets: ``values`` where ``mask`` is False, else null.

    ``kind`` is one of ``int`` (int64), ``uint`` (uint64), ``float`` (float64), ``bool``,
    ``timestamp`` (int64 ns), ``string``, ``shape`` (tuples), ``object`` (mixed Python values)
    or ``null`` (no value anywhere).
    """

    __slots__ = ("kind", "values", "mask")

    def __init__(self, kind: str, values: np.ndarray, mask: np.ndarray) -> None:
        self.kind = kind
        self.values = values
        self.mask = mask

    def to_pandas(self) -> Any:
        """The pandas array of this column (nullable dtypes; NA/NaT for missing values)."""
        kind, values, mask = self.kind, self.values, self.mask
        if kind == "int" or kind == "uint":
            return pd.arrays.IntegerArray(values.copy(), mask.copy())
        if kind == "float":
            return pd.arrays.FloatingArray(values.copy(), mask.copy())
        if kind == "bool":
            return pd.arrays.BooleanArray(values.copy(), mask.copy())
        if kind == "timestamp":
            v = values.copy()
            v[mask] = _NAT
            return v.view("datetime64[ns]")
        if kind == "string":
            obj = values.copy()
            obj[mask] = None
            return pd.array(obj, dtype=pd.StringDtype())
        obj = values.copy()
        obj[mask] = pd.NA
        return obj


def _scatter(n: int, rows: Sequence[int] | np.ndarray, vals: np.ndarray, fill: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(n, fill, dtype=dtype)
    mask = np.ones(n, dtype=bool)
    if len(rows):
        r = np.asarray(rows, dtype=np.intp)
        out[r] = vals
        mask[r] = False
    return out, mask


def _objects(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``items`` (tuples stay elements)."""
    out = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        out[i] = x
    return out


def _family(kindset: Iterable[str], where: str) -> str:
    """The column kind for values of these dtype names (before looking at the values)."""
    try:
        dts = [DTYPES[k] for k in set(kindset)]
    except (KeyError, TypeError):
        raise CorruptionError(f"{where}: unknown dtype in metadata") from None
    fams = {d.kind for d in dts}
    if not fams:
        return "null"
    if fams <= {"int", "uint"}:
        return "uint" if fams == {"uint"} and any(d.name == "uint64" for d in dts) else "int"
    if fams <= {"int", "uint", "float"}:
        return "float"
    if len(fams) == 1:
        return fams.pop()
    return "object"


_NUMPY = {
    "int": (np.int64, 0),
    "uint": (np.uint64, 0),
    "float": (np.float64, 0.0),
    "bool": (bool, False),
    "timestamp": (np.int64, 0),
    "string": (object, ""),
    "shape": (object, None),
    "object": (object, None),
    "null": (object, None),
}


def _empty(n: int, kind: str) -> _Col:
    """An all-null column of a kind."""
    dtype, fill = _NUMPY[kind]
    return _Col(kind, np.full(n, fill, dtype=dtype), np.ones(n, dtype=bool))


def _typed(
    n: int,
    rows: Sequence[int] | np.ndarray,
    values: Sequence[Any],
    kindset: Iterable[str],
    kinds: Sequence[str] | Callable[[], Sequence[str]],
    where: str,
) -> _Col:
    """Build one typed column from manifest values of the given dtype names.

    ``kindset`` holds the dtype names of the values (or more); ``kinds()`` gives one per value
    and is only called when the values mix dtype families or are malformed.
    """
    kind = _family(kindset, where)
    float_only = kind == "float" and all(k in ("float32", "float64") for k in set(kindset))

    def per_value() -> Sequence[str]:
        return kinds() if callable(kinds) else kinds

    if not len(rows):
        return _empty(n, kind)
    try:
        if kind in ("int", "uint", "timestamp", "bool"):
            dtype, fill = _NUMPY[kind]
            try:
                arr = np.array(values, dtype=dtype)
            except OverflowError:
                if kind != "int":
                    raise
                kind = "object"  # uint64 values beyond int64 mixed with signed ints
            else:
                if arr.ndim != 1:
                    raise ValueError("scalars expected")
                return _Col(kind, *_scatter(n, rows, arr, fill, dtype))
        elif kind == "float":
            vals: Sequence[Any] = values
            try:
                arr = np.array(vals, dtype=np.float64)
            except (ValueError, TypeError):
                vals = [decode_float(v) if type(v) is str else v for v in vals]
                arr = np.array(vals, dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError("numbers expected")
            if float_only or set(map(type, vals)) <= {float} or all(
                type(v) is float or abs(v) <= _EXACT_FLOAT_INT for v in vals
            ):
                return _Col("float", *_scatter(n, rows, arr, 0.0, np.float64))
            kind = "object"  # ints too large to be exact as floats
        elif kind == "string":
            if not set(map(type, values)) <= {str}:
                raise ValueError("strings expected")
            return _Col("string", *_scatter(n, rows, np.array(values, dtype=object), "", object))
    except (ValueError, TypeError) as e:
        _validate(values, per_value(), where, e)
    # mixed families: exact Python values
    decoded = []
    for k, v in zip(per_value(), values, strict=True):
        try:
            decoded.append(decode_value(k, v))
        except ValueError as e:
            raise CorruptionError(f"{where}: {e}") from None
    return _Col("object", *_scatter(n, rows, _objects(decoded), None, object))


def _validate(values: Sequence[Any], kinds: Sequence[str], where: str, err: Exception) -> None:
    """Raise the ``CorruptionError`` explaining why values could not be typed."""
    for k, v in zip(kinds, values, strict=True):
        try:
            decode_value(k, v)
        except ValueError as e:
            raise CorruptionError(f"{where}: {e}") from None
    raise CorruptionError(f"{where}: values are malformed: {err}") from None


# ============================================================================ gathering
#
# Raw manifest records are ``[name, attrs_flat, arrays]`` with ``attrs_flat`` as
# ``[key, kind, value, ...]`` and each array entry ``[name, aid, schema_index, stats, attrs]``.
# Similar datasets list their attributes and arrays in the same order, so each wanted key is
# first looked up, for all datasets at once and with C-level iteration (``map``), at the
# position it has in the first dataset holding it; only datasets where that guess misses are
# searched one by one. Materialised datasets (``DatasetState``) are read through their
# attributes, without decoding what is still encoded.

_MISSING_ENTRY: list[Any] = [None, None, None, None, None]
_NO_ROWS = np.zeros(0, dtype=np.intp)


class _ArrayHits:
    """What the pass collected for one array name (rows are dataset positions)."""

    __slots__ = ("rows", "sidx", "srows", "ssidx", "stats", "keyed")

    def __init__(
        self, rows: np.ndarray, sidx: np.ndarray, srows: np.ndarray, ssidx: np.ndarray, stats: list[Any], keyed: bool
    ) -> None:
        self.rows = rows  # datasets declaring the array
        self.sidx = sidx  # their schema numbers
        self.srows = srows  # datasets whose array has statistics
        self.ssidx = ssidx
        # statistics of each: [row_count, null_count, min, max] in manifest encoding, or the
        # decoded dicts of materialised arrays when ``keyed``
        self.stats = stats
        self.keyed = keyed

    def getter(self, i: int) -> Callable[[Any], Any]:
        """Getter of one statistic (0: row_count, 1: null_count, 2: min, 3: max)."""
        return itemgetter(_STATS_KEYS[i] if self.keyed else i)

    def stat_rows(self) -> list[Any]:
        """The statistics as ``[row_count, null_count, min, max]`` sequences."""
        return list(map(_STATS_OF, self.stats)) if self.keyed else self.stats


class _AttrHits:
    """What the pass collected for one attribute key."""

    __slots__ = ("rows", "kinds", "values")

    def __init__(self, rows: np.ndarray, kinds: list[str], values: list[Any]) -> None:
        self.rows = rows
        self.kinds = kinds
        self.values = values


def _flat_find(flat: list[Any], key: str) -> int:
    """Position of attribute ``key`` in a flat ``[key, kind, value, ...]`` list, or -1."""
    try:
        i = flat.index(key)
        while i % 3:  # matched a kind or a value
            i = flat.index(key, i + 1)
    except ValueError:
        return -1
    return i


def _take(items: Sequence[Any], pos: int, default: Any) -> list[Any]:
    """``item[pos]`` of every item (``default`` where an item is too short)."""
    try:
        return list(map(getitem, items, repeat(pos)))
    except IndexError:
        return [x[pos] if len(x) > pos else default for x in items]


def _all_equal(items: list[Any], key: str) -> bool:
    """Whether every item equals ``key`` (one C-level pass)."""
    return items.count(key) == len(items)


class _RawCache:
    """Columns collected from a snapshot of the raw manifest records of a handle.

    Raw records are never modified (a dataset that changes is materialised into a
    ``DatasetState`` instead), so what was found in the snapshot stays valid as long as the
    snapshot holds the records: a later call maps snapshot positions to current rows, and
    only materialised datasets are read again.
    """

    __slots__ = (
        "snap", "schemas", "pos_of", "flats", "entry_lists", "keys", "keyset", "attr_cols", "array_hits",
        "array_cols", "where",
    )

    def __init__(self, snap: list[list[Any]], schemas: Any, where: str) -> None:
        self.snap = snap
        self.schemas = schemas
        self.where = where
        self.pos_of: dict[int, int] | None = None  # id(record) -> position in snap
        self.flats: list[list[Any]] | None = None
        self.entry_lists: list[list[Any]] | None = None
        self.keys: list[str] | None = None  # every attribute key, in order of first appearance
        self.keyset: dict[str, None] | None = None
        self.attr_cols: dict[str, _Col] = {}  # over snapshot positions
        self.array_hits: dict[str, _ArrayHits] = {}
        self.array_cols: dict[tuple[str, str], _Col] = {}

    def get_flats(self) -> list[list[Any]]:
        if self.flats is None:
            flats: list[list[Any]] = list(map(itemgetter(1), self.snap))
            if not set(map(type, flats)) <= {list, tuple} or any(x % 3 for x in set(map(len, flats))):
                raise ValueError("attribute list is malformed")
            self.flats = flats
        return self.flats

    def get_keys(self) -> list[str]:
        if self.keys is None:
            every = chain.from_iterable(map(itemgetter(slice(0, None, 3)), self.get_flats()))
            self.keyset = dict.fromkeys(every)
            self.keys = list(self.keyset)
        return self.keys

    def get_keyset(self) -> dict[str, None]:
        if self.keyset is None:
            self.get_keys()
        assert self.keyset is not None
        return self.keyset

    def attr_hits(self, key: str) -> _AttrHits:
        flats = self.get_flats()
        if all(_flat_find(f, key) < 0 for f in flats[:8]) and key not in self.get_keyset():
            return _AttrHits(_NO_ROWS, [], [])  # a key nobody has: no search of every dataset
        return _attr_hits(key, flats, np.arange(len(flats), dtype=np.intp), [], [])

    def attr_col(self, key: str) -> _Col:
        col = self.attr_cols.get(key)
        if col is None:
            h = self.attr_hits(key)
            loc = f"{self.where}, attribute {key!r}"
            col = self.attr_cols[key] = _typed(len(self.snap), h.rows, h.values, h.kinds, h.kinds, loc)
        return col

    def hits(self, name: str) -> _ArrayHits:
        h = self.array_hits.get(name)
        if h is None:
            if self.entry_lists is None:
                entry_lists: list[list[Any]] = list(map(itemgetter(2), self.snap))
                if not set(map(type, entry_lists)) <= {list, tuple}:
                    raise ValueError("array list is malformed")
                self.entry_lists = entry_lists
            rows, entries = _array_hits(name, self.entry_lists, np.arange(len(self.snap), dtype=np.intp))
            sidx = np.fromiter(map(itemgetter(2), entries), dtype=np.intp, count=len(entries))
            if len(sidx) and (int(sidx.min()) < 0 or int(sidx.max()) >= len(self.schemas)):
                raise IndexError("schema number out of range")
            h = self.array_hits[name] = _array_hits_from(rows, sidx, list(map(itemgetter(3), entries)))
        return h

    def array_fields(self, name: str, fields: list[str]) -> dict[str, _Col]:
        missing = [f for f in fields if (name, f) not in self.array_cols]
        if missing:
            cols = _field_columns(len(self.snap), name, self.hits(name), missing, self.schemas, self.where)
            for f, col in cols.items():
                self.array_cols[(name, f)] = col
        return {f: self.array_cols[(name, f)] for f in fields}


def _array_hits_from(rows: np.ndarray, sidx: np.ndarray, stats: list[Any], keyed: bool = False) -> _ArrayHits:
    """Hits of one array, splitting off the datasets that have statistics."""
    if None not in stats:
        return _ArrayHits(rows, sidx, rows, sidx, stats, keyed)
    with_stats = list(map(is_not, stats, repeat(None)))
    keep = np.array(with_stats, dtype=bool)
    return _ArrayHits(rows, sidx, rows[keep], sidx[keep], list(compress(stats, with_stats)), keyed)


class _View:
    """The live datasets of a handle: raw records (through the cache) and materialised ones."""

    def __init__(self, atlas: Atlas) -> None:
        self.atlas = atlas
        datasets = atlas._datasets
        self.names = list(datasets)
        self.recs: list[Any] = list(datasets.values())
        self.n = n = len(self.recs)
        rows_all = np.arange(n, dtype=np.intp)
        is_raw = list(map(is_, map(type, self.recs), repeat(list)))
        if all(is_raw):
            raw = self.recs
            raw_rows = rows_all
            self.states: list[DatasetState] = []
            self.state_rows = _NO_ROWS
        else:
            raw_mask = np.array(is_raw, dtype=bool)
            raw = list(compress(self.recs, is_raw))
            raw_rows = rows_all[raw_mask]
            self.states = list(compress(self.recs, map(not_, is_raw)))
            self.state_rows = rows_all[~raw_mask]
        self.where = f"metadata of {atlas._storage.location}"
        self.holes: np.ndarray | None = None  # snapshot rows now materialised, when rows are unchanged
        self.cache, self.pos, self.same = self._raw_view(raw, raw_rows)
        self._sattrs: tuple[list[list[Any]], np.ndarray, list[dict[str, tuple[str, Any]]], list[int]] | None = None
        self._pos_cache: dict[int, int] = {}

    def _raw_view(self, raw: list[Any], raw_rows: np.ndarray) -> tuple[_RawCache, np.ndarray, bool]:
        """The raw-record cache, the current row of each snapshot position (-1: gone), and
        whether the snapshot is exactly the current rows."""
        atlas = self.atlas
        cache: _RawCache | None = getattr(atlas, "_catalog_cache", None)
        if cache is not None and cache.schemas is atlas._schemas:
            snap = cache.snap
            if len(raw) == len(snap) and all(map(is_, raw, snap)):
                return cache, raw_rows, len(raw) == self.n
            if len(snap) == self.n:  # same datasets, some of them materialised since
                ident = list(map(is_, self.recs, snap))
                if len(raw) == sum(ident):  # every raw record is the snapshot's
                    holes = ~np.array(ident, dtype=bool)
                    self.holes = holes
                    return cache, np.where(holes, -1, np.arange(self.n, dtype=np.intp)), False
            if 2 * len(raw) >= len(snap):  # most of the snapshot is still in use
                if cache.pos_of is None:
                    cache.pos_of = {id(r): i for i, r in enumerate(snap)}
                pos_of = cache.pos_of
                at = np.fromiter(map(pos_of.get, map(id, raw), repeat(-1)), dtype=np.intp, count=len(raw))
                if len(at) == 0 or int(at.min()) >= 0:
                    pos = np.full(len(snap), -1, dtype=np.intp)
                    pos[at] = raw_rows
                    return cache, pos, False
        cache = _RawCache(raw, atlas._schemas, self.where)
        atlas._catalog_cache = cache  # type: ignore[attr-defined]
        return cache, raw_rows, len(raw) == self.n

    # ---- projections of snapshot data onto current rows
    def project(self, col: _Col) -> _Col:
        """A snapshot column as a column over the current rows."""
        if self.same:
            return col
        if self.holes is not None:
            return _Col(col.kind, col.values, col.mask | self.holes)
        dtype, fill = _NUMPY[col.kind]
        values = np.full(self.n, fill, dtype=dtype)
        mask = np.ones(self.n, dtype=bool)
        ok = self.pos >= 0
        dest = self.pos[ok]
        values[dest] = col.values[ok]
        mask[dest] = col.mask[ok]
        return _Col(col.kind, values, mask)

    def remap_rows(self, rows: np.ndarray) -> tuple[np.ndarray, list[bool] | None]:
        """Current rows of snapshot rows, and which to keep (None: all)."""
        mapped = self.pos[rows]
        keep = mapped >= 0
        if keep.all():
            return mapped, None
        return mapped[keep], keep.tolist()

    # ---- materialised datasets
    def state_attrs(self) -> tuple[list[list[Any]], np.ndarray, list[dict[str, tuple[str, Any]]], list[int]]:
        if self._sattrs is None:
            raws = list(map(attrgetter("_raw_attrs"), self.states))
            still_raw = list(map(is_not, raws, repeat(None)))  # attributes not decoded yet
            decoded = list(map(not_, still_raw))
            sflats: list[list[Any]] = list(map(itemgetter(0), compress(raws, still_raw)))
            dicts: list[dict[str, tuple[str, Any]]] = list(map(attrgetter("_attrs"), compress(self.states, decoded)))
            rows = self.state_rows
            srows = rows[np.array(still_raw, dtype=bool)] if sflats else _NO_ROWS
            drows = rows[np.array(decoded, dtype=bool)].tolist() if dicts else []
            if not set(map(type, sflats)) <= {list, tuple} or any(x % 3 for x in set(map(len, sflats))):
                raise ValueError("attribute list is malformed")
            self._sattrs = (sflats, srows, dicts, drows)
        return self._sattrs

    def state_attr_hits(self, key: str) -> _AttrHits:
        sflats, srows, dicts, drows = self.state_attrs()
        return _attr_hits(key, sflats, srows, dicts, drows)

    def state_array_hits(self, name: str) -> _ArrayHits:
        arrs = list(map(dict.get, map(attrgetter("arrays"), self.states), repeat(name)))
        rows = self.state_rows
        if None in arrs:
            has = list(map(is_not, arrs, repeat(None)))
            arrs = list(compress(arrs, has))
            rows = rows[np.array(has, dtype=bool)]
        got = cast("list[ArrayState]", arrs)
        try:
            sidx = np.fromiter(map(attrgetter("schema.pos"), got), dtype=np.intp, count=len(got))
        except AttributeError:
            sidx = np.full(len(got), -1, dtype=np.intp)
        for i in np.flatnonzero(sidx < 0).tolist():
            sidx[i] = _schema_pos(got[i].schema, self.atlas._schemas, self._pos_cache)
        raws = list(map(attrgetter("_raw"), got))  # stats not decoded yet
        decoded = list(map(attrgetter("_stats"), got))
        if raws.count(None) == len(raws):
            return _array_hits_from(rows, sidx, decoded, keyed=True)
        if None not in raws:  # none decoded yet: the manifest's lists
            return _array_hits_from(rows, sidx, list(map(itemgetter(0), raws)))
        stats = [
            r[0] if r is not None else (None if d is None else _STATS_OF(d))
            for r, d in zip(raws, decoded, strict=True)
        ]
        return _array_hits_from(rows, sidx, stats)

    # ---- columns
    def all_keys(self) -> list[str]:
        """Every attribute key of the live datasets, in order of first appearance."""
        keys = self.cache.get_keys()
        if not self.states and self.same:
            return keys
        sflats, _, dicts, _ = self.state_attrs()
        cand = list(dict.fromkeys(chain(keys, *(f[0::3] for f in sflats), *dicts)))
        first: dict[str, int] = {}
        for k in cand:
            col = self.attr(k)
            if not col.mask.all():
                first[k] = int(np.argmin(col.mask))
        order: list[str] = []
        for r in sorted(set(first.values())):
            rec = self.recs[r]
            if type(rec) is list:
                ks = rec[1][0::3]
            else:
                ra = rec._raw_attrs
                ks = ra[0][0::3] if ra is not None else list(rec._attrs)
            order.extend(k for k in ks if first.get(k) == r)
        return list(dict.fromkeys(order))

    def attr(self, key: str) -> _Col:
        """The typed column of one attribute."""
        col = self.project(self.cache.attr_col(key))
        if not self.states:
            return col
        sh = self.state_attr_hits(key)
        loc = f"{self.where}, attribute {key!r}"
        scol = _typed(self.n, sh.rows, sh.values, sh.kinds, sh.kinds, loc)
        merged = _merge(col, scol)
        if merged is not None:
            return merged
        # kinds differ between raw and materialised datasets: type all values together
        h = self.cache.attr_hits(key)
        rows, keep = self.remap_rows(h.rows)
        kinds, values = h.kinds, h.values
        if keep is not None:
            kinds, values = list(compress(kinds, keep)), list(compress(values, keep))
        kinds, values = kinds + sh.kinds, values + sh.values
        return _typed(self.n, np.concatenate([rows, sh.rows]), values, kinds, kinds, loc)

    def array(self, name: str, fields: Iterable[str]) -> dict[str, _Col]:
        """Typed columns of some fields of one array."""
        fields = list(fields)
        out = {f: self.project(col) for f, col in self.cache.array_fields(name, fields).items()}
        if not self.states:
            return out
        sh = self.state_array_hits(name)
        schemas = self.atlas._schemas
        scols = _field_columns(self.n, name, sh, fields, schemas, self.where)
        slow: list[str] = []
        for f in fields:
            merged = _merge(out[f], scols[f])
            if merged is None:
                slow.append(f)
            else:
                out[f] = merged
        if slow:  # kinds differ between raw and materialised datasets: type all together
            h = self.cache.hits(name)
            rows, keep = self.remap_rows(h.rows)
            sidx = h.sidx if keep is None else h.sidx[np.array(keep, dtype=bool)]
            srows, skeep = self.remap_rows(h.srows)
            ssidx = h.ssidx if skeep is None else h.ssidx[np.array(skeep, dtype=bool)]
            stats = h.stat_rows() if skeep is None else list(compress(h.stat_rows(), skeep))
            both = _ArrayHits(
                np.concatenate([rows, sh.rows]),
                np.concatenate([sidx, sh.sidx]),
                np.concatenate([srows, sh.srows]),
                np.concatenate([ssidx, sh.ssidx]),
                stats + sh.stat_rows(),
                False,
            )
            out.update(_field_columns(self.n, name, both, slow, schemas, self.where))
        return out


def _merge(a: _Col, b: _Col) -> _Col | None:
    """Two columns over disjoint rows as one, or None when their kinds differ (typing all
    values together could then give another kind)."""
    if b.kind == "null":
        return a
    if a.kind == "null":
        return b
    if a.kind != b.kind:
        return None
    values = a.values.copy()
    present = ~b.mask
    values[present] = b.values[present]
    return _Col(a.kind, values, a.mask & b.mask)


def _table(
    atlas: Atlas, attr_keys: Sequence[str] | None, arrays: Mapping[str, Iterable[str]]
) -> tuple[list[str], dict[str, _Col], dict[str, dict[str, _Col]]]:
    """Typed columns of the wanted attributes (every key when ``attr_keys`` is None) and
    array fields over the live datasets, from metadata alone."""
    try:
        return _table_once(atlas, attr_keys, arrays)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        pass
    # a malformed record: materialising every dataset reports it precisely
    atlas._catalog_cache = None  # type: ignore[attr-defined]
    for name in list(atlas._datasets):
        atlas._materialize(name)
    try:
        return _table_once(atlas, attr_keys, arrays)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
        raise CorruptionError(f"metadata of {atlas._storage.location} is malformed: {e}") from None


def _table_once(
    atlas: Atlas, attr_keys: Sequence[str] | None, arrays: Mapping[str, Iterable[str]]
) -> tuple[list[str], dict[str, _Col], dict[str, dict[str, _Col]]]:
    view = _View(atlas)
    keys = view.all_keys() if attr_keys is None else attr_keys
    attrs = {k: view.attr(k) for k in keys}
    cols = {a: view.array(a, fields) for a, fields in arrays.items()}
    return view.names, attrs, cols


def _schema_pos(schema: Schema, schemas: _SchemaSource, cache: dict[int, int]) -> int:
    """Number of an in-memory schema in the store's schema table."""
    pos = getattr(schema, "pos", -1)
    if pos >= 0:
        return int(pos)
    if not cache:
        cache.update((id(schemas[i]), i) for i in range(len(schemas)))
    return cache[id(schema)]


_STATS_KEYS = ("row_count", "null_count", "min", "max")
_STATS_OF = itemgetter(*_STATS_KEYS)


def _attr_hits(
    key: str,
    flats: list[list[Any]],
    rows: np.ndarray,
    dicts: list[dict[str, tuple[str, Any]]],
    dict_rows: list[int],
) -> _AttrHits:
    """Rows, kinds and (manifest-encoded) values of one attribute."""
    out = _AttrHits(_NO_ROWS, [], [])
    p = -1
    for f in flats:  # position of the key in the first dataset holding it
        p = _flat_find(f, key)
        if p >= 0:
            break
    extra_rows: list[int] = []
    if p >= 0:
        at = _take(flats, p, None)
        if _all_equal(at, key):
            out.rows = rows
            out.kinds = list(map(getitem, flats, repeat(p + 1)))
            out.values = list(map(getitem, flats, repeat(p + 2)))
        else:
            ok = list(map(eq, at, repeat(key)))
            okm = np.array(ok, dtype=bool)
            out.rows = rows[okm]
            out.kinds = list(compress(_take(flats, p + 1, None), ok))
            out.values = list(compress(_take(flats, p + 2, None), ok))
            for i in np.flatnonzero(~okm).tolist():
                f = flats[i]
                j = _flat_find(f, key)
                if j >= 0:
                    extra_rows.append(int(rows[i]))
                    out.kinds.append(f[j + 1])
                    out.values.append(f[j + 2])
    if dicts:  # decoded attributes of materialised datasets
        got: list[Any] = list(map(dict.get, dicts, repeat(key)))
        present = list(map(is_not, got, repeat(None)))
        kvs = list(compress(got, present))
        extra_rows.extend(compress(dict_rows, present))
        out.kinds.extend(map(itemgetter(0), kvs))
        out.values.extend(map(itemgetter(1), kvs))
    if extra_rows:
        out.rows = np.concatenate([out.rows, np.array(extra_rows, dtype=np.intp)])
    return out


def _array_hits(name: str, entry_lists: list[list[Any]], rows: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Rows and raw entries of one array in raw records."""
    q = -1
    for el in entry_lists:  # position of the array in the first dataset declaring it
        for j, e in enumerate(el):
            if e[0] == name:
                q = j
                break
        if q >= 0:
            break
    if q < 0:
        return _NO_ROWS, []
    at = _take(entry_lists, q, _MISSING_ENTRY)
    names = list(map(itemgetter(0), at))
    if _all_equal(names, name):
        return rows, at
    ok = list(map(eq, names, repeat(name)))
    okm = np.array(ok, dtype=bool)
    hits = list(compress(at, ok))
    extra: list[int] = []
    for i in np.flatnonzero(~okm).tolist():
        for e in entry_lists[i]:
            if e[0] == name:
                extra.append(int(rows[i]))
                hits.append(e)
                break
    return np.concatenate([rows[okm], np.array(extra, dtype=np.intp)]), hits


def _schema_luts(schemas: _SchemaSource, sidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dtype names and shapes by schema number, filled in for the used schemas only."""
    names = np.full(len(schemas), None, dtype=object)
    shapes = np.full(len(schemas), None, dtype=object)
    for i in np.unique(sidx).tolist():
        sc = schemas[i]
        names[i] = sc.dtype.name
        shapes[i] = sc.shape
    return names, shapes


def _field_columns(
    n: int, name: str, x: _ArrayHits, fields: Iterable[str], schemas: _SchemaSource, where: str
) -> dict[str, _Col]:
    """Typed columns of the wanted fields of one array."""
    out: dict[str, _Col] = {}
    need = set(fields)
    loc = f"{where}, array {name!r}"
    dnames, shapes = _schema_luts(schemas, x.sidx)
    if "dtype" in need:
        out["dtype"] = _Col("string", *_scatter(n, x.rows, dnames[x.sidx], "", object))
    if "shape" in need:
        out["shape"] = _Col("shape", *_scatter(n, x.rows, shapes[x.sidx], None, object))
    try:
        columns = _stat_columns(x)
        for f, i in (("row_count", 0), ("null_count", 1)):
            if f in need:
                ints = np.fromiter(map(x.getter(i), x.stats), dtype=np.int64, count=len(x.stats))
                out[f] = _Col("int", *_scatter(n, x.srows, ints, 0, np.int64))
        # all-null arrays have statistics but no min/max: the column is typed by the schemas
        kindset = set(dnames[np.unique(x.ssidx if len(x.ssidx) else x.sidx)].tolist())
        for f, i in (("min", 2), ("max", 3)):
            if f not in need:
                continue
            vals = columns(i)
            rows, sidx = x.srows, x.ssidx
            if None in vals:
                present = list(map(is_not, vals, repeat(None)))
                keep = np.array(present, dtype=bool)
                rows, sidx = rows[keep], sidx[keep]
                vals = list(compress(vals, present))
            out[f] = _typed(n, rows, vals, kindset, _dtype_names(dnames, sidx), loc)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise CorruptionError(f"{loc}: statistics are malformed") from None
    return out


def _stat_columns(x: _ArrayHits) -> Callable[[int], list[Any]]:
    """Access to one statistic of every dataset, as a list."""
    return lambda i: list(map(x.getter(i), x.stats))


def _dtype_names(dnames: np.ndarray, sidx: np.ndarray) -> Callable[[], list[str]]:
    return lambda: dnames[sidx].tolist()


# ============================================================================ the predicate language


class _Ts:
    """A timestamp literal (ns since the epoch)."""

    __slots__ = ("ns", "text")

    def __init__(self, ns: int, text: str) -> None:
        self.ns = ns
        self.text = text


# IR nodes are tuples:
#   ("const", bool) ("and", [nodes]) ("or", [nodes]) ("not", node)
#   ("cmp", operand, op, operand, frag)      operands: ("name", N, frag) ("any", A, frag) ("lit", v, frag)
#   ("in", operand, [values], negate, frag)  ("eq", operand, value, frag) (keyword equality)
#   ("isnull"|"notnull"|"isnan"|"truth", operand, frag)
Node = tuple[Any, ...]


class _Parser:
    """Turn a predicate string into IR nodes, accepting only the allow-listed syntax."""

    def __init__(self, text: str) -> None:
        self.original = text
        self.quoted: dict[str, str] = {}
        self.source = self._unquote(text)

    # ---- backtick quoting
    def _unquote(self, text: str) -> str:
        prefix = "_q"
        while prefix in text:
            prefix += "q"
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c in "'\"":
                j = self._skip_string(text, i)
                out.append(text[i:j])
                i = j
            elif c == "`":
                j = text.find("`", i + 1)
                if j < 0:
                    raise ValueError(f"invalid predicate {self.original!r}: unterminated ` quote at position {i}")
                ph = f"{prefix}{len(self.quoted)}_"
                self.quoted[ph] = text[i + 1 : j]
                out.append(ph)
                i = j + 1
            else:
                out.append(c)
                i += 1
        return "".join(out)

    @staticmethod
    def _skip_string(text: str, i: int) -> int:
        q = text[i]
        triple = text[i : i + 3] == q * 3
        end = q * 3 if triple else q
        j = i + len(end)
        while j < len(text):
            if text[j] == "\\":
                j += 2
                continue
            if text.startswith(end, j):
                return j + len(end)
            if not triple and text[j] == "\n":
                break
            j += 1
        return len(text)  # unterminated: the parser reports it

    def restore(self, fragment: str) -> str:
        """A source fragment with the backtick quotes put back."""
        for ph, name in self.quoted.items():
            fragment = fragment.replace(ph, f"`{name}`")
        return fragment

    def frag(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.source, node)
        return self.restore(seg if seg is not None else ast.dump(node))

    def fail(self, node: ast.AST, why: str) -> ValueError:
        return ValueError(f"invalid predicate: {why}: {_short(self.frag(node))!r}")

    # ---- entry
    def parse(self) -> Node:
        if len(self.original) > _MAX_EXPR_CHARS:
            raise ValueError(f"invalid predicate: longer than {_MAX_EXPR_CHARS} characters")
        try:
            tree = ast.parse(self.source.strip(), mode="eval")
            self.source = self.source.strip()
        except SyntaxError as e:
            raise ValueError(f"invalid predicate {_short(self.restore(self.source))!r}: {e.msg}") from None
        except (RecursionError, MemoryError):
            raise ValueError("invalid predicate: nested too deeply") from None
        except (ValueError, OverflowError) as e:
            raise ValueError(f"invalid predicate {_short(self.original)!r}: {e}") from None
        try:
            return self.pred(tree.body)
        except RecursionError:
            raise ValueError("invalid predicate: nested too deeply") from None

    # ---- predicates
    def pred(self, node: ast.expr) -> Node:
        if isinstance(node, ast.BoolOp):
            kind = "and" if isinstance(node.op, ast.And) else "or"
            return (kind, [self.pred(v) for v in node.values])
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.Not, ast.Invert)):
                return ("not", self.pred(node.operand))
            raise self.fail(node, "not a predicate")
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            kind = "and" if isinstance(node.op, ast.BitAnd) else "or"
            return (kind, [self.pred(node.left), self.pred(node.right)])
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            fname = self.call_name(node)
            if fname in ("isnull", "notnull", "isnan"):
                if len(node.args) != 1 or node.keywords:
                    raise self.fail(node, f"{fname}() takes exactly one name")
                return (fname, self.operand(node.args[0], allow_literal=False), self.frag(node))
            raise self.fail(node, f"{fname}() is not a predicate (use isnull, notnull or isnan)")
        if isinstance(node, ast.Constant) and type(node.value) is bool:
            return ("const", node.value)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return ("truth", self.operand(node, allow_literal=False), self.frag(node))
        raise self.fail(node, f"unsupported {type(node).__name__} (expected a comparison)")

    def compare(self, node: ast.Compare) -> Node:
        parts: list[Node] = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            frag = self.frag(node)
            if isinstance(op, (ast.In, ast.NotIn)):
                values = self.members(right)
                parts.append(("in", self.operand(left, allow_literal=False), values, isinstance(op, ast.NotIn), frag))
            elif isinstance(op, (ast.Is, ast.IsNot)):
                if not (isinstance(right, ast.Constant) and right.value is None):
                    raise self.fail(node, "'is' only tests for None")
                kind = "isnull" if isinstance(op, ast.Is) else "notnull"
                parts.append((kind, self.operand(left, allow_literal=False), frag))
            else:
                sop = _AST_OPS[type(op)]
                a = self.operand(left)
                b = self.operand(right)
                for side, x in ((left, a), (right, b)):
                    if x[0] == "lit" and x[1] is None:
                        raise self.fail(side, "compare with None using 'is None' / 'is not None'")
                if a[0] == "lit" and b[0] == "lit":
                    raise self.fail(node, "compares two literals")
                if a[0] == "lit":
                    a, b, sop = b, a, _FLIP[sop]
                parts.append(("cmp", a, sop, b, frag))
            left = right
        return parts[0] if len(parts) == 1 else ("and", parts)

    def members(self, node: ast.expr) -> list[Any]:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise self.fail(node, "'in' needs a literal list such as ['a', 'b']")
        out = []
        for e in node.elts:
            v = self.literal(e)
            if v is None:
                raise self.fail(e, "None is not a value (use isnull)")
            out.append(v)
        return out

    def operand(self, node: ast.expr, allow_literal: bool = True) -> Node:
        if isinstance(node, (ast.Name, ast.Attribute)):
            return ("name", self.name(node), self.frag(node))
        if isinstance(node, ast.Call) and self.call_name(node) == "any":
            if len(node.args) != 1 or node.keywords or not isinstance(node.args[0], (ast.Name, ast.Attribute)):
                raise self.fail(node, "any() takes exactly one array name")
            return ("any", self.name(node.args[0]), self.frag(node))
        if not allow_literal:
            raise self.fail(node, "expected a name")
        return ("lit", self.literal(node), self.frag(node))

    def call_name(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name) or node.func.id in self.quoted:
            raise self.fail(node, "unsupported call")
        return node.func.id

    def name(self, node: ast.expr) -> str:
        """The full name of a ``Name``/``Attribute`` chain, as written (backticks resolved)."""
        if isinstance(node, ast.Name):
            return self.ident(node, self.segment_text(node))
        if isinstance(node, ast.Attribute):
            head = self.name(node.value)
            whole = self.segment_text(node)
            tail = whole[len(self.segment_text(node.value)) :].strip()
            if not tail.startswith("."):
                raise self.fail(node, "malformed name")
            return f"{head}.{self.ident(node, tail[1:].strip())}"
        raise self.fail(node, "expected a name")

    def segment_text(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.source, node)
        if seg is None:
            raise self.fail(node, "malformed name")
        return seg

    def ident(self, node: ast.AST, text: str) -> str:
        if text in self.quoted:
            return self.quoted[text]
        if not text.isidentifier() or any(ph in text for ph in self.quoted):
            raise self.fail(node, "malformed name")
        return text

    def literal(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            v = node.value
            if v is None or type(v) in (bool, int, float, str):
                return v
            raise self.fail(node, f"unsupported literal of type {type(v).__name__}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.literal(node.operand)
            if type(v) not in (int, float):
                raise self.fail(node, "a sign needs a number")
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Tuple):
            vals = tuple(self.literal(e) for e in node.elts)
            if not all(type(v) is int and v >= 0 for v in vals):
                raise self.fail(node, "a tuple literal is a shape: non-negative ints only")
            return vals
        if isinstance(node, ast.Call):
            fname = self.call_name(node)
            if fname in ("ts", "timestamp", "float"):
                if len(node.args) != 1 or node.keywords or not (
                    isinstance(node.args[0], ast.Constant) and type(node.args[0].value) is str
                ):
                    raise self.fail(node, f"{fname}() takes one string literal")
                text = node.args[0].value
                if fname == "float":
                    if text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
                        raise self.fail(node, "float() only spells nan and inf")
                    return float(text)
                return _Ts(_parse_ts(text, self.frag(node)), text)
            raise self.fail(node, f"unsupported function {fname}()")
        raise self.fail(node, f"unsupported {type(node).__name__} (expected a literal)")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_ts(text: str, frag: str) -> int:
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"invalid predicate: bad timestamp in {frag!r}: {e}") from None
    if t is pd.NaT:
        raise ValueError(f"invalid predicate: NaT is not a value (use isnull): {frag!r}")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    try:
        return int(t.as_unit("ns").value)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"invalid predicate: bad timestamp in {frag!r}: {e}") from None


def _names(node: Node, out: dict[str, str], anys: dict[str, str]) -> None:
    """Collect operand names (``name -> fragment``) and ``any()`` arrays of an IR tree."""
    tag = node[0]
    if tag in ("and", "or"):
        for c in node[1]:
            _names(c, out, anys)
    elif tag == "not":
        _names(node[1], out, anys)
    elif tag in ("cmp", "in", "eq", "isnull", "notnull", "isnan", "truth"):
        ops = [node[1]] + ([node[3]] if tag == "cmp" else [])
        for o in ops:
            if o[0] == "name":
                out.setdefault(o[1], o[2])
            elif o[0] == "any":
                anys.setdefault(o[1], o[2])


# ============================================================================ evaluation


def _is_num(v: Any) -> bool:
    return type(v) in (int, float)


def _num_cmp(values: np.ndarray, op: str, c: int | float) -> np.ndarray:
    """Exact comparison of a numeric numpy column with a Python int or float."""
    f = _OPS[op]
    if values.dtype.kind == "f":
        if type(c) is int and abs(c) > _EXACT_FLOAT_INT:
            return np.fromiter((bool(f(v, c)) for v in values.tolist()), dtype=bool, count=len(values))
        with np.errstate(invalid="ignore"):
            return np.asarray(f(values, float(c)), dtype=bool)
    # integer column
    if type(c) is float:
        if math.isnan(c):
            return np.full(len(values), op == "!=", dtype=bool)
        if math.isinf(c):
            below = c > 0  # every value is below +inf
            res = {"==": False, "!=": True, "<": below, "<=": below, ">": not below, ">=": not below}[op]
            return np.full(len(values), res, dtype=bool)
        if c.is_integer():
            c = int(c)
        else:
            fl = math.floor(c)
            if op == "==":
                return np.zeros(len(values), dtype=bool)
            if op == "!=":
                return np.ones(len(values), dtype=bool)
            if op in (">", ">="):
                return _num_cmp(values, ">", fl)
            return _num_cmp(values, "<=", fl)
    info = np.iinfo(values.dtype)
    lo, hi = int(info.min), int(info.max)
    if c > hi or c < lo:
        above = c > hi  # the literal is above every value
        res = {"==": False, "!=": True, "<": above, "<=": above, ">": not above, ">=": not above}[op]
        return np.full(len(values), res, dtype=bool)
    return np.asarray(f(values, values.dtype.type(c)), dtype=bool)


def _py_cmp(col: _Col, op: str, c: Any) -> np.ndarray:
    """Element-wise Python comparison; a type mismatch is False."""
    f = _OPS[op]
    out = np.zeros(len(col.values), dtype=bool)
    vals = col.values
    for i in np.flatnonzero(~col.mask).tolist():
        try:
            out[i] = bool(f(vals[i], c))
        except TypeError:
            pass
    return out


class _Evaluator:
    """Evaluate IR nodes to (definitely, possibly) masks over the live datasets."""

    def __init__(self, n: int, resolve: Callable[[str, str], tuple[str, Any]]) -> None:
        self.n = n
        self.resolve = resolve  # name, fragment -> ("col", _Col) | ("values", (lo, hi, declared))

    # ---- boolean structure
    def eval(self, node: Node) -> tuple[Mask, Mask]:
        tag = node[0]
        if tag == "const":
            m = np.full(self.n, node[1], dtype=bool)
            return m, m
        if tag == "and" or tag == "or":
            parts = [self.eval(c) for c in node[1]]
            red = np.logical_and if tag == "and" else np.logical_or
            d = parts[0][0].copy()
            p = parts[0][1].copy()
            for pd_, pp in parts[1:]:
                red(d, pd_, out=d)
                red(p, pp, out=p)
            return d, p
        if tag == "not":
            d, p = self.eval(node[1])
            return ~p, ~d
        return getattr(self, "_" + tag)(node)

    def _operand(self, o: Node) -> tuple[str, Any]:
        if o[0] == "name":
            return self.resolve(o[1], o[2])
        if o[0] == "any":
            kind, what = self.resolve(o[1], o[2])
            if kind != "values":
                raise ValueError(f"invalid predicate: any() needs an array name: {o[2]!r}")
            return kind, what
        return "lit", o[1]

    # ---- leaves
    def _cmp(self, node: Node) -> tuple[Mask, Mask]:
        _, a, op, b, frag = node
        ka, va = self._operand(a)
        kb, vb = self._operand(b)
        if kb == "values" and ka != "values":
            ka, va, kb, vb, op = kb, vb, ka, va, _FLIP[op]
        if ka == "values":
            if kb != "lit":
                raise ValueError(f"invalid predicate: an array's values can only be compared with a literal: {frag!r}")
            return self._any(va, op, vb, frag)
        if kb == "lit":
            m = self._col_lit(va, op, vb, frag)
        else:
            m = self._col_col(va, op, vb, frag)
        return m, m

    def _in(self, node: Node) -> tuple[Mask, Mask]:
        _, o, values, negate, frag = node
        kind, what = self._operand(o)
        if kind == "values":
            return self._any_in(what, values, negate, frag)
        m = np.zeros(self.n, dtype=bool)
        for v in values:
            m |= self._col_lit(what, "==", v, frag)
        if negate:
            m = ~m & ~what.mask
        return m, m

    def _eq(self, node: Node) -> tuple[Mask, Mask]:
        """Keyword equality of ``find(**equals)``: None is null, a list is membership."""
        _, o, value, frag = node
        kind, what = self._operand(o)
        if value is None:
            return self._isnull(("isnull", o, frag))
        if isinstance(value, (list, set, frozenset)) or (
            isinstance(value, tuple) and not (kind == "col" and what.kind == "shape")
        ):
            return self._in(("in", o, list(value), False, frag))
        return self._cmp(("cmp", o, "==", ("lit", value, frag), frag))

    def _isnull(self, node: Node) -> tuple[Mask, Mask]:
        kind, what = self._operand(node[1])
        m = what[2].mask if kind == "values" else what.mask
        m = m.copy() if node[0] == "isnull" else ~m
        return m, m

    _notnull = _isnull

    def _isnan(self, node: Node) -> tuple[Mask, Mask]:
        kind, what = self._operand(node[1])
        m = (_nan(what[0]) | _nan(what[1])) if kind == "values" else _nan(what)
        return m, m

    def _truth(self, node: Node) -> tuple[Mask, Mask]:
        _, o, frag = node
        kind, what = self._operand(o)
        col = what[0] if kind == "values" else what
        if col.kind not in ("bool", "null"):
            raise ValueError(f"invalid predicate: {frag!r} is not boolean; compare it with a value")
        return self._cmp(("cmp", o, "==", ("lit", True, frag), frag))

    # ---- comparisons
    def _col_lit(self, col: _Col, op: str, lit: Any, frag: str) -> Mask:
        """Compare a column with a literal; False where the column is null."""
        kind = col.kind
        if kind == "null":
            return np.zeros(self.n, dtype=bool)
        if kind == "object":
            return _py_cmp(col, op, lit.ns if isinstance(lit, _Ts) else lit)
        if kind == "shape":
            if op not in ("==", "!=") or not isinstance(lit, tuple):
                raise ValueError(f"invalid predicate: a shape compares (== or !=) with a tuple of ints: {frag!r}")
            return _py_cmp(col, op, lit)
        bad = False
        if kind in ("int", "uint", "float"):
            bad = not _is_num(lit)
        elif kind == "bool":
            bad = type(lit) is not bool
        elif kind == "timestamp":
            if isinstance(lit, _Ts):
                lit = lit.ns
            elif type(lit) is str:
                lit = _parse_ts(lit, frag)
            bad = type(lit) is not int
        elif kind == "string":
            bad = type(lit) is not str
        if bad:
            shown = f"ts({lit.text!r})" if isinstance(lit, _Ts) else repr(lit)
            raise ValueError(
                f"invalid predicate: cannot compare {_KIND_NAMES[kind]} values with {shown}: {frag!r}"
            )
        if kind in ("int", "uint", "float", "timestamp"):
            m = _num_cmp(col.values, op, lit)
        else:
            m = np.asarray(_OPS[op](col.values, lit), dtype=bool)
        return m & ~col.mask

    def _col_col(self, a: _Col, op: str, b: _Col, frag: str) -> Mask:
        num = ("int", "uint", "float")
        if a.kind == "null" or b.kind == "null":
            return np.zeros(self.n, dtype=bool)
        if (a.kind in num and b.kind in num) or (a.kind == b.kind and a.kind in ("bool", "timestamp", "string")):
            if a.kind != b.kind and "float" not in (a.kind, b.kind):
                x, y = a.values.astype(object), b.values.astype(object)  # int64 vs uint64: exact
            else:
                x, y = a.values, b.values
            with np.errstate(invalid="ignore"):
                m = np.asarray(_OPS[op](x, y), dtype=bool)
        elif a.kind == "object" or b.kind == "object" or (a.kind == b.kind == "shape" and op in ("==", "!=")):
            m = np.zeros(self.n, dtype=bool)
            f = _OPS[op]
            for i in np.flatnonzero(~(a.mask | b.mask)).tolist():
                try:
                    m[i] = bool(f(a.values[i], b.values[i]))
                except TypeError:
                    pass
        else:
            raise ValueError(
                f"invalid predicate: cannot compare {_KIND_NAMES[a.kind]} with {_KIND_NAMES[b.kind]}: {frag!r}"
            )
        return m & ~a.mask & ~b.mask

    # ---- predicates over an array's values, decided from its min and max
    def _any(self, v: tuple[_Col, _Col, _Col], op: str, c: Any, frag: str) -> tuple[Mask, Mask]:
        """Whether some non-null value ``x`` of the array has ``x op c``: (certain, possible)."""
        lo, hi, _ = v
        has = ~lo.mask
        if op in (">", ">="):
            d = self._col_lit(hi, op, c, frag)
            return d, d | _nan(hi)
        if op in ("<", "<="):
            d = self._col_lit(lo, op, c, frag)
            return d, d | _nan(lo)
        eq_lo = self._col_lit(lo, "==", c, frag)
        eq_hi = self._col_lit(hi, "==", c, frag)
        if op == "!=":
            m = has & ~(eq_lo & eq_hi)
            return m, m
        # ==
        if type(c) is float and math.isnan(c):
            z = np.zeros(self.n, dtype=bool)
            return z, z
        d = eq_lo & eq_hi
        p = (self._col_lit(lo, "<=", c, frag) | _nan(lo)) & (self._col_lit(hi, ">=", c, frag) | _nan(hi))
        if lo.kind == "object":
            p = has.copy()  # values of mixed types: no ordering to rely on
        return d, p & has

    def _any_in(self, v: tuple[_Col, _Col, _Col], values: list[Any], negate: bool, frag: str) -> tuple[Mask, Mask]:
        lo, hi, _ = v
        has = ~lo.mask
        if not negate:
            d = np.zeros(self.n, dtype=bool)
            p = np.zeros(self.n, dtype=bool)
            for c in values:
                dc, pc = self._any(v, "==", c, frag)
                d |= dc
                p |= pc
            return d, p
        # some value outside the set
        lo_in = np.zeros(self.n, dtype=bool)
        hi_in = np.zeros(self.n, dtype=bool)
        single = np.zeros(self.n, dtype=bool)
        for c in values:
            a = self._col_lit(lo, "==", c, frag)
            b = self._col_lit(hi, "==", c, frag)
            lo_in |= a
            hi_in |= b
            single |= a & b
        return has & ~(lo_in & hi_in), has & ~single


def _nan(col: _Col) -> Mask:
    if col.kind == "float":
        return np.isnan(col.values) & ~col.mask
    if col.kind == "object":
        return np.fromiter(
            (type(x) is float and math.isnan(x) and not m for x, m in zip(col.values.tolist(), col.mask.tolist(), strict=True)),
            dtype=bool,
            count=len(col.values),
        )
    return np.zeros(len(col.values), dtype=bool)


_KIND_NAMES = {
    "int": "integer",
    "uint": "unsigned integer",
    "float": "float",
    "bool": "bool",
    "timestamp": "timestamp",
    "string": "string",
    "shape": "shape",
    "object": "mixed",
    "null": "empty",
}


# ============================================================================ the mixin


def _name_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a list of names, not a {type(value).__name__}")
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{what} must be a list of names, not {type(value).__name__}") from None
    for x in items:
        if not isinstance(x, str):
            raise TypeError(f"{what} must hold str names, found {type(x).__name__}")
    return list(dict.fromkeys(items))


def _split_field(name: str, live: Mapping[str, Any] | set[str]) -> tuple[str, str] | None:
    """``(array, field)`` when ``name`` is ``ARRAY.FIELD`` of a live array."""
    head, dot, field = name.rpartition(".")
    if dot and field in FIELDS and head in live:
        return head, field
    return None


def _kw_value(v: Any) -> Any:
    """Normalise a ``find(**equals)`` value to a predicate literal."""
    if isinstance(v, (list, tuple, set, frozenset)):
        return type(v)(_kw_value(x) for x in v) if not isinstance(v, (set, frozenset)) else [_kw_value(x) for x in v]
    if isinstance(v, (pd.Timestamp, np.datetime64)) or type(v).__name__ in ("datetime", "date"):
        t = pd.Timestamp(v)
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        return _Ts(int(t.as_unit("ns").value), str(v))
    if isinstance(v, np.generic):
        return v.item()
    for t in (bool, int, float, str):
        if isinstance(v, t):
            return t(v)
    if v is None:
        return v
    raise TypeError(f"find() cannot match a value of type {type(v).__name__}")



def _live_arrays(atlas: Atlas) -> dict[str, Any]:
    return {name: var for name, var in atlas._variables.items() if var.live > 0}

def catalog(
    atlas: Atlas,
    arrays: Iterable[str] | None = None,
    attributes: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A table of the live datasets: one row each, indexed by name, in store order.

    Columns are, first, the dataset ``attributes`` (all keys present in any dataset when
    ``None``, in order of first appearance; ``[]`` for none), then, for each of ``arrays``
    (every array name in the store, sorted, when ``None``; ``[]`` for none), the columns
    ``ARRAY.dtype``, ``ARRAY.shape``, ``ARRAY.min``, ``ARRAY.max``, ``ARRAY.null_count``
    and ``ARRAY.row_count``. An attribute whose key equals such a column name for an array
    of the store is listed as ``attr:KEY`` instead.

    Typing: integer values are ``Int64`` (``UInt64`` for unsigned 64-bit data), floats
    ``Float64`` (a NaN value stays NaN, distinct from a missing value), bools ``boolean``,
    strings and dtype names ``string``, timestamps ``datetime64[ns]``, shapes tuples
    (``object``). Missing values (dataset without the attribute or array, array without
    statistics, all-null array without min/max) are ``NA``/``NaT``. A column whose values
    mix kinds (an attribute that is an int in one dataset and a str in another) is an
    ``object`` column of exact Python values. A timestamp value of exactly NaT
    (``-2**63``) cannot be told apart from a missing one in the frame.

    Statistics are those of ``array_stats``: computed at ``flush()``, so between flushes
    they are those of the last flush (``NA`` for arrays never flushed). Which datasets,
    attributes and arrays exist is always the live state of this handle. Only metadata
    is used: no array data is read.
    """
    arr_names = _name_list(arrays, "arrays")
    attr_names = _name_list(attributes, "attributes")
    live = _live_arrays(atlas)
    if arr_names is None:
        arr_names = sorted(live)
    names, acols, xcols = _table(atlas, attr_names, {a: FIELDS for a in arr_names})
    columns: dict[str, Any] = {}
    for key, col in acols.items():
        cname = ATTR_PREFIX + key if _split_field(key, live) is not None else key
        if cname in columns:
            raise ValueError(f"attribute {key!r} and attribute {cname!r} would share a catalogue column")
        columns[cname] = col.to_pandas()
    for a in arr_names:
        for f in FIELDS:
            cname = f"{a}.{f}"
            if cname in columns:
                raise ValueError(f"two catalogue columns would be named {cname!r}")
            columns[cname] = xcols[a][f].to_pandas()
    index = pd.Index(names, name="dataset", dtype=object)
    if not columns:
        return pd.DataFrame(index=index)
    return pd.DataFrame(columns, index=index, copy=False)

def find(atlas: Atlas, where: str | None = None, **equals: Any) -> list[str]:
    """Names of the live datasets matching a predicate, in store order.

    ``where`` is an expression over catalogue names (see :meth:`catalog`), e.g.
    ``"temperature.max > 30 and depth.max >= 1000 and station == 'KNMI'"``;
    keyword arguments add equality tests (``station="KNMI"``, a list means "one of",
    ``None`` means "missing"; dotted names go through ``**{"depth.max": 2000}``). All
    conditions must hold. The result can be passed straight to ``read_array_across``.

    Semantics:

    * ``NAME`` is an attribute key; ``ARRAY.min``, ``ARRAY.max``, ``ARRAY.null_count``,
      ``ARRAY.row_count``, ``ARRAY.dtype`` and ``ARRAY.shape`` are an array's catalogue
      fields (an attribute shadowed by one is ``attr:KEY``). Parts that are not Python
      identifiers are quoted with backticks. An unknown name is a ``ValueError``.
    * Predicates on attributes and on statistics are exact: ``temperature.max > 30`` holds
      exactly for the datasets whose stored max exceeds 30. Comparisons follow IEEE for
      floats (a NaN max compares false; ``isnan(temperature.max)`` finds it) and compare
      ints, uints and floats exactly. A string compares with a timestamp as a date.
    * A bare array name (or ``any(ARRAY)``) in a comparison asks whether *some* non-null
      value of the array satisfies it: ``temperature > 30``, ``station in ['A', 'B']``.
      This needs values inside the data, so it is decided from min/max and the answer is
      a conservative superset: a dataset whose data may match is returned, one whose data
      matches is never left out (for ``>``, ``>=``, ``<``, ``<=`` and ``!=`` without
      NaN values the answer is exact). ``not`` keeps this guarantee.
    * A comparison involving a missing value (no such attribute or array, no statistics)
      is false, ``!=`` included; ``not`` negates the truth of its operand. Test for
      missing values with ``isnull(x)`` / ``notnull(x)`` / ``x is None``;
      ``isnull(ARRAY)`` holds for datasets that do not declare the array.
    * Statistics are as of the last ``flush()``, as in ``array_stats``.

    Invalid predicates raise ``ValueError`` naming the offending fragment; the
    expression is parsed, never evaluated by Python.
    """
    nodes: list[Node] = []
    if where is not None:
        if not isinstance(where, str):
            raise TypeError(f"where must be a str predicate, not {type(where).__name__}")
        if where.strip():
            nodes.append(_Parser(where).parse())
    for key, value in equals.items():
        nodes.append(("eq", ("name", key, key), _kw_value(value), f"{key}={value!r}"))
    if not nodes:
        return atlas.list_datasets()
    tree: Node = nodes[0] if len(nodes) == 1 else ("and", nodes)
    mask = _evaluate(atlas, tree)
    names = atlas.list_datasets()
    return [names[i] for i in np.flatnonzero(mask).tolist()]

def _evaluate(atlas: Atlas, tree: Node) -> Mask:
    """The datasets that possibly satisfy an IR tree."""
    refs: dict[str, str] = {}
    anys: dict[str, str] = {}
    _names(tree, refs, anys)
    live = _live_arrays(atlas)
    fields: dict[str, set[str]] = {}
    attr_keys: dict[str, None] = {}
    for name in refs:
        sf = _split_field(name, live)
        if sf is not None:
            fields.setdefault(sf[0], set()).add(sf[1])
            continue
        attr_keys[name] = None
        if name.startswith(ATTR_PREFIX):
            attr_keys[name[len(ATTR_PREFIX) :]] = None
        if name in live:
            fields.setdefault(name, set()).update(("min", "max", "dtype"))
    for name, frag in anys.items():
        if name not in live:
            raise ValueError(f"invalid predicate: no array named {name!r}: {frag!r}")
        fields.setdefault(name, set()).update(("min", "max", "dtype"))
    names, acols, xcols = _table(atlas, list(attr_keys), fields)
    n = len(names)
    cache: dict[str, tuple[str, Any]] = {}

    def attr(key: str) -> _Col | None:
        col = acols.get(key)
        return None if col is None or col.mask.all() else col

    def resolve(name: str, frag: str) -> tuple[str, Any]:
        hit = cache.get(name)
        if hit is not None:
            return hit
        sf = _split_field(name, live)
        col = attr(name)
        shadowed = attr(name[len(ATTR_PREFIX) :]) if name.startswith(ATTR_PREFIX) else None
        if sf is not None:
            out: tuple[str, Any] = ("col", xcols[sf[0]][sf[1]])
        elif col is not None:
            out = ("col", col)
        elif shadowed is not None:
            out = ("col", shadowed)
        elif name in live:
            cols = xcols[name]
            out = ("values", (cols["min"], cols["max"], cols["dtype"]))
        elif n == 0:  # an empty store knows no names, and nothing can match anyway
            out = ("col", _empty(0, "null"))
        else:
            raise ValueError(
                f"invalid predicate: unknown name {frag!r}: no dataset has an attribute {name!r} "
                f"and no array is named so (array fields are ARRAY.{', ARRAY.'.join(FIELDS)})"
            )
        cache[name] = out
        return out

    return _Evaluator(n, resolve).eval(tree)[1]
