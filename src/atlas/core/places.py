"""Where each stored dataset of a version is, found by name: its shard's serial number and
its row there, as one int (``serial << ROW_BITS | row``).

A handle that reads a few datasets, or adds some, searches only the name lists of the
shards whose range of names holds a name; one that looks up many builds a dict of every
name once. Lookups of names no shard holds (new datasets) bisect the shards' ranges once
a few have checked them all, when no two ranges overlap.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from ..errors import CorruptionError
from .shards import Shard, disjoint_ranges

ROW_BITS = 24  # a dataset's place: its shard's serial number, then its row (shards hold < 2**24)
ROW_MASK = (1 << ROW_BITS) - 1
# Lookups search the name lists until they have compared this many times as many names as
# the store holds: one dict of every name is then built (it costs about as much).
SEARCH_BUDGET = 20
# Once lookups have checked the name ranges of this many times as many shards as the store
# has (a few lookups of names no shard holds), the ranges are sorted so that one bisection
# finds the only shard that may hold a name (when no two ranges overlap).
RANGE_CHECKS_BEFORE_SORTING = 8


def _add_names(place: dict[str, int], shard: Shard) -> None:
    """Add the place of each dataset of ``shard`` to ``place``."""
    base = shard.serial << ROW_BITS
    place.update(zip(shard.names, range(base, base + len(shard.names)), strict=True))


class Places:
    """The places of the datasets of ``shards`` (``where`` names them in errors)."""

    def __init__(self, shards: list[Shard], where: str) -> None:
        self.shards = shards
        self.where = where
        self.rows = sum(len(s.names) for s in shards)
        self.place: dict[str, int] | None = None  # name -> place, built when first needed
        self.searched = 0  # names compared by lookups that searched the name lists
        self.range_checks = 0  # shards whose range lookups checked, until the ranges are sorted
        self.ranges: tuple[list[str], list[Shard]] | None | bool = None  # False: they overlap

    def every(self) -> dict[str, int]:
        """The place of every dataset (CorruptionError when a name is listed twice)."""
        place = self.place
        if place is None:
            place = {}
            for s in self.shards:
                _add_names(place, s)
            if len(place) != self.rows:
                raise CorruptionError(f"{self.where}: a dataset name is listed twice")
            self.place = place
        return place

    def of(self, name: str) -> int | None:
        """Where a stored dataset is, or None. Searches the name lists of the shards whose
        range holds ``name`` (C-level scans: names added in order fall in one shard's range,
        or in none) until ``SEARCH_BUDGET`` is spent; then the dict of every name serves
        (built in about a third of a second at a million)."""
        place = self.place
        if place is not None:
            return place.get(name)
        if self.searched > SEARCH_BUDGET * self.rows:
            return self.every().get(name)
        for s in self._holders(name):
            self.searched += len(s.names)
            try:
                return (s.serial << ROW_BITS) | s.names.index(name)
            except ValueError:
                continue
        return None

    def _holders(self, name: str) -> Iterator[Shard]:
        """The shards whose range of names holds ``name``: by bisection once the ranges are
        known not to overlap, else by checking each shard's range."""
        ranges = self.ranges
        if ranges is None and self.range_checks > RANGE_CHECKS_BEFORE_SORTING * len(self.shards):
            ranges = self.ranges = disjoint_ranges(self.shards) or False
        if ranges:
            assert not isinstance(ranges, bool)
            lows, ordered = ranges
            i = bisect.bisect_right(lows, name) - 1
            if i >= 0 and ordered[i].may_hold(name):
                yield ordered[i]
            return
        for checked, s in enumerate(self.shards, 1):
            if s.may_hold(name):
                self.range_checks += checked
                yield s
        self.range_checks += len(self.shards)

    def share(self, older: Places) -> None:
        """Take the place of each dataset from ``older``, the places of an older version of
        the same store whose shard objects these partly are (see ``loading.load``): its map,
        less the names of the shards not held here, plus those of the shards only held here.
        Costs a copy of the map rather than a pass over every name of every shard."""
        old = older.place
        if old is None or self.place is not None:
            return
        mine = {s.serial for s in self.shards}
        theirs = {s.serial for s in older.shards}
        place = dict(old)
        for s in older.shards:
            if s.serial not in mine:
                for n in s.names:
                    place.pop(n, None)
        for s in self.shards:
            if s.serial not in theirs:
                _add_names(place, s)
        if len(place) == self.rows:  # else a name is listed twice: the lazy map says so
            self.place = place

    def moved(self, shards: list[Shard], deleted: set[str]) -> Places:
        """The places after a commit that deleted ``deleted`` and made ``shards`` the
        version's: the map, when there is one, is updated rather than built again."""
        out = Places(shards, self.where)
        place = self.place
        if place is not None:
            known = {s.serial for s in self.shards}
            for name in deleted:
                del place[name]
            for s in shards:
                if s.serial not in known:
                    _add_names(place, s)
            out.place = place
        return out
