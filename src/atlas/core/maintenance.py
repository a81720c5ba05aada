"""Compaction, version listing and verification of a store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptionError
from ..format import manifest as mf
from ..format.chunkindex import ChunkIndex, empty_rows
from ..format.codec import DECIMAL
from ..format.segment import SEGMENT_MAGIC, ChunkPayload, write_segments
from .state import DatasetState, Variable

if TYPE_CHECKING:
    from .atlas import Atlas

REWRITE_BATCH_BYTES = 64 << 20


def _needs_rewrite(var: Variable, idx: ChunkIndex) -> bool:
    """True when the variable's segments hold bytes no live chunk uses."""
    rows = idx.rows
    if len(rows) == 0:
        return bool(var.segments)
    if len(np.unique(rows["seg"])) < len(var.segments):
        return True  # a whole segment is dead
    block_ids = np.stack([rows["seg"].astype(np.int64), rows["offset"].astype(np.int64)], axis=1)
    first = np.unique(block_ids, axis=0, return_index=True)[1]
    stored = int(rows["length"][first].sum())
    if stored < sum(size - len(SEGMENT_MAGIC) for _, size in var.segments):
        return True  # some blocks are dead
    # blocks still used, but some of their chunks were overwritten or deleted
    return int(rows["nbytes"].sum()) < int(rows["raw_size"][first].sum())


def _element_kinds(atlas: Atlas, names: set[str]) -> dict[str, dict[int, tuple[int, bool]]]:
    """(element size, is float) of every live array of the named variables, by array id."""
    schemas = atlas._schemas
    kinds: dict[str, dict[int, tuple[int, bool]]] = {n: {} for n in names}
    try:
        for rec in atlas._datasets.values():
            if isinstance(rec, DatasetState) and not rec.arrays_untouched:
                for arr in rec.arrays.values():
                    if arr.name in kinds:
                        kinds[arr.name][arr.aid] = (arr.schema.dtype.itemsize, arr.schema.dtype.kind == "float")
                continue
            entries = rec._raw_arrays if isinstance(rec, DatasetState) else rec[2]
            for e in entries or ():
                if e[0] in kinds:
                    dt = schemas[e[2]].dtype
                    kinds[e[0]][e[1]] = (dt.itemsize, dt.kind == "float")
    except (TypeError, IndexError) as e:
        raise CorruptionError(f"manifest of {atlas._storage.location}: an array entry is malformed: {e}") from None
    return kinds


def _rewrite(
    atlas: Atlas, var: Variable, idx: ChunkIndex, kinds: dict[int, tuple[int, bool]]
) -> tuple[ChunkIndex, list[tuple[str, int]]]:
    """Copy the live chunks of one variable into fresh, densely packed segments.

    Each chunk's block filter is chosen again from its array's dtype (``kinds``), so
    compaction also brings old blocks to the filters this version writes.
    """
    rows = idx.rows
    new_rows: list[np.ndarray] = []
    new_segs: list[tuple[str, int]] = []
    if len(rows) == 0:
        return ChunkIndex(empty_rows()), []
    segs = var.all_segments()
    seg_keys = [k for k, _ in segs]
    col = {f: rows[f].tolist() for f in (
        "aid", "chunk", "seg", "offset", "raw_size", "within", "nbytes", "filter",
        "ncells", "nulls", "vmin", "vmax", "has_minmax",
    )}
    seg_c, off_c, raw_c = col["seg"], col["offset"], col["raw_size"]
    n = len(rows)
    i = 0
    while i < n:
        # a batch of rows whose blocks stay within the batch budget
        acc = 0
        j = i
        seen: set[tuple[int, int]] = set()
        while j < n:
            bk = (seg_c[j], off_c[j])
            if bk not in seen:
                if acc and acc + raw_c[j] > REWRITE_BATCH_BYTES:
                    break
                seen.add(bk)
                acc += raw_c[j]
            j += 1
        blocks = atlas._get_blocks(var, rows[i:j], cache="off")
        payloads = []
        for k in range(i, j):
            block = blocks[(seg_keys[seg_c[k]], off_c[k])]
            w = col["within"][k]
            filter_id = col["filter"][k]
            aid = col["aid"][k]
            itemsize, is_float = kinds.get(aid, (filter_id & ~DECIMAL, bool(filter_id & DECIMAL)))
            payloads.append(
                ChunkPayload(
                    aid, col["chunk"][k], itemsize, block[w : w + col["nbytes"][k]],
                    col["ncells"][k], col["nulls"][k], col["vmin"][k], col["vmax"][k], col["has_minmax"][k],
                    is_float,
                )
            )
        out_rows, out_segs = write_segments(atlas._storage.put, var.vid, payloads, atlas._codec, len(new_segs))
        new_rows.append(out_rows)
        new_segs.extend(out_segs)
        i = j
    merged = np.concatenate(new_rows)
    order = np.lexsort((merged["chunk"], merged["aid"]))
    return ChunkIndex(merged[order]), new_segs


