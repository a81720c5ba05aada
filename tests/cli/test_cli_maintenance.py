"""The commands that change a store or check it, run as a subprocess like a user would:
``rm``, ``compact`` (and its grace period), ``verify``, and the store's history:
``versions``, ``tag`` and ``expire``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from cli_helpers import assert_one_line_error, run

import atlas


def _store(path: Path, commits: int = 3) -> Path:
    store = atlas.Atlas.create(path)
    for i in range(commits):  # versions 1..commits
        ds = store.create_dataset(f"d{i}")
        ds.define_array("x", "float64", ["z"], [100])
        ds.write_array("x", [0], np.full(100, float(i)))
        store.flush()
    return path


def test_rm_compact_and_verify(built: tuple[Path, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(built[1], store)
    assert_one_line_error(run("rm", store, "south:p0000", "nope", rc=None), "nope")
    assert len(atlas.Atlas.open(store).list_datasets()) == 7  # nothing was removed
    proc = run("rm", store, "south:p0000", "south:p0002")
    assert proc.stdout.startswith("removed 2 datasets")
    assert "south:p0000" not in atlas.Atlas.open(store).list_datasets()
    compact = json.loads(run("compact", store, "--prune-now", "--json").stdout)
    # a store this small takes about the same blocks on disk (tombstones keep version numbers)
    assert compact["apparent_bytes_after"] < compact["apparent_bytes_before"]
    assert compact["deleted_bytes"] > 0
    assert "no problems found" in run("verify", store).stdout

    segment = max((store / "data").iterdir(), key=lambda p: p.stat().st_size)
    raw = bytearray(segment.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 8] = bytes(b ^ 0xFF for b in raw[mid : mid + 8])
    segment.write_bytes(bytes(raw))
    result = json.loads(run("verify", store, "--json", rc=1).stdout)
    assert result["ok"] is False and result["problems"]


def test_versions_tag_expire_and_compact(tmp_path: Path) -> None:
    path = _store(tmp_path / "s")
    out = run("versions", path).stdout.splitlines()
    assert [line.split()[0] for line in out] == ["0", "1", "2", "3"]
    assert "tagged version 1" in run("tag", path, "first", "--version", "1").stdout
    run("tag", path, "newest")
    listed = json.loads(run("versions", path, "--json").stdout)["versions"]
    assert {v["version"]: v["tags"] for v in listed} == {0: [], 1: ["first"], 2: [], 3: ["newest"]}
    run("tag", path, "first", rc=1)  # tags are immutable
    run("tag", path, "bad/name", rc=1)
    expired = json.loads(run("expire", path, "--keep", "1", "--json").stdout)["expired"]
    assert expired == [0, 2]
    run("expire", path, rc=2)  # says which versions to expire
    run("expire", path, "--older-than", "yesterday", rc=2)
    info = json.loads(run("info", path, "--json").stdout)
    assert info["versions"] == [1, 3] and info["tags"] == {"first": 1, "newest": 3}
    # the default grace period keeps the expired versions' files for an hour
    kept = json.loads(run("compact", path, "--json").stdout)
    assert kept["removed_versions"] == [] and kept["grace_seconds"] == 3600.0
    pruned = json.loads(run("compact", path, "--prune-now", "--json").stdout)
    assert pruned["removed_versions"] == [0, 2] and pruned["grace_seconds"] == 0.0
    assert atlas.Atlas.open(path, version="first").list_datasets() == ["d0"]
    assert "deleted tag 'first'" in run("tag", path, "first", "--delete").stdout
    run("compact", path, "--grace", "0s")
    assert [v["version"] for v in atlas.Atlas.open(path).versions()] == [3]


def test_compact_reports_what_the_grace_period_keeps(tmp_path: Path) -> None:
    path = _store(tmp_path / "s")
    writer = atlas.Atlas.open(path)
    writer.buffer_bytes = 1
    ds = writer.create_dataset("unflushed")
    ds.define_array("x", "float64", ["z"], [1000])
    ds.write_array("x", [0], np.ones(1000))  # written ahead: a segment no version names
    out = run("compact", path).stdout
    assert "kept 1 file" in out and "--prune-now" in out
    info = run("info", path).stdout
    assert "note:" in info and "atlas compact" in info
    verify = run("verify", path).stdout
    assert "no problems found" in verify and "note: 1 file(s)" in verify
    writer.flush()  # the writer's segments survived the compaction
    assert atlas.Atlas.open(path).open_dataset("unflushed").read_array("x").sum() == 1000.0


def test_a_conflict_is_told_as_another_process_changing_the_store() -> None:
    from atlas.cli.errors import error_message
    from atlas.errors import Conflict

    plain = error_message(atlas.ConflictError("the store moved on ... Reopen the store and apply your changes again"))
    assert plain == "another process changed the store while this command ran; nothing was committed. Run the command again"
    err = atlas.ConflictError("x")
    err.conflicts = (Conflict("d1", "", "deleted", "changed"),)
    assert "(dataset 'd1' deleted by this command and changed by the other)" in error_message(err)
