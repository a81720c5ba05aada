"""The catalogue: find datasets by attributes and statistics without reading their data.

``Atlas.catalog()`` tabulates dataset attributes and per-array metadata (dtype, shape and the
statistics computed at flush) as a ``pandas.DataFrame``; ``Atlas.find()`` selects dataset
names with a small, safe predicate language over the same columns
(:mod:`atlas.catalog.predicate`).

Both are built from metadata alone and never read array data. The datasets of a
version-2 store are read from its shards' catalogue fields (``atlas.format.fields``): for
each wanted attribute or array, one small typed range per shard, never a whole record.
What is read is kept on the shard, which later versions share. Datasets this handle
changed or added are read from their in-memory state, so a buffered change is always seen.
A version-1 manifest's records are read as they were loaded, with C-level iteration
(:mod:`~atlas.catalog.snapshot`).

The modules, from the store up:

* :mod:`~atlas.catalog.source`: the one place that reads the handle's in-memory metadata;
* :mod:`~atlas.catalog.columns`: typed columns built from manifest-encoded values;
* :mod:`~atlas.catalog.gather`: finding an attribute or array in many datasets at once;
* :mod:`~atlas.catalog.stored`: the stored datasets, from the shards' catalogue fields;
* :mod:`~atlas.catalog.snapshot`: the raw records of a version-1 manifest, remembered between calls;
* :mod:`~atlas.catalog.table`: the columns over the live datasets;
* :mod:`~atlas.catalog.predicate`: the predicate language, parsed into a typed tree;
* :mod:`~atlas.catalog.evaluate`: that tree evaluated over the columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..collector import paused_gc
from .columns import Mask as Mask  # importable from here, as before the package was split
from .columns import pd
from .evaluate import evaluate
from .predicate import BoolOp, Predicate, keyword_equals, parse
from .source import live_arrays, live_names_at
from .table import ATTR_PREFIX, FIELDS, columns_lock, name_list, owned_table, split_field

if TYPE_CHECKING:
    import pandas

    from ..core.atlas import Store as Atlas

__all__ = ["FIELDS", "catalog", "find"]


def catalog(
    atlas: Atlas,
    arrays: Iterable[str] | None = None,
    attributes: Iterable[str] | None = None,
    array_attributes: bool = False,
) -> pandas.DataFrame:
    """A table of the live datasets: one row each, indexed by name, in store order.

    Columns are, first, the dataset ``attributes`` (when ``None``, all keys present in any
    dataset, in order of first appearance, except the attributes of variables that xarray
    stores as ``VAR.KEY`` with ``VAR`` an array of the store, such as ``TEMP.units``:
    those come too with ``array_attributes=True``; ``[]`` for none), then, for each of ``arrays``
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
    array_names = name_list(arrays, "arrays")
    attribute_keys = name_list(attributes, "attributes")
    live = live_arrays(atlas)
    if array_names is None:
        array_names = sorted(live)
    with paused_gc():  # columns of millions of values, no cycles: nothing to collect
        return _frame(atlas, array_names, attribute_keys, live, array_attributes)


def _frame(
    atlas: Atlas, array_names: list[str], attribute_keys: list[str] | None, live: dict[str, Any], array_attributes: bool
) -> pandas.DataFrame:
    """The catalogue's DataFrame (see :func:`catalog`)."""
    columns = owned_table(atlas, attribute_keys, {a: FIELDS for a in array_names}, None if array_attributes else live)
    frame: dict[str, Any] = {}
    for key, column in columns.attributes.items():
        name = ATTR_PREFIX + key if split_field(key, live) is not None else key
        if name in frame:
            raise ValueError(f"attribute {key!r} and attribute {name!r} would share a catalogue column")
        frame[name] = column.to_pandas(copy=False)
    for a in array_names:
        for field in FIELDS:
            name = f"{a}.{field}"
            if name in frame:
                raise ValueError(f"two catalogue columns would be named {name!r}")
            frame[name] = columns.arrays[a][field].to_pandas(copy=False)
    index = pd.Index(columns.names, name="dataset", dtype=object)
    if not frame:
        return pd.DataFrame(index=index)
    return pd.DataFrame(frame, index=index, copy=False)


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
    * Strings compare with their trailing blanks (spaces and NULs) ignored, on both sides,
      as CF and Argo readers take fixed-width character data: ``PLATFORM_NUMBER ==
      '13857'`` matches a stored ``'13857   '``. Leading blanks count.
    * Statistics are as of the last ``flush()``, as in ``array_stats``.

    Invalid predicates raise ``ValueError`` naming the offending fragment; the
    expression is parsed, never evaluated by Python.
    """
    tests: list[Predicate] = []
    if where is not None:
        if not isinstance(where, str):
            raise TypeError(f"where must be a str predicate, not {type(where).__name__}")
        if where.strip():
            tests.append(parse(where))
    tests.extend(keyword_equals(key, value) for key, value in equals.items())
    if not tests:
        return atlas.list_datasets()
    tree = tests[0] if len(tests) == 1 else BoolOp("and", tuple(tests))
    with paused_gc():  # large lists of names and columns, no cycles: nothing to collect
        with columns_lock(atlas):  # the columns it uses are not handed to a catalog() meanwhile
            mask = evaluate(atlas, tree)
        return live_names_at(atlas, np.flatnonzero(mask))
