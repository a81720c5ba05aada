"""Typed columns over the live datasets, built from manifest-encoded values.

A :class:`Column` holds one value per dataset (a numpy array) and a null mask. Its *kind*
decides the numpy storage and the pandas type of the catalogue column, and how the evaluator
compares it: exactly, vectorised, for the numeric, bool, timestamp and string kinds; value by
value for shapes and for columns that mix kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ..dtypes import DTYPES, decode_float, decode_value
from ..errors import CorruptionError

if TYPE_CHECKING:
    import pandas as pd
else:

    class _Pandas:
        """pandas, imported at first use: ``import atlas`` stays light (pandas alone adds
        ~30,000 objects that every full garbage collection of the process walks)."""

        def __getattr__(self, name: str) -> Any:
            import pandas

            return getattr(pandas, name)

    pd = _Pandas()

Mask = np.ndarray  # 1-D bool, one entry per live dataset
Values = Sequence[Any] | np.ndarray  # manifest-encoded values, or a typed array of them

#: Ints of at most this magnitude are exact as float64.
EXACT_FLOAT_INT = 2**53
#: No dataset at all (an empty array of row numbers).
NO_ROWS = np.zeros(0, dtype=np.intp)

_NAT = np.iinfo(np.int64).min

#: numpy storage dtype and the filler of null entries, by column kind.
_STORAGE: dict[str, tuple[Any, Any]] = {
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

#: The kinds as error messages name them.
KIND_NAMES = {
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


class Column:
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

    def to_pandas(self, copy: bool = True) -> Any:
        """The pandas array of this column (nullable dtypes; NA/NaT for missing values).
        With ``copy=False`` it is made of the column's own arrays, which the caller then
        gives away: nothing else may hold them."""
        kind = self.kind
        values, mask = (self.values.copy(), self.mask.copy()) if copy else (self.values, self.mask)
        if kind == "int" or kind == "uint":
            return pd.arrays.IntegerArray(values, mask)
        if kind == "float":
            return pd.arrays.FloatingArray(values, mask)
        if kind == "bool":
            return pd.arrays.BooleanArray(values, mask)
        if kind == "timestamp":
            values[mask] = _NAT
            return values.view("datetime64[ns]")
        if kind == "string":
            values[mask] = None
            return pd.array(values, dtype=pd.StringDtype())
        values[mask] = pd.NA
        return values


def scatter(
    n: int, rows: Sequence[int] | np.ndarray, values: np.ndarray, fill: Any, dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Values and null mask of ``n`` rows holding ``values`` at ``rows`` (null elsewhere).
    When ``rows`` are every row in order (every dataset holds the value), the values are
    ``values`` themselves, as ``dtype``: no array of ``n`` is filled and then overwritten."""
    at = np.asarray(rows, dtype=np.intp)
    if len(at) == n and n and _every_row(at):
        out = np.asarray(values, dtype=dtype)
        if out.shape == (n,):
            return out, np.zeros(n, dtype=bool)
    out = np.full(n, fill, dtype=dtype)
    mask = np.ones(n, dtype=bool)
    if len(at):
        out[at] = values
        mask[at] = False
    return out, mask


def _every_row(at: np.ndarray) -> bool:
    """Whether ``at`` (of length n) is 0, 1, ..., n - 1."""
    return int(at[0]) == 0 and int(at[-1]) == len(at) - 1 and bool((at[1:] > at[:-1]).all())


