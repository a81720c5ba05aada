"""A handle's changes relative to the version it read, in a form independent of array ids,
and re-applying them on a newer version: what ``flush(rebase=True)`` does when another
writer committed first (Icechunk's rebase, with its basic conflict solver).

:func:`changes_of` writes every buffered chunk ahead (so that all data is in segment files)
and returns a :class:`Changes`: the datasets created and deleted and, for each dataset
changed, the attributes set or removed and the arrays defined, written or deleted, with
their schemas, attributes, statistics and the index rows of their chunks (no chunk data).
It is small and picklable, so that it can travel between processes.

:func:`apply_changes` installs them on the version a handle reads (after the handle's own
changes), with fresh ids, and raises ``ConflictError`` on a true conflict with what landed
since the changes' version or what the handle changed itself:

* the same attribute of a dataset changed on both sides, or the same array (defined,
  written, deleted, its attributes changed);
* a dataset deleted on one side and changed (or deleted and created again) on the other;
* the same new dataset name created on both sides.

Anything else merges: different datasets, different arrays or attributes of one dataset,
variables created on both sides (by name), ids allocated on both sides (these changes' new
ids are taken above the handle's), schemas (interned by value).

What landed is found without decoding what did not change: only the datasets the changes
touch are looked at, and one whose shard has the same key in both versions has the same
record (shards are immutable); the others are compared record by record. A write that
leaves an array's statistics as they were does not show in its record, so each commit's
manifest header lists the arrays of its parent whose chunks it wrote (``rewritten``, kept
by tombstones), and the headers of the versions that landed since are read when the changes
write or delete arrays that existed before. A version whose header does not say (written
before the field existed) may have written any of them: such writes then conflict.

:func:`flush_rebasing` is the flush: commit as usual while the store has not moved on;
otherwise take the changes, open the newest version, apply them, commit, and do it again
(after a short random pause) while other writers keep winning. On success the handle reads
the version it committed (views of the datasets it changed stay valid; others name the old
version); on a true conflict nothing is committed and the handle keeps its changes on its
version, as after any ``ConflictError``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..errors import Conflict, ConflictError, CorruptionError
from ..format import manifest as mf
from ..format.chunkindex import ChunkIndex, merge_rows
from ..format.records import decode_attrs, decode_stats, encode_attrs, encode_stats
from . import commit, history, write
from .runs import IndexUpdate
from .shards import current_record
from .state import ArrayState, DatasetState

if TYPE_CHECKING:
    from .model import StoreModel

__all__ = ["ArrayChange", "Changes", "DatasetChange", "apply_changes", "changes_of", "conflicts"]



@dataclass
class ArrayChange:
    """An array defined, written or whose attributes changed, in one dataset."""

    name: str
    base_aid: int  # its id in the version the changes were made on; 0: defined by the changes
    schema: list[Any] | None = None  # a defined array's schema, as manifests encode it
    attrs: list[Any] = field(default_factory=list)  # flat, encoded: all of a defined array's; those set
    removed: tuple[str, ...] = ()  # attribute keys removed (an existing array)
    stats: Any = None  # a defined array's statistics, encoded (None: never written)
    number: int = 0  # its rows' array number in ``Changes.rows`` (0: no chunk written)


@dataclass
class DatasetChange:
    """A dataset created, deleted or changed."""

    name: str
    created: bool = False  # created by the changes (after deleting the stored one if ``deleted``)
    deleted: bool = False  # the stored dataset of this name was deleted
    base: tuple[str | None, Any, Any] | None = None  # stored: (shard key, attributes, array entries)
    attrs: list[Any] = field(default_factory=list)  # flat, encoded: all of a created dataset's; those set
    removed: tuple[str, ...] = ()  # attribute keys removed
    arrays: list[ArrayChange] = field(default_factory=list)  # defined or changed, in definition order
    dropped: dict[str, int] = field(default_factory=dict)  # stored arrays deleted: name -> id


@dataclass
class Changes:
    """What a handle changed since ``version``, independent of the ids it took: datasets
    by name, arrays by dataset and name, chunks as index rows whose ``aid`` is an
    :class:`ArrayChange`'s ``number`` and whose ``seg`` is a position in ``segments``."""

    version: int
    datasets: list[DatasetChange] = field(default_factory=list)
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # variable -> index rows
    segments: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)  # (key, size, its bytes)

    def __len__(self) -> int:
        return len(self.datasets)


# ---------------------------------------------------------------------------- taking changes


