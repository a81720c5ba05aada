"""Byte stores Atlas keeps its files in: local directories, memory and object stores.

``open_storage`` turns whatever a user passed as a store location into a
:class:`~atlas.storage.base.Storage`.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from .base import COALESCE_GAP, Storage, check_key, check_prefix, coalesce_ranges
from .local import LocalStorage
from .memory import MemoryStorage, lookup_in_process
from .objectstore import ObjectStorage, is_obstore_store

__all__ = [
    "COALESCE_GAP",
    "DEFAULT_RETRY_CONFIG",
    "LocalStorage",
    "MemoryStorage",
    "ObjectStorage",
    "Storage",
    "check_key",
    "check_prefix",
    "coalesce_ranges",
    "open_storage",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_OBJECT_SCHEMES = {"s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl", "http", "https"}
# obstore's client (HTTP) options; given as plain keywords they are moved into
# ``client_options`` (obstore misreads some of them as service config otherwise).
_CLIENT_OPTIONS = {
    "allow_http",
    "allow_invalid_certificates",
    "connect_timeout",
    "default_content_type",
    "default_headers",
    "http1_only",
    "http2_only",
    "http2_keep_alive_interval",
    "http2_keep_alive_timeout",
    "http2_keep_alive_while_idle",
    "http2_max_frame_size",
    "pool_idle_timeout",
    "pool_max_idle_per_host",
    "proxy_url",
    "proxy_ca_certificate",
    "proxy_excludes",
    "randomize_addresses",
    "read_timeout",
    "root_certificate",
    "timeout",
    "user_agent",
}


#: How obstore retries requests to object stores unless ``retry_config`` says otherwise.
#: Answers 5xx (S3's ``503 SlowDown``, say), dropped connections and timed-out reads are
#: sent again after 0.1 s, then twice as long each time (with jitter, at most 15 s), up
#: to 10 times and for at most 2 minutes after the first attempt; then the call raises
#: :class:`atlas.errors.StorageError`.
DEFAULT_RETRY_CONFIG: dict[str, Any] = {
    "max_retries": 10,
    "backoff": {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=15),
        "base": 2,
    },
    "retry_timeout": timedelta(minutes=2),
}
_DURATIONS = ("retry_timeout", "init_backoff", "max_backoff")


def open_storage(location: Any, *, create: bool = False, **options: Any) -> Storage:
    """Open the store at ``location``.

    ``location`` may be a :class:`Storage` (returned as is), an obstore store, a local
    path (str or os.PathLike) or a URL: ``file://``, ``memory://name``, ``s3://``,
    ``gs://``, ``az://``/``abfs://`` or ``http(s)://`` (read-only). ``options`` go to
    ``obstore.store.from_url`` for object-store URLs (region, endpoint, credentials,
    ``client_options``...; anything missing is read from the environment by obstore);
    ``prefix`` is also accepted with an obstore store. ``create`` makes a missing local
    directory; buckets and containers must already exist.

    Failed requests to object stores are retried as :data:`DEFAULT_RETRY_CONFIG` says;
    ``retry_config={"max_retries": 3, "retry_timeout": 30}`` overrides any of its
    entries (durations as ``timedelta`` or seconds; ``{"max_retries": 0}`` turns
    retries off).
    """
    if isinstance(location, Storage):
        if options:
            raise TypeError(f"unexpected options for an already open store: {sorted(options)}")
        return location
    if isinstance(location, (bytes, bytearray, memoryview)):
        raise TypeError("store location must be a str or os.PathLike, not bytes")
    if is_obstore_store(location):
        prefix = options.pop("prefix", "")
        _no_options(options, "an obstore store")
        return ObjectStorage(location, prefix)
    if isinstance(location, os.PathLike):
        path = os.fspath(location)
        if not isinstance(path, str):
            raise TypeError("store location must be a str or os.PathLike, not bytes")
        _no_options(options, "a local path")
        return LocalStorage(path, create=create)
    if not isinstance(location, str):
        raise TypeError(
            f"store location must be a path, URL, Storage or obstore store, not {type(location).__name__}"
        )
    m = _SCHEME.match(location)
    if m is None:
        _no_options(options, "a local path")
        return LocalStorage(location, create=create)
    scheme = m.group(1).lower()
    if scheme == "file":
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URLs must name a local path, not host {parts.netloc!r}: {location}")
        _no_options(options, "a file:// URL")
        return LocalStorage(unquote(parts.path) or "/", create=create)
    if scheme == "memory":
        _no_options(options, "a memory:// URL")
        name = location[m.end() :].strip("/")
        if not name:
            return MemoryStorage()
        other = lookup_in_process(name)
        return other if other is not None else MemoryStorage(name)
    if scheme in _OBJECT_SCHEMES:
        return _open_object_store(location, scheme, options)
    raise ValueError(f"unsupported store URL scheme {scheme!r} in {location!r}")


def _no_options(options: dict[str, Any], what: str) -> None:
    if options:
        raise TypeError(f"unexpected options for {what}: {sorted(options)}")


def _open_object_store(url: str, scheme: str, options: dict[str, Any]) -> ObjectStorage:
    from obstore.store import from_url

    opts = dict(options)
    client = dict(opts.pop("client_options", None) or {})
    for key in list(opts):
        if key in _CLIENT_OPTIONS:
            client[key] = opts.pop(key)
    if scheme in ("s3", "s3a"):
        # Atlas commits with conditional creates (If-None-Match: *).
        config = opts.get("config") or {}
        if "conditional_put" not in opts and "conditional_put" not in config:
            opts["conditional_put"] = "etag"
    url = url.rstrip("/")
    target = url + "/" if scheme in ("http", "https") else url
    if client:
        opts["client_options"] = client
    opts["retry_config"] = _retry_config(opts.get("retry_config"))
    store = from_url(target, **opts)
    return ObjectStorage(store, location=url)


def _retry_config(given: Any) -> dict[str, Any]:
    """:data:`DEFAULT_RETRY_CONFIG` with the entries of ``given`` put over it."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise TypeError(f"retry_config must be a dict, not {type(given).__name__}")
    backoff = given.get("backoff") or {}
    if not isinstance(backoff, dict):
        raise TypeError(f"retry_config['backoff'] must be a dict, not {type(backoff).__name__}")
    config = {**DEFAULT_RETRY_CONFIG, **given, "backoff": {**DEFAULT_RETRY_CONFIG["backoff"], **backoff}}
    for where in (config, config["backoff"]):
        for name in _DURATIONS:
            value = where.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                where[name] = timedelta(seconds=value)
    return config
