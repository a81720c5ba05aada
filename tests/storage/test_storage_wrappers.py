"""CountingStorage and FaultyStorage."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from atlas.storage import LocalStorage, MemoryStorage
from atlas.storage.wrappers import CountingStorage, FaultyStorage


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "s", create=True)


def test_counting_counts_by_operation(local: LocalStorage) -> None:
    st = CountingStorage(local)
    assert st.location == local.location
    st.put("a", b"0123456789")
    assert st.put_if_absent("b", b"x")
    st.get("a")
    st.get_range("a", 0, 2)
    st.exists("a")
    st.size("a")
    st.list()
    st.delete("b")
    st.delete_many(["a"])
    assert st.counts == {
        "put": 1, "put_if_absent": 1, "get": 1, "get_range": 1, "exists": 1,
        "size": 1, "list": 1, "delete": 1, "delete_many": 1,
    }
    assert st.requests == 9
    st.reset()
    assert st.requests == 0 and not st.counts


def test_counting_ranged_reads(local: LocalStorage) -> None:
    st = CountingStorage(local)
    st.put("seg", bytes(3 << 20))
    st.reset()
    st.get_ranges("seg", [0, 10, 20], [5, 5, 5])  # one span
    assert st.counts["get_ranges"] == 1
    st.get_ranges("seg", [0, 2 << 20], [5, 5])  # two spans
    assert st.counts["get_ranges"] == 3
    st.get_ranges("seg", [7], [0])  # nothing to read, still one call
    assert st.counts["get_ranges"] == 4
    st.get_many_ranges([("seg", [0, 2 << 20], [1, 1]), ("seg", [5], [1])])
    assert st.counts["get_ranges"] == 7
    assert st.counts["get_many_ranges"] == 1
    assert st.requests == 7


def test_counting_memory_counts_one_per_object() -> None:
    st = CountingStorage(MemoryStorage())
    st.put("k", bytes(3 << 20))
    st.get_ranges("k", [0, 2 << 20], [1, 1])
    assert st.counts["get_ranges"] == 1


def test_counting_pickles(local: LocalStorage) -> None:
    st = CountingStorage(local)
    st.put("k", b"v")
    clone = pickle.loads(pickle.dumps(st))
    assert clone.counts == {"put": 1}
    assert clone.get("k") == b"v"
    assert clone.counts == {"put": 1, "get": 1}
    assert st.counts == {"put": 1}


def test_faulty_fails_the_kth_mutation(local: LocalStorage) -> None:
    st = FaultyStorage(local, fail_at=3)
    st.put("a", b"1")
    st.get("a")  # reads are not mutations
    assert st.put_if_absent("b", b"2")
    with pytest.raises(OSError, match="injected fault"):
        st.put("c", b"3")
    assert not local.exists("c")
    st.put("c", b"3")  # only the 3rd fails
    assert st.mutations == 4 and st.faults == 1


def test_faulty_delete_fails_without_deleting(local: LocalStorage) -> None:
    local.put("a", b"1")
    st = FaultyStorage(local, fail_at=1)
    with pytest.raises(OSError):
        st.delete_many(["a"])
    assert local.exists("a")
    st.arm(1)
    with pytest.raises(OSError):
        st.delete("a")
    assert local.exists("a")


def test_faulty_torn_writes(local: LocalStorage) -> None:
    st = FaultyStorage(local, fail_at=1, torn=True)
    with pytest.raises(OSError, match="injected fault"):
        st.put("k", b"0123456789")
    assert local.get("k") == b"01234"
    st.arm(1)
    with pytest.raises(OSError):
        st.put_if_absent("m", b"abcdef")
    assert local.get("m") == b"abc"


def test_faulty_repeat_and_match(local: LocalStorage) -> None:
    st = FaultyStorage(local, fail_at=2, repeat=True, match="manifests/")
    st.put("data/x", b"1")  # does not match: not counted
    st.put("manifests/1", b"1")
    for i in range(3):
        with pytest.raises(OSError):
            st.put_if_absent(f"manifests/{i + 2}", b"x")
    assert local.list("manifests/") == ["manifests/1"]
    st.arm(None)
    st.put("manifests/9", b"ok")


def test_corruption_helpers(local: LocalStorage) -> None:
    st = FaultyStorage(local)
    local.put("k", bytes(8))
    st.flip_bit("k")
    assert local.get("k") == bytes([0, 0, 0, 0, 1, 0, 0, 0])
    st.flip_bit("k", 7)
    assert local.get("k") == bytes([0x80, 0, 0, 0, 1, 0, 0, 0])
    st.truncate("k")
    assert local.size("k") == 4
    st.truncate("k", 1)
    assert local.get("k") == b"\x80"
    with pytest.raises(ValueError):
        st.flip_bit("k", 8)
    with pytest.raises(ValueError):
        st.truncate("k", 5)
    assert st.mutations == 0  # damage is not counted as a mutation


def test_faulty_pickles(local: LocalStorage) -> None:
    st = FaultyStorage(local, fail_at=2)
    st.put("a", b"1")
    clone = pickle.loads(pickle.dumps(st))
    with pytest.raises(OSError):
        clone.put("b", b"2")
    with pytest.raises(OSError):  # the original counts separately: its 2nd fails too
        st.put("b", b"2")
    assert not local.exists("b")
