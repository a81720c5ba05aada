"""Compaction, version listing and verification of a store."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptionError
from ..format import manifest as mf
from ..format.chunkindex import ChunkIndex, empty_rows
from ..format.codec import DECIMAL
from ..format.fields import decode_field, fields_of, same_field
from ..format.segment import ChunkPayload, Owned, SegmentSink, start_segments
from ..format.shard import SHARD_PREFIX
from ..storage.base import ParallelPuts
from . import commit, history, loading, read
from .state import DatasetState, Variable

if TYPE_CHECKING:
    from .model import StoreModel

REWRITE_BATCH_BYTES = 64 << 20
# How long files that no kept version names are kept by default: a reader pinned to an
# expired version, or a writer whose written-ahead segments no manifest names yet, has
# this long to finish.
DEFAULT_GRACE = _dt.timedelta(hours=1)


def needs_upgrade(store: StoreModel) -> bool:
    """Whether the version a handle reads holds metadata of format version 1."""
    return any(s.key is None for s in store._datasets.shards) or any(
        r.rows < 0 for var in store._variables.values() for r in var.runs
    )


def upgrade(store: StoreModel) -> bool:
    """Commit the newest version again with all its metadata in shards and runs (a no-op, False,
    when it already is). Buffered changes are committed with it."""
    commit.flush(store)
    advance(store)
    if not needs_upgrade(store):
        return False
    rewrite = {
        var.name: (store._index(var), var.all_segments())
        for var in store._variables.values()
        if any(r.rows < 0 for r in var.runs)
    }
    store._changed = True
    commit.commit(store, rewrite=rewrite)
    return True


def _to_copy(variables: list[Variable], dead: set[str]) -> list[Variable]:
    """The variables whose data compaction copies: those holding dead bytes, and every
    variable sharing a segment file with one of them (a file goes only when no variable
    names it any more)."""
    copy = set(dead)
    while True:
        files = {k for v in variables if v.name in copy for k, _ in v.segments}
        more = {v.name for v in variables if v.name not in copy and any(k in files for k, _ in v.segments)}
        if not more:
            return [v for v in variables if v.name in copy]
        copy |= more


def _live_rows(idx: ChunkIndex, live: dict[int, Any]) -> ChunkIndex:
    """The index rows of live arrays (deleted arrays' rows stay in older runs until compaction)."""
    rows = idx.rows
    keep = np.isin(rows["aid"], np.fromiter(live, dtype=np.uint64, count=len(live)))
    return idx if keep.all() else ChunkIndex(rows[keep])


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
    if stored < sum(var.owned_bytes(k, size) for k, size in var.segments):
        return True  # some blocks are dead
    # blocks still used, but some of their chunks were overwritten or deleted
    return int(rows["nbytes"].sum()) < int(rows["raw_size"][first].sum())


def _rewrite(
    atlas: StoreModel, var: Variable, idx: ChunkIndex, kinds: dict[int, tuple[int, bool]], sink: SegmentSink
) -> tuple[ChunkIndex, Owned]:
    """Copy the live chunks of one variable into fresh, densely packed segments (the
    sink's, shared with the other variables compaction copies); returns the new index and
    the segments used, with this variable's bytes in each.

    Each chunk's block filter is chosen again from its array's dtype (``kinds``), so
    compaction also brings old blocks to the filters this version writes.
    """
    rows = idx.rows
    new_rows: list[np.ndarray] = []
    owned: Owned = []
    if len(rows) == 0:
        return ChunkIndex(empty_rows()), []
    seg_keys = [k for k, _ in var.all_segments()]
    col = {f: rows[f].tolist() for f in (
        "aid", "chunk", "seg", "offset", "raw_size", "within", "nbytes", "filter",
        "ncells", "nulls", "vmin", "vmax", "has_minmax",
    )}
    n = len(rows)
    i = 0
    while i < n:
        j = _batch_end(col, i)
        blocks = read.get_blocks(atlas, var, rows[i:j], cache="off")
        payloads = [
            _payload(col, k, blocks[(seg_keys[col["seg"][k]], col["offset"][k])], kinds) for k in range(i, j)
        ]
        out_rows, batch = start_segments(var.vid, payloads, atlas._codec)(sink, len(owned))
        if owned and batch and batch[0][0] == owned[-1][0]:  # the batch went on in the same file
            out_rows["seg"] -= 1
            owned[-1] = (owned[-1][0], owned[-1][1] + batch[0][1])
            batch = batch[1:]
        new_rows.append(out_rows)
        owned.extend(batch)
        i = j
    merged = np.concatenate(new_rows)
    order = np.lexsort((merged["chunk"], merged["aid"]))
    return ChunkIndex(merged[order]), owned


def _batch_end(col: dict[str, list[Any]], i: int) -> int:
    """The end of the batch of rows from ``i`` whose blocks stay within
    ``REWRITE_BATCH_BYTES`` (decoded; at least one block)."""
    seg_c, off_c, raw_c = col["seg"], col["offset"], col["raw_size"]
    acc = 0
    j = i
    seen: set[tuple[int, int]] = set()
    while j < len(seg_c):
        bk = (seg_c[j], off_c[j])
        if bk not in seen:
            if acc and acc + raw_c[j] > REWRITE_BATCH_BYTES:
                break
            seen.add(bk)
            acc += raw_c[j]
        j += 1
    return j


def _payload(col: dict[str, list[Any]], k: int, block: np.ndarray, kinds: dict[int, tuple[int, bool]]) -> ChunkPayload:
    """Row ``k``'s chunk, cut from its decoded ``block``, to be written again with the
    block filter of its array's dtype (``kinds``; else the filter the row names)."""
    w = col["within"][k]
    filter_id = col["filter"][k]
    aid = col["aid"][k]
    itemsize, is_float = kinds.get(aid, (filter_id & ~DECIMAL, bool(filter_id & DECIMAL)))
    return ChunkPayload(
        aid, col["chunk"][k], itemsize, block[w : w + col["nbytes"][k]],
        col["ncells"][k], col["nulls"][k], col["vmin"][k], col["vmax"][k], col["has_minmax"][k],
        is_float,
    )


def _referenced(doc: dict[str, Any]) -> set[str]:
    """Every data and index file a manifest document refers to."""
    refs: set[str] = set()
    for v in doc.get("variables", []):
        index, segs = v[2], v[3]
        if isinstance(index, str):  # version 1: one index file
            refs.add(index)
        elif index:
            refs.update(r[0] for r in index)
        refs.update(seg[0] for seg in segs)
    refs.update(s[0] for s in doc.get("shards", []))
    return refs


def compact(atlas: StoreModel, keep_versions: int = 1, grace_period: Any = None) -> GarbageReport:
    """Flush, rewrite variables that hold dead data, expire old versions, collect garbage.

    Works from the newest version: a handle that is behind and has no changes of its
    own is first brought to it (``ConflictError`` if it has changes).
    """
    if isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1:
        raise ValueError("keep_versions must be an int >= 1 (the newest version is always kept)")
    graces = _graces(grace_period)
    atlas._check_writable()
    commit.flush(atlas)
    advance(atlas)
    rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] = {}
    kinds = atlas._element_kinds(set(atlas._variables))
    variables = list(atlas._variables.values())
    live = {var.name: _live_rows(atlas._index(var), kinds[var.name]) for var in variables}
    puts = ParallelPuts(atlas._storage)
    try:  # the copied variables share their new segment files, as a flush's do
        sink = SegmentSink(puts.put)
        copied = {
            var.name: _rewrite(atlas, var, live[var.name], kinds[var.name], sink)
            for var in _to_copy(variables, {v.name for v in variables if _needs_rewrite(v, live[v.name])})
        }
        sizes = sink.close()
    finally:
        puts.wait()
    for name, (idx, owned) in copied.items():
        atlas._variables[name].owned.update(owned)
        rewrite[name] = (idx, [(k, sizes[k]) for k, _ in owned])
    for var in variables:
        idx = live[var.name]
        if var.name not in rewrite and (len(var.runs) > 1 or len(idx) < len(atlas._index(var))):
            rewrite[var.name] = (idx, var.all_segments())  # one run, without deleted arrays' rows
    if rewrite:
        commit.commit(atlas, rewrite=rewrite)
        for name, (idx, _) in rewrite.items():
            var = atlas._variables[name]
            if var.live <= 0 and len(idx) == 0:
                del atlas._variables[name]
    # never the version just committed: a writer may have moved on meanwhile
    replaced = versions_to_expire(atlas, keep=keep_versions, protect=atlas._version)
    if graces[0] > 0:  # readers of the replaced versions get the grace period
        mark_expired(atlas, replaced)
        replaced = []
    # else nobody is waited for: the replaced versions become tombstones in one step
    report = collect_garbage(atlas, *graces, {h.version for h in replaced})
    atlas._cache.clear()
    return report


