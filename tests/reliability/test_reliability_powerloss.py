"""Power loss: what reaches the disk is only what was fsynced.

``LocalStorage``'s calls to the file system are recorded by a shim that keeps, next to
the real directory, a model of what a power cut would leave:

* file contents are durable only up to the last ``fsync`` of that file;
* directory entries (create, rename, link, unlink, mkdir) are durable only once their
  directory has been fsynced. Two variants: ``strict`` drops every entry change not yet
  fsynced (the POSIX worst case); ``ordered`` keeps them all (journalled metadata) but
  still drops unsynced file contents, which then read as empty files (the classic
  "rename without fsync" zero-length file).

For every k, power is cut just before the k-th file-system step of a flush or compact
(nothing else reaches the disk), the model's image of the store is materialised, and
that image must open and equal the old or the new state exactly, verify cleanly, accept
a new commit, and compact down to referenced files only.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import Tally, handle_snapshot, snapshot, stray_files, without

import atlas
import atlas.storage.local as local_module


class PowerCut(BaseException):
    """The machine lost power: nothing after this reaches the disk."""


class Inode:
    __slots__ = ("volatile", "durable")

    def __init__(self, content: bytes = b"", durable: bytes | None = None) -> None:
        self.volatile = bytearray(content)
        self.durable = durable  # None: never fsynced


class DiskModel:
    """A durability model of one directory tree, driven by the shim below."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.abspath(root)
        # directory -> {name: Inode or "dir"}, volatile and durable views
        self.volatile: dict[str, dict[str, Any]] = {}
        self.durable: dict[str, dict[str, Any]] = {}
        for dirpath, dirs, files in os.walk(self.root):
            entries: dict[str, Any] = {d: "dir" for d in dirs}
            for f in files:
                data = Path(dirpath, f).read_bytes()
                entries[f] = Inode(data, data)
            self.volatile[dirpath] = dict(entries)
            self.durable[dirpath] = dict(entries)
        self.fds: dict[int, tuple[str, Any]] = {}  # fd -> (path, Inode or "dir")

    def _split(self, path: str) -> tuple[str, str]:
        path = os.path.abspath(path)
        return os.path.dirname(path), os.path.basename(path)

    def lookup(self, path: str) -> Any:
        d, n = self._split(path)
        return self.volatile.get(d, {}).get(n)

    def opened(self, fd: int, path: str, flags: int) -> None:
        path = os.path.abspath(path)
        if path in self.volatile:
            self.fds[fd] = (path, "dir")
            return
        node = self.lookup(path)
        if node is None and flags & os.O_CREAT:
            d, n = self._split(path)
            node = Inode()
            self.volatile.setdefault(d, {})[n] = node
        if isinstance(node, Inode):
            self.fds[fd] = (path, node)

    def wrote(self, fd: int, data: Any) -> None:
        entry = self.fds.get(fd)
        if entry is not None and isinstance(entry[1], Inode):
            entry[1].volatile += bytes(memoryview(data).cast("B"))

    def synced(self, fd: int) -> None:
        entry = self.fds.get(fd)
        if entry is None:
            return
        path, node = entry
        if node == "dir":
            self.durable[path] = dict(self.volatile.get(path, {}))
        else:
            node.durable = bytes(node.volatile)

    def closed(self, fd: int) -> None:
        self.fds.pop(fd, None)

    def renamed(self, src: str, dst: str) -> None:
        sd, sn = self._split(src)
        dd, dn = self._split(dst)
        node = self.volatile[sd].pop(sn)
        self.volatile.setdefault(dd, {})[dn] = node

    def linked(self, src: str, dst: str) -> None:
        dd, dn = self._split(dst)
        self.volatile.setdefault(dd, {})[dn] = self.lookup(src)

    def unlinked(self, path: str) -> None:
        d, n = self._split(path)
        self.volatile.get(d, {}).pop(n, None)

    def made_dir(self, path: str) -> None:
        d, n = self._split(path)
        self.volatile.setdefault(d, {})[n] = "dir"
        self.volatile.setdefault(os.path.abspath(path), {})

    def image(self, target: Path, variant: str) -> None:
        """Write what the disk would hold after a power cut now."""
        view = self.durable if variant == "strict" else self.volatile

        def emit(directory: str, out: Path) -> None:
            out.mkdir(parents=True, exist_ok=True)
            for name, node in view.get(directory, {}).items():
                if node == "dir":
                    emit(os.path.join(directory, name), out / name)
                elif node is not None:
                    (out / name).write_bytes(node.durable or b"")

        emit(self.root, target)