def changes_of(store: StoreModel) -> Changes:
    """The handle's changes relative to the version it reads, its buffered chunks written
    ahead first (they stay pending: the handle keeps its changes)."""
    changes = Changes(store._version)
    if store._read_only or not store._changed:
        return changes
    if store._unpublished:
        raise ValueError("a handle that wrote checkpoints holds no changes against its version")
    live = [a for a in store._changed_arrays.values() if not a.deleted]
    # from the buffers, before they are written ahead (and from those spilled earlier)
    string_now = {**store._string_stats, **commit.buffered_string_stats(store)}
    if any(a.dirty for a in live):
        commit.spill(store)
    written = _pending_aids(store)
    deleted, added, states = store._datasets.edits()
    numbers: dict[int, int] = {}  # aid -> number in the rows
    fresh: list[tuple[ArrayState, ArrayChange]] = []  # defined arrays written: statistics taken here
    for name in sorted(deleted):
        if name not in added:
            changes.datasets.append(DatasetChange(name, deleted=True, base=_stored(store, name)))
    for state in states.values():
        d = _changed_dataset(store, state, written, numbers, fresh)
        if d is not None:
            changes.datasets.append(d)
    for name in added:
        ds = store._materialize(name)
        assert ds is not None
        d = DatasetChange(name, created=True, deleted=name in deleted, attrs=encode_attrs(ds.attrs))
        if d.deleted:
            d.base = _stored(store, name)
        d.arrays = [_defined(arr, written, numbers, fresh) for arr in ds.arrays.values()]
        changes.datasets.append(d)
    _fresh_stats(store, fresh, string_now)
    _rows(store, changes, numbers)
    return changes


def _pending_aids(store: StoreModel) -> set[int]:
    """Ids of the arrays with chunks written ahead and not committed."""
    parts = [var.pending.rows["aid"] for var in store._variables.values() if len(var.pending.rows)]
    return set(np.unique(np.concatenate(parts)).tolist()) if parts else set()


def _stored(store: StoreModel, name: str) -> tuple[str | None, Any, Any]:
    """(shard key, attributes, array entries) of ``name`` in the version the handle read."""
    rec = store._datasets.read_record(name)
    assert rec is not None
    return store._datasets.shard_key(name), rec[1], rec[2]


Fresh = list[tuple[ArrayState, ArrayChange]]


def _defined(arr: ArrayState, written: set[int], numbers: dict[int, int], fresh: Fresh) -> ArrayChange:
    """The change defining ``arr`` (and its chunks, if written)."""
    change = ArrayChange(arr.name, 0, arr.schema.encoded(), encode_attrs(arr.attrs))
    if arr.aid in written:
        change.number = numbers[arr.aid] = len(numbers) + 1
        fresh.append((arr, change))
    return change


def _changed_dataset(
    store: StoreModel, ds: DatasetState, written: set[int], numbers: dict[int, int], fresh: Fresh
) -> DatasetChange | None:
    """What the handle changed of a stored dataset it used (None: nothing)."""
    rec = store._datasets.read_record(ds.name)
    assert rec is not None
    d = DatasetChange(ds.name)
    if ds.stored_attrs is None:  # decoded: maybe changed
        d.attrs, d.removed = _attr_diff(rec[1], ds.attrs)
    if not ds.arrays_untouched:
        stored = {e[0]: e for e in rec[2]}
        arrays = ds.arrays
        for aname, e in stored.items():
            arr = arrays.get(aname)
            if arr is None or arr.aid != e[1]:
                d.dropped[aname] = e[1]
        for aname, arr in arrays.items():
            e = stored.get(aname)
            if e is None or arr.aid != e[1]:
                d.arrays.append(_defined(arr, written, numbers, fresh))
                continue
            change = ArrayChange(aname, arr.aid)
            if arr._raw is None:  # attributes (and statistics) decoded: maybe changed
                change.attrs, change.removed = _attr_diff(e[4], arr.attrs)
            if arr.aid in written:
                change.number = numbers[arr.aid] = len(numbers) + 1
            if change.number or change.attrs or change.removed:
                d.arrays.append(change)
    if not (d.attrs or d.removed or d.arrays or d.dropped):
        return None
    d.base = (store._datasets.shard_key(ds.name), rec[1], rec[2])
    return d


