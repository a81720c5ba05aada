"""Transient storage errors are retried; failures of the store are StorageError naming the
store, and an ingest never blames them on an input file.

Object-store faults are real HTTP answers: a moto S3 server on 127.0.0.1 behind a WSGI
middleware that answers chosen requests with an S3 error (``503 SlowDown``, ``403
AccessDenied``), before or after letting the server apply them. Local-disk faults are
``OSError``s with a transient errno raised once by a patched ``os`` function.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import obstore
import obstore.store
import pytest
from netcdf_helpers import write_tree
from obstore.exceptions import GenericError
from s3_helpers import serve_moto

import atlas
import atlas.integrations.netcdf as netcdf
import atlas.storage.local as local
import atlas.storage.objectstore as objectstore
from atlas.cli import main
from atlas.errors import StorageError
from atlas.integrations.netcdf import IngestError, ingest_directory
from atlas.storage import DEFAULT_RETRY_CONFIG, LocalStorage, ObjectStorage, open_storage
from atlas.storage.wrappers import ReportingStorage

REGION = "us-east-1"
KEY_ID = SECRET = "testing"

# ---------------------------------------------------------------------------- the server


@dataclass
class Rule:
    """Answer ``times`` requests (None: all) of ``method`` whose path contains ``match``."""

    method: str
    match: str
    status: str
    code: str
    message: str
    times: int | None
    apply_first: bool  # let the server carry the request out, then lose its answer


class FaultyS3:
    """WSGI middleware in front of moto: fails the requests its rules pick, logs all."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str]] = []
        self.failed: list[tuple[str, str]] = []

    def fail(
        self,
        method: str,
        match: str,
        *,
        status: str = "503 Slow Down",
        code: str = "SlowDown",
        message: str = "Please reduce your request rate.",
        times: int | None = 1,
        apply_first: bool = False,
    ) -> None:
        with self.lock:
            self.rules.append(Rule(method, match, status, code, message, times, apply_first))

    def reset(self) -> None:
        with self.lock:
            self.rules.clear()
            self.log.clear()
            self.failed.clear()

    def requests(self, method: str, match: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.log if m == method and match in p)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self.lock:
            self.log.append((method, path))
            rule = next(
                (r for r in self.rules if r.method == method and r.match in path and r.times != 0), None
            )
            if rule is not None:
                self.failed.append((method, path))
                if rule.times is not None:
                    rule.times -= 1
        if rule is None:
            return self.app(environ, start_response)
        if rule.apply_first:
            list(self.app(environ, lambda *args, **kwargs: None))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{rule.code}</Code><Message>{rule.message}</Message></Error>"
        ).encode()
        start_response(rule.status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[tuple[str, FaultyS3]]:
    made: list[FaultyS3] = []

    def wrap(app: Any) -> FaultyS3:
        made.append(FaultyS3(app))
        return made[0]

    with serve_moto(wrap) as endpoint:
        yield endpoint, made[0]


_buckets = itertools.count()


@pytest.fixture
def s3(faulty_server: tuple[str, FaultyS3]) -> Iterator[tuple[str, dict[str, Any], FaultyS3]]:
    """A new bucket on the faulty server: (store URL, options, the fault injector)."""
    boto3 = pytest.importorskip("boto3")
    endpoint, faults = faulty_server
    bucket = f"retries-{os.getpid()}-{next(_buckets)}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
    ).create_bucket(Bucket=bucket)
    faults.reset()
    options = {
        "endpoint": endpoint,
        "region": REGION,
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        "virtual_hosted_style_request": False,
        "client_options": {"allow_http": True},
    }
    yield f"s3://{bucket}/argo", options, faults
    faults.reset()


