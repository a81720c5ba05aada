"""The dtype named with ``set_attribute(..., dtype=)``: an unsupported one is a ValueError, as
the API says of attributes, while ``define_array`` keeps NotImplementedError for binary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas


@pytest.mark.parametrize("dtype", ["binary", "bytes", "BINARY", "no-such-dtype"])
def test_an_unsupported_attribute_dtype_is_a_value_error(tmp_path: Path, dtype: str) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.set_attribute("k", "old")
    with pytest.raises(ValueError, match="dtype"):
        ds.set_attribute("k", b"raw", dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        ds.define_array("x", "float32", ["n"], [2])
        ds.set_array_attribute("x", "k", "v", dtype=dtype)
    assert ds.get_attribute("k") == "old"


def test_a_binary_array_is_still_not_implemented(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    with pytest.raises(NotImplementedError):
        ds.define_array("b", "binary", ["n"], [2])
    ds.define_array("ok", "uint8", ["n"], [2])
    ds.write_array("ok", [0], np.array([1, 2], dtype=np.uint8))
