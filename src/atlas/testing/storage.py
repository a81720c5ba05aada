"""The behaviour every Atlas storage backend must have, as a pytest test class.

``StorageSuite`` is the suite Atlas runs against its own backends (local directory,
memory, obstore stores, S3, HTTP). A third-party :class:`~atlas.storage.Storage`
is checked the same way: subclass it in a test module under a name pytest collects and
give it a ``store`` fixture returning a fresh, empty store for every test::

    import pytest

    from atlas.testing.storage import StorageSuite

    from mypackage import MyStorage


    class TestMyStorage(StorageSuite):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStorage(tmp_path / "store")

Optional fixtures and attributes a subclass may override:

* ``writer``: the store that seeds the objects the tests read (the ``store`` itself
  by default; a writable view of the same objects when ``store`` is read-only);
* ``reopen``: turns ``store.location`` back into a store (by default
  :func:`atlas.storage.open_storage` with the ``reopen_options`` fixture's keywords);
* ``can_list``: False for a store that cannot list its keys (the listing tests skip).

This module needs pytest; ``import atlas`` never imports it.
"""

from __future__ import annotations

import functools
import pickle
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ..storage import Storage, open_storage

__all__ = ["BAD_KEYS", "StorageSuite"]

#: Keys every store must refuse with ``ValueError``.
BAD_KEYS = [
    "",
    "/abs",
    "/",
    "a/../b",
    "..",
    "../x",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    "a b",
    "caf\u00e9",
    "a?b",
    "a#b",
    ".tmp-123",
    "d/.tmp-x",
]


