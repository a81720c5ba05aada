"""The datasets of a version, as a handle holds them: the version's shards (names read at
open, records decoded a shard at a time when first used) and this handle's changes.

``DatasetTable`` is a mapping from dataset name to its record, in store order. A record is
the raw form read from storage (``[name, attributes, array entries]``) until something
makes it a ``DatasetState`` (which the table then keeps in its place). A commit asks the
table which shards its changes touched (``plan``): the others are kept as they are, shared
with the version before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from ..errors import CorruptionError
from ..format.manifest import paused_gc
from ..format.shard import SHARD_ROWS, Columns, ShardHeader
from .state import DatasetState

ROW_BITS = 24  # a dataset's place: its shard's serial number, then its row (shards hold < 2**24)


@dataclass(eq=False)
class Shard:
    """One shard of a version: its file (``key`` None for datasets not yet written as a
    shard: those of a version-1 manifest) and the names of its datasets, in order."""

    key: str | None
    names: list[str]
    names_end: int = 0  # length of the file's prefix holding the names
    length: int = 0  # length of the file
    records: list[list[Any]] | None = None  # raw records, once decoded
    head: ShardHeader | None = None  # the file's header (where its sections are)
    columns: Columns | None = None  # array columns, once read
    serial: int = field(default_factory=itertools.count(1).__next__)


Record = DatasetState | list[Any]
Loader = Callable[[Shard], list[list[Any]]]
ColumnsLoader = Callable[[list[Shard]], None]


class DatasetTable(MutableMapping[str, Record]):
    """Dataset name → record, in store order, over a version's shards."""

    def __init__(
        self, shards: list[Shard], loader: Loader, where: str = "", columns_loader: ColumnsLoader | None = None
    ) -> None:
        self.shards = shards
        self.where = where  # "manifest FILE", for messages
        self._load = loader  # decodes and checks a shard's records
        self._load_columns = columns_loader  # reads the array columns of shards
        self._dense: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # array -> (ids, schemas) by global row
        self._by_serial = {s.serial: s for s in shards}
        self._place: dict[str, int] | None = None  # name -> serial << ROW_BITS | row, built when first needed
        self._states: dict[str, DatasetState] = {}  # datasets of the shards made states (read or changed)
        self._deleted: set[str] = set()  # datasets of the shards deleted by this handle
        self._added: dict[str, Record] = {}  # datasets created by this handle, in order
        self._touched: set[int] = set()  # serials of shards with a state or a deletion
        self._rows = sum(len(s.names) for s in shards)

    # ------------------------------------------------------------------ lookups

    def _places(self) -> dict[str, int]:
        place = self._place
        if place is None:
            place = {}
            for s in self.shards:
                base = s.serial << ROW_BITS
                place.update(zip(s.names, range(base, base + len(s.names)), strict=True))
            if len(place) != self._rows:
                raise CorruptionError(f"{self.where}: a dataset name is listed twice")
            self._place = place
        return place

    def _base_record(self, name: str) -> tuple[Shard, int] | None:
        code = self._places().get(name)
        if code is None:
            return None
        return self._by_serial[code >> ROW_BITS], code & ((1 << ROW_BITS) - 1)

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
        state = self._states.get(name)
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
        return name in self._places()

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
        """Every dataset name, in store order (one list, built in bulk)."""
        if self._deleted:
            return list(self)
        out = list(itertools.chain.from_iterable(s.names for s in self.shards))
        out.extend(self._added)
        return out

    def attribute_values(
        self, names: list[str], values_of: Callable[[Record], dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """``values_of`` the record of each dataset of ``names`` that exists, read a shard
        at a time: the records of a shard decoded for this alone are dropped again once its
        datasets are read, so reading a few attributes of every dataset of a large store
        holds one shard's records at a time."""
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
        for s in self.shards:
            recs = self.records_of(s)
            touched = s.serial in self._touched
            for name, rec in zip(s.names, recs, strict=True):
                if not touched:
                    yield name, rec
                elif name not in deleted:
                    yield name, states.get(name, rec)
        yield from list(self._added.items())

    # ------------------------------------------------------------------ columns

    def array_locations(self, names: list[Any], array: str) -> tuple[list[int], np.ndarray, np.ndarray, list[int]]:
        """Where ``array`` is in each of ``names`` that is a stored dataset this handle has
        not touched, read from the shards' columns without decoding any record: (positions
        in ``names``, array ids (0: the dataset has no such array), schema positions). Then
        the positions of the other names (new, read or changed, deleted, unknown), whose
        records or states tell."""
        place = self._places()
        touched = bool(self._states or self._added or self._deleted)
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
            return pos, np.zeros(0, np.uint64), np.zeros(0, np.int64), other
        ids, schemas = self._dense_column(array)
        at = np.array(codes, dtype=np.int64)
        rows = self._serial_base()[at >> ROW_BITS] + (at & ((1 << ROW_BITS) - 1))
        return pos, ids[rows], schemas[rows], other

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
            missing = [s for s in self.shards if s.columns is None]
            if missing:
                if self._load_columns is None:
                    raise AssertionError("a table with stored shards reads their columns")
                self._load_columns(missing)
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

    # ------------------------------------------------------------------ changes

    def __setitem__(self, name: str, rec: Record) -> None:
        if name in self._added or name in self._deleted:
            self._added[name] = rec
            return
        hit = self._base_record(name)
        if hit is None:
            self._added[name] = rec
            return
        assert isinstance(rec, DatasetState)
        self._states[name] = rec
        self._touched.add(hit[0].serial)

    def __delitem__(self, name: str) -> None:
        if name in self._added:
            del self._added[name]
            return
        hit = self._base_record(name) if name not in self._deleted else None
        if hit is None:
            raise KeyError(name)
        self._deleted.add(name)
        self._states.pop(name, None)
        self._touched.add(hit[0].serial)

    # ------------------------------------------------------------------ commits

    def plan(self, encode: Callable[[DatasetState], list[Any]], fill_last: bool = True) -> list[Shard]:
        """The shards of the next version: untouched ones as they are, the others (and any
        new datasets) as shards to write, with ``key`` None and their records filled in.

        ``encode`` gives a state's record; a shard whose states all encode to what it
        holds (datasets only read) is kept. New datasets fill the last shard up first,
        unless ``fill_last`` is false (they then start a shard of their own)."""
        out: list[Shard] = []
        pending_names: list[str] = []
        pending_recs: list[list[Any]] = []
        shards = self.shards
        last = len(shards) - 1
        for i, s in enumerate(shards):
            rewrite = s.key is None or (s.serial in self._touched and self._changed(s, encode))
            if not rewrite and fill_last and i == last and self._added and len(s.names) < SHARD_ROWS:
                rewrite = True  # new datasets fill the last shard up first
            if not rewrite:
                _emit(out, pending_names, pending_recs)
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
        _emit(out, pending_names, pending_recs)
        return out

    def _changed(self, shard: Shard, encode: Callable[[DatasetState], list[Any]]) -> bool:
        recs = self.records_of(shard)
        for name, rec in zip(shard.names, recs, strict=True):
            if name in self._deleted:
                return True
            state = self._states.get(name)
            if state is None or (state.arrays_untouched and state._raw_attrs is not None):
                continue
            if orjson.dumps(encode(state)) != orjson.dumps(rec):
                return True
        return False

    def install(self, shards: list[Shard]) -> None:
        """After a commit: ``shards`` (from ``plan``, now written) are the version's. States
        stay the records of their datasets."""
        states = self._states
        states.update((n, r) for n, r in self._added.items() if isinstance(r, DatasetState))
        place = self._place
        if place is not None:
            for name in self._deleted:
                del place[name]
            for s in shards:
                if s.serial not in self._by_serial:
                    base = s.serial << ROW_BITS
                    place.update(zip(s.names, range(base, base + len(s.names)), strict=True))
        self.shards = shards
        self._by_serial = {s.serial: s for s in shards}
        self._rows = sum(len(s.names) for s in shards)
        self._dense = {}
        self._deleted = set()
        self._added = {}
        self._touched = {self._places()[n] >> ROW_BITS for n in states} if states else set()


    def pending(self) -> bool:
        """Whether the handle added or deleted datasets since the table was installed."""
        return bool(self._added or self._deleted)

    def forget(self, loader: Loader, columns_loader: ColumnsLoader) -> None:
        """Drop every decoded state and record (none of them changed since ``install``):
        records are decoded again from the shard files, by ``loader`` (columns by
        ``columns_loader``), when next used."""
        self._load = loader
        self._load_columns = columns_loader
        self._states = {}
        self._touched = set()
        for s in self.shards:
            if s.key is not None:
                s.records = None


def _emit(out: list[Shard], names: list[str], recs: list[list[Any]]) -> None:
    """Cut the rows waiting to be written into shards of at most ``SHARD_ROWS``."""
    for start in range(0, len(names), SHARD_ROWS):
        out.append(Shard(None, names[start : start + SHARD_ROWS], records=recs[start : start + SHARD_ROWS]))
    names.clear()
    recs.clear()
