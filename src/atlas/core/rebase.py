"""``flush(rebase=True)``: a handle's changes re-applied on the newest version of the store
and committed there, again while other writers keep winning (Icechunk's rebase with its
basic conflict solver). The changes themselves, applying them and their conflicts are
:mod:`atlas.core.changes`'.
"""

from __future__ import annotations

import functools
import itertools
import random
import time
from typing import TYPE_CHECKING, Any

from ..errors import CommitOutcomeUnknownError, ConflictError
from . import commit, loading
from .changes import Changes, changes_of, conflict_error, conflicts, install
from .state import DatasetState, UnsettledCommit

if TYPE_CHECKING:
    from .model import StoreModel
    from .table import DatasetTable

__all__ = ["flush_rebasing"]

#: Attempts of a rebasing flush before it gives up (each one lost to another writer's commit).
MAX_ATTEMPTS = 200
#: The pause after the n-th lost attempt (n from 0) is random, up to the time that attempt
#: took times 2**min(n, BACKOFF_DOUBLINGS), at most BACKOFF_CAP seconds: writers that lost
#: spread out over a few commits' time, on fast disks and slow object stores alike.
BACKOFF_DOUBLINGS = 3
BACKOFF_CAP = 1.0


def flush_rebasing(store: StoreModel) -> None:
    """``flush(rebase=True)``: commit as usual while the store has not moved on, else re-apply
    the handle's changes on the newest version and commit them there, again while other
    writers keep winning. ``ConflictError`` on a true conflict: nothing committed, and the
    handle keeps its changes on its version."""
    if store._unsettled is not None:
        try:
            if commit.settle(store):
                return
        except ConflictError:
            pass  # another writer's commit holds the number: rebase onto it
    if store._read_only or not store._changed:
        return
    if not store._storage.exists(store._manifest_key(store._version + 1)) and commit.try_commit(store):
        return
    if store._unpublished:  # the changes it checkpointed are no longer told apart from its version
        raise ConflictError(
            f"the store at {store._storage.location} moved on to version {store._version + 1} or later "
            f"since this handle read version {store._version}, and a handle that wrote checkpoints is "
            "not rebased; nothing was committed. Reopen the store and write the changes again."
        )
    rebase(store)


def rebase(store: StoreModel) -> None:
    """Re-apply the handle's changes on the newest version and commit them (see :func:`flush_rebasing`)."""
    changes = changes_of(store)
    seen: dict[int, list[tuple[int, int]] | None] = {}
    known = store._version  # a version known to exist; newer ones are probed for
    table = store._datasets  # the newest table read: it lends the shards it shares with the next
    for attempt in itertools.count():
        started = time.perf_counter()
        target = newest(store, known, table)
        known = target._version + 1  # if this attempt loses, it loses to that version
        table = target._datasets
        if not changes:  # nothing left to commit (changes that came to nothing)
            adopt(store, target)
            return
        found = conflicts(target, changes, seen)
        if found:
            raise conflict_error(
                f"the store at {store._storage.location} moved on to version {target._version} since this handle "
                f"read version {store._version}, and what landed conflicts with this handle's changes",
                found,
                ("this handle", "another writer"),
                f"Nothing was committed; the handle still holds its changes on version {store._version} "
                "(reopen the store and apply them again)",
            )
        install(target, changes)
        try:
            landed = commit.try_commit(target)
        except CommitOutcomeUnknownError:
            u = target._unsettled
            assert u is not None
            target._unsettled = None  # the handle settles it, and takes the target's state if it landed
            store._unsettled = UnsettledCommit(
                u.version, u.key, u.token,
                functools.partial(_landed, store, target, changes, u.install),
                functools.partial(_lost, store, u.version),
            )
            raise
        if landed:
            adopt(store, target, changes)
            return
        if attempt + 1 >= MAX_ATTEMPTS:
            raise ConflictError(
                f"other writers committed to {store._storage.location} before each of this handle's "
                f"{MAX_ATTEMPTS} attempts to commit its changes; nothing was committed (flush again to retry)"
            )
        took = time.perf_counter() - started
        time.sleep(random.uniform(0, min(BACKOFF_CAP, took * 2 ** min(attempt, BACKOFF_DOUBLINGS))))


def newest(store: StoreModel, known: int, table: DatasetTable) -> StoreModel:
    """A model of the store's newest version, at or after ``known`` (a version that exists),
    without changes, of the handle's own class. ``table``, of an older version, lends the
    shards both name: a version differs from the one before it by a few shards."""
    version = loading.newest_from(store, known)
    model = type(store)(store._storage, store._config(), -1, False)  # type: ignore[call-arg]
    loading.load(model, version, table)
    return model


def _landed(store: StoreModel, target: StoreModel, changes: Changes, install_target: Any) -> None:
    install_target()
    adopt(store, target, changes)


def _lost(store: StoreModel, version: int) -> None:
    raise commit.conflict_error(store, version)


def adopt(store: StoreModel, target: StoreModel, changes: Changes | None = None) -> None:
    """Make ``target``'s state (a newer version) the handle's, in one swap. The handle's
    states of the datasets ``changes`` created or changed take the content the version
    holds, so that views on them go on working; views on others name the old version (and
    refuse changes, as after a compaction brought the handle forward)."""
    mine = _held_states(store, set() if changes is None else {d.name for d in changes.datasets})
    with store._lock:
        loading.take_state(store, target)
    table = store._datasets
    for ds in table.held_states():  # states made while the version was installed
        if ds._build is not None:
            ds._build = store._build_shared
    for ds in mine:
        if ds.name not in table:
            ds.deleted = True
            continue
        now = store._materialize(ds.name)
        assert now is not None
        if now is not ds:
            ds.become(now)
            table[ds.name] = ds


def _held_states(store: StoreModel, names: set[str]) -> list[DatasetState]:
    """The states the handle holds of the datasets ``names`` (views may hold them too)."""
    _, added, states = store._datasets.edits()
    held = [ds for n, ds in states.items() if n in names and not ds.deleted]
    held.extend(ds for n, ds in added.items() if n in names and isinstance(ds, DatasetState) and not ds.deleted)
    return held
