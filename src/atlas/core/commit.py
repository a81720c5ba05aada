"""Publishing a commit and telling, whatever the storage did, whether it landed.

A commit is one manifest created with put-if-absent. Its header carries a random
**commit token**. When the put raises (a lost response, a failed directory fsync after
the link, a server error after the object was stored), the writer reads the manifest
back: its own token means the commit landed, another token means another writer's
commit holds the number, no manifest means nothing was committed. Only when even the
read-back fails is the outcome unknown; the handle then keeps what it needs to settle it
on the next ``flush()``.
"""

from __future__ import annotations

import functools
import math
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..collector import paused_gc
from ..dtypes import (
    DTYPES,
)
from ..errors import (
    CommitOutcomeUnknownError,
    ConflictError,
    CorruptionError,
    VersionRemovedError,
)
from ..format import manifest as mf
from ..format.chunkindex import ChunkIndex, empty_rows, merge_rows
from ..format.codec import checksum
from ..format.segment import ChunkPayload, SegmentSink, start_segments
from ..format.shard import encode_shard_columns, new_shard_key, parse_header
from ..format.strings import decode_strings, encode_strings
from ..stats import chunk_stats, fold_many, string_stats
from ..storage.base import ParallelPuts, run_concurrently
from . import history, loading, read
from .runs import IndexUpdate, merged_indexes
from .shards import Shard
from .state import (
    ArrayState,
    UnsettledCommit,
    Variable,
)

if TYPE_CHECKING:
    from ..storage.base import Storage
    from .model import StoreModel

Outcome = Literal["ours", "theirs", "absent"]

# Read-backs after a failed put: attempts and the pause before each retry (seconds).
READ_BACK_PAUSES = (0.0, 0.05, 0.2, 0.5, 1.0)


def new_token() -> str:
    """A random commit token."""
    return secrets.token_hex(16)


def commit_outcome(storage: Storage, key: str, version: int, token: str) -> Outcome:
    """Whether the manifest at ``key`` is ours, another writer's, or absent.

    Ours only when it is whole (length and checksum of its body); one torn by the failed
    write counts as absent: nothing valid was committed. Retries a few times; raises the
    storage's last error if it never answers.
    """
    last: BaseException | None = None
    for pause in READ_BACK_PAUSES:
        if pause:
            time.sleep(pause)
        try:
            data = storage.get(key)
        except FileNotFoundError:
            return "absent"
        except Exception as e:  # the storage did not answer: try again
            last = e
            continue
        try:
            head, start = mf.decode_header(data, f"{storage.location}/{key}")
        except CorruptionError:
            return "theirs"  # a manifest is there, and not one we could have written
        if head.get("commit") != token:
            return "theirs"
        body = memoryview(data)[start:]
        if len(body) != head["body_length"] or checksum(body) != head.get("body_crc32c"):
            return "absent"  # ours, but torn by the failed write (a store without atomic puts)
        return "ours"
    assert last is not None
    raise last


def publish(storage: Storage, key: str, version: int, data: bytes, token: str) -> bool:
    """Create the manifest ``key`` unless it exists; True if this commit landed.

    A put that raises is settled by reading the manifest back: the original error is
    raised again only when nothing was committed, and ``CommitOutcomeUnknownError`` when
    the read-back fails too.
    """
    try:
        return storage.put_if_absent(key, data)
    except Exception as error:
        try:
            outcome = commit_outcome(storage, key, version, token)
        except Exception as e:
            raise CommitOutcomeUnknownError(
                f"writing version {version} of the store at {storage.location} failed ({error}), and the "
                f"store could not be asked whether it landed ({e}); call flush() again to settle it"
            ) from error
        if outcome == "absent":
            raise
        return outcome == "ours"