def _blob(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


class StorageSuite:
    """Tests every Storage must pass. Subclasses provide the ``store`` fixture.

    ``writer`` seeds objects; it is the store itself unless the store is read-only.
    """

    #: Whether the store can list its keys (``list``, ``list_details``).
    can_list = True

    @pytest.fixture
    def store(self) -> Storage:
        raise NotImplementedError("a StorageSuite subclass must define the store fixture")

    @pytest.fixture
    def writer(self, store: Storage) -> Storage:
        return store

    @pytest.fixture
    def reopen_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def reopen(self, reopen_options: dict[str, Any]) -> Callable[[str], Storage]:
        return functools.partial(open_storage, **reopen_options)

    @pytest.fixture
    def writable(self, store: Storage) -> Storage:
        if store.read_only:
            pytest.skip("the store is read-only")
        return store

    # ------------------------------------------------------------- get / put

    def test_put_get_roundtrip(self, store: Storage, writer: Storage) -> None:
        writer.put("a.bin", b"hello")
        writer.put("dir/sub/b.bin", b"world")
        assert store.get("a.bin") == b"hello"
        assert store.get("dir/sub/b.bin") == b"world"
        assert isinstance(store.get("a.bin"), bytes)

    def test_put_accepts_bytes_likes(self, writable: Storage) -> None:
        writable.put("a", bytearray(b"abc"))
        writable.put("b", memoryview(b"xdefx")[1:4])
        assert writable.put_if_absent("c", memoryview(bytearray(b"ghi")))
        assert [writable.get(k) for k in "abc"] == [b"abc", b"def", b"ghi"]

    def test_get_missing_names_the_key(self, store: Storage) -> None:
        with pytest.raises(FileNotFoundError, match="nothing/here.bin"):
            store.get("nothing/here.bin")

    def test_every_read_of_a_missing_key_raises(self, store: Storage) -> None:
        with pytest.raises(FileNotFoundError, match="gone"):
            store.get_range("gone", 0, 10)
        with pytest.raises(FileNotFoundError, match="gone"):
            store.get_range("gone", 0, 0)
        with pytest.raises(FileNotFoundError, match="gone"):
            store.get_ranges("gone", [0, 5], [1, 1])
        with pytest.raises(FileNotFoundError, match="gone"):
            store.get_ranges("gone", [3], [0])
        with pytest.raises(FileNotFoundError, match="gone"):
            store.size("gone")
        assert not store.exists("gone")

    def test_a_directory_is_not_an_object(self, store: Storage, writer: Storage) -> None:
        writer.put("dir/x", b"1")
        assert not store.exists("dir")
        with pytest.raises(FileNotFoundError):
            store.get("dir")
        with pytest.raises(FileNotFoundError):
            store.size("dir")

    def test_empty_object(self, store: Storage, writer: Storage) -> None:
        writer.put("empty", b"")
        assert store.get("empty") == b""
        assert store.exists("empty")
        assert store.size("empty") == 0
        assert store.get_range("empty", 0, 0) == b""
        assert store.get_range("empty", 0, 10) == b""
        assert [bytes(b) for b in store.get_ranges("empty", [0, 0, 4], [0, 3, 2])] == [b"", b"", b""]

    def test_overwrite_replaces(self, store: Storage, writer: Storage) -> None:
        writer.put("k", b"first version, longer")
        writer.put("k", b"second")
        assert store.get("k") == b"second"
        assert store.size("k") == 6

    def test_large_object(self, store: Storage, writer: Storage) -> None:
        data = _blob(6 << 20, seed=1)  # above obstore's 5 MiB multipart threshold
        writer.put("big/object", data)
        assert store.size("big/object") == len(data)
        assert store.get("big/object") == data
        starts = [0, 10, (3 << 20) + 7, len(data) - 5]
        lengths = [5, 100, 1000, 50]
        got = store.get_ranges("big/object", starts, lengths)
        assert [bytes(g) for g in got] == [data[s : s + n] for s, n in zip(starts, lengths, strict=True)]

    # ------------------------------------------------------------- ranges

    def test_get_range(self, store: Storage, writer: Storage) -> None:
        writer.put("r", b"0123456789")
        assert store.get_range("r", 0, 3) == b"012"
        assert store.get_range("r", 4, 2) == b"45"
        assert store.get_range("r", 7, 3) == b"789"
        assert isinstance(store.get_range("r", 4, 2), bytes)

    def test_get_range_at_and_past_the_end(self, store: Storage, writer: Storage) -> None:
        writer.put("r", b"0123456789")
        assert store.get_range("r", 8, 10) == b"89"
        assert store.get_range("r", 10, 1) == b""
        assert store.get_range("r", 25, 4) == b""
        assert store.get_range("r", 3, 0) == b""
        assert store.get_range("r", 10, 0) == b""

    def test_get_ranges_matches_slicing(self, store: Storage, writer: Storage) -> None:
        data = _blob(5000, seed=2)
        writer.put("seg", data)
        rng = random.Random(3)
        starts = [rng.randrange(0, 5200) for _ in range(60)] + [0, 4990, 5000, 4999, 100, 100]
        lengths = [rng.randrange(0, 300) for _ in range(60)] + [5000, 50, 1, 1, 0, 10]
        want = [data[s : s + n] for s, n in zip(starts, lengths, strict=True)]
        for gap in (1 << 20, 64, 0):  # one span, several spans, no coalescing
            store.coalesce_gap = gap
            got = store.get_ranges("seg", starts, lengths)
            assert [bytes(g) for g in got] == want
            assert all(len(g) == len(w) for g, w in zip(got, want, strict=True))

    def test_get_ranges_far_apart(self, store: Storage, writer: Storage) -> None:
        data = _blob(3 << 20, seed=4)
        writer.put("far", data)
        starts = [(2 << 20) + 100, 0, (3 << 20) - 10]
        lengths = [64, 32, 100]
        got = store.get_ranges("far", starts, lengths)
        assert [bytes(g) for g in got] == [data[s : s + n] for s, n in zip(starts, lengths, strict=True)]
        # Never one read across the 2 MiB hole; memory stores count one lookup per call.
        assert store.range_requests(starts, lengths) in (1, 2, 3)
        counts_spans = type(store).range_requests is Storage.range_requests  # the default accounting
        if store.coalesce_gap >= 1 << 20 and counts_spans:
            assert store.range_requests(starts, lengths) == 2

    def test_get_ranges_edge_cases(self, store: Storage, writer: Storage) -> None:
        writer.put("r", b"abcdef")
        assert store.get_ranges("r", [], []) == []
        assert [bytes(b) for b in store.get_ranges("r", [2, 2, 0], [2, 2, 1])] == [b"cd", b"cd", b"a"]
        assert [bytes(b) for b in store.get_ranges("r", [6, 9], [3, 3])] == [b"", b""]
        with pytest.raises(ValueError):
            store.get_ranges("r", [0, 1], [1])
        with pytest.raises(ValueError):
            store.get_ranges("r", [-1], [1])
        with pytest.raises(ValueError):
            store.get_ranges("r", [0], [-1])

    def test_get_many_ranges(self, store: Storage, writer: Storage) -> None:
        blobs = {f"data/v{i}.seg": _blob(1000 + i, seed=i) for i in range(6)}
        for k, v in blobs.items():
            writer.put(k, v)
        requests = [(k, [0, 500, 990], [10, 20, 50]) for k in blobs]
        requests.append(("data/v0.seg", [], []))
        got = store.get_many_ranges(requests)
        assert len(got) == len(requests)
        for (k, starts, lengths), res in zip(requests, got, strict=True):
            want = [blobs[k][s : s + n] for s, n in zip(starts, lengths, strict=True)]
            assert [bytes(r) for r in res] == want
        assert store.get_many_ranges([]) == []
        with pytest.raises(FileNotFoundError, match="missing.seg"):
            store.get_many_ranges([("data/v1.seg", [0], [1]), ("missing.seg", [0], [1])])

    def test_get_many_ranges_transient(self, store: Storage, writer: Storage) -> None:
        """The same bytes as ``get_many_ranges``, long spans included (a storage may hand
        them out as views of a mapped file)."""
        blobs = {f"data/t{i}.seg": _blob(300_000 + i, seed=i) for i in range(3)}
        for k, v in blobs.items():
            writer.put(k, v)
        requests = [(k, [0, 70_000, 299_990], [70_000, 200_000, 50]) for k in blobs]
        got = store.get_many_ranges_transient(requests)
        assert [[bytes(r) for r in res] for res in got] == [
            [bytes(r) for r in res] for res in store.get_many_ranges(requests)
        ]
        assert bytes(got[0][1]) == blobs["data/t0.seg"][70_000:270_000]
        with pytest.raises(FileNotFoundError, match="missing.seg"):
            store.get_many_ranges_transient([("data/t1.seg", [0], [1]), ("missing.seg", [0], [1])])

    # ------------------------------------------------------------- metadata

    def test_exists_and_size(self, store: Storage, writer: Storage) -> None:
        writer.put("x/y", b"12345")
        assert store.exists("x/y")
        assert store.size("x/y") == 5
        assert not store.exists("x/z")
        assert not store.exists("x/y/z")

    def test_list(self, store: Storage, writer: Storage) -> None:
        if not self.can_list:
            pytest.skip("the store cannot list its keys")
        keys = ["manifests/0000000002.json", "manifests/0000000001.json", "data/v1-a.seg",
                "data/v1-b.seg", "data/v10-c.seg", "data/sub/deep/x", "atlas.json", "datum"]
        for k in keys:
            writer.put(k, k.encode())
        assert store.list() == sorted(keys)
        assert store.list("") == sorted(keys)
        assert store.list("manifests/") == ["manifests/0000000001.json", "manifests/0000000002.json"]
        assert store.list("data/") == ["data/sub/deep/x", "data/v1-a.seg", "data/v1-b.seg", "data/v10-c.seg"]
        assert store.list("data/v1-") == ["data/v1-a.seg", "data/v1-b.seg"]
        assert store.list("data/v1") == ["data/v1-a.seg", "data/v1-b.seg", "data/v10-c.seg"]
        assert store.list("dat") == sorted(k for k in keys if k.startswith("dat"))
        assert store.list("data/sub") == ["data/sub/deep/x"]
        assert store.list("atlas.json") == ["atlas.json"]
        assert store.list("nothing/") == []
        assert store.list("nothing") == []
        assert store.list("data/v1-a.seg/") == []

    def test_list_details_gives_sizes_and_write_times(self, store: Storage, writer: Storage) -> None:
        if not self.can_list:
            pytest.skip("the store cannot list its keys")
        before = time.time()
        writer.put("data/v1-a.seg", b"12345")
        writer.put("data/v1-b.seg", b"")
        writer.put("index/v1-a.idx", b"xy")
        details = store.list_details("data/")
        assert [(k, n) for k, n, _ in details] == [("data/v1-a.seg", 5), ("data/v1-b.seg", 0)]
        for _, _, modified in details:  # file systems and servers round to a second or so
            assert before - 2 <= modified <= time.time() + 2
        assert [k for k, _, _ in store.list_details()] == store.list()

    def test_list_rejects_bad_prefixes(self, store: Storage) -> None:
        for bad in ["/abs", "../x", "a/../b", "a//b"]:
            with pytest.raises(ValueError):
                store.list(bad)

    # ------------------------------------------------------------- delete

    def test_delete(self, writable: Storage) -> None:
        writable.put("a/b", b"1")
        writable.put("a/c", b"2")
        writable.delete("a/b")
        assert not writable.exists("a/b")
        writable.delete("a/b")  # missing: fine
        writable.delete("never/was")
        assert writable.list("a/") == ["a/c"]

    def test_delete_many(self, writable: Storage) -> None:
        for i in range(5):
            writable.put(f"d/{i}", b"x")
        writable.delete_many(["d/0", "d/missing", "d/2", "d/4"])
        writable.delete_many([])
        writable.delete_many(iter(["d/3"]))
        assert writable.list("d/") == ["d/1"]

    # ------------------------------------------------------------- put_if_absent

    def test_put_if_absent(self, writable: Storage) -> None:
        assert writable.put_if_absent("manifests/1", b"mine") is True
        assert writable.put_if_absent("manifests/1", b"theirs") is False
        assert writable.get("manifests/1") == b"mine"
        writable.put("manifests/1", b"overwritten")
        assert writable.put_if_absent("manifests/1", b"again") is False
        writable.delete("manifests/1")
        assert writable.put_if_absent("manifests/1", b"") is True
        assert writable.get("manifests/1") == b""

    def test_put_if_absent_race_between_threads(self, writable: Storage) -> None:
        n = 8
        for rnd in range(4):
            key = f"race/{rnd}"
            barrier = threading.Barrier(n)

            def attempt(i: int, key: str = key, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait()
                return writable.put_if_absent(key, f"writer {i}".encode() * 100)

            with ThreadPoolExecutor(n) as pool:
                results = list(pool.map(attempt, range(n)))
            assert results.count(True) == 1, results
            winner = results.index(True)
            assert writable.get(key) == f"writer {winner}".encode() * 100

    def test_concurrent_puts_of_different_keys(self, store: Storage, writer: Storage) -> None:
        def work(i: int) -> None:
            writer.put(f"par/{i % 3}/{i}", bytes([i]) * (i + 1))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(40)))
        for i in range(40):
            assert store.get(f"par/{i % 3}/{i}") == bytes([i]) * (i + 1)

    # ------------------------------------------------------------- keys

    def test_bad_keys_are_rejected(self, store: Storage) -> None:
        calls: list[tuple[str, Callable[[str], object]]] = [
            ("get", store.get),
            ("exists", store.exists),
            ("size", store.size),
            ("get_range", lambda k: store.get_range(k, 0, 1)),
            ("get_ranges", lambda k: store.get_ranges(k, [0], [1])),
            ("get_many_ranges", lambda k: store.get_many_ranges([(k, [0], [1])])),
        ]
        if not store.read_only:
            calls += [
                ("put", lambda k: store.put(k, b"x")),
                ("put_if_absent", lambda k: store.put_if_absent(k, b"x")),
                ("delete", store.delete),
                ("delete_many", lambda k: store.delete_many(["ok", k])),
            ]
        for key in BAD_KEYS:
            for name, call in calls:
                with pytest.raises(ValueError):
                    call(key)
                    pytest.fail(f"{name}({key!r}) did not raise ValueError")
        if not store.read_only:
            assert not store.exists("ok")

    def test_non_str_keys_are_rejected(self, store: Storage) -> None:
        with pytest.raises(TypeError):
            store.get(b"a")  # type: ignore[arg-type]  # the point of the test

    def test_keys_atlas_uses(self, store: Storage, writer: Storage) -> None:
        keys = ["atlas.json", "manifests/0000000001.json", "data/v3-ab12.seg", "index/v3-0001.idx",
                "a-b_c.d~e+f=g@h,i", "odd/x!$&'()[]^`{};y"]
        for k in keys:
            writer.put(k, k.encode())
        assert [store.get(k) for k in keys] == [k.encode() for k in keys]

    # ------------------------------------------------------------- identity

    def test_location_reopens_the_store(
        self, store: Storage, writer: Storage, reopen: Callable[[str], Storage]
    ) -> None:
        assert isinstance(store.location, str) and store.location
        writer.put("loc/x", b"here")
        again = reopen(store.location)
        assert again.get("loc/x") == b"here"
        assert open_storage(store) is store

    def test_pickle_roundtrip(self, store: Storage, writer: Storage) -> None:
        writer.put("p/k", b"pickled")
        clone = pickle.loads(pickle.dumps(store))
        assert type(clone) is type(store)
        assert clone.location == store.location
        assert clone.read_only == store.read_only
        assert clone.get("p/k") == b"pickled"
        assert [bytes(b) for b in clone.get_ranges("p/k", [1], [3])] == [b"ick"]
        if not store.read_only:
            clone.put("p/from-clone", b"back")
            assert store.get("p/from-clone") == b"back"

    def test_repr_names_location(self, store: Storage) -> None:
        assert store.location in repr(store)
