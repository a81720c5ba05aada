"""Loading a version: finding the versions a store holds, reading a manifest and installing
it as the handle's in-memory state (datasets stay raw until used)."""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..collector import paused_gc
from ..errors import (
    CorruptionError,
    StoreNotFoundError,
)
from ..executors import cpu_pool
from ..format import manifest as mf
from ..format import shard as shard_format
from . import history
from .model import STATE_ATTRIBUTES
from .shards import Shard
from .state import (
    IndexRun,
    SchemaTable,
    Variable,
)
from .table import DatasetTable

if TYPE_CHECKING:
    from .model import StoreModel
VERSION_KEY = "version"
SEGMENT_KEY = re.compile(r"data/(v[0-9]+|m)-[0-9a-f]+\.seg")
INDEX_KEY = re.compile(r"index/[vr][0-9]+-[0-9a-f]+\.idx")


def manifest_versions(store: StoreModel) -> list[int]:
    """The version numbers of the store's manifests, oldest first.

    Only keys named exactly as this store names its manifests count: an editor's backup
    (``0000000009.json~``) or a file of another encoding is not a version."""
    try:
        keys = store._storage.list(mf.MANIFEST_PREFIX)
    except OSError:
        if not getattr(store._storage, "read_only", False):
            raise
        return probe_versions(store)
    versions = (mf.parse_manifest_key(k) for k in keys)
    return sorted(v for k, v in zip(keys, versions, strict=True) if v is not None and k == store._manifest_key(v))


def probe_versions(store: StoreModel) -> list[int]:
    """Find the newest version without listing (plain HTTP): start from the
    ``manifests/latest`` hint and step forward while newer manifests exist."""
    exists = store._storage.exists
    key = store._manifest_key
    try:
        start = int(bytes(store._storage.get(mf.LATEST_HINT_KEY)).decode("ascii").strip())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        start = 0
    if not exists(key(start)):
        return []
    while exists(key(start + 1)):
        start += 1
    return [start]


def load(store: StoreModel, version: int | None, known: DatasetTable | None = None) -> None:
    """Install ``version`` (the newest when None) as the handle's state. ``known``, the
    table of an older version of the same store, lends the shards both versions name (their
    names, and records or columns once decoded) instead of their being read again."""
    if version == -1:  # being created
        store._version = -1
        store._datasets = dataset_table(store, [], f"{store._storage.location} (new)")
        return
    asked = version is not None
    if version is None:
        versions = manifest_versions(store)
        if not versions:
            raise StoreNotFoundError(f"no committed version in the Atlas store at {store._storage.location}")
        version = versions[-1]
    key = store._manifest_key(version)
    where = f"{store._storage.location}/{key}"
    try:  # a version asked for is read directly: listing every manifest is only for the error
        data = store._storage.get(key)
    except FileNotFoundError:
        if asked:
            raise missing_version(store, version) from None
        raise CorruptionError(f"manifest {where} disappeared while opening") from None
    state = history.VersionHeader(version, key, mf.decode_header(data, where)[0])
    if not state.live:
        raise state.removed_error(str(store._storage.location))
    with paused_gc():  # ~10^5 new containers: collections would only rescan them
        head, doc = mf.decode_manifest(data, where, store._meta_format, store._meta_compression)
        install(store, doc, where, known)
    if "shards" in doc and len(store._datasets) != head.get("datasets"):
        raise CorruptionError(f"manifest {where} has {len(store._datasets)} datasets in its shards; its header declares {head.get('datasets')}")
    if doc.get(VERSION_KEY) != version:
        raise CorruptionError(f"manifest {where} claims version {doc.get(VERSION_KEY)!r}")
    store._version = version