def _attr_diff(stored: Any, attrs: dict[str, tuple[str, Any]]) -> tuple[list[Any], tuple[str, ...]]:
    """(the attributes of ``attrs`` set since the flat list ``stored``, flat and encoded;
    the keys removed)."""
    before = _attr_map(stored)
    flat = encode_attrs(attrs)
    now = _attr_map(flat)
    changed = [x for i in range(0, len(flat), 3) if now[flat[i]] != before.get(flat[i]) for x in flat[i : i + 3]]
    return changed, tuple(k for k in before if k not in now)


def _attr_map(flat: Any) -> dict[str, bytes]:
    """Key -> its (kind, encoded value) as bytes that differ exactly when the values do
    (NaN payloads, -0.0 against 0.0, a bool against an int)."""
    if not flat:
        return {}
    return {flat[i]: orjson.dumps((flat[i + 1], flat[i + 2])) for i in range(0, len(flat), 3)}


def _fresh_stats(store: StoreModel, fresh: Fresh, string_now: dict[int, Any]) -> None:
    """Statistics of the arrays the changes define and wrote, from their own rows."""
    if not fresh:
        return
    names = {arr.name for arr, _ in fresh}
    updates = {
        v.name: IndexUpdate([], v.all_segments(), ChunkIndex(v.pending.rows), None)
        for v in store._variables.values()
        if v.name in names
    }
    stats = commit.fresh_stats(store, updates, string_now, [arr for arr, _ in fresh])
    for arr, change in fresh:
        change.stats = encode_stats(arr.schema.dtype, stats.get(arr.aid))


def _rows(store: StoreModel, changes: Changes, numbers: dict[int, int]) -> None:
    """The index rows of the chunks written ahead for the arrays in ``numbers`` (those of
    arrays deleted since are left out), renumbered, with the segments they name."""
    if not numbers:
        return
    top = max(numbers)
    lookup = np.zeros(top + 1, dtype=np.uint64)
    for aid, n in numbers.items():
        lookup[aid] = n
    for var in store._variables.values():
        rows = var.pending.rows
        if not len(rows):
            continue
        aids = rows["aid"]
        keep = aids <= top
        keep[keep] = lookup[aids[keep].astype(np.int64)] > 0
        if not keep.any():
            continue
        rows = rows[keep]  # a copy
        rows["aid"] = lookup[rows["aid"].astype(np.int64)]
        segs = var.all_segments()
        used, where = np.unique(rows["seg"], return_inverse=True)
        rows["seg"] = where
        changes.rows[var.name] = rows
        changes.segments[var.name] = [(segs[i][0], segs[i][1], var.owned_bytes(*segs[i])) for i in used.tolist()]


# ---------------------------------------------------------------------------- applying changes


def apply_changes(
    store: StoreModel, changes: Changes, sides: tuple[str, str] = ("these changes", "the handle they were applied to")
) -> None:
    """Install ``changes`` on the version ``store`` reads, after its own changes, with ids
    taken above its own. ``ConflictError`` (nothing installed) on a true conflict with what
    landed since the changes' version or what the handle changed itself; its ``conflicts``
    say what, and ``sides`` name the two sides in its message.

    ``ValueError`` for changes made on a version newer than the handle's."""
    store._check_writable()
    found = conflicts(store, changes, {})
    if found:
        raise conflict_error(
            f"{len(found)} change(s) made on version {changes.version} conflict with version {store._version} "
            f"of the store at {store._storage.location}"
            + (" and the changes of this handle" if store._changed else ""),
            found,
            sides,
            "nothing was applied",
        )
    install(store, changes)


