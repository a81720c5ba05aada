"""A version's shards as a handle holds them (their names, and what was read of their files),
and what a handle's table holds for a dataset: its stored record (``[name, attributes,
array entries]``, as its shard lists it) until a ``DatasetState`` is made of it, the one form
of a dataset in memory that reads and writes use. The few readers that take datasets in
bulk without making states (catalogue, maintenance, change lists) go through the
functions here, which read either."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..format.fields import Field, decode_field, fields_of
from ..format.shard import Columns, ShardHeader
from .state import DatasetState

__all__ = [
    "ColumnsLoader", "FieldsLoader", "Loader", "Record", "Shard", "StoredRows", "array_entries", "attribute_keys",
    "current_record", "cut_into_shards", "fields_from_records", "split", "stored_attrs", "stored_entries",
]


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
    fields: dict[str, Field | None] = field(default_factory=dict)  # catalogue fields read (None: not held)
    serial: int = field(default_factory=itertools.count(1).__next__)
    bounds: tuple[str, str] | None = None  # its least and greatest name, once needed

    def may_hold(self, name: str) -> bool:
        """Whether ``name`` lies in the range of this shard's names."""
        b = self.bounds
        if b is None:
            names = self.names
            b = self.bounds = (min(names), max(names)) if names else ("\uffff", "")
        return b[0] <= name <= b[1]


def disjoint_ranges(shards: list[Shard]) -> tuple[list[str], list[Shard]] | None:
    """The shards sorted by their least name, with those least names, when no two shards'
    ranges of names overlap (datasets added in name order, as collections usually are); then
    the one shard that may hold a name is found by bisection. None when ranges overlap."""
    held = [s for s in shards if s.names]
    for s in held:
        s.may_hold("")  # computes the bounds
    ordered = sorted(held, key=lambda s: cast(tuple[str, str], s.bounds)[0])
    bounds = [cast(tuple[str, str], s.bounds) for s in ordered]
    if any(bounds[i][1] >= bounds[i + 1][0] for i in range(len(bounds) - 1)):
        return None
    return [b[0] for b in bounds], ordered


Record = DatasetState | list[Any]


def stored_entries(rec: Record) -> Any | None:
    """The array entries of a dataset as its record lists them: a raw record's, or those of a
    state whose arrays are as read (None once they are built: ``rec.arrays`` then)."""
    return rec[2] if type(rec) is list else cast(DatasetState, rec).stored_entries


def stored_attrs(rec: Record) -> Any | None:
    """The flat attribute list of a dataset as its record holds it: a raw record's, or that
    of a state whose attributes are as read (None once decoded: ``rec.attrs`` then)."""
    return rec[1] if type(rec) is list else cast(DatasetState, rec).stored_attrs


def array_entries(table: Mapping[str, Record]) -> Iterator[tuple[str, int, int]]:
    """(array name, id, schema position) of every array of every live dataset of a table,
    from its record or its state."""
    for rec in table.values():
        entries = stored_entries(rec)
        if entries is None:
            for arr in cast(DatasetState, rec).arrays.values():
                yield arr.name, arr.aid, arr.schema.pos
        else:
            for e in entries:
                yield e[0], e[1], e[2]


def split(table: Mapping[str, Record]) -> tuple[list[str], list[Record], list[list[Any]], np.ndarray, list[DatasetState], np.ndarray]:
    """The live datasets of a table in store order, as the catalogue reads them: (names,
    what the table holds of each, the stored records among those, their rows, the states,
    their rows). A dataset the handle made a state of is read from the state."""
    names = list(table)
    held: list[Record] = list(table.values())
    rows = np.arange(len(held), dtype=np.intp)
    is_raw = [type(r) is list for r in held]
    if all(is_raw):
        return names, held, cast("list[list[Any]]", held), rows, [], rows[:0]
    raw_mask = np.array(is_raw, dtype=bool)
    states = [cast(DatasetState, r) for r, raw in zip(held, is_raw, strict=True) if not raw]
    stored = [cast("list[Any]", r) for r, raw in zip(held, is_raw, strict=True) if raw]
    return names, held, stored, rows[raw_mask], states, rows[~raw_mask]


def attribute_keys(table: Mapping[str, Record], name: str) -> list[str]:
    """The attribute keys of one live dataset, in order (from its record or its state)."""
    rec = table[name]
    flat = stored_attrs(rec)
    return list(flat[0::3]) if flat is not None else list(cast(DatasetState, rec).attrs)


def current_record(table: Mapping[str, Record], name: str, encode: Callable[[DatasetState], list[Any]]) -> list[Any]:
    """The record of one live dataset as it would be stored now: its stored record, or its
    state's (``encode``)."""
    rec = table[name]
    return rec if type(rec) is list else encode(cast(DatasetState, rec))


def cut_into_shards(out: list[Shard], names: list[str], recs: list[list[Any]], rows: int) -> None:
    """Append to ``out`` the rows waiting to be written (``names`` and their records, then
    emptied), as new shards of at most ``rows``."""
    for start in range(0, len(names), rows):
        out.append(Shard(None, names[start : start + rows], records=recs[start : start + rows]))
    names.clear()
    recs.clear()


def fields_from_records(shards: list[Shard], names: list[str]) -> None:
    """Make the catalogue fields ``names`` of shards from their records (shards a handle
    wrote and holds, whose files it has not read)."""
    for s in shards:
        todo = [n for n in names if n not in s.fields]
        if todo:
            assert s.records is not None
            encoded = fields_of([r[1:] for r in s.records])
            for n in todo:
                raw = encoded.get(n)
                s.fields[n] = None if raw is None else decode_field(raw, len(s.names), f"shard {s.key}")


Loader = Callable[[Shard], list[list[Any]]]
ColumnsLoader = Callable[[list[Shard]], None]
FieldsLoader = Callable[[list[Shard], list[str]], None]


@dataclass
class StoredRows:
    """The stored datasets of a table for a catalogue: ``current`` gives the row each stored
    dataset (shards in order, ``bases`` their first rows) has among the live datasets, -1
    when deleted or changed by this handle. ``changed`` (at ``changed_rows``) and ``added``
    (after the ``live_stored`` stored rows) are read from their states. ``same``: the live
    datasets are exactly the stored ones."""

    shards: list[Shard]
    bases: np.ndarray
    current: np.ndarray
    changed: list[str]
    changed_rows: list[int]
    added: list[str]
    live_stored: int
    same: bool