def missing_version(store: StoreModel, version: int) -> Exception:
    """The error for a version the store does not hold (KeyError; StoreNotFoundError when it
    holds none)."""
    versions = manifest_versions(store)
    if not versions:
        return StoreNotFoundError(f"no committed version in the Atlas store at {store._storage.location}")
    return KeyError(
        f"version {version} is not in the store at {store._storage.location}; "
        f"available: {versions[:3]}...{versions[-3:]}" if len(versions) > 6 else
        f"version {version} is not in the store; available: {versions}"
    )


def newest_from(store: StoreModel, version: int) -> int:
    """The newest version, found by probing forward from ``version`` (which must exist):
    versions are committed one after the other, so what landed since costs one existence
    check each, however long the history."""
    exists = store._storage.exists
    while exists(store._manifest_key(version + 1)):
        version += 1
    return version


# One function on purpose: one validating pass over ~10^5 manifest entries, locals bound
# once (run with the garbage collector paused).
def install(store: StoreModel, doc: dict[str, Any], where: str, known: DatasetTable | None = None) -> None:
    """Build the in-memory state from a manifest document (datasets stay raw until used;
    ``known``: see :func:`load`)."""
    store._reset()
    try:
        next_id = doc["next_id"]
        schemas = doc["schemas"]
        variables = doc["variables"]
        datasets = doc["shards"] if "shards" in doc else doc["datasets"]
        if not isinstance(next_id, int) or next_id < 1:
            raise ValueError("next_id")
        if not all(isinstance(x, list) for x in (schemas, variables, datasets)):
            raise ValueError("tables must be lists")
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptionError(f"manifest {where} is malformed: {e}") from None
    checks = doc.get("index_checks", {})
    if not isinstance(checks, dict) or not all(
        type(c) is list and len(c) == 2 and all(type(x) is int and 0 <= x < 2**63 for x in c)
        for c in checks.values()
    ):
        raise CorruptionError(f"manifest {where}: index_checks is malformed")
    store._next_id = next_id
    store._base_id = next_id
    store._manifest_where = where
    store._where = f"manifest {where}"  # the file; + ", dataset NAME" in messages
    store._schemas = SchemaTable(schemas, store._decode_schema_entry, store._schema_entry_key)
    for v in variables:
        try:
            name, vid, index, segs, live = v
            var = Variable(str(name), int(vid))
            var.runs = index_runs(index, checks)
            var.segments = [(seg[0], seg[1]) for seg in segs]
            for seg in segs:  # [key, size] (version 1), [key, size, bytes of this variable] (version 2)
                k, sz, own = seg[0], seg[1], seg[2] if len(seg) == 3 else seg[1] - 8
                if type(k) is not str or not SEGMENT_KEY.fullmatch(k) or type(sz) is not int or not 0 <= sz < 2**62:
                    raise ValueError(f"bad segment entry {k!r}")
                if len(seg) not in (2, 3) or type(own) is not int or not 0 <= own <= sz:
                    raise ValueError(f"bad segment entry {seg!r}")
                if len(seg) == 3:
                    var.owned[k] = own
            var.live = int(live)
        except (TypeError, ValueError) as e:
            raise CorruptionError(f"manifest {where}: variable entry is malformed: {e}") from None
        if var.name in store._variables:
            raise CorruptionError(f"manifest {where}: variable {var.name!r} listed twice")
        if not 0 < var.vid < next_id or var.name.startswith("_") or "/" in var.name or var.name in ("", ".", ".."):
            raise CorruptionError(f"manifest {where}: variable entry {var.name!r} is invalid")
        store._variables[var.name] = var
    if "shards" in doc:
        shards = read_shards(store, doc["shards"], where, known)
    else:  # format version 1: every dataset in the manifest
        names, records = v1_datasets(doc["datasets"], len(schemas), where)
        shards = [Shard(None, names, records=records)] if names else []
    store._datasets = dataset_table(store, shards, where)
    if known is not None:
        store._datasets.share_places(known)
    if shards and shards[0].key is None:
        check_unique_ids(records, f"manifest {where}")