def chunk_payloads(store: StoreModel, arrays: Iterable[ArrayState]) -> Iterator[tuple[str, list[ChunkPayload]]]:
    """Turn every buffered chunk into a payload with stats, one variable at a time."""
    by_var: dict[str, list[tuple[ArrayState, int, np.ndarray]]] = {}
    for arr in arrays:
        if arr.dirty:
            lst = by_var.setdefault(arr.name, [])
            for cid in sorted(arr.dirty):
                lst.append((arr, cid, arr.dirty[cid]))
    for vname, items in by_var.items():
        payloads: list[ChunkPayload | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for i, (arr, _, _) in enumerate(items):
            groups.setdefault(arr.schema.dtype.name, []).append(i)
        for dname, idx in groups.items():
            dt = DTYPES[dname]
            if dt.is_string:
                for i in idx:
                    arr, cid, buf = items[i]
                    fill = arr.schema.fill
                    snulls = 0 if fill is None else int(np.count_nonzero(buf == fill))
                    payloads[i] = ChunkPayload(arr.aid, cid, 1, encode_strings(buf), buf.size, snulls, 0, 0, 0)
                continue
            chunks = [items[i][2] for i in idx]
            fills = [items[i][0].schema.fill for i in idx]
            nulls, vmin, vmax, has = chunk_stats(dt, chunks, fills)
            itemsize = dt.itemsize
            is_float = dt.kind == "float"
            nl, mn, mx, hs = nulls.tolist(), vmin.tolist(), vmax.tolist(), has.tolist()
            for j, i in enumerate(idx):
                arr, cid, buf = items[i]
                raw = buf.reshape(-1).view(np.uint8)
                payloads[i] = ChunkPayload(arr.aid, cid, itemsize, raw, buf.size, nl[j], mn[j], mx[j], hs[j], is_float)
        yield vname, [p for p in payloads if p is not None]


def write_ahead(store: StoreModel, arrays: Iterable[ArrayState]) -> list[tuple[Variable, np.ndarray, list[tuple[str, int]], list[ArrayState]]]:
    """Write buffered chunks to new segments; return what to attach (not yet attached)."""
    arrays = [a for a in arrays if a.dirty]
    by_name: dict[str, list[ArrayState]] = {}
    for a in arrays:
        by_name.setdefault(a.name, []).append(a)
    started = []
    for vname, payloads in chunk_payloads(store, arrays):
        var = store._variables[vname]
        started.append((var, start_segments(var.vid, payloads, store._codec), by_name[vname]))
    result: WrittenAhead = []
    puts = ParallelPuts(store._storage)
    try:  # every variable's blocks in the same few segment files
        sink = SegmentSink(puts.put)
        owned = []
        for var, finish, arrs in started:
            first_seg = len(var.segments) + len(var.pending_segments)
            rows, var_owned = finish(sink, first_seg)
            owned.append(var_owned)
            result.append((var, rows, [], arrs))
        sizes = sink.close()
    finally:
        puts.wait()
    for (var, _, segs, _), var_owned in zip(result, owned, strict=True):
        segs.extend((k, sizes[k]) for k, _ in var_owned)
        var.owned.update(var_owned)
    return result


def spill(store: StoreModel) -> None:
    """Write buffered chunks ahead so memory stays bounded (invisible until flush). The
    statistics of string arrays written whole are taken first, from their buffers."""
    store._string_stats.update(buffered_string_stats(store))
    keep_pending(store, write_ahead(store, [a for a in store._changed_arrays.values() if a.dirty]))


def buffered_string_stats(store: StoreModel) -> dict[int, dict[str, Any]]:
    """Statistics of the string arrays of one chunk whose chunk is buffered, by array id
    (the others are read back from their blocks at commit)."""
    return {
        a.aid: string_stats(a.schema.size, a.schema.size, [a.dirty[0]], a.schema.fill)
        for a in store._changed_arrays.values()
        if a.schema.dtype.is_string and a.schema.single and 0 in a.dirty and not a.deleted
    }


def keep_pending(store: StoreModel, written: WrittenAhead) -> None:
    """Attach chunks written ahead to their variables as pending rows (named by no manifest
    until a flush commits them) and drop them from the buffers."""
    for var, rows, segs, arrs in written:
        var.pending = ChunkIndex(merge_rows([var.pending.rows, rows]))
        var.pending_segments.extend(segs)
        var.changed = True
        var.gen += 1
        for a in arrs:
            a.dirty.clear()
    store._dirty_bytes = 0


def flush(store: StoreModel) -> None:
    """Commit every buffered change atomically as a new version (no-op when unchanged).

    ``ConflictError`` if another writer committed since this handle's version (nothing
    is written over it). A flush that raises committed nothing, except
    ``CommitOutcomeUnknownError``: then call ``flush()`` again, which finishes the
    commit if it had landed and commits again if it had not."""
    if store._unsettled is not None and settle(store):
        return
    if store._read_only or not store._changed:
        return
    commit(store)


def settle(store: StoreModel) -> bool:
    """Find out whether the unsettled commit landed; True if it did (and is now installed)."""
    u = store._unsettled
    assert u is not None
    outcome = commit_outcome(store._storage, u.key, u.version, u.token)  # may raise: stays unsettled
    store._unsettled = None
    if outcome == "ours":
        u.install()
        return True
    if outcome == "theirs":
        u.lost()  # raises ConflictError
    return False


def commit(store: StoreModel, rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] | None = None) -> None:
    """Write data, indexes and the next manifest; swap in-memory state only on success.

    ``ConflictError`` when another writer's commit took the version (see :func:`try_commit`)."""
    if not try_commit(store, rewrite):
        raise conflict_error(store, store._version + 1)