def conflicts(
    store: StoreModel, changes: Changes, seen: dict[int, list[tuple[int, int]] | None]
) -> list[Conflict]:
    """The true conflicts of ``changes`` with the handle's version and its own changes.

    ``seen`` caches what each version since the changes' one rewrote (see :func:`rewritten_since`)."""
    if changes.version > store._version:
        raise ValueError(
            f"changes made on version {changes.version} cannot be applied to a handle on the older "
            f"version {store._version} of the store at {store._storage.location}; open its newest version"
        )
    table = store._datasets
    out: list[Conflict] = []
    rewritten: list[IdRanges | None] = []  # computed once, when first needed

    def rewrites() -> IdRanges | None:
        """Ids of the arrays whose chunks were written since the changes' version, by
        other writers or by the handle itself (None: not known)."""
        if not rewritten:
            since = rewritten_since(store, changes.version, seen)
            if since is not None:
                since.add((aid, aid) for aid in _own_rewrites(store))
            rewritten.append(since)
        return rewritten[0]

    for d in changes.datasets:
        name = d.name
        if name not in table:
            if not d.created or d.deleted:  # changed or deleted here, gone there
                if d.deleted and not d.created:
                    continue  # deleted on both sides: nothing left to disagree on
                out.append(Conflict(name, "", "deleted and created again" if d.deleted else "changed", "deleted"))
            continue
        if d.created and not d.deleted:
            out.append(Conflict(name, "", "created", "created"))
            continue
        assert d.base is not None
        if d.base[0] is not None and table.untouched(name) and table.shard_key(name) == d.base[0]:
            theirs: dict[str, str] = {}  # the same record: only data rewrites can differ
            attrs_there: set[str] = set()
        else:
            attrs_there, theirs = _differences(store, name, d.base)
        stored_arrays = {e[0]: e[1] for e in d.base[2]}
        if stored_arrays:
            ids = rewrites()
            for aname, aid in stored_arrays.items():
                if aname not in theirs and (ids is None or aid in ids):
                    theirs[aname] = "written" if ids is not None else "perhaps written (a version since cannot be read)"
        if d.deleted:  # deleted (and perhaps created again) here
            if theirs or attrs_there:
                out.append(Conflict(name, "", "deleted" + (" and created again" if d.created else ""), "changed"))
            continue
        if stored_arrays and all(theirs.get(a) in _GONE for a in stored_arrays):
            # every array it had is gone: deleted and created again there (or as good as)
            out.append(Conflict(name, "", "changed", "replaced"))
            continue
        for key in itertools.chain(d.attrs[0::3], d.removed):
            if key in attrs_there:
                out.append(Conflict(name, f"attribute {key!r}", "set" if key not in d.removed else "removed", "changed"))
        for change in d.arrays:
            if change.name in theirs:
                here = "defined" if change.base_aid == 0 else "written" if change.number else "changed"
                out.append(Conflict(name, f"array {change.name!r}", here, theirs[change.name]))
        for aname in d.dropped:
            if aname in theirs and not any(c.name == aname for c in d.arrays):
                out.append(Conflict(name, f"array {aname!r}", "deleted", theirs[aname]))
    return out


# What happened there to an array that no longer is the one the changes' version had.
_GONE = ("deleted", "deleted and defined again")


def _differences(store: StoreModel, name: str, base: tuple[str | None, Any, Any]) -> tuple[set[str], dict[str, str]]:
    """(attribute keys, array names with what happened to each) that differ between the
    stored record ``base`` of a dataset and what the handle holds of it now."""
    attrs_now, arrays_now = _current(store, name)
    before = _attr_map(base[1])
    after = _attr_map(attrs_now)
    attrs = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    entries = {e[0]: e for e in base[2]}
    arrays: dict[str, str] = {}
    for aname, e in entries.items():
        now = arrays_now.get(aname)
        if now is None:
            arrays[aname] = "deleted"
        elif now[1] != e[1]:
            arrays[aname] = "deleted and defined again"
        elif _entry_bytes(now) != _entry_bytes(e):
            arrays[aname] = "changed"
    for aname in arrays_now:
        if aname not in entries:
            arrays[aname] = "defined"
    return attrs, arrays


def _current(store: StoreModel, name: str) -> tuple[Any, dict[str, Any]]:
    """(flat attributes, array entries by name) of a dataset as the handle holds it now,
    encoded as records hold them."""
    rec = current_record(store._datasets, name, lambda ds: store._record_of(ds, {}))
    return rec[1], {e[0]: e for e in rec[2]}


def _entry_bytes(e: Any) -> bytes:
    """An array entry (id, schema, statistics, attributes) as bytes that differ exactly when it does."""
    return orjson.dumps((e[1], e[2], e[3], e[4]))


def _own_rewrites(store: StoreModel) -> set[int]:
    """Ids of arrays of the handle's version it wrote itself since."""
    own = _pending_aids(store)
    own.update(a.aid for a in store._changed_arrays.values() if a.aid < store._base_id)
    return own


class IdRanges:
    """A set of array ids held as ranges (the arrays a commit rewrites are mostly neighbours)."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int]] = []  # disjoint and sorted once merged
        self._firsts: list[int] = []
        self._merged = True

    def add(self, ranges: Iterable[tuple[int, int]]) -> None:
        self._ranges.extend(ranges)
        self._merged = False

    def _merge(self) -> None:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(self._ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        self._ranges = merged
        self._firsts = [lo for lo, _ in merged]
        self._merged = True

    def __contains__(self, aid: object) -> bool:
        if not isinstance(aid, int):
            return False
        if not self._merged:
            self._merge()
        i = bisect.bisect_right(self._firsts, aid) - 1
        return i >= 0 and aid <= self._ranges[i][1]


def rewritten_since(
    store: StoreModel, version: int, seen: dict[int, list[tuple[int, int]] | None]
) -> IdRanges | None:
    """Ids of the arrays whose chunks the commits after ``version`` up to the handle's wrote,
    as each manifest's header lists them; None when one does not say (written before headers
    listed them, or too many). ``seen`` caches each version's answer."""
    out = IdRanges()
    for v in range(version + 1, store._version + 1):
        if v not in seen:
            seen[v] = _rewritten_by(store, v)
        ranges = seen[v]
        if ranges is None:
            return None
        out.add(ranges)
    return out


