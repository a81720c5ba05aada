"""Windows and chunk coordinates: the arithmetic every read and write shares.

A window is ``(start, stop)``, two tuples of ints inside the array's shape. Reads clip
windows like numpy slicing does; a negative start or extent is an ``OverflowError`` and a
window of the wrong rank a ``ValueError``, whoever asks (a read, a scan, xarray, dask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["clip_window", "ints", "sub_array", "window_slices"]


def ints(value: Any, what: str) -> tuple[int, ...]:
    """Normalise a sequence of non-negative ints (tuples, lists, numpy arrays and ints)."""
    if type(value) is list or type(value) is tuple:
        for v in value:
            if type(v) is not int or v < 0:
                break
        else:
            return tuple(value)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of ints, not {type(value).__name__}")
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iu":
            if value.ndim == 1 and value.size == 0:
                return ()
            raise TypeError(f"{what} must be a 1-D sequence of ints")
        value = value.tolist()
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of ints, not {type(value).__name__}") from None
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{what} must hold ints, found {type(v).__name__}")
        iv = int(v)
        if iv < 0:
            raise OverflowError(f"{what} must not be negative, got {iv}")
        out.append(iv)
    return tuple(out)



def clip_window(
    array_shape: Sequence[int], start: Any, shape: Any
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The window ``(start, stop)`` of a read of ``shape`` cells from ``start`` (None: the
    origin, the whole array), clipped to ``array_shape`` like numpy slicing."""
    dims = tuple(array_shape)
    rank = len(dims)
    if start is None:
        st = (0,) * rank
    else:
        st = ints(start, "start")
        if len(st) != rank:
            raise ValueError(f"start has {len(st)} entries but the array has {rank} axes")
    if shape is None:
        stop = dims
    else:
        sh = ints(shape, "shape")
        if len(sh) != rank:
            raise ValueError(f"shape has {len(sh)} entries but the array has {rank} axes")
        stop = tuple(min(a + n, s) for a, n, s in zip(st, sh, dims, strict=True))
    st = tuple(min(a, s) for a, s in zip(st, dims, strict=True))
    stop = tuple(max(a, b) for a, b in zip(st, stop, strict=True))
    return st, stop


def sub_array(arr: np.ndarray, sl: tuple[slice, ...]) -> np.ndarray:
    """``arr[sl]`` that stays an array for 0-D (``x[()]`` would give the element)."""
    if len(sl) == 1:
        return arr[sl[0]]
    return arr[sl + (Ellipsis,)]


_SLICES: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[slice, ...]] = {}


def window_slices(st: tuple[int, ...], stop: tuple[int, ...]) -> tuple[slice, ...]:
    """``tuple(slice(a, b))`` for a window, shared between the many reads of one scan."""
    key = (st, stop)
    sl = _SLICES.get(key)
    if sl is None:
        if len(_SLICES) > 4096:
            _SLICES.clear()
        sl = _SLICES[key] = tuple(slice(a, b) for a, b in zip(st, stop, strict=True))
    return sl
