"""What the catalogue remembers of a handle between calls.

The raw manifest records of a handle never change: a dataset that changes is materialised
into a ``DatasetState`` instead. So the columns gathered from a snapshot of the raw records
stay valid as long as the records are those of the snapshot. A later call maps snapshot
positions to current rows (:class:`Placement`), reuses what was gathered, and only reads
the materialised datasets again: a change buffered since is always seen.

The snapshots are the catalogue's own: kept in a weak mapping keyed by the handle (nothing
is added to the handle; the handle's garbage takes its snapshot along) and replaced when
the handle reads another version (its schema table is then another one) or when most of
the snapshot's records are no longer in use.
"""

from __future__ import annotations

import weakref
from itertools import chain, repeat
from operator import is_
from typing import TYPE_CHECKING, Any

import numpy as np

from .columns import NO_ROWS, Column, relocated, typed_column
from .gather import (
    ArrayHits,
    AttributeHits,
    array_entries,
    array_hits,
    attribute_hits,
    attribute_keys,
    attribute_position,
    field_columns,
)
from .source import (
    ENTRY_NAME,
    SchemaSource,
    entry_schema_numbers,
    entry_statistics,
    raw_attribute_lists,
    raw_entry_lists,
)

if TYPE_CHECKING:
    from ..core.atlas import Store

_SNAPSHOTS: weakref.WeakKeyDictionary[Store, Snapshot] = weakref.WeakKeyDictionary()


