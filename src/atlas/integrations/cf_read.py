"""Reading the CF record of a dataset: the on-disk layout a dataset written by
``add_xarray_dataset`` opens as (``decoded_layout``), and each window read re-encoded to its
on-disk form before xarray decodes it (``encode_window``). The record itself and the writing
side are :mod:`atlas.integrations.cf`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtypes import DTYPES
from .cf import _CODING_ATTRS, RECORD_ATTR, _text_encoding
from .cf_values import plain_value, same_value, unpack
from .conventions import decode_attribute, is_default_fill, json_attribute, sort_attributes

if TYPE_CHECKING:
    from ..core.dataset import DatasetView

__all__ = ["decoded_layout", "encode_window", "read_record"]


def read_record(view: DatasetView) -> dict[str, Any] | None:
    """The ``_pyatlas_cf`` record of a dataset, or None (written before it existed, or by
    the core API)."""
    doc = json_attribute(view.attributes().get(RECORD_ATTR), dict)
    if doc is None or not isinstance(doc.get("variables"), dict):
        return None
    return doc


def _merged_attrs(
    recorded: list[list[Any]], user: list[str], current: Mapping[str, Any]
) -> dict[str, Any]:
    """Recorded on-disk attributes (typed, in order), with later edits of the user's
    ``"{var}.{attr}"`` copies applied (changed values, deletions, additions)."""
    out: dict[str, Any] = {}
    users = set(user)
    for key, packed in recorded:
        value = unpack(packed)
        if key not in users:
            out[key] = value
        elif key in current:
            now = current[key]
            if type(value) is str and type(now) is str:  # most attributes: no conversion to compare
                out[key] = now
            else:
                out[key] = value if same_value(plain_value(value), now) else now
    for key, value in current.items():
        if key not in out and key not in users:
            out[key] = value
    return out


def decoded_layout(view: DatasetView) -> tuple[dict[str, dict[str, Any]], dict[str, Any]] | None:
    """``({array: on-disk spec with merged attrs}, dataset spec)`` of a dataset with a CF
    record, else None."""
    record = read_record(view)
    if record is None:
        return None
    arrays = view.list_arrays()
    names = set(arrays)
    attrs = view.attributes()
    globals_, copies = sort_attributes(attrs, names)
    own: dict[str, dict[str, Any]] = {a: copies.get(a, {}) for a in arrays}
    specs: dict[str, dict[str, Any]] = {}
    for a in arrays:
        for k, v in view.array_attributes(a).items():
            own[a].setdefault(k, decode_attribute(v))
        spec = record["variables"].get(a)
        meta = view.array_meta(a)
        assert meta is not None
        if spec is None:  # added later through the core API: as the 0.10 layout
            fill = view.array_fill_value(a)
            plain = dict(own[a])
            if fill is not None and not is_default_fill(DTYPES[meta["dtype"]], fill):
                plain["_FillValue"] = fill
            spec = {"form": "plain", "dims": meta["dimension_names"], "attrs": [], "user": []}
            specs[a] = {**spec, "merged": plain, "meta": meta}
            continue
        merged = _merged_attrs(spec.get("attrs", []), spec.get("user", []), own[a])
        specs[a] = {**spec, "merged": merged, "meta": meta}
    ds_spec = {
        "attrs": _merged_attrs(record.get("attrs", []), record.get("user", []), globals_),
        "encoding": {k: unpack(v) for k, v in record.get("encoding", {}).items()},
    }
    return specs, ds_spec


def _coding_encoding(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The encoding that re-encodes a decoded window exactly as it was written."""
    attrs = spec["merged"]
    coding = set(spec.get("coding", ()))
    enc = {k: attrs[k] for k in _CODING_ATTRS if k in attrs and k in coding}
    enc["dtype"] = np.dtype(spec["dtype"])
    return enc


def encode_window(spec: Mapping[str, Any], dims: tuple[str, ...], window: np.ndarray) -> np.ndarray:
    """A window of a decoded array as it is on disk (numbers, or chars for char arrays)."""
    if spec.get("strings") is not None:
        return _string_window(spec, window)
    import xarray as xr
    from xarray import conventions
    from xarray.coding.variables import SerializationWarning

    encoding = _coding_encoding(spec)
    if window.dtype == encoding["dtype"] and _identity(encoding):
        return window  # nothing to encode: the stored values are the on-disk ones
    missing = _all_missing_times(window, encoding)
    if missing is not None:
        return missing
    var = xr.Variable(dims, window, {}, encoding)
    with warnings.catch_warnings():
        # what it warns about (float to int without a fill...) was said when it was written
        warnings.simplefilter("ignore", SerializationWarning)
        out = conventions.encode_cf_variable(var)
    return np.asarray(out.values).astype(np.dtype(spec["dtype"]), copy=False)


def _all_missing_times(window: np.ndarray, encoding: Mapping[str, Any]) -> np.ndarray | None:
    """A window of dates or durations that are all NaT, as the fill it is on disk (xarray
    cannot encode such a window: it takes its units from the dates it holds); None for
    other windows."""
    if window.dtype.kind not in "mM" or window.size == 0 or not np.isnat(window).all():
        return None
    dtype = np.dtype(encoding["dtype"])
    fill = encoding.get("_FillValue", encoding.get("missing_value"))
    if fill is None and dtype.kind == "f":
        fill = np.nan
    if fill is None:
        return None
    return np.full(window.shape, fill, dtype=dtype)


def _identity(encoding: Mapping[str, Any]) -> bool:
    """Whether encoding with ``encoding`` leaves values of its dtype unchanged (no coding
    but a NaN ``_FillValue``)."""
    for key, value in encoding.items():
        if key == "dtype":
            continue
        if key == "_FillValue" and isinstance(value, (float, np.floating)) and math.isnan(value):
            continue
        return False
    return True


def _string_window(spec: Mapping[str, Any], window: np.ndarray) -> np.ndarray:
    flat = window.reshape(-1)
    if spec["dtype"] != "S1":  # vlen strings
        if spec["strings"] == "bytes":
            out = np.empty(flat.shape, dtype=object)
            out[:] = [s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s for s in flat]
            return out.reshape(window.shape)
        return window
    codec = _text_encoding(spec["merged"])
    nchar = spec.get("nchar") or 1
    data = np.array(
        [s.encode(codec, "replace") if isinstance(s, str) else bytes(s) for s in flat], dtype=f"S{nchar}"
    ).reshape(window.shape)
    if spec.get("nchar") is None:
        return data.astype("S1")
    return data.reshape(-1).view("S1").reshape(*window.shape, nchar)
