"""Worker side of the multi-process put_if_absent race (runs in spawned processes)."""

from __future__ import annotations

from typing import Any

_barrier: Any = None


def init(barrier: Any) -> None:
    """Pool initializer: keep the shared barrier and load the storage code up front."""
    global _barrier
    _barrier = barrier
    import atlas.storage  # noqa: F401


def race(storage: Any, worker: int, rounds: int) -> list[bool]:
    """For each round, wait for the other workers, then try to create ``race/<round>``."""
    outcomes = []
    for rnd in range(rounds):
        payload = f"worker {worker} round {rnd}".encode()
        _barrier.wait(timeout=60)
        try:
            outcomes.append(storage.put_if_absent(f"race/{rnd:03d}", payload))
        except BaseException:
            _barrier.abort()  # do not leave the other workers waiting
            raise
    return outcomes
