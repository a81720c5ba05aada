"""``atlas.cli.output``: sizes, durations, counted words and JSON as the commands print them."""

from __future__ import annotations

import io
import json
import math

import numpy as np

from atlas.cli.output import format_bytes, format_seconds, plural, print_json


def test_format_bytes() -> None:
    assert format_bytes(None) == "?"
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1024) == "1.0 KiB"
    assert format_bytes(13959684) == "13.3 MiB"
    assert format_bytes(3 * 1024**4) == "3.0 TiB"
    assert format_bytes(5 * 1024**5) == "5120.0 TiB"  # no unit beyond TiB


def test_format_seconds() -> None:
    assert format_seconds(0.421) == "0.42 s"
    assert format_seconds(12.34) == "12.3 s"
    assert format_seconds(185) == "3 min 05 s"


def test_plural() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(0, "file") == "0 files"
    assert plural(2, "dataset") == "2 datasets"


def test_print_json_writes_plain_json() -> None:
    out = io.StringIO()
    value = {
        1: np.int64(3),
        "f": [math.nan, math.inf, -math.inf, np.float32(1.5)],
        "b": b"caf\xc3\xa9",
        "t": (1, "é"),
    }
    print_json(value, out)
    text = out.getvalue()
    assert text.endswith("}\n") and "NaN" in text and "é" in text
    assert json.loads(text) == {"1": 3, "f": ["NaN", "Infinity", "-Infinity", 1.5], "b": "café", "t": [1, "é"]}
