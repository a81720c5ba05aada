"""Corruption is detected: bit flips and truncations in every file of a small store.

For every file (config, manifests, the ``latest`` hint, chunk indexes, segments, of the
current and of an older version), one bit is flipped at ~20 positions spread over the
file (plus every byte of the fixed-size headers), and the file is cut at several
lengths. Each time a fresh handle opens the store and reads everything: the result must
be a ``CorruptionError`` naming the damaged file (and, for data, the dataset and array),
or exactly the original content. Never different values, never another exception.

Then ``verify()``: for damaged blocks it must report each problem naming the dataset and
array, exactly the datasets it names must fail to read, and every other dataset must
still read exactly.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import (
    Tally,
    all_files,
    build_small_store,
    canon,
    current_manifest_path,
    handle_snapshot,
    referenced_files,
    snapshot,
    spread_positions,
)

import atlas
from atlas.format.chunkindex import HEADER

FLIPS_PER_FILE = 20


@pytest.fixture(scope="module", params=["json-none", "msgpack-zstd"])
def small_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    meta_format, meta_compression = request.param.split("-")
    path = tmp_path_factory.mktemp(request.param) / "store"
    build_small_store(path, meta_format=meta_format, meta_compression=meta_compression)
    return path, snapshot(path)


def kind_of(rel: str) -> str:
    if rel == "atlas.json":
        return "config"
    if rel.startswith("manifests/"):
        return "manifest" if rel[10:11].isdigit() else "hint"
    if rel.startswith("meta/"):
        return "shard"
    return "index" if rel.startswith("index/") else "segment"


def flips(size: int, rel: str, current: bool) -> list[int]:
    """Bit numbers to flip in a file: spread over it, plus the lowest and highest bit of
    every byte of a current chunk index's header (its fields are not checksummed)."""
    bits = [p * 8 + (p * 3) % 8 for p in spread_positions(size, FLIPS_PER_FILE)]
    if kind_of(rel) == "index" and current:
        bits += [b * 8 + bit for b in range(HEADER.size) for bit in (0, 7)]
    if kind_of(rel) == "segment":
        bits += [b * 8 for b in range(8)]  # the magic
    return sorted({b for b in bits if b < size * 8})


