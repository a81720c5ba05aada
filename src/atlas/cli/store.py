"""What the commands need around a store: open it, name a missing dataset, measure its files."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from .errors import CommandError

if TYPE_CHECKING:
    from ..api import Atlas
    from ..storage.usage import DiskUsage


def open_store(path: str) -> Atlas:
    """The store at ``path`` (a directory or URL)."""
    from ..api import Atlas

    return Atlas.open(path)


def missing_dataset(store: Atlas, name: str) -> CommandError:
    """The error for a dataset ``store`` does not hold, suggesting close names."""
    close = difflib.get_close_matches(name, store.list_datasets(), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return CommandError(f"no dataset named {name!r} in {store.location}{hint}")


def dataset_named(store: Atlas, name: str) -> str:
    """The dataset ``name`` stands for (``FILE/GROUP/PATH``: that group's of that file, see
    :mod:`atlas.integrations.groups`); a one-line error when there is none."""
    from ..integrations.groups import resolve

    try:
        found = resolve(store, name)
    except KeyError as e:  # only a FILE/GROUP/PATH name can fail to resolve
        raise CommandError(f"{e.args[0]}; `atlas ls` lists the datasets") from None
    if not store.dataset_exists(found):
        raise missing_dataset(store, name)
    return found


def disk_usage(store: Atlas) -> DiskUsage | None:
    """What ``du`` says of a store's files (object sizes on object stores); None when the
    store cannot list its files (plain HTTP)."""
    from ..storage.usage import disk_usage as usage

    try:
        return usage(store.storage)
    except (OSError, NotImplementedError):
        return None