def _graces(grace_period: Any) -> tuple[float, float]:
    """(grace of expired versions, grace of files no version names), in seconds.

    ``None`` is compaction's default: what the versions it expires named goes at once,
    files no version ever named are kept for an hour (another writer's work in progress).
    """
    if grace_period is None:
        return 0.0, DEFAULT_GRACE.total_seconds()
    seconds = grace_seconds(grace_period, "grace_period")
    return seconds, seconds


def grace_seconds(value: Any, what: str) -> float:
    """Seconds of a grace period given as a ``timedelta`` or a number; TypeError or ValueError."""
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{what} must be a datetime.timedelta or a number of seconds, not {type(value).__name__}")
    if not seconds >= 0:
        raise ValueError(f"{what} must not be negative, not {value!r}")
    return seconds


def version_headers(atlas: StoreModel) -> list[history.VersionHeader]:
    """The header of every readable manifest (live, expired and removed), oldest first.

    A manifest too damaged to read is left out: it cannot be opened, so it keeps no
    files alive, and it is never rewritten."""
    out = []
    for v in loading.manifest_versions(atlas):
        key = atlas._manifest_key(v)
        try:
            out.append(history.read_header(atlas._storage, key, v))
        except (FileNotFoundError, CorruptionError):
            continue
    return out


