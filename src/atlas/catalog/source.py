"""The handle's in-memory metadata, as the catalogue reads it.

This is the one module of the catalogue that knows how the core holds a store's datasets:
its private tables (live variables, datasets, schemas), the raw manifest records a dataset
stays as until it is used, and the ``DatasetState`` / ``ArrayState`` objects it becomes
then. Everything else in the catalogue works on what these functions return: plain lists
of manifest-encoded values, numpy row numbers and schema numbers.

A raw record is ``[name, attributes, entries]``: ``attributes`` is the manifest's flat
``[key, dtype, value, ...]`` list, and each array entry is
``[name, aid, schema number, statistics, attributes]`` with ``statistics`` the manifest's
``[row_count, null_count, min, max]`` (or None before the first flush).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter, is_not, itemgetter, not_
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from ..core.shards import attribute_keys, split
from .columns import NO_ROWS

if TYPE_CHECKING:
    from ..core.atlas import Store
    from ..core.state import ArrayState, DatasetState, Schema


class SchemaSource(Protocol):
    """The store's schema table (indexable by the schema numbers of manifest records)."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Schema: ...


#: Positions in an array entry of a raw record.
ENTRY_NAME = 0
ENTRY_SCHEMA = 2
ENTRY_STATISTICS = 3
#: What stands for the entry of a dataset with fewer arrays than a looked-up position.
MISSING_ENTRY: list[Any] = [None, None, None, None, None]
#: The statistics in the order of a manifest statistics list.
STATISTICS = ("row_count", "null_count", "min", "max")
statistics_of = itemgetter(*STATISTICS)
"""The decoded statistics of an array as a ``(row_count, null_count, min, max)`` tuple."""


# ---------------------------------------------------------------- the handle


def live_arrays(store: Store) -> dict[str, Any]:
    """The array names in use by some live dataset (values: the core's variables)."""
    return {name: var for name, var in store._variables.items() if var.live > 0}


def schema_table(store: Store) -> SchemaSource:
    """The store's schema table. A new one is loaded with every version the handle reads,
    so its identity tells whether schema numbers seen earlier still hold."""
    return store._schemas


def metadata_location(store: Store) -> str:
    """``metadata of LOCATION``, as error messages name the store's metadata."""
    return f"metadata of {store._storage.location}"


def materialize_all(store: Store) -> None:
    """Turn every raw record into a dataset state (which validates it precisely)."""
    store._datasets.load_all()
    for name in list(store._datasets):
        store._materialize(name)


@dataclass(slots=True)
class DatasetRecords:
    """The live datasets in store order, split into raw records and materialised ones."""

    names: list[str]
    records: list[Any]  # one per dataset: a raw record or a DatasetState
    raw: list[list[Any]]
    raw_rows: np.ndarray
    states: list[DatasetState]
    state_rows: np.ndarray


def dataset_records(store: Store) -> DatasetRecords:
    """The live datasets of a handle (rows are positions in store order)."""
    return DatasetRecords(*split(store._datasets))


def attribute_keys_of(store: Store, name: str) -> list[str]:
    """The attribute keys of one live dataset, in order."""
    return attribute_keys(store._datasets, name)


@dataclass(slots=True)
class StoredLayout:
    """The live datasets of a handle whose stored datasets are read from the shards'
    catalogue fields: the shards (stored positions run through them in order, ``bases`` the
    first of each) and the current row of each stored position (-1: deleted, or changed by
    this handle and so read from its state). ``states`` (at ``state_rows``) are the datasets
    this handle changed or added."""

    names_of: Any  # () -> the live names, in order (built when first asked for)
    n: int  # how many live datasets
    shards: list[Any]
    bases: np.ndarray
    current: np.ndarray
    same: bool
    states: list[DatasetState]
    state_rows: np.ndarray
    read_fields: Any
    read_columns: Any


def live_names_at(store: Store, rows: np.ndarray) -> list[str]:
    """The names of the live datasets at positions ``rows`` (increasing) in store order."""
    return store._datasets.names_at(rows)


def stored_layout(store: Store) -> StoredLayout | None:
    """The handle's live datasets as stored rows plus changed ones, or None when some
    datasets are not in shards with catalogue fields (then :func:`dataset_records`)."""
    table = store._datasets
    rows = table.stored_rows()
    if rows is None:
        return None
    states = [cast("DatasetState", store._materialize(n)) for n in rows.changed + rows.added]
    state_rows = rows.changed_rows + list(range(rows.live_stored, rows.live_stored + len(rows.added)))
    return StoredLayout(
        table.names,
        len(table),
        rows.shards,
        rows.bases,
        rows.current,
        rows.same,
        states,
        np.array(state_rows, dtype=np.intp),
        table.read_fields,
        table.read_columns,
    )


