"""The Storage protocol's suite (:class:`atlas.testing.storage.StorageSuite`), run against
every backend.

Backends: local directory, in-memory, obstore MemoryStore, obstore LocalStore, S3 (a
moto server on 127.0.0.1) and HTTP (read-only, a range-capable ``http.server``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import obstore.store
import pytest
from storage_helpers import RangeRequestHandler, serve_directory

from atlas.errors import ReadOnlyError
from atlas.storage import LocalStorage, MemoryStorage, ObjectStorage, Storage, open_storage
from atlas.testing.storage import StorageSuite

# ---------------------------------------------------------------- backends


class TestLocalStorage(StorageSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Storage:
        return LocalStorage(tmp_path / "store", create=True)


class TestMemoryStorage(StorageSuite):
    @pytest.fixture
    def store(self, request: pytest.FixtureRequest) -> Iterator[Storage]:
        name = f"suite-{request.node.name}"
        yield MemoryStorage(name)
        MemoryStorage.discard(name)


class TestObstoreMemoryStore(StorageSuite):
    @pytest.fixture
    def store(self) -> Storage:
        return ObjectStorage(obstore.store.MemoryStore())


class TestObstoreLocalStore(StorageSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Storage:
        root = tmp_path / "obstore-local"
        root.mkdir()
        return ObjectStorage(obstore.store.LocalStore(root))


class TestObstoreLocalStoreWithPrefix(StorageSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Storage:
        root = tmp_path / "obstore-local"
        root.mkdir()
        return ObjectStorage(obstore.store.LocalStore(root), "nested/prefix")


class TestS3(StorageSuite):
    @pytest.fixture
    def reopen_options(self, s3_options: dict[str, Any]) -> dict[str, Any]:
        return s3_options

    @pytest.fixture
    def store(self, s3_bucket: str, s3_options: dict[str, Any]) -> Storage:
        return open_storage(f"s3://{s3_bucket}/some/prefix", **s3_options)


# ---------------------------------------------------------------- HTTP (read-only)


HTTP_OPTIONS: dict[str, Any] = {"client_options": {"allow_http": True}, "retry_config": {"max_retries": 0}}


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("www")
    url, stop = serve_directory(root, RangeRequestHandler)
    yield root, url
    stop()


class TestHTTP(StorageSuite):
    can_list = False  # plain HTTP servers cannot list (obstore lists over WebDAV)

    @pytest.fixture
    def reopen_options(self) -> dict[str, Any]:
        return HTTP_OPTIONS

    @pytest.fixture
    def store(self, http_root: tuple[Path, str], request: pytest.FixtureRequest) -> Storage:
        root, url = http_root
        sub = f"t{abs(hash(request.node.nodeid)):x}"
        (root / sub).mkdir()
        return open_storage(f"{url}/{sub}", **HTTP_OPTIONS)

    @pytest.fixture
    def writer(self, store: Storage, http_root: tuple[Path, str]) -> Storage:
        root, url = http_root
        return LocalStorage(root / store.location[len(url) + 1 :])

    def test_is_read_only(self, store: Storage, writer: Storage) -> None:
        assert store.read_only
        assert not store.supports_conditional_put
        writer.put("k", b"v")
        for call in (
            lambda: store.put("k", b"x"),
            lambda: store.put_if_absent("new", b"x"),
            lambda: store.delete("k"),
            lambda: store.delete_many(["k"]),
        ):
            with pytest.raises(ReadOnlyError, match="read-only over HTTP"):
                call()
        assert store.get("k") == b"v"