def expire_versions(
    atlas: StoreModel, older_than: Any = None, keep: int | None = None, protect: int | None = None
) -> list[int]:
    """Expire live versions that are neither the newest, nor tagged, nor among ``keep``
    newest, nor ``protect``, and (with ``older_than``, a datetime) committed before that time."""
    doomed = versions_to_expire(atlas, older_than, keep, protect)
    mark_expired(atlas, doomed)
    return [h.version for h in doomed]


def mark_expired(atlas: StoreModel, headers: list[history.VersionHeader]) -> None:
    """Rewrite each manifest with the time of its expiry in its header (body unchanged)."""
    when = history.now_iso()
    storage = atlas._storage
    for h in headers:
        where = f"{storage.location}/{h.key}"
        storage.put(h.key, history.with_header(storage.get(h.key), where, expired=when))


def versions_to_expire(
    atlas: StoreModel, older_than: Any = None, keep: int | None = None, protect: int | None = None
) -> list[history.VersionHeader]:
    """The live versions :func:`expire_versions` would expire (the arguments checked)."""
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError("keep must be an int >= 1 (the newest version is always kept)")
    if older_than is not None and not isinstance(older_than, _dt.datetime):
        raise TypeError(f"older_than must be a datetime.datetime, not {type(older_than).__name__}")
    if older_than is None and keep is None:
        raise ValueError("say which versions to expire: older_than=DATETIME, keep=N, or both")
    if older_than is not None and older_than.tzinfo is None:
        older_than = older_than.astimezone()  # naive times are local, as datetime.now() gives
    live = [h for h in version_headers(atlas) if h.live]
    if not live:
        return []
    protected = {live[-1].version, protect} | set(history.read_tags(atlas._storage).values())
    if keep is not None:
        protected.update(h.version for h in live[-keep:])
    doomed = []
    for h in live:
        if h.version in protected:
            continue
        if older_than is not None:
            t = history.parse_time(h.header.get("timestamp"))
            if t is None or t >= older_than:
                continue
        doomed.append(h)
    return doomed


