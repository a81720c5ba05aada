"""What the commands need around a store: open it, name a missing dataset, measure its files."""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING

from .errors import CommandError

if TYPE_CHECKING:
    from ..api import Atlas


def open_store(path: str) -> Atlas:
    """The store at ``path`` (a directory or URL)."""
    from ..api import Atlas

    return Atlas.open(path)


def missing_dataset(store: Atlas, name: str) -> CommandError:
    """The error for a dataset ``store`` does not hold, suggesting close names."""
    close = difflib.get_close_matches(name, store.list_datasets(), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return CommandError(f"no dataset named {name!r} in {store.location}{hint}")


def disk_usage(location: str) -> tuple[int, int] | None:
    """(bytes, files) under a local store directory, or None for remote stores."""
    if "://" in location or not os.path.isdir(location):
        return None
    total = files = 0
    for dirpath, _, filenames in os.walk(location):
        for fn in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_size
                files += 1
            except OSError:
                pass
    return total, files
