"""``atlas.storage.base``: the key and range checks every backend shares, the coalescing of
ranges, the defaults of the ``Storage`` ABC and ``ParallelPuts``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from atlas.storage import MemoryStorage, check_key, check_prefix, coalesce_ranges
from atlas.storage.base import ParallelPuts, Storage, check_ranges, run_concurrently


def test_coalesce_ranges() -> None:
    assert coalesce_ranges([], []) == []
    assert coalesce_ranges([5, 0], [0, 0]) == []
    assert coalesce_ranges([0, 10, 5], [5, 5, 5], gap=0) == [(0, 15, [0, 2, 1])]
    assert coalesce_ranges([0, 11], [5, 5], gap=5) == [(0, 5, [0]), (11, 16, [1])]
    assert coalesce_ranges([0, 10], [5, 5], gap=5) == [(0, 15, [0, 1])]
    assert coalesce_ranges([0, 2], [100, 5]) == [(0, 100, [0, 1])]  # contained
    mib = 1 << 20
    assert len(coalesce_ranges([0, mib + 10], [10, 10])) == 1
    assert len(coalesce_ranges([0, mib + 11], [10, 10])) == 2


@pytest.mark.parametrize(
    "key", ["a", "atlas.json", "manifests/0000000001.json", "data/v3-ab12.seg", "x/y/z", "a.b~c_d-e"]
)
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("prefix", ["", "a", "a/", "data/v3-", "a/b/"])
def test_good_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/a", "../", "a/../", "a//", "./", "a/..", "a b"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError):
        check_prefix(prefix)


@pytest.mark.parametrize(
    "key", ["", "/a", "a//b", "a/", "./a", "a/../b", "a b", "a\\b", "é", "data/.tmp-x", "a:b", "a?b"]
)
def test_bad_keys(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


def test_keys_and_prefixes_must_be_str() -> None:
    with pytest.raises(TypeError, match="storage keys must be str, not bytes"):
        check_key(b"a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="storage prefixes must be str"):
        check_prefix(None)  # type: ignore[arg-type]


def test_check_ranges() -> None:
    assert check_ranges((0, 5), [3, 0]) == ([0, 5], [3, 0])
    with pytest.raises(ValueError, match="got 2 starts but 1 lengths"):
        check_ranges([0, 1], [1])
    with pytest.raises(ValueError, match="start=4, length=-1 must not be negative"):
        check_ranges([0, 4], [1, -1])


def test_run_concurrently_keeps_the_order() -> None:
    # the first calls finish last
    def slow_square(x: int) -> int:
        time.sleep(0.01 * (5 - x))
        return x * x

    assert run_concurrently(slow_square, [0, 1, 2, 3, 4]) == [0, 1, 4, 9, 16]
    assert run_concurrently(slow_square, []) == []
    assert run_concurrently(slow_square, [3]) == [9]


class _Minimal(Storage):
    """A backend with only the abstract methods: the ABC's defaults do the rest."""

    def __init__(self) -> None:
        self.location = "minimal://"
        self.data: dict[str, bytes] = {}
        self.deleted: list[str] = []

    def get(self, key: str) -> bytes:
        return self.data[check_key(key)]

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.get(key)[start : start + length]

    def get_ranges(self, key: str, starts: Sequence[int], lengths: Sequence[int]) -> list[bytes | memoryview]:
        return [self.get_range(key, s, n) for s, n in zip(starts, lengths, strict=True)]

    def exists(self, key: str) -> bool:
        return key in self.data

    def size(self, key: str) -> int:
        return len(self.get(key))

    def list(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.data if k.startswith(prefix))

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self.data[check_key(key)] = bytes(data)

    def put_if_absent(self, key: str, data: bytes | bytearray | memoryview) -> bool:
        if key in self.data:
            return False
        self.put(key, data)
        return True

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        self.data.pop(key, None)


def test_the_defaults_of_the_abc() -> None:
    s = _Minimal()
    s.put("a/1", b"hello")
    s.put("a/2", b"world!")
    s.put("b", b"x")
    assert s.get_many_ranges([("a/2", [0, 3], [2, 9]), ("a/1", [1], [3])]) == [[b"wo", b"ld!"], [b"ell"]]
    with pytest.raises(ValueError):
        s.get_many_ranges([("../x", [0], [1])])
    before = time.time()
    details = s.list_details("a/")
    assert [(k, n) for k, n, _ in details] == [("a/1", 5), ("a/2", 6)]
    assert all(t >= before for _, _, t in details)  # "now": nothing looks old
    s.delete_many(iter(["a/1", "zz"]))
    assert s.deleted == ["a/1", "zz"] and s.list() == ["a/2", "b"]
    assert s.remove_temp_files() == 0
    assert s.range_requests([0, 10, 5 << 20], [5, 5, 5]) == 2  # the first two are coalesced
    assert repr(s) == "_Minimal('minimal://')"


def test_parallel_puts_wait_for_all_and_report_the_first_failure() -> None:
    s = MemoryStorage()
    puts = ParallelPuts(s)
    for i in range(5):
        puts.put(f"k/{i}", bytes([i]))
    puts.wait()
    assert s.list("k/") == [f"k/{i}" for i in range(5)]
    puts.put("k/ok", b"1")
    puts.put("bad key", b"2")
    with pytest.raises(ValueError, match="bad key"):
        puts.wait()
    assert s.exists("k/ok")
    puts.wait()  # the failure was reported once
