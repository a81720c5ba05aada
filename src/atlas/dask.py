"""Scale-out with dask: one variable across many datasets as one dask array
(:func:`read_across`), and NetCDF files ingested by the workers of a cluster (:func:`ingest`).

``read_across(location, "TEMP")`` returns a dask array of shape
``(len(names), *shape)``, the lazy counterpart of ``Atlas.read_array_across_stacked``.
Its tasks are runs of consecutive datasets (about ``task_bytes`` of output each), and
each task makes one bulk ``read_array_across_stacked`` call on a handle reopened by
location, so a task reads a few large blocks instead of one tiny chunk per dataset, and
the graph stays small for tens of thousands of datasets.

The store version is pinned when the array is built: every task, on any worker process,
reads that same committed version (handles are cached per process), so the result does
not depend on where or when the tasks run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .core.indexing import clip_window
from .core.scan import read_array_across_stacked, stacked_shape
from .dtypes import DTYPES, DType
from .integrations.lazy import basic_window
from .pinned import PinnedArray

if TYPE_CHECKING:
    import dask.array

    from .core.atlas import Store
    from .integrations.netcdf import IngestReport


__all__ = ["ingest", "read_across"]

DEFAULT_TASK_BYTES = 64 << 20
STRING_CELL_BYTES = 64


class _GroupReader(PinnedArray):
    """The source of :func:`read_across` for ``dask.array.from_array``.

    Indexing it with the slices of one task reads those datasets with one bulk call.
    It pickles as plain data (location, version, names, window).
    """

    def __init__(
        self,
        location: str,
        version: int,
        array: str,
        names: list[str],
        start: tuple[int, ...],
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        storage_options: Mapping[str, Any] | None,
        pad: bool = False,
    ) -> None:
        super().__init__(location, version, array, (len(names), *shape), dtype, storage_options)
        self.names = names
        self.start = start
        self.window = shape
        self.pad = pad

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        names = [self.names[i] for i in range(*key[0].indices(len(self.names)))]
        within, count, post = basic_window(key[1:], self.window)
        if not names:
            return np.empty((0, *count), dtype=self.dtype)[(slice(None), *post)]
        start = [a + b for a, b in zip(self.start, within, strict=True)]
        if self.pad:  # every task's slot is the whole array's, whatever its datasets hold
            out = read_array_across_stacked(self.handle(), self._array_name, names, start, count, True, count)
        else:
            out = self.handle().read_array_across_stacked(self._array_name, names, start, count)
        return out[(slice(None), *post)]

    def __repr__(self) -> str:
        return f"<atlas.dask reader {self._array_name!r} x {len(self.names)} datasets @ {self.location}>"


def read_across(
    store_location: str | os.PathLike[str],
    array: str,
    names: Sequence[str] | None = None,
    start: Sequence[int] | None = None,
    shape: Sequence[int] | None = None,
    *,
    task_bytes: int = DEFAULT_TASK_BYTES,
    datasets_per_task: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    pad: bool = False,
) -> dask.array.Array:
    """Lazily read ``array`` from many datasets as one dask array ``(len(names), *shape)``.

    ``names`` defaults to every dataset that declares ``array`` (in store order). The
    window ``start``/``shape`` is clipped like ``read_array``. Each task covers a run of
    consecutive datasets: ``datasets_per_task`` if given, else about ``task_bytes`` of
    output. Errors follow ``read_array_across_stacked`` and are raised here, before any
    data is read: ``ValueError`` for no names or ragged shapes (unless ``pad``),
    ``KeyError`` for a dataset lacking the array, ``TypeError`` for mixed dtypes. With
    ``pad=True`` ragged arrays are padded to the largest shape in every dimension with
    each dataset's fill value, as ``read_array_across_stacked(..., pad=True)`` does.
    """
    import dask.array as da
    from dask.base import tokenize

    from .core.atlas import Store as Atlas

    if isinstance(store_location, Atlas):
        raise TypeError("pass the store's location (Atlas.location), not an open handle")
    location = os.fspath(store_location)
    options = dict(storage_options) if storage_options else {}
    store = Atlas.open(location, **options)
    version = store.version
    chosen = _names(store, location, array, names)
    dt, first_start, common = _common_window(store, array, chosen, start, shape, pad)
    dtype = dt.read_dtype
    sizes = _task_sizes(len(chosen), dt, common, task_bytes, datasets_per_task)
    reader = _GroupReader(location, version, array, chosen, first_start, common, dtype, options, pad)
    token = tokenize(location, version, array, chosen, first_start, common, sizes, pad)
    return da.from_array(
        reader,
        chunks=(sizes, *((c,) for c in common)),
        name=f"atlas-across-{array}-{token}",
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * (1 + len(common)), dtype=dtype),
        inline_array=False,
    )


def _names(store: Store, location: str, array: str, names: Sequence[str] | None) -> list[str]:
    """The datasets to read: those given, or every dataset that declares ``array``."""
    if names is None:
        chosen = [n for n in store.list_datasets() if store.open_dataset(n).array_meta(array) is not None]
        if not chosen:
            raise KeyError(f"no dataset in {location} has an array named {array!r}")
        return chosen
    if isinstance(names, str):
        raise TypeError("names must be a list of dataset names, not a str")
    chosen = list(names)
    if not chosen:
        raise ValueError("names is empty: pass at least one dataset name")
    return chosen


def _common_window(
    store: Store,
    array: str,
    names: list[str],
    start: Sequence[int] | None,
    shape: Sequence[int] | None,
    pad: bool,
) -> tuple[DType, tuple[int, ...], tuple[int, ...]]:
    """``(dtype, start, shape)`` of the window read from every dataset, checked to be the
    same everywhere unless ``pad`` (then the largest in each dimension); the start is the
    first dataset's, as clipped."""
    dtypes: set[str] = set()
    windows: set[tuple[int, ...]] = set()
    first_start: tuple[int, ...] | None = None
    for n in names:
        if not store.dataset_exists(n):
            raise KeyError(f"no dataset named {n!r}")
        meta = store.open_dataset(n).array_meta(array)
        if meta is None:
            raise KeyError(f"dataset {n!r} has no array named {array!r}")
        dtypes.add(meta["dtype"])
        st, stop = clip_window(meta["shape"], start, shape)
        windows.add(tuple(b - a for a, b in zip(st, stop, strict=True)))
        if first_start is None:
            first_start = st
    if len(dtypes) > 1:
        raise TypeError(f"array {array!r} has different dtypes across these datasets: {sorted(dtypes)}")
    assert first_start is not None
    return DTYPES[dtypes.pop()], first_start, stacked_shape(array, sorted(windows), pad)


