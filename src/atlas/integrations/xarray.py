"""xarray integration: the ``Atlas`` methods that read and write ``xarray.Dataset``."""

from __future__ import annotations


class XarrayMethods:
    """Mixed into ``Atlas``: xarray ingest and export."""