def cuts(size: int) -> list[int]:
    return sorted({c for c in (0, 1, 7, 8, 9, 31, 32, 33, size // 3, size // 2, size - 1) if 0 <= c < size})


def read_everything(path: Path) -> Any:
    """A fresh open and a full read: the snapshot, or the exception raised."""
    try:
        return handle_snapshot(atlas.Atlas.open(path))
    except Exception as e:  # judged by check_outcome
        return e


def check_outcome(outcome: Any, original: Any, rel: str, tally: Tally, what: str) -> str | None:
    """None if the outcome is acceptable, else what is wrong with it."""
    if isinstance(outcome, atlas.CorruptionError):
        msg = str(outcome)
        if rel.rsplit("/", 1)[-1] not in msg:
            return f"{what}: the error does not name the damaged file: {msg}"
        if kind_of(rel) == "segment" and not re.search(r"dataset '[^']+', array '[^']+'", msg):
            return f"{what}: no dataset/array named: {msg}"
        tally.add("detected")
        return None
    if isinstance(outcome, Exception):
        return f"{what}: {type(outcome).__name__} instead of CorruptionError: {outcome}"
    if outcome != original:
        return f"{what}: the store returned different content instead of an error"
    tally.add("harmless")
    return None


@contextmanager
def damaged(path: Path, rel: str, mutate: Callable[[bytes], bytes]) -> Iterator[None]:
    """The file at ``rel`` damaged by ``mutate`` for the duration of the block."""
    f = path / rel
    original = f.read_bytes()
    f.write_bytes(mutate(original))
    try:
        yield
    finally:
        f.write_bytes(original)


def flip(bit: int) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        b = bytearray(data)
        b[bit // 8] ^= 1 << (bit % 8)
        return bytes(b)

    return mutate


def test_bit_flips_and_truncations_in_every_file(small_store: tuple[Path, Any], tmp_path: Path) -> None:
    template, original = small_store
    path = tmp_path / "store"
    shutil.copytree(template, path)
    tally = Tally(f"corruption_sweep[{template.parent.name.rstrip('0123456789')}]")
    current = {current_manifest_path(path).relative_to(path).as_posix()} | referenced_files(path)
    files = [p.relative_to(path).as_posix() for p in all_files(path)]
    assert {kind_of(r) for r in files} == {"config", "manifest", "hint", "index", "segment", "shard"}
    failures: list[str] = []
    for rel in files:
        size = (path / rel).stat().st_size
        for bit in flips(size, rel, rel in current):
            with damaged(path, rel, flip(bit)):
                outcome = read_everything(path)
            failures.append(check_outcome(outcome, original, rel, tally, f"bit {bit} of {rel}") or "")
            tally.add("bit_flips")
        for n in cuts(size):
            what = f"{rel} cut to {n} bytes"
            with damaged(path, rel, lambda d, n=n: d[:n]):
                outcome = read_everything(path)
            failures.append(check_outcome(outcome, original, rel, tally, what) or "")
            if rel in current and kind_of(rel) != "hint" and not isinstance(outcome, Exception):
                failures.append(f"{what}: truncation went unnoticed")
            tally.add("truncations")
    failures = [f for f in failures if f]
    tally.add("files", len(files))
    tally.add("not_detected_properly", len(failures))
    tally.report()
    assert not failures, f"{len(failures)} damaged inputs not reported properly:\n" + "\n".join(failures[:15])


# --------------------------------------------------------------------------- verify


def affected(problems: list[str]) -> set[tuple[str, str]]:
    return set(re.findall(r"dataset '([^']+)', array '([^']+)'", " ".join(problems)))


def check_reads(path: Path, original: Any, bad: set[tuple[str, str]]) -> None:
    """Exactly the arrays in ``bad`` fail (CorruptionError naming them); the rest read exactly."""
    store = atlas.Atlas.open(path)
    expected = {name: dict((a[0], a) for a in entry[0]) for name, entry in original[2]}
    for name in store.list_datasets():
        ds = store.open_dataset(name)
        for array in ds.list_arrays():
            if (name, array) in bad:
                with pytest.raises(atlas.CorruptionError) as info:
                    ds.read_array(array)
                assert f"dataset {name!r}" in str(info.value) and f"array {array!r}" in str(info.value)
            else:
                assert canon(ds.read_array(array)) == expected[name][array][3]
            # metadata lives in the manifest and stays readable
            assert canon(ds.array_stats(array)) == expected[name][array][4]


def test_verify_names_damaged_blocks_and_the_rest_still_reads(small_store: tuple[Path, Any], tmp_path: Path) -> None:
    template, original = small_store
    path = tmp_path / "store"
    shutil.copytree(template, path)
    tally = Tally(f"verify_damaged_blocks[{template.parent.name.rstrip('0123456789')}]")
    assert atlas.Atlas.open(path).verify() == []
    segments = sorted(r for r in referenced_files(path) if r.startswith("data/"))
    for rel in segments:
        size = (path / rel).stat().st_size
        for mutate, what in ((flip((size // 2) * 8 + 1), "flip"), (lambda d: d[: len(d) - 3], "cut")):
            with damaged(path, rel, mutate):
                problems = atlas.Atlas.open(path).verify()
                assert problems, f"{what} in {rel} went unnoticed by verify()"
                assert all(rel in p for p in problems), problems
                bad = affected(problems)
                assert bad, f"verify() does not name the dataset and array: {problems}"
                check_reads(path, original, bad)
            tally.add("problems_reported", len(problems))
            tally.add("damaged_segments")
    indexes = sorted(r for r in referenced_files(path) if r.startswith("index/"))
    for rel in indexes:
        with damaged(path, rel, flip(HEADER.size * 8 + 5)):
            problems = atlas.Atlas.open(path).verify()
            assert len(problems) == 1 and rel in problems[0], problems
            variable = re.search(r"variable '([^']+)'", problems[0])
            assert variable, problems
            store = atlas.Atlas.open(path)
            for name in store.list_datasets():
                ds = store.open_dataset(name)
                for array in ds.list_arrays():
                    if array == variable.group(1):
                        with pytest.raises(atlas.CorruptionError, match=re.escape(rel)):
                            ds.read_array(array)
                    else:
                        ds.read_array(array)
        tally.add("damaged_indexes")
    tally.report()


def test_reads_across_datasets_report_corruption(small_store: tuple[Path, Any], tmp_path: Path) -> None:
    """read_array_across[_stacked] on a damaged block: CorruptionError, never another error."""
    template, _ = small_store
    path = tmp_path / "store"
    shutil.copytree(template, path)
    store = atlas.Atlas.open(path)
    names = store.list_datasets()
    for rel in sorted(r for r in referenced_files(path) if r.startswith("data/")):
        size = (path / rel).stat().st_size
        with damaged(path, rel, flip((size // 2) * 8)):
            problems = atlas.Atlas.open(path).verify()
            arrays = {a for _, a in affected(problems)}
            for array in arrays:
                fresh = atlas.Atlas.open(path)
                with pytest.raises(atlas.CorruptionError, match=re.escape(rel.rsplit("/", 1)[-1])):
                    fresh.read_array_across(array, names)
                fresh = atlas.Atlas.open(path)
                with pytest.raises(atlas.CorruptionError):
                    fresh.read_array_across_stacked(array, names)


def test_missing_files_are_reported(small_store: tuple[Path, Any], tmp_path: Path) -> None:
    """A referenced file that disappeared: a clear error naming it, and verify() lists it."""
    template, original = small_store
    for rel in sorted(referenced_files(template)):
        path = tmp_path / rel.replace("/", "_")
        shutil.copytree(template, path)
        (path / rel).unlink()
        outcome = read_everything(path)
        assert isinstance(outcome, atlas.CorruptionError), rel
        assert rel.rsplit("/", 1)[-1] in str(outcome) or "missing" in str(outcome), str(outcome)
        if kind_of(rel) == "shard":  # the names of its datasets are read at open
            with pytest.raises(atlas.CorruptionError, match=rel):
                atlas.Atlas.open(path)
        else:
            problems = atlas.Atlas.open(path).verify()
            assert problems and any(rel in p for p in problems), problems
        shutil.rmtree(path)


def test_damage_to_an_old_version_does_not_touch_the_current_one(small_store: tuple[Path, Any], tmp_path: Path) -> None:
    template, original = small_store
    path = tmp_path / "store"
    shutil.copytree(template, path)
    old = [p for p in all_files(path / "manifests") if p.name[:1].isdigit()][:-1]
    assert old
    for p in old:
        p.write_bytes(p.read_bytes()[:10])
    assert snapshot(path) == original
    store = atlas.Atlas.open(path)
    assert store.verify() == []
    with pytest.raises(atlas.CorruptionError):
        handle_snapshot(atlas.Atlas.open(path, version=1))
    ds = store.create_dataset("more")
    ds.define_array("x", "float64", ["n"], [2])
    ds.write_array("x", [0], np.array([1.0, 2.0]))
    store.flush()
    store.compact()
    assert atlas.Atlas.open(path).verify() == []