def dataset_table(store: StoreModel, shards: list[Shard], where: str) -> DatasetTable:
    """The table of a version's datasets, with what reads its shards' parts when used."""
    return DatasetTable(
        shards, shard_loader(store, where), where, columns_loader(store, where), fields_loader(store, where)
    )


def take_state(store: StoreModel, source: StoreModel) -> None:
    """Make the version ``source`` loaded the handle's own, in one swap (the caller holds
    ``store._lock``): its state attributes, its schema table decoding for this handle, its
    table reading shards for this handle."""
    for name in STATE_ATTRIBUTES:
        setattr(store, name, getattr(source, name))
    store._schemas._decode = store._decode_schema_entry
    store._schemas._key_of = store._schema_entry_key
    bind_table(store)
    store._state_gen += 1


def bind_table(store: StoreModel) -> None:
    """After a handle took the state another model loaded (a swap to a newer version): its
    table reads shards for this handle, checking them against this handle's ids and schemas."""
    table = store._datasets
    table.use_loaders(shard_loader(store, table.where), columns_loader(store, table.where), fields_loader(store, table.where))


def index_runs(index: Any, checks: dict[str, Any]) -> list[IndexRun]:
    """The runs of a variable's chunk index as a manifest lists them: version 2 lists
    ``[key, offset, length, crc, rows]`` runs, version 1 one index file (or none) whose
    length and checksum ``index_checks`` may record. ValueError if malformed."""
    if index is None:
        return []
    if type(index) is str:  # version 1
        if not INDEX_KEY.fullmatch(index):
            raise ValueError(f"bad index key {index!r}")
        check = checks.get(index)
        return [IndexRun(index, 0, check[0], check[1], -1) if check else IndexRun(index, 0, -1, None, -1)]
    runs = []
    for r in index:
        key, offset, length, crc, rows = r
        if type(key) is not str or not INDEX_KEY.fullmatch(key):
            raise ValueError(f"bad index key {key!r}")
        if not all(type(x) is int and 0 <= x < 2**62 for x in (offset, length, crc, rows)) or length < 32:
            raise ValueError(f"bad index run {r!r}")
        runs.append(IndexRun(key, offset, length, crc, rows))
    return runs


def v1_datasets(datasets: list[Any], nschemas: int, where: str) -> tuple[list[str], list[list[Any]]]:
    """The names and checked records of a version-1 manifest's datasets."""
    names = []
    for rec in datasets:
        if not isinstance(rec, list) or len(rec) != 3 or type(rec[0]) is not str:
            raise CorruptionError(f"manifest {where}: dataset entry is malformed")
        names.append(rec[0])
    check_names(names, where)
    if len(set(names)) != len(names):
        raise CorruptionError(f"manifest {where}: a dataset is listed twice")
    return names, checked_records(names, [rec[1:] for rec in datasets], nschemas, where)


def checked_records(names: list[str], records: list[Any], nschemas: int, where: str) -> list[list[Any]]:
    """``[name, attributes, entries]`` for each ``[attributes, entries]`` record, after the
    structural checks every later use relies on."""
    out = []
    for n, rec in zip(names, records, strict=True):
        if not isinstance(rec, list) or len(rec) != 2 or type(rec[1]) is not list:
            raise CorruptionError(f"{where}: the record of dataset {n!r} is malformed")
        attrs = tuple(rec[0]) if type(rec[0]) is list else rec[0]
        try:
            entries = frozen_entries(rec[1], nschemas)
        except ValueError as e:
            raise CorruptionError(f"{where}, dataset {n!r}: {e}") from None
        out.append([n, attrs, entries])
    return out


def check_unique_ids(records: list[list[Any]], where: str) -> None:
    """CorruptionError unless every array id is unique: one array would read another's chunks."""
    try:
        aids = [a[1] for rec in records for a in rec[2]]
    except (TypeError, IndexError, KeyError):
        raise CorruptionError(f"{where}: an array entry is malformed") from None
    if len(set(aids)) != len(aids):
        raise CorruptionError(f"{where}: two arrays share one id")


