"""A variable's chunk index as runs: which runs a commit merges into the one it writes, and
the index file holding the new run of every variable a commit changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..format.chunkindex import ChunkIndex, index_check, merge_rows, run_file_key
from ..storage.base import ParallelPuts
from .state import IndexRun, Variable

if TYPE_CHECKING:
    from .model import StoreModel

__all__ = ["MAX_RUNS", "RUN_RATIO", "IndexUpdate", "merged_indexes", "runs_to_merge"]


# A variable's index is written whole again once it would have more runs than this.
MAX_RUNS = 12
# The newest runs are merged into the new one while each is at most this many times larger.
RUN_RATIO = 4


@dataclass
class IndexUpdate:
    """What a commit changes of one variable's chunk index."""

    runs: list[IndexRun]
    segments: list[tuple[str, int]]
    fresh: ChunkIndex  # the rows of the run this commit writes (new rows, and any runs merged in)
    after: ChunkIndex | None  # the whole index after the commit, when the handle holds it


def runs_to_merge(runs: list[IndexRun], new_rows: int) -> tuple[list[IndexRun], list[IndexRun]]:
    """(runs kept as they are, newest runs merged into the new one): the index stays a few
    runs of growing size, so an append writes about its own rows and a read merges few runs."""
    if len(runs) >= MAX_RUNS:
        return [], list(runs)
    keep = list(runs)
    size = new_rows
    tail: list[IndexRun] = []
    while keep and new_rows and (keep[-1].rows < 0 or keep[-1].rows <= RUN_RATIO * size):
        run = keep.pop()
        tail.insert(0, run)
        size += max(run.rows, 0)
    return keep, tail


def merged_indexes(
    store: StoreModel,
    pending: dict[int, tuple[Variable, np.ndarray, list[tuple[str, int]]]],
    rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] | None,
    version: int,
    puts: ParallelPuts,
) -> dict[str, IndexUpdate]:
    """Write the new rows of every changed variable as one run each, all in one index file
    (put with ``puts``)."""
    updates: dict[str, IndexUpdate] = {}
    blobs: list[bytes] = []
    key = run_file_key(version)
    offset = 0
    for var in store._variables.values():
        extra = pending.get(id(var))
        if rewrite is not None and var.name in rewrite:
            idx, segs = rewrite[var.name]
            keep, rows = list[IndexRun](), idx.rows
        elif var.changed or extra is not None:
            segs = list(var.segments) + list(var.pending_segments)
            parts = [var.pending.rows]
            if extra is not None:
                parts.append(extra[1])
                segs.extend(extra[2])
            new = merge_rows(parts)
            keep, tail = runs_to_merge(var.runs, len(new))
            rows = merge_rows([*store._run_rows(var, tail), new]) if tail else new
        else:
            continue
        runs = keep
        if len(rows):
            blob = ChunkIndex(rows).to_bytes()
            length, crc = index_check(blob)
            runs = [*keep, IndexRun(key, offset, length, crc, len(rows))]
            blobs.append(blob)
            offset += len(blob)
        if rewrite is not None and var.name in rewrite:
            after: ChunkIndex | None = rewrite[var.name][0]
        else:
            after = None if var.index is None else var.index.appended(rows)
        updates[var.name] = IndexUpdate(runs, segs, ChunkIndex(rows), after)
    if blobs:
        puts.put(key, b"".join(blobs))
    return updates
