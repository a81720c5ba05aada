"""open_storage: what each kind of location opens, and how options are handled."""

from __future__ import annotations

import gc
import pickle
from pathlib import Path
from typing import Any

import obstore.store
import pytest

from atlas.storage import LocalStorage, MemoryStorage, ObjectStorage, open_storage
from atlas.storage.objectstore import describe_store


def test_local_paths(tmp_path: Path) -> None:
    root = tmp_path / "s"
    for loc in (str(root), root):
        st = open_storage(loc)
        assert isinstance(st, LocalStorage)
        assert st.location == str(root)
    assert not root.exists()  # opening does not create
    with pytest.raises(FileNotFoundError):
        open_storage(root).get("atlas.json")
    st = open_storage(root, create=True)
    assert root.is_dir()
    st.put("a/b", b"x")
    assert (root / "a" / "b").read_bytes() == b"x"


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    st = open_storage("rel/store", create=True)
    assert st.location == str(tmp_path / "rel" / "store")


def test_a_file_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        open_storage(tmp_path / "f")


def test_file_urls(tmp_path: Path) -> None:
    st = open_storage(f"file://{tmp_path}/with%20space", create=True)
    assert isinstance(st, LocalStorage)
    assert st.location == str(tmp_path / "with space")
    assert isinstance(open_storage(f"file://localhost{tmp_path}"), LocalStorage)
    with pytest.raises(ValueError, match="host"):
        open_storage("file://elsewhere/x")


@pytest.mark.parametrize("bad", [b"/tmp/x", bytearray(b"/tmp/x"), memoryview(b"/tmp/x")])
def test_bytes_are_rejected(bad: Any) -> None:
    with pytest.raises(TypeError, match="bytes"):
        open_storage(bad)


def test_other_types_are_rejected() -> None:
    with pytest.raises(TypeError):
        open_storage(42)
    with pytest.raises(TypeError):
        open_storage(None)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="ftp"):
        open_storage("ftp://host/x")


def test_options_for_local_locations_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="region"):
        open_storage(tmp_path, region="x")
    with pytest.raises(TypeError):
        open_storage("memory://x", region="x")


def test_storage_is_returned_as_is(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    assert open_storage(st) is st
    with pytest.raises(TypeError):
        open_storage(st, region="x")


def test_obstore_store_instances(tmp_path: Path) -> None:
    store = obstore.store.LocalStore(tmp_path)
    st = open_storage(store)
    assert isinstance(st, ObjectStorage) and st.store is store
    st2 = open_storage(store, prefix="p/q")
    st2.put("k", b"v")
    assert (tmp_path / "p" / "q" / "k").read_bytes() == b"v"
    assert st2.location == f"file://{tmp_path}/p/q"
    with pytest.raises(TypeError):
        open_storage(store, region="x")
    with pytest.raises(TypeError):
        ObjectStorage(object())


def test_memory_urls_share_data() -> None:
    a = open_storage("memory://shared-test")
    b = open_storage("memory://shared-test/")
    assert isinstance(a, MemoryStorage) and a == b
    a.put("k", b"v")
    assert b.get("k") == b"v"
    assert a.location == "memory://shared-test"
    c = open_storage("memory://other-test")
    assert not c.exists("k")
    MemoryStorage.discard("shared-test")
    MemoryStorage.discard("other-test")
    assert not open_storage("memory://shared-test").exists("k")
    MemoryStorage.discard("shared-test")


def test_anonymous_memory_stores() -> None:
    a = open_storage("memory://")
    b = MemoryStorage()
    assert a != b
    a.put("k", b"v")
    assert open_storage(a.location).get("k") == b"v"
    assert pickle.loads(pickle.dumps(a)).get("k") == b"v"
    blob = pickle.dumps(a)
    del a
    gc.collect()
    with pytest.raises(RuntimeError, match="no longer exists"):
        pickle.loads(blob)


def test_memory_stores_do_not_cross_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    st = MemoryStorage("cross-process-test")
    blob = pickle.dumps(st)
    import atlas.storage.memory as memory

    monkeypatch.setattr(memory, "_PROCESS_TOKEN", "0-elsewhere")
    with pytest.raises(RuntimeError, match="another process"):
        pickle.loads(blob)
    MemoryStorage.discard("cross-process-test")


def test_obstore_memory_store_reopens_in_process() -> None:
    st = ObjectStorage(obstore.store.MemoryStore())
    st.put("k", b"v")
    assert st.location.startswith("memory://obstore-")
    assert open_storage(st.location) is st
    blob = pickle.dumps(st)
    assert pickle.loads(blob) is st
    del st
    gc.collect()
    with pytest.raises(RuntimeError, match="MemoryStore"):
        pickle.loads(blob)


def test_s3_url_options(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    # Client options given as plain keywords (as users tend to) work and still pickle.
    opts = {k: v for k, v in s3_options.items() if k != "client_options"}
    st = open_storage(f"s3://{s3_bucket}/pre/", allow_http=True, **opts)
    assert isinstance(st, ObjectStorage)
    assert st.location == f"s3://{s3_bucket}/pre"
    assert st.supports_conditional_put and not st.read_only
    assert st.put_if_absent("k", b"v") and not st.put_if_absent("k", b"w")
    clone = pickle.loads(pickle.dumps(st))
    assert clone.get("k") == b"v"
    assert open_storage(st.location, **s3_options).get("k") == b"v"
    assert st.store.config.get("conditional_put") == "etag"


def test_describe_store_locations(tmp_path: Path) -> None:
    assert describe_store(obstore.store.S3Store("bkt", prefix="a/b", region="us-east-1")) == "s3://bkt/a/b"
    assert describe_store(obstore.store.S3Store("bkt", region="us-east-1")) == "s3://bkt"
    assert describe_store(obstore.store.GCSStore("gb", prefix="p", skip_signature=True)) == "gs://gb/p"
    az = obstore.store.AzureStore("cont", prefix="p", account_name="acct", skip_signature=True)
    assert describe_store(az) == "abfs://cont@acct.dfs.core.windows.net/p"
    http = obstore.store.HTTPStore.from_url("https://example.com/data/")
    assert describe_store(http) == "https://example.com/data"
    assert describe_store(obstore.store.LocalStore(tmp_path)) == f"file://{tmp_path}"


def test_http_urls_are_read_only() -> None:
    st = open_storage("https://example.com/some/store")
    assert isinstance(st, ObjectStorage)
    assert st.read_only and st.location == "https://example.com/some/store"