def try_commit(store: StoreModel, rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] | None = None) -> bool:
    """Write data, indexes and the next manifest; swap in-memory state only on success.

    False when the store moved on: another writer's commit holds the next version, or a
    compaction removed files this handle's version named. Nothing was committed then; the
    chunks written are kept pending (orphans unless a later commit names them), and the
    handle still holds its changes on its version."""
    version = store._version + 1
    puts = ParallelPuts(store._storage)  # the index file and the shards, written together
    try:
        try:
            updates, new_stats, attach, shards, rewritten = write_version(store, version, puts, rewrite)
            with paused_gc():  # builds ~10^5 short-lived containers, none of them cyclic
                token = new_token()
                doc = manifest_doc(store, version, updates, shards)
                data = encoded_manifest(store, version, token, doc, rewritten)
        finally:
            puts.wait()
    except (CorruptionError, VersionRemovedError):
        if store_moved_on(store):  # a compaction removed what this old version named
            return False
        raise
    install = functools.partial(install_commit, store, version, updates, new_stats, attach, bool(rewrite), shards)
    lost = functools.partial(keep_written_ahead, store, version, attach)
    key = store._manifest_key(version)
    try:
        landed = publish(store._storage, key, version, data, token)
    except CommitOutcomeUnknownError:
        store._unsettled = UnsettledCommit(version, key, token, install, lost)
        raise
    if not landed:
        keep_pending(store, attach)
        remove_unpublished(store, updates, shards)
        return False
    install()
    return True


def write_version(
    store: StoreModel,
    version: int,
    puts: ParallelPuts,
    rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] | None = None,
    merge_limit: int | None = None,
) -> tuple[dict[str, IndexUpdate], dict[int, dict[str, Any] | None], WrittenAhead, list[Shard], list[int]]:
    """Every file of ``version`` but its manifest: data written ahead for every buffered
    chunk, the index runs and the shards (put with ``puts``), the statistics, and the ids of
    the arrays of the handle's version whose chunks it rewrote. ``merge_limit``: as
    :meth:`DatasetTable.plan` takes it (None: the handle's). Nothing is installed."""
    # string stats are taken from the buffers, before writing ahead empties them (those of
    # arrays written ahead earlier were taken then; a chunk buffered again is newer)
    string_stats_now = {**store._string_stats, **buffered_string_stats(store)}
    attach = write_ahead(store, list(store._changed_arrays.values()))
    rewritten = sorted(store._rewritten_ahead.union(rewritten_aids(store, attach)))
    updates = merged_indexes(store, {id(v): (v, rows, segs) for v, rows, segs, _ in attach}, rewrite, version, puts)
    check_written_ahead(store)
    with paused_gc():  # builds ~10^5 short-lived containers, none of them cyclic
        new_stats = fresh_stats(store, updates, string_stats_now)
        shards = write_shards(store, version, new_stats, puts, merge_limit)
    return updates, new_stats, attach, shards, rewritten


