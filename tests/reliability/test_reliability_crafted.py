"""Crafted store files: small files that declare big content, values out of range for their
kind, and stray files next to the manifests.

Every crafted file is written into a real store (``Atlas.create``) with a fresh checksum,
so the bounds and semantic checks are what is tested. Opening such a store and reading
everything must fail with ``atlas.CorruptionError`` and cost at most ``MEMORY_LIMIT``
above opening and reading the untampered store. Memory is measured in a child process
(the high-water mark of its resident memory), so C allocations (zstd, lz4, numpy) count
as much as Python objects.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lz4.block
import lz4.frame
import msgpack
import numpy as np
import pytest
import zstandard
from reliability_helpers import (
    as_version_1,
    current_manifest_path,
    decode_index_file,
    decode_manifest_file,
    encode_manifest_body,
    encode_manifest_file,
)

import atlas
from atlas.format.chunkindex import (
    DECIMAL_FORMAT_VERSION,
    FORMAT_VERSION,
    HEADER,
    INDEX_DTYPE,
    MAGIC,
)
from atlas.format.codec import DECIMAL, checksum

MiB = 1 << 20
MEMORY_LIMIT = 64 * MiB  # above opening and reading the untampered store

# Opens a store and reads everything (mode "all"), only the arrays of dataset d0 ("d0"), or
# the first cell of every array ("corner"); prints the peak resident memory and the outcome. The peak is the kernel's high-water mark
# (VmHWM): ru_maxrss would also count the parent's memory, which a child inherits on Linux.
CHILD = r"""
import json, resource, sys
import atlas

def peak():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024

path, mode = sys.argv[1], sys.argv[2]
error = message = None
try:
    store = atlas.Atlas.open(path)
    names = ["d0"] if mode == "d0" else store.list_datasets()
    for name in names:
        ds = store.open_dataset(name)
        ds.attributes()
        for a in ds.list_arrays():
            if mode == "corner":
                ds.read_array(a, [0] * len(ds.array_meta(a)["shape"]), [1] * len(ds.array_meta(a)["shape"]))
                continue
            ds.read_array(a)
            ds.array_stats(a)
            ds.array_attributes(a)
    if mode == "all":
        for a in store.list_arrays():
            store.read_array_across(a, names)
except Exception as e:
    error, message = type(e).__name__, str(e)
