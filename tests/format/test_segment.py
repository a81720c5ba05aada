"""Segment writing: small chunks packed into shared blocks."""

from __future__ import annotations

from pathlib import Path

from store_helpers import write_profiles

import atlas


def test_small_chunks_of_many_datasets_share_blocks(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 500)
    store.flush()
    var = store._variables["temperature"]
    rows = store._index(var).rows
    blocks = {(int(r["seg"]), int(r["offset"])) for r in rows}
    assert len(rows) == 500
    assert len(blocks) <= 5  # 500 x 800 B packed into ~256 KiB blocks
    assert rows["raw_size"].max() <= 512 * 1024
    assert len(var.segments) == 1

