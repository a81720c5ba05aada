"""Real crashes: writer processes killed with SIGKILL in the middle of a flush.

* Every durability step: a child process is SIGKILLed just before its k-th file-system
  step (open of a new file, write, fsync, rename, link, unlink, mkdir) inside
  ``LocalStorage``, for every k until the flush completes. Children are forked from one
  helper process that imported Atlas once, so each crash point costs milliseconds.
* Random moments of large flushes: a child ingests ~100 MB with a small write-ahead
  buffer (so segments go out during the writes) and is SIGKILLed after a random delay,
  during the writes or during the flush.

After each crash the store must open and equal, exactly, the state before or after the
flush; ``verify()`` must find nothing; a fresh handle must commit new changes; and
``compact()`` must leave only files the current manifest references.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import Tally, canon, snapshot, store_files, stray_files, without

import atlas

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and SIGKILL")

# Shared by the parent (reference runs) and the children.
SCENARIO_SRC = r'''
import time
import numpy as np

def small_change(store):
    """A flush touching several variables: new datasets, an overwrite, a delete, attributes."""
    for i in range(2):
        ds = store.create_dataset(f"n{i}")
        ds.define_array("temp", "float32", ["z"], [30], chunk_shape=[10], fill_value=float("nan"))
        ds.write_array("temp", [5], np.arange(20, dtype=np.float32) + i)
        ds.define_array("name", "string", ["k"], [2])
        ds.write_array("name", [0], np.array([f"a{i}", "b"], dtype=object))
        ds.set_attribute("i", i)
    store.open_dataset("base0").write_array("v", [10], np.full(5, -1, dtype=np.int64))
    store.delete_dataset("base1")
    store.open_dataset("base2").set_attribute("note", "changed")


def large_round(store, rnd, n, cells, say):
    """Replace the previous round's datasets by n new ones of `cells` float64 each."""
    for name in [d for d in store.list_datasets() if d.startswith("r")]:
        store.delete_dataset(name)
    base = store.open_dataset("base0")
    base.write_array("v", [0], np.full(100, rnd, dtype=np.int64))
    base.set_attribute("round", rnd)
    for i in range(n):
        rng = np.random.default_rng(rnd * 1000 + i)
        ds = store.create_dataset(f"r{rnd}-{i}")
        ds.define_array("big", "float64", ["t"], [cells], chunk_shape=[cells // 4])
        ds.write_array("big", [0], rng.random(cells))
        ds.define_array("tag", "string", ["k"], [1])
        ds.write_array("tag", [0], np.array([f"{rnd}-{i}"], dtype=object))
        ds.set_attribute("i", i)
        say(f"w {i}")
    say(f"flushing {time.monotonic()}")
    store.flush()
    say(f"done {time.monotonic()}")
'''

_scenario: dict[str, Any] = {}
exec(SCENARIO_SRC, _scenario)
small_change = _scenario["small_change"]
large_round = _scenario["large_round"]

# A helper process: imports Atlas once, then for each request forks a child that runs
# `small_change` + flush and SIGKILLs itself right before its k-th file-system step.
ZYGOTE_SRC = SCENARIO_SRC + r'''
import os, signal, sys
import atlas
import atlas.storage.local as local

STEPS = ("write", "fsync", "replace", "link", "unlink", "mkdir")


class KillAt:
    def __init__(self, k):
        self.k, self.n = k, 0

    def step(self):
        self.n += 1
        if self.n == self.k:
            os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name):
        real = getattr(os, name)
        if name in STEPS:
            def wrapped(*a, **kw):
                self.step()
                return real(*a, **kw)
            return wrapped
        if name == "open":
            def opened(path, flags, *a, **kw):
                if flags & os.O_CREAT:
                    self.step()
                return real(path, flags, *a, **kw)
            return opened
        return real


for line in sys.stdin:
    k, path = line.rstrip("\n").split(" ", 1)
    pid = os.fork()
    if pid == 0:
        try:
            local.os = KillAt(int(k))
            store = atlas.Atlas.open(path)
            small_change(store)
            store.flush()
        except BaseException as e:
            sys.stderr.write(f"child failed: {e!r}\n")
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        print(f"signal {os.WTERMSIG(status)}", flush=True)
    else:
        print(f"exit {os.WEXITSTATUS(status)}", flush=True)
'''


def base_store(path: Path) -> None:
    store = atlas.Atlas.create(path)
    for i in range(3):
        ds = store.create_dataset(f"base{i}")
        ds.define_array("v", "int64", ["n"], [100], chunk_shape=[32])
        ds.write_array("v", [0], np.arange(100, dtype=np.int64) * (i + 1))
        ds.define_array("temp", "float32", ["z"], [30], chunk_shape=[10])
        ds.write_array("temp", [0], np.linspace(0, 1, 30, dtype=np.float32))
        ds.set_attribute("i", i)
    store.flush()


def after_crash_checks(path: Path, state: Any) -> None:
    """verify, commit more from a fresh handle, compact: only referenced files remain."""
    store = atlas.Atlas.open(path)
    assert store.verify() == []
    ds = store.create_dataset("after")
    ds.define_array("x", "int8", ["n"], [3])
    ds.write_array("x", [0], np.array([1, 2, 3], dtype=np.int8))
    store.flush()
    store.compact(grace_period=0)
    fresh = atlas.Atlas.open(path)
    assert fresh.verify() == []
    assert without(snapshot(path), "after") == without(state, "after")
    assert stray_files(path) == set(), "compact() left files of the killed writer"


def test_sigkill_before_every_file_system_step(tmp_path: Path) -> None:
    tally = Tally("sigkill_every_step")
    template = tmp_path / "template"
    base_store(template)
    old = snapshot(template)
    ref = tmp_path / "reference"
    shutil.copytree(template, ref)
    s = atlas.Atlas.open(ref)
    small_change(s)
    s.flush()
    new = snapshot(ref)
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE_SRC],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        assert zygote.stdin is not None and zygote.stdout is not None
        for k in range(1, 500):
            path = tmp_path / f"k{k}"
            shutil.copytree(template, path)
            zygote.stdin.write(f"{k} {path}\n")
            zygote.stdin.flush()
            outcome = zygote.stdout.readline().strip()
            assert outcome in ("signal 9", "exit 0"), f"child at k={k}: {outcome!r}"
            state = snapshot(path)
            assert state in (old, new), f"SIGKILL before step {k}: the store shows a mix of versions"
            if outcome == "exit 0":
                assert state == new
                tally.add("completed_at_step", k)
                break
            tally.add("crashes")
            tally.add("old" if state == old else "new")
            after_crash_checks(path, state)
            shutil.rmtree(path)
        else:
            pytest.fail("the flush never completed")
    finally:
        if zygote.stdin:
            zygote.stdin.close()
        zygote.wait(timeout=30)
    tally.report()
    assert tally.counts["crashes"] > 10


def kill_in_first_rename(path: Path) -> None:
    """Run small_change + flush in a child killed right after writing its first temp file."""
    src = ZYGOTE_SRC.replace("for line in sys.stdin:", "for line in [sys.argv[1] + ' ' + sys.argv[2]]:")
    # kill before the first rename: the temp file of a segment is complete and fsynced
    out = subprocess.run(
        [sys.executable, "-c", src, "3", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "signal 9", out


def test_compact_removes_temp_files_of_killed_writers(tmp_path: Path) -> None:
    path = tmp_path / "store"
    base_store(path)
    old = snapshot(path)
    kill_in_first_rename(path)
    temps = [f for f in store_files(path) if "/.tmp-" in f]
    assert temps, "the killed writer should have left its temp file"
    store = atlas.Atlas.open(path)
    assert snapshot(path) == old
    store.compact(grace_period=0)
    assert stray_files(path) == set(), "compact() must remove what a killed writer left behind"


# --------------------------------------------------------------------------- large flushes

ROUNDS = 5
DATASETS = 12
CELLS = 1_000_000  # 8 MB of float64 per dataset, ~100 MB per round

CHILD_SRC = SCENARIO_SRC + r'''
import sys
import atlas
path, rnd, n, cells = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = atlas.Atlas.open(path)
store.buffer_bytes = 16 << 20
large_round(store, rnd, n, cells, lambda msg: print(msg, flush=True))
'''


def digest_snapshot(path: Path) -> Any:
    """Like ``snapshot``, with numeric array contents replaced by their SHA-256."""
    store = atlas.Atlas.open(path)
    out = []
    for name in store.list_datasets():
        ds = store.open_dataset(name)
        arrays = []
        for a in ds.list_arrays():
            data = ds.read_array(a)
            if data.dtype == object:
                content: Any = canon(data)
            else:
                content = (data.dtype.str, data.shape, hashlib.sha256(data.tobytes()).hexdigest())
            arrays.append((a, canon(ds.array_meta(a)), content, canon(ds.array_stats(a))))
        out.append((name, tuple(arrays), canon(ds.attributes())))
    return tuple(out)


def test_sigkill_at_random_moments_of_large_flushes(tmp_path: Path) -> None:
    tally = Tally("sigkill_large_flush")
    rng = random.Random(20261125)
    path = tmp_path / "store"
    base_store(path)
    flush_estimate = 0.3
    started = time.monotonic()
    for rnd in range(1, ROUNDS + 1):
        old = digest_snapshot(path)
        pre = tmp_path / f"pre{rnd}"
        shutil.copytree(path, pre, copy_function=os.link)  # files are immutable: links suffice
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_SRC, str(path), str(rnd), str(DATASETS), str(CELLS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        during_flush = rnd % 2 == 1
        target = "flushing" if during_flush else f"w {rng.randrange(DATASETS - 1)}"
        seen = []
        for line in proc.stdout:
            seen.append(line.strip())
            if seen[-1].startswith(target):
                break
        assert seen and seen[-1].startswith(target), f"child ended early: {seen} {proc.stderr.read() if proc.stderr else ''}"
        # during the flush: a uniform moment of its expected duration; else within 50 ms
        time.sleep(rng.uniform(0, flush_estimate) if during_flush else rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read().split("\n")
        proc.wait(timeout=60)
        done = [line for line in rest if line.startswith("done")]
        completed = bool(done)
        if completed:
            flushing = [line for line in seen + rest if line.startswith("flushing")]
            flush_estimate = float(done[0].split()[1]) - float(flushing[0].split()[1])
            tally.add("completed")
        else:
            assert proc.returncode == -signal.SIGKILL
            tally.add("crashes")
            tally.add("killed_during_flush" if during_flush else "killed_during_writes")
        state = digest_snapshot(path)
        if state != old or completed:
            ref = atlas.Atlas.open(pre)
            large_round(ref, rnd, DATASETS, CELLS, lambda msg: None)
            new = digest_snapshot(pre)
            assert state == new, f"round {rnd}: the store shows neither the old nor the new state"
            tally.add("new")
        else:
            tally.add("old")
        shutil.rmtree(pre)
        store = atlas.Atlas.open(path)
        assert store.verify() == []
        store.compact(grace_period=0)
        assert atlas.Atlas.open(path).verify() == []
        assert digest_snapshot(path) == state
        assert stray_files(path) == set(), "compact() left files of the killed writer"
    tally.add("seconds", round(time.monotonic() - started))
    tally.report()