class Snapshot:
    """Columns gathered from a snapshot of the raw manifest records of a handle, over
    snapshot positions. Built lazily: each attribute and array field on first use."""

    __slots__ = (
        "records", "_schemas", "where", "_position_of", "_attribute_lists", "_entry_lists", "_keys",
        "_attribute_columns", "_array_hits", "_field_columns", "_entry_index",
        "_attribute_index", "_attribute_positions",
    )

    def __init__(self, records: list[list[Any]], schemas: SchemaSource, where: str) -> None:
        self.records = records
        # the table the schema numbers refer to; weakly, for it refers to the handle
        self._schemas = weakref.ref(schemas)
        self.where = where
        self._position_of: dict[int, int] | None = None  # id(record) -> position in records
        self._attribute_lists: list[list[Any]] | None = None
        self._entry_lists: list[list[Any]] | None = None
        self._keys: dict[str, None] | None = None  # every attribute key, in order of first appearance
        self._attribute_columns: dict[str, Column] = {}
        self._array_hits: dict[str, ArrayHits] = {}
        self._entry_index: dict[str, tuple[list[int], list[Any]]] | None = None
        self._attribute_index: dict[str, tuple[list[int], list[str], list[Any]]] | None = None
        self._attribute_positions: list[dict[Any, int]] | None = None
        self._field_columns: dict[tuple[str, str], Column] = {}

    def release_columns(self) -> None:
        """Forget the typed columns made so far (later calls make them again)."""
        self._attribute_columns = {}
        self._field_columns = {}

    def holds(self, schemas: SchemaSource) -> bool:
        """Whether the snapshot's schema numbers refer to this schema table."""
        return self._schemas() is schemas

    def position_of(self) -> dict[int, int]:
        """The position of each record in the snapshot, by ``id``."""
        if self._position_of is None:
            self._position_of = {id(r): i for i, r in enumerate(self.records)}
        return self._position_of

    def attribute_lists(self) -> list[list[Any]]:
        """The flat attribute list of each record."""
        if self._attribute_lists is None:
            self._attribute_lists = raw_attribute_lists(self.records)
        return self._attribute_lists

    def key_set(self) -> dict[str, None]:
        """Every attribute key, in order of first appearance."""
        if self._keys is None:
            self._keys = dict.fromkeys(chain.from_iterable(map(attribute_keys, self.attribute_lists())))
        return self._keys

    def attribute_hits(self, key: str) -> AttributeHits:
        """Where one attribute is in the snapshot."""
        lists = self.attribute_lists()
        if self._attribute_index is not None and key in self._attribute_index:
            rows, dtypes, values = self._attribute_index[key]
            return AttributeHits(np.array(rows, dtype=np.intp), list(dtypes), list(values))
        if all(attribute_position(f, key) < 0 for f in lists[:8]) and key not in self.key_set():
            return AttributeHits(NO_ROWS, [], [])  # a key nobody has: no search of every dataset
        return attribute_hits(key, lists, np.arange(len(lists), dtype=np.intp), [], [])

    def attribute_column(self, key: str) -> Column:
        """The typed column of one attribute over the snapshot."""
        column = self._attribute_columns.get(key)
        if column is None:
            hits = self.attribute_hits(key)
            where = f"{self.where}, attribute {key!r}"
            column = typed_column(len(self.records), hits.rows, hits.values, hits.dtypes, hits.dtypes, where)
            self._attribute_columns[key] = column
        return column

    def array_hits(self, name: str, schemas: SchemaSource) -> ArrayHits:
        """Where one array is in the snapshot (``schemas``: the table the snapshot holds)."""
        hits = self._array_hits.get(name)
        if hits is None:
            if self._entry_lists is None:
                self._entry_lists = raw_entry_lists(self.records)
            if self._entry_index is not None:
                found = self._entry_index.get(name, ([], []))
                rows, entries = np.array(found[0], dtype=np.intp), found[1]
            else:
                rows, entries = array_entries(name, self._entry_lists, np.arange(len(self.records), dtype=np.intp))
            numbers = entry_schema_numbers(entries)
            if len(numbers) and (int(numbers.min()) < 0 or int(numbers.max()) >= len(schemas)):
                raise IndexError("schema number out of range")
            hits = self._array_hits[name] = array_hits(rows, numbers, entry_statistics(entries))
        return hits

    def index_attributes(self, keys: list[str]) -> None:
        """Find many attribute keys in every dataset at once: each dataset's keys are
        mapped to their positions once, so keys that are not at the same position in
        every dataset (datasets of different kinds) cost a lookup each, not a search."""
        if self._attribute_index is None:
            self._attribute_index = {}
        missing = [k for k in keys if k not in self._attribute_index]
        if not missing:
            return
        lists = self.attribute_lists()
        if self._attribute_positions is None:
            self._attribute_positions = [dict(zip(flat[::3], range(0, len(flat), 3), strict=False)) for flat in lists]
        for key in missing:
            rows: list[int] = []
            dtypes: list[str] = []
            values: list[Any] = []
            for row, (positions, flat) in enumerate(zip(self._attribute_positions, lists, strict=True)):
                j = positions.get(key)
                if j is not None:
                    rows.append(row)
                    dtypes.append(flat[j + 1])
                    values.append(flat[j + 2])
            self._attribute_index[key] = (rows, dtypes, values)

    def index_arrays(self) -> None:
        """Find every array of every dataset in one pass, for lookups of many array names:
        datasets of different kinds (whose arrays are not at the same positions) then cost
        one pass in all, not one per name."""
        if self._entry_index is not None:
            return
        if self._entry_lists is None:
            self._entry_lists = raw_entry_lists(self.records)
        index: dict[str, tuple[list[int], list[Any]]] = {}
        for row, entries in enumerate(self._entry_lists):
            for entry in entries:
                rows, found = index.setdefault(entry[ENTRY_NAME], ([], []))
                if not rows or rows[-1] != row:  # the first entry of a name in a dataset
                    rows.append(row)
                    found.append(entry)
        self._entry_index = index

    def array_fields(self, name: str, fields: list[str], schemas: SchemaSource) -> dict[str, Column]:
        """Typed columns of some fields of one array over the snapshot."""
        missing = [f for f in fields if (name, f) not in self._field_columns]
        if missing:
            hits = self.array_hits(name, schemas)
            for f, column in field_columns(len(self.records), name, hits, missing, schemas, self.where).items():
                self._field_columns[(name, f)] = column
        return {f: self._field_columns[(name, f)] for f in fields}