class Shim:
    """Stands in for the ``os`` module inside ``atlas.storage.local``."""

    def __init__(self, model: DiskModel, cut_at: int | None) -> None:
        self.model = model
        self.cut_at = cut_at
        self.steps = 0
        self.cut = False
        self.lock = threading.RLock()  # files may be written from several threads

    def _step(self) -> None:
        with self.lock:
            if self.cut:
                raise PowerCut()
            self.steps += 1
            if self.cut_at is not None and self.steps >= self.cut_at:
                self.cut = True
                raise PowerCut()

    # each step runs whole under the lock: steps are totally ordered, and the cut falls
    # between two of them even when files are written from several threads

    def open(self, path: str, flags: int, *args: Any) -> int:
        with self.lock:
            if flags & os.O_CREAT:
                self._step()
            fd = os.open(path, flags, *args)
            self.model.opened(fd, path, flags)
            return fd

    def write(self, fd: int, data: Any) -> int:
        with self.lock:
            self._step()
            n = os.write(fd, data)
            self.model.wrote(fd, memoryview(data).cast("B")[:n])
            return n

    def fsync(self, fd: int) -> None:
        with self.lock:
            self._step()
            os.fsync(fd)
            self.model.synced(fd)

    def close(self, fd: int) -> None:
        with self.lock:
            os.close(fd)
            self.model.closed(fd)

    def replace(self, src: str, dst: str) -> None:
        with self.lock:
            self._step()
            os.replace(src, dst)
            self.model.renamed(src, dst)

    def link(self, src: str, dst: str) -> None:
        with self.lock:
            self._step()
            os.link(src, dst)
            self.model.linked(src, dst)

    def unlink(self, path: str) -> None:
        with self.lock:
            self._step()
            os.unlink(path)
            self.model.unlinked(path)

    def mkdir(self, path: str, *args: Any) -> None:
        with self.lock:
            self._step()
            os.mkdir(path, *args)
            self.model.made_dir(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


# --------------------------------------------------------------------------- scenarios


def base_store(path: Path) -> None:
    store = atlas.Atlas.create(path)
    for i in range(3):
        ds = store.create_dataset(f"ds{i}")
        ds.define_array("v", "float64", ["n"], [50], chunk_shape=[20], fill_value=float("nan"))
        ds.write_array("v", [0], np.linspace(0, i, 50))
        ds.define_array("s", "string", ["k"], [2])
        ds.write_array("s", [0], np.array([f"x{i}", "y"], dtype=object))
        ds.set_attribute("i", i)
    store.flush()
    store.delete_dataset("ds2")
    store.open_dataset("ds0").write_array("v", [0], np.zeros(50))
    store.flush()


def do_flush(store: atlas.Atlas) -> None:
    ds = store.create_dataset("new")
    ds.define_array("v", "float64", ["n"], [50], chunk_shape=[20])
    ds.write_array("v", [0], np.arange(50.0))
    ds.define_array("t", "timestamp_nanoseconds", ["n"], [3])
    ds.write_array("t", [0], np.array([1, 2, 3], dtype=np.int64))
    store.open_dataset("ds1").write_array("v", [10], np.full(5, -3.0))
    store.open_dataset("ds0").set_attribute("j", 1.5)
    store.flush()


def do_compact(store: atlas.Atlas) -> None:
    store.compact()


OPERATIONS: dict[str, Callable[[atlas.Atlas], None]] = {"flush": do_flush, "compact": do_compact}


@pytest.mark.parametrize("variant", ["strict", "ordered"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_power_cut_before_every_file_system_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str, variant: str
) -> None:
    tally = Tally(f"power_cut[{operation}-{variant}]")
    run = OPERATIONS[operation]
    template = tmp_path / "template"
    base_store(template)
    old = snapshot(template)
    ref = tmp_path / "reference"
    shutil.copytree(template, ref)
    run(atlas.Atlas.open(ref))
    new = snapshot(ref)
    for k in range(1, 1000):
        live = tmp_path / f"live{k}"
        shutil.copytree(template, live)
        model = DiskModel(live)
        store = atlas.Atlas.open(live)
        shim = Shim(model, cut_at=k)
        monkeypatch.setattr(local_module, "os", shim)
        try:
            run(store)
        except PowerCut:
            cut = True
        else:
            cut = False
        finally:
            monkeypatch.setattr(local_module, "os", os)
        if not cut:
            assert snapshot(live) == new
            tally.add("completed_at_step", k)
            break
        tally.add("power_cuts")
        after = tmp_path / f"after{k}"
        model.image(after, variant)
        fresh = atlas.Atlas.open(after)
        state = handle_snapshot(fresh)
        assert state in (old, new), f"power cut before step {k}: the store shows a mix of versions"
        tally.add("old" if state == old else "new")
        assert fresh.verify() == []
        ds = fresh.create_dataset("after")
        ds.define_array("x", "uint8", ["n"], [2])
        ds.write_array("x", [0], np.array([7, 9], dtype=np.uint8))
        fresh.flush()
        fresh.compact(grace_period=0)
        assert stray_files(after) == set(), "compact() left files of the interrupted operation"
        assert without(snapshot(after), "after") == without(state, "after")
        shutil.rmtree(live)
        shutil.rmtree(after)
    else:
        pytest.fail("the operation never completed")
    tally.report()
