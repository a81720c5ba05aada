"""``DatasetView``: a typed handle on one dataset, delegating to its ``Atlas``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from numpy.typing import NDArray

from ..names import check_key
from . import read, write
from .reader import retry_if_swapped

if TYPE_CHECKING:
    from .model import StoreModel
    from .state import DatasetState


class DatasetView:
    """A handle to a single dataset within an Atlas store.

    Holds no state of its own: every view of a dataset sees the same arrays and
    attributes, and mutations are buffered in the store until ``Atlas.flush()``.
    """

    __slots__ = ("_atlas", "_ds")

    def __init__(self, atlas: StoreModel, state: DatasetState) -> None:
        self._atlas = atlas
        self._ds = state

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self._ds.name

    def __repr__(self) -> str:
        state = " deleted" if self._ds.deleted else ""
        return f"<DatasetView {self._ds.name!r} arrays={len(self._ds.array_names())}{state}>"

    # ---------------------------------------------------------------- arrays

    def define_array(
        self,
        name: str,
        dtype: str,
        dims: Sequence[str],
        shape: Sequence[int],
        chunk_shape: Sequence[int] | None = None,
        fill_value: Any | None = None,
    ) -> None:
        """Declare a new N-dimensional array (``chunk_shape`` defaults to ``shape``, or to
        chunks of a few MiB for an array over 4 MiB)."""
        write.define_array(self._atlas, self._ds, name, dtype, dims, shape, chunk_shape, fill_value)

    def write_array(self, name: str, start: Sequence[int], data: NDArray[Any]) -> None:
        """Write ``data`` (exact dtype, C-contiguous) at offset ``start``."""
        write.write_array(self._atlas, self._ds, name, start, data)

    @retry_if_swapped
    def read_array(
        self, name: str, start: Sequence[int] | None = None, shape: Sequence[int] | None = None
    ) -> NDArray[Any] | None:
        """Read the array or a window of it (clipped like numpy).

        ``None`` if the dataset has no array ``name`` (a misspelt name too, as in the 0.10
        API: check for ``None``, or ``array_meta(name)`` first)."""
        ds = self._ds
        if ds.arrays_untouched:
            return read.read_raw_array(self._atlas, ds, name, start, shape)
        arr = ds.arrays.get(name)
        if arr is None:
            if ds.deleted:
                raise KeyError(f"dataset {ds.name!r} was deleted")
            return None
        return read.read_array(self._atlas, arr, start, shape)

    @retry_if_swapped
    def read_arrays(
        self,
        names: Sequence[str],
        start: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
    ) -> dict[str, NDArray[Any] | None]:
        """Read several arrays with the same window: ``{name: array or None}``."""
        if self._ds.deleted:
            raise KeyError(f"dataset {self._ds.name!r} was deleted")
        ds = self._ds
        out: dict[str, NDArray[Any] | None] = {}
        if ds.arrays_untouched:
            read_raw = functools.partial(read.read_raw_array, self._atlas)
            for n in names:
                out[n] = read_raw(ds, n, start, shape)
            return out
        arrays = ds.arrays
        read_one = functools.partial(read.read_array, self._atlas)
        for n in names:
            arr = arrays.get(n)
            out[n] = None if arr is None else read_one(arr, start, shape)
        return out

    def array_meta(self, name: str) -> dict[str, Any] | None:
        """``{"dtype", "shape", "chunk_shape", "dimension_names"}`` or ``None``."""
        schema = self._ds.schema_of(name, self._atlas._schemas)
        return None if schema is None else schema.meta()

    def array_fill_value(self, name: str) -> Any | None:
        """The fill value given at definition, or ``None``."""
        schema = self._ds.schema_of(name, self._atlas._schemas)
        return None if schema is None else schema.fill

    def array_stats(self, name: str) -> dict[str, Any] | None:
        """``{"row_count", "null_count", "min", "max"}`` as of the last flush, or ``None``."""
        arr = self._ds.arrays.get(name)
        if arr is None or arr.stats is None:
            return None
        st = dict(arr.stats)
        if arr.schema.dtype.is_string:
            for k in ("min", "max"):
                if st[k] is not None:
                    st[k] = st[k].encode("utf-8", "surrogatepass")
        return st

    def delete_array(self, name: str) -> None:
        """Remove the array from this dataset (its data is dropped at the next compaction)."""
        write.delete_array(self._atlas, self._ds, name)

    def list_arrays(self) -> list[str]:
        """Names of the arrays in definition order."""
        return self._ds.array_names()

    # ---------------------------------------------------------------- dataset attributes

    def set_attribute(self, key: str, value: Any, dtype: str | None = None) -> None:
        """Set a typed attribute (kind inferred, or forced with ``dtype``)."""
        self._atlas._check_live(self._ds)
        write.set_attribute(self._atlas, self._ds.name, self._ds.attrs, key, value, dtype)

    def get_attribute(self, key: str) -> Any:
        """The attribute's value, or ``None`` when unset."""
        check_key(key)
        kv = self._ds.attrs.get(key)
        return None if kv is None else kv[1]

    def attributes(self) -> dict[str, Any]:
        """A fresh dict of all attributes in insertion order."""
        return self._ds.attr_values()

    def attribute_dtypes(self) -> dict[str, str]:
        """The stored kind (dtype name) of each attribute."""
        return {k: kind for k, (kind, _) in self._ds.attrs.items()}

    # ---------------------------------------------------------------- array attributes

    def set_array_attribute(self, array: str, key: str, value: Any, dtype: str | None = None) -> None:
        """Set a typed attribute on one array (same typing rules as dataset attributes)."""
        self._atlas._check_live(self._ds)
        arr = self._atlas._array(self._ds, array)
        write.set_attribute(self._atlas, self._ds.name, arr.attrs, key, value, dtype)

    def get_array_attribute(self, array: str, key: str) -> Any:
        """An array attribute's value, or ``None`` when unset (``KeyError`` for a missing array)."""
        check_key(key)
        kv = self._atlas._array(self._ds, array).attrs.get(key)
        return None if kv is None else kv[1]

    def array_attributes(self, array: str) -> dict[str, Any]:
        """A fresh dict of one array's attributes (``KeyError`` for a missing array)."""
        return {k: v for k, (_, v) in self._atlas._array(self._ds, array).attrs.items()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetView) and other._ds is self._ds

    def __hash__(self) -> int:
        return hash(id(self._ds))


__all__ = ["DatasetView"]
