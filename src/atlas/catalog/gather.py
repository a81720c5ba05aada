"""Finding one attribute or one array in the manifest-encoded metadata of many datasets.

Similar datasets list their attributes and arrays in the same order, so a wanted key is
first looked up, for all datasets at once and with C-level iteration (``map``), at the
position it has in the first dataset holding it; only the datasets where that guess misses
are searched one by one. What is found stays manifest-encoded until its column is typed
(:func:`field_columns`, :func:`atlas.catalog.columns.typed_column`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from operator import eq, getitem, is_not, itemgetter
from typing import Any

import numpy as np

from ..errors import CorruptionError
from .columns import NO_ROWS, Column, scatter, typed_column
from .source import ENTRY_NAME, MISSING_ENTRY, STATISTICS, SchemaSource, statistics_of


class AttributeHits:
    """Where one attribute key was found: rows (dataset positions), dtype names and
    manifest-encoded values."""

    __slots__ = ("rows", "dtypes", "values")

    def __init__(self, rows: np.ndarray, dtypes: list[str], values: list[Any]) -> None:
        self.rows = rows
        self.dtypes = dtypes
        self.values = values


class ArrayHits:
    """Where one array name was found (rows are dataset positions)."""

    __slots__ = ("rows", "schemas", "stat_rows", "stat_schemas", "statistics", "keyed")

    def __init__(
        self,
        rows: np.ndarray,
        schemas: np.ndarray,
        stat_rows: np.ndarray,
        stat_schemas: np.ndarray,
        statistics: list[Any],
        keyed: bool,
    ) -> None:
        self.rows = rows  # datasets declaring the array
        self.schemas = schemas  # their schema numbers
        self.stat_rows = stat_rows  # datasets whose array has statistics
        self.stat_schemas = stat_schemas
        # statistics of each: [row_count, null_count, min, max] in manifest encoding, or the
        # decoded dicts of materialised arrays when ``keyed``
        self.statistics = statistics
        self.keyed = keyed

    def getter(self, i: int) -> Callable[[Any], Any]:
        """Getter of one statistic (0: row_count, 1: null_count, 2: min, 3: max)."""
        return itemgetter(STATISTICS[i] if self.keyed else i)

    def statistic(self, i: int) -> list[Any]:
        """One statistic (as :meth:`getter` numbers them) of every dataset with statistics."""
        return list(map(self.getter(i), self.statistics))

    def statistics_lists(self) -> list[Any]:
        """The statistics as ``[row_count, null_count, min, max]`` sequences."""
        return list(map(statistics_of, self.statistics)) if self.keyed else self.statistics


def array_hits(rows: np.ndarray, schemas: np.ndarray, statistics: list[Any], keyed: bool = False) -> ArrayHits:
    """Hits of one array, splitting off the datasets that have statistics (None: none)."""
    if None not in statistics:
        return ArrayHits(rows, schemas, rows, schemas, statistics, keyed)
    with_statistics = list(map(is_not, statistics, repeat(None)))
    keep = np.array(with_statistics, dtype=bool)
    return ArrayHits(rows, schemas, rows[keep], schemas[keep], list(compress(statistics, with_statistics)), keyed)


def concatenated(a: ArrayHits, b: ArrayHits) -> ArrayHits:
    """The hits of two disjoint sets of datasets together (statistics as manifest lists)."""
    return ArrayHits(
        np.concatenate([a.rows, b.rows]),
        np.concatenate([a.schemas, b.schemas]),
        np.concatenate([a.stat_rows, b.stat_rows]),
        np.concatenate([a.stat_schemas, b.stat_schemas]),
        a.statistics_lists() + b.statistics_lists(),
        False,
    )


# ---------------------------------------------------------------- searching


def attribute_position(flat: list[Any], key: str) -> int:
    """Position of attribute ``key`` in a flat ``[key, dtype, value, ...]`` list, or -1."""
    try:
        i = flat.index(key)
        while i % 3:  # matched a dtype or a value
            i = flat.index(key, i + 1)
    except ValueError:
        return -1
    return i


def attribute_keys(flat: list[Any]) -> list[Any]:
    """The keys of a flat ``[key, dtype, value, ...]`` attribute list."""
    return flat[0::3]


def _items_at(items: Sequence[Any], pos: int, default: Any) -> list[Any]:
    """``item[pos]`` of every item (``default`` where an item is too short)."""
    try:
        return list(map(getitem, items, repeat(pos)))
    except IndexError:
        return [x[pos] if len(x) > pos else default for x in items]


def _all_equal(items: list[Any], key: str) -> bool:
    """Whether every item equals ``key`` (one C-level pass)."""
    return items.count(key) == len(items)


def attribute_hits(
    key: str,
    flats: list[list[Any]],
    rows: np.ndarray,
    dicts: list[dict[str, tuple[str, Any]]],
    dict_rows: list[int],
) -> AttributeHits:
    """Rows, dtypes and (manifest-encoded) values of one attribute, from flat attribute
    lists at ``rows`` and decoded ``{key: (dtype, value)}`` dicts at ``dict_rows``."""
    hits = AttributeHits(NO_ROWS, [], [])
    extra_rows: list[int] = []
    pos = -1
    for flat in flats:  # position of the key in the first dataset holding it
        pos = attribute_position(flat, key)
        if pos >= 0:
            break
    if pos >= 0:
        at = _items_at(flats, pos, None)
        if _all_equal(at, key):
            hits.rows = rows
            hits.dtypes = list(map(getitem, flats, repeat(pos + 1)))
            hits.values = list(map(getitem, flats, repeat(pos + 2)))
        else:
            guessed = list(map(eq, at, repeat(key)))
            guessed_mask = np.array(guessed, dtype=bool)
            hits.rows = rows[guessed_mask]
            hits.dtypes = list(compress(_items_at(flats, pos + 1, None), guessed))
            hits.values = list(compress(_items_at(flats, pos + 2, None), guessed))
            for i in np.flatnonzero(~guessed_mask).tolist():
                flat = flats[i]
                j = attribute_position(flat, key)
                if j >= 0:
                    extra_rows.append(int(rows[i]))
                    hits.dtypes.append(flat[j + 1])
                    hits.values.append(flat[j + 2])
    if dicts:  # decoded attributes of materialised datasets
        found: list[Any] = list(map(dict.get, dicts, repeat(key)))
        present = list(map(is_not, found, repeat(None)))
        dtypes_and_values = list(compress(found, present))
        extra_rows.extend(compress(dict_rows, present))
        hits.dtypes.extend(map(itemgetter(0), dtypes_and_values))
        hits.values.extend(map(itemgetter(1), dtypes_and_values))
    if extra_rows:
        hits.rows = np.concatenate([hits.rows, np.array(extra_rows, dtype=np.intp)])
    return hits


def array_entries(name: str, entry_lists: list[list[Any]], rows: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Rows and array entries of one array name, from the entry lists of datasets at ``rows``."""
    pos = -1
    for entries in entry_lists:  # position of the array in the first dataset declaring it
        for j, entry in enumerate(entries):
            if entry[ENTRY_NAME] == name:
                pos = j
                break
        if pos >= 0:
            break
    if pos < 0:
        return NO_ROWS, []
    at = _items_at(entry_lists, pos, MISSING_ENTRY)
    names = list(map(itemgetter(ENTRY_NAME), at))
    if _all_equal(names, name):
        return rows, at
    guessed = list(map(eq, names, repeat(name)))
    guessed_mask = np.array(guessed, dtype=bool)
    found = list(compress(at, guessed))
    extra: list[int] = []
    for i in np.flatnonzero(~guessed_mask).tolist():
        for entry in entry_lists[i]:
            if entry[ENTRY_NAME] == name:
                extra.append(int(rows[i]))
                found.append(entry)
                break
    return np.concatenate([rows[guessed_mask], np.array(extra, dtype=np.intp)]), found