@pytest.fixture
def s3_env(s3: tuple[str, dict[str, Any], FaultyS3], monkeypatch: pytest.MonkeyPatch) -> tuple[str, FaultyS3]:
    """As ``s3``, with the options in the environment (how the ``atlas`` command gets them)."""
    url, options, faults = s3
    for name, value in {
        "AWS_ENDPOINT": options["endpoint"],
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    }.items():
        monkeypatch.setenv(name, value)
    return url, faults


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default retry policy, made fast: 2 retries, 10-50 ms apart."""
    monkeypatch.setitem(DEFAULT_RETRY_CONFIG, "max_retries", 2)
    monkeypatch.setitem(
        DEFAULT_RETRY_CONFIG,
        "backoff",
        {"init_backoff": timedelta(milliseconds=10), "max_backoff": timedelta(milliseconds=50), "base": 2},
    )


def _fill(store: atlas.Atlas, n: int = 3) -> None:
    for i in range(n):
        ds = store.create_dataset(f"p{i}")
        ds.define_array("t", "float32", ["depth"], [50], fill_value=float("nan"))
        ds.write_array("t", [0], np.arange(50, dtype=np.float32) + i)


def _check_filled(store: atlas.Atlas, n: int = 3) -> None:
    assert store.list_datasets() == [f"p{i}" for i in range(n)]
    for i in range(n):
        np.testing.assert_array_equal(store.open_dataset(f"p{i}").read_array("t"), np.arange(50) + i)


# ---------------------------------------------------------------------------- object stores


def test_a_503_on_a_segment_write_is_retried(s3: tuple[str, dict[str, Any], FaultyS3]) -> None:
    url, options, faults = s3
    store = atlas.Atlas.create(url, **options)
    _fill(store)
    faults.fail("PUT", "/data/", times=1)
    store.flush()
    assert len(faults.failed) == 1
    assert faults.requests("PUT", "/data/") == 2  # the 503, then the retry
    _check_filled(atlas.Atlas.open(url, **options))


def test_a_lost_answer_to_the_commit_is_not_a_conflict(s3: tuple[str, dict[str, Any], FaultyS3]) -> None:
    """The server stores the manifest but its answer is a 503: the retried conditional
    create then finds the manifest there, and it is this handle's own."""
    url, options, faults = s3
    store = atlas.Atlas.create(url, **options)
    _fill(store)
    faults.fail("PUT", "/manifests/0000000001", times=1, apply_first=True)
    store.flush()
    assert faults.failed and store.version == 1
    _check_filled(atlas.Atlas.open(url, **options))


def test_another_writers_manifest_still_conflicts_after_a_retry(
    s3: tuple[str, dict[str, Any], FaultyS3],
) -> None:
    url, options, faults = s3
    mine = atlas.Atlas.create(url, **options)
    theirs = atlas.Atlas.open(url, **options)
    _fill(theirs, 1)
    theirs.flush()
    _fill(mine, 2)
    faults.fail("PUT", "/manifests/0000000001", times=1)  # retried, then finds theirs
    with pytest.raises(atlas.ConflictError):
        mine.flush()
    assert faults.failed
    assert atlas.Atlas.open(url, **options).list_datasets() == ["p0"]


def test_a_persistent_503_is_a_storage_error_naming_the_store(
    s3: tuple[str, dict[str, Any], FaultyS3],
) -> None:
    url, options, faults = s3
    retry = {"max_retries": 2, "backoff": {"init_backoff": 0.01, "max_backoff": 0.05}}
    store = atlas.Atlas.create(url, retry_config=retry, **options)
    _fill(store)
    faults.fail("PUT", "/data/", times=None)
    with pytest.raises(StorageError, match="SlowDown") as info:
        store.flush()
    assert isinstance(info.value, OSError)
    assert url in str(info.value) and "Debug source" not in str(info.value)
    assert info.value.location == url
    assert faults.requests("PUT", "/data/") == 3  # the first attempt and 2 retries
    assert atlas.Atlas.open(url, **options).version == 0


def test_default_retry_config_and_overrides() -> None:
    st = open_storage("s3://bucket/a", region=REGION)
    assert isinstance(st, ObjectStorage)
    assert st.store.retry_config["max_retries"] == DEFAULT_RETRY_CONFIG["max_retries"] == 10
    assert st.store.retry_config["retry_timeout"] == timedelta(minutes=2)
    st = open_storage("s3://bucket/a", region=REGION, retry_config={"max_retries": 3, "retry_timeout": 30})
    config = st.store.retry_config
    assert config["max_retries"] == 3 and config["retry_timeout"] == timedelta(seconds=30)
    assert config["backoff"]["max_backoff"] == timedelta(seconds=15)  # kept from the defaults
    off = open_storage("gs://bucket/a", retry_config={"max_retries": 0})
    assert off.store.retry_config["max_retries"] == 0
    with pytest.raises(TypeError, match="retry_config"):
        open_storage("s3://bucket/a", region=REGION, retry_config=3)


@pytest.mark.parametrize("call", ["get", "put", "put_if_absent", "delete", "list", "size", "get_ranges"])
def test_obstore_failures_become_storage_errors(call: str, monkeypatch: pytest.MonkeyPatch) -> None:
    st = ObjectStorage(obstore.store.MemoryStore())
    st.put("k", b"0123456789")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise GenericError("Generic S3 error: 500 Internal Server Error\n\nDebug source:\nlots of it")

    for name in ("get", "put", "delete", "list", "head", "get_ranges"):
        monkeypatch.setattr(objectstore.obs, name, broken)
    calls: dict[str, Callable[[], Any]] = {
        "get": lambda: st.get("k"),
        "put": lambda: st.put("k", b"x"),
        "put_if_absent": lambda: st.put_if_absent("new", b"x"),
        "delete": lambda: st.delete("k"),
        "list": lambda: st.list(""),
        "size": lambda: st.size("k"),
        "get_ranges": lambda: st.get_ranges("k", [0], [4]),
    }
    with pytest.raises(StorageError) as info:
        calls[call]()
    text = str(info.value)
    assert st.location in text and "500 Internal Server Error" in text and "Debug source" not in text
    assert isinstance(info.value.__cause__, GenericError)