def check_names(names: list[str], where: str) -> None:
    """CorruptionError unless every name is one a dataset may have (checked in bulk)."""
    joined = "\x00" + "\x00".join(names) + "\x00"
    if joined.count("\x00") == len(names) + 1 and not any(
        bad in joined for bad in ("/", "\x00_", "\x00\x00", "\x00.\x00", "\x00..\x00")
    ):
        return
    for n in names:
        if n.startswith("_") or "/" in n or n in ("", ".", ".."):
            raise CorruptionError(f"{where}: invalid dataset name {n!r}")


def read_shards(store: StoreModel, entries: Any, where: str, known: DatasetTable | None = None) -> list[Shard]:
    """The shards a version-2 manifest names, with their datasets' names (one ranged read
    each, all at once); those ``known`` holds already (same key and sizes: shards are
    immutable) are taken from it."""
    try:
        if not isinstance(entries, list):
            raise ValueError("not a list")
        for e in entries:
            key, rows, end, length = e
            if not shard_format.is_shard_key(key) or not all(type(x) is int for x in (rows, end, length)):
                raise ValueError(f"bad shard entry {e!r}")
            if not 0 < rows <= shard_format.MAX_SHARD_ROWS or not 0 < end <= length < 2**40:
                raise ValueError(f"impossible sizes in shard entry {e!r}")
    except (TypeError, ValueError) as e:
        raise CorruptionError(f"manifest {where}: the shard list is malformed: {e}") from None
    storage = store._storage
    have = {s.key: s for s in known.shards if s.key is not None} if known is not None else {}
    lent = [have.get(e[0]) for e in entries]
    lent = [s if s is not None and (len(s.names), s.names_end, s.length) == tuple(e[1:]) else None for s, e in zip(lent, entries, strict=True)]
    try:
        fetched = iter(storage.get_many_ranges([(e[0], [0], [e[2]]) for e, s in zip(entries, lent, strict=True) if s is None]))
    except FileNotFoundError as e:
        raise store._missing_error(f"a shard of manifest {where} is missing: {e}") from None
    meta = (store._meta_format, store._meta_compression)
    shards = []
    for (key, rows, end, length), mine in zip(entries, lent, strict=True):
        if mine is not None:
            shards.append(mine)
            continue
        (prefix,) = next(fetched)
        at = f"{storage.location}/{key}"
        head = shard_format.parse_header(prefix, rows, at)
        if head.names_at[0] + head.names_at[1] != end or head.length != length:
            raise CorruptionError(f"shard {at} is not the file manifest {where} names (its sections differ)")
        names = shard_format.decode_names(prefix, rows, meta, at)
        check_names(names, f"shard {at}")
        shards.append(Shard(key, names, end, length, head=head))
    return shards


def shard_loader(store: StoreModel, where: str) -> Callable[[Shard], list[list[Any]]]:
    """What decodes a shard's records when one of its datasets is first used (its array
    columns too, which must agree with the records). Schemas and ids are checked against
    what the handle holds then (a shard this handle wrote may be read back later)."""
    storage = store._storage
    meta = (store._meta_format, store._meta_compression)
    missing = store._missing_error

    def load_shard(shard: Shard) -> list[list[Any]]:
        assert shard.key is not None
        at = f"{storage.location}/{shard.key}"
        try:
            data = storage.get(shard.key)
        except FileNotFoundError:
            raise missing(f"shard {at} of manifest {where} is missing") from None
        if len(data) != shard.length:
            raise CorruptionError(f"shard {at} is {len(data)} bytes; manifest {where} recorded {shard.length}")
        with paused_gc():  # collections meanwhile would rescan the whole heap, more than once
            records, columns, built = shard_format.decode_records(data, shard.names, meta, at)
            check_columns(columns, len(store._schemas), store._next_id, f"shard {at}")
            if not built:
                records = shard_records(shard.names, records, columns, f"shard {at}")
        shard.columns = columns
        return records

    return load_shard


