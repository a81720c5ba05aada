"""Properties of the on-disk format and of commits: packing, names, conflicts,
write-ahead buffering, compaction scope and versions."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atlas
from atlas.core import read
from atlas.format import manifest as mf


def _files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def _profiles(store: atlas.Atlas, n: int, length: int = 200, prefix: str = "p", digits: int | None = None) -> None:
    """Profiles of random float32 (incompressible), or smooth ones read to ``digits`` decimals
    as a sensor gives them (they compress to a fraction)."""
    rng = np.random.default_rng(1)
    for i in range(n):
        ds = store.create_dataset(f"{prefix}{i}")
        ds.define_array("temperature", "float32", ["z"], [length], fill_value=float("nan"))
        if digits is None:
            x = rng.random(length) * 30
        else:
            x = np.round(15 + np.cumsum(rng.normal(0, 0.05, length)), digits)
        ds.write_array("temperature", [0], x.astype(np.float32))


def test_small_chunks_of_many_datasets_share_blocks(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 500)
    store.flush()
    var = store._variables["temperature"]
    rows = store._index(var).rows
    blocks = {(int(r["seg"]), int(r["offset"])) for r in rows}
    assert len(rows) == 500
    assert len(blocks) <= 5  # 500 x 800 B packed into ~256 KiB blocks
    assert rows["raw_size"].max() <= 512 * 1024
    assert len(var.segments) == 1


def test_names_never_become_file_names(tmp_path: Path) -> None:
    weird = ["Ünïcødé ✓", "a#b%c~d", "back\\slash*", "x" * 200, "dots..and.", "nul\x00byte"]
    store = atlas.Atlas.create(tmp_path / "s")
    for name in weird:
        ds = store.create_dataset(name)
        ds.define_array(name, "int32", ["d"], [2])
        ds.write_array(name, [0], np.array([1, 2], dtype=np.int32))
        ds.set_attribute(name, name)
    store.flush()
    files = _files(tmp_path / "s")
    for name in weird:
        assert not any(name in f for f in files)
    again = atlas.Atlas.open(tmp_path / "s")
    assert again.list_datasets() == weird
    for name in weird:
        ds = again.open_dataset(name)
        assert ds.read_array(name).tolist() == [1, 2]
        assert ds.get_attribute(name) == name


@pytest.mark.parametrize("meta_format", ["json", "msgpack"])
@pytest.mark.parametrize("meta_compression", ["none", "zstd", "lz4"])
def test_manifest_is_headed_checksummed_and_detected(tmp_path: Path, meta_format: str, meta_compression: str) -> None:
    store = atlas.Atlas.create(tmp_path / "s", meta_format=meta_format, meta_compression=meta_compression)
    _profiles(store, 3)
    store.flush()
    key = mf.manifest_key(store.version, meta_format, meta_compression)
    raw = (tmp_path / "s" / key).read_bytes()
    head = json.loads(raw.split(b"\n", 1)[0])
    assert head["version"] == store.version and head["datasets"] == 3
    if meta_format == "json" and meta_compression == "none":
        body = json.loads(raw.split(b"\n", 1)[1])  # human-readable, standard JSON
        assert [d[0] for d in body["datasets"]] == ["p0", "p1", "p2"]
    assert atlas.Atlas.open(tmp_path / "s").list_datasets() == ["p0", "p1", "p2"]


def _json_manifest(header: dict, body: bytes) -> bytes:
    head = dict(header, body_length=len(body), body_crc32c=mf.checksum(body))
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + body


def test_json_manifest_in_any_layout_decodes_and_duplicates_are_refused() -> None:
    header = {"atlas": "manifest", "format_version": 1, "version": 2}
    doc = {"version": 2, "next_id": 5, "schemas": [], "variables": [], "datasets": [["é", [], []]]}
    compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    pretty = json.dumps(doc, indent=2).encode()  # hand-edited or written by another tool
    for body in (compact, pretty):
        assert mf.decode_manifest(_json_manifest(header, body), "m", "json", "none")[1] == doc
    duplicated = b'{"version":2,"version":3,"next_id":5,"schemas":[],"variables":[],"datasets":[]}'
    with pytest.raises(atlas.CorruptionError, match="duplicate key"):
        mf.decode_manifest(_json_manifest(header, duplicated), "m", "json", "none")


def test_second_writer_gets_a_conflict_and_nothing_is_lost(tmp_path: Path) -> None:
    atlas.Atlas.create(tmp_path / "s").flush()
    a = atlas.Atlas.open(tmp_path / "s")
    b = atlas.Atlas.open(tmp_path / "s")
    _profiles(a, 2, prefix="a")
    _profiles(b, 2, prefix="b")
    a.flush()
    with pytest.raises(atlas.ConflictError) as err:
        b.flush()
    assert isinstance(err.value, RuntimeError)
    assert "moved on" in str(err.value)
    # the loser's changes stay buffered and visible to it; the store holds the winner's
    assert b.open_dataset("b0").read_array("temperature") is not None
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert fresh.list_datasets() == ["a0", "a1"]
    with pytest.raises(atlas.ConflictError):
        b.flush()


def test_write_ahead_bounds_memory_and_stays_invisible_until_flush(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    store.buffer_bytes = 2 << 20
    ds = store.create_dataset("big")
    n = 64
    ds.define_array("x", "float64", ["t", "z"], [n, 65536], chunk_shape=[1, 65536])
    tracemalloc.start()
    row = np.arange(65536, dtype=np.float64)
    for i in range(n):
        ds.write_array("x", [i, 0], (row + i)[None, :])  # 32 MiB in total
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 12 << 20
    assert any(f.startswith("data/") for f in _files(tmp_path / "s"))
    # written ahead, not yet committed: another handle sees nothing
    assert atlas.Atlas.open(tmp_path / "s").list_datasets() == []
    # the writer reads its own data back, from segments and memory alike
    np.testing.assert_array_equal(ds.read_array("x", [10, 0], [1, 65536])[0], row + 10)
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s").open_dataset("big")
    np.testing.assert_array_equal(again.read_array("x", [63, 0], [1, 5])[0], row[:5] + 63)
    assert again.array_stats("x")["max"] == 65535.0 + 63


def test_dropped_handle_leaves_only_orphans_that_compact_removes(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 5)
    store.flush()
    committed = set(_files(tmp_path / "s"))
    writer = atlas.Atlas.open(tmp_path / "s")
    writer.buffer_bytes = 1
    _profiles(writer, 20, prefix="lost")
    del writer  # never flushed
    assert set(_files(tmp_path / "s")) > committed
    store2 = atlas.Atlas.open(tmp_path / "s")
    assert store2.list_datasets() == [f"p{i}" for i in range(5)]
    store2.compact()  # by default, files no version names are kept an hour: a writer may be at work
    leftover = [f for f in _files(tmp_path / "s") if f not in committed and not f.startswith("manifests/")]
    assert len(leftover) == 20
    assert store2.verify().unreferenced_files == 20
    store2.compact(grace_period=0)
    leftover = [f for f in _files(tmp_path / "s") if f not in committed and not f.startswith("manifests/")]
    assert leftover == []
    assert store2.verify().unreferenced_files == 0
    assert store2.open_dataset("p3").read_array("temperature").shape == (200,)


def test_compact_rewrites_only_variables_that_hold_dead_data(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(10):
        ds = store.create_dataset(f"d{i}")
        for v in ("a", "b"):
            ds.define_array(v, "int64", ["x"], [100])
            ds.write_array(v, [0], np.arange(100, dtype=np.int64) + i)
    store.flush()
    b_segments = list(store._variables["b"].segments)
    store.open_dataset("d3").delete_array("a")
    store.compact()
    assert store._variables["b"].segments == b_segments
    assert store._variables["a"].segments != []
    files = _files(tmp_path / "s")
    for key, _ in b_segments:
        assert key in files
    again = atlas.Atlas.open(tmp_path / "s")
    assert again.open_dataset("d3").read_array("a") is None
    assert again.open_dataset("d4").read_array("a").tolist() == list(range(4, 104))


def test_versions_are_listed_and_old_ones_open_read_only(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 1)
    store.flush()
    v1 = store.version
    store.open_dataset("p0").write_array("temperature", [0], np.zeros(200, dtype=np.float32))
    store.create_dataset("later")
    store.flush()
    listed = store.versions()
    assert [v["version"] for v in listed] == [0, v1, v1 + 1]
    assert listed[-1]["datasets"] == 2
    old = atlas.Atlas.open(tmp_path / "s", version=v1)
    assert old.list_datasets() == ["p0"]
    assert old.open_dataset("p0").read_array("temperature").max() > 0
    with pytest.raises(PermissionError):
        old.create_dataset("nope")
    with pytest.raises(atlas.ReadOnlyError):
        old.open_dataset("p0").set_attribute("k", 1)
    with pytest.raises(KeyError):
        atlas.Atlas.open(tmp_path / "s", version=99)
    store.compact(keep_versions=2)
    assert [v["version"] for v in store.versions()] == [v1 + 1, v1 + 2] or [
        v["version"] for v in store.versions()
    ] == [v1, v1 + 1]
    store.compact()
    assert [v["version"] for v in store.versions()] == [store.version]


def test_create_finishes_an_interrupted_create(tmp_path: Path) -> None:
    from atlas.format.manifest import CONFIG_KEY, encode_config

    path = tmp_path / "s"
    path.mkdir()
    (path / CONFIG_KEY).write_bytes(encode_config("zstd", "json", "none"))  # no version 0
    with pytest.raises(atlas.StoreNotFoundError):
        atlas.Atlas.open(path)
    store = atlas.Atlas.create(path, codec="lz4")
    assert store.codec == "lz4"
    assert atlas.Atlas.open(path).list_datasets() == []
    with pytest.raises(FileExistsError):
        atlas.Atlas.create(path)


def test_reading_some_arrays_builds_only_theirs_and_later_changes_see_them(tmp_path: Path) -> None:
    """A read on a fresh handle builds the state of the arrays it reads only; writes,
    attributes and deletes that come later use those same states."""
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    for name in ("a", "b", "c"):
        ds.define_array(name, "float64", ["x"], [4], fill_value=float("nan"))
        ds.write_array(name, [0], np.arange(4.0) + ord(name))
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s")
    view = again.open_dataset("d")
    assert view.read_arrays(["a", "zz"])["a"].tolist() == [97.0, 98.0, 99.0, 100.0]
    assert view._ds.arrays_untouched  # nothing but "a" was built
    view.write_array("a", [1], np.array([-1.0]))
    view.set_array_attribute("a", "units", "m")
    view.set_array_attribute("b", "units", "s")
    assert view.read_array("a").tolist() == [97.0, -1.0, 99.0, 100.0]
    view.delete_array("c")
    again.flush()
    last = atlas.Atlas.open(tmp_path / "s").open_dataset("d")
    assert last.list_arrays() == ["a", "b"]
    assert last.read_array("a").tolist() == [97.0, -1.0, 99.0, 100.0]
    assert last.array_attributes("a") == {"units": "m"} and last.array_attributes("b") == {"units": "s"}
    assert last.array_stats("a")["min"] == -1.0


def test_cache_bytes_bounds_the_block_cache_and_zero_turns_it_off(tmp_path: Path) -> None:
    from atlas.storage import open_storage
    from atlas.storage.wrappers import CountingStorage

    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 300, digits=1)
    store.flush()
    counting = CountingStorage(open_storage(tmp_path / "s"))
    opened = atlas.Atlas.open(counting)
    names = opened.list_datasets()
    assert opened.cache_bytes == 256 << 20
    first = opened.read_array_across("temperature", names)
    assert opened._cache.used > 0
    counting.reset()
    opened.read_array_across("temperature", names)
    assert counting.requests == 0  # warm: every block from the cache
    opened.cache_bytes = 0  # drops what is cached, and caches nothing from now on
    assert opened._cache.used == 0
    again = opened.read_array_across("temperature", names)
    assert counting.requests > 0 and opened._cache.used == 0
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again, strict=True))
    for bad in (-1, 1.5, True, "big"):
        with pytest.raises(ValueError, match="cache_bytes"):
            opened.cache_bytes = bad  # type: ignore[assignment]
    assert opened.cache_bytes == 0


def test_reads_check_their_arguments_before_any_io(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 3)
    store.flush()
    for seg in (tmp_path / "s" / "data").iterdir():
        seg.unlink()  # any read of data now fails
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("p0")
    with pytest.raises(TypeError):
        view.read_array("temperature", start="zz")
    with pytest.raises(OverflowError):
        view.read_array("temperature", start=[0], shape=[-1])
    with pytest.raises(ValueError, match="axes"):
        view.read_array("temperature", start=[0, 0])
    with pytest.raises(TypeError):
        view.read_array(["temperature"])  # type: ignore[arg-type]
    with pytest.raises(atlas.CorruptionError):
        view.read_array("temperature")


def test_a_read_survives_the_array_states_being_built_meanwhile(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 3)
    store.flush()
    want = store.open_dataset("p1").read_array("temperature")
    fresh = atlas.Atlas.open(tmp_path / "s")
    ds = fresh.open_dataset("p1")._ds
    assert ds.arrays_untouched
    ds.arrays  # noqa: B018 - another thread builds them, as a concurrent array_stats() would
    got = read.read_raw_array(fresh, ds, "temperature", [0], [3])  # called after its untouched check
    assert got is not None and np.array_equal(got, want[:3], equal_nan=True)


def test_cache_off_reads_no_blocks_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import atlas.core.reader as reader

    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 400, length=1000)  # ~1.6 MB of temperature: several blocks
    store.flush()
    decoded = []
    real = reader.decode_block
    monkeypatch.setattr(reader, "decode_block", lambda *a: decoded.append(1) or real(*a))
    opened = atlas.Atlas.open(tmp_path / "s")
    opened.cache_bytes = 0
    for name in opened.list_datasets()[:20]:
        opened.open_dataset(name).read_array("temperature")
    assert len(decoded) == 20  # one block per read, none decoded ahead and thrown away


def test_a_small_window_across_datasets_does_not_keep_the_variable_decoded(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 200, length=1000, digits=1)
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    head = opened.read_array_across_stacked("temperature", names, start=[0], shape=[5])
    assert head.shape == (200, 5)
    assert opened._cache.used == 0  # 4 KB of result must not hold 800 KB of decoded blocks
    full = opened.read_array_across("temperature", names)
    result = sum(a.nbytes for a in full)
    # a whole-variable read keeps the blocks' stored bytes, not a decoded second copy
    assert not opened._cache._d and opened._cache._s
    assert 0 < opened._cache.used <= result // 4
    assert np.array_equal(head, np.stack([a[:5] for a in full]), equal_nan=True)


def _scan_setup(tmp_path: Path, digits: int | None) -> tuple[atlas.Atlas, Any, list[str]]:
    from atlas.storage import open_storage
    from atlas.storage.wrappers import CountingStorage

    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 600, length=500, digits=digits)
    store.flush()
    counting = CountingStorage(open_storage(tmp_path / "s"))
    opened = atlas.Atlas.open(counting)
    return opened, counting, opened.list_datasets()


def test_a_second_scan_decodes_the_kept_stored_blocks_without_io(tmp_path: Path) -> None:
    opened, counting, names = _scan_setup(tmp_path, digits=1)
    first = opened.read_array_across("temperature", names)
    kept = dict(opened._cache._s)
    assert kept and not opened._cache._d
    counting.reset()
    again = opened.read_array_across("temperature", names)
    stacked = opened.read_array_across_stacked("temperature", names, start=[100], shape=[300])
    assert counting.requests == 0, counting.counts
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again, strict=True))
    assert np.array_equal(stacked, np.stack([a[100:400] for a in first]), equal_nan=True)
    again[0][:] = -1.0  # results are the caller's own: changing one changes nothing kept
    assert np.array_equal(opened.read_array_across("temperature", names[:1])[0], first[0], equal_nan=True)
    assert opened._cache._s == kept


def test_a_single_read_after_a_scan_keeps_its_block_decoded_instead(tmp_path: Path) -> None:
    opened, counting, names = _scan_setup(tmp_path, digits=1)
    scanned = opened.read_array_across("temperature", names)
    stored_before = len(opened._cache._s)
    counting.reset()
    one = opened.open_dataset(names[3]).read_array("temperature")
    assert counting.requests == 0, counting.counts  # decoded from the kept bytes
    assert np.array_equal(one, scanned[3], equal_nan=True)
    assert opened._cache._d  # the block (and any read ahead) is now kept decoded...
    assert len(opened._cache._s) < stored_before  # ...in place of its stored copy
    assert not set(opened._cache._d) & set(opened._cache._s)
    used = sum(b.nbytes for b in opened._cache._d.values()) + sum(len(d) for d in opened._cache._s.values())
    assert opened._cache.used == used


def test_a_scan_of_data_that_does_not_compress_keeps_nothing(tmp_path: Path) -> None:
    opened, counting, names = _scan_setup(tmp_path, digits=None)
    first = opened.read_array_across("temperature", names)
    assert opened._cache.used == 0  # stored bytes as big as the result would double its memory
    counting.reset()
    again = opened.read_array_across("temperature", names)
    assert counting.requests > 0
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again, strict=True))


def test_a_fresh_scan_peaks_near_its_result_size(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 2000, length=1000, digits=1)  # 8 MB: well above the fixed costs of a scan
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    opened.read_array_across("temperature", names[:1])  # loads the index and the threads
    opened._cache.clear()
    tracemalloc.start()
    try:
        got = opened.read_array_across("temperature", names)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = sum(a.nbytes for a in got)
    kept = opened._cache.used
    assert 0 < kept <= result // 4  # the blocks' stored bytes, not a second decoded copy
    # beyond the result and what stays cached: batches in flight and per-dataset state
    assert peak - kept <= 1.25 * result, f"peak {peak} bytes for a {result}-byte result, {kept} kept"


def test_verify_reads_storage_even_when_the_blocks_are_kept(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 300, digits=1)
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    opened.read_array_across("temperature", names)
    assert opened._cache._s
    opened.open_dataset(names[0]).read_array("temperature")
    assert opened._cache._d
    for seg in (tmp_path / "s" / "data").iterdir():
        raw = bytearray(seg.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        seg.write_bytes(bytes(raw))
    problems = opened.verify()
    assert problems and "checksum" in " ".join(problems)


def test_block_cache_keeps_one_form_of_a_block_and_evicts_the_least_recently_used() -> None:
    from atlas.core.reader import BlockCache

    cache = BlockCache(4000)
    cache.put_stored(("a", 0), b"x" * 300)
    cache.put_stored(("a", 1), b"y" * 300)
    assert cache.get(("a", 0)) is None and cache.get_stored(("a", 0)) == b"x" * 300
    block = np.zeros(100, dtype=np.uint8)
    cache.put(("a", 0), block)  # decoded replaces stored
    assert cache.get_stored(("a", 0)) is None and cache.get(("a", 0)) is block
    assert not block.flags.writeable
    cache.put_stored(("a", 0), b"z" * 10)  # not kept beside its decoded form
    assert cache.get_stored(("a", 0)) is None
    assert cache.used == 100 + 300
    for k in range(4):  # over budget at the fourth: the stored copy is the oldest, and enough
        cache.put(("b", k), np.zeros(950, dtype=np.uint8))
    assert ("a", 1) not in cache._s and ("a", 0) in cache._d and cache.used == 3900
    cache.put(("b", 4), np.zeros(950, dtype=np.uint8))  # then the least recently used decoded ones
    assert ("a", 0) not in cache._d and ("b", 0) not in cache._d and ("b", 1) in cache._d
    assert cache.used == 3800
    cache.put_stored(("c", 0), b"w" * 1001)  # larger than a quarter of the budget
    assert cache.get_stored(("c", 0)) is None
    cache.put_stored(("c", 1), b"w" * 200)  # newer than every decoded block
    cache.resize(1000)
    assert cache.get_stored(("c", 1)) == b"w" * 200 and not cache._d and cache.used == 200
    cache.put(("e", 0), np.zeros(200, dtype=np.uint8))  # now the stored copy is the older one
    cache.resize(300)
    assert not cache._s and list(cache._d) == [("e", 0)] and cache.used == 200
    cache.clear()
    assert cache.used == 0 and cache.get(("e", 0)) is None and not cache._used_at


def test_local_reads_allocate_about_the_file_size(tmp_path: Path) -> None:
    from atlas.storage import LocalStorage

    storage = LocalStorage(tmp_path / "s", create=True)
    payload = bytes(range(256)) * 40
    storage.put("index/x.idx", payload)
    tracemalloc.start()
    try:
        got = storage.get("index/x.idx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == payload
    assert peak < 256 << 10, f"{peak} bytes allocated to read a {len(payload)}-byte file"


def test_open_and_flush_leave_the_garbage_collector_as_they_found_it(tmp_path: Path) -> None:
    import gc

    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            store = atlas.Atlas.create(tmp_path / f"s{enabled}")
            _profiles(store, 3)
            store.flush()
            assert atlas.Atlas.open(tmp_path / f"s{enabled}").list_datasets() == ["p0", "p1", "p2"]
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_import_atlas_leaves_pandas_to_the_first_catalogue(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys, atlas; assert 'pandas' not in sys.modules, 'imported with atlas'; "
        f"s = atlas.Atlas.create({str(tmp_path / 's')!r}); s.create_dataset('d').set_attribute('k', 1); s.flush(); "
        "t = s.catalog(attributes=['k']); assert 'pandas' in sys.modules and list(t['k']) == [1]"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_scan_results_are_independent_writable_arrays(tmp_path: Path) -> None:
    opened, _, names = _scan_setup(tmp_path, digits=1)
    twice = names + names[:3]  # the same dataset twice gets two arrays, not one shared
    n = len(names)
    for _ in range(2):  # fresh blocks, then blocks decoded from the kept stored bytes
        got = opened.read_array_across("temperature", twice)
        assert all(a.flags.writeable for a in got)
        for i, j in ((0, 1), (0, n), (1, n + 1), (2, n + 2)):
            assert not np.shares_memory(got[i], got[j])
        want = [a.copy() for a in got]
        for a in got:
            a[:] = -5.0
        again = opened.read_array_across("temperature", twice)
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(again, want, strict=True))


def test_threads_sharing_a_handle_read_right_while_the_cache_churns(tmp_path: Path) -> None:
    import threading

    store = atlas.Atlas.create(tmp_path / "s")
    _profiles(store, 2000, length=200, digits=1)  # 1.6 MB in 7 blocks
    store.flush()
    shared = atlas.Atlas.open(tmp_path / "s")
    names = shared.list_datasets()
    want = dict(zip(names, store.read_array_across("temperature", names), strict=True))
    shared.cache_bytes = 1 << 20  # four decoded blocks: stored and decoded copies evict each other
    kinds: set[str] = set()
    put, put_stored = shared._cache.put, shared._cache.put_stored

    def seen_put(key: Any, block: Any) -> None:
        kinds.add("decoded")
        put(key, block)

    def seen_put_stored(key: Any, data: Any) -> None:
        kinds.add("stored")
        put_stored(key, data)

    shared._cache.put, shared._cache.put_stored = seen_put, seen_put_stored  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(12):
                pick = [names[i] for i in rng.choice(len(names), int(rng.integers(1, len(names))), replace=False)]
                what = int(rng.integers(0, 4))
                if what == 0:
                    got = shared.read_array_across("temperature", names)
                    assert all(np.array_equal(g, want[n], equal_nan=True) for g, n in zip(got, names, strict=True))
                elif what == 1:
                    got = shared.read_array_across("temperature", pick)
                    assert all(np.array_equal(g, want[n], equal_nan=True) for g, n in zip(got, pick, strict=True))
                elif what == 2:
                    n = pick[0]
                    assert np.array_equal(shared.open_dataset(n).read_array("temperature"), want[n], equal_nan=True)
                else:
                    got = shared.read_array_across_stacked("temperature", pick, start=[5], shape=[50])
                    assert np.array_equal(got, np.stack([want[n][5:55] for n in pick]), equal_nan=True)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert kinds == {"decoded", "stored"}
    cache = shared._cache
    assert cache.used == sum(b.nbytes for b in cache._d.values()) + sum(len(d) for d in cache._s.values())
    assert cache.used <= cache.budget


def test_scan_results_never_alias_the_storage_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # uncompressed blocks decode to the very bytes the storage returned: a storage that hands
    # out views of its own writable buffers must not see a caller's writes
    store = atlas.Atlas.create(tmp_path / "s", codec="none")
    _profiles(store, 300, length=100)
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    storage = opened._storage
    buffers: dict[str, bytearray] = {}

    def shared_views(requests: Any) -> list[list[memoryview]]:
        out = []
        for key, starts, lengths in requests:
            view = memoryview(buffers.setdefault(key, bytearray(storage.get(key))))
            out.append([view[a : a + n] for a, n in zip(starts, lengths, strict=True)])
        return out

    monkeypatch.setattr(storage, "get_many_ranges", shared_views)
    first = opened.read_array_across("temperature", names)
    want = [a.copy() for a in first]
    for a in first:
        a[:] = -1.0
    opened.cache_bytes = 0
    again = opened.read_array_across("temperature", names)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(again, want, strict=True))


def test_a_scan_keeps_its_stored_blocks_in_a_cache_full_of_older_decoded_ones(tmp_path: Path) -> None:
    from atlas.storage import open_storage
    from atlas.storage.wrappers import CountingStorage

    store = atlas.Atlas.create(tmp_path / "s")
    rng = np.random.default_rng(0)
    for i in range(2000):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("t", "float32", ["z"], [500])
        ds.define_array("u", "float32", ["z"], [500])
        ds.write_array("t", [0], np.round(10 + np.cumsum(rng.normal(0, 0.05, 500)), 1).astype(np.float32))
        ds.write_array("u", [0], rng.random(500).astype(np.float32))
    store.flush()
    counting = CountingStorage(open_storage(tmp_path / "s"))
    opened = atlas.Atlas.open(counting)
    opened.cache_bytes = 4 << 20
    names = opened.list_datasets()
    for n in names[::25]:  # single reads fill the cache with decoded blocks of "u"
        opened.open_dataset(n).read_array("u")
    assert opened._cache.used > 3 << 20
    first = opened.read_array_across("t", names)
    assert len(opened._cache._s) >= 16  # the scan's stored copies displaced older decoded blocks
    counting.reset()
    again = opened.read_array_across("t", names)
    assert counting.requests == 0, counting.counts
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_overlapping_chunks_in_a_damaged_index_never_share_memory(tmp_path: Path) -> None:
    from atlas.format.chunkindex import ChunkIndex

    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(4):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("x", "float64", ["z"], [100])
        ds.write_array("x", [0], np.arange(100.0) + i * 100)
    store.flush()
    (path,) = (tmp_path / "s" / "index").iterdir()
    rows = ChunkIndex.from_bytes(path.read_bytes(), "test").rows.copy()
    rows["within"][1] = 400  # the second chunk now overlaps the first
    path.write_bytes(ChunkIndex(rows).to_bytes())
    record_index_checks(tmp_path / "s")  # as if the writer itself had made this index
    opened = atlas.Atlas.open(tmp_path / "s")
    opened.cache_bytes = 0
    got = opened.read_array_across("x", opened.list_datasets())
    assert not np.shares_memory(got[0], got[1])
    got[0][60] = -1.0
    assert got[1][10] == 60.0


def record_index_checks(path: Path) -> None:
    """Rewrite the newest manifest so that it records the index files as they are now."""
    from atlas.format import manifest as mf
    from atlas.format.chunkindex import index_check

    newest = sorted((path / "manifests").glob("0*"))[-1]
    head, doc = mf.decode_manifest(newest.read_bytes(), "test", "json", "none")
    doc["index_checks"] = {k: list(index_check((path / k).read_bytes())) for k in doc["index_checks"]}
    for field in ("body_length", "body_crc32c"):
        head.pop(field)
    newest.write_bytes(mf.encode_manifest(doc, head, "json", "none"))