def discard_replaced(store: StoreModel) -> None:
    """Delete the files of earlier checkpoints that a later one (or the commit) replaced:
    index files whose runs it merged into its own, shards whose datasets it rewrote. No
    manifest ever named them, and the handle no longer does, so a long write leaves no
    orphans behind. Best effort: a file left behind is an orphan compaction removes."""
    named = {s.key for s in store._datasets.shards}
    for v in store._variables.values():
        named.update(r.key for r in v.runs)
        named.update(k for k, _ in v.segments)
        named.update(k for k, _ in v.pending_segments)
    replaced = [k for k in store._unpublished if k not in named]
    if not replaced:
        return
    store._unpublished = [k for k in store._unpublished if k in named]
    delete_unnamed(store, replaced)


def delete_unnamed(store: StoreModel, keys: list[str]) -> None:
    """Delete files no version names. Best effort: a file left behind is an orphan that
    compaction removes, so a failure here never fails the caller."""
    try:
        store._storage.delete_many(keys)
    except Exception:
        pass


def rewritten_aids(store: StoreModel, attach: WrittenAhead) -> list[int]:
    """The ids of arrays of the handle's version whose chunks this commit writes (arrays
    the handle defined itself are new to every other writer, and not listed)."""
    parts = [var.pending.rows["aid"] for var in store._variables.values() if len(var.pending.rows)]
    parts.extend(rows["aid"] for _, rows, _, _ in attach if len(rows))
    if not parts:
        return []
    aids = np.unique(np.concatenate(parts))
    return [int(a) for a in aids[aids < store._base_id]]


def remove_unpublished(store: StoreModel, updates: dict[str, IndexUpdate], shards: list[Shard]) -> None:
    """Delete the index file and shards of a commit that lost its version to another writer:
    no manifest names them, nor ever will. (Its segments stay: the handle keeps its changes,
    and a later commit names them.) Best effort: what is left is collected as garbage."""
    old = {r.key for var in store._variables.values() for r in var.runs}
    keys = {r.key for upd in updates.values() for r in upd.runs if r.key not in old}
    kept = {s.key for s in store._datasets.shards}
    keys.update(s.key for s in shards if s.key is not None and s.key not in kept)
    delete_unnamed(store, sorted(keys))


def encoded_manifest(store: StoreModel, version: int, token: str, doc: dict[str, Any], rewritten: list[int]) -> bytes:
    """The manifest file of ``version``: its header line (with the commit token and the arrays
    whose chunks it rewrote) and ``doc``."""
    header: dict[str, Any] = {
        "atlas": "manifest",
        "format_version": mf.FORMAT_VERSION,
        "version": version,
        "timestamp": history.now_iso(),
        "commit": token,
        "datasets": len(store._datasets),
        "arrays": sum(1 for v in store._variables.values() if v.live > 0),
    }
    ranges = mf.rewritten_ranges(rewritten)
    if ranges is not None:
        header[mf.REWRITTEN_KEY] = ranges
    return mf.encode_manifest(doc, header, store._meta_format, store._meta_compression)


WrittenAhead = list[tuple[Variable, np.ndarray, list[tuple[str, int]], list[ArrayState]]]


def keep_written_ahead(store: StoreModel, version: int, attach: WrittenAhead) -> None:
    """Another writer's commit holds ``version``: keep what this flush wrote as pending
    (no manifest names it: orphans for compact() unless a later flush commits them) and
    raise ``ConflictError``."""
    keep_pending(store, attach)
    raise conflict_error(store, version)


