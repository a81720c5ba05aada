"""``atlas.storage.usage``: the room a store takes, as ``du`` counts it on local disk and
as object sizes elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import atlas
from atlas.storage import LocalStorage, MemoryStorage
from atlas.storage.usage import DiskUsage, disk_usage
from atlas.storage.wrappers import CountingStorage


def test_object_sizes_elsewhere() -> None:
    s = MemoryStorage()
    s.put("a", b"12345")
    s.put("d/b", b"678")
    assert disk_usage(s) == DiskUsage(files=2, apparent_bytes=8, allocated_bytes=8)


def test_local_disk_as_du_counts_it(tmp_path: Path) -> None:
    root = tmp_path / "s"
    s = LocalStorage(root, create=True)
    s.put("a", b"x" * 5000)
    s.put("d/b", b"y" * 10)
    os.link(root / "a", root / "d" / "hardlink")  # counted once, as du does
    usage = disk_usage(CountingStorage(s))  # wrappers are looked through
    assert usage.files == 2 and usage.apparent_bytes == 5010  # the link is not counted again
    blocks = sum(os.lstat(p).st_blocks for p in (root, root / "d", root / "a", root / "d" / "b")) * 512
    assert usage.allocated_bytes == blocks


def test_a_whole_store(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    store.create_dataset("d").set_attribute("k", 1)
    store.flush()
    usage = disk_usage(store.storage)
    files = [p for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert usage.files == len(files) > 0
    assert usage.apparent_bytes == sum(p.stat().st_size for p in files)