print(json.dumps({"peak": peak(), "error": error, "message": message}))
"""


def run_child(path: Path, mode: str = "all") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# --------------------------------------------------------------------------- stores


def build(path: Path, meta_format: str = "json", meta_compression: str = "none", codec: str = "zstd") -> Path:
    """A small store: 4 datasets of float32, int32 (2-D, chunked), string and time arrays."""
    store = atlas.Atlas.create(path, codec=codec, meta_format=meta_format, meta_compression=meta_compression)
    rng = np.random.default_rng(3)
    for i in range(4):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("temp", "float32", ["z"], [40], chunk_shape=[16], fill_value=float("nan"))
        ds.write_array("temp", [0], rng.normal(10, 3, 40).astype(np.float32))
        ds.define_array("grid", "int32", ["y", "x"], [6, 10], chunk_shape=[4, 4], fill_value=-1)
        ds.write_array("grid", [0, 0], rng.integers(-9, 9, (6, 10), dtype=np.int32))
        ds.define_array("small", "float32", ["n"], [4])
        ds.write_array("small", [0], np.arange(4, dtype=np.float32) + i)
        ds.define_array("label", "string", ["k"], [3])
        ds.write_array("label", [0], np.array(["a", "bb", "ccc"], dtype=object))
        ds.set_attribute("i", i)
        ds.set_attribute("title", f"dataset {i}")
        ds.set_array_attribute("temp", "units", "degC")
    store.flush()
    return path


KINDS = {
    "json": ("json", "none"),
    "json-zstd": ("json", "zstd"),
    "json-lz4": ("json", "lz4"),
    "msgpack": ("msgpack", "none"),
    "msgpack-zstd": ("msgpack", "zstd"),
}


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("templates")
    out = {kind: build(root / kind, *options) for kind, options in KINDS.items()}
    for path in out.values():
        as_version_1(path)  # damage is planted in one index file per variable
    return out


_BASELINES: dict[tuple[str, str], int] = {}


def baseline(templates: dict[str, Path], kind: str, mode: str = "all") -> int:
    """Peak memory of opening and reading the untampered store of that kind."""
    if (kind, mode) not in _BASELINES:
        result = run_child(templates[kind], mode)
        assert result["error"] is None, result
        _BASELINES[(kind, mode)] = result["peak"]
    return _BASELINES[(kind, mode)]


def working_copy(templates: dict[str, Path], tmp_path: Path, kind: str = "json") -> Path:
    path = tmp_path / "store"
    shutil.copytree(templates[kind], path)
    return path


def expect_refused_cheaply(templates: dict[str, Path], path: Path, kind: str, names: str | None = None) -> str:
    """Opening and reading the crafted store gives CorruptionError within MEMORY_LIMIT."""
    result = run_child(path)
    extra = result["peak"] - baseline(templates, kind)
    assert extra < MEMORY_LIMIT, f"{extra / MiB:.0f} MiB above the untampered store ({result})"
    assert result["error"] == "CorruptionError", result
    if names is not None:
        assert names in result["message"], result["message"]
    message: str = result["message"]
    return message


# --------------------------------------------------------------------------- crafting


def manifest(path: Path) -> tuple[Path, dict[str, Any], Any]:
    """(path, header, body document) of the current manifest."""
    cfg = json.loads((path / "atlas.json").read_text())
    mp = current_manifest_path(path)
    head, doc = decode_manifest_file(mp, cfg["meta_format"], cfg["meta_compression"])
    return mp, head, doc


def put_body(path: Path, body: bytes, **header: Any) -> str:
    """Replace the current manifest's body (already compressed as the store says)."""
    mp, head, _ = manifest(path)
    mp.write_bytes(encode_manifest_body(body, {**head, **header}))
    return mp.name


def put_doc(path: Path, doc: Any, **header: Any) -> str:
    """Replace the current manifest's body with ``doc``, encoded as the store says."""
    cfg = json.loads((path / "atlas.json").read_text())
    mp, head, _ = manifest(path)
    mp.write_bytes(encode_manifest_file({**head, **header}, doc, cfg["meta_format"], cfg["meta_compression"]))
    return mp.name


def variable(doc: Any, name: str) -> list[Any]:
    found: list[Any] = next(v for v in doc["variables"] if v[0] == name)
    return found


def zstd_frame(parts: list[tuple[str, bytes, int]]) -> bytes:
    """A zstd frame declaring its content size, built from ("raw", bytes, 0) blocks and
    ("rle", byte, count) runs (split into RLE blocks of at most 128 KiB): a few bytes for
    hundreds of MiB of content, without compressing anything."""
    blocks = []
    size = 0
    for kind, data, count in parts:
        if kind == "raw":
            blocks.append((0, data, len(data)))
            size += len(data)
            continue
        while count:
            n = min(count, 128 << 10)
            blocks.append((1, data[:1], n))
            count -= n
            size += n
    # 8-byte content size, a window of 128 KiB (a decoder needs no more), no checksum
    out = bytearray(struct.pack("<I", 0xFD2FB528) + bytes([0xC0, 7 << 3]) + struct.pack("<Q", size))
    for i, (btype, data, n) in enumerate(blocks):
        last = int(i == len(blocks) - 1)
        out += (last | (btype << 1) | (n << 3)).to_bytes(3, "little") + data
    return bytes(out)


def index_file(rows: np.ndarray, nrows: int | None = None, payload: bytes | None = None) -> bytes:
    """A chunk index file with a fresh checksum and the version its rows need (``nrows``
    and ``payload`` may be forged)."""
    if payload is None:
        payload = zstandard.ZstdCompressor().compress(np.ascontiguousarray(rows).tobytes())
    decimal = len(rows) and bool((rows["filter"] & DECIMAL).any())
    version = DECIMAL_FORMAT_VERSION if decimal else FORMAT_VERSION
    n = len(rows) if nrows is None else nrows
    return HEADER.pack(MAGIC, version, n, len(payload), checksum(payload)) + payload