def _task_sizes(
    total: int, dt: DType, window: tuple[int, ...], task_bytes: int, datasets_per_task: int | None
) -> tuple[int, ...]:
    """How many datasets each task reads: ``datasets_per_task``, else about ``task_bytes``."""
    cells = int(np.prod(window, dtype=np.int64)) if window else 1
    per_dataset = max(1, cells * (STRING_CELL_BYTES if dt.is_string else dt.read_dtype.itemsize))
    if datasets_per_task is not None:
        if datasets_per_task < 1:
            raise ValueError("datasets_per_task must be at least 1")
        group = datasets_per_task
    else:
        group = max(1, task_bytes // per_dataset)
    return tuple(min(group, total - i) for i in range(0, total, group))


def ingest(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    location: str | os.PathLike[str],
    client: Any = None,
    **options: Any,
) -> IngestReport:
    """Ingest NetCDF files into the store at ``location`` on a dask cluster, as
    ``atlas ingest`` does locally (same files, dataset names, provenance attributes,
    encoding, warnings and failure rules; ``update``, ``skip_errors``, ``retry_failed``,
    ``include``, ``exclude``, ``root``, ``codec``, ``chunk_size``, ``progress``...).

    The workers read and write the files: each task opens the store at the version the
    client reads, adds a group of files (``task_files``, default 64), writes their chunks
    straight into the store's location, and returns only its changes (no data), which the
    client applies and commits with ``flush(rebase=True)``. So every worker must reach
    the files by the same paths (a shared file system) and the store's location
    (``storage_options`` say how, as for ``Atlas.open``).

    All or nothing by default: one commit at the end, none if a file failed. With
    ``skip_errors=True`` the client also commits every ``commit_every_files`` files
    (2,000) or ``commit_every_seconds`` (60), and a rerun with ``update=True`` goes on
    from there; the client's memory then stays bounded (all or nothing, it holds every
    dataset of the run until the end: about 90 KiB per Argo profile). A task whose worker died is run again; its earlier attempt's chunks are
    left for ``compact()``.

    ``client`` is a ``distributed.Client``; None takes the current one, or runs a local
    cluster of one process per core for the call. Needs the ``distributed`` package
    (``pip install atlas[distributed]``)."""
    from .integrations.netcdf.cluster import ingest_on_cluster

    distributed = _distributed()
    if client is not None:
        return ingest_on_cluster(sources, location, client, **options)
    try:
        current = distributed.default_client()
    except ValueError:
        current = None
    if current is not None:
        return ingest_on_cluster(sources, location, current, **options)
    from .integrations.netcdf.workers import default_jobs

    with (
        distributed.LocalCluster(
            n_workers=default_jobs(), threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as local,
    ):
        return ingest_on_cluster(sources, location, local, **options)


def _distributed() -> Any:
    """The ``distributed`` package, or an ImportError saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "ingesting on a dask cluster needs the 'distributed' package: "
            "pip install 'atlas[distributed]' (or pip install distributed)"
        ) from exc
    return distributed
