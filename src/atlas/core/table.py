"""The datasets of a version, as a handle holds them: the version's shards (names read at
open, records decoded a shard at a time when first used) and this handle's changes.

``DatasetTable`` is a mapping from dataset name to its record, in store order. A record is
the raw form read from storage (``[name, attributes, array entries]``) until something
makes it a ``DatasetState``. The table holds the state of a dataset this handle changed
until it is committed; the state of a dataset only read, or committed, it holds weakly:
while something else (a view) holds it, it is the dataset's record, and once dropped the
dataset is decoded from its shard again when next used. So memory follows what is in use
and what is not committed yet, not how many datasets a handle ever touched. A commit asks the
table which shards its changes touched (``plan``): the others are kept as they are, shared
with the version before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterator, MutableMapping
from operator import itemgetter
from typing import Any, cast

import numpy as np
import orjson

from ..collector import paused_gc
from ..format.records import attr_values
from ..format.shard import SHARD_ROWS
from .places import ROW_BITS, ROW_MASK, Places
from .shards import (
    ColumnsLoader,
    FieldsLoader,
    Loader,
    Record,
    Shard,
    StoredRows,
    cut_into_shards,
    fields_from_records,
)
from .state import DatasetState, WeakStates

# New datasets are written together with the last shards while each holds at most this many
# times the datasets written with it (see DatasetTable._merged_tail).
SHARD_MERGE_RATIO = 4



class DatasetTable(MutableMapping[str, Record]):
    """Dataset name → record, in store order, over a version's shards."""

    def __init__(
        self,
        shards: list[Shard],
        loader: Loader,
        where: str = "",
        columns_loader: ColumnsLoader | None = None,
        fields_loader: FieldsLoader | None = None,
    ) -> None:
        self.shards = shards
        self.where = where  # "manifest FILE", for messages
        self._load = loader  # decodes and checks a shard's records
        self._load_columns = columns_loader  # reads the array columns of shards
        self._load_fields = fields_loader  # reads catalogue fields of shards
        self._modified: set[str] = set()  # stored datasets this handle changed (not only read)
        self._written: list[Shard] = []  # the shards the last commit wrote (their records kept)
        self._dense: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # array -> (ids, schemas) by global row
        self._by_serial = {s.serial: s for s in shards}
        self._lookup = Places(shards, where)  # where each stored dataset is
        self._states: dict[str, DatasetState] = {}  # datasets of the shards this handle changed
        # states of datasets of the shards only read, or committed: kept while in use
        self._kept = WeakStates()
        self._deleted: set[str] = set()  # datasets of the shards deleted by this handle
        self._added: dict[str, Record] = {}  # datasets created by this handle, in order
        self._touched: set[int] = set()  # serials of shards with a changed state or a deletion
        self._rows = sum(len(s.names) for s in shards)
        self._name_list: list[str] | None = None  # names(), while no dataset is added or deleted

    def use_loaders(self, loader: Loader, columns_loader: ColumnsLoader, fields_loader: FieldsLoader) -> None:
        """Read shards' parts with these from now on (the table changed hands)."""
        self._load, self._load_columns, self._load_fields = loader, columns_loader, fields_loader

    # ------------------------------------------------------------------ lookups

    def share_places(self, older: DatasetTable) -> None:
        """Take the place of each dataset from ``older``, the table of an older version of
        the same store whose shard objects this one partly holds (see ``Places.share``)."""
        self._lookup.share(older._lookup)

    def _base_record(self, name: str) -> tuple[Shard, int] | None:
        code = self._lookup.of(name)
        if code is None:
            return None
        return self._by_serial[code >> ROW_BITS], code & ROW_MASK

    def records_of(self, shard: Shard) -> list[list[Any]]:
        """The raw records of a shard, decoded on first use."""
        recs = shard.records
        if recs is None:
            recs = shard.records = self._load(shard)
        return recs

    def get(self, name: str, default: Any = None) -> Any:
        rec = self._added.get(name)
        if rec is not None:
            return rec
        state = self._states.get(name) or self._kept.get(name)
        if state is not None:
            return state
        if name in self._deleted or type(name) is not str:
            return default
        hit = self._base_record(name)
        if hit is None:
            return default
        return self.records_of(hit[0])[hit[1]]

    def __getitem__(self, name: str) -> Record:
        rec = self.get(name)
        if rec is None:
            raise KeyError(name)
        return rec

    def __contains__(self, name: object) -> bool:
        if name in self._added:
            return True
        if name in self._deleted or type(name) is not str:
            return False
        return self._lookup.of(name) is not None

    def __len__(self) -> int:
        return self._rows - len(self._deleted) + len(self._added)

    def __iter__(self) -> Iterator[str]:
        deleted = self._deleted
        for s in self.shards:
            if deleted:
                yield from (n for n in s.names if n not in deleted)
            else:
                yield from s.names
        yield from list(self._added)

    def names(self) -> list[str]:
        """Every dataset name, in store order: one list, built in bulk and kept while no
        dataset is added or deleted (the table's own: callers must not change it)."""
        out = self._name_list
        if out is None:
            if self._deleted:
                out = list(self)
            else:
                out = list(itertools.chain.from_iterable(s.names for s in self.shards))
                out.extend(self._added)
            self._name_list = out
        return out

    def names_at(self, rows: np.ndarray) -> list[str]:
        """The names at positions ``rows`` (increasing) of :meth:`names`, picked from the
        shards' name lists when the handle added and deleted nothing (the list of every
        name is then not built)."""
        if self._name_list is not None or self._deleted or self._added:
            return list(map(self.names().__getitem__, rows.tolist()))
        starts = np.cumsum([0, *(len(s.names) for s in self.shards)])
        cuts = np.searchsorted(rows, starts).tolist()
        out: list[str] = []
        for k, s in enumerate(self.shards):
            a, b = cuts[k], cuts[k + 1]
            if b - a == 1:
                out.append(s.names[int(rows[a]) - int(starts[k])])
            elif b > a:
                out.extend(itemgetter(*(rows[a:b] - starts[k]).tolist())(s.names))
        return out

    def attribute_values(self, names: list[str], keys: Collection[str]) -> dict[str, dict[str, Any]]:
        """``{key: value}`` of the attributes ``keys`` of each dataset of ``names`` that
        exists (as ``DatasetView.attributes()`` gives them), read a shard at a time without
        making a state of any: the records of a shard decoded for this alone are dropped
        again once its datasets are read, so reading a few attributes of every dataset of a
        large store holds one shard's records at a time."""
        wanted = frozenset(keys)
        where = self.where

        def values_of(rec: Record) -> dict[str, Any]:
            found = attr_values(rec[1], where, rec[0]) if type(rec) is list else cast(DatasetState, rec).attr_values()
            return {k: v for k, v in found.items() if k in wanted}

        out: dict[str, dict[str, Any]] = {}
        by_shard: dict[int, list[tuple[str, int]]] = {}
        for name in names:
            rec = self._added.get(name) or self._states.get(name)
            if rec is not None:
                out[name] = values_of(rec)
                continue
            if name in self._deleted:
                continue
            hit = self._base_record(name)
            if hit is not None:
                by_shard.setdefault(hit[0].serial, []).append((name, hit[1]))
        for serial, rows in by_shard.items():
            shard = self._by_serial[serial]
            decoded_before = shard.records is not None
            recs = self.records_of(shard)
            for name, row in rows:
                out[name] = values_of(recs[row])
            if not decoded_before and shard.key is not None:
                shard.records = None
        return out

    def values(self) -> Iterator[Record]:  # type: ignore[override]
        for _, rec in self.items():
            yield rec

    def load_all(self) -> None:
        """Decode the records of every shard not decoded yet, the garbage collector paused
        (decoding many shards makes millions of lists, none of them garbage: collections
        meanwhile would only rescan them, more and more of them each time)."""
        missing = [s for s in self.shards if s.records is None]
        if len(missing) > 1:
            with paused_gc():
                for s in missing:
                    self.records_of(s)

    def items(self) -> Iterator[tuple[str, Record]]:  # type: ignore[override]
        self.load_all()
        deleted, states = self._deleted, self._states
        kept = self._kept if self._kept else None
        for s in self.shards:
            recs = self.records_of(s)
            touched = s.serial in self._touched
            for name, raw in zip(s.names, recs, strict=True):
                rec: Record = raw
                if touched:
                    if name in deleted:
                        continue
                    rec = states.get(name, rec)
                if kept is not None:
                    rec = kept.get(name, rec)
                yield name, rec
        yield from list(self._added.items())

    # ------------------------------------------------------------------ columns

    def array_locations(self, names: list[Any], array: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """Where ``array`` is in each of ``names`` that is a stored dataset this handle has
        not touched, read from the shards' columns without decoding any record: (positions
        in ``names``, array ids (0: the dataset has no such array), schema positions). Then
        the positions of the other names (new, read or changed, deleted, unknown), whose
        records or states tell."""
        touched = bool(self._states or self._added or self._deleted)
        if not touched and len(names) == self._rows and names == self.names():  # every dataset, in order
            ids, schemas = self._dense_column(array)
            return np.arange(self._rows, dtype=np.int64), ids, schemas, []
        place = self._lookup.every()
        states, added, deleted = self._states, self._added, self._deleted
        pos: list[int] = []
        codes: list[int] = []
        other: list[int] = []
        get = place.get
        for i, n in enumerate(names):
            code = get(n) if type(n) is str else None
            if code is None or (touched and (n in states or n in added or n in deleted)):
                other.append(i)
            else:
                pos.append(i)
                codes.append(code)
        if not codes:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64), other
        ids, schemas = self._dense_column(array)
        at = np.array(codes, dtype=np.int64)
        rows = self._serial_base()[at >> ROW_BITS] + (at & ROW_MASK)
        return np.array(pos, dtype=np.int64), ids[rows], schemas[rows], other

    def _serial_base(self) -> np.ndarray:
        top = max((s.serial for s in self.shards), default=0)
        base = np.zeros(top + 1, dtype=np.int64)
        at = 0
        for s in self.shards:
            base[s.serial] = at
            at += len(s.names)
        return base

    def _dense_column(self, array: str) -> tuple[np.ndarray, np.ndarray]:
        """Array ids and schema positions of ``array`` by global row (0 where absent)."""
        hit = self._dense.get(array)
        if hit is None:
            self.read_columns(self.shards)
            ids = np.zeros(self._rows, dtype=np.uint64)
            schemas = np.zeros(self._rows, dtype=np.int64)
            at = 0
            for s in self.shards:
                assert s.columns is not None
                col = s.columns.get(array)
                if col is not None:
                    ids[at + col["row"]] = col["aid"]
                    schemas[at + col["row"]] = col["schema"]
                at += len(s.names)
            hit = self._dense[array] = (ids, schemas)
        return hit

    # ------------------------------------------------------------------ catalogue fields

    def stored_rows(self) -> StoredRows | None:
        """The stored datasets as a catalogue reads them from the shards' fields, or None
        when a shard holds no fields (datasets of a version-1 manifest, shards written
        without them): where each stored row is now, and which datasets this handle changed
        or added (their states are the truth)."""
        shards = self.shards
        if any(s.key is None or s.head is None or s.head.fields is None for s in shards):
            return None
        sizes = np.array([len(s.names) for s in shards], dtype=np.int64)
        bases = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if shards else sizes
        current = np.arange(self._rows, dtype=np.int64)
        gone = [n for n in self._deleted] + [n for n in self._modified if n in self._states]
        if gone:
            place = self._lookup.every()
            serial_base = self._serial_base()
            codes = np.array([place[n] for n in gone], dtype=np.int64)
            at = serial_base[codes >> ROW_BITS] + (codes & ROW_MASK)
            deleted_at = at[: len(self._deleted)]
            if len(deleted_at):
                keep = np.ones(self._rows, dtype=bool)
                keep[deleted_at] = False
                current = np.where(keep, np.cumsum(keep) - 1, -1)
            changed_at = at[len(self._deleted) :]
            changed_rows = current[changed_at].tolist()
            current[changed_at] = -1
        else:
            changed_rows = []
        changed = gone[len(self._deleted) :]
        live_stored = self._rows - len(self._deleted)
        return StoredRows(
            shards, bases, current, changed, changed_rows, list(self._added), live_stored, not gone and not self._added
        )

    def read_columns(self, shards: list[Shard]) -> None:
        """Read the array columns of those of ``shards`` not read yet."""
        missing = [s for s in shards if s.columns is None]
        if missing:
            if self._load_columns is None:
                raise AssertionError("a table with stored shards reads their columns")
            self._load_columns(missing)

    def read_fields(self, shards: list[Shard], names: list[str]) -> None:
        """Read the catalogue fields ``names`` of ``shards`` (kept on each shard)."""
        if self._load_fields is not None:
            self._load_fields(shards, names)
        else:  # a new store's table: its shards were written by this handle
            fields_from_records(shards, names)

    def mark_modified(self, name: str) -> None:
        """Note that this handle changed a stored dataset (not only read it): the table
        holds its state until it is committed."""
        if name in self._added or name in self._deleted:
            return
        self._modified.add(name)
        state = self._kept.pop(name, None)
        if state is not None:
            self._states[name] = state
        hit = self._base_record(name)
        if hit is not None:
            self._touched.add(hit[0].serial)

    # ------------------------------------------------------------------ changes

    def keep(self, name: str, state: DatasetState) -> None:
        """Hold ``state``, made from the raw record this table just gave for ``name`` (a
        dataset this handle created, or a stored one it has not changed): as its record from
        now on, without looking the name up again."""
        if name in self._added:
            self._added[name] = state
        else:
            self._kept[name] = state

    def __setitem__(self, name: str, rec: Record) -> None:
        if name in self._added:
            self._added[name] = rec
            return
        if name in self._deleted:
            self._added[name] = rec
            self._name_list = None
            return
        hit = self._base_record(name)
        if hit is None:
            self._added[name] = rec
            self._name_list = None
            return
        assert isinstance(rec, DatasetState)
        if name in self._modified:
            self._states[name] = rec
            self._touched.add(hit[0].serial)
        else:
            self._kept[name] = rec

    def __delitem__(self, name: str) -> None:
        self._name_list = None
        if name in self._added:
            del self._added[name]
            return
        hit = self._base_record(name) if name not in self._deleted else None
        if hit is None:
            raise KeyError(name)
        self._deleted.add(name)
        self._states.pop(name, None)
        self._kept.pop(name, None)
        self._modified.discard(name)
        self._touched.add(hit[0].serial)

    def read_record(self, name: str) -> list[Any] | None:
        """The record of ``name`` in the version read (None when it had none), whatever this
        handle did since."""
        hit = self._base_record(name)
        return None if hit is None else self.records_of(hit[0])[hit[1]]

    def shard_key(self, name: str) -> str | None:
        """The key of the shard holding ``name`` in the version read: None when none does
        (or a version-1 manifest does). Shards are immutable: two versions whose shards of
        the same key hold a dataset hold the same record of it."""
        hit = self._base_record(name)
        return None if hit is None else hit[0].key

    def untouched(self, name: str) -> bool:
        """Whether this handle neither created, deleted nor used the dataset ``name``."""
        return name not in self._states and name not in self._added and name not in self._deleted

    def edits(self) -> tuple[set[str], dict[str, Record], dict[str, DatasetState]]:
        """This handle's changes, as they are (not copies): the names of the version read it
        deleted, the datasets it created (in order; a name also deleted was re-created), and
        the states of the version's datasets it changed."""
        return self._deleted, self._added, self._states

    def held_states(self) -> list[DatasetState]:
        """Every state the table holds of the version's datasets: changed, or read and still
        in use."""
        return [*self._states.values(), *self._kept.values()]

    # ------------------------------------------------------------------ commits

    def plan(self, encode: Callable[[DatasetState], list[Any]], merge_limit: int | None = None) -> list[Shard]:
        """The shards of the next version: untouched ones as they are, the others (and any
        new datasets) as shards to write, with ``key`` None and their records filled in.

        ``encode`` gives a state's record; a shard whose states all encode to what it
        holds (datasets only read) is kept. New datasets join the last shards (``_merged_tail``;
        with a ``merge_limit`` of 0 they start a shard of their own)."""
        out: list[Shard] = []
        pending_names: list[str] = []
        pending_recs: list[list[Any]] = []
        shards = self.shards
        tail = self._merged_tail(merge_limit)
        for i, s in enumerate(shards):
            rewrite = s.key is None or i >= tail or (s.serial in self._touched and self._changed(s, encode))
            if not rewrite:
                cut_into_shards(out, pending_names, pending_recs, SHARD_ROWS)
                out.append(s)
                continue
            recs = self.records_of(s)
            for name, rec in zip(s.names, recs, strict=True):
                if name in self._deleted:
                    continue
                state = self._states.get(name)
                pending_names.append(name)
                pending_recs.append(encode(state) if state is not None else rec)
        for name, added in self._added.items():
            pending_names.append(name)
            pending_recs.append(encode(added) if isinstance(added, DatasetState) else added)
        cut_into_shards(out, pending_names, pending_recs, SHARD_ROWS)
        return out

    def _merged_tail(self, limit: int | None = None) -> int:
        """Where the shards begin that new datasets are written together with: the last
        shards that are not full, while each holds at most ``SHARD_MERGE_RATIO`` times the
        datasets written with it so far (``len(self.shards)`` when none are). Appends then
        rewrite about their own datasets, and the shards at the end are a few of growing
        size, as a variable's index runs are. With ``limit``, the shards merged hold
        fewer than that many datasets in all."""
        size = len(self._added)
        i = len(self.shards)
        if not size:
            return i
        stored = 0
        while i:
            rows = len(self.shards[i - 1].names)
            if rows >= SHARD_ROWS or rows > SHARD_MERGE_RATIO * size or (limit is not None and stored + rows >= limit):
                break
            i -= 1
            size += rows
            stored += rows
        return i

    def _changed(self, shard: Shard, encode: Callable[[DatasetState], list[Any]]) -> bool:
        recs = self.records_of(shard)
        for name, rec in zip(shard.names, recs, strict=True):
            if name in self._deleted:
                return True
            state = self._states.get(name)
            if state is None or (state.stored_entries is not None and state.stored_attrs is not None):
                continue
            if orjson.dumps(encode(state)) != orjson.dumps(rec):
                return True
        return False

    def install(self, shards: list[Shard]) -> None:
        """After a commit: ``shards`` (from ``plan``, now written) are the version's. States
        stay the records of their datasets."""
        kept = self._kept
        kept.update(self._states)
        kept.update((n, r) for n, r in self._added.items() if isinstance(r, DatasetState))
        self._lookup = self._lookup.moved(shards, self._deleted)
        # the records of what the commit before wrote are read back when used: the table
        # keeps those of one commit's shards (states in use stay with their views)
        for s in self._written:
            s.records = None
        self._written = [s for s in shards if s.serial not in self._by_serial]
        self.shards = shards
        self._by_serial = {s.serial: s for s in shards}
        self._rows = sum(len(s.names) for s in shards)
        self._name_list = None
        self._dense = {}
        self._deleted = set()
        self._added = {}
        self._modified = set()
        self._states = {}
        self._touched = set()

    def pending(self) -> bool:
        """Whether the handle added or deleted datasets since the table was installed."""
        return bool(self._added or self._deleted)

    def forget(self, loader: Loader, columns_loader: ColumnsLoader, fields_loader: FieldsLoader) -> None:
        """Drop every decoded record (nothing changed since ``install``): records are decoded
        again from the shard files, by the loaders given, when next used. States still in use
        by views stay theirs (they are what the shards hold)."""
        self.use_loaders(loader, columns_loader, fields_loader)
        self._states = {}
        self._touched = set()
        self._written = []
        for s in self.shards:
            if s.key is not None:
                s.records = None

