"""Moving blocks: coalesced ranged reads, parallel decode, bounded cache, parallel writes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import CorruptionError
from ..format.codec import CODEC_NAMES, checksum, decode_block, plausible_size
from ..format.segment import pool

# Decode in worker threads only when there is enough work to pay for the hand-off.
PARALLEL_MIN_BLOCKS = 3


class BlockCache:
    """LRU cache of decompressed blocks, bounded in bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._d: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> np.ndarray | None:
        v = self._d.get(key)  # atomic; no lock on the hot path
        if v is not None:
            try:
                self._d.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still a valid block
                pass
        return v

    def put(self, key: tuple[str, int], block: np.ndarray) -> None:
        if block.nbytes > self.budget // 4:
            return
        block.flags.writeable = False  # shared by every reader: never handed out writable
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self.used -= old.nbytes
            self._d[key] = block
            self.used += block.nbytes
            while self.used > self.budget and self._d:
                _, b = self._d.popitem(last=False)
                self.used -= b.nbytes

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self.used = 0

    def resize(self, budget: int) -> None:
        """Change the budget, dropping the least recently used blocks beyond it."""
        with self._lock:
            self.budget = budget
            while self.used > budget and self._d:
                _, b = self._d.popitem(last=False)
                self.used -= b.nbytes


BlockKey = tuple[str, int]  # (segment key, offset)


def fetch_blocks(
    get_many_ranges: Callable[[Sequence[tuple[str, Sequence[int], Sequence[int]]]], list[list[Any]]],
    cache: BlockCache,
    wanted: dict[BlockKey, tuple[int, int, int, int, int]],
    describe: Callable[[BlockKey], str],
    use_cache: bool = True,
) -> dict[BlockKey, np.ndarray]:
    """Return decoded blocks for ``wanted`` = {(seg key, offset): (length, raw, crc, codec, filter)}.

    Blocks already cached are reused; the rest are read with one coalesced ranged request
    per segment file (all files at once), checksummed and decoded in parallel.
    """
    out: dict[BlockKey, np.ndarray] = {}
    missing: list[BlockKey] = []
    for k in wanted:
        b = cache.get(k) if use_cache else None
        if b is None:
            missing.append(k)
        else:
            out[k] = b
    if not missing:
        return out
    by_seg: dict[str, list[BlockKey]] = {}
    for k in missing:
        by_seg.setdefault(k[0], []).append(k)
    requests = []
    order: list[list[BlockKey]] = []
    for seg, keys in by_seg.items():
        keys.sort(key=lambda k: k[1])
        requests.append((seg, [k[1] for k in keys], [wanted[k][0] for k in keys]))
        order.append(keys)
    results = get_many_ranges(requests)
    jobs: list[tuple[BlockKey, Any]] = []
    for keys, datas in zip(order, results, strict=True):
        for k, d in zip(keys, datas, strict=True):
            jobs.append((k, d))

    def decode(job: tuple[BlockKey, Any]) -> np.ndarray:
        k, data = job
        length, raw, crc, codec, filter_id = wanted[k]
        if len(data) != length:
            raise CorruptionError(f"{describe(k)}: block is truncated ({len(data)} of {length} bytes)")
        if checksum(data) != crc:
            raise CorruptionError(f"{describe(k)}: block fails its checksum")
        if not plausible_size(CODEC_NAMES[codec], length, raw, filter_id):
            raise CorruptionError(f"{describe(k)}: block claims {raw} bytes from {length} stored bytes")
        try:
            return decode_block(data, CODEC_NAMES[codec], filter_id, raw)
        except Exception as e:
            raise CorruptionError(f"{describe(k)}: block cannot be decoded: {e}") from None

    if len(jobs) >= PARALLEL_MIN_BLOCKS:
        decoded = list(pool().map(decode, jobs))
    else:
        decoded = [decode(j) for j in jobs]
    for (k, _), b in zip(jobs, decoded, strict=True):
        out[k] = b
        if use_cache:
            cache.put(k, b)
    return out


_IO_POOL: ThreadPoolExecutor | None = None


def io_pool() -> ThreadPoolExecutor:
    """Threads for storage writes, so their latencies (fsync, network) overlap."""
    global _IO_POOL
    if _IO_POOL is None:
        _IO_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="atlas-io")
    return _IO_POOL


class ParallelPuts:
    """Writes new, not-yet-referenced files concurrently; :meth:`wait` before publishing them."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self._futures: list[Future[None]] = []

    def put(self, key: str, data: bytes) -> None:
        self._futures.append(io_pool().submit(self._storage.put, key, data))

    def wait(self) -> None:
        """Block until every write finished; re-raise the first failure."""
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for f in futures:
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001 - wait for all, then report the first
                if error is None:
                    error = e
        if error is not None:
            raise error
