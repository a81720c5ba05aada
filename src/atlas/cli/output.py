"""What the commands print: sizes, durations, counted words and JSON."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, TextIO


def format_bytes(n: float | None) -> str:
    """``13959684`` gives ``13.3 MiB``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_seconds(s: float) -> str:
    """Seconds for people: ``0.42 s``, ``12.3 s``, ``3 min 05 s``."""
    if s < 1:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s"


def plural(n: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _json_safe(value: Any) -> Any:
    """Plain JSON (no NaN/Infinity literals, no bytes, no numpy scalars)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Write ``value`` as indented JSON to stdout."""
    json.dump(_json_safe(value), out or sys.stdout, indent=2, ensure_ascii=False)
    (out or sys.stdout).write("\n")