def craft_index(path: Path, var_name: str, edit: Callable[[np.ndarray], Any], **forge: Any) -> str:
    """Edit the rows of a variable's index file (fresh checksums, in the file and in the
    manifest); returns the file name (the file is ``path / "index" / name``)."""
    _, _, doc = manifest(path)
    key = variable(doc, var_name)[2]
    rows = decode_index_file((path / key).read_bytes())
    result = edit(rows)
    rows = rows if result is None else result
    data = index_file(rows, **forge)
    (path / key).write_bytes(data)
    if "index_checks" in doc:  # the manifest records the file's length and checksum
        doc["index_checks"][key] = [len(data), HEADER.unpack_from(data)[4]]
        put_doc(path, doc)
    return str(key).rsplit("/", 1)[-1]


def append_block(path: Path, var_name: str, block: bytes) -> int:
    """Append a stored block to the variable's first segment (the manifest records the new
    size); returns its offset."""
    _, head, doc = manifest(path)
    seg = variable(doc, var_name)[3][0]
    data = (path / seg[0]).read_bytes()
    (path / seg[0]).write_bytes(data + block)
    seg[1] = len(data) + len(block)
    put_doc(path, doc)
    return len(data)


# --------------------------------------------------------------------------- manifests


def test_zstd_manifest_of_zeros_is_refused_before_it_is_decompressed(templates: dict[str, Path], tmp_path: Path) -> None:
    path = working_copy(templates, tmp_path, "json-zstd")
    body = zstd_frame([("rle", b"\0", 256 * MiB)])  # 8 KiB for 256 MiB
    assert len(body) < 9 << 10
    name = put_body(path, body)
    assert name in expect_refused_cheaply(templates, path, "json-zstd")


def test_zstd_manifest_of_one_long_string_is_refused(templates: dict[str, Path], tmp_path: Path) -> None:
    path = working_copy(templates, tmp_path, "json-zstd")
    body = zstd_frame([("raw", b'{"format_version":1,"x":"', 0), ("rle", b"a", 256 * MiB), ("raw", b'"}', 0)])
    put_body(path, body)
    expect_refused_cheaply(templates, path, "json-zstd")


def test_zstd_manifest_without_a_declared_size_is_cut_off(templates: dict[str, Path], tmp_path: Path) -> None:
    path = working_copy(templates, tmp_path, "json-zstd")
    body = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(bytes(128 * MiB))
    put_body(path, body)
    expect_refused_cheaply(templates, path, "json-zstd")


@pytest.mark.parametrize("unit", [b"[],", b"[0],", b'{"":[]},'])
def test_compressed_json_manifest_of_many_small_containers_is_refused(
    templates: dict[str, Path], tmp_path: Path, unit: bytes
) -> None:
    """Valid JSON that would decode to millions of lists or dicts (30-40 bytes each per
    byte of JSON): refused by its decompressed size, before it is decoded."""
    path = working_copy(templates, tmp_path, "json-zstd")
    n = (12 * MiB) // len(unit)
    put_body(path, zstandard.ZstdCompressor(level=3).compress(b'{"x":[' + unit * n + b"0]}"))
    expect_refused_cheaply(templates, path, "json-zstd")


def test_lz4_manifest_of_zeros_is_refused(templates: dict[str, Path], tmp_path: Path) -> None:
    path = working_copy(templates, tmp_path, "json-lz4")
    body = lz4.frame.compress(bytes(128 * MiB))
    assert len(body) < 1_000_000
    put_body(path, body)
    expect_refused_cheaply(templates, path, "json-lz4")


def test_compressed_msgpack_manifest_of_empty_arrays_is_refused(templates: dict[str, Path], tmp_path: Path) -> None:
    path = working_copy(templates, tmp_path, "msgpack-zstd")
    n = 4_000_000  # 4 MB of msgpack, 320 MB of lists
    body = b"\x81" + msgpack.packb("x") + b"\xdd" + struct.pack(">I", n) + b"\x90" * n
    put_body(path, zstandard.ZstdCompressor(level=3).compress(body))
    expect_refused_cheaply(templates, path, "msgpack-zstd")


