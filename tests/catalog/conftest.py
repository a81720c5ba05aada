"""Fixtures of the catalogue tests: the store of ``catalog_helpers.build_store``, as raw
manifest records and materialised."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalog_helpers import build_store

import atlas


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("catalog") / "store"
    build_store(p)
    return p


@pytest.fixture(params=["reopened", "touched"])
def store(request: pytest.FixtureRequest, store_path: Path) -> atlas.Atlas:
    """The store as raw manifest records, and with every dataset materialised."""
    s = atlas.Atlas.open(store_path)
    if request.param == "touched":
        for n in s.list_datasets():
            s.open_dataset(n).attributes()
            for arr in s.open_dataset(n).list_arrays():
                s.open_dataset(n).array_stats(arr)
    return s
