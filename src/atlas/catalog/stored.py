"""The stored datasets as the catalogue reads them: from the catalogue fields of the shards
(``atlas.format.fields``), one small range per shard and wanted key, without decoding a
record.

A :class:`StoredSnapshot` answers the same questions as the snapshot of raw records
(:class:`atlas.catalog.snapshot.Snapshot`), over *stored positions*: the datasets of the
version's shards, in order. Shards are immutable, so what is read of one is kept on it and
serves every later call, and every later version that names the shard again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptionError
from ..format.fields import ATTRIBUTE, STATISTICS, Field
from .columns import NO_ROWS, Column, scatter, typed_column
from .gather import ArrayHits, AttributeHits, array_hits
from .source import SchemaSource, StoredLayout

if TYPE_CHECKING:
    from ..core.atlas import Store

_SNAPSHOTS: weakref.WeakKeyDictionary[Store, StoredSnapshot] = weakref.WeakKeyDictionary()


def stored_snapshot(store: Store, layout: StoredLayout, schemas: SchemaSource, where: str) -> StoredSnapshot:
    """The stored snapshot of a handle's version: the remembered one while its shards are
    those of ``layout``."""
    snapshot = _SNAPSHOTS.get(store)
    if snapshot is None or not snapshot.serves(layout, schemas):
        snapshot = StoredSnapshot(layout, schemas, where)
        _SNAPSHOTS[store] = snapshot
    return snapshot


def forget_stored(store: Store) -> None:
    """Drop the stored snapshot of a handle."""
    _SNAPSHOTS.pop(store, None)


def release_stored_columns(store: Store) -> None:
    """Let the stored snapshot of a handle forget the typed columns it made (it keeps the
    fields they were made of): whoever holds them now holds them alone."""
    snapshot = _SNAPSHOTS.get(store)
    if snapshot is not None:
        snapshot.release_columns()


def _joined(parts: list[np.ndarray | list[Any]]) -> np.ndarray | list[Any]:
    """Values of several blocks as one: an array when all are arrays of one dtype."""
    arrays = [p for p in parts if isinstance(p, np.ndarray)]
    if parts and len(arrays) == len(parts) and len({p.dtype.kind for p in arrays}) == 1:
        return np.concatenate(arrays)  # int32 and int64 blocks (or float32 and float64) widen
    out: list[Any] = []
    for p in parts:
        out.extend(p.tolist() if isinstance(p, np.ndarray) else p)
    return out


def _positions(parts: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Stored positions from (first position of a shard, positions in the shard) pairs, as
    one array, written in place (a copy of each shard's part would be fresh memory)."""
    out = np.concatenate([rows for _, rows in parts], dtype=np.intp)
    at = 0
    for base, rows in parts:
        if base:
            out[at : at + len(rows)] += base
        at += len(rows)
    return out


def _distinct(*numbers: np.ndarray) -> list[int]:
    """The distinct schema numbers among ``numbers`` (small non-negative ints)."""
    seen: set[int] = set()
    for a in numbers:
        if len(a):
            seen.update(np.flatnonzero(np.bincount(a)).tolist())
    return sorted(seen)