def install_commit(
    store: StoreModel,
    version: int,
    updates: dict[str, IndexUpdate],
    new_stats: dict[int, dict[str, Any] | None],
    attach: WrittenAhead,
    rewrote: bool,
    shards: list[Shard],
    published: bool = True,
) -> None:
    """Make the committed ``version`` the handle's state (``published`` False: the files of
    a checkpoint, which the handle's next commit publishes; its version stays)."""
    store._datasets.install(shards)
    for vname, upd in updates.items():
        var = store._variables[vname]
        var.runs = upd.runs
        var.segments = upd.segments
        var.index = upd.after
        var.pending = ChunkIndex(empty_rows())
        var.pending_segments = []
        var.dead_aids.clear()
        var.changed = False
        var.gen += 1
    for _, _, _, arrs in attach:
        for a in arrs:
            a.dirty.clear()
    for aid, st in new_stats.items():
        arr = store._changed_arrays[aid]
        arr.stats = st
        arr.changed = False
    store._changed_arrays.clear()
    store._string_stats.clear()
    store._dirty_bytes = 0
    store._state_gen += 1
    if rewrote:
        store._cache.clear()
    if not published:
        return
    store._version = version
    store._base_id = store._next_id
    store._changed = False
    store._rewritten_ahead = set()
    if store._unpublished:
        discard_replaced(store)  # files of checkpoints this commit replaced
        store._unpublished = []
    after_commit(store, version)


def check_written_ahead(store: StoreModel) -> None:
    """ConflictError if a segment written ahead by this handle was deleted meanwhile."""
    keys = [k for var in store._variables.values() for k, _ in var.pending_segments] + store._unpublished
    if not keys:
        return
    present = run_concurrently(store._storage.exists, keys)
    gone = [k for k, ok in zip(keys, present, strict=True) if not ok]
    if gone:
        raise ConflictError(
            f"{len(gone)} file(s) this handle wrote ahead to {store._storage.location} were deleted "
            f"meanwhile (first: {gone[0]}), by a compaction or garbage collection whose grace period "
            "was shorter than this write; nothing was committed. Write the changes again."
        )


def store_moved_on(store: StoreModel) -> bool:
    try:
        versions = loading.manifest_versions(store)
    except Exception:
        return False
    return bool(versions) and versions[-1] > store._version


def conflict_error(store: StoreModel, version: int) -> ConflictError:
    return ConflictError(
        f"the store at {store._storage.location} moved on to version {version} or later since this "
        f"handle read version {store._version}; nothing was written over it. Reopen the store "
        "and apply your changes again, or flush(rebase=True) to re-apply them on the newest version."
    )


def after_commit(store: StoreModel, version: int) -> None:
    """Steps after a commit landed: none of them may fail the flush."""
    try:  # a hint for readers that cannot list (HTTP); never trusted alone
        store._storage.put(mf.LATEST_HINT_KEY, str(version).encode())
    except Exception:
        pass
    try:
        store._storage.mark_changed()
    except Exception:
        pass


def stats_index(store: StoreModel, var: Variable, arrs: list[ArrayState], updates: dict[str, IndexUpdate]) -> ChunkIndex:
    """Index rows holding every chunk of ``arrs`` after the commit: the new run alone when
    none of them had committed data (the usual append), else the whole index."""
    upd = updates.get(var.name)
    if upd is None:
        return store._index(var)
    if all(a.stats is None for a in arrs):
        return upd.fresh
    if upd.after is not None:
        return upd.after
    return store._index(var).appended(upd.fresh.rows)