def _rewritten_by(store: StoreModel, version: int) -> list[tuple[int, int]] | None:
    """The id ranges the header of ``version`` lists as rewritten (its body may be gone)."""
    key = store._manifest_key(version)
    try:
        head = history.read_header(store._storage, key, version)
    except (FileNotFoundError, CorruptionError):
        return None
    return mf.rewritten_of(head.header, f"{store._storage.location}/{key}")


def install(store: StoreModel, changes: Changes) -> None:
    """Install changes already checked against the handle (see :func:`conflicts`)."""
    where = f"changes made on version {changes.version} of {store._storage.location}"
    aids = np.zeros(max((a.number for d in changes.datasets for a in d.arrays), default=0) + 1, dtype=np.uint64)
    table = store._datasets
    for d in changes.datasets:
        if d.deleted and d.name in table:
            write.delete_dataset(store, d.name)
    for d in changes.datasets:
        if d.created:
            ds = DatasetState(d.name)
            ds._attrs = decode_attrs(d.attrs, where)
            table[d.name] = ds
            for change in d.arrays:
                _define(store, ds, change, aids, where)
        elif not d.deleted:
            _change(store, d, aids, where)
    for vname, rows in changes.rows.items():
        var = store._variables[vname]
        rows = rows.copy()
        rows["aid"] = aids[rows["aid"].astype(np.int64)]
        if not rows["aid"].all():
            raise ValueError(f"{where}: index rows of variable {vname!r} name no array of the changes")
        rows["seg"] += len(var.segments) + len(var.pending_segments)
        segs = changes.segments[vname]
        var.pending_segments.extend((k, size) for k, size, _ in segs)
        var.owned.update((k, own) for k, _, own in segs)
        var.pending = ChunkIndex(merge_rows([var.pending.rows, rows]))
        var.changed = True
        var.gen += 1
    store._changed = True


def _define(store: StoreModel, ds: DatasetState, change: ArrayChange, aids: np.ndarray, where: str) -> None:
    assert change.schema is not None
    schema = store._intern_schema(store._decode_schema(change.schema, where))
    var = store._variable(change.name, create=True)
    assert var is not None
    arr = ArrayState(change.name, store._take_id(), schema, ds.name)
    if change.attrs:
        arr.attrs.update(decode_attrs(change.attrs, where))
    arr.stats = decode_stats(schema.dtype, change.stats, where)
    arr.written = change.stats is not None
    ds.arrays[change.name] = arr
    var.live += 1
    if change.number:
        aids[change.number] = arr.aid


def _change(store: StoreModel, d: DatasetChange, aids: np.ndarray, where: str) -> None:
    ds = store._materialize(d.name)
    assert ds is not None
    store._datasets.mark_modified(d.name)  # the table holds it until committed
    attrs = ds.attrs
    for key in d.removed:
        attrs.pop(key, None)
    if d.attrs:
        attrs.update(decode_attrs(d.attrs, where))
    arrays = ds.arrays
    for aname in d.dropped:
        arr = arrays.pop(aname)
        write.drop_array(store, arr)
    for change in d.arrays:
        if change.base_aid == 0:
            _define(store, ds, change, aids, where)
            continue
        arr = arrays[change.name]
        for key in change.removed:
            arr.attrs.pop(key, None)
        if change.attrs:
            arr.attrs.update(decode_attrs(change.attrs, where))
        if change.number:  # statistics folded at the commit, over the rows the version holds
            aids[change.number] = arr.aid
            arr.written = arr.changed = True
            store._changed_arrays[arr.aid] = arr


def conflict_error(head: str, found: list[Conflict], sides: tuple[str, str], tail: str) -> ConflictError:
    lines = [c.describe(*sides) for c in found[:5]]
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    err = ConflictError(f"{head}: {'; '.join(lines)}{more}. {tail}")
    err.conflicts = tuple(found)
    return err
