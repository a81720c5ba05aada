"""xarray backend engine: ``xr.open_dataset("argo.atlas", engine="atlas", group="profile_0001")``.

Registered under the ``xarray.backends`` entry point as ``atlas``. One Atlas dataset
(the ``group``) opens as one ``xarray.Dataset``, decoded as xarray decodes a netCDF file:
the on-disk variables of its CF record (:mod:`atlas.integrations.cf`) go through xarray's
own store backend with the decode options given (``decode_cf``, ``mask_and_scale``,
``decode_times``, ``decode_timedelta``, ``use_cftime``, ``concat_characters``,
``decode_coords``, ``drop_variables``), so ``.encoding`` is what xarray's netCDF4 backend
gives. ``group="FILE/GROUP/PATH"`` opens the dataset of that group of an ingested NetCDF-4
file (see :mod:`atlas.integrations.groups`), as ``xr.open_dataset(file, group="GROUP/PATH")``
opens the group. ``Atlas.open_as_xarray_dataset`` is this same path, through its handle. Every
variable is lazy: nothing is read until it is indexed or loaded (but the single cells
xarray's decoding looks at). With ``chunks={}`` xarray builds dask arrays whose chunks
mirror the stored chunk grid. Datasets without a CF record open in the 0.10 layout.

Backend arrays pickle as (store location, version, dataset, array): a worker that
unpickles one reopens that exact committed version of the store, so results are the same
on every process of a ``dask.distributed`` cluster.

With ``chunks=``, xarray names the dask arrays from the path, the directory's modification
time and the arguments. Every commit touches the store directory of a local store, so opens
before and after a commit get different names; on object storage, pass ``version=`` when
mixing versions in one computation (the backend arrays' own token includes the version).

Importing this module (which xarray does when it loads its engines) also registers the
``ds.atlas`` accessor.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.backends.common import AbstractDataStore
from xarray.coding.strings import create_vlen_dtype
from xarray.core import indexing

from ..dtypes import DTYPES
from .cf import DECODE_OPTIONS
from .cf_read import decoded_layout, encode_window
from .conventions import assemble_dataset, split_attributes
from .groups import resolve
from .lazy import DatasetArray
from .xarray import register_accessor

if TYPE_CHECKING:
    import xarray as xr

    from ..core.atlas import Store as Atlas

__all__ = ["AtlasBackendArray", "AtlasBackendEntrypoint", "EncodedArray", "StoreRef", "open_store_dataset"]

_CONFIG_FILE = "atlas.json"
_SHOWN_NAMES = 5


class AtlasBackendArray(DatasetArray, BackendArray):
    """Lazily indexed view of one array of one dataset in a committed store version.

    Built with the handle that opened the dataset; pickled, it reopens the version by
    location (see :class:`atlas.pinned.PinnedArray`).
    """

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self.read
        )

    async def async_getitem(self, key: indexing.ExplicitIndexer) -> Any:
        """``self[key]`` read in a worker thread (xarray's ``load_async``)."""
        return await asyncio.to_thread(self.__getitem__, key)

    def __getstate__(self) -> dict[str, Any]:
        store = self._store
        if store is not None and getattr(store, "_changed", False):
            # what a worker reopens is the committed version: buffered writes would be lost
            raise RuntimeError("flush() before pickling arrays of an Atlas handle with buffered changes")
        return super().__getstate__()

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        # the pinned version makes the token change whenever the data can differ
        return (
            type(self).__name__, self.location, self.version, self.dataset, self._array_name,
            self.shape, str(self.dtype),
        )


#: A date or duration array of at most this many bytes is read and re-encoded whole at its
#: first read, and kept so: xarray reads its first and last values when it opens a dataset,
#: then the whole array when it loads it, and re-encoding dates costs about a millisecond a
#: call whatever their number.
WHOLE_READ_BYTES = 64 << 10


class EncodedArray(BackendArray):
    """An array stored decoded, seen as xarray's netCDF4 backend would see it on disk:
    each window read is re-encoded (:func:`atlas.integrations.cf_read.encode_window`), then
    xarray decodes it with the options the caller gave. A small array of dates is
    re-encoded whole, once (re-encoding is elementwise: a window of the whole is the window
    re-encoded)."""

    def __init__(self, source: AtlasBackendArray, spec: dict[str, Any]) -> None:
        self.array = source  # ``array``: what xarray's wrappers call the array they wrap
        self.spec = {k: v for k, v in spec.items() if k != "meta"}
        self.nchar = spec.get("nchar")
        shape = tuple(source.shape) + ((int(self.nchar),) if self.nchar else ())
        self.shape = shape
        disk = spec["dtype"]
        self.dtype = create_vlen_dtype(str) if disk == "str" else np.dtype(disk)
        stored = np.dtype(source.dtype)
        self._small = stored.kind in "mM" and math.prod(source.shape) * stored.itemsize <= WHOLE_READ_BYTES
        self._whole: np.ndarray | None = None

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    async def async_getitem(self, key: indexing.ExplicitIndexer) -> Any:
        """``self[key]`` read in a worker thread (xarray's ``load_async``)."""
        return await asyncio.to_thread(self.__getitem__, key)

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (len(self.shape) - len(key))
        if self._small:
            whole = self._whole
            if whole is None:
                try:
                    whole = self._whole = self._encoded((slice(None),) * len(self.shape))
                except Exception:  # the window alone may encode (xarray refuses some dates)
                    self._small = False
                    return self._encoded(key)
            return np.array(whole[key])  # the caller's own: decoders may change it in place
        return self._encoded(key)

    def _encoded(self, key: tuple[Any, ...]) -> np.ndarray:
        """The window ``key`` (one entry per dimension) read and re-encoded."""
        main, last = (key[:-1], key[-1]) if self.nchar else (key, None)
        window = self.array.read(main)
        if not isinstance(window, np.ndarray):
            window = np.array(window, dtype=self.array.dtype)
        dims = tuple(f"dim_{i}" for i in range(window.ndim))
        out = encode_window(self.spec, dims, window)
        return out if last is None else out[..., last]

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (type(self).__name__, self.array.__dask_tokenize__(), self.shape, str(self.dtype))


class _Variables(AbstractDataStore):
    """The on-disk view of one dataset, handed to xarray's own CF decoding."""

    def __init__(self, variables: dict[str, Any], attrs: dict[str, Any], encoding: dict[str, Any]) -> None:
        self._variables = variables
        self._attrs = attrs
        self._encoding = encoding

    def load(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self._variables, self._attrs

    def get_encoding(self) -> dict[str, Any]:
        return self._encoding

    def close(self) -> None:
        pass


class StoreRef:
    """An open handle passed to ``xr.open_dataset`` (what ``open_as_xarray_dataset`` does),
    so the dataset is read through it (unflushed writes included)."""

    def __init__(self, store: Atlas) -> None:
        self.store = store

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        s = self.store
        return ("atlas-handle", s.location, s.version, id(s) if getattr(s, "_changed", True) else None)


def _names(value: str | Iterable[str] | None) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return set(value)


def _chunk_encoding(meta: Mapping[str, Any], extra_dim: tuple[str, int] | None = None) -> dict[str, Any]:
    dims = list(meta["dimension_names"])
    chunks = list(meta["chunk_shape"])
    if extra_dim is not None:
        dims.append(extra_dim[0])
        chunks.append(extra_dim[1])
    return {"chunks": tuple(chunks), "preferred_chunks": dict(zip(dims, chunks, strict=True))}


def open_store_dataset(
    store: Atlas,
    group: str,
    options: Mapping[str, Any] | None = None,
    drop_variables: str | Iterable[str] | None = None,
    **decoders: Any,
) -> xr.Dataset:
    """Dataset ``group`` of an open handle as ``xr.open_dataset(..., engine="atlas")`` gives
    it, decoded with xarray's own CF decoding and the decode options in ``decoders``."""
    import xarray as xr
    from xarray.backends.store import StoreBackendEntrypoint

    unknown = set(decoders) - set(DECODE_OPTIONS)
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {sorted(unknown)}; the atlas engine takes "
            f"{', '.join(DECODE_OPTIONS)} (and decode_cf, chunks, cache through xr.open_dataset)"
        )
    group = resolve(store, group)  # FILE/GROUP/PATH: a group of a NetCDF-4 file
    view = store.open_dataset(group)  # KeyError when missing
    location = store.location
    pinned = store.version
    opts = dict(options) if options else {}
    layout = decoded_layout(view)
    if layout is None:
        return _open_plain(store, view, group, opts, drop_variables)
    specs, ds_spec = layout
    variables: dict[str, Any] = {}
    for a, spec in specs.items():
        meta = spec["meta"]
        shape = tuple(meta["shape"])
        dtype = DTYPES[meta["dtype"]].read_dtype
        stored = AtlasBackendArray(location, pinned, group, a, shape, dtype, opts, store)
        data: Any = stored
        extra = None
        if spec["form"] == "decoded":
            data = EncodedArray(stored, spec)
            if spec.get("nchar"):
                extra = (spec["dims"][-1], int(spec["nchar"]))
        dims = tuple(spec["dims"]) if spec["form"] != "plain" else tuple(meta["dimension_names"])
        variables[None if spec.get("none") else a] = xr.Variable(  # type: ignore[index]
            dims, indexing.LazilyIndexedArray(data), spec["merged"], _chunk_encoding(meta, extra)
        )
    encoding = dict(ds_spec["encoding"])
    if "unlimited_dims" in encoding:
        encoding["unlimited_dims"] = set(encoding["unlimited_dims"])
    datastore = _Variables(variables, ds_spec["attrs"], encoding)
    return StoreBackendEntrypoint().open_dataset(datastore, drop_variables=drop_variables, **decoders)


def _open_plain(
    store: Atlas, view: Any, group: str, opts: dict[str, Any], drop_variables: str | Iterable[str] | None
) -> xr.Dataset:
    """A dataset without a CF record (written before it existed, or through the core API):
    the 0.10 layout, nothing to decode."""
    import xarray as xr

    drop = _names(drop_variables)
    coords, var_attrs, ds_attrs = split_attributes(view)
    variables: dict[str, xr.Variable] = {}
    for a in view.list_arrays():
        if a in drop:
            continue
        meta = view.array_meta(a)
        assert meta is not None
        shape = tuple(meta["shape"])
        dtype = DTYPES[meta["dtype"]].read_dtype
        backend_array = AtlasBackendArray(store.location, store.version, group, a, shape, dtype, opts, store)
        variables[a] = xr.Variable(
            tuple(meta["dimension_names"]), indexing.LazilyIndexedArray(backend_array), var_attrs[a],
            _chunk_encoding(meta),
        )
    return assemble_dataset(variables, coords, ds_attrs)


class AtlasBackendEntrypoint(BackendEntrypoint):
    """Open one dataset of an Atlas store with ``xr.open_dataset(path, engine="atlas", group=name)``."""

    description = "Open one dataset (group) of an Atlas store"
    url = "https://github.com/atlas-python/atlas"
    open_dataset_parameters = (
        "filename_or_obj", "drop_variables", "group", "version", "storage_options", *DECODE_OPTIONS[:-2],
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str] | StoreRef,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        version: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        mask_and_scale: Any = True,
        decode_times: Any = True,
        concat_characters: Any = True,
        decode_coords: Any = True,
        use_cftime: Any = None,
        decode_timedelta: Any = None,
        set_indexes: bool = True,
    ) -> xr.Dataset:
        """Open dataset ``group`` of the store at ``filename_or_obj`` (``version``: an old one),
        decoded as xarray decodes a netCDF file, with the same decode options."""
        from ..core.atlas import Store as Atlas

        decoders = dict(
            mask_and_scale=mask_and_scale, decode_times=decode_times, concat_characters=concat_characters,
            decode_coords=decode_coords, use_cftime=use_cftime, decode_timedelta=decode_timedelta,
            set_indexes=set_indexes,
        )
        if isinstance(filename_or_obj, StoreRef):
            if group is None:
                raise ValueError("group= names the dataset to open")
            return open_store_dataset(filename_or_obj.store, group, None, drop_variables, **decoders)
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            raise TypeError(
                f"the atlas engine opens a store by path or URL, not {type(filename_or_obj).__name__}"
            )
        location = os.fspath(filename_or_obj)
        options = dict(storage_options) if storage_options else {}
        store = Atlas.open(location, version=version, **options)
        if group is None:
            names = store.list_datasets()
            if not names:
                raise ValueError(f"the Atlas store at {location} holds no datasets, so there is nothing to open")
            shown = ", ".join(repr(n) for n in names[:_SHOWN_NAMES])
            more = f", ... ({len(names)} in all)" if len(names) > _SHOWN_NAMES else ""
            raise ValueError(
                f"{location} is an Atlas store of {len(names)} dataset(s); pick one with "
                f"group=<name>, e.g. xr.open_dataset({location!r}, engine='atlas', group={names[0]!r}). "
                f"Datasets: {shown}{more}. Atlas.open(path).list_datasets() lists them all."
            )
        return open_store_dataset(store, group, options, drop_variables, **decoders)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """A directory holding ``atlas.json`` is an Atlas store."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        try:
            return os.path.isfile(os.path.join(os.fspath(filename_or_obj), _CONFIG_FILE))
        except (TypeError, ValueError, OSError):
            return False


register_accessor()


def open_as_xarray_dataset(store: Atlas, name: str, **kwargs: Any) -> xr.Dataset:
    """Open dataset ``name`` as an ``xarray.Dataset``, through this handle.

    The same as ``xr.open_dataset(path, engine="atlas", group=name, **kwargs)`` (lazy,
    decoded by xarray's CF decoding, ``.encoding`` as xarray's netCDF4 backend gives it),
    but read through this handle, so unflushed writes are seen. ``name`` may be
    ``FILE/GROUP/PATH``: the dataset of that group of an ingested NetCDF-4 file, as
    ``xr.open_dataset(file, group="GROUP/PATH")`` names the group. ``kwargs`` are
    ``xr.open_dataset``'s: the decode options (``decode_cf``, ``mask_and_scale``,
    ``decode_times``, ``decode_timedelta``, ``use_cftime``, ``concat_characters``,
    ``decode_coords``, ``drop_variables``), ``chunks`` and ``cache``. Without ``chunks``,
    arrays chunked on disk come back as dask arrays with one task per stored chunk, the
    others lazily indexed.
    """
    import xarray as xr

    register_accessor()
    name = resolve(store, name)
    if not store.dataset_exists(name):
        raise KeyError(f"no dataset named {name!r}")
    chunked = "chunks" in kwargs
    ds = xr.open_dataset(StoreRef(store), engine=AtlasBackendEntrypoint, group=name, **kwargs)  # type: ignore[arg-type]
    if chunked:
        return ds
    for k, var in ds.variables.items():
        chunks = var.encoding.get("preferred_chunks")
        if not chunks or not var.ndim or k in ds.dims:
            continue
        if any(chunks.get(d, n) < n for d, n in zip(var.dims, var.shape, strict=True)):
            ds[k] = var.chunk({d: chunks.get(d, n) for d, n in zip(var.dims, var.shape, strict=True)})
    return ds
