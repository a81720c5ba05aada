"""Which files an ingest takes, and the dataset name each one gets.

Every file under the source directory whose name ends in a NetCDF extension, hidden
files and directories left out; the dataset name is the file's relative path with
``/`` spelt ``:`` (see :func:`dataset_name`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["NAME_SEPARATOR", "NETCDF_SUFFIXES", "SourceFile", "dataset_name", "find_netcdf_files"]

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
            found.append(SourceFile(path, rel.as_posix(), dataset_name(rel), st.st_size))
    found.sort(key=lambda s: PurePosixPath(s.relpath).parts)
    return found