def _referenced(atlas: Atlas, version: int) -> set[str]:
    """Every data and index file a committed version refers to."""
    key = atlas._manifest_key(version)
    where = f"{atlas._storage.location}/{key}"
    _, doc = mf.decode_manifest(atlas._storage.get(key), where, atlas._meta_format, atlas._meta_compression)
    refs: set[str] = set()
    for v in doc.get("variables", []):
        _, _, index_key, segs, _ = v
        if index_key:
            refs.add(index_key)
        refs.update(k for k, _ in segs)
    return refs


def compact(atlas: Atlas, keep_versions: int = 1) -> None:
    """Flush, rewrite variables that hold dead data, and delete unreferenced files."""
    if isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1:
        raise ValueError("keep_versions must be an int >= 1 (the newest version is always kept)")
    atlas._check_writable()
    atlas.flush()
    rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] = {}
    todo = [(var, atlas._index(var)) for var in list(atlas._variables.values())]
    todo = [(var, idx) for var, idx in todo if _needs_rewrite(var, idx)]
    kinds = _element_kinds(atlas, {var.name for var, _ in todo})
    for var, idx in todo:
        rewrite[var.name] = _rewrite(atlas, var, idx, kinds[var.name])
    if rewrite:
        atlas._commit(rewrite=rewrite)
        for name, (idx, _) in rewrite.items():
            var = atlas._variables[name]
            if var.live <= 0 and len(idx) == 0:
                del atlas._variables[name]
    # garbage: files no kept version refers to, manifests beyond the retention
    storage = atlas._storage
    versions = atlas._manifest_versions()
    keep = [v for v in versions if v <= atlas._version][-keep_versions:]
    refs: set[str] = set()
    for v in keep:
        refs |= _referenced(atlas, v)
    doomed = [k for prefix in ("data/", "index/") for k in storage.list(prefix) if k not in refs]
    doomed += [atlas._manifest_key(v) for v in versions if v < keep[0]]
    if doomed:
        storage.delete_many(doomed)
    storage.remove_temp_files()
    atlas._cache.clear()


def list_versions(atlas: Atlas) -> list[dict[str, Any]]:
    """Headers of every committed version, oldest first."""
    out = []
    for v in atlas._manifest_versions():
        key = atlas._manifest_key(v)
        where = f"{atlas._storage.location}/{key}"
        try:
            head_bytes = atlas._storage.get_range(key, 0, 4096)
        except FileNotFoundError:
            continue  # removed by a concurrent compaction
        head, _ = mf.decode_header(head_bytes, where)
        out.append(
            {
                "version": v,
                "timestamp": head.get("timestamp"),
                "datasets": head.get("datasets"),
                "arrays": head.get("arrays"),
            }
        )
    return out


def verify(atlas: Atlas) -> list[str]:
    """Read and check every index and block of the version this handle reads."""
    problems: list[str] = []
    owners: dict[int, str] = {}
    for name in list(atlas._datasets):
        try:
            ds = atlas._materialize(name)
        except CorruptionError as e:
            problems.append(str(e))
            continue
        assert isinstance(ds, DatasetState)
        for arr in ds.arrays.values():
            owners[arr.aid] = f"dataset {name!r}, array {arr.name!r}"
    for var in atlas._variables.values():
        try:
            idx = atlas._index(var)
        except CorruptionError as e:
            problems.append(str(e))
            continue
        rows = idx.rows
        if len(rows) == 0:
            continue
        segs = var.all_segments()
        for seg_no in np.unique(rows["seg"]).tolist():
            sub = rows[rows["seg"] == seg_no]
            firsts = np.unique(sub["offset"], return_index=True)[1]
            for r in sub[firsts]:
                try:
                    atlas._get_blocks(var, r.reshape(1), cache="off")
                except CorruptionError as e:
                    hit = sub[sub["offset"] == r["offset"]]
                    who = sorted({owners.get(int(a), f"array id {int(a)}") for a in hit["aid"]})
                    problems.append(f"{e}; affects {', '.join(who)}")
                except FileNotFoundError:
                    problems.append(f"segment {segs[seg_no][0]} of variable {var.name!r} is missing")
                    break
    return problems
