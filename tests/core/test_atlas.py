"""The store handle: creating and opening stores."""

from __future__ import annotations

from pathlib import Path

import pytest

import atlas


def test_create_finishes_an_interrupted_create(tmp_path: Path) -> None:
    from atlas.format.manifest import CONFIG_KEY, encode_config

    path = tmp_path / "s"
    path.mkdir()
    (path / CONFIG_KEY).write_bytes(encode_config("zstd", "json", "none"))  # no version 0
    with pytest.raises(atlas.StoreNotFoundError):
        atlas.Atlas.open(path)
    store = atlas.Atlas.create(path, codec="lz4")
    assert store.codec == "lz4"
    assert atlas.Atlas.open(path).list_datasets() == []
    with pytest.raises(FileExistsError):
        atlas.Atlas.create(path)

