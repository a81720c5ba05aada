"""Shared tools of the reliability suite (no tests here).

* ``snapshot``: the full logical content of a store, read from a fresh handle, in a
  canonical form where floats compare by their bits (so NaN equals NaN, and -0.0 does
  not equal 0.0) and order matters wherever the API promises an order.
* ``store_files`` / ``stray_files``: what is on disk versus what the current manifest
  references.
* manifest and chunk-index codecs for crafting hostile files: decode a real file, edit
  it, re-encode it with a fresh CRC-32C so that the checksum passes and the semantic
  checks are what gets tested.
* ``Tally``: counts of fault points, crashes and corrupt inputs, printed as one summary
  line per test (``pytest -rP`` shows them).
"""

from __future__ import annotations

import json
import os
import secrets
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lz4.frame
import msgpack
import numpy as np
import zstandard

import atlas
from atlas.format import shard as shard_format
from atlas.format.chunkindex import (
    COLUMNAR_VERSION,
    GROUP_ROWS,
    HEADER,
    INDEX_DTYPE,
    ChunkIndex,
    merge_rows,
)
from atlas.format.codec import checksum
from atlas.format.manifest import parse_manifest_key

# --------------------------------------------------------------------------- canonical forms


def canon(x: Any) -> Any:
    """A hashable, exactly comparable form of an API value (floats by their bits)."""
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, (float, np.floating)):
        return ("f", struct.pack(">d", float(x)).hex())
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, str):
        return ("s", x)
    if isinstance(x, (bytes, bytearray)):
        return ("b", bytes(x))
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            return ("a", "O", x.shape, tuple(canon(v) for v in x.ravel().tolist()))
        return ("a", x.dtype.str, x.shape, np.ascontiguousarray(x).tobytes())
    if isinstance(x, dict):
        return ("d", tuple((k, canon(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return ("l", tuple(canon(v) for v in x))
    raise TypeError(f"cannot canonicalise {type(x).__name__}")


def dataset_snapshot(ds: atlas.DatasetView) -> Any:
    """Everything the API shows about one dataset."""
    arrays = []
    for name in ds.list_arrays():
        arrays.append(
            (
                name,
                canon(ds.array_meta(name)),
                canon(ds.array_fill_value(name)),
                canon(ds.read_array(name)),
                canon(ds.array_stats(name)),
                canon(ds.array_attributes(name)),
            )
        )
    return (tuple(arrays), canon(ds.attributes()), canon(ds.attribute_dtypes()))


def handle_snapshot(store: atlas.Atlas) -> Any:
    """Everything the API shows about a store, through this handle."""
    names = store.list_datasets()
    return (
        tuple(names),
        tuple(store.list_arrays()),
        tuple((n, dataset_snapshot(store.open_dataset(n))) for n in names),
    )


def snapshot(location: Any) -> Any:
    """The logical content of the store, read from a fresh handle."""
    return handle_snapshot(atlas.Atlas.open(location))


def without(snap: Any, *names: str) -> Any:
    """A snapshot with some datasets left out (list_arrays is then not comparable)."""
    keep = tuple(n for n in snap[0] if n not in names)
    return (keep, None, tuple(e for e in snap[2] if e[0] not in names))


# --------------------------------------------------------------------------- files on disk


def store_files(root: Path) -> set[str]:
    """Every file under the store directory, as a '/'-separated relative path."""
    out = set()
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            out.add(rel.replace(os.sep, "/"))
    return out


def read_config(root: Path) -> dict[str, Any]:
    return json.loads((root / "atlas.json").read_text())


def manifest_paths(root: Path) -> list[Path]:
    """Manifest files, oldest first (other files in manifests/ are not manifests)."""
    found = [(parse_manifest_key(f"manifests/{p.name}"), p) for p in (root / "manifests").iterdir()]
    return [p for v, p in sorted((v, p) for v, p in found if v is not None)]


def current_manifest_path(root: Path) -> Path:
    return manifest_paths(root)[-1]


def as_version_1(root: Path) -> None:
    """Rewrite the newest manifest of the store at ``root`` as a version-1 manifest: the
    datasets listed in it, one index file per variable (its runs merged), recorded in
    ``index_checks``. Crafted-file tests plant their damage in this layout, which readers
    still read: the checks of records, index rows and blocks are the same for both versions."""
    cfg = read_config(root)
    mp = current_manifest_path(root)
    head, doc = _decode_file(mp.read_bytes(), cfg["meta_format"], cfg["meta_compression"])
    if "shards" not in doc:
        return
    _inline_shards(root, doc, cfg["meta_format"], cfg["meta_compression"])
    head["format_version"] = 1
    checks = {}
    for v in doc["variables"]:
        v[3] = [seg[:2] for seg in v[3]]  # [key, size]: a variable's own bytes are not listed
        runs = v[2]
        if not isinstance(runs, list):
            continue
        parts = []
        for key, offset, length, _, _ in runs:
            parts.append(decode_index_file((root / key).read_bytes()[offset : offset + length]))
        v[2] = None
        if parts:
            rows = merge_rows(parts)
            v[2] = f"index/v{v[1]}-{secrets.token_hex(10)}.idx"
            data = ChunkIndex(rows).to_bytes()
            (root / v[2]).write_bytes(data)
            checks[v[2]] = [len(data), HEADER.unpack_from(data)[4]]
    doc["index_checks"] = checks
    mp.write_bytes(encode_manifest_file(head, doc, cfg["meta_format"], cfg["meta_compression"]))


def referenced_files(root: Path) -> set[str]:
    """Data, index and shard files the newest manifest refers to."""
    cfg = read_config(root)
    data = current_manifest_path(root).read_bytes()
    _, doc = decode_manifest_file(data, cfg["meta_format"], cfg["meta_compression"])
    refs = set()
    for _, _, index, segs, _ in doc["variables"]:
        if isinstance(index, str):
            refs.add(index)
        elif index:
            refs.update(r[0] for r in index)
        refs.update(seg[0] for seg in segs)
    refs.update(s[0] for s in doc.get("shards", []))
    return refs


def stray_files(root: Path) -> set[str]:
    """Files that are neither the config, a manifest, nor referenced by the newest manifest."""
    refs = referenced_files(root)
    return {
        f
        for f in store_files(root)
        if f != "atlas.json" and not f.startswith("manifests/") and f not in refs
    }


# --------------------------------------------------------------------------- crafting files


def _decode_section(body: bytes, meta_format: str, meta_compression: str) -> Any:
    if meta_compression == "zstd":
        body = zstandard.ZstdDecompressor().decompress(body)
    elif meta_compression == "lz4":
        body = lz4.frame.decompress(body)
    if meta_format == "json":
        return json.loads(body.decode("utf-8", "surrogatepass"))
    return msgpack.unpackb(body, raw=False, strict_map_key=False, unicode_errors="surrogatepass")


def decode_manifest_file(
    source: bytes | Path, meta_format: str = "json", meta_compression: str = "none"
) -> tuple[dict[str, Any], Any]:
    """(header, body document) of a manifest file, without any validation.

    Given the path of a store's newest manifest, a version-2 manifest is first rewritten as
    version 1 (``as_version_1``), the layout crafted-file tests plant their damage in: the
    document then lists the datasets and one index file per variable, and written back with
    ``encode_manifest_file`` it is a manifest readers still read."""
    if isinstance(source, Path):
        if source == current_manifest_path(source.parent.parent):
            as_version_1(source.parent.parent)
        source = source.read_bytes()
    return _decode_file(source, meta_format, meta_compression)


def _decode_file(data: bytes, meta_format: str, meta_compression: str) -> tuple[dict[str, Any], Any]:
    nl = data.index(b"\n")
    return json.loads(data[:nl]), _decode_section(data[nl + 1 :], meta_format, meta_compression)


def _inline_shards(root: Path, doc: dict[str, Any], meta_format: str, meta_compression: str) -> None:
    """Put the datasets of a version-2 document's shards in it, as version 1 lists them."""
    datasets = []
    for key, _rows, end, _ in doc.pop("shards"):
        raw = (root / key).read_bytes()
        shead = json.loads(raw[: raw.index(b"\n")])
        names = _decode_section(raw[raw.index(b"\n") + 1 : end], meta_format, meta_compression)
        if shead["format_version"] >= shard_format.LAYOUT_VERSION:  # records by layout
            built, _, _ = shard_format.decode_records(raw, names, (meta_format, meta_compression), key)
            datasets.extend(list(rec) for rec in built)
            continue
        body = end + shead["columns_length"]  # the array columns come between names and records
        records = _decode_section(raw[body : body + shead["body_length"]], meta_format, meta_compression)
        datasets.extend([n, *rec] for n, rec in zip(names, records, strict=True))
    doc["datasets"] = datasets
    doc["format_version"] = 1


def encode_manifest_body(body: bytes, head: dict[str, Any]) -> bytes:
    """A manifest file holding ``body`` as is, with a header whose length and CRC fit it."""
    h = dict(head)
    h["body_length"] = len(body)
    h["body_crc32c"] = checksum(body)
    return json.dumps(h, separators=(",", ":")).encode() + b"\n" + body


def encode_manifest_file(head: dict[str, Any], doc: Any, meta_format: str = "json", meta_compression: str = "none") -> bytes:
    """Re-encode an (edited) manifest with a fresh checksum."""
    if meta_format == "json":
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    else:
        body = msgpack.packb(doc, use_bin_type=True, unicode_errors="surrogatepass")
    if meta_compression == "zstd":
        body = zstandard.ZstdCompressor().compress(body)
    elif meta_compression == "lz4":
        body = lz4.frame.compress(body)
    return encode_manifest_body(body, head)


def decode_index_file(data: bytes) -> np.ndarray:
    """The rows of a chunk index file (no validation)."""
    version = HEADER.unpack_from(data)[1]
    payload = data[HEADER.size :]
    raw = zstandard.ZstdDecompressor().decompress(payload)
    if version < COLUMNAR_VERSION:
        return np.frombuffer(raw, dtype=INDEX_DTYPE).copy()
    rows = np.empty(len(raw) // INDEX_DTYPE.itemsize, dtype=INDEX_DTYPE)
    at = 0
    for lo in range(0, len(rows), GROUP_ROWS):
        group = rows[lo : lo + GROUP_ROWS]
        for name in INDEX_DTYPE.names or ():
            width = INDEX_DTYPE[name].itemsize * len(group)
            group[name] = np.frombuffer(raw, INDEX_DTYPE[name], len(group), at)
            at += width
    return rows


def encode_index_file(rows: np.ndarray, nrows: int | None = None, payload: bytes | None = None) -> bytes:
    """A chunk index file with a fresh checksum (``nrows``/``payload`` may be forged)."""
    if payload is None:
        payload = zstandard.ZstdCompressor().compress(np.ascontiguousarray(rows).tobytes())
    n = len(rows) if nrows is None else nrows
    return HEADER.pack(b"ATLASIDX", 1, n, len(payload), checksum(payload)) + payload


def zstd_frame_declaring(content_size: int) -> bytes:
    """A tiny, valid-looking zstd frame whose header declares ``content_size`` bytes.

    One RLE block of 1000 bytes follows, so decoding fails, but only after a decoder
    that trusts the header has allocated ``content_size`` bytes.
    """
    header = struct.pack("<I", 0xFD2FB528) + bytes([0xE0]) + struct.pack("<Q", content_size)
    block = (1 | (1 << 1) | (1000 << 3)).to_bytes(3, "little") + b"\0"
    return header + block


def _xxh32(data: bytes, seed: int = 0) -> int:
    p1, p2, p3, p4, p5, m = 2654435761, 2246822519, 3266489917, 668265263, 374761393, 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & m

    n, i = len(data), 0
    if n >= 16:
        v = [(seed + p1 + p2) & m, (seed + p2) & m, seed & m, (seed - p1) & m]
        while i + 16 <= n:
            for k in range(4):
                lane = int.from_bytes(data[i : i + 4], "little")
                i += 4
                v[k] = (rotl((v[k] + lane * p2) & m, 13) * p1) & m
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
    else:
        h = (seed + p5) & m
    h = (h + n) & m
    while i + 4 <= n:
        h = (rotl((h + int.from_bytes(data[i : i + 4], "little") * p3) & m, 17) * p4) & m
        i += 4
    while i < n:
        h = (rotl((h + data[i] * p5) & m, 11) * p1) & m
        i += 1
    h ^= h >> 15
    h = (h * p2) & m
    h ^= h >> 13
    h = (h * p3) & m
    h ^= h >> 16
    return h


def lz4_frame_declaring(content_size: int) -> bytes:
    """A tiny lz4 frame (valid header checksum) declaring ``content_size`` bytes of content."""
    descriptor = bytes([0x68, 0x40]) + struct.pack("<Q", content_size)
    hc = (_xxh32(descriptor) >> 8) & 0xFF
    return struct.pack("<I", 0x184D2204) + descriptor + bytes([hc]) + struct.pack("<I", 0x80000001) + b"{" + b"\0" * 4


# --------------------------------------------------------------------------- small fixtures


def build_small_store(path: Path, **options: Any) -> dict[str, dict[str, np.ndarray]]:
    """A small store: several datasets, dtypes (string included), chunked arrays, several
    variables, attributes, two committed versions. Returns the data written."""
    rng = np.random.default_rng(7)
    written: dict[str, dict[str, np.ndarray]] = {}
    store = atlas.Atlas.create(path, **options)
    for i in range(4):
        name = f"ds{i}"
        ds = store.create_dataset(name)
        temp = rng.normal(10, 3, 40).astype(np.float32)
        temp[3] = np.nan
        grid = rng.integers(-1000, 1000, (6, 10), dtype=np.int32)
        label = np.array([f"s{i}-{j}-é" for j in range(5)], dtype=object)
        ts = (np.arange(8, dtype=np.int64) * 10**9 + i).astype(np.int64)
        depth = np.round(rng.uniform(0, 2000, 40), 1)  # decimals: stored with the decimal filter
        depth[5] = np.nan
        ds.define_array("temp", "float32", ["z"], [40], chunk_shape=[16], fill_value=float("nan"))
        ds.define_array("depth", "float64", ["z"], [40], chunk_shape=[16], fill_value=float("nan"))
        ds.define_array("grid", "int32", ["y", "x"], [6, 10], chunk_shape=[4, 4], fill_value=-1)
        ds.define_array("label", "string", ["k"], [5])
        ds.define_array("time", "timestamp_nanoseconds", ["t"], [8])
        ds.write_array("temp", [0], temp)
        ds.write_array("grid", [0, 0], grid)
        ds.write_array("label", [0], label)
        ds.write_array("time", [0], ts)
        ds.write_array("depth", [0], depth)
        ds.set_attribute("i", i)
        ds.set_attribute("title", f"dataset {i}")
        ds.set_array_attribute("temp", "units", "degC")
        written[name] = {
            "temp": temp, "grid": grid, "label": label, "time": ts.view("datetime64[ns]"), "depth": depth,
        }
        if i == 1:
            store.flush()
    store.flush()
    return written


# --------------------------------------------------------------------------- tallies


class Tally:
    """Counts for one test, printed as one line: ``RELIABILITY <name>: k=v ...``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def line(self) -> str:
        parts = " ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"RELIABILITY {self.name}: {parts}"

    def report(self) -> None:
        print(self.line())


def spread_positions(size: int, count: int) -> list[int]:
    """``count`` deterministic byte positions spread over ``size`` bytes (ends included)."""
    if size <= count:
        return list(range(size))
    return sorted({round(i * (size - 1) / (count - 1)) for i in range(count)})


def all_files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())