@pytest.mark.parametrize("fill", [b"\x90", b"\x80"])
def test_msgpack_manifest_of_empty_containers_stays_small(
    templates: dict[str, Path], tmp_path: Path, fill: bytes
) -> None:
    """One byte per empty array or map: 1 MiB of them would be ~70 MiB of lists or dicts."""
    path = working_copy(templates, tmp_path, "msgpack")
    n = MiB
    put_body(path, b"\x81" + msgpack.packb("x") + b"\xdd" + struct.pack(">I", n) + fill * n)
    expect_refused_cheaply(templates, path, "msgpack")


def test_manifest_whose_header_counts_do_not_match_its_body_is_refused(templates: dict[str, Path], tmp_path: Path) -> None:
    """The header's counts bound decompression, so they must describe the body."""
    for field, value in (("datasets", 3), ("datasets", 400), ("arrays", 3)):
        path = working_copy(templates, tmp_path / f"{field}{value}", "json-zstd")
        _, _, doc = manifest(path)
        name = put_doc(path, doc, **{field: value})
        with pytest.raises(atlas.CorruptionError, match=f"header declares {value}") as err:
            atlas.Atlas.open(path)
        assert name in str(err.value)


def test_a_manifest_beyond_what_readers_accept_is_never_written(tmp_path: Path) -> None:
    """One dataset whose attribute compresses 4000 times: readers would refuse the manifest,
    so the writer refuses to commit it (the store stays at its last version)."""
    store = atlas.Atlas.create(tmp_path / "s", meta_compression="zstd")
    store.create_dataset("d").set_attribute("blob", "x" * (4 * MiB))
    with pytest.raises(ValueError, match="more than readers accept"):
        store.flush()
    assert atlas.Atlas.open(tmp_path / "s").version == 0
    plain = atlas.Atlas.create(tmp_path / "plain")  # uncompressed: any size is accepted
    plain.create_dataset("d").set_attribute("blob", "x" * (4 * MiB))
    plain.flush()
    assert len(atlas.Atlas.open(tmp_path / "plain").open_dataset("d").attributes()["blob"]) == 4 * MiB


# --------------------------------------------------------------------------- chunk indexes


def test_index_declaring_millions_of_rows_of_zeros_is_refused(templates: dict[str, Path], tmp_path: Path) -> None:
    path = working_copy(templates, tmp_path)
    nrows = (192 * MiB) // INDEX_DTYPE.itemsize
    payload = zstd_frame([("rle", b"\0", nrows * INDEX_DTYPE.itemsize)])  # 6 KiB
    name = craft_index(path, "temp", lambda r: r[:0], nrows=nrows, payload=payload)
    assert name in expect_refused_cheaply(templates, path, "json")


def test_index_of_plausible_rows_beyond_every_array_is_refused(templates: dict[str, Path], tmp_path: Path) -> None:
    """Sorted rows that point at a real block, for chunks no array of the variable has:
    ~100 bytes each once decoded, ~1.5 each compressed. By the manifest, the variable's 4
    arrays have at most 6 chunks each (the most of any schema)."""

    def edit(rows: np.ndarray) -> np.ndarray:
        extra = np.repeat(rows[-1:], 650_000)
        extra["chunk"] = rows["chunk"][-1] + 1 + np.arange(len(extra))
        return np.concatenate([rows, extra])

    path = working_copy(templates, tmp_path)
    name = craft_index(path, "temp", edit)
    assert (path / "index" / name).stat().st_size < 1_000_000
    assert name in expect_refused_cheaply(templates, path, "json")


