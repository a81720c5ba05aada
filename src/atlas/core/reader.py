"""Moving blocks: coalesced ranged reads, parallel decode, bounded cache, parallel writes."""

from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np

from ..dtypes import DType
from ..errors import CorruptionError
from ..executors import cpu_pool
from ..format.codec import CODEC_NAMES, checksum, decode_block, plausible_size

# Decode in worker threads only when there is enough work to pay for the hand-off.
PARALLEL_MIN_BLOCKS = 3

_P = ParamSpec("_P")
_R = TypeVar("_R")


def retry_if_swapped(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a read again when the handle's committed state was swapped while it ran.

    A compaction on the same handle swaps in a new version and then deletes the old one's
    files; a read that started on the old state may then find a file gone or rows that
    name another segment list. Such a read is done again on the new state, so it sees
    one version or the other, never a false ``CorruptionError`` or ``IndexError``.
    """

    @functools.wraps(method)
    def read(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        owner = args[0]
        atlas: Any = getattr(owner, "_atlas", owner)
        while True:
            gen = atlas._state_gen
            try:
                return method(*args, **kwargs)
            except (CorruptionError, LookupError):
                if atlas._state_gen == gen:
                    raise

    return read


def check_chunk_size(dtype: DType, ncells: int, nbytes: int) -> None:
    """ValueError unless an index row's ``nbytes`` is what a chunk of ``ncells`` cells holds
    (a string chunk: at least its 4-byte lengths). Checked before the chunk's block is
    fetched: a block larger than a shared one holds just that chunk (``nbytes ==
    raw_size``), so no row can make a read decode more than its array's shape explains."""
    if dtype.is_string:
        if nbytes >= 4 * ncells:
            return
    elif nbytes == ncells * dtype.numpy.itemsize:
        return
    raise ValueError(f"a chunk of {ncells} cells claims {nbytes} bytes")


def bad_chunk_sizes(nbytes: np.ndarray, ncells: np.ndarray, itemsize: np.ndarray) -> np.ndarray:
    """Positions where :func:`check_chunk_size` fails, for many rows at once (``itemsize``
    0 for string chunks)."""
    nb = nbytes.astype(np.uint64)
    cells = np.minimum(ncells.astype(np.uint64), np.uint64(1 << 40))  # no product wraps
    size = itemsize.astype(np.uint64)
    strings = size == 0
    return np.flatnonzero(np.where(strings, nb < 4 * cells, nb != cells * size))


class BlockCache:
    """LRU cache of blocks, bounded in bytes: decoded blocks, and stored (still compressed)
    copies of blocks a scan read.

    A scan whose decoded blocks would make it hold much more than its result keeps the
    stored bytes instead, a fraction of the size: the next scan skips the I/O and only
    decodes. A single-array read that finds a stored copy decodes it and keeps the decoded
    block in its place. Eviction is least recently used across both kinds.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._d: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._s: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._used_at: dict[tuple[str, int], int] = {}  # last use, to compare the two kinds
        self._clock = itertools.count()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> np.ndarray | None:
        """The decoded block, or None."""
        v = self._d.get(key)  # atomic; no lock on the hot path
        if v is not None:
            try:
                self._d.move_to_end(key)
                self._used_at[key] = next(self._clock)
            except KeyError:  # evicted by another thread meanwhile: still a valid block
                pass
        return v

    def get_stored(self, key: tuple[str, int]) -> bytes | None:
        """The stored bytes of a block (checked against its checksum when kept), or None."""
        v = self._s.get(key)
        if v is not None:
            try:
                self._s.move_to_end(key)
                self._used_at[key] = next(self._clock)
            except KeyError:
                pass
        return v

    def put(self, key: tuple[str, int], block: np.ndarray) -> None:
        """Keep a decoded block (it replaces a stored copy of the same block)."""
        if block.nbytes > self.budget // 4:
            return
        block.flags.writeable = False  # shared by every reader: never handed out writable
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self.used -= old.nbytes
            stored = self._s.pop(key, None)
            if stored is not None:
                self.used -= len(stored)
            self._d[key] = block
            self._used_at[key] = next(self._clock)
            self.used += block.nbytes
            self._evict(self.budget)

    def put_stored(self, key: tuple[str, int], data: bytes) -> None:
        """Keep the stored bytes of a block that is not cached decoded."""
        if len(data) > self.budget // 4:
            return
        with self._lock:
            if key in self._d:
                return
            old = self._s.pop(key, None)
            if old is not None:
                self.used -= len(old)
            self._s[key] = data
            self._used_at[key] = next(self._clock)
            self.used += len(data)
            self._evict(self.budget)

    def _evict(self, budget: int) -> None:
        # the least recently used of the two kinds' oldest entries goes first
        used_at = self._used_at
        if len(used_at) > 2 * (len(self._d) + len(self._s)) + 1024:  # stamps of blocks a race evicted
            live = self._d.keys() | self._s.keys()
            for k in [k for k in used_at if k not in live]:
                del used_at[k]
        while self.used > budget and (self._d or self._s):
            kd = next(iter(self._d), None)
            ks = next(iter(self._s), None)
            if ks is not None and (kd is None or used_at.get(ks, -1) <= used_at.get(kd, -1)):
                self.used -= len(self._s.pop(ks))
                used_at.pop(ks, None)
            else:
                assert kd is not None
                self.used -= self._d.pop(kd).nbytes
                used_at.pop(kd, None)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._s.clear()
            self._used_at.clear()
            self.used = 0

    def resize(self, budget: int) -> None:
        """Change the budget, dropping the least recently used blocks beyond it."""
        with self._lock:
            self.budget = budget
            self._evict(budget)


BlockKey = tuple[str, int]  # (segment key, offset)


# How fetch_blocks uses the cache: keep decoded blocks ("decoded"), keep stored copies of
# the blocks it reads ("stored"), only use what is there ("read"), or bypass it ("off":
# checks and rewrites that must see the bytes on storage).
CacheMode = Literal["decoded", "stored", "read", "off"]


# Hot path: the blocks ``wanted`` are looked up in the cache, the others read with one
# coalesced request per segment file (``_read_blocks``) and all decoded together
# (``_decode_block``, on the CPU pool when there are enough of them).
def fetch_blocks(
    get_many_ranges: Callable[[Sequence[tuple[str, Sequence[int], Sequence[int]]]], list[list[Any]]],
    cache: BlockCache,
    wanted: dict[BlockKey, tuple[int, int, int, int, int]],
    describe: Callable[[BlockKey], str],
    mode: CacheMode = "decoded",
    into: dict[BlockKey, np.ndarray] | None = None,
    get_transient: Callable[[Sequence[tuple[str, Sequence[int], Sequence[int]]]], list[list[Any]]] | None = None,
) -> dict[BlockKey, np.ndarray]:
    """Return decoded blocks for ``wanted`` = {(seg key, offset): (length, raw, crc, codec, filter)}.

    Blocks already cached are reused (stored copies are decoded without I/O); the rest are
    read with one coalesced ranged request per segment file (all files at once),
    checksummed and decoded in parallel. A block of ``into`` is decoded into the caller's
    buffer given there (raw bytes, uint8), which is what comes back for it; the decoded
    cache never holds it. ``get_transient`` (the storage's ``get_many_ranges_transient``)
    reads blocks that are all compressed: decoding gives them memory of their own, and the
    bytes read are dropped here.
    """
    into = into or {}
    out: dict[BlockKey, np.ndarray] = {}
    missing: list[BlockKey] = []
    # (key, stored bytes, already checked against the checksum)
    jobs: list[tuple[BlockKey, Any, bool]] = []
    for k in wanted:
        if mode == "off":
            missing.append(k)
            continue
        b = cache.get(k)
        if b is not None:
            dest = into.get(k)
            if dest is not None:
                dest[:] = b
                b = dest
            out[k] = b
            continue
        stored = cache.get_stored(k)
        if stored is None:
            missing.append(k)
        else:
            jobs.append((k, stored, True))
    if missing:
        compressed = all(CODEC_NAMES[wanted[k][3]] != "none" for k in missing)
        reader = get_transient if get_transient is not None and compressed else get_many_ranges
        jobs.extend((k, d, False) for k, d in _read_blocks(reader, wanted, missing))
    if not jobs:
        return out
    try:
        decoded = _decoded(jobs, functools.partial(_decode_block, wanted, describe, into))
    except CorruptionError as e:
        jobs.clear()
        raise without_frames(e) from None
    for (k, data, checked), b in zip(jobs, decoded, strict=True):
        out[k] = b
        if mode == "decoded" and k not in into:
            cache.put(k, b)
        elif mode == "stored" and not checked:
            cache.put_stored(k, bytes(data))
    return out


def _decoded(jobs: list[tuple[BlockKey, Any, bool]], decode: Callable[[tuple[BlockKey, Any, bool]], np.ndarray]) -> list[np.ndarray]:
    """Every job decoded, on the CPU pool when there are enough of them."""
    if len(jobs) >= PARALLEL_MIN_BLOCKS:
        return list(cpu_pool().map(decode, jobs))
    return [decode(j) for j in jobs]


def without_frames(e: BaseException) -> BaseException:
    """``e`` with no traceback, and no hidden context (an error raised ``from None``): the
    frames of a read hold the bytes it read, which may be views of mapped files, each
    holding a file descriptor while it lives. An error the caller keeps then keeps none."""
    e.__traceback__ = None
    if e.__suppress_context__:
        e.__context__ = None
    return e


def _read_blocks(
    get_many_ranges: Callable[[Sequence[tuple[str, Sequence[int], Sequence[int]]]], list[list[Any]]],
    wanted: dict[BlockKey, tuple[int, int, int, int, int]],
    missing: list[BlockKey],
) -> list[tuple[BlockKey, Any]]:
    """The stored bytes of the blocks ``missing``: one ranged request per segment file (all
    files in one call), each file's blocks in offset order."""
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
    read: list[tuple[BlockKey, Any]] = []
    for keys, datas in zip(order, results, strict=True):
        read.extend(zip(keys, datas, strict=True))
    return read


def _decode_block(
    wanted: dict[BlockKey, tuple[int, int, int, int, int]],
    describe: Callable[[BlockKey], str],
    into: dict[BlockKey, np.ndarray],
    job: tuple[BlockKey, Any, bool],
) -> np.ndarray:
    """One block decoded from its stored bytes, checked first unless ``job`` says it was."""
    k, data, checked = job
    length, raw, crc, codec, filter_id = wanted[k]
    if not checked:
        if len(data) != length:
            raise CorruptionError(f"{describe(k)}: block is truncated ({len(data)} of {length} bytes)")
        if checksum(data) != crc:
            raise CorruptionError(f"{describe(k)}: block fails its checksum")
    if not plausible_size(CODEC_NAMES[codec], length, raw, filter_id):
        raise CorruptionError(f"{describe(k)}: block claims {raw} bytes from {length} stored bytes")
    try:
        return decode_block(data, CODEC_NAMES[codec], filter_id, raw, into.get(k))
    except Exception as e:
        raise CorruptionError(f"{describe(k)}: block cannot be decoded: {e}") from None