def object_array(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``items`` (tuples stay elements)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def empty_column(n: int, kind: str) -> Column:
    """An all-null column of a kind."""
    dtype, fill = _STORAGE[kind]
    return Column(kind, np.full(n, fill, dtype=dtype), np.ones(n, dtype=bool))


def relocated(column: Column, rows: np.ndarray, n: int) -> Column:
    """The column over ``n`` rows with entry ``i`` moved to row ``rows[i]`` (dropped when -1)."""
    dtype, fill = _STORAGE[column.kind]
    values = np.full(n, fill, dtype=dtype)
    mask = np.ones(n, dtype=bool)
    kept = rows >= 0
    dest = rows[kept]
    values[dest] = column.values[kept]
    mask[dest] = column.mask[kept]
    return Column(column.kind, values, mask)


def merge_columns(a: Column, b: Column) -> Column | None:
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
    return Column(a.kind, values, a.mask & b.mask)


def nan_mask(column: Column) -> Mask:
    """Where the column holds a NaN value."""
    if column.kind == "float":
        return np.isnan(column.values) & ~column.mask
    if column.kind == "object":
        return np.fromiter(
            (
                type(x) is float and math.isnan(x) and not null
                for x, null in zip(column.values.tolist(), column.mask.tolist(), strict=True)
            ),
            dtype=bool,
            count=len(column.values),
        )
    return np.zeros(len(column.values), dtype=bool)


# ---------------------------------------------------------------- typing manifest values


def column_kind(dtype_names: Iterable[str], where: str) -> str:
    """The column kind for values of these dtype names (before looking at the values)."""
    try:
        dtypes = [DTYPES[name] for name in set(dtype_names)]
    except (KeyError, TypeError):
        raise CorruptionError(f"{where}: unknown dtype in metadata") from None
    families = {d.kind for d in dtypes}
    if not families:
        return "null"
    if families <= {"int", "uint"}:
        return "uint" if families == {"uint"} and any(d.name == "uint64" for d in dtypes) else "int"
    if families <= {"int", "uint", "float"}:
        return "float"
    if len(families) == 1:
        return families.pop()
    return "object"


def typed_column(
    n: int,
    rows: Sequence[int] | np.ndarray,
    values: Values,
    dtype_names: Iterable[str],
    value_dtypes: Sequence[str] | Callable[[], Sequence[str]],
    where: str,
) -> Column:
    """One typed column from manifest values of the given dtype names, at ``rows``.

    ``dtype_names`` holds the dtype names of the values (or more); ``value_dtypes`` (or what
    it returns when called) gives one per value and is only needed when the values mix dtype
    families or are malformed. Malformed values raise ``CorruptionError`` naming ``where``.
    """
    kind = column_kind(dtype_names, where)
    if not len(rows):
        return empty_column(n, kind)
    try:
        column = _uniform_column(n, rows, values, kind, dtype_names)
    except (ValueError, TypeError) as e:
        _raise_malformed(values, _listed(value_dtypes), where, e)
    if column is not None:
        return column
    return _exact_values_column(n, rows, values, _listed(value_dtypes), where)


def _listed(value_dtypes: Sequence[str] | Callable[[], Sequence[str]]) -> Sequence[str]:
    return value_dtypes() if callable(value_dtypes) else value_dtypes


def _uniform_column(
    n: int, rows: Sequence[int] | np.ndarray, values: Values, kind: str, dtype_names: Iterable[str]
) -> Column | None:
    """The column of values of one kind, vectorised; None when they need exact Python values
    (mixed families, or ints a float64 cannot hold). Raises ValueError/TypeError when the
    values are malformed."""
    if kind in ("int", "uint", "timestamp", "bool"):
        dtype, fill = _STORAGE[kind]
        try:
            array = np.array(values, dtype=dtype)
        except OverflowError:
            if kind != "int":
                raise
            return None  # uint64 values beyond int64 mixed with signed ints
        if array.ndim != 1:
            raise ValueError("scalars expected")
        return Column(kind, *scatter(n, rows, array, fill, dtype))
    if kind == "float":
        return _float_column(n, rows, values, dtype_names)
    if kind == "string":
        if not set(map(type, values)) <= {str}:
            raise ValueError("strings expected")
        return Column("string", *scatter(n, rows, np.array(values, dtype=object), "", object))
    return None


def _float_column(
    n: int, rows: Sequence[int] | np.ndarray, values: Values, dtype_names: Iterable[str]
) -> Column | None:
    """The float64 column of numbers of the float kind; None when ints among them are too
    large to be exact as floats."""
    numbers: Values = values
    try:
        array = np.array(numbers, dtype=np.float64)
    except (ValueError, TypeError):
        numbers = [decode_float(v) if type(v) is str else v for v in numbers]  # NaN/inf spelled out
        array = np.array(numbers, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("numbers expected")
    float_only = all(name in ("float32", "float64") for name in set(dtype_names))
    if isinstance(numbers, np.ndarray):  # stored fields: floats, or ints checked at once
        exact = numbers.dtype.kind == "f" or bool((np.abs(numbers) <= EXACT_FLOAT_INT).all())
        return Column("float", *scatter(n, rows, array, 0.0, np.float64)) if exact else None
    if float_only or set(map(type, numbers)) <= {float} or all(
        type(v) is float or abs(v) <= EXACT_FLOAT_INT for v in numbers
    ):
        return Column("float", *scatter(n, rows, array, 0.0, np.float64))
    return None


def _exact_values_column(
    n: int, rows: Sequence[int] | np.ndarray, values: Values, value_dtypes: Sequence[str], where: str
) -> Column:
    """An ``object`` column of the exact Python value of each manifest value."""
    decoded = []
    for dtype_name, value in zip(value_dtypes, values, strict=True):
        try:
            decoded.append(decode_value(dtype_name, value))
        except ValueError as e:
            raise CorruptionError(f"{where}: {e}") from None
    return Column("object", *scatter(n, rows, object_array(decoded), None, object))


def _raise_malformed(values: Values, value_dtypes: Sequence[str], where: str, err: Exception) -> NoReturn:
    """Raise the ``CorruptionError`` explaining why values could not be typed."""
    for dtype_name, value in zip(value_dtypes, values, strict=True):
        try:
            decode_value(dtype_name, value)
        except ValueError as e:
            raise CorruptionError(f"{where}: {e}") from None
    raise CorruptionError(f"{where}: values are malformed: {err}") from None
