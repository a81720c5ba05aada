"""Block codecs: large blocks encoded and decoded piece by piece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.format import codec, segment


@pytest.mark.parametrize("codec_name", ["zstd", "none", "lz4"])
def test_large_blocks_encoded_in_pieces_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec_name: str) -> None:
    # make every block "large", with odd piece sizes, so the piecewise paths do all the work
    monkeypatch.setattr(codec, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(segment, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(codec, "_PIECE_BYTES", 1000)
    rng = np.random.default_rng(7)
    smooth = np.cumsum(rng.normal(size=50_001)).astype(np.float64)  # byte-shuffle wins on this
    store = atlas.Atlas.create(tmp_path / "s", codec=codec_name)
    ds = store.create_dataset("d")
    ds.define_array("x", "float64", ["t"], [smooth.size], chunk_shape=[smooth.size])
    ds.define_array("y", "int16", ["a", "b"], [301, 77], chunk_shape=[100, 77])
    ys = rng.integers(-500, 500, size=(301, 77)).astype(np.int16)
    ds.write_array("x", [0], smooth)
    ds.write_array("y", [0, 0], ys)
    store.flush()
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("d")
    np.testing.assert_array_equal(view.read_array("x"), smooth)
    np.testing.assert_array_equal(view.read_array("y"), ys)
    assert atlas.Atlas.open(tmp_path / "s").verify() == []


def test_block_decoded_in_pieces_refuses_wrong_sizes() -> None:
    raw = np.arange(40_000, dtype=np.float32).view(np.uint8)
    for filter_id in (1, 4):
        stored, _ = codec.encode_large(raw, "zstd", filter_id)
        data = bytes(stored)
        np.testing.assert_array_equal(codec._decode_large(data, filter_id, raw.size), raw)
        for wrong in (raw.size - 4, raw.size + 4):
            with pytest.raises(ValueError):
                codec._decode_large(data, filter_id, wrong)