# ---------------------------------------------------------------- array columns


def _schema_lookups(schemas: SchemaSource, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dtype names and shapes by schema number, filled in for the used schemas only."""
    dtype_names = np.full(len(schemas), None, dtype=object)
    shapes = np.full(len(schemas), None, dtype=object)
    for i in np.unique(numbers).tolist():
        schema = schemas[i]
        dtype_names[i] = schema.dtype.name
        shapes[i] = schema.shape
    return dtype_names, shapes


def field_columns(
    n: int, name: str, hits: ArrayHits, fields: Iterable[str], schemas: SchemaSource, where: str
) -> dict[str, Column]:
    """Typed columns over ``n`` rows of the wanted catalogue fields of one array."""
    out: dict[str, Column] = {}
    need = set(fields)
    location = f"{where}, array {name!r}"
    dtype_names, shapes = _schema_lookups(schemas, hits.schemas)
    if "dtype" in need:
        out["dtype"] = Column("string", *scatter(n, hits.rows, dtype_names[hits.schemas], "", object))
    if "shape" in need:
        out["shape"] = Column("shape", *scatter(n, hits.rows, shapes[hits.schemas], None, object))
    try:
        for field, i in (("row_count", 0), ("null_count", 1)):
            if field in need:
                counts = np.fromiter(map(hits.getter(i), hits.statistics), dtype=np.int64, count=len(hits.statistics))
                out[field] = Column("int", *scatter(n, hits.stat_rows, counts, 0, np.int64))
        # all-null arrays have statistics but no min/max: the column is typed by the schemas
        used = hits.stat_schemas if len(hits.stat_schemas) else hits.schemas
        kinds = set(dtype_names[np.unique(used)].tolist())
        for field, i in (("min", 2), ("max", 3)):
            if field in need:
                out[field] = _bound_column(n, hits, i, kinds, dtype_names, location)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise CorruptionError(f"{location}: statistics are malformed") from None
    return out


def _bound_column(
    n: int, hits: ArrayHits, i: int, kinds: set[str], dtype_names: np.ndarray, location: str
) -> Column:
    """The typed column of the min (``i`` = 2) or the max (3) of one array."""
    values = hits.statistic(i)
    rows, numbers = hits.stat_rows, hits.stat_schemas
    if None in values:
        present = list(map(is_not, values, repeat(None)))
        keep = np.array(present, dtype=bool)
        rows, numbers = rows[keep], numbers[keep]
        values = list(compress(values, present))
    return typed_column(n, rows, values, kinds, lambda: dtype_names[numbers].tolist(), location)