class StoredSnapshot:
    """Columns of the stored datasets of one version, over stored positions, read from the
    shards' catalogue fields on first use."""

    def __init__(self, layout: StoredLayout, schemas: SchemaSource, where: str) -> None:
        self.shards = layout.shards
        self._serials = [s.serial for s in layout.shards]
        # the handle's table reads, held weakly: the snapshot must not keep the handle alive
        self._read_fields = weakref.WeakMethod(layout.read_fields)
        self._read_columns_of = weakref.WeakMethod(layout.read_columns)
        self.bases = layout.bases
        self.n = int(layout.bases[-1] + len(layout.shards[-1].names)) if layout.shards else 0
        self._schemas = weakref.ref(schemas)
        self.where = where
        self._attribute_columns: dict[str, Column] = {}
        self._field_columns: dict[tuple[str, str], Column] = {}
        self._array_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._every: np.ndarray | None = None

    def release_columns(self) -> None:
        """Forget the typed columns made so far (later calls make them again)."""
        self._attribute_columns = {}
        self._field_columns = {}

    def serves(self, layout: StoredLayout, schemas: SchemaSource) -> bool:
        """Whether this snapshot is of ``layout``'s shards and schema table."""
        return self._schemas() is schemas and self._serials == [s.serial for s in layout.shards]

    # ---- reading fields

    def _read(self, shards: list[Any], names: list[str]) -> None:
        read = self._read_fields()
        if read is None:
            raise ReferenceError("the handle's version is gone")
        read(shards, names)

    def _read_columns(self, shards: list[Any]) -> None:
        read = self._read_columns_of()
        if read is None:
            raise ReferenceError("the handle's version is gone")
        read(shards)

    def _fields(self, name: str) -> list[tuple[int, Field]]:
        """(first stored position, field) of each shard holding the field ``name``."""
        self._read(self.shards, [name])
        return [(int(b), f) for b, s in zip(self.bases, self.shards, strict=True) if (f := s.fields.get(name))]

    def prefetch(self, names: Iterable[str]) -> None:
        """Read many fields of every shard at once (one request per shard)."""
        self._read(self.shards, list(names))

    def _block(self, name: str, i: int) -> tuple[np.ndarray, np.ndarray | list[Any], list[tuple[int, Field]]]:
        """Stored positions and values of block ``i`` of a field over all shards."""
        found = self._fields(name)
        if not found:
            return NO_ROWS, [], found
        values = _joined([f.blocks[i].values for _, f in found])
        return self._stored_positions([(base, f.blocks[i].rows) for base, f in found]), values, found

    def _stored_positions(self, parts: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """The stored positions of (first position of a shard, positions in the shard)
        pairs. A shard's positions increase and stay in it, so as many as the snapshot has
        datasets are every position: the one shared array."""
        if sum(len(rows) for _, rows in parts) == self.n:
            return self._every_position()
        return _positions(parts)

    def _every_position(self) -> np.ndarray:
        """0, 1, ..., n - 1, made once (read-only: it is shared by every full block)."""
        if self._every is None:
            self._every = np.arange(self.n, dtype=np.intp)
            self._every.flags.writeable = False
        return self._every

    # ---- attributes

    def key_set(self) -> dict[str, None]:
        """Every attribute key of the stored datasets, in order of first appearance."""
        keys: dict[str, None] = {}
        for s in self.shards:
            assert s.head is not None and s.head.fields is not None
            keys.update((k[len(ATTRIBUTE) :], None) for k in s.head.fields if k.startswith(ATTRIBUTE))
        return keys

    def _attribute(self, key: str) -> tuple[np.ndarray, np.ndarray | list[Any], set[str], Callable[[], list[str]]]:
        rows, values, found = self._block(ATTRIBUTE + key, 0)
        names = {f.dtype for _, f in found if f.dtype is not None}
        for _, f in found:
            if f.dtypes is not None:
                names.update(f.dtypes)

        def value_dtypes() -> list[str]:
            out: list[str] = []
            for _, f in found:
                out.extend(f.dtypes if f.dtypes is not None else [f.dtype or ""] * len(f.blocks[0].rows))
            return out

        return rows, values, names, value_dtypes

    def attribute_hits(self, key: str) -> AttributeHits:
        """Where one attribute is among the stored datasets."""
        rows, values, _, value_dtypes = self._attribute(key)
        listed = values.tolist() if isinstance(values, np.ndarray) else list(values)
        return AttributeHits(rows, value_dtypes(), listed)

    def attribute_column(self, key: str) -> Column:
        """The typed column of one attribute over the stored positions."""
        column = self._attribute_columns.get(key)
        if column is None:
            rows, values, names, value_dtypes = self._attribute(key)
            where = f"{self.where}, attribute {key!r}"
            column = typed_column(self.n, rows, values, names, value_dtypes, where)
            self._attribute_columns[key] = column
        return column

    def index_attributes(self, keys: list[str]) -> None:
        self.prefetch(ATTRIBUTE + k for k in keys)

    # ---- arrays

    def _declared(self, name: str, schemas: SchemaSource) -> tuple[np.ndarray, np.ndarray]:
        """Stored positions declaring array ``name`` and their schema numbers (from the
        shards' array columns)."""
        hit = self._array_rows.get(name)
        if hit is None:
            self._read_columns(self.shards)
            rows, numbers = [], []
            for base, s in zip(self.bases.tolist(), self.shards, strict=True):
                col = (s.columns or {}).get(name)
                if col is not None:
                    rows.append((base, col["row"]))
                    numbers.append(col["schema"])
            if not rows:
                hit = (NO_ROWS, NO_ROWS)
            else:
                hit = (self._stored_positions(rows), np.concatenate(numbers, dtype=np.intp))
            if len(hit[1]) and int(hit[1].max()) >= len(schemas):
                raise IndexError("schema number out of range")
            self._array_rows[name] = hit
        return hit

    def index_arrays(self) -> None:
        """Nothing to do: each array's fields are read alone."""

    def array_hits(self, name: str, schemas: SchemaSource) -> ArrayHits:
        """Where one array is among the stored datasets, with its statistics as lists (for
        typing stored and changed datasets together)."""
        rows, numbers = self._declared(name, schemas)
        schema_at = dict(zip(rows.tolist(), numbers.tolist(), strict=True))
        blocks = [self._block(STATISTICS + name, i)[:2] for i in range(4)]
        stats: dict[int, list[Any]] = {r: [None, None, None, None] for r in blocks[0][0].tolist()}
        for i, (at, values) in enumerate(blocks):
            listed = values.tolist() if isinstance(values, np.ndarray) else values
            for r, v in zip(at.tolist(), listed, strict=True):
                stats.setdefault(r, [None, None, None, None])[i] = v
        stat_rows = np.array(sorted(stats), dtype=np.intp)
        stat_schemas = np.array([schema_at[r] for r in stat_rows.tolist()], dtype=np.intp)
        hits = array_hits(rows, numbers, [stats[r] for r in stat_rows.tolist()])
        hits.stat_rows, hits.stat_schemas = stat_rows, stat_schemas
        return hits

    def array_fields(self, name: str, fields: list[str], schemas: SchemaSource) -> dict[str, Column]:
        """Typed columns of some fields of one array over the stored positions."""
        missing = [f for f in fields if (name, f) not in self._field_columns]
        if missing:
            columns = self._array_columns(name, missing, schemas)
            for f, column in columns.items():
                self._field_columns[(name, f)] = column
        return {f: self._field_columns[(name, f)] for f in fields}

    def _array_columns(self, name: str, fields: Sequence[str], schemas: SchemaSource) -> dict[str, Column]:
        n = self.n
        location = f"{self.where}, array {name!r}"
        field = STATISTICS + name
        stat_rows, stat_schemas, _ = self._block(field, 4)  # rows with statistics, their schemas
        stat_numbers = np.asarray(stat_schemas, dtype=np.intp)
        declared = ("dtype" in fields or "shape" in fields or not len(stat_rows))
        rows, numbers = self._declared(name, schemas) if declared else (stat_rows, stat_numbers)
        if len(stat_numbers) and not 0 <= int(stat_numbers.min()) <= int(stat_numbers.max()) < len(schemas):
            raise CorruptionError(f"{location}: statistics name an unknown schema")
        dtype_names = np.full(len(schemas), None, dtype=object)
        shapes = np.full(len(schemas), None, dtype=object)
        for i in _distinct(numbers, stat_numbers):
            dtype_names[i] = schemas[i].dtype.name
            shapes[i] = schemas[i].shape
        out: dict[str, Column] = {}
        if "dtype" in fields:
            out["dtype"] = Column("string", *scatter(n, rows, dtype_names[numbers], "", object))
        if "shape" in fields:
            out["shape"] = Column("shape", *scatter(n, rows, shapes[numbers], None, object))
        try:
            for f, i in (("row_count", 0), ("null_count", 1)):
                if f in fields:
                    at, values, _ = self._block(field, i)
                    counts = np.asarray(values, dtype=np.int64)
                    out[f] = Column("int", *scatter(n, at, counts, 0, np.int64))
            # all-null arrays have statistics but no min/max: the column is typed by the schemas
            used = stat_numbers if len(stat_numbers) else numbers
            kinds = set(dtype_names[_distinct(used)].tolist())
            for f, i in (("min", 2), ("max", 3)):
                if f in fields:
                    at, values, _ = self._block(field, i)

                    def value_dtypes(at: np.ndarray = at) -> list[str]:
                        listed: list[str] = dtype_names[stat_numbers[np.searchsorted(stat_rows, at)]].tolist()
                        return listed

                    out[f] = typed_column(n, at, values, kinds, value_dtypes, location)
        except (TypeError, ValueError, IndexError, OverflowError):
            raise CorruptionError(f"{location}: statistics are malformed") from None
        return out