@dataclass
class GarbageReport:
    """What a garbage collection deleted and what it kept for the grace period."""

    deleted_files: int = 0
    deleted_bytes: int = 0
    removed_versions: list[int] = field(default_factory=list)
    kept_files: int = 0  # unreferenced, but younger than the grace period
    kept_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data."""
        return asdict(self)


def _referenced_by(atlas: StoreModel, h: history.VersionHeader) -> set[str]:
    where = f"{atlas._storage.location}/{h.key}"
    _, doc = mf.decode_manifest(atlas._storage.get(h.key), where, atlas._meta_format, atlas._meta_compression)
    return _referenced(doc)


def unreferenced_files(
    atlas: StoreModel, expired_grace: float, orphan_grace: float, remove_now: Collection[int] = ()
) -> tuple[list[tuple[str, int, float]], list[tuple[str, int, float]], list[history.VersionHeader]]:
    """(files to delete, files kept for their grace period, expired versions past theirs).

    Versions in ``remove_now`` count as expired long ago, live or not (compaction without a
    grace period removes the versions it replaces in one step).

    Data files are listed before the manifests, so a commit landing meanwhile names only
    files that are either listed young or not listed at all.
    """
    storage = atlas._storage
    files = storage.list_details("data/") + storage.list_details("index/") + storage.list_details(SHARD_PREFIX)
    now = time.time()
    refs: set[str] = set()  # named by a version that is kept, or expired within its grace
    dropped: set[str] = set()  # named by an expired version past its grace
    past: list[history.VersionHeader] = []
    for h in version_headers(atlas):
        if h.removed is not None:
            continue
        try:
            named = _referenced_by(atlas, h)
        except CorruptionError:
            if h.live:
                raise
            named = set()  # an expired manifest damaged since: it protects nothing
        expired = history.parse_time(h.expired)
        kept_for_readers = h.live or (expired is not None and expired.timestamp() > now - expired_grace)
        if kept_for_readers and h.version not in remove_now:
            refs |= named  # readers pinned to an expired version may still be at work
        else:
            dropped |= named
            past.append(h)
    doomed: list[tuple[str, int, float]] = []
    kept: list[tuple[str, int, float]] = []
    for k, size, modified in files:
        if k in refs:
            continue
        # a file only expired versions named goes with them; one no version names is
        # judged by its age, since it may be a writer's work in progress
        (doomed if k in dropped or modified < now - orphan_grace else kept).append((k, size, modified))
    return doomed, kept, past


def collect_garbage(
    atlas: StoreModel, expired_grace: float, orphan_grace: float, remove_now: Collection[int] = ()
) -> GarbageReport:
    """Turn the manifests of expired versions past their grace period (and of the versions
    in ``remove_now``) into tombstones, then delete the files no kept version names once
    their grace period has passed.

    Tombstones come first: a crash between the two steps leaves files no manifest names,
    which a later collection deletes by their age, never a listed version missing files."""
    doomed, kept, past = unreferenced_files(atlas, expired_grace, orphan_grace, remove_now)
    storage = atlas._storage
    when = history.now_iso()
    for h in past:
        storage.put(h.key, history.tombstone(h, when))
    if doomed:
        storage.delete_many(k for k, _, _ in doomed)
    storage.remove_temp_files(time.time() - orphan_grace)
    return GarbageReport(
        deleted_files=len(doomed),
        deleted_bytes=sum(n for _, n, _ in doomed),
        removed_versions=[h.version for h in past],
        kept_files=len(kept),
        kept_bytes=sum(n for _, n, _ in kept),
    )


def list_versions(atlas: StoreModel) -> list[dict[str, Any]]:
    """Headers of every live (not expired) version, oldest first."""
    return [
        {
            "version": h.version,
            "timestamp": h.header.get("timestamp"),
            "datasets": h.header.get("datasets"),
            "arrays": h.header.get("arrays"),
        }
        for h in version_headers(atlas)
        if h.live
    ]


class VerifyResult(list[str]):
    """The problems ``verify()`` found (a list of messages), with ``notes`` beside them:
    things worth knowing that are not damage, such as files no version refers to."""

    def __init__(self, problems: list[str], notes: list[str], unreferenced_files: int, unreferenced_bytes: int) -> None:
        super().__init__(problems)
        self.notes = notes
        self.unreferenced_files = unreferenced_files
        self.unreferenced_bytes = unreferenced_bytes


def unreferenced_summary(atlas: StoreModel) -> tuple[int, int]:
    """(files, bytes) under data/, index/ and meta/ that no version still kept refers to."""
    doomed, kept, _ = unreferenced_files(atlas, float("inf"), 0.0)
    return len(doomed) + len(kept), sum(n for _, n, _ in doomed) + sum(n for _, n, _ in kept)


def verify(atlas: StoreModel) -> VerifyResult:
    """Read and check every index and block of the version this handle reads, and count
    the files no kept version refers to (a note, not a problem)."""
    problems = _problems(atlas)
    files, nbytes = unreferenced_summary(atlas)
    notes = []
    if files:
        notes.append(
            f"{files} file(s), {nbytes:,} bytes, are referenced by no version still kept (left by interrupted "
            "or conflicting writes, or by versions compaction replaced); `compact` removes them"
        )
    return VerifyResult(problems, notes, files, nbytes)


def _problems(atlas: StoreModel) -> list[str]:
    problems: list[str] = []
    owners: dict[int, str] = {}
    try:
        atlas._datasets.load_all()
    except CorruptionError:
        pass  # each damaged shard is reported below, with the dataset that meets it
    for name in list(atlas._datasets):
        try:
            ds = atlas._materialize(name)
        except CorruptionError as e:
            problems.append(str(e))
            continue
        assert isinstance(ds, DatasetState)
        for arr in ds.arrays.values():
            if arr.aid in owners:
                problems.append(f"{owners[arr.aid]} and dataset {name!r}, array {arr.name!r} share one array id")
            owners[arr.aid] = f"dataset {name!r}, array {arr.name!r}"
    problems.extend(_field_problems(atlas))
    for var in atlas._variables.values():
        try:
            idx = atlas._index(var)
        except CorruptionError as e:
            problems.append(str(e))
            continue
        problems.extend(_segment_sizes(atlas, var))
        rows = idx.rows
        if len(rows) == 0:
            continue
        segs = var.all_segments()
        for seg_no in np.unique(rows["seg"]).tolist():
            sub = rows[rows["seg"] == seg_no]
            firsts = np.unique(sub["offset"], return_index=True)[1]
            for r in sub[firsts]:
                try:
                    read.get_blocks(atlas, var, r.reshape(1), cache="off")
                except CorruptionError as e:
                    hit = sub[sub["offset"] == r["offset"]]
                    who = sorted({owners.get(int(a), f"array id {int(a)}") for a in hit["aid"]})
                    problems.append(f"{e}; affects {', '.join(who)}")
                except FileNotFoundError:
                    problems.append(f"segment {segs[seg_no][0]} of variable {var.name!r} is missing")
                    break
    return problems


def _field_problems(atlas: StoreModel) -> list[str]:
    """Shards whose catalogue fields disagree with their records (``find`` and ``catalog()``
    read the fields)."""
    out = []
    table = atlas._datasets
    for s in table.shards:
        if s.key is None or s.head is None or s.head.fields is None:
            continue
        where = f"shard {atlas._storage.location}/{s.key}"
        try:
            records = table.records_of(s)
            table.read_fields([s], list(s.head.fields))
        except CorruptionError as e:
            out.append(str(e))
            continue
        expected = fields_of([r[1:] for r in records])
        if expected.keys() != s.head.fields.keys() or not all(
            (got := s.fields.get(n)) is not None and same_field(got, decode_field(raw, len(s.names), where))
            for n, raw in expected.items()
        ):
            out.append(f"{where}: its catalogue fields disagree with its records (find and catalog() would err)")
    return out


def _segment_sizes(atlas: StoreModel, var: Variable) -> list[str]:
    """Segments whose length differs from what the manifest recorded (replaced files)."""
    out = []
    for key, recorded in var.segments:
        try:
            size = atlas._storage.size(key)
        except FileNotFoundError:
            continue  # reported by the block checks, with the arrays it affects
        if size != recorded:
            out.append(
                f"segment {atlas._storage.location}/{key} of variable {var.name!r} has length {size}, "
                f"but version {atlas._version} recorded {recorded}: it was replaced or damaged"
            )
    return out


def advance(store: StoreModel) -> None:
    """Bring a handle without changes of its own to the newest version, in one swap.

    Views obtained before refuse writes afterwards (they name the old version)."""
    if store._changed or not commit.store_moved_on(store):
        return
    fresh = type(store)(store._storage, store._config(), None, False)  # type: ignore[call-arg]
    with store._lock:
        loading.take_state(store, fresh)
        store._cache.clear()
