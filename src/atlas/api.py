"""``atlas.Atlas``: the public handle on a store.

Everything a store does lives in the core (:class:`atlas.core.atlas.Store`); the
catalogue and the xarray conversions live in their own layers above it. This facade adds
their methods to the handle, each delegating in one line, so that the core never imports
what is built on it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import catalog as _catalog
from .core.atlas import Store
from .integrations import xarray as _xarray

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from .core.dataset import DatasetView

__all__ = ["Atlas"]


class Atlas(Store):
    """A store of many datasets laid out variable-first.

    Mutations are buffered in memory and persisted atomically by :meth:`flush`.
    """

    # ------------------------------------------------------------------ catalogue

    def catalog(
        self,
        arrays: Iterable[str] | None = None,
        attributes: Iterable[str] | None = None,
        array_attributes: bool = False,
    ) -> pd.DataFrame:
        """A table of the live datasets (attributes and array statistics); see :func:`atlas.catalog.catalog`."""
        return _catalog.catalog(self, arrays, attributes, array_attributes)

    def find(self, where: str | None = None, **equals: Any) -> list[str]:
        """Names of the live datasets matching a predicate; see :func:`atlas.catalog.find`."""
        return _catalog.find(self, where, **equals)

    # ------------------------------------------------------------------ xarray

    def add_xarray_dataset(
        self,
        ds: xr.Dataset,
        name: str,
        chunks: Mapping[Hashable, Sequence[int]] | None = None,
        fill_value: Any = None,
        encoding: Mapping[Hashable, Mapping[str, Any]] | None = None,
    ) -> DatasetView:
        """Store an ``xarray.Dataset`` as the new dataset ``name`` and return its view;
        see :func:`atlas.integrations.xarray.add_xarray_dataset`."""
        return _xarray.add_xarray_dataset(self, ds, name, chunks, fill_value, encoding)

    def open_as_xarray_dataset(self, name: str, **kwargs: Any) -> xr.Dataset:
        """Open dataset ``name`` as an ``xarray.Dataset`` (lazy, CF-decoded, xarray's decode
        options in ``kwargs``); see :func:`atlas.integrations.xarray_backend.open_as_xarray_dataset`."""
        from .integrations.xarray_backend import open_as_xarray_dataset  # imports xarray

        return open_as_xarray_dataset(self, name, **kwargs)

    def open_as_many_xarray_dataset(
        self, names: Sequence[str], concat_dim: str = "dataset", parallel: bool = True
    ) -> xr.Dataset:
        """Stack many datasets into one ``xarray.Dataset`` along ``concat_dim``;
        see :func:`atlas.integrations.xarray.open_as_many_xarray_dataset`."""
        return _xarray.open_as_many_xarray_dataset(self, names, concat_dim, parallel)

    # the older names, kept as aliases
    add_xr_dataset = add_xarray_dataset
    to_xarray = open_as_xarray_dataset
    to_xarray_many = open_as_many_xarray_dataset


# the full documentation of each delegating method is its function's
for _method, _function in (
    (Atlas.catalog, _catalog.catalog),
    (Atlas.find, _catalog.find),
    (Atlas.add_xarray_dataset, _xarray.add_xarray_dataset),
    (Atlas.open_as_many_xarray_dataset, _xarray.open_as_many_xarray_dataset),
):
    _method.__doc__ = _function.__doc__