def test_index_rows_are_checked_a_piece_at_a_time(tmp_path: Path) -> None:
    """A variable whose arrays may have millions of chunks: an index of that many sorted
    rows naming a segment that does not exist is refused at its first piece."""
    path = tmp_path / "store"
    store = atlas.Atlas.create(path)
    ds = store.create_dataset("d0")
    ds.define_array("wide", "uint8", ["n"], [4_000_000], chunk_shape=[1])
    ds.write_array("wide", [0], np.ones(3, dtype=np.uint8))
    store.flush()
    untampered = run_child(path, "corner")
    assert untampered["error"] is None

    def edit(rows: np.ndarray) -> np.ndarray:
        many = np.repeat(rows[-1:], 650_000)
        many["chunk"] = np.arange(len(many))
        many["seg"] = 7
        return many

    name = craft_index(path, "wide", edit)
    assert (path / "index" / name).stat().st_size < 1_000_000
    result = run_child(path, "corner")
    assert result["error"] == "CorruptionError" and name in result["message"], result
    assert result["peak"] - untampered["peak"] < MEMORY_LIMIT


@pytest.mark.parametrize("field", ["offset", "length", "within", "nbytes", "raw_size"])
def test_index_fields_near_2_64_are_corruption(templates: dict[str, Path], tmp_path: Path, field: str) -> None:
    """Sums of offsets and lengths must not wrap, nor overflow numpy's int64."""
    path = working_copy(templates, tmp_path)

    def edit(rows: np.ndarray) -> None:
        rows[field][0] = 2**64 - 8

    name = craft_index(path, "temp", edit)
    assert name in expect_refused_cheaply(templates, path, "json")


# --------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_block_behind_a_4_cell_array_claiming_a_huge_raw_size_is_refused(tmp_path: Path, codec: str) -> None:
    """A block of a few KiB that decompresses to far more than the chunks it holds: a block
    of several chunks is at most 512 KiB raw, a larger one holds one chunk whose size is
    what its cells take."""
    path = build(tmp_path / "store", codec=codec)
    untampered = run_child(path)
    raw = 192 * MiB if codec == "zstd" else 255 * 6000
    block = zstd_frame([("rle", b"\0", raw)]) if codec == "zstd" else lz4.block.compress(bytes(raw), store_size=False)
    offset = append_block(path, "small", block)

    def point(rows: np.ndarray, whole: bool) -> None:
        rows["offset"][1] = offset
        rows["length"][1] = len(block)
        rows["raw_size"][1] = raw
        rows["crc"][1] = checksum(block)
        rows["filter"][1] = 1
        if whole:  # one chunk filling the block: checked against the array's 4 cells
            rows["within"][1] = 0
            rows["nbytes"][1] = raw

    for whole in (False, True):
        name = craft_index(path, "small", lambda r, whole=whole: point(r, whole))
        result = run_child(path)
        assert result["error"] == "CorruptionError", result
        assert (name if not whole else "'d1'") in result["message"], result["message"]
        assert result["peak"] - untampered["peak"] < MEMORY_LIMIT


def test_read_ahead_skips_big_blocks_it_has_not_checked(tmp_path: Path) -> None:
    """Reading d0 reads ahead the blocks of the datasets after it; a crafted one-chunk block
    of d1 claiming 192 MiB must not be decoded by a read of d0, which stays correct."""
    path = build(tmp_path / "store")
    untampered = run_child(path, "d0")
    block = zstd_frame([("rle", b"\0", 192 * MiB)])
    offset = append_block(path, "small", block)
    want = atlas.Atlas.open(path).open_dataset("d0").read_array("small")

    def edit(rows: np.ndarray) -> None:
        rows["offset"][1], rows["length"][1], rows["crc"][1] = offset, len(block), checksum(block)
        rows["raw_size"][1] = rows["nbytes"][1] = 192 * MiB
        rows["within"][1] = 0
        rows["filter"][1] = 1

    craft_index(path, "small", edit)
    result = run_child(path, "d0")
    assert result["error"] is None, result
    assert result["peak"] - untampered["peak"] < MEMORY_LIMIT
    np.testing.assert_array_equal(atlas.Atlas.open(path).open_dataset("d0").read_array("small"), want)


# --------------------------------------------------------------------------- values out of range


