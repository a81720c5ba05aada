"""Conformance tests for the store API (``atlas.Atlas``): creation and opening, the
dataset catalogue, names, flush / close / context manager, compaction, what a flush
persists, and the two-writer conflict rule."""

from __future__ import annotations

import gc
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

import atlas

CODECS = ["zstd", "lz4", "none", "uncompressed"]
META_FORMATS = ["json", "msgpack", "mp"]
META_COMPRESSIONS = ["none", "uncompressed", "zstd", "lz4"]
ALL_COMBOS = list(itertools.product(CODECS, META_FORMATS, META_COMPRESSIONS))
# Distinct encodings only (no aliases), for the heavier persistence checks.
DISTINCT_COMBOS = list(
    itertools.product(["zstd", "lz4", "none"], ["json", "msgpack"], ["none", "zstd", "lz4"])
)

INVALID_NAMES = ["", "/", "a/b", "/a", "a/", "_x", "_", ".", ".."]
ODD_VALID_NAMES = [
    "a.b",
    "a..b",
    "...",
    "with space",
    " leading and trailing ",
    "ünïcödé-名前-🚀",
    "nul\x00inside",
    "#%~\\*",
    "x" * 200,
    "-",
    "~",
    "CON",
    "a:b",
    "x_",
]


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and directory under ``path``."""
    snap: dict[str, bytes | None] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        snap[rel] = p.read_bytes() if p.is_file() else None
    return snap


def _populate(store: atlas.Atlas, name: str = "ds") -> atlas.DatasetView:
    ds = store.create_dataset(name)
    ds.define_array("v", "float64", ["x"], [6], chunk_shape=[4], fill_value=-1.0)
    ds.write_array("v", [0], np.arange(5, dtype=np.float64))
    ds.set_attribute("k", "value")
    return ds


# ---------------------------------------------------------------------------
# Atlas.create / Atlas.open
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("as_type", [str, Path], ids=["str", "pathlike"])
def test_create_accepts_str_and_pathlike_and_open_works_right_after(tmp_path, as_type):
    path = as_type(tmp_path / "store")
    store = atlas.Atlas.create(path)
    assert isinstance(store, atlas.Atlas)
    assert (tmp_path / "store").is_dir()
    # An empty metadata file is written immediately: open works without any flush.
    assert any((tmp_path / "store").iterdir())
    reopened = atlas.Atlas.open(path)
    assert isinstance(reopened, atlas.Atlas)
    assert reopened.list_datasets() == []
    assert reopened.list_arrays() == []


def test_create_is_mkdir_p(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "store"
    atlas.Atlas.create(path)
    assert path.is_dir()
    assert atlas.Atlas.open(path).list_datasets() == []


def test_create_in_existing_empty_directory(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    atlas.Atlas.create(path)
    assert atlas.Atlas.open(path).list_datasets() == []


def test_create_with_bytes_path_is_type_error(tmp_path):
    with pytest.raises(TypeError):
        atlas.Atlas.create(os.fsencode(tmp_path / "store"))


def test_open_with_bytes_path_is_type_error(tmp_path):
    atlas.Atlas.create(tmp_path / "store")
    with pytest.raises(TypeError):
        atlas.Atlas.open(os.fsencode(tmp_path / "store"))


@pytest.mark.parametrize(("codec", "meta_format", "meta_compression"), ALL_COMBOS)
def test_every_option_combination_round_trips_without_options_on_open(
    tmp_path, codec, meta_format, meta_compression
):
    path = tmp_path / "store"
    store = atlas.Atlas.create(
        path, codec=codec, meta_format=meta_format, meta_compression=meta_compression
    )
    _populate(store)
    store.flush()

    reopened = atlas.Atlas.open(path)
    assert reopened.list_datasets() == ["ds"]
    ds = reopened.open_dataset("ds")
    np.testing.assert_array_equal(ds.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])
    assert ds.get_attribute("k") == "value"
    assert ds.array_fill_value("v") == -1.0


@pytest.mark.parametrize(
    ("codec", "meta_format", "meta_compression"),
    [
        ("ZSTD", "JSON", "NONE"),
        ("Lz4", "MsgPack", "Zstd"),
        ("NoNe", "MP", "LZ4"),
        ("UNCOMPRESSED", "Json", "Uncompressed"),
    ],
)
def test_option_values_are_case_insensitive(tmp_path, codec, meta_format, meta_compression):
    path = tmp_path / "store"
    store = atlas.Atlas.create(
        path, codec=codec, meta_format=meta_format, meta_compression=meta_compression
    )
    _populate(store)
    store.flush()
    ds = atlas.Atlas.open(path).open_dataset("ds")
    np.testing.assert_array_equal(ds.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])


def test_options_can_be_given_positionally(tmp_path):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, "lz4", "msgpack", "zstd")
    _populate(store)
    store.flush()
    ds = atlas.Atlas.open(path).open_dataset("ds")
    np.testing.assert_array_equal(ds.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])
    assert ds.get_attribute("k") == "value"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codec": "gzip"},
        {"codec": "snappy"},
        {"codec": ""},
        {"meta_format": "yaml"},
        {"meta_format": "bson"},
        {"meta_format": ""},
        {"meta_compression": "gzip"},
        {"meta_compression": "bz2"},
        {"meta_compression": ""},
    ],
    ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_unknown_option_value_is_value_error(tmp_path, kwargs):
    with pytest.raises(ValueError):
        atlas.Atlas.create(tmp_path / "store", **kwargs)


@pytest.mark.parametrize(
    ("meta_format", "meta_compression"), [("json", "none"), ("msgpack", "zstd")]
)
def test_create_on_existing_flushed_store_raises_and_touches_nothing(
    tmp_path, meta_format, meta_compression
):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression)
    _populate(store)
    store.flush()
    before = _snapshot(path)

    with pytest.raises(FileExistsError):
        atlas.Atlas.create(path)
    with pytest.raises(FileExistsError):
        atlas.Atlas.create(path, "lz4", "json", "none")

    assert _snapshot(path) == before
    ds = atlas.Atlas.open(path).open_dataset("ds")
    np.testing.assert_array_equal(ds.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])


def test_create_on_freshly_created_store_raises(tmp_path):
    path = tmp_path / "store"
    atlas.Atlas.create(path)
    before = _snapshot(path)
    with pytest.raises(FileExistsError):
        atlas.Atlas.create(path)
    assert _snapshot(path) == before


def test_open_missing_path_is_runtime_error(tmp_path):
    with pytest.raises(RuntimeError):
        atlas.Atlas.open(tmp_path / "does-not-exist")
    assert not (tmp_path / "does-not-exist").exists()


# ---------------------------------------------------------------------------
# Dataset catalogue
# ---------------------------------------------------------------------------


def test_create_dataset_returns_view_with_name(store):
    ds = store.create_dataset("alpha")
    assert isinstance(ds, atlas.DatasetView)
    assert ds.name == "alpha"
    assert ds.list_arrays() == []
    assert ds.attributes() == {}
    assert store.dataset_exists("alpha") is True


def test_create_existing_dataset_is_file_exists_error(store):
    store.create_dataset("alpha").set_attribute("k", 1)
    with pytest.raises(FileExistsError):
        store.create_dataset("alpha")
    # The existing dataset is untouched.
    assert store.open_dataset("alpha").get_attribute("k") == 1
    store.flush()
    reopened = atlas.Atlas.open(store.storage)
    with pytest.raises(FileExistsError):
        reopened.create_dataset("alpha")


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_dataset_name_is_value_error(store, name):
    with pytest.raises(ValueError):
        store.create_dataset(name)
    assert store.list_datasets() == []


@pytest.mark.parametrize("name", ODD_VALID_NAMES)
@pytest.mark.parametrize("meta_format", ["json", "msgpack"])
def test_unusual_dataset_names_round_trip(tmp_path, name, meta_format):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format)
    ds = store.create_dataset(name)
    assert ds.name == name
    ds.define_array("v", "int32", ["x"], [3])
    ds.write_array("v", [0], np.array([1, 2, 3], dtype=np.int32))
    ds.set_attribute("who", name)
    store.create_dataset("plain")
    store.flush()

    reopened = atlas.Atlas.open(path)
    assert reopened.list_datasets() == [name, "plain"]
    assert reopened.dataset_exists(name) is True
    view = reopened.open_dataset(name)
    assert view.name == name
    np.testing.assert_array_equal(view.read_array("v"), [1, 2, 3])
    assert view.get_attribute("who") == name


def test_open_missing_dataset_is_key_error(store):
    with pytest.raises(KeyError):
        store.open_dataset("nope")


def test_open_dataset_returns_new_views_sharing_state(store):
    store.create_dataset("d")
    v1 = store.open_dataset("d")
    v2 = store.open_dataset("d")
    assert v1 is not v2
    assert v1.name == v2.name == "d"

    v1.define_array("a", "int16", ["x"], [4])
    assert v2.list_arrays() == ["a"]
    v2.write_array("a", [1], np.array([7, 8], dtype=np.int16))
    np.testing.assert_array_equal(v1.read_array("a"), [0, 7, 8, 0])
    v1.set_attribute("k", 3.5)
    assert v2.attributes() == {"k": 3.5}
    v2.delete_array("a")
    assert v1.list_arrays() == []
    assert v1.read_array("a") is None


def test_view_from_create_dataset_shares_state_with_open_dataset(store):
    created = store.create_dataset("d")
    created.set_attribute("k", 1)
    opened = store.open_dataset("d")
    assert opened.get_attribute("k") == 1
    opened.set_attribute("k", 2)
    assert created.get_attribute("k") == 2


def test_dataset_exists_returns_bool(store):
    assert store.dataset_exists("d") is False
    store.create_dataset("d")
    assert store.dataset_exists("d") is True
    store.delete_dataset("d")
    assert store.dataset_exists("d") is False


def test_delete_missing_dataset_is_key_error(store):
    with pytest.raises(KeyError):
        store.delete_dataset("nope")
    store.create_dataset("d")
    store.delete_dataset("d")
    with pytest.raises(KeyError):
        store.delete_dataset("d")


def test_delete_dataset_disappears_at_once(store):
    store.create_dataset("a")
    ds = store.create_dataset("b")
    ds.define_array("v", "int8", ["x"], [2])
    store.create_dataset("c")
    store.delete_dataset("b")
    assert store.list_datasets() == ["a", "c"]
    assert store.dataset_exists("b") is False
    with pytest.raises(KeyError):
        store.open_dataset("b")
    assert store.list_arrays() == []


def test_delete_dataset_is_persisted_by_flush(store):
    _populate(store, "a")
    _populate(store, "b")
    store.flush()
    store.delete_dataset("a")
    # Not flushed yet: another reader still sees it.
    assert atlas.Atlas.open(store.storage).list_datasets() == ["a", "b"]
    store.flush()
    reopened = atlas.Atlas.open(store.storage)
    assert reopened.list_datasets() == ["b"]
    assert reopened.dataset_exists("a") is False


def _mutations(view: atlas.DatasetView):
    return {
        "define_array": lambda: view.define_array("new", "int8", ["x"], [1]),
        "write_array": lambda: view.write_array("v", [0], np.zeros(2, dtype=np.float64)),
        "set_attribute": lambda: view.set_attribute("k", 1),
        "delete_array": lambda: view.delete_array("v"),
    }


MUTATIONS = ["define_array", "write_array", "set_attribute", "delete_array"]


@pytest.mark.parametrize("mutation", MUTATIONS)
@pytest.mark.parametrize("flushed", [False, True], ids=["unflushed", "flushed"])
def test_stale_view_mutation_is_key_error_and_never_resurrects(store, mutation, flushed):
    _populate(store, "d")
    store.create_dataset("other")
    if flushed:
        store.flush()
    stale = store.open_dataset("d")
    store.delete_dataset("d")

    with pytest.raises(KeyError):
        _mutations(stale)[mutation]()

    assert store.dataset_exists("d") is False
    assert store.list_datasets() == ["other"]
    assert store.list_arrays() == []
    store.flush()
    reopened = atlas.Atlas.open(store.storage)
    assert reopened.list_datasets() == ["other"]
    assert reopened.dataset_exists("d") is False


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_stale_view_cannot_touch_a_recreated_dataset(store, mutation):
    _populate(store, "d")
    stale = store.open_dataset("d")
    store.delete_dataset("d")
    fresh = store.create_dataset("d")
    fresh.define_array("v", "float64", ["x"], [2])

    with pytest.raises(KeyError):
        _mutations(stale)[mutation]()

    assert fresh.list_arrays() == ["v"]
    assert fresh.attributes() == {}
    np.testing.assert_array_equal(fresh.read_array("v"), [0.0, 0.0])


@pytest.mark.parametrize("flushed", [False, True], ids=["unflushed", "flushed"])
def test_recreated_dataset_starts_empty(store, flushed):
    ds = _populate(store, "d")
    ds.define_array("s", "string", ["x"], [2])
    ds.write_array("s", [0], np.array(["p", "q"], dtype=object))
    if flushed:
        store.flush()
    store.delete_dataset("d")
    if flushed:
        store.flush()

    fresh = store.create_dataset("d")
    assert fresh.list_arrays() == []
    assert fresh.attributes() == {}
    assert fresh.get_attribute("k") is None
    assert fresh.read_array("v") is None
    assert fresh.array_meta("v") is None
    assert fresh.array_stats("v") is None

    # Re-defining an old array name does not bring the old data back.
    fresh.define_array("v", "float64", ["x"], [6], chunk_shape=[4])
    fresh.define_array("s", "string", ["x"], [2])
    np.testing.assert_array_equal(fresh.read_array("v"), np.zeros(6))
    assert fresh.read_array("s").tolist() == ["", ""]
    assert fresh.array_fill_value("v") is None
    store.flush()
    assert fresh.array_stats("v") is None
    again = atlas.Atlas.open(store.storage).open_dataset("d")
    np.testing.assert_array_equal(again.read_array("v"), np.zeros(6))
    assert again.read_array("s").tolist() == ["", ""]
    assert again.attributes() == {}


# ---------------------------------------------------------------------------
# Ordering
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("meta_format", ["json", "msgpack"])
def test_list_datasets_is_insertion_order_and_recreated_names_go_last(tmp_path, meta_format):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format)
    for name in ["m", "z", "a", "k"]:
        store.create_dataset(name)
    assert store.list_datasets() == ["m", "z", "a", "k"]

    store.delete_dataset("z")
    store.create_dataset("z")
    assert store.list_datasets() == ["m", "a", "k", "z"]
    store.flush()
    assert atlas.Atlas.open(path).list_datasets() == ["m", "a", "k", "z"]

    store.delete_dataset("m")
    store.flush()
    store.create_dataset("m")
    assert store.list_datasets() == ["a", "k", "z", "m"]
    store.flush()
    reopened = atlas.Atlas.open(path)
    assert reopened.list_datasets() == ["a", "k", "z", "m"]

    # Order keeps evolving correctly on a reopened handle too.
    reopened.delete_dataset("a")
    reopened.create_dataset("a")
    reopened.create_dataset("b")
    reopened.flush()
    assert atlas.Atlas.open(path).list_datasets() == ["k", "z", "m", "a", "b"]


def test_store_list_arrays_is_sorted_deduplicated_union(store):
    a = store.create_dataset("a")
    b = store.create_dataset("b")
    a.define_array("zeta", "int8", ["x"], [1])
    a.define_array("alpha", "int8", ["x"], [1])
    b.define_array("mid", "float32", ["x"], [2])
    b.define_array("alpha", "string", ["x"], [3])
    assert store.list_arrays() == ["alpha", "mid", "zeta"]

    a.delete_array("zeta")
    assert store.list_arrays() == ["alpha", "mid"]
    a.delete_array("alpha")
    assert store.list_arrays() == ["alpha", "mid"]
    store.delete_dataset("b")
    assert store.list_arrays() == []


def test_store_list_arrays_after_reopen(store):
    a = store.create_dataset("a")
    a.define_array("b2", "int8", ["x"], [1])
    a.define_array("B1", "int8", ["x"], [1])
    store.create_dataset("b").define_array("a3", "int8", ["x"], [1])
    store.flush()
    reopened = atlas.Atlas.open(store.storage)
    assert reopened.list_arrays() == sorted(["b2", "B1", "a3"])


# ---------------------------------------------------------------------------
# flush / close / context manager / repr
# ---------------------------------------------------------------------------


def test_flush_and_close_return_none_and_are_idempotent(store):
    _populate(store, "d")
    assert store.flush() is None
    assert store.flush() is None
    assert store.close() is None
    assert store.close() is None
    assert atlas.Atlas.open(store.storage).list_datasets() == ["d"]


def test_close_is_flush_and_handle_stays_usable(store):
    _populate(store, "d")
    store.close()
    assert atlas.Atlas.open(store.storage).list_datasets() == ["d"]

    # Still usable after close.
    ds = store.open_dataset("d")
    ds.write_array("v", [0], np.array([9.0], dtype=np.float64))
    store.create_dataset("e")
    store.close()
    reopened = atlas.Atlas.open(store.storage)
    assert reopened.list_datasets() == ["d", "e"]
    assert reopened.open_dataset("d").read_array("v")[0] == 9.0


def test_context_manager_returns_same_object_and_flushes(tmp_path):
    path = tmp_path / "store"
    handle = atlas.Atlas.create(path)
    with handle as entered:
        assert entered is handle
        _populate(entered, "d")
    ds = atlas.Atlas.open(path).open_dataset("d")
    np.testing.assert_array_equal(ds.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])


def test_context_manager_on_create_call(tmp_path):
    path = tmp_path / "store"
    with atlas.Atlas.create(path) as a:
        assert isinstance(a, atlas.Atlas)
        a.create_dataset("d")
    assert atlas.Atlas.open(path).list_datasets() == ["d"]


def test_context_manager_flushes_even_when_body_raises(tmp_path):
    path = tmp_path / "store"
    atlas.Atlas.create(path)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atlas.Atlas.open(path) as a:
            _populate(a, "d")
            raise Boom("body failed")
    ds = atlas.Atlas.open(path).open_dataset("d")
    assert ds.get_attribute("k") == "value"
    np.testing.assert_array_equal(ds.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])


def test_repr_is_short_and_informative(tmp_path):
    store = atlas.Atlas.create(tmp_path / "store")
    store.create_dataset("a")
    store.create_dataset("b")
    text = repr(store)
    assert isinstance(text, str)
    assert text.startswith("<Atlas")
    assert text.endswith(">")
    assert "\n" not in text
    assert "datasets=2" in text
    assert len(text) < 200 + len(str(tmp_path))


# ---------------------------------------------------------------------------
# compact
# ---------------------------------------------------------------------------


def _random_store(path: Path, n: int, size: int) -> atlas.Atlas:
    store = atlas.Atlas.create(path, codec="none")
    for i in range(n):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("v", "float64", ["x"], [size], chunk_shape=[size // 4])
        ds.define_array("w", "float64", ["x"], [size])
        ds.write_array("v", [0], np.random.default_rng(i).random(size))
        ds.write_array("w", [0], np.random.default_rng(1000 + i).random(size))
        ds.set_attribute("i", i)
    store.flush()
    return store


def test_compact_reclaims_space_after_deletes_and_handle_keeps_working(tmp_path):
    path = tmp_path / "store"
    size = 20_000
    store = _random_store(path, 10, size)
    for i in range(7):
        store.delete_dataset(f"d{i}")
    store.open_dataset("d7").delete_array("w")
    store.flush()
    before = _du(path)

    assert store.compact() is None
    after = _du(path)
    assert after < before * 0.6

    # Live data is kept, for this handle and for a fresh one.
    for handle in (store, atlas.Atlas.open(path)):
        assert handle.list_datasets() == ["d7", "d8", "d9"]
        for i in (7, 8, 9):
            ds = handle.open_dataset(f"d{i}")
            np.testing.assert_array_equal(ds.read_array("v"), np.random.default_rng(i).random(size))
            assert ds.get_attribute("i") == i
        assert handle.open_dataset("d7").read_array("w") is None
        np.testing.assert_array_equal(
            handle.open_dataset("d9").read_array("w"), np.random.default_rng(1009).random(size)
        )

    # The same handle goes on reading and writing correctly.
    ds = store.open_dataset("d8")
    ds.write_array("v", [10], np.full(3, -5.0))
    expected = np.random.default_rng(8).random(size)
    expected[10:13] = -5.0
    np.testing.assert_array_equal(ds.read_array("v"), expected)
    new = store.create_dataset("new")
    new.define_array("v", "float64", ["x"], [4])
    new.write_array("v", [0], np.arange(4.0))
    store.flush()
    reopened = atlas.Atlas.open(path)
    np.testing.assert_array_equal(reopened.open_dataset("d8").read_array("v"), expected)
    np.testing.assert_array_equal(reopened.open_dataset("new").read_array("v"), np.arange(4.0))
    assert reopened.list_datasets() == ["d7", "d8", "d9", "new"]


def test_compact_after_overwrites_reclaims_space(tmp_path):
    path = tmp_path / "store"
    size = 20_000
    store = _random_store(path, 2, size)
    for _ in range(4):
        for i in range(2):
            ds = store.open_dataset(f"d{i}")
            ds.write_array("v", [0], np.random.default_rng(i).random(size))
            ds.write_array("w", [0], np.random.default_rng(1000 + i).random(size))
        store.flush()
    before = _du(path)
    store.compact()
    assert _du(path) <= before
    reopened = atlas.Atlas.open(path)
    for i in range(2):
        np.testing.assert_array_equal(
            reopened.open_dataset(f"d{i}").read_array("v"), np.random.default_rng(i).random(size)
        )


def test_compact_never_half_persists_buffered_changes(tmp_path):
    path = tmp_path / "store"
    size = 1_000
    store = _random_store(path, 3, size)
    store.delete_dataset("d0")
    store.open_dataset("d1").write_array("v", [0], np.full(size, 7.0))
    store.open_dataset("d1").set_attribute("i", -1)
    new = store.create_dataset("new")
    new.define_array("v", "int32", ["x"], [3])
    new.write_array("v", [0], np.array([1, 2, 3], dtype=np.int32))

    store.compact()

    other = atlas.Atlas.open(path)
    d1 = other.open_dataset("d1")
    if other.dataset_exists("new"):  # buffered changes were flushed first
        assert other.list_datasets() == ["d1", "d2", "new"]
        np.testing.assert_array_equal(other.open_dataset("new").read_array("v"), [1, 2, 3])
        np.testing.assert_array_equal(d1.read_array("v"), np.full(size, 7.0))
        assert d1.get_attribute("i") == -1
    else:  # buffered changes were left buffered
        assert other.list_datasets() == ["d0", "d1", "d2"]
        np.testing.assert_array_equal(d1.read_array("v"), np.random.default_rng(1).random(size))
        assert d1.get_attribute("i") == 1

    # Either way the handle still holds the changes and a flush persists them all.
    np.testing.assert_array_equal(store.open_dataset("d1").read_array("v"), np.full(size, 7.0))
    store.flush()
    final = atlas.Atlas.open(path)
    assert final.list_datasets() == ["d1", "d2", "new"]
    np.testing.assert_array_equal(final.open_dataset("new").read_array("v"), [1, 2, 3])
    np.testing.assert_array_equal(final.open_dataset("d1").read_array("v"), np.full(size, 7.0))
    np.testing.assert_array_equal(
        final.open_dataset("d2").read_array("v"), np.random.default_rng(2).random(size)
    )


# ---------------------------------------------------------------------------
# What flush persists
# ---------------------------------------------------------------------------


def _build_rich_state(store: atlas.Atlas) -> None:
    first = store.create_dataset("first")
    first.define_array(
        "f", "float32", ["y", "x"], [3, 4], chunk_shape=[2, 3], fill_value=float("nan")
    )
    first.write_array("f", [1, 1], np.array([[1.5, -2.0], [3.25, 4.0]], dtype=np.float32))
    first.define_array("i", "uint16", ["x"], [5], fill_value=9)
    first.write_array("i", [0], np.array([1, 2], dtype=np.uint16))
    first.define_array("s", "string", ["x"], [3], chunk_shape=[2])
    first.write_array("s", [0], np.array(["é", "b", "c"], dtype=object))
    first.define_array("t", "timestamp_nanoseconds", ["x"], [2], fill_value=-(2**63))
    first.write_array("t", [0], np.array([123456789], dtype=np.int64))
    first.define_array("gone", "int8", ["x"], [2])
    first.write_array("gone", [0], np.array([1, 2], dtype=np.int8))
    first.delete_array("gone")
    first.set_attribute("z", 1)
    first.set_attribute("a", "text")
    first.set_attribute("m", 2.5)
    first.set_attribute("b", True)
    first.set_attribute("n", 7, dtype="int8")

    store.create_dataset("deleted").set_attribute("x", 1)
    second = store.create_dataset("second")
    second.define_array("f", "int64", ["x"], [2], chunk_shape=[1])
    second.write_array("f", [1], np.array([-4], dtype=np.int64))
    store.delete_dataset("deleted")
    store.create_dataset("third")


def _check_rich_state(store: atlas.Atlas) -> None:
    assert store.list_datasets() == ["first", "second", "third"]
    assert store.dataset_exists("deleted") is False
    assert store.list_arrays() == ["f", "i", "s", "t"]
    first = store.open_dataset("first")
    assert first.list_arrays() == ["f", "i", "s", "t"]
    assert first.array_meta("f") == {
        "dtype": "float32",
        "shape": [3, 4],
        "chunk_shape": [2, 3],
        "dimension_names": ["y", "x"],
    }
    assert first.array_meta("gone") is None
    assert first.read_array("gone") is None
    f = first.read_array("f")
    expected = np.full((3, 4), np.nan, dtype=np.float32)
    expected[1:3, 1:3] = [[1.5, -2.0], [3.25, 4.0]]
    np.testing.assert_array_equal(f, expected)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(first.read_array("i"), [1, 2, 9, 9, 9])
    assert first.read_array("s").tolist() == ["é", "b", "c"]
    t = first.read_array("t")
    assert t.dtype == np.dtype("datetime64[ns]")
    assert t.view(np.int64).tolist() == [123456789, -(2**63)]
    assert np.isnan(first.array_fill_value("f"))
    assert first.array_fill_value("i") == 9
    assert first.array_fill_value("s") is None
    assert first.array_fill_value("t") == -(2**63)
    assert list(first.attributes().items()) == [
        ("z", 1),
        ("a", "text"),
        ("m", 2.5),
        ("b", True),
        ("n", 7),
    ]
    assert first.array_stats("f") == {"row_count": 12, "null_count": 8, "min": -2.0, "max": 4.0}
    assert first.array_stats("i") == {"row_count": 5, "null_count": 3, "min": 1, "max": 2}
    second = store.open_dataset("second")
    np.testing.assert_array_equal(second.read_array("f"), [0, -4])
    assert second.array_stats("f") == {"row_count": 2, "null_count": 1, "min": -4, "max": -4}
    third = store.open_dataset("third")
    assert third.list_arrays() == [] and third.attributes() == {}


@pytest.mark.parametrize(("codec", "meta_format", "meta_compression"), DISTINCT_COMBOS)
def test_flush_persists_everything(tmp_path, codec, meta_format, meta_compression):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, codec, meta_format, meta_compression)
    _build_rich_state(store)
    store.flush()
    _check_rich_state(store)
    _check_rich_state(atlas.Atlas.open(path))


def test_second_handle_sees_only_flushed_state(tmp_path):
    path = tmp_path / "store"
    writer = atlas.Atlas.create(path)
    ds = _populate(writer, "d")
    writer.flush()

    ds.write_array("v", [0], np.full(6, 42.0))
    ds.set_attribute("k", "changed")
    ds.set_attribute("extra", 1)
    ds.define_array("new_array", "int8", ["x"], [1])
    writer.create_dataset("unflushed")
    writer.open_dataset("d").delete_array("v")

    reader = atlas.Atlas.open(path)
    assert reader.list_datasets() == ["d"]
    rd = reader.open_dataset("d")
    assert rd.list_arrays() == ["v"]
    np.testing.assert_array_equal(rd.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])
    assert rd.attributes() == {"k": "value"}


def test_handle_reads_the_version_it_opened(tmp_path):
    path = tmp_path / "store"
    writer = atlas.Atlas.create(path)
    _populate(writer, "d")
    writer.flush()
    early = atlas.Atlas.open(path)
    writer.create_dataset("later")
    writer.open_dataset("d").write_array("v", [0], np.full(6, 1.0))
    writer.flush()
    assert early.list_datasets() == ["d"]
    np.testing.assert_array_equal(
        early.open_dataset("d").read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0]
    )
    assert atlas.Atlas.open(path).list_datasets() == ["d", "later"]


def test_dropping_a_handle_without_flush_loses_its_changes(tmp_path):
    path = tmp_path / "store"
    first = atlas.Atlas.create(path)
    _populate(first, "d")
    first.flush()
    del first
    gc.collect()

    handle = atlas.Atlas.open(path)
    handle.create_dataset("lost")
    handle.open_dataset("d").set_attribute("lost", 1)
    handle.open_dataset("d").write_array("v", [0], np.full(6, 5.0))
    del handle
    gc.collect()

    reopened = atlas.Atlas.open(path)
    assert reopened.list_datasets() == ["d"]
    ds = reopened.open_dataset("d")
    assert ds.attributes() == {"k": "value"}
    np.testing.assert_array_equal(ds.read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0])


def test_large_unflushed_writes_stay_invisible_and_leave_only_removable_orphans(tmp_path):
    path = tmp_path / "store"
    base = atlas.Atlas.create(path, codec="none")
    base_ds = base.create_dataset("base")
    base_ds.define_array("v", "float64", ["x"], [10_000], chunk_shape=[1_000])
    base_ds.write_array("v", [0], np.zeros(10_000))
    base.flush()
    del base
    gc.collect()
    baseline = _du(path)

    # 32 MB of incompressible data that is never flushed.
    big = np.random.default_rng(0).random(1_000_000)
    writer = atlas.Atlas.open(path)
    writer.open_dataset("base").write_array("v", [0], big[:10_000])
    for i in range(4):
        ds = writer.create_dataset(f"big{i}")
        ds.define_array("v", "float64", ["x"], [1_000_000], chunk_shape=[100_000])
        ds.write_array("v", [0], big)

    reader = atlas.Atlas.open(path)
    assert reader.list_datasets() == ["base"]
    np.testing.assert_array_equal(reader.open_dataset("base").read_array("v"), np.zeros(10_000))

    del writer  # a "crash": nothing was flushed
    gc.collect()
    cleaner = atlas.Atlas.open(path)
    cleaner.compact()
    assert _du(path) < baseline + 4_000_000
    final = atlas.Atlas.open(path)
    assert final.list_datasets() == ["base"]
    np.testing.assert_array_equal(final.open_dataset("base").read_array("v"), np.zeros(10_000))


# ---------------------------------------------------------------------------
# Two writers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("first_is_creator", [False, True])
def test_second_flush_on_a_moved_store_is_a_conflict(tmp_path, first_is_creator):
    path = tmp_path / "store"
    creator = atlas.Atlas.create(path)
    _populate(creator, "base")
    creator.flush()
    other = atlas.Atlas.open(path)
    h1, h2 = (creator, other) if first_is_creator else (other, creator)

    h1.create_dataset("from_h1").set_attribute("who", 1)
    h1.open_dataset("base").set_attribute("k", "h1")
    h2.create_dataset("from_h2").set_attribute("who", 2)
    h2.open_dataset("base").set_attribute("k", "h2")

    h1.flush()
    with pytest.raises(Exception) as info:
        h2.flush()
    assert isinstance(info.value, RuntimeError)

    # The first writer's commit is intact and the failed flush persisted nothing.
    final = atlas.Atlas.open(path)
    assert final.list_datasets() == ["base", "from_h1"]
    assert final.open_dataset("from_h1").get_attribute("who") == 1
    assert final.open_dataset("base").get_attribute("k") == "h1"
    np.testing.assert_array_equal(
        final.open_dataset("base").read_array("v"), [0.0, 1.0, 2.0, 3.0, 4.0, -1.0]
    )


def test_conflict_on_array_data(tmp_path):
    path = tmp_path / "store"
    creator = atlas.Atlas.create(path)
    _populate(creator, "base")
    creator.flush()
    h1 = atlas.Atlas.open(path)
    h2 = atlas.Atlas.open(path)
    h1.open_dataset("base").write_array("v", [0], np.full(6, 1.0))
    h2.open_dataset("base").write_array("v", [0], np.full(6, 2.0))
    h1.flush()
    with pytest.raises(Exception) as info:
        h2.flush()
    assert isinstance(info.value, RuntimeError)
    np.testing.assert_array_equal(
        atlas.Atlas.open(path).open_dataset("base").read_array("v"), np.full(6, 1.0)
    )


def test_sequential_flushes_of_one_handle_are_not_conflicts(tmp_path):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path)
    for i in range(3):
        store.create_dataset(f"d{i}")
        store.flush()
    later = atlas.Atlas.open(path)
    later.create_dataset("d3")
    later.flush()
    assert atlas.Atlas.open(path).list_datasets() == ["d0", "d1", "d2", "d3"]
