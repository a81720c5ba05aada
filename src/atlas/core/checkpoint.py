"""Checkpoints of a long write: all of a commit but its manifest, so that what a handle
holds in memory is what it changed since (the NetCDF ingest writes one every few hundred
files), and abandoning what a write wrote ahead when it will never be committed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CorruptionError, VersionRemovedError
from ..storage.base import ParallelPuts
from . import loading
from .commit import (
    conflict_error,
    delete_unnamed,
    discard_replaced,
    install_commit,
    store_moved_on,
    write_version,
)

if TYPE_CHECKING:
    from .model import StoreModel

__all__ = ["abandon", "checkpoint", "forget_decoded"]


def checkpoint(store: StoreModel) -> None:
    """Write every change made so far as the next commit would, without publishing it, and
    forget what the handle holds decoded of its datasets (it reads that back from storage
    when used): what a long write holds in memory is then what it changed since.

    The files it writes (segments, an index file, shards) are named by no manifest, so no
    reader sees them; the next ``flush()`` names them in the version it publishes, with what
    changed after, and checks first that they are all still there (a garbage collection
    with a grace period shorter than the write may have taken them: ``ConflictError``). A
    handle dropped without a flush leaves them as orphans, which compaction removes; files
    of an earlier checkpoint that a later one replaced are deleted at once. New datasets go
    into shards of their own (the last shard is not filled up), so that no checkpoint
    decodes the datasets of an earlier one again. A handle holding a checkpoint commits on
    its own version only: ``flush(rebase=True)`` does not rebase it."""
    if store._unsettled is not None:
        store._check_writable()  # says to settle the unknown outcome first
    if store._read_only or not store._changed:
        return
    version = store._version + 1
    runs_before = {r.key for v in store._variables.values() for r in v.runs}
    shards_before = {s.key for s in store._datasets.shards}
    segments = [k for v in store._variables.values() for k, _ in v.pending_segments]
    puts = ParallelPuts(store._storage)
    try:
        try:
            updates, new_stats, attach, shards, rewritten = write_version(store, version, puts, merge_limit=0)
        finally:
            puts.wait()
    except (CorruptionError, VersionRemovedError):
        if store_moved_on(store):  # a compaction removed what this old version named
            raise conflict_error(store, version) from None
        raise
    written = segments + [k for _, _, segs, _ in attach for k, _ in segs]
    written += sorted({r.key for u in updates.values() for r in u.runs} - runs_before)
    written += [s.key for s in shards if s.key not in shards_before and s.key is not None]
    install_commit(store, version, updates, new_stats, attach, False, shards, published=False)
    store._unpublished.extend(written)
    store._rewritten_ahead.update(rewritten)
    discard_replaced(store)
    forget_decoded(store)


def abandon(store: StoreModel) -> None:
    """Delete the files this handle wrote ahead (its checkpoints' and its spilled
    segments), which no manifest names, when its changes will never be committed; the
    handle is read-only afterwards. Best effort: a file left behind is an orphan that
    compaction removes."""
    keys = list(store._unpublished) + [k for v in store._variables.values() for k, _ in v.pending_segments]
    store._unpublished = []
    store._rewritten_ahead = set()
    for v in store._variables.values():
        v.pending_segments = []
    store._read_only = True
    store._read_only_why = "its changes were abandoned"
    delete_unnamed(store, keys)


def forget_decoded(store: StoreModel) -> None:
    """Drop the decoded records of the handle's datasets, right after a commit or checkpoint
    installed them (nothing of them is pending): they are read back from the shards when
    used. States still held by views stay valid (they are what the shards hold)."""
    if store._changed_arrays or store._datasets.pending():
        raise AssertionError("forget_decoded with changes not written")
    where = f"{store._storage.location}, version {store._version}" + (" and a checkpoint" if store._unpublished else "")
    store._datasets.forget(
        loading.shard_loader(store, where), loading.columns_loader(store, where), loading.fields_loader(store, where)
    )
    store._state_gen += 1
