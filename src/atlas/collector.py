"""Pausing the cyclic garbage collector while work makes many containers that are no
garbage and hold no cycles (decoding and installing a manifest, planning a read across
datasets, building the catalogue's columns): collections meanwhile would only rescan them.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_GC_LOCK = threading.Lock()
_gc_pauses = 0  # paused_gc blocks running now, in every thread
_gc_was_enabled = True  # whether the collector ran before the first of them


def _gc_after_fork() -> None:
    """In a forked child no other thread runs: no pause is running, and the lock is free."""
    global _GC_LOCK, _gc_pauses
    if _gc_pauses and _gc_was_enabled:
        gc.enable()
    _GC_LOCK, _gc_pauses = threading.Lock(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_gc_after_fork)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many containers are made that are no
    garbage and hold no cycles: a manifest decoded and installed, a read across datasets
    planned, the catalogue's columns built.

    Such work creates ~10^5 or more lists and strings; every few hundred of them would
    trigger a collection that rescans all the others (most of the time of a large open,
    a tenth of a scan at a million datasets). Reference counting still frees everything
    as usual. Pauses in several threads at once are counted: the collector runs again,
    if it ran before the first, when the last one ends (while reads overlap without end,
    it stays paused).
    """
    global _gc_pauses, _gc_was_enabled
    counted = False
    try:
        with _GC_LOCK:
            if _gc_pauses == 0:
                _gc_was_enabled = gc.isenabled()
                gc.disable()
            _gc_pauses += 1
            counted = True
        yield
    finally:
        if counted:
            with _GC_LOCK:
                if _gc_pauses:  # else reset by a fork while this pause ran
                    _gc_pauses -= 1
                    if _gc_pauses == 0 and _gc_was_enabled:
                        gc.enable()
