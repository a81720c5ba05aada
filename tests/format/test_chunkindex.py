"""The chunk index: rows sorted by (aid, chunk), merged with the newest winning, looked up in
bulk, held by field or as whole rows, and serialised behind a checked header."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.errors import CorruptionError
from atlas.format.chunkindex import (
    COLUMNAR_VERSION,
    DECIMAL_FORMAT_VERSION,
    FORMAT_VERSION,
    HEADER,
    MAGIC,
    ChunkIndex,
    empty_rows,
    index_check,
    merge_rows,
)
from atlas.format.codec import DECIMAL, checksum


def _rows(pairs: list[tuple[int, int]], tag: int = 0) -> np.ndarray:
    """Index rows for (aid, chunk) pairs; ``offset`` tells rows of different origins apart."""
    rows = empty_rows(len(pairs))
    rows["aid"] = [a for a, _ in pairs]
    rows["chunk"] = [c for _, c in pairs]
    rows["codec"] = 1
    rows["filter"] = 1
    rows["offset"] = [tag * 1000 + i * 10 for i in range(len(pairs))]
    rows["length"] = 10
    rows["raw_size"] = 40
    rows["nbytes"] = 40
    return rows


def _reheaded(data: bytes, **fields: int) -> bytes:
    """``data`` with header fields replaced (the payload and its checksum kept)."""
    magic, version, nrows, plen, crc = HEADER.unpack_from(data)
    values = {"magic": magic, "version": version, "nrows": nrows, "plen": plen, "crc": crc, **fields}
    head = HEADER.pack(values["magic"], values["version"], values["nrows"], values["plen"], values["crc"])
    return head + data[HEADER.size :]


def test_rows_round_trip_through_bytes() -> None:
    rows = _rows([(1, 0), (1, 3), (2, 0), (7, 5)])
    rows["vmin"] = [-5, 0, 2**62, -(2**63)]
    rows["crc"] = [1, 2, 3, 2**32 - 1]
    data = ChunkIndex(rows).to_bytes()
    assert data[:8] == MAGIC
    assert HEADER.unpack_from(data)[1:3] == (COLUMNAR_VERSION, 4)
    back = ChunkIndex.from_bytes(data, "idx")
    assert back.rows.tobytes() == rows.tobytes()
    for version in (FORMAT_VERSION, 2, DECIMAL_FORMAT_VERSION):  # whole rows, as older writers wrote them
        old = ChunkIndex(rows).to_bytes(version)
        assert HEADER.unpack_from(old)[1] == version
        assert ChunkIndex.from_bytes(old, "idx").rows.tobytes() == rows.tobytes()
    assert len(back) == 4
    empty = ChunkIndex.from_bytes(ChunkIndex().to_bytes(), "empty")
    assert len(empty) == 0 and empty.find(1, 0) == -1


def test_decimal_rows_need_a_version_that_knows_them() -> None:
    rows = _rows([(1, 0), (2, 0)])
    rows["filter"][1] = DECIMAL | 8
    data = ChunkIndex(rows).to_bytes(DECIMAL_FORMAT_VERSION)
    assert HEADER.unpack_from(data)[1] == DECIMAL_FORMAT_VERSION
    assert ChunkIndex.from_bytes(data, "idx").rows["filter"].tolist() == [1, DECIMAL | 8]
    # an index claiming the first version may not name decimal blocks
    with pytest.raises(CorruptionError, match="names decimal blocks"):
        ChunkIndex.from_bytes(_reheaded(data, version=FORMAT_VERSION), "idx")


def test_damaged_index_files_are_refused() -> None:
    data = ChunkIndex(_rows([(1, 0), (1, 1), (2, 0)])).to_bytes()
    cases = {
        "is truncated": data[: HEADER.size - 1],
        "bad magic": b"ATLASIDY" + data[8:],
        "unsupported version": _reheaded(data, version=99),
        "truncated \\(": data[:-1],
        "fails its checksum": data[:-1] + bytes([data[-1] ^ 1]),
        "impossible": _reheaded(data, nrows=1 << 40),
        "wrong size": _reheaded(data, nrows=2),
    }
    for message, damaged in cases.items():
        with pytest.raises(CorruptionError, match=message):
            ChunkIndex.from_bytes(damaged, "index/v1-x.idx")
    # the place is named
    with pytest.raises(CorruptionError, match="index/v1-x.idx"):
        ChunkIndex.from_bytes(data[:10], "index/v1-x.idx")


def test_unsorted_or_repeated_rows_are_refused() -> None:
    for pairs in ([(2, 0), (1, 0)], [(1, 3), (1, 2)], [(1, 1), (1, 1)]):
        data = ChunkIndex(_rows(pairs)).to_bytes()  # written as given, checksum and all
        with pytest.raises(CorruptionError, match="not sorted"):
            ChunkIndex.from_bytes(data, "idx")


def test_merge_rows_keeps_the_last_part_of_a_repeated_chunk_and_drops_dead_arrays() -> None:
    old = _rows([(1, 0), (1, 1), (2, 0), (3, 0)], tag=1)
    new = _rows([(1, 1), (2, 0), (2, 4)], tag=2)
    merged = merge_rows([old, new])
    assert list(zip(merged["aid"].tolist(), merged["chunk"].tolist(), strict=True)) == [
        (1, 0), (1, 1), (2, 0), (2, 4), (3, 0)
    ]
    assert (merged["offset"] // 1000).tolist() == [1, 2, 2, 2, 1]  # the newer part won
    live = merge_rows([old, new], live_aids=np.array([2, 3], dtype=np.uint64))
    assert live["aid"].tolist() == [2, 2, 3]
    assert len(merge_rows([])) == 0 and len(merge_rows([empty_rows(), empty_rows()])) == 0
    assert len(merge_rows([old], live_aids=np.array([9], dtype=np.uint64))) == 0


def _held(rows: np.ndarray, form: str) -> ChunkIndex:
    """An index of ``rows`` held as whole rows, or by field (as a version-4 file decodes)."""
    if form == "rows":
        return ChunkIndex(rows)
    idx = ChunkIndex.from_bytes(ChunkIndex(rows).to_bytes(), "idx")
    assert idx._rows is None  # held by field until whole rows are asked for
    return idx


@pytest.mark.parametrize("form", ["rows", "fields", "many lookups"])
def test_lookups_by_array_and_chunk(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if form == "many lookups":  # a loop over datasets: a dict and lists serve after the first few
        from atlas.format import chunkindex

        monkeypatch.setattr(chunkindex, "LOOKUPS_BEFORE_LISTS", 1)
    idx = _held(_rows([(1, 0), (1, 2), (1, 5), (4, 0), (9, 7)]), "rows" if form == "rows" else "fields")
    for _ in range(3):
        assert [idx.first_chunk_row(a) for a in (1, 4, 9, 2)] == [0, 3, -1, -1]
        assert idx.location(3)[:2] == (0, 30)
    assert (idx._first is not None and idx._lists is not None) == (form == "many lookups")
    assert idx.span(1) == (0, 3) and idx.span(4) == (3, 4) and idx.span(3) == (3, 3)
    assert [idx.find(1, c) for c in (0, 1, 2, 5, 6)] == [0, -1, 1, 2, -1]
    assert idx.find(9, 7) == 4 and idx.find(9, 0) == -1 and idx.find(2, 0) == -1
    aids = np.array([1, 1, 4, 9, 9, 2], dtype=np.uint64)
    chunks = np.array([5, 3, 0, 7, 1, 0], dtype=np.uint64)
    assert idx.find_many(aids, chunks).tolist() == [2, -1, 3, 4, -1, -1]
    assert idx.first_chunk_row(4) == 3 and idx.first_chunk_row(9) == -1
    seg, offset, length, raw, _, codec, filter_id, within, nbytes = idx.location(1)
    assert (seg, offset, length, raw, codec, filter_id, within, nbytes) == (0, 10, 10, 40, 1, 1, 0, 40)


@pytest.mark.parametrize("form", ["rows", "fields"])
def test_blocks_after_walks_blocks_in_storage_order(form: str) -> None:
    rows = _rows([(1, 0), (2, 0), (3, 0), (4, 0)])
    rows["seg"] = [0, 0, 1, 1]
    rows["offset"] = [8, 8, 8, 500]  # the first two chunks share a block
    idx = _held(rows, form)
    after = idx.blocks_after(0, 8, 5)
    assert [(s, o) for s, o, *_ in after] == [(1, 8), (1, 500)]
    assert [(s, o) for s, o, *_ in idx.blocks_after(1, 8, 1)] == [(1, 500)]
    assert idx.blocks_after(1, 500, 3) == []


def test_an_index_held_by_field_gives_whole_rows_only_where_asked() -> None:
    rows = _rows([(1, 0), (1, 2), (4, 0), (9, 7)])
    rows["vmax"] = [5, -3, 2**62, 0]
    idx = _held(rows, "fields")
    assert idx.column("offset").tolist() == rows["offset"].tolist() and idx.column("aid").flags.c_contiguous
    assert idx.take(np.array([3, 1])).tobytes() == rows[[3, 1]].tobytes()
    assert idx.take(slice(1, 3)).tobytes() == rows[1:3].tobytes()
    assert idx.row(2).tobytes() == rows[2].tobytes()
    assert idx._rows is None  # none of that put every row together
    assert idx.rows.tobytes() == rows.tobytes()


@pytest.mark.parametrize("form", ["rows", "fields"])
def test_appended_rows_join_an_index_and_the_newest_wins(form: str) -> None:
    old = _rows([(1, 0), (1, 1), (2, 0)], tag=1)
    after = _held(old, form).appended(_rows([(3, 0), (5, 2)], tag=2))  # all after: joined field by field
    assert (after._rows is None) == (form == "fields")
    assert after.rows.tobytes() == merge_rows([old, _rows([(3, 0), (5, 2)], tag=2)]).tobytes()
    mixed = _held(old, form).appended(_rows([(1, 1), (4, 0)], tag=2))  # rewrites a chunk: merged
    assert list(zip(mixed.column("aid").tolist(), (mixed.column("offset") // 1000).tolist(), strict=True)) == [
        (1, 1), (1, 2), (2, 1), (4, 2)
    ]
    assert mixed.find(4, 0) == 3 and _held(old, form).appended(empty_rows()).rows.tobytes() == old.tobytes()


def test_validate_refuses_rows_outside_their_segment_or_block() -> None:
    rows = _rows([(1, 0), (1, 1)])
    ChunkIndex(rows).validate([100], "idx")  # offsets 0 and 10, 10 bytes each
    with pytest.raises(CorruptionError, match="names a segment that does not exist"):
        ChunkIndex(rows).validate([], "idx")
    with pytest.raises(CorruptionError, match="1 row"):
        ChunkIndex(rows).validate([15], "idx")  # the second row ends at 20
    bad = rows.copy()
    bad["within"][0] = 1  # 1 + 40 bytes inside a 40-byte block
    with pytest.raises(CorruptionError, match="outside"):
        ChunkIndex(bad).validate([100], "idx")
    bad = rows.copy()
    bad["codec"][0] = 0  # stored uncompressed, yet raw and stored sizes differ
    with pytest.raises(CorruptionError, match="outside"):
        ChunkIndex(bad).validate([100], "idx")
    ChunkIndex(empty_rows()).validate([], "idx")


def test_index_check_is_the_length_and_payload_checksum() -> None:
    a = ChunkIndex(_rows([(1, 0)])).to_bytes()
    b = ChunkIndex(_rows([(2, 0)])).to_bytes()
    assert index_check(a) == (len(a), checksum(a[HEADER.size :]))
    assert len(a) == len(b) and index_check(a) != index_check(b)  # a replaced file is noticed
    assert index_check(b"short") == (5, 0)


def test_rows_by_field_in_groups_round_trip_and_each_group_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from atlas.format import chunkindex

    monkeypatch.setattr(chunkindex, "GROUP_ROWS", 4)
    rows = _rows([(a, c) for a in range(1, 4) for c in range(3)] + [(9, 0)])  # 10 rows: groups of 4, 4, 2
    rows["crc"] = np.arange(10) * 7919
    data = ChunkIndex(rows).to_bytes()
    assert HEADER.unpack_from(data)[1] == COLUMNAR_VERSION
    assert ChunkIndex.from_bytes(data, "idx").rows.tobytes() == rows.tobytes()
    unsorted = rows.copy()
    unsorted[[5, 6]] = unsorted[[6, 5]]  # in the second group
    with pytest.raises(CorruptionError, match="is not sorted"):
        ChunkIndex.from_bytes(ChunkIndex(unsorted).to_bytes(), "idx")
    import zstandard

    # a frame that does not say its size, and stops in the last group
    raw = zstandard.ZstdDecompressor().decompress(data[HEADER.size :])
    short = zstandard.ZstdCompressor(write_content_size=False).compress(raw[:-8])
    with pytest.raises(CorruptionError, match=f"holds {rows.nbytes - 8} bytes, expected {rows.nbytes}"):
        ChunkIndex.from_bytes(HEADER.pack(MAGIC, COLUMNAR_VERSION, 10, len(short), checksum(short)) + short, "idx")
