"""A version's shards as a handle holds them (their names, and what was read of their files)
and a dataset's record: raw, as a shard lists it, or the ``DatasetState`` made of it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..format.fields import Field
from ..format.shard import Columns, ShardHeader
from .state import DatasetState

__all__ = [
    "ColumnsLoader", "FieldsLoader", "Loader", "Record", "Shard", "StoredRows", "stored_attrs",
    "stored_entries",
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


Record = DatasetState | list[Any]


def stored_entries(rec: Record) -> Any | None:
    """The array entries of a dataset as its record lists them: a raw record's, or those of a
    state whose arrays are as read (None once they are built: ``rec.arrays`` then)."""
    return rec[2] if type(rec) is list else cast(DatasetState, rec).stored_entries


def stored_attrs(rec: Record) -> Any | None:
    """The flat attribute list of a dataset as its record holds it: a raw record's, or that
    of a state whose attributes are as read (None once decoded: ``rec.attrs`` then)."""
    return rec[1] if type(rec) is list else cast(DatasetState, rec).stored_attrs
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
