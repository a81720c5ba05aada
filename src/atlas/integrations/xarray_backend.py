"""xarray backend engine: ``xr.open_dataset("argo.atlas", engine="atlas", group="profile_0001")``.

Registered under the ``xarray.backends`` entry point as ``atlas``. One Atlas dataset
(the ``group``) opens as one ``xarray.Dataset`` laid out exactly like
``Atlas.open_as_xarray_dataset`` (same coordinates, attributes and ``_FillValue``), but
every variable is lazy: nothing is read until it is indexed or loaded. With
``chunks={}`` xarray builds dask arrays whose chunks mirror the stored chunk grid.

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

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from ..dtypes import DTYPES
from .conventions import assemble_dataset, split_attributes
from .lazy import DatasetArray
from .xarray import register_accessor

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["AtlasBackendArray", "AtlasBackendEntrypoint"]

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

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        # the pinned version makes the token change whenever the data can differ
        return (
            type(self).__name__, self.location, self.version, self.dataset, self._array_name,
            self.shape, str(self.dtype),
        )


def _names(value: str | Iterable[str] | None) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return set(value)


class AtlasBackendEntrypoint(BackendEntrypoint):
    """Open one dataset of an Atlas store with ``xr.open_dataset(path, engine="atlas", group=name)``."""

    description = "Open one dataset (group) of an Atlas store"
    url = "https://github.com/atlas-python/atlas"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group", "version", "storage_options")

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str],
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        version: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> xr.Dataset:
        """Open dataset ``group`` of the store at ``filename_or_obj`` (``version``: an old one)."""
        import xarray as xr

        from ..core.atlas import Store as Atlas

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
        view = store.open_dataset(group)  # KeyError when missing
        pinned = store.version
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
            backend_array = AtlasBackendArray(location, pinned, group, a, shape, dtype, options, store)
            dims = tuple(meta["dimension_names"])
            encoding = {
                "chunks": tuple(meta["chunk_shape"]),
                "preferred_chunks": dict(zip(dims, meta["chunk_shape"], strict=True)),
            }
            variables[a] = xr.Variable(
                dims, indexing.LazilyIndexedArray(backend_array), var_attrs[a], encoding
            )
        return assemble_dataset(variables, coords, ds_attrs)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """A directory holding ``atlas.json`` is an Atlas store."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        try:
            return os.path.isfile(os.path.join(os.fspath(filename_or_obj), _CONFIG_FILE))
        except (TypeError, ValueError, OSError):
            return False


register_accessor()