def fresh_stats(
    store: StoreModel,
    updates: dict[str, IndexUpdate],
    string_now: dict[int, dict[str, Any]],
    arrays: Iterable[ArrayState] | None = None,
) -> dict[int, dict[str, Any] | None]:
    """Fresh stats of every changed array (or of ``arrays``), folded from index rows in bulk."""
    out: dict[int, dict[str, Any] | None] = {}
    groups: dict[tuple[str, str], list[ArrayState]] = {}
    for arr in store._changed_arrays.values() if arrays is None else arrays:
        if arr.deleted:
            continue
        if not arr.written:
            out[arr.aid] = None
        elif arr.aid in string_now:
            out[arr.aid] = string_now[arr.aid]
        elif arr.schema.dtype.is_string:
            var = store._variables[arr.name]
            segs = updates[arr.name].segments if arr.name in updates else None
            out[arr.aid] = array_stats_from(store, arr, var, stats_index(store, var, [arr], updates), segs)
        else:
            groups.setdefault((arr.name, arr.schema.dtype.name), []).append(arr)
    for (vname, dname), arrs in groups.items():
        idx = stats_index(store, store._variables[vname], arrs, updates)
        aids = np.fromiter((a.aid for a in arrs), dtype=np.uint64, count=len(arrs))
        ids = idx.column("aid")
        lo = ids.searchsorted(aids, "left")
        hi = ids.searchsorted(aids, "right")
        folded = fold_many(DTYPES[dname], [a.schema.size for a in arrs], lo, hi, idx.take)
        for a, st in zip(arrs, folded, strict=True):
            out[a.aid] = st
    return out


def array_stats_from(store: StoreModel, arr: ArrayState, var: Variable, idx: ChunkIndex, segs: list[tuple[str, int]] | None) -> dict[str, Any] | None:
    if not arr.written:
        return None
    schema = arr.schema
    row_count = math.prod(schema.shape)
    lo, hi = idx.span(arr.aid)
    r = idx.take(slice(lo, hi))
    if schema.dtype.is_string:
        values = []
        if len(r):
            seg_list = var.all_segments() if segs is None else segs
            blocks = read.get_blocks(store, var, r, segs=seg_list)
            for row in r:
                block = blocks[(seg_list[int(row["seg"])][0], int(row["offset"]))]
                within = int(row["within"])
                piece = block[within : within + int(row["nbytes"])]
                values.append(decode_strings(piece, int(row["ncells"])))
    return string_stats(row_count, int(r["ncells"].sum()) if len(r) else 0, values, schema.fill)


def write_shards(
    store: StoreModel,
    version: int,
    new_stats: dict[int, dict[str, Any] | None],
    puts: ParallelPuts,
    merge_limit: int | None = None,
) -> list[Shard]:
    """The shards of ``version``: those this commit's changes did not touch are kept, the
    others written anew (in parallel, with ``puts``)."""
    limit = store._merge_limit if merge_limit is None else merge_limit
    shards = store._datasets.plan(lambda ds: store._record_of(ds, new_stats), limit)
    fmt, comp = store._meta_format, store._meta_compression
    for s in shards:
        if s.key is None:
            assert s.records is not None
            data, s.names_end, columns = encode_shard_columns(s.names, [r[1:] for r in s.records], fmt, comp)
            s.key = new_shard_key(version)
            s.length = len(data)
            s.head = parse_header(data, len(s.names), s.key)
            s.columns = columns
            puts.put(s.key, data)
    return shards


def manifest_doc(
    store: StoreModel, version: int, updates: dict[str, IndexUpdate], shards: list[Shard]
) -> dict[str, Any]:
    variables = []
    for vname, var in store._variables.items():
        upd = updates.get(vname)
        runs, segs = (upd.runs, upd.segments) if upd is not None else (var.runs, var.segments)
        if var.live <= 0 and not runs:
            continue  # nothing left of this variable
        variables.append([vname, var.vid, [r.entry() for r in runs], var.segment_entries(segs), var.live])
    return {
        "format_version": mf.FORMAT_VERSION,
        loading.VERSION_KEY: version,
        "parent": store._version if store._version >= 0 else None,
        "codec": store._codec,
        "next_id": store._next_id,
        "schemas": store._schemas.encoded(),
        "variables": variables,
        "shards": [[s.key, len(s.names), s.names_end, s.length] for s in shards],
    }
