"""Small stores for the tests of every folder (no tests here): datasets of profiles, a store
of a few one-array datasets, the files a local store holds, and rewriting a manifest after
its index files were edited on purpose.

``from store_helpers import ...`` works from any test folder (``tests`` is on the test
path, see ``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import atlas


def stored_files(path: Path) -> list[str]:
    """Every file under a local store, as sorted keys."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def write_profiles(
    store: atlas.Atlas, n: int, length: int = 200, prefix: str = "p", digits: int | None = None
) -> None:
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


def add_dataset(store: atlas.Atlas, name: str, n: int = 50, value: float = 1.0) -> None:
    """A dataset ``name`` whose float64 array ``x`` holds ``n`` times ``value``."""
    ds = store.create_dataset(name)
    ds.define_array("x", "float64", ["z"], [n])
    ds.write_array("x", [0], np.full(n, value))


def flushed_store(tmp_path: Path, names: int = 3) -> Path:
    """A store at ``tmp_path / "s"`` whose version 1 holds datasets d0, d1... with ``x`` = i."""
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    for i in range(names):
        add_dataset(store, f"d{i}", value=float(i))
    store.flush()
    return path


def first_values(path: Path | Any) -> dict[str, float]:
    """``{dataset: x[0]}`` of the newest version at ``path`` (a location or storage)."""
    store = atlas.Atlas.open(path)
    names = store.list_datasets()
    return {n: float(a[0]) for n, a in zip(names, store.read_array_across("x", names), strict=True)}


def record_index_checks(path: Path) -> None:
    """Rewrite the newest manifest so that it records the index files as they are now."""
    from atlas.format import manifest as mf
    from atlas.format.chunkindex import index_check

    newest = sorted((path / "manifests").glob("0*"))[-1]
    head, doc = mf.decode_manifest(newest.read_bytes(), "test", "json", "none")
    if "index_checks" in doc:  # version 1
        doc["index_checks"] = {k: list(index_check((path / k).read_bytes())) for k in doc["index_checks"]}
    for v in doc["variables"]:  # version 2: runs at offset 0 filling their file
        for run in v[2] if isinstance(v[2], list) else []:
            if run[1] == 0:
                run[2], run[3] = index_check((path / run[0]).read_bytes())
    for field in ("body_length", "body_crc32c"):
        head.pop(field)
    newest.write_bytes(mf.encode_manifest(doc, head, "json", "none"))
