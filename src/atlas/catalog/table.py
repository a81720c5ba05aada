"""The catalogue table: typed columns of attributes and array fields over the live datasets.

Raw records are read through the handle's snapshot (:mod:`atlas.catalog.snapshot`);
materialised datasets are read directly, without decoding what is still encoded, and
merged in. Only metadata is used.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptionError
from ..format.fields import ATTRIBUTE, STATISTICS
from .columns import Column, merge_columns, typed_column
from .gather import (
    ArrayHits,
    AttributeHits,
    array_hits,
    attribute_hits,
    attribute_keys,
    concatenated,
    field_columns,
)
from .snapshot import Placement, Snapshot, forget, release_columns, snapshot_for
from .source import (
    attribute_keys_of,
    dataset_records,
    materialize_all,
    metadata_location,
    schema_table,
    state_array,
    state_attributes,
    stored_layout,
)
from .stored import StoredSnapshot, forget_stored, release_stored_columns, stored_snapshot

if TYPE_CHECKING:
    from ..core.atlas import Store

#: Per-array catalogue fields, in column order.
FIELDS = ("dtype", "shape", "min", "max", "null_count", "row_count")

#: Beyond this many array names (attribute keys), a table finds every array (attribute)
#: of every dataset in one pass.
_INDEX_FROM = 4

#: Prefix of an attribute column whose key clashes with an ``ARRAY.FIELD`` column.
ATTR_PREFIX = "attr:"

_COLUMN_LOCKS: weakref.WeakKeyDictionary[Store, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def columns_lock(store: Store) -> threading.RLock:
    """The lock of a handle's kept typed columns, held while they are made and used
    (``find``) or made and handed out (``catalog()``, which then changes them as the frame's
    own): a column the snapshots kept is never in two hands at once."""
    with _LOCKS_LOCK:
        lock = _COLUMN_LOCKS.get(store)
        if lock is None:
            lock = _COLUMN_LOCKS[store] = threading.RLock()
        return lock


def split_field(name: str, live: Mapping[str, Any] | set[str]) -> tuple[str, str] | None:
    """``(array, field)`` when ``name`` is ``ARRAY.FIELD`` of a live array."""
    head, dot, field = name.rpartition(".")
    if dot and field in FIELDS and head in live:
        return head, field
    return None


def name_list(value: Any, what: str) -> list[str] | None:
    """A ``catalog()`` argument as a list of distinct names (None stays None)."""
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


@dataclass(slots=True)
class Table:
    """Typed columns over the live datasets, by attribute key and by array and field;
    ``n`` datasets, whose names ``names_of()`` gives (built only when asked for)."""

    n: int
    names_of: Callable[[], list[str]]
    attributes: dict[str, Column]
    arrays: dict[str, dict[str, Column]]

    @property
    def names(self) -> list[str]:
        return self.names_of()


def table(
    store: Store,
    attribute_keys: Sequence[str] | None,
    arrays: Mapping[str, Iterable[str]],
    skip_owned_by: Mapping[str, Any] | None = None,
) -> Table:
    """Typed columns of the wanted attributes (every key when ``attribute_keys`` is None,
    but those of arrays in ``skip_owned_by``, see :func:`array_attribute`, unless they
    clash with a field column) and array fields over the live datasets, from metadata
    alone."""
    try:
        return _table_once(store, attribute_keys, arrays, skip_owned_by)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        pass
    # a malformed record: materialising every dataset reports it precisely
    forget(store)
    forget_stored(store)
    materialize_all(store)
    try:
        return _table_once(store, attribute_keys, arrays, skip_owned_by, stored=False)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
        raise CorruptionError(f"{metadata_location(store)} is malformed: {e}") from None


def owned_table(
    store: Store,
    attribute_keys: Sequence[str] | None,
    arrays: Mapping[str, Iterable[str]],
    skip_owned_by: Mapping[str, Any] | None = None,
) -> Table:
    """:func:`table`, whose columns are then the caller's alone: the handle's snapshots
    forget them (``catalog()`` gives them to pandas without a copy; a later call types them
    again from the fields or records it keeps)."""
    with columns_lock(store):
        out = table(store, attribute_keys, arrays, skip_owned_by)
        release_columns(store)
        release_stored_columns(store)
    return out


def array_attribute(key: str, arrays: Mapping[str, Any]) -> bool:
    """Whether ``key`` names an attribute of a variable as xarray stores it (``VAR.KEY``,
    ``VAR`` one of ``arrays``)."""
    at = key.find(".")
    while at > 0:
        if key[:at] in arrays:
            return True
        at = key.find(".", at + 1)
    return False


def _table_once(
    store: Store,
    attribute_keys: Sequence[str] | None,
    arrays: Mapping[str, Iterable[str]],
    skip_owned_by: Mapping[str, Any] | None,
    stored: bool = True,
) -> Table:
    view = LiveView(store, stored)
    if attribute_keys is None:
        keys = view.all_keys()
        if skip_owned_by is not None:
            keys = [k for k in keys if not array_attribute(k, skip_owned_by) or split_field(k, skip_owned_by)]
    else:
        keys = list(attribute_keys)
    if isinstance(view.snapshot, StoredSnapshot):  # every field wanted, in one read per shard
        view.snapshot.prefetch([ATTRIBUTE + k for k in keys] + [STATISTICS + a for a in arrays])
    if len(arrays) > _INDEX_FROM:
        view.snapshot.index_arrays()
    if len(keys) > _INDEX_FROM:
        view.snapshot.index_attributes(keys)
    attributes = {k: view.attribute(k) for k in keys}
    columns = {a: view.array(a, fields) for a, fields in arrays.items()}
    return Table(view.n, view.names_of, attributes, columns)


class LiveView:
    """The live datasets of a handle, as rows: raw records (through the snapshot) and
    materialised ones."""

    snapshot: Snapshot | StoredSnapshot

    def __init__(self, store: Store, stored: bool = True) -> None:
        self.schemas = schema_table(store)
        self.where = metadata_location(store)
        self._store = store
        layout = stored_layout(store) if stored else None
        if layout is not None:  # stored datasets read from the shards' catalogue fields
            self.names_of: Callable[[], list[str]] = layout.names_of
            self.records = None
            self.n = layout.n
            self.states = layout.states
            self.state_rows = layout.state_rows
            self.snapshot = stored_snapshot(store, layout, self.schemas, self.where)
            self.placement = Placement(layout.current, self.n, layout.same)
        else:
            records = dataset_records(store)
            names = records.names
            self.names_of = lambda: names
            self.records = records.records
            self.n = len(records.records)
            self.states = records.states
            self.state_rows = records.state_rows
            self.snapshot, self.placement = snapshot_for(
                store, records.raw, records.raw_rows, records.records, self.schemas, self.where
            )
        self._state_attributes: tuple[list[list[Any]], np.ndarray, list[dict[str, tuple[str, Any]]], list[int]] | None
        self._state_attributes = None
        self._schema_numbers: dict[int, int] = {}

    # ---- materialised datasets
    def state_attribute_hits(self, key: str) -> AttributeHits:
        """Where one attribute is among the materialised datasets."""
        if self._state_attributes is None:
            self._state_attributes = state_attributes(self.states, self.state_rows)
        lists, list_rows, dicts, dict_rows = self._state_attributes
        return attribute_hits(key, lists, list_rows, dicts, dict_rows)

    def state_array_hits(self, name: str) -> ArrayHits:
        """Where one array is among the materialised datasets."""
        rows, numbers, statistics, keyed = state_array(
            self.states, self.state_rows, name, self.schemas, self._schema_numbers
        )
        return array_hits(rows, numbers, statistics, keyed)

    # ---- columns
    def all_keys(self) -> list[str]:
        """Every attribute key of the live datasets, in order of first appearance."""
        keys = list(self.snapshot.key_set())
        if not self.states and self.placement.same:
            return keys
        if self._state_attributes is None:
            self._state_attributes = state_attributes(self.states, self.state_rows)
        lists, _, dicts, _ = self._state_attributes
        candidates = list(dict.fromkeys(chain(keys, *map(attribute_keys, lists), *dicts)))
        first: dict[str, int] = {}  # key -> first row holding it
        for key in candidates:
            column = self.attribute(key)
            if not column.mask.all():
                first[key] = int(np.argmin(column.mask))
        order: list[str] = []
        names = self.names_of()
        for row in sorted(set(first.values())):
            order.extend(k for k in attribute_keys_of(self._store, names[row]) if first.get(k) == row)
        return list(dict.fromkeys(order))

    def attribute(self, key: str) -> Column:
        """The typed column of one attribute."""
        column = self.placement.project(self.snapshot.attribute_column(key))
        if not self.states:
            return column
        state_hits = self.state_attribute_hits(key)
        where = f"{self.where}, attribute {key!r}"
        state_column = typed_column(
            self.n, state_hits.rows, state_hits.values, state_hits.dtypes, state_hits.dtypes, where
        )
        merged = merge_columns(column, state_column)
        if merged is not None:
            return merged
        # kinds differ between raw and materialised datasets: type all values together
        hits = self.snapshot.attribute_hits(key)
        rows, keep = self.placement.current_rows(hits.rows)
        dtypes, values = hits.dtypes, hits.values
        if keep is not None:
            dtypes, values = list(compress(dtypes, keep)), list(compress(values, keep))
        dtypes, values = dtypes + state_hits.dtypes, values + state_hits.values
        return typed_column(self.n, np.concatenate([rows, state_hits.rows]), values, dtypes, dtypes, where)

    def array(self, name: str, fields: Iterable[str]) -> dict[str, Column]:
        """Typed columns of some fields of one array."""
        fields = list(fields)
        snapshot_columns = self.snapshot.array_fields(name, fields, self.schemas)
        out = {f: self.placement.project(column) for f, column in snapshot_columns.items()}
        if not self.states:
            return out
        state_hits = self.state_array_hits(name)
        state_columns = field_columns(self.n, name, state_hits, fields, self.schemas, self.where)
        unmerged: list[str] = []
        for f in fields:
            merged = merge_columns(out[f], state_columns[f])
            if merged is None:
                unmerged.append(f)
            else:
                out[f] = merged
        if unmerged:  # kinds differ between raw and materialised datasets: type all together
            both = concatenated(self._current_array_hits(name), state_hits)
            out.update(field_columns(self.n, name, both, unmerged, self.schemas, self.where))
        return out

    def _current_array_hits(self, name: str) -> ArrayHits:
        """The snapshot's hits of one array, over the current rows."""
        hits = self.snapshot.array_hits(name, self.schemas)
        rows, keep = self.placement.current_rows(hits.rows)
        numbers = hits.schemas if keep is None else hits.schemas[np.array(keep, dtype=bool)]
        stat_rows, stat_keep = self.placement.current_rows(hits.stat_rows)
        if stat_keep is None:
            stat_numbers, statistics = hits.stat_schemas, hits.statistics_lists()
        else:
            stat_numbers = hits.stat_schemas[np.array(stat_keep, dtype=bool)]
            statistics = list(compress(hits.statistics_lists(), stat_keep))
        return ArrayHits(rows, numbers, stat_rows, stat_numbers, statistics, False)
