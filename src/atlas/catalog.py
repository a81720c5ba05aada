"""The catalogue: find datasets by attributes and statistics without reading their data."""

from __future__ import annotations


class CatalogMethods:
    """Mixed into ``Atlas``: catalogue and search."""
