"""The reader processes of an ingest: files go in groups, come back in order, and a reader
that dies is blamed on the one file it died on."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from netcdf_helpers import write_tree

from atlas.integrations.netcdf import workers
from atlas.integrations.netcdf.files import find_netcdf_files


class _FakePool:
    """Runs tasks in this process; a task touching a path with ``crash`` breaks the pool."""

    def __init__(self, log: list[list[str]]) -> None:
        self.log = log
        self.broken = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        paths = args[0] if isinstance(args[0], list) else [args[0]]
        self.log.append([Path(p).name for p in paths])
        if self.broken or any("crash" in p for p in paths):
            self.broken = True
            future.set_exception(BrokenProcessPool("a reader died"))
        else:
            future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def test_groups_come_back_in_order_and_a_crash_is_blamed_on_its_file(tmp_path: Path, monkeypatch: Any) -> None:
    write_tree(tmp_path, 12)
    (tmp_path / "north" / "p0005.nc").rename(tmp_path / "north" / "p0005_crash.nc")
    files = find_netcdf_files(tmp_path)
    monkeypatch.setattr(workers, "TASK_FILES", 4)
    log: list[list[str]] = []
    readers = workers.Readers(files, 2, 1 << 20)
    monkeypatch.setattr(readers, "_start_pool", lambda: _FakePool(log))
    out = list(readers)
    assert [src.relpath for src, _, _ in out] == [s.relpath for s in files]
    errors = {src.relpath: decoded.error for src, decoded, _ in out if decoded.error}
    assert errors == {"north/p0005_crash.nc": "the NetCDF library crashed while reading this file"}
    assert all(decoded.prepared is not None for src, decoded, _ in out if "crash" not in src.relpath)
    assert all(len(digest) == 64 for src, _, digest in out if "crash" not in src.relpath)
    assert max(len(task) for task in log) == 4  # files went in groups
    assert ["p0005_crash.nc"] in log  # then alone, to find the one that crashed


def test_groups_hold_few_files_and_few_bytes(tmp_path: Path) -> None:
    write_tree(tmp_path, 20)
    files = find_netcdf_files(tmp_path)
    groups = workers.task_groups(files)
    assert [s for g in groups for s in g] == files
    assert all(len(g) <= workers.TASK_FILES for g in groups)
    big = [files[0].__class__(files[0].path, "big.nc", "big", workers.TASK_BYTES + 1)]
    assert workers.task_groups(files[:2] + big + files[2:3]) == [files[:2], big, files[2:3]]
