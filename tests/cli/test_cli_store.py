"""``atlas.cli.store``: opening a store, naming a missing dataset, measuring its files."""

from __future__ import annotations

from pathlib import Path

import pytest

import atlas
from atlas.cli.errors import CommandError
from atlas.cli.store import disk_usage, missing_dataset, open_store
from atlas.storage import MemoryStorage


@pytest.fixture
def local(tmp_path: Path) -> atlas.Atlas:
    s = atlas.Atlas.create(tmp_path / "s")
    for name in ("argo:001", "argo:002", "ship"):
        s.create_dataset(name).set_attribute("k", 1)
    s.flush()
    return s


def test_open_store_gives_the_facade(local: atlas.Atlas) -> None:
    s = open_store(local.location)
    assert isinstance(s, atlas.Atlas)
    assert s.list_datasets() == ["argo:001", "argo:002", "ship"]


def test_missing_dataset_suggests_close_names(local: atlas.Atlas) -> None:
    e = missing_dataset(local, "argo:01")
    assert isinstance(e, CommandError)
    assert str(e).startswith(f"no dataset named 'argo:01' in {local.location}; did you mean ")
    assert "'argo:001'" in str(e)
    assert str(missing_dataset(local, "zzzzzz")) == f"no dataset named 'zzzzzz' in {local.location}"


def test_disk_usage_counts_the_store_files(local: atlas.Atlas) -> None:
    usage = disk_usage(local)
    assert usage is not None
    files = [p for p in Path(local.location).rglob("*") if p.is_file()]
    assert usage.files == len(files)
    assert usage.apparent_bytes == sum(p.stat().st_size for p in files)


def test_disk_usage_is_none_where_files_cannot_be_listed() -> None:
    class Unlisted(MemoryStorage):
        def list_details(self, prefix: str):  # type: ignore[no-untyped-def]
            raise NotImplementedError("no listing over plain HTTP")

    s = atlas.Atlas.create(Unlisted())
    assert disk_usage(s) is None
