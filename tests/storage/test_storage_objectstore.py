"""ObjectStorage details: HTTP servers without ranges or listing, conflicting creates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import obstore
import obstore.store
import pytest
from obstore.exceptions import AlreadyExistsError
from storage_helpers import QuietHandler, serve_directory

import atlas.storage.objectstore as objectstore
from atlas.storage import LocalStorage, ObjectStorage, open_storage
from atlas.storage.wrappers import CountingStorage

HTTP_OPTIONS: dict[str, Any] = {"client_options": {"allow_http": True}, "retry_config": {"max_retries": 0}}


@pytest.fixture
def plain_http(tmp_path: Path) -> Iterator[tuple[LocalStorage, str]]:
    """A directory served by a server that ignores Range headers and cannot list."""
    url, stop = serve_directory(tmp_path, QuietHandler)
    yield LocalStorage(tmp_path), url
    stop()


def test_http_without_range_support_reads_whole_objects(plain_http: tuple[LocalStorage, str]) -> None:
    files, url = plain_http
    files.put("d/seg", b"0123456789")
    st = open_storage(url, **HTTP_OPTIONS)
    assert st.get("d/seg") == b"0123456789"
    assert st.get_range("d/seg", 2, 3) == b"234"
    assert [bytes(b) for b in st.get_ranges("d/seg", [8, 0, 20], [5, 2, 1])] == [b"89", b"01", b""]
    assert [[bytes(b) for b in r] for r in st.get_many_ranges([("d/seg", [1], [1])])] == [[b"1"]]
    with pytest.raises(FileNotFoundError, match="d/none"):
        st.get_ranges("d/none", [0], [1])


def test_http_listing_needs_webdav(plain_http: tuple[LocalStorage, str]) -> None:
    _, url = plain_http
    st = open_storage(url, **HTTP_OPTIONS)
    with pytest.raises(OSError, match="WebDAV"):
        st.list("manifests/")


def test_conflicting_create_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 may answer a racing conditional create with 409, which obstore reports as
    "already exists" although nothing was written: that must not count as a loss."""
    st = ObjectStorage(obstore.store.MemoryStore())
    real = obstore.put
    calls = []

    def flaky(store: Any, path: str, data: Any, **kw: Any) -> Any:
        calls.append(kw.get("mode"))
        if len(calls) == 1:
            raise AlreadyExistsError("conflict")
        return real(store, path, data, **kw)

    monkeypatch.setattr(objectstore.obs, "put", flaky)
    assert st.put_if_absent("m/1", b"v") is True
    assert calls == ["create", "create"]
    assert st.put_if_absent("m/1", b"w") is False
    assert st.get("m/1") == b"v"


def test_ranges_past_the_end_in_one_span() -> None:
    """A coalesced span whose later ranges start past the end of the object."""
    st = ObjectStorage(obstore.store.MemoryStore())
    st.put("k", b"01234")
    got = st.get_ranges("k", [0, 7, 3, 5], [2, 2, 10, 1])
    assert [bytes(g) for g in got] == [b"01", b"", b"34", b""]


def test_range_requests_are_counted_per_span(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    st = CountingStorage(open_storage(f"s3://{s3_bucket}", **s3_options))
    st.put("seg", bytes(3 << 20))
    st.reset()
    st.get_ranges("seg", [0, 100, 2 << 20], [10, 10, 10])
    assert st.counts["get_ranges"] == 2
    st.get_many_ranges([("seg", [0], [1]), ("seg", [0, 1 << 19], [1, 1])])
    assert st.counts["get_ranges"] == 2 + 1 + 1
    assert st.counts["get_many_ranges"] == 1
    assert st.requests == 4
