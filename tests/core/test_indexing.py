"""Windows and chunk coordinates: clipping like numpy slicing, and the same errors for every
caller."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.core.indexing import clip_window, ints, sub_array, window_slices


def test_clip_window_defaults_to_the_whole_array() -> None:
    assert clip_window((4, 5), None, None) == ((0, 0), (4, 5))
    assert clip_window((4, 5), [1, 2], None) == ((1, 2), (4, 5))  # start only: to the end
    assert clip_window((4, 5), None, [2, 3]) == ((0, 0), (2, 3))  # shape only: from the origin
    assert clip_window((), None, None) == ((), ())  # 0-D


@pytest.mark.parametrize(
    ("start", "shape", "window"),
    [
        ([1, 1], [2, 2], ((1, 1), (3, 3))),
        ([3, 0], [5, 9], ((3, 0), (4, 5))),  # runs past the end: clipped
        ([9, 9], [2, 2], ((4, 5), (4, 5))),  # starts past the end: empty
        ([2, 5], [0, 1], ((2, 5), (2, 5))),  # zero extent
    ],
)
def test_clip_window_clips_like_numpy_slicing(start: list[int], shape: list[int], window: tuple) -> None:
    assert clip_window((4, 5), start, shape) == window
    grid = np.arange(20).reshape(4, 5)
    st, stop = window
    sliced = grid[start[0] : start[0] + shape[0], start[1] : start[1] + shape[1]]
    assert sliced.shape == tuple(b - a for a, b in zip(st, stop, strict=True))


def test_clip_window_accepts_tuples_numpy_arrays_and_numpy_ints() -> None:
    assert clip_window([10], (np.int64(2),), np.array([3])) == ((2,), (5,))
    assert clip_window([10], [np.uint16(1)], [np.int8(2)]) == ((1,), (3,))


def test_clip_window_errors() -> None:
    with pytest.raises(ValueError, match="start has 1 entries but the array has 2 axes"):
        clip_window((4, 5), [1], None)
    with pytest.raises(ValueError, match="shape has 3 entries but the array has 2 axes"):
        clip_window((4, 5), None, [1, 1, 1])
    with pytest.raises(OverflowError, match="start must not be negative, got -1"):
        clip_window((4, 5), [-1, 0], None)
    with pytest.raises(OverflowError, match="shape must not be negative"):
        clip_window((4, 5), [0, 0], [1, -2])
    with pytest.raises(TypeError, match="start must be a sequence of ints, not str"):
        clip_window((4, 5), "01", None)
    with pytest.raises(TypeError, match="must hold ints, found float"):
        clip_window((4, 5), [0, 1.0], None)
    with pytest.raises(TypeError, match="must hold ints, found bool"):
        clip_window((4, 5), [True, 0], None)
    with pytest.raises(TypeError, match="1-D sequence of ints"):
        clip_window((4, 5), np.array([0.0, 1.0]), None)
    with pytest.raises(TypeError, match="not int"):
        clip_window((4, 5), 3, None)


def test_ints_normalises_sequences() -> None:
    assert ints([1, 2], "x") == (1, 2) and ints((0,), "x") == (0,)
    assert ints(np.array([3, 4], dtype=np.uint8), "x") == (3, 4)
    assert ints(np.array([]), "x") == ()  # an empty float array is an empty window
    assert ints(iter([5]), "x") == (5,)
    assert all(type(v) is int for v in ints([np.int32(7)], "x"))


def test_sub_array_keeps_zero_dimensional_results_arrays() -> None:
    grid = np.arange(6).reshape(2, 3)
    assert sub_array(grid, (slice(1, 2), slice(0, 2))).tolist() == [[3, 4]]
    assert sub_array(np.arange(4), (slice(1, 3),)).tolist() == [1, 2]
    scalar = np.array(5.0)
    got = sub_array(scalar, ())
    assert isinstance(got, np.ndarray) and got.shape == () and got == 5.0


def test_window_slices_are_the_window_as_slices_and_shared() -> None:
    sl = window_slices((1, 0), (3, 2))
    assert sl == (slice(1, 3), slice(0, 2))
    assert window_slices((1, 0), (3, 2)) is sl
    assert np.arange(20).reshape(4, 5)[sl].tolist() == [[5, 6], [10, 11]]
