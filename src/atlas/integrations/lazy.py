"""Lazy reads of one array of one dataset: a window is read when the array is indexed.

:class:`DatasetArray` is what the dask arrays of ``open_as_xarray_dataset``
(:class:`LazyArrayReader`) and the backend arrays of ``engine="atlas"``
(``AtlasBackendArray``) index; :func:`basic_window` turns their index into the one
window to read.
"""

from __future__ import annotations

import operator
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtypes import DTYPES
from ..pinned import PinnedArray, open_pinned

if TYPE_CHECKING:
    from ..core.atlas import Store

__all__ = ["DatasetArray", "LazyArrayReader", "basic_window", "lazy_dask_array"]


def basic_window(
    key: tuple[Any, ...], shape: tuple[int, ...]
) -> tuple[list[int], list[int], tuple[Any, ...]]:
    """Turn a basic index (ints and slices) into ``(start, shape, post-index)``.

    The window ``[start, start + shape)`` is what to read; the post-index applies the
    steps and drops the int-indexed axes.
    """
    if not isinstance(key, tuple):
        key = (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    start: list[int] = []
    count: list[int] = []
    post: list[Any] = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            r = range(*k.indices(n))
            if len(r) == 0:
                start.append(0)
                count.append(0)
                post.append(slice(0, 0))
                continue
            lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
            start.append(lo)
            count.append(hi - lo)
            if r.step == 1:
                post.append(slice(None))
            else:
                first = r[0] - lo
                stop = first + r.step * len(r)
                post.append(slice(first, stop if stop >= 0 else None, r.step))
        else:
            i = operator.index(k)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for an axis of size {n}")
            start.append(i)
            count.append(1)
            post.append(0)
    return start, count, tuple(post)


def _handle_lock(store: Store) -> threading.RLock:
    """The lock serialising reads through one handle from dask threads: the handle's own."""
    return store._lock


class DatasetArray(PinnedArray):
    """One array of one dataset at a pinned store version, read one window at a time."""

    def __init__(
        self,
        location: str,
        version: int,
        dataset: str,
        array: str,
        shape: Sequence[int],
        dtype: np.dtype[Any],
        storage_options: Mapping[str, Any] | None = None,
        store: Store | None = None,
    ) -> None:
        super().__init__(location, version, array, shape, dtype, storage_options, store)
        self.dataset = dataset

    def read(self, key: Any) -> np.ndarray:
        """``array[key]`` for a basic index: one read of the window it spans."""
        start, count, post = basic_window(key, self.shape)
        store = self.handle()
        with _handle_lock(store):
            data = store.open_dataset(self.dataset).read_array(self._array_name, start, count)
        if data is None:
            raise KeyError(f"dataset {self.dataset!r} no longer has an array named {self._array_name!r}")
        return data[post]


class LazyArrayReader(DatasetArray):
    """Reads windows of one array of one dataset, for ``dask.array.from_array``.

    It reads through the ``Atlas`` handle it is given, so buffered (unflushed) data is
    visible in process. It pickles that handle (``Atlas.__reduce__``, which refuses while
    the handle has unflushed changes) with the handle's version then pinned, so the dask
    arrays built on it give the same result on distributed workers.
    """

    def __init__(self, store: Store, dataset: str, array: str, shape: Sequence[int], dtype: np.dtype[Any]) -> None:
        super().__init__(store.location, store.version, dataset, array, shape, dtype, store=store)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.read(key)

    def __repr__(self) -> str:
        return f"<LazyArrayReader {self.dataset!r}/{self._array_name!r} shape={self.shape}>"

    def __reduce__(self) -> tuple[Any, ...]:
        store = self.handle()
        args = (store, store.version, self.dataset, self._array_name, self.shape, self.dtype)
        return (_rebuild_reader, args)


def _rebuild_reader(
    store: Store, version: int, dataset: str, array: str, shape: tuple[int, ...], dtype: np.dtype[Any]
) -> LazyArrayReader:
    if store.version != version:  # the store moved on since pickling: read the pinned version
        store = open_pinned(store.location, version)
    return LazyArrayReader(store, dataset, array, shape, dtype)


def lazy_dask_array(store: Store, dataset: str, array: str, meta: Mapping[str, Any]) -> Any:
    """A dask array with one task per stored chunk of ``array``."""
    import dask.array as da

    shape = tuple(meta["shape"])
    dtype = DTYPES[meta["dtype"]].read_dtype
    reader = LazyArrayReader(store, dataset, array, shape, dtype)
    return da.from_array(
        reader,
        chunks=tuple(meta["chunk_shape"]),
        name=f"atlas-{array}-{uuid.uuid4().hex}",
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * len(shape), dtype=dtype),
        inline_array=False,
    )
