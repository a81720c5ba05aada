"""A store whose create was interrupted is created again; a location holding anything
else is refused, by ``Atlas.create`` and by ``atlas ingest``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from netcdf_helpers import write_tree

import atlas
from atlas.cli import main
from atlas.format import manifest as mf
from atlas.integrations.netcdf import IngestError, ingest_directory
from atlas.storage import LocalStorage, MemoryStorage
from atlas.storage.wrappers import FaultyStorage

CONFIG = mf.encode_config("zstd", "msgpack", "zstd")


def _config_only(store: Path) -> None:
    """What a create killed between writing atlas.json and its first manifest leaves."""
    store.mkdir(parents=True)
    (store / "atlas.json").write_bytes(CONFIG)


def _temp_only(store: Path) -> None:
    """A create killed while writing atlas.json: only its temporary file."""
    store.mkdir(parents=True)
    (store / ".tmp-0123456789abcdef").write_bytes(CONFIG[:7])


def _everything_but_a_manifest(store: Path) -> None:
    """atlas.json, an empty manifests/ with a temporary file, unreferenced data and index."""
    _config_only(store)
    for sub in ("manifests", "data", "index"):
        (store / sub).mkdir()
    (store / "manifests" / ".tmp-00aa11bb22cc33dd").write_bytes(b"partial")
    (store / "data" / "v1-0123456789abcdef0123.seg").write_bytes(b"orphan")
    (store / "data" / ".tmp-feedfacefeedface").write_bytes(b"partial")
    (store / "index" / "v1-0123456789abcdef0123.idx").write_bytes(b"orphan")


def _torn_config(store: Path) -> None:
    """Half an atlas.json: a create interrupted on a file system without hard links."""
    store.mkdir(parents=True)
    (store / "atlas.json").write_bytes(CONFIG[: len(CONFIG) // 2])


LEFTOVERS: dict[str, Callable[[Path], None]] = {
    "config-only": _config_only,
    "temp-only": _temp_only,
    "no-manifest": _everything_but_a_manifest,
    "torn-config": _torn_config,
}

def _files(**files: bytes) -> Callable[[Path], None]:
    """Writes ``files`` (``__`` in a name stands for ``/``) under a directory."""

    def write(root: Path) -> None:
        for name, data in files.items():
            path = root / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return write


FOREIGN: dict[str, Callable[[Path], None]] = {
    "a-file-in-data": _files(**{"data__table.csv": b"1,2"}),
    "a-file-in-index": _files(**{"index__notes.txt": b"mine"}),
    "config-and-a-file-in-manifests": _files(**{"atlas.json": CONFIG, "manifests__x.nc": b"x"}),
}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------- the library


@pytest.mark.parametrize("leftover", sorted(LEFTOVERS))
def test_create_takes_over_an_interrupted_create(leftover: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    LEFTOVERS[leftover](store)
    created = atlas.Atlas.create(store, codec="lz4")
    assert created.version == 0 and created.codec == "lz4"
    ds = created.create_dataset("d")
    ds.set_attribute("a", 1)
    created.flush()
    again = atlas.Atlas.open(store)
    assert again.list_datasets() == ["d"] and again.codec == "lz4"
    assert again.verify() == []


def test_create_takes_over_a_create_that_failed_in_the_middle(tmp_path: Path) -> None:
    """The first manifest's write fails: what is left is taken over by the next create."""
    faulty = FaultyStorage(LocalStorage(tmp_path / "store", create=True), fail_at=1, match="manifests/")
    with pytest.raises(OSError, match="injected"):
        atlas.Atlas.create(faulty)
    assert os.listdir(tmp_path / "store") == ["atlas.json"]
    with pytest.raises(atlas.StoreNotFoundError):
        atlas.Atlas.open(tmp_path / "store")
    assert atlas.Atlas.create(tmp_path / "store").version == 0
    assert atlas.Atlas.open(tmp_path / "store").version == 0


