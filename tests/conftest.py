"""Shared fixtures: a new store on each kind of backend, and an S3-compatible server (moto)
on 127.0.0.1 with fresh buckets in it."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import obstore.store
import pytest
from s3_helpers import serve_moto

import atlas
from atlas.storage import MemoryStorage

S3_REGION = "us-east-1"
S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"

_MUTATING = {"PUT", "POST", "DELETE"}

#: The backends the ``store`` fixture runs a test on.
STORE_BACKENDS = ["local", "memory", "obstore-memory"]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> atlas.Atlas:
    """A new, empty store on local disk, in a ``MemoryStorage`` or in obstore's
    ``MemoryStore``; ``atlas.Atlas.open(store.storage)`` opens it again.

    A test that needs one backend (a local path, say) makes its store itself."""
    if request.param == "local":
        return atlas.Atlas.create(tmp_path / "store")
    if request.param == "memory":
        return atlas.Atlas.create(MemoryStorage())
    return atlas.Atlas.create(obstore.store.MemoryStore())


class _SerialWrites:
    """WSGI middleware running one mutating request at a time.

    moto checks ``If-None-Match: *`` and then stores the object as two separate steps,
    so two racing conditional creates could both succeed, which real S3 never allows.
    Serialising writes gives the server S3's atomic conditional-create semantics; reads
    still run concurrently.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") in _MUTATING:
            with self.lock:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1 (free port), for the whole session."""
    with serve_moto(_SerialWrites) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_options(s3_server: str) -> dict[str, Any]:
    """obstore options reaching the test server (explicit dummy credentials, plain HTTP)."""
    return {
        "endpoint": s3_server,
        "region": S3_REGION,
        "access_key_id": S3_ACCESS_KEY,
        "secret_access_key": S3_SECRET_KEY,
        "virtual_hosted_style_request": False,
        "client_options": {"allow_http": True},
    }


@pytest.fixture(scope="session")
def _s3_client(s3_server: str) -> Any:
    boto3 = pytest.importorskip("boto3")
    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
    )


_bucket_ids = itertools.count()


@pytest.fixture
def make_s3_bucket(_s3_client: Any) -> Callable[[], str]:
    """Factory creating a new, empty bucket on the test server; returns its name."""

    def make() -> str:
        name = f"atlas-test-{next(_bucket_ids)}"
        _s3_client.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture
def s3_bucket(make_s3_bucket: Callable[[], str]) -> str:
    """A fresh, empty bucket on the test server."""
    return make_s3_bucket()