def test_missing_objects_stay_file_not_found() -> None:
    st = ObjectStorage(obstore.store.MemoryStore())
    for call in (lambda: st.get("no"), lambda: st.size("no"), lambda: st.get_ranges("no", [0], [1])):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert not isinstance(info.value, StorageError)
    st.delete("no")
    st.delete_many(["no", "nor"])


# ---------------------------------------------------------------------------- the ingest on S3


def _small_write_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make an ingest write chunks ahead while it adds files (a 128-byte buffer with
    ``chunk_size=256``), so that the store is written to in the middle of the loop."""
    monkeypatch.setattr(netcdf, "MIN_INGEST_BUFFER_BYTES", 1)


def test_ingest_rides_out_a_503_in_the_write_ahead(
    s3_env: tuple[str, FaultyS3], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, faults = s3_env
    write_tree(tmp_path / "src", 4)
    _small_write_ahead(monkeypatch)
    faults.fail("PUT", "/data/", times=1)
    report = ingest_directory(
        tmp_path / "src", url, jobs=1, skip_errors=True, chunk_size=256, max_inline_bytes=1 << 20
    )
    assert report.skipped == []
    assert len(report.added) == 4 and len(faults.failed) == 1
    assert sorted(atlas.Atlas.open(url).list_datasets()) == sorted(report.added)


def test_ingest_stops_on_a_failing_store_and_skips_no_file(
    s3_env: tuple[str, FaultyS3], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_retries: None
) -> None:
    url, faults = s3_env
    write_tree(tmp_path / "src", 4)
    _small_write_ahead(monkeypatch)
    faults.fail("PUT", "/data/", times=None)
    with pytest.raises(IngestError) as info:
        ingest_directory(tmp_path / "src", url, jobs=1, skip_errors=True, chunk_size=256, max_inline_bytes=1 << 20)
    text = str(info.value)
    assert "storage error" in text and url in text and "SlowDown" in text
    assert "stopped while adding" in text and "not that file's fault" in text
    assert isinstance(info.value.__cause__, StorageError)
    # the segments of one write-ahead, each tried three times: then it stopped
    tries = Counter(p for m, p in faults.log if m == "PUT" and "/data/" in p)
    assert tries and set(tries.values()) == {3}
    assert atlas.Atlas.open(url).list_datasets() == []


def test_cli_ingest_on_a_failing_store_exits_1_and_lists_no_skipped_file(
    s3_env: tuple[str, FaultyS3],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole command, in this process: the bucket refuses every segment write."""
    url, faults = s3_env
    write_tree(tmp_path / "src", 3)
    _small_write_ahead(monkeypatch)
    faults.fail("PUT", "/data/", status="403 Forbidden", code="AccessDenied", message="Access Denied", times=None)
    rc = main(["ingest", str(tmp_path / "src"), url, "--skip-errors", "--jobs", "1", "--chunk-size", "256", "-q"])
    out, err = capsys.readouterr()
    assert rc == 1, (out, err)
    assert "skipped" not in out and ".nc:" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("atlas ingest: error: storage error"), err
    assert url in lines[0] and "AccessDenied" in lines[0]
    assert atlas.Atlas.open(url).list_datasets() == []


def test_cli_ingest_rides_out_a_503(
    s3_env: tuple[str, FaultyS3], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, faults = s3_env
    write_tree(tmp_path / "src", 3)
    faults.fail("PUT", "/data/", times=1)
    faults.fail("PUT", "/manifests/0000000001", times=1, apply_first=True)
    rc = main(["ingest", str(tmp_path / "src"), url, "--skip-errors", "--jobs", "1", "-q"])
    out, err = capsys.readouterr()
    assert rc == 0, (out, err)
    assert "skipped" not in out and len(faults.failed) == 2
    assert len(atlas.Atlas.open(url).list_datasets()) == 3


# ---------------------------------------------------------------------------- local disk


def _fail_once(monkeypatch: pytest.MonkeyPatch, name: str, code: int, *, after: bool = False) -> list[int]:
    """Make ``os.<name>`` raise ``OSError(code)`` on its first call (after doing its work
    when ``after``); return the list of call numbers that failed."""
    real = getattr(os, name)
    calls = itertools.count(1)
    failed: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        n = next(calls)
        if n == 1:
            if after:
                real(*args, **kwargs)
            failed.append(n)
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, flaky)
    return failed


