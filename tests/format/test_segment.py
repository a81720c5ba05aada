"""Segment writing: chunks packed into blocks of one element kind, compressed, and written
as segment files that the index rows point into."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from store_helpers import write_profiles

import atlas
from atlas.format import segment
from atlas.format.codec import CODEC_NAMES, DECIMAL, checksum, decode_block
from atlas.format.segment import SEGMENT_MAGIC, ChunkPayload, new_key, write_segments


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



def _payload(aid: int, values: np.ndarray) -> ChunkPayload:
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
    return ChunkPayload(
        aid=aid, chunk=0, itemsize=values.dtype.itemsize, raw=raw, ncells=values.size, nulls=1,
        vmin=-aid, vmax=aid, has_minmax=1, is_float=values.dtype.kind == "f",
    )


def _chunks_read_back(files: dict[str, bytes], keys: list[str], rows: np.ndarray) -> list[bytes]:
    """Each row's chunk, cut out of its block decoded from the segment files."""
    out = []
    for r in rows:
        data = files[keys[int(r["seg"])]]
        stored = data[int(r["offset"]) : int(r["offset"]) + int(r["length"])]
        assert checksum(stored) == int(r["crc"])
        block = decode_block(stored, CODEC_NAMES[int(r["codec"])], int(r["filter"]), int(r["raw_size"]))
        out.append(block[int(r["within"]) : int(r["within"]) + int(r["nbytes"])].tobytes())
    return out


@pytest.mark.parametrize("codec", ["zstd", "lz4", "none"])
def test_chunks_written_to_segments_read_back_from_their_rows(codec: str) -> None:
    rng = np.random.default_rng(0)
    payloads = [
        _payload(1, np.round(rng.normal(size=300), 2)),  # float64 decimals
        _payload(2, rng.integers(0, 5, size=1000).astype(np.int32)),
        _payload(3, np.round(rng.normal(size=50), 2)),
        _payload(4, np.arange(7, dtype=np.uint8)),
        _payload(5, np.zeros(0, dtype=np.float32)),
    ]
    files: dict[str, bytes] = {}
    rows, segments = write_segments(files.__setitem__, 9, payloads, codec, first_seg=2)
    assert [k for k, _ in segments] == list(files)
    assert all(re.fullmatch(r"data/v9-[0-9a-f]{20}\.seg", k) for k in files)
    assert all(data.startswith(SEGMENT_MAGIC) and len(data) == n for (k, n), data in zip(segments, files.values(), strict=True))
    assert rows["aid"].tolist() == [1, 2, 3, 4, 5]  # rows in payload order
    assert set(rows["seg"].tolist()) == {2}  # numbered from first_seg
    assert rows["vmin"].tolist() == [-1, -2, -3, -4, -5] and rows["nulls"].tolist() == [1] * 5
    assert rows["ncells"].tolist() == [300, 1000, 50, 7, 0]
    keys = [""] * 2 + [k for k, _ in segments]
    assert _chunks_read_back(files, keys, rows) == [p.raw.tobytes() for p in payloads]
    # the two float64 chunks share a block; int32 and uint8 have blocks of their own
    block_of = {int(r["aid"]): (int(r["seg"]), int(r["offset"])) for r in rows}
    assert block_of[1] == block_of[3] and len({block_of[1], block_of[2], block_of[4]}) == 3
    if codec == "none":
        assert set(rows["filter"].tolist()) == {1} and (rows["length"] == rows["raw_size"]).all()
    else:
        assert rows["filter"][0] == DECIMAL | 8  # rounded decimals: the decimal filter wins


def test_segments_are_cut_at_the_target_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment, "BLOCK_TARGET", 1000)
    monkeypatch.setattr(segment, "SEGMENT_TARGET", 2500)
    rng = np.random.default_rng(1)
    payloads = [_payload(i, rng.random(125)) for i in range(12)]  # 1000 incompressible bytes each
    files: dict[str, bytes] = {}
    rows, segments = write_segments(files.__setitem__, 1, payloads, "zstd", first_seg=0)
    assert len(segments) >= 4
    assert all(n <= 2500 or (rows["seg"] == i).sum() == 1 for i, (_, n) in enumerate(segments))
    assert rows["seg"].tolist() == sorted(rows["seg"].tolist())
    assert set(rows["seg"].tolist()) == set(range(len(segments)))
    keys = [k for k, _ in segments]
    assert _chunks_read_back(files, keys, rows) == [p.raw.tobytes() for p in payloads]


def test_nothing_to_write_writes_nothing() -> None:
    files: dict[str, bytes] = {}
    rows, segments = write_segments(files.__setitem__, 1, [], "zstd", first_seg=0)
    assert len(rows) == 0 and segments == [] and files == {}


def test_new_keys_are_never_reused() -> None:
    keys = {new_key("index", 12, "idx") for _ in range(1000)}
    assert len(keys) == 1000
    assert all(re.fullmatch(r"index/v12-[0-9a-f]{20}\.idx", k) for k in keys)
