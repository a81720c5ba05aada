"""``atlas.integrations.cf_values``: attribute values packed with their numpy type, through
JSON and back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atlas.integrations.cf_values import pack, unpack


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        "text",
        3,
        2.5,
        np.int16(-999),
        np.uint8(255),
        np.float32(0.1),
        np.float64("nan"),
        np.bytes_(b"\xff\x00"),
        b"raw",
        np.array([1, 2, 3], dtype=">i4"),
        np.array([0.5, np.inf], dtype="f4"),
        [1, "a", np.int8(2)],
    ],
)
def test_pack_keeps_the_type_through_json(value: object) -> None:
    back = unpack(json.loads(json.dumps(pack(value), allow_nan=False)))
    if isinstance(value, np.ndarray):
        assert isinstance(back, np.ndarray) and back.dtype == value.dtype
        assert np.array_equal(back, value)
    elif isinstance(value, np.floating) and math.isnan(value):
        assert type(back) is type(value) and math.isnan(back)
    elif isinstance(value, list):
        assert back == [1, "a", np.int8(2)] and type(back[2]) is np.int8
    else:
        assert back == value and (type(back) is type(value) or isinstance(value, bytes))


def test_pack_of_other_values_goes_through_json() -> None:
    assert unpack(pack({"a": 1})) == {"a": 1}
    assert pack(float("inf")) == {"f": "inf"}