def check_columns(columns: shard_format.Columns, nschemas: int, next_id: int, where: str) -> None:
    """CorruptionError unless every column names known schemas and ids handed out, and no
    two arrays share an id (one would read the other's chunks)."""
    for name, col in columns.items():
        if len(col) and (int(col["schema"].max()) >= nschemas or int(col["aid"].max()) >= next_id):
            raise CorruptionError(f"{where}: the column of array {name!r} names an unknown schema or id")
    if columns:
        aids = np.concatenate([col["aid"] for col in columns.values()])
        low, high = int(aids.min()), int(aids.max())
        if high - low < 16 * len(aids):  # ids of a shard are mostly close: count them
            shared = int(np.bincount((aids - low).astype(np.intp)).max()) > 1
        else:
            aids = np.sort(aids)
            shared = bool((aids[1:] == aids[:-1]).any())
        if shared:
            raise CorruptionError(f"{where}: two arrays share one id")


def frozen(entries: list[Any]) -> tuple[Any, ...]:
    """Array entries (checked already) as tuples, as :func:`frozen_entries` makes them."""
    return tuple(
        (e[0], e[1], e[2], tuple(e[3]) if type(e[3]) is list else e[3], tuple(e[4]) if type(e[4]) is list else e[4])
        for e in entries
    )


def shard_records(names: list[str], records: list[Any], columns: shard_format.Columns, where: str) -> list[list[Any]]:
    """``[name, attributes, entries]`` for each ``[attributes, entries]`` record of a shard,
    after checking that its array entries are exactly what its (checked) columns say: which
    arrays each dataset has, their ids and schemas. Names, ids and schemas are then as sound
    as the columns; statistics and attributes are checked when decoded."""
    try:
        # checked for all records at once (C-level passes); the slow loop only names the culprit
        entry_lists = list(map(itemgetter(1), records)) if set(map(type, records)) <= {list} else None
        entries = [e for es in entry_lists for e in es] if entry_lists and set(map(type, entry_lists)) <= {list} else None
        if entries is None or set(map(len, records)) - {2} or set(map(type, entries)) - {list} or set(map(len, entries)) - {5}:
            for n, rec in zip(names, records, strict=True):
                if type(rec) is not list or len(rec) != 2 or type(rec[1]) is not list:
                    raise ValueError(f"the record of dataset {n!r} is malformed")
                if any(type(e) is not list or len(e) != 5 for e in rec[1]):
                    raise ValueError(f"an array entry of dataset {n!r} is not a list of five fields")
        expected = shard_format.columns_of(records)
        if expected.keys() != columns.keys() or not all(
            np.array_equal(expected[name], columns[name]) for name in columns
        ):
            raise ValueError("its array columns disagree with its records")
    except (TypeError, ValueError, OverflowError) as e:
        raise CorruptionError(f"{where}: {e}") from None
    # as tuples (the shape version-1 records are held in): tuples of plain values are left
    # alone by the garbage collector, which a sweep over 10^5 datasets otherwise rescans
    return [
        [n, tuple(rec[0]) if type(rec[0]) is list else rec[0], frozen(rec[1])]
        for n, rec in zip(names, records, strict=True)
    ]


