"""NetCDF-4 groups as datasets: how the groups of one file are named, recorded and found.

A file's root group is the dataset named after the file (``obs:cast_001``); each of its
sub-groups, at every depth, is a dataset of its own, named after the file's dataset, ``#``,
and the group's path with ``/`` spelt ``:`` as in the rest of a name (group
``/engineering/battery`` of that file is ``obs:cast_001#engineering:battery``). Dataset
names cannot hold ``/``, and ``#`` keeps a group apart from a file in a folder of the same
name (``obs/cast_001/engineering.nc`` is ``obs:cast_001:engineering``).

Where a dataset sits in its file is recorded as attributes (Atlas's own, hidden from
xarray like the other ``_atlas_*`` ones), on the datasets of files that have sub-groups:

* ``_atlas_group``: the group's path in its file, ``/`` for the root group;
* ``_atlas_group_parent``: the name of the dataset of its parent group (sub-groups only);
* ``_atlas_group_dims``: JSON list of the dimensions the group itself defines, in order,
  each ``[name, size, unlimited]`` (a group's variables may use its ancestors' dimensions);
* ``_atlas_groups``: on the root group's dataset, JSON list of the datasets of all its
  sub-groups, parents before children, in the file's order.

``FILE/GROUP/PATH`` (the file's dataset name, then the group's path with ``/``) names a
group's dataset as ``xr.open_dataset(file, group="GROUP/PATH")`` names the group: since
no dataset name holds ``/``, :func:`resolve` reads such a name that way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.atlas import Store
    from ..core.dataset import DatasetView

__all__ = [
    "DIMS_ATTR",
    "GROUPS_ATTR",
    "GROUP_ATTR",
    "GROUP_SEPARATOR",
    "PARENT_ATTR",
    "Dimension",
    "GroupPlace",
    "group_dataset_name",
    "place_of",
    "record_place",
    "resolve",
    "subgroups",
]

#: Between a file's dataset name and the path of one of its groups.
GROUP_SEPARATOR = "#"
#: Stands for ``/`` in a group's path (as in the file's path).
PATH_SEPARATOR = ":"
GROUP_ATTR = "_atlas_group"
PARENT_ATTR = "_atlas_group_parent"
DIMS_ATTR = "_atlas_group_dims"
GROUPS_ATTR = "_atlas_groups"

#: A dimension a group defines: (name, size, unlimited).
Dimension = tuple[str, int, bool]


def split_path(path: str) -> list[str]:
    """The names along a group path (``/a/b``, ``a/b/`` give ``["a", "b"]``; ``/`` none)."""
    return [p for p in path.split("/") if p]


def group_dataset_name(file_dataset: str, group_path: str) -> str:
    """The dataset name of the group at ``group_path`` of the file whose root group is the
    dataset ``file_dataset`` (the root group's path, ``/``, gives ``file_dataset``)."""
    parts = split_path(group_path)
    if not parts:
        return file_dataset
    return file_dataset + GROUP_SEPARATOR + PATH_SEPARATOR.join(parts)


@dataclass(frozen=True)
class GroupPlace:
    """Where a dataset sits in the file it came from."""

    path: str  # "/" for the root group
    parent: str | None  # the dataset of the parent group (None for the root)
    dims: list[Dimension]  # the dimensions the group defines
    subgroups: list[str]  # for the root: the datasets of every sub-group, in file order


def record_place(view: DatasetView, place: GroupPlace) -> None:
    """Record ``place`` as the dataset's ``_atlas_group*`` attributes."""
    view.set_attribute(GROUP_ATTR, place.path)
    if place.parent is not None:
        view.set_attribute(PARENT_ATTR, place.parent)
    view.set_attribute(DIMS_ATTR, json.dumps([list(d) for d in place.dims]))
    if place.parent is None:
        view.set_attribute(GROUPS_ATTR, json.dumps(place.subgroups))


def _json_list(value: Any) -> list[Any]:
    if not isinstance(value, str):
        return []
    try:
        out = json.loads(value)
    except ValueError:
        return []
    return out if isinstance(out, list) else []


def place_of(view: DatasetView) -> GroupPlace | None:
    """Where the dataset sits in its file; None for a dataset of a file without groups (or
    not ingested)."""
    path = view.get_attribute(GROUP_ATTR)
    if not isinstance(path, str):
        return None
    parent = view.get_attribute(PARENT_ATTR)
    dims: list[Dimension] = []
    for d in _json_list(view.get_attribute(DIMS_ATTR)):
        if isinstance(d, list) and len(d) == 3 and isinstance(d[0], str) and isinstance(d[1], int):
            dims.append((d[0], d[1], bool(d[2])))
    subs = [n for n in _json_list(view.get_attribute(GROUPS_ATTR)) if isinstance(n, str)]
    return GroupPlace(path, parent if isinstance(parent, str) else None, dims, subs)


def subgroups(store: Store, name: str) -> list[str]:
    """The datasets of the sub-groups of the file whose root group is dataset ``name``, as
    recorded (those still in the store), in file order; none for a file without groups."""
    place = place_of(store.open_dataset(name))
    if place is None or place.parent is not None:
        return []
    return [n for n in place.subgroups if store.dataset_exists(n)]


def resolve(store: Store, name: str) -> str:
    """The dataset ``name`` stands for: itself, or for ``FILE/GROUP/PATH`` the dataset of
    that group of that file (``FILE/`` is the file's root group). ``KeyError`` when there
    is no such dataset or group."""
    if "/" not in name:
        return name
    file_dataset, _, path = name.partition("/")
    target = group_dataset_name(file_dataset, path)
    if not store.dataset_exists(target):
        if store.dataset_exists(file_dataset):
            raise KeyError(f"dataset {file_dataset!r} has no group {'/' + '/'.join(split_path(path))!r}")
        raise KeyError(f"no dataset named {file_dataset!r} in {store.location}")
    if target != file_dataset:
        place = place_of(store.open_dataset(target))
        if place is None or split_path(place.path) != split_path(path):
            raise KeyError(f"dataset {target!r} is not group {path!r} of dataset {file_dataset!r}")
    return target
