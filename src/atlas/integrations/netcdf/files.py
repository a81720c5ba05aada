"""Which files an ingest takes, and the dataset name each one gets.

Every file under the source directories (and every file given by name) whose name ends in
a NetCDF extension, hidden files and directories left out, filtered by ``--include`` and
``--exclude`` patterns; the dataset name is the file's path relative to the ingest's root
with ``/`` spelt ``:`` (see :func:`dataset_name` and :func:`collect_sources`).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = [
    "NAME_SEPARATOR",
    "NETCDF_SUFFIXES",
    "SourceFile",
    "collect_sources",
    "dataset_name",
    "find_netcdf_files",
    "matches",
]

#: File name endings recognised as NetCDF (compared case-insensitively).
NETCDF_SUFFIXES: tuple[str, ...] = (".nc", ".nc4", ".cdf", ".netcdf")
#: Stands for ``/`` in dataset names, which may not contain ``/``.
NAME_SEPARATOR = ":"


@dataclass(frozen=True)
class SourceFile:
    """One NetCDF file found under the source directory."""

    path: Path
    relpath: str  # POSIX path relative to the source directory
    name: str  # dataset name
    size: int  # bytes on disk
    mtime_ns: int = 0  # last modification, ns since the epoch


def dataset_name(relpath: str | PurePosixPath) -> str:
    """The dataset name of a file at ``relpath`` (POSIX, relative to the source directory).

    The NetCDF extension is dropped and every ``/`` becomes ``:``, since dataset
    names cannot hold ``/``: ``aoml/13857/profiles/R13857_001.nc`` gives
    ``aoml:13857:profiles:R13857_001``. Names cannot start with ``_`` either, so
    such a name gets a leading ``:`` (``_tmp/a.nc`` gives ``:_tmp:a``), as if the
    path were written from the source directory's root.
    """
    p = PurePosixPath(relpath)
    stem = p.name
    for suffix in NETCDF_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    name = NAME_SEPARATOR.join([*p.parent.parts, stem] if str(p.parent) != "." else [stem])
    if name.startswith("_"):
        name = NAME_SEPARATOR + name
    return name


def _is_netcdf_name(filename: str) -> bool:
    low = filename.lower()
    return any(low.endswith(s) and len(low) > len(s) for s in NETCDF_SUFFIXES)


def find_netcdf_files(root: str | os.PathLike[str]) -> list[SourceFile]:
    """NetCDF files under ``root``, recursively, in sorted path order.

    Hidden files and directories (names starting with ``.``) are left out, as are
    symbolic links to directories.
    """
    root_path = Path(root)
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root_path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root_path).as_posix())
        for fn in sorted(filenames):
            if fn.startswith(".") or not _is_netcdf_name(fn):
                continue
            path = Path(dirpath) / fn
            try:
                st = path.stat()
            except OSError:
                continue  # a dangling link
            if not path.is_file():
                continue
            rel = rel_dir / fn
            found.append(SourceFile(path, rel.as_posix(), dataset_name(rel), st.st_size, st.st_mtime_ns))
    found.sort(key=lambda s: PurePosixPath(s.relpath).parts)
    return found


def matches(relpath: str, pattern: str) -> bool:
    """Whether a file matches an ``--include``/``--exclude`` pattern: a pattern without
    ``/`` is matched against the file name (``*_prof.nc``), one with ``/`` against the
    path relative to the root (``aoml/*``; ``*`` also crosses ``/`` there)."""
    target = relpath if "/" in pattern else PurePosixPath(relpath).name
    return fnmatch.fnmatchcase(target, pattern)


def collect_sources(
    inputs: Sequence[str | os.PathLike[str]],
    root: str | os.PathLike[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[Path, list[SourceFile]]:
    """The root the dataset names are relative to, and the files an ingest of ``inputs``
    (directories searched recursively, and files, taken whatever their extension) takes.

    ``root`` defaults to the deepest directory holding every input (a single directory
    is its own root, a single file's root is its directory). A file is taken when it
    matches one of ``include`` (or there is none) and none of ``exclude`` (see
    :func:`matches`). Files found twice are taken once. ``ValueError`` when an input is
    missing or outside ``root``.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ValueError("give at least one directory or file to ingest")
    for p in paths:
        if not p.exists():
            raise ValueError(f"{p} does not exist")
        if not (p.is_dir() or p.is_file()):
            raise ValueError(f"{p} is neither a directory nor a file")
    base = Path(root) if root is not None else _common_root(paths)
    found: dict[str, SourceFile] = {}
    for p in paths:
        for src in _files_of(p, base):
            found.setdefault(src.relpath, src)
    files = [
        s for s in found.values()
        if (not include or any(matches(s.relpath, pat) for pat in include))
        and not any(matches(s.relpath, pat) for pat in exclude)
    ]
    files.sort(key=lambda s: PurePosixPath(s.relpath).parts)
    return base, files


def _common_root(paths: list[Path]) -> Path:
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0]
    dirs = [os.path.abspath(p if p.is_dir() else p.parent) for p in paths]
    return Path(os.path.commonpath(dirs))


def _files_of(path: Path, base: Path) -> list[SourceFile]:
    """The files of one input, named relative to ``base``."""
    try:
        rel_base = Path(os.path.abspath(path)).relative_to(os.path.abspath(base))
    except ValueError:
        raise ValueError(f"{path} is not under the root {base}; pass a --root holding every input") from None
    if path.is_file():
        st = path.stat()
        rel = PurePosixPath(rel_base.as_posix())
        return [SourceFile(path, rel.as_posix(), dataset_name(rel), st.st_size, st.st_mtime_ns)]
    prefix = PurePosixPath(rel_base.as_posix())
    return [
        SourceFile(s.path, (prefix / s.relpath).as_posix(), dataset_name(prefix / s.relpath), s.size, s.mtime_ns)
        for s in find_netcdf_files(path)
    ]