def columns_loader(store: StoreModel, where: str) -> Callable[[list[Shard]], None]:
    """What reads the array columns of shards (one ranged read each, together) for scans,
    which need no other part of a shard."""
    storage = store._storage
    comp = store._meta_compression
    missing = store._missing_error

    def load_columns(shards: list[Shard]) -> None:
        stored = [s for s in shards if s.columns is None and s.head is not None]
        for s in shards:
            if s.columns is None and s.head is None:  # datasets of a version-1 manifest
                s.columns = shard_format.columns_of(s.records or [])
        if not stored:
            return
        try:
            parts = storage.get_many_ranges(
                [(s.key, [s.head.columns_at[0]], [s.head.columns_at[1]]) for s in stored if s.key and s.head]
            )
        except FileNotFoundError as e:
            raise missing(f"a shard of manifest {where} is missing: {e}") from None
        def decode(job: tuple[Shard, list[Any]]) -> None:
            s, (part,) = job
            assert s.head is not None
            at = f"{storage.location}/{s.key}"
            columns = shard_format.decode_columns(s.head, part, s.head.columns_at[0], comp, at)
            check_columns(columns, len(store._schemas), store._next_id, f"shard {at}")
            s.columns = columns

        jobs = list(zip(stored, parts, strict=True))
        list(cpu_pool().map(decode, jobs) if len(jobs) > 2 else map(decode, jobs))  # zstd lets go of the GIL

    return load_columns


def fields_loader(store: StoreModel, where: str) -> Callable[[list[Shard], list[str]], None]:
    """What reads catalogue fields of shards (one ranged read per shard and field, all
    together) for ``find`` and ``catalog()``, which need no other part of a shard. A field
    a shard does not hold is remembered as None."""
    storage = store._storage
    comp = store._meta_compression
    missing = store._missing_error

    def load_fields(shards: list[Shard], names: list[str]) -> None:
        wanted: list[tuple[Shard, list[str]]] = []
        for s in shards:
            assert s.head is not None and s.head.fields is not None
            held = s.head.fields
            todo = [n for n in names if n not in s.fields]
            for n in todo:
                if n not in held:
                    s.fields[n] = None
            todo = [n for n in todo if n in held]
            if todo:
                wanted.append((s, todo))
        if not wanted:
            return
        requests = []
        for s, todo in wanted:
            assert s.head is not None and s.head.fields is not None and s.key is not None
            spans = [s.head.fields[n] for n in todo]
            requests.append((s.key, [a[0] for a in spans], [a[1] for a in spans]))
        try:
            parts = storage.get_many_ranges(requests)
        except FileNotFoundError as e:
            raise missing(f"a shard of manifest {where} is missing: {e}") from None
        for (s, todo), got in zip(wanted, parts, strict=True):
            assert s.head is not None and s.head.fields is not None
            at = f"{storage.location}/{s.key}"
            for n, part in zip(todo, got, strict=True):
                base = s.head.fields[n][0]
                s.fields[n] = shard_format.decode_shard_field(s.head, n, part, base, comp, at)

    return load_fields


def frozen_entries(entries: list[Any], nschemas: int) -> tuple[Any, ...]:
    """Array entries of a manifest as tuples, after the structural checks every use relies
    on (five fields, unique str names, a valid schema number); ValueError otherwise."""
    out = []
    for e in entries:
        if type(e) is not list or len(e) != 5:
            raise ValueError("an array entry is not a list of five fields")
        name, aid, sidx, st, at = e
        if type(name) is not str or type(sidx) is not int or not 0 <= sidx < nschemas:
            raise ValueError("bad array name or schema reference")
        out.append((name, aid, sidx, tuple(st) if type(st) is list else st, tuple(at) if type(at) is list else at))
    if len(out) > 1 and len({e[0] for e in out}) != len(out):
        raise ValueError("an array name is repeated")
    return tuple(out)


def is_store_key(key: str) -> bool:
    """Whether ``key`` is one Atlas writes itself: the config, a manifest, the latest-version
    hint, a segment or an index file (temporary ``.tmp-*`` files are never listed)."""
    return (
        key == mf.CONFIG_KEY
        or key == mf.LATEST_HINT_KEY
        or mf.parse_manifest_key(key) is not None
        or SEGMENT_KEY.fullmatch(key) is not None
        or INDEX_KEY.fullmatch(key) is not None
        or shard_format.is_shard_key(key)
    )