# ---------------------------------------------------------------- raw records


def raw_attribute_lists(raw: list[list[Any]]) -> list[list[Any]]:
    """The flat ``[key, dtype, value, ...]`` attribute list of each raw record."""
    lists: list[list[Any]] = list(map(itemgetter(1), raw))
    check_attribute_lists(lists)
    return lists


def check_attribute_lists(lists: list[list[Any]]) -> None:
    """Raise ValueError unless every item is a flat ``[key, dtype, value, ...]`` list."""
    if not set(map(type, lists)) <= {list, tuple} or any(length % 3 for length in set(map(len, lists))):
        raise ValueError("attribute list is malformed")


def raw_entry_lists(raw: list[list[Any]]) -> list[list[Any]]:
    """The array entries of each raw record."""
    lists: list[list[Any]] = list(map(itemgetter(2), raw))
    if not set(map(type, lists)) <= {list, tuple}:
        raise ValueError("array list is malformed")
    return lists


def entry_schema_numbers(entries: Sequence[Any]) -> np.ndarray:
    """The schema number of each array entry."""
    return np.fromiter(map(itemgetter(ENTRY_SCHEMA), entries), dtype=np.intp, count=len(entries))


def entry_statistics(entries: Sequence[Any]) -> list[Any]:
    """The manifest statistics list (or None) of each array entry."""
    return list(map(itemgetter(ENTRY_STATISTICS), entries))


# ---------------------------------------------------------------- materialised datasets


def state_attributes(
    states: list[DatasetState], rows: np.ndarray
) -> tuple[list[list[Any]], np.ndarray, list[dict[str, tuple[str, Any]]], list[int]]:
    """The attributes of materialised datasets, read without decoding what is still encoded:
    flat manifest lists and their rows, then decoded ``{key: (dtype, value)}`` dicts and
    their rows."""
    encoded = list(map(attrgetter("stored_attrs"), states))
    still_encoded = list(map(is_not, encoded, repeat(None)))
    decoded = list(map(not_, still_encoded))
    lists: list[list[Any]] = list(compress(encoded, still_encoded))
    dicts: list[dict[str, tuple[str, Any]]] = list(map(attrgetter("attrs"), compress(states, decoded)))
    list_rows = rows[np.array(still_encoded, dtype=bool)] if lists else NO_ROWS
    dict_rows = rows[np.array(decoded, dtype=bool)].tolist() if dicts else []
    check_attribute_lists(lists)
    return lists, list_rows, dicts, dict_rows


def state_array(
    states: list[DatasetState], rows: np.ndarray, name: str, schemas: SchemaSource, schema_numbers: dict[int, int]
) -> tuple[np.ndarray, np.ndarray, list[Any], bool]:
    """One array in materialised datasets: the rows declaring it, their schema numbers and
    their statistics (None where there are none), and whether the statistics are decoded
    dicts (``keyed``) rather than manifest lists. ``schema_numbers`` caches the numbers of
    schemas not yet numbered."""
    arrays = list(map(dict.get, map(attrgetter("arrays"), states), repeat(name)))
    if None in arrays:
        declared = list(map(is_not, arrays, repeat(None)))
        arrays = list(compress(arrays, declared))
        rows = rows[np.array(declared, dtype=bool)]
    found = cast("list[ArrayState]", arrays)
    try:
        numbers = np.fromiter(map(attrgetter("schema.pos"), found), dtype=np.intp, count=len(found))
    except AttributeError:
        numbers = np.full(len(found), -1, dtype=np.intp)
    for i in np.flatnonzero(numbers < 0).tolist():
        numbers[i] = _schema_number(found[i].schema, schemas, schema_numbers)
    encoded = list(map(attrgetter("_raw"), found))  # statistics not decoded yet
    decoded = list(map(attrgetter("_stats"), found))
    if encoded.count(None) == len(encoded):
        return rows, numbers, decoded, True
    if None not in encoded:  # none decoded yet: the manifest's lists
        return rows, numbers, list(map(itemgetter(0), encoded)), False
    statistics = [
        raw_stats[0] if raw_stats is not None else (None if stats is None else statistics_of(stats))
        for raw_stats, stats in zip(encoded, decoded, strict=True)
    ]
    return rows, numbers, statistics, False


def _schema_number(schema: Schema, schemas: SchemaSource, cache: dict[int, int]) -> int:
    """Number of an in-memory schema in the store's schema table."""
    pos = getattr(schema, "pos", -1)
    if pos >= 0:
        return int(pos)
    if not cache:
        cache.update((id(schemas[i]), i) for i in range(len(schemas)))
    return cache[id(schema)]