@pytest.mark.parametrize("code", [errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT])
def test_local_writes_retry_transient_errors(code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = LocalStorage(tmp_path / "s", create=True)
    failed = _fail_once(monkeypatch, "replace", code)
    st.put("a/k", b"v")
    assert failed == [1] and st.get("a/k") == b"v"
    assert not [p for p in (tmp_path / "s").rglob(".tmp-*")]


def test_local_reads_retry_transient_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = LocalStorage(tmp_path / "s", create=True)
    st.put("k", b"0123456789")
    failed = _fail_once(monkeypatch, "pread", errno.EAGAIN)
    assert [bytes(b) for b in st.get_ranges("k", [2], [3])] == [b"234"]
    assert failed == [1]
    failed = _fail_once(monkeypatch, "scandir", errno.EBUSY)
    assert st.list() == ["k"] and failed == [1]


def test_local_create_that_landed_before_a_transient_error_is_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``link`` made the manifest, then reported EBUSY: the retry finds it, with our bytes."""
    st = LocalStorage(tmp_path / "s", create=True)
    failed = _fail_once(monkeypatch, "link", errno.EBUSY, after=True)
    assert st.put_if_absent("m/1", b"mine") is True
    assert failed == [1] and st.get("m/1") == b"mine"
    monkeypatch.undo()
    failed = _fail_once(monkeypatch, "link", errno.EINTR)
    assert st.put_if_absent("m/1", b"other") is False  # retried, and it is someone else's
    assert failed == [1] and st.get("m/1") == b"mine"


def test_local_retries_are_bounded_and_only_for_transient_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = LocalStorage(tmp_path / "s", create=True)
    monkeypatch.setattr(local, "RETRY_PAUSES", (0.0, 0.0, 0.0))
    calls: list[int] = []

    def busy(src: str, dst: str) -> None:
        calls.append(1)
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(os, "replace", busy)
    with pytest.raises(OSError) as info:
        st.put("k", b"v")
    assert info.value.errno == errno.EBUSY and len(calls) == 4  # the first try and 3 retries
    calls.clear()

    def full(src: str, dst: str) -> None:
        calls.append(1)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        st.put("k", b"v")
    assert len(calls) == 1
    assert not [p for p in (tmp_path / "s").rglob(".tmp-*")]


def test_reporting_storage_names_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = ReportingStorage(LocalStorage(tmp_path / "s", create=True))
    with pytest.raises(FileNotFoundError) as missing:
        st.get("nothing")
    assert not isinstance(missing.value, StorageError)
    with pytest.raises(ValueError):
        st.put("../escape", b"x")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StorageError, match="No space left") as info:
        st.put("k", b"v")
    assert info.value.errno == errno.ENOSPC and str(tmp_path / "s") in str(info.value)


def test_local_ingest_stops_on_a_full_disk_and_skips_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(tmp_path / "src", 4)
    _small_write_ahead(monkeypatch)
    real = os.write

    def full(fd: int, data: Any) -> int:
        # the store's files are written through temporary files; the source files are only read
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "store")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    store = atlas.Atlas.create(tmp_path / "store")
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(IngestError) as info:
        ingest_directory(
            tmp_path / "src", tmp_path / "store", jobs=1, skip_errors=True, chunk_size=256, max_inline_bytes=1 << 20
        )
    monkeypatch.undo()
    text = str(info.value)
    assert "storage error in" in text and str(tmp_path / "store") in text and "No space left" in text
    assert "stopped while adding" in text
    assert atlas.Atlas.open(tmp_path / "store").version == store.version


def test_an_input_file_failing_while_streamed_is_skipped_not_blamed_on_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError reading a streamed input file is that file's fault: with skip_errors it
    is skipped and the rest committed (it used to stop the ingest as a store failure)."""
    import dask
    import dask.array as da
    import xarray as xr

    write_tree(tmp_path / "src", 3)
    real_open = netcdf.open_netcdf

    def unreadable(path: Any, chunk_bytes: int | None = None, group: str | None = None) -> xr.Dataset:
        if Path(path).name != "p0001.nc":
            return real_open(path, chunk_bytes=chunk_bytes, group=group)

        def read() -> np.ndarray:
            raise OSError(errno.EIO, "Input/output error")

        temp = da.from_delayed(dask.delayed(read)(), shape=(20,), dtype=np.float32)
        return xr.Dataset({"TEMP": ("depth", temp)})

    monkeypatch.setattr(netcdf, "open_netcdf", unreadable)
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1, skip_errors=True, max_inline_bytes=0)
    assert [f for f, _ in report.skipped] == ["north/p0001.nc"]
    assert "Input/output error" in report.skipped[0][1]
    assert sorted(atlas.Atlas.open(tmp_path / "store").list_datasets()) == ["south:p0000", "south:p0002"]