class Placement:
    """Where the snapshot's positions are among the current rows."""

    __slots__ = ("rows", "n", "same", "holes")

    def __init__(self, rows: np.ndarray, n: int, same: bool, holes: np.ndarray | None = None) -> None:
        self.rows = rows  # the current row of each snapshot position (-1: gone)
        self.n = n  # how many rows there are now
        self.same = same  # the snapshot is exactly the current rows
        self.holes = holes  # rows of the snapshot now materialised, when rows are otherwise unchanged

    def project(self, column: Column) -> Column:
        """A snapshot column as a column over the current rows (null where the snapshot
        does not hold a current dataset)."""
        if self.same:
            return column
        if self.holes is not None:
            return Column(column.kind, column.values, column.mask | self.holes)
        return relocated(column, self.rows, self.n)

    def current_rows(self, positions: np.ndarray) -> tuple[np.ndarray, list[bool] | None]:
        """The current rows of snapshot positions, and which positions are still current
        (None: all)."""
        mapped = self.rows[positions]
        keep = mapped >= 0
        if keep.all():
            return mapped, None
        return mapped[keep], keep.tolist()


def snapshot_for(
    store: Store, raw: list[list[Any]], raw_rows: np.ndarray, records: list[Any], schemas: SchemaSource, where: str
) -> tuple[Snapshot, Placement]:
    """The snapshot to read the raw records of a handle from, and where it is among the
    current rows: the remembered one while it still serves, else a new one of ``raw``.

    ``raw`` are the current raw records, at ``raw_rows`` of ``records`` (every live dataset,
    raw or materialised); ``schemas`` is the handle's schema table.
    """
    n = len(records)
    snapshot = _SNAPSHOTS.get(store)
    if snapshot is not None and snapshot.holds(schemas):
        placement = _placement(snapshot, raw, raw_rows, records)
        if placement is not None:
            return snapshot, placement
    snapshot = Snapshot(raw, schemas, where)
    _SNAPSHOTS[store] = snapshot
    return snapshot, Placement(raw_rows, n, len(raw) == n)


def _placement(snapshot: Snapshot, raw: list[Any], raw_rows: np.ndarray, records: list[Any]) -> Placement | None:
    """Where the snapshot is among the current rows, or None when it no longer serves."""
    n = len(records)
    held = snapshot.records
    if len(raw) == len(held) and all(map(is_, raw, held)):
        return Placement(raw_rows, n, len(raw) == n)
    if len(held) == n:  # same datasets, some of them materialised since
        unchanged = list(map(is_, records, held))
        if len(raw) == sum(unchanged):  # every raw record is the snapshot's
            holes = ~np.array(unchanged, dtype=bool)
            return Placement(np.where(holes, -1, np.arange(n, dtype=np.intp)), n, False, holes)
    if 2 * len(raw) >= len(held):  # most of the snapshot is still in use
        position_of = snapshot.position_of()
        at = np.fromiter(map(position_of.get, map(id, raw), repeat(-1)), dtype=np.intp, count=len(raw))
        if len(at) == 0 or int(at.min()) >= 0:
            rows = np.full(len(held), -1, dtype=np.intp)
            rows[at] = raw_rows
            return Placement(rows, n, False)
    return None


def forget(store: Store) -> None:
    """Drop the snapshot of a handle."""
    _SNAPSHOTS.pop(store, None)


def release_columns(store: Store) -> None:
    """Let the snapshot of a handle forget the typed columns it made (it keeps the records
    and indexes they were made of): whoever holds them now holds them alone."""
    snapshot = _SNAPSHOTS.get(store)
    if snapshot is not None:
        snapshot.release_columns()
