"""``atlas.collector``: pausing the cyclic garbage collector, counted across threads and
reset in a forked child."""

from __future__ import annotations

from atlas import collector


def test_pauses_of_the_collector_that_overlap_end_when_the_last_one_ends() -> None:
    """Reads in several threads pause the collector at once and end in any order: it runs
    again when the last pause ends, and only if it ran before the first."""
    import gc

    was = gc.isenabled()
    try:
        gc.enable()
        first, second = collector.paused_gc(), collector.paused_gc()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # the first to start ends first
        assert not gc.isenabled()  # the second still runs
        second.__exit__(None, None, None)
        assert gc.isenabled()
        gc.disable()
        with collector.paused_gc():
            pass
        assert not gc.isenabled()  # left as found
    finally:
        (gc.enable if was else gc.disable)()


def test_a_fork_child_starts_with_no_pause_of_the_collector_running() -> None:
    """A child forked while other threads paused the collector has none of those threads:
    its collector runs, and its own pauses count from zero."""
    import gc

    was = gc.isenabled()
    try:
        gc.enable()
        pause = collector.paused_gc()
        pause.__enter__()
        assert not gc.isenabled()
        collector._gc_after_fork()  # what the child runs after a fork
        assert gc.isenabled() and collector._gc_pauses == 0
        pause.__exit__(None, None, None)  # the forking thread's own pause ends in the child
        assert gc.isenabled() and collector._gc_pauses == 0
        with collector.paused_gc():
            assert not gc.isenabled()
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
