"""``atlas.storage.memory``: named in-memory stores shared by name, anonymous ones freed with
their last handle, and pickles that reopen only in the process that made them."""

from __future__ import annotations

import gc
import pickle
import uuid

import pytest

from atlas.storage import MemoryStorage
from atlas.storage.memory import lookup_in_process, register_in_process


def _name() -> str:
    return f"test-memory-{uuid.uuid4().hex}"


def test_a_name_gives_views_on_the_same_data() -> None:
    name = _name()
    a, b = MemoryStorage(name), MemoryStorage(f"/{name}/")
    try:
        a.put("x/1", b"one")
        assert b.get("x/1") == b"one" and a == b and hash(a) == hash(b)
        assert a.location == f"memory://{name}"
        assert a != MemoryStorage()
    finally:
        MemoryStorage.discard(name)
    assert not MemoryStorage(name).exists("x/1")  # discarded: a new store
    MemoryStorage.discard(name)


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        MemoryStorage("/")


def test_reads_writes_and_listing() -> None:
    s = MemoryStorage()
    s.put("a/2", bytearray(b"0123456789"))
    s.put("a/1", memoryview(b"abc"))
    assert s.put_if_absent("b", b"x") and not s.put_if_absent("b", b"y")
    assert s.get("b") == b"x"
    assert s.get_range("a/2", 8, 5) == b"89"
    assert [bytes(r) for r in s.get_ranges("a/2", [0, 4], [2, 3])] == [b"01", b"456"]
    assert [[bytes(r) for r in rs] for rs in s.get_many_ranges([("a/1", [1], [2]), ("b", [0], [1])])] == [[b"bc"], [b"x"]]
    assert s.size("a/2") == 10 and s.range_requests([0, 100], [1, 1]) == 1
    assert s.list() == ["a/1", "a/2", "b"] and s.list("a/") == ["a/1", "a/2"]
    details = s.list_details("a/")
    assert [(k, n) for k, n, _ in details] == [("a/1", 3), ("a/2", 10)] and all(t > 0 for _, _, t in details)
    s.delete("a/1")
    s.delete("a/1")  # missing: no error
    s.delete_many(["b", "zz"])
    assert s.list() == ["a/2"]
    with pytest.raises(FileNotFoundError, match="no object 'b' in memory://"):
        s.get("b")
    with pytest.raises(ValueError):
        s.get("../b")


def test_anonymous_stores_go_with_their_last_handle() -> None:
    s = MemoryStorage()
    s.put("k", b"v")
    reopened = pickle.loads(pickle.dumps(s))
    assert reopened == s and reopened.get("k") == b"v"
    name = s.name
    del s, reopened
    gc.collect()
    with pytest.raises(RuntimeError, match="no longer exists"):
        MemoryStorage(name, _anonymous=True)


def test_a_pickle_from_another_process_is_refused() -> None:
    s = MemoryStorage()
    reopen, (name, anonymous, _token) = s.__reduce__()
    with pytest.raises(RuntimeError, match="in-memory store of another process"):
        reopen(name, anonymous, "1-not-this-process")


def test_other_stores_registered_in_process_reopen_by_name() -> None:
    name = _name()
    other = MemoryStorage()
    register_in_process(name, other)
    assert lookup_in_process(name) is other
    reopen, (_, anonymous, token) = MemoryStorage(name).__reduce__()
    assert reopen(name, anonymous, token) is other
    MemoryStorage.discard(name)
    del other
    gc.collect()
    assert lookup_in_process(name) is None  # held weakly