OUT_OF_RANGE = [
    ("int8", 10**30),
    ("int8", 200),
    ("int8", -129),
    ("uint8", -1),
    ("uint16", 70_000),
    ("int32", 2**31),
    ("int64", 2**63),
    ("uint64", 2**64),
    ("uint64", -1),
    ("timestamp_nanoseconds", 2**63),
    ("bool", 7),
    ("float64", "abc"),
    ("float32", "f64:zz"),
    ("float64", 10**400),
    ("string", 5),
]


@pytest.mark.parametrize("where", ["dataset", "array"])
@pytest.mark.parametrize(("kind", "value"), OUT_OF_RANGE)
def test_attribute_out_of_range_for_its_kind_is_corruption(
    templates: dict[str, Path], tmp_path: Path, where: str, kind: str, value: Any
) -> None:
    path = working_copy(templates, tmp_path)
    _, _, doc = manifest(path)
    rec = next(d for d in doc["datasets"] if d[0] == "d0")
    flat = rec[1] if where == "dataset" else next(a for a in rec[2] if a[0] == "temp")[4]
    flat += ["x", kind, value]
    name = put_doc(path, doc)
    store = atlas.Atlas.open(path)
    ds = store.open_dataset("d0")
    for read in (ds.attributes, ds.attribute_dtypes) if where == "dataset" else (lambda: ds.array_attributes("temp"),):
        with pytest.raises(atlas.CorruptionError, match="attribute 'x'") as err:
            read()
        assert name in str(err.value)


@pytest.mark.parametrize(("value", "position"), [(2**31, 2), (-(2**40), 3), (True, 2), ("7", 3), (1.5, 2)])
def test_statistic_out_of_range_for_its_dtype_is_corruption(
    templates: dict[str, Path], tmp_path: Path, value: Any, position: int
) -> None:
    path = working_copy(templates, tmp_path)
    _, _, doc = manifest(path)
    entry = next(a for a in next(d for d in doc["datasets"] if d[0] == "d0")[2] if a[0] == "grid")  # int32
    entry[3][position] = value
    name = put_doc(path, doc)
    with pytest.raises(atlas.CorruptionError, match="statistics") as err:
        atlas.Atlas.open(path).open_dataset("d0").array_stats("grid")
    assert name in str(err.value)


@pytest.mark.parametrize(("dtype", "fill"), [("int32", 2**40), ("int8", 10**30), ("uint8", -1), ("float64", 10**400)])
def test_fill_value_out_of_range_for_its_dtype_is_corruption(
    templates: dict[str, Path], tmp_path: Path, dtype: str, fill: Any
) -> None:
    path = working_copy(templates, tmp_path)
    _, _, doc = manifest(path)
    sidx = next(a for a in next(d for d in doc["datasets"] if d[0] == "d0")[2] if a[0] == "grid")[2]
    doc["schemas"][sidx][0] = dtype
    doc["schemas"][sidx][4] = fill
    name = put_doc(path, doc)
    with pytest.raises(atlas.CorruptionError, match="schema entry is malformed") as err:
        store = atlas.Atlas.open(path)
        store.open_dataset("d0").array_fill_value("grid")
    assert name in str(err.value)


# --------------------------------------------------------------------------- stray files


@pytest.mark.parametrize(
    "stray",
    ["0000000009.json~", "0000000009.json.bak", ".0000000009.json.swp", "0000000009.msgpack", "0000000009.json.zst",
     "000000009.json", "0000000009.JSON", "0000000009.json.tmp"],
)
def test_stray_files_in_manifests_are_not_versions(templates: dict[str, Path], tmp_path: Path, stray: str) -> None:
    """Editor backups and copies next to the manifests are ignored, not taken for the newest
    version (which would then 'disappear while opening')."""
    path = working_copy(templates, tmp_path)
    version = atlas.Atlas.open(path).version
    (path / "manifests" / stray).write_bytes(current_manifest_path(path).read_bytes())
    store = atlas.Atlas.open(path)
    assert store.version == version
    assert [v["version"] for v in store.versions()][-1] == version
    assert store.list_datasets() == ["d0", "d1", "d2", "d3"]
    np.testing.assert_array_equal(store.open_dataset("d2").read_array("small"), np.arange(4, dtype=np.float32) + 2)