@pytest.mark.parametrize("foreign", sorted(FOREIGN))
def test_create_refuses_a_location_with_foreign_files(foreign: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    FOREIGN[foreign](store)
    before = _tree(store)
    with pytest.raises(FileExistsError, match="not an Atlas store"):
        atlas.Atlas.create(store)
    assert _tree(store) == before


def test_create_leaves_the_users_own_files_beside_the_store_alone(tmp_path: Path) -> None:
    """As ``mkdir -p`` would: a directory holding other files takes a store beside them."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "notes.txt").write_bytes(b"mine")
    (store / "inputs").mkdir()
    (store / "inputs" / "x.nc").write_bytes(b"x")
    created = atlas.Atlas.create(store)
    created.create_dataset("d")
    created.flush()
    created.compact(grace_period=0)
    assert (store / "notes.txt").read_bytes() == b"mine" and (store / "inputs" / "x.nc").read_bytes() == b"x"
    assert atlas.Atlas.open(store).list_datasets() == ["d"]


def test_create_still_refuses_a_committed_store(tmp_path: Path) -> None:
    atlas.Atlas.create(tmp_path / "store")
    with pytest.raises(FileExistsError, match="already exists"):
        atlas.Atlas.create(tmp_path / "store")


def test_create_on_object_storage_takes_over_leftovers_and_refuses_foreign_objects() -> None:
    st = MemoryStorage()
    st.put("atlas.json", CONFIG)
    st.put("data/v2-00112233445566778899.seg", b"orphan")
    assert atlas.Atlas.create(st).version == 0
    other = MemoryStorage()
    other.put("data/cat.jpg", b"meow")
    with pytest.raises(FileExistsError, match="data/cat.jpg"):
        atlas.Atlas.create(other)
    assert other.list() == ["data/cat.jpg"]
    beside = MemoryStorage()
    beside.put("photos/cat.jpg", b"meow")  # beside the store's folders: left alone
    assert atlas.Atlas.create(beside).version == 0 and beside.get("photos/cat.jpg") == b"meow"


# ---------------------------------------------------------------------------- the ingest


@pytest.mark.parametrize("leftover", sorted(LEFTOVERS))
def test_ingest_rerun_recovers_a_half_created_store(leftover: str, tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 3)
    LEFTOVERS[leftover](tmp_path / "store")
    report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    assert report.created and len(report.added) == 3
    assert sorted(atlas.Atlas.open(tmp_path / "store").list_datasets()) == sorted(report.added)


def test_failed_ingest_into_a_half_created_store_leaves_the_directory_empty(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 2)
    (tmp_path / "src" / "bad.nc").write_bytes(b"garbage")
    _config_only(tmp_path / "store")
    with pytest.raises(IngestError, match="bad.nc"):
        ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    assert os.listdir(tmp_path / "store") == []


FOREIGN_DIRS: dict[str, Callable[[Path], None]] = {
    **FOREIGN,
    "an-empty-directory": lambda p: (p / "photos").mkdir(),
    "a-symlink": lambda p: (p / "atlas.json").symlink_to(p.parent / "elsewhere.json"),
}


@pytest.mark.parametrize("foreign", sorted(FOREIGN_DIRS))
def test_ingest_refuses_a_directory_with_foreign_entries(foreign: str, tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 1)
    store = tmp_path / "store"
    store.mkdir()
    FOREIGN_DIRS[foreign](store)
    before = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    with pytest.raises(IngestError, match="not an Atlas store"):
        ingest_directory(tmp_path / "src", store, jobs=1)
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == before


# ---------------------------------------------------------------------------- the command


def test_cli_ingest_rerun_after_a_killed_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tree(tmp_path / "src", 3)
    _everything_but_a_manifest(tmp_path / "store")
    rc = main(["ingest", str(tmp_path / "src"), str(tmp_path / "store"), "--jobs", "1", "-q"])
    out, err = capsys.readouterr()
    assert rc == 0, (out, err)
    assert out.startswith(f"created {tmp_path / 'store'}: 3 datasets added")
    assert len(atlas.Atlas.open(tmp_path / "store").list_datasets()) == 3


def test_cli_ingest_still_refuses_a_directory_with_foreign_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tree(tmp_path / "src", 1)
    _config_only(tmp_path / "store")
    (tmp_path / "store" / "notes.txt").write_text("mine")
    rc = main(["ingest", str(tmp_path / "src"), str(tmp_path / "store"), "--jobs", "1", "-q"])
    _, err = capsys.readouterr()
    assert rc == 1
    assert "exists and is not an Atlas store" in err
    assert sorted(os.listdir(tmp_path / "store")) == ["atlas.json", "notes.txt"]


def test_cli_ingest_rerun_after_a_real_kill_during_create(tmp_path: Path) -> None:
    """``atlas ingest`` killed (SIGKILL) right after writing atlas.json; run again, it works."""
    write_tree(tmp_path / "src", 2)
    store = tmp_path / "store"
    # the first run dies as soon as the create has written the config
    killer = (
        "import os, signal, sys\n"
        "import atlas.storage.local as local\n"
        "real = local.LocalStorage.put_if_absent\n"
        "def put_if_absent(self, key, data):\n"
        "    done = real(self, key, data)\n"
        "    if key == 'atlas.json':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return done\n"
        "local.LocalStorage.put_if_absent = put_if_absent\n"
        "from atlas.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["ingest", str(tmp_path / "src"), str(store), "--jobs", "1", "-q"]
    first = subprocess.run([sys.executable, "-c", killer, *args], capture_output=True, text=True, timeout=120)
    assert first.returncode == -9, first.stderr
    assert os.listdir(store) == ["atlas.json"]
    again = subprocess.run([sys.executable, "-m", "atlas", *args], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "2 datasets added" in again.stdout
    assert len(atlas.Atlas.open(store).list_datasets()) == 2
