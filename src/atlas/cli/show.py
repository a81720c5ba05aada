"""``atlas show``: one dataset described like ``ncdump -h`` (or as JSON).

Which arrays are coordinates and which attributes belong to which variable are read
with the xarray conventions of :mod:`atlas.integrations.xarray`, so that ``show``
lists what ``Atlas.open_as_xarray_dataset`` gives.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING, Any

from .errors import EXIT_OK
from .output import print_json
from .store import dataset_named, open_store

if TYPE_CHECKING:
    from ..api import Atlas
    from ..core.dataset import DatasetView


def _plain(dtype: str, value: Any) -> Any:
    """A fill value or statistic in a printable, JSON-friendly form (times as ISO dates)."""
    import numpy as np

    if isinstance(value, bytes):  # the min/max of a string array
        return value.decode("utf-8", "replace")
    if dtype == "timestamp_nanoseconds" and value is not None:
        return str(np.datetime64(int(value), "ns"))  # NaT for the missing time
    return value


def _attr(value: Any) -> Any:
    """A typed (numpy) attribute value as plain Python, for printing and JSON."""
    import numpy as np

    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


def _describe_array(
    view: DatasetView, name: str, meta: dict[str, Any], coordinate: bool, attributes: dict[str, Any]
) -> dict[str, Any]:
    """One entry of ``describe_dataset``'s ``variables``."""
    dtype = meta["dtype"]
    stats = view.array_stats(name)
    if stats is not None:
        stats = {
            "row_count": stats["row_count"],
            "null_count": stats["null_count"],
            "min": _plain(dtype, stats["min"]),
            "max": _plain(dtype, stats["max"]),
        }
    return {
        "name": name,
        "dtype": dtype,
        "dimensions": meta["dimension_names"],
        "shape": meta["shape"],
        "chunk_shape": meta["chunk_shape"],
        "fill_value": _plain(dtype, view.array_fill_value(name)),
        "coordinate": coordinate,
        "attributes": attributes,
        "stats": stats,
    }


def describe_dataset(store: Atlas, name: str) -> dict[str, Any]:
    """Everything ``atlas show`` prints about one dataset, as plain data.

    Coordinates and attributes (``_FillValue`` included) are those of
    ``store.open_as_xarray_dataset(name)``.
    """
    from ..integrations.cf_read import decoded_layout
    from ..integrations.xarray import split_attributes

    view = store.open_dataset(dataset_named(store, name))
    coords, var_attrs, global_attrs = split_attributes(view)
    layout = decoded_layout(view)
    if layout is not None:  # written by add_xarray_dataset: the on-disk CF attributes, as ncdump
        var_attrs = {a: {k: _attr(v) for k, v in spec["merged"].items()} for a, spec in layout[0].items()}
        global_attrs = {k: _attr(v) for k, v in layout[1]["attrs"].items()}
    dims: dict[str, list[int]] = {}
    variables = []
    for a in view.list_arrays():
        meta = view.array_meta(a)
        assert meta is not None  # a listed array
        for d, n in zip(meta["dimension_names"], meta["shape"], strict=True):
            sizes = dims.setdefault(d, [])
            if n not in sizes:
                sizes.append(n)
        variables.append(_describe_array(view, a, meta, a in coords, var_attrs[a]))
    return {
        "name": name,
        "dimensions": {d: (s[0] if len(s) == 1 else s) for d, s in dims.items()},
        "coordinates": coords,
        "variables": variables,
        "attributes": global_attrs,
    }


def _cdl_value(value: Any, dtype: str | None = None) -> str:
    """An attribute or statistic written the way ncdump writes values."""
    import numpy as np

    if isinstance(value, str):
        if dtype == "timestamp_nanoseconds":
            return value  # an ISO date or NaT, not a string value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if dtype == "float32":
            return str(np.float32(value))
        return repr(value)
    if isinstance(value, list):
        return ", ".join(_cdl_value(v, dtype) for v in value)
    if value is None:
        return "none"
    return str(value)


def _variable_lines(v: dict[str, Any]) -> list[str]:
    """A variable's declaration, its attributes, and a comment on its storage."""
    dims = f"({', '.join(v['dimensions'])})" if v["dimensions"] else ""
    coord = "  // coordinate" if v["coordinate"] else ""
    lines = [f"\t{v['dtype']} {v['name']}{dims} ;{coord}"]
    for k, val in v["attributes"].items():
        typed = v["dtype"] if k == "_FillValue" else None  # the fill has the variable's type
        lines.append(f"\t\t{v['name']}:{k} = {_cdl_value(val, typed)} ;")
    details = []
    if v["chunk_shape"] != v["shape"]:
        details.append(f"chunks ({', '.join(str(c) for c in v['chunk_shape'])})")
    if v["fill_value"] is not None:
        details.append(f"fill {_cdl_value(v['fill_value'], v['dtype'])}")
    st = v["stats"]
    if st is None:
        details.append("no stats (never written)")
    else:
        details.append(f"{st['row_count']} cells, {st['null_count']} null")
        if st["min"] is not None:
            details.append(f"min {_cdl_value(st['min'], v['dtype'])}, max {_cdl_value(st['max'], v['dtype'])}")
    lines.append(f"\t\t// {'; '.join(details)}")
    return lines


def format_dataset(info: dict[str, Any]) -> str:
    """An ``ncdump -h``-like text view of :func:`describe_dataset`'s result."""
    lines = [f"dataset {json.dumps(info['name'], ensure_ascii=False)} {{", "dimensions:"]
    for d, n in info["dimensions"].items():
        size = n if isinstance(n, int) else " | ".join(str(x) for x in n) + "  // differs between variables"
        lines.append(f"\t{d} = {size} ;")
    lines.append("variables:")
    for v in info["variables"]:
        lines.extend(_variable_lines(v))
    if info["attributes"]:
        lines.append("")
        lines.append("// global attributes:")
        for k, val in info["attributes"].items():
            lines.append(f"\t\t:{k} = {_cdl_value(val)} ;")
    lines.append("}")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    """Describe one dataset."""
    store = open_store(args.store)
    info = describe_dataset(store, args.dataset)
    if args.json:
        print_json(info)
    else:
        print(format_dataset(info))
    return EXIT_OK
