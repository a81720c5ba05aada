"""The xarray conventions: how an ``xarray.Dataset`` is laid out in one Atlas dataset.

Written once here for everything that reads or writes that layout (the xarray methods,
the ``engine="atlas"`` backend, the NetCDF ingest, the command line):

* every coordinate, then every data variable, becomes one atlas array;
* dtypes map as :func:`atlas_dtype` says (ints, float32/64, bool, ``datetime64`` as
  nanosecond timestamps, strings); other dtypes are refused;
* per-variable attributes are stored as dataset attributes ``"{var}.{attr}"``
  (:func:`variable_attribute_key`; the longest array name wins on reading, so both
  names may hold dots); attributes set on the array itself count too;
* attribute values that are not ``bool``/``int``/``float``/``str`` are stored as
  ``"json:" + json.dumps(value)`` (:func:`encode_attribute`, :func:`decode_attribute`);
* ``_pyatlas_coords`` holds the JSON list of coordinate names; without it, a 1-D
  array whose only dimension is its own name is a coordinate;
* ``_FillValue`` moves between the variable attributes and the array fill value; the
  default fills (NaN, NaT, ``""``) are not shown as ``_FillValue`` on reading.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..dtypes import DTYPES, DType, validate_fill

if TYPE_CHECKING:
    import xarray as xr

    from ..core.dataset import DatasetView

__all__ = [
    "BOOKKEEPING_PREFIX",
    "COORDS_ATTR",
    "RECORD_ATTR",
    "is_bookkeeping",
    "FILL_VALUE_ATTR",
    "JSON_PREFIX",
    "NAT",
    "atlas_dtype",
    "assemble_dataset",
    "attribute_owner",
    "coerce_fill",
    "coordinates_marker",
    "decode_attribute",
    "default_fill",
    "encode_attribute",
    "is_default_fill",
    "json_attribute",
    "sort_attributes",
    "split_attributes",
    "variable_attribute_key",
]

COORDS_ATTR = "_pyatlas_coords"
#: The CF encoding record of a dataset written by ``add_xarray_dataset`` (see :mod:`.cf`).
RECORD_ATTR = "_pyatlas_cf"
# Dataset attributes Atlas keeps for itself (where an ingested file came from): never an xarray attribute.
BOOKKEEPING_PREFIX = "_atlas_"


def is_bookkeeping(key: str) -> bool:
    """Whether a dataset attribute is Atlas's own (coordinates, the CF record, provenance)."""
    return key in (COORDS_ATTR, RECORD_ATTR) or key.startswith(BOOKKEEPING_PREFIX)
JSON_PREFIX = "json:"
FILL_VALUE_ATTR = "_FillValue"
NAT = -(2**63)


# ----------------------------------------------------------------------------- dtypes


def atlas_dtype(dtype: Any, what: str = "variable") -> str:
    """The atlas dtype name for a numpy (or pandas) dtype, per the xarray conventions.

    Raises ``NotImplementedError`` for dtypes no atlas array holds (float16, complex,
    timedelta, structured...); ``add_xarray_dataset`` stores float16 as float32 and
    timedelta as its CF numbers first (:mod:`.cf`).
    """
    if not isinstance(dtype, np.dtype):
        try:
            import pandas as pd

            if pd.api.types.is_string_dtype(dtype):
                return "string"
        except ImportError:  # pragma: no cover - pandas is a dependency
            pass
        raise NotImplementedError(f"{what} has dtype {dtype}, which Atlas cannot store")
    kind = dtype.kind
    if kind in "iu" or (kind == "f" and dtype.itemsize in (4, 8)):
        return dtype.name  # int8..uint64, float32, float64 (any byte order)
    if kind == "b":
        return "bool"
    if kind == "M":
        return "timestamp_nanoseconds"
    if kind in "OUS":
        return "string"
    raise NotImplementedError(
        f"{what} has dtype {dtype}, which Atlas cannot store "
        "(supported: int8..uint64, float32, float64, bool, datetime64, strings); convert it first"
    )


# ----------------------------------------------------------------------------- fill values


def _scalar(value: Any) -> Any:
    """Unwrap numpy scalars and one-element arrays (netCDF attributes often are)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item() if value.dtype.kind != "M" else value.reshape(())[()]
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64):
        return value.item()
    return value


def coerce_fill(dt: DType, value: Any, var: str) -> Any:
    """Make a user-given or ``_FillValue`` fill fit the array's dtype, then validate it."""
    value = _scalar(value)
    if value is None:
        return None
    if dt.kind == "timestamp" and not isinstance(value, int):
        if isinstance(value, np.datetime64):
            value = int(value.astype("datetime64[ns]").view(np.int64))
        else:
            try:
                import pandas as pd

                ts = pd.Timestamp(value)
                value = NAT if ts is pd.NaT else int(ts.value)
            except (TypeError, ValueError):
                pass
    elif dt.is_string and isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return validate_fill(dt, value)
    except (TypeError, OverflowError) as e:
        raise type(e)(f"fill value for variable {var!r}: {e}") from None


def is_default_fill(dt: DType, fill: Any) -> bool:
    """Whether ``fill`` is the default of its kind (NaN, ``""``, NaT): not shown on read."""
    if dt.kind == "float":
        return isinstance(fill, float) and math.isnan(fill)
    if dt.is_string:
        return fill == ""
    if dt.kind == "timestamp":
        return fill == NAT
    return False


def default_fill(dt: DType) -> Any:
    """The fill of a variable without ``_FillValue``: NaN, NaT, ``""``, or none for ints."""
    if dt.kind == "float":
        return math.nan
    if dt.kind == "timestamp":
        return NAT
    if dt.is_string:
        return ""
    return None


# ----------------------------------------------------------------------------- attributes


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def encode_attribute(value: Any) -> tuple[Any, str | None]:
    """How an xarray attribute value is stored: ``(value, forced dtype or None)``.

    ``bool``/``int``/``float``/``str`` (numpy scalars unwrapped) are stored natively;
    ``bytes`` are decoded as UTF-8 and stored as ``str``; anything else becomes
    ``"json:" + json.dumps(value)`` (ndarrays as lists). A string that itself starts
    with ``"json:"`` is stored JSON-encoded too, so it reads back unchanged.
    """
    if isinstance(value, np.generic) and not isinstance(value, (np.datetime64, np.timedelta64)):
        value = value.item()
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return bool(value), None
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return int(value), None
        if 0 <= value < 2**64:
            return int(value), "uint64"
    elif isinstance(value, float):
        return float(value), None
    elif isinstance(value, str):
        if not value.startswith(JSON_PREFIX):
            return str(value), None
        return JSON_PREFIX + json.dumps(str(value)), None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return JSON_PREFIX + json.dumps(value, default=_json_default), None


def decode_attribute(value: Any) -> Any:
    """Inverse of :func:`encode_attribute` (``json:`` values decoded, others unchanged)."""
    if isinstance(value, str) and value.startswith(JSON_PREFIX):
        try:
            return json.loads(value[len(JSON_PREFIX) :])
        except ValueError:
            return value
    return value


def variable_attribute_key(variable: str, attr: str) -> str:
    """The dataset attribute holding attribute ``attr`` of variable ``variable``."""
    return f"{variable}.{attr}"


def attribute_owner(key: str, arrays: set[str]) -> tuple[str, str] | None:
    """``(array, attr)`` when ``key`` is ``"{array}.{attr}"`` for an array of the dataset.

    The longest array-name prefix wins, so array names and attribute names may both
    contain dots.
    """
    i = key.rfind(".")
    while i > 0:
        prefix = key[:i]
        if prefix in arrays:
            return prefix, key[i + 1 :]
        i = key.rfind(".", 0, i)
    return None


def sort_attributes(
    attrs: Mapping[str, Any], arrays: set[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A dataset's attributes as xarray sees them, decoded and without Atlas's bookkeeping:
    ``(dataset attributes, {array: attributes})``, each ``"{array}.{attr}"`` key under its
    array (:func:`attribute_owner`; only arrays with such keys appear), in ``attrs`` order."""
    own: dict[str, Any] = {}
    by_array: dict[str, dict[str, Any]] = {}
    for key, value in attrs.items():
        if is_bookkeeping(key):
            continue
        owner = attribute_owner(key, arrays)
        if owner is None:
            own[key] = decode_attribute(value)
        else:
            by_array.setdefault(owner[0], {})[owner[1]] = decode_attribute(value)
    return own, by_array


def coordinates_marker(names: list[str]) -> str:
    """The value of ``_pyatlas_coords`` for these coordinate names."""
    return json.dumps(names)


_J = TypeVar("_J")


def json_attribute(value: Any, kind: type[_J]) -> _J | None:
    """An attribute value holding JSON (a ``_pyatlas_*`` marker or record) parsed, when it
    is a str whose JSON is a ``kind`` (``list``, ``dict``); else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, kind) else None


def _marked_coordinates(marker: Any, names: set[str]) -> list[str] | None:
    """The coordinates a ``_pyatlas_coords`` value lists (None when it is not a JSON list)."""
    parsed = json_attribute(marker, list)
    if parsed is None:
        return None
    return [c for c in parsed if isinstance(c, str) and c in names]


def split_attributes(
    view: DatasetView,
) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, Any]]:
    """Read a dataset's xarray layout: ``(coordinate names, {array: attrs}, dataset attrs)``.

    Coordinates come from ``_pyatlas_coords``; without it, a 1-D array whose only dim is
    its own name is a coordinate. Per-array attributes (``set_array_attribute``) and
    ``"{array}.{attr}"`` dataset attributes become variable attributes; ``_FillValue``
    is added for explicit (non-default) fill values.
    """
    arrays = view.list_arrays()
    names = set(arrays)
    attrs = view.attributes()
    coords = _marked_coordinates(attrs.get(COORDS_ATTR), names)
    if coords is None:
        coords = []
        for a in arrays:
            meta = view.array_meta(a)
            if meta is not None and meta["dimension_names"] == [a]:
                coords.append(a)
    var_attrs: dict[str, dict[str, Any]] = {}
    for a in arrays:
        own = view.array_attributes(a)
        var_attrs[a] = {k: decode_attribute(v) for k, v in own.items()}
    ds_attrs, copies = sort_attributes(attrs, names)
    for a, copied in copies.items():
        var_attrs[a].update(copied)  # the dataset's "{array}.{attr}" copies win
    for a in arrays:
        fill = view.array_fill_value(a)
        meta = view.array_meta(a)
        if fill is not None and meta is not None and not is_default_fill(DTYPES[meta["dtype"]], fill):
            var_attrs[a][FILL_VALUE_ATTR] = fill
    return coords, var_attrs, ds_attrs


def assemble_dataset(
    variables: dict[str, xr.Variable], coords: list[str], attrs: dict[str, Any]
) -> xr.Dataset:
    """The ``xarray.Dataset`` of these variables: those named in ``coords`` (where present)
    as coordinates, the others as data variables."""
    import xarray as xr

    coord_set = {c for c in coords if c in variables}
    return xr.Dataset(
        {k: v for k, v in variables.items() if k not in coord_set},
        coords={k: variables[k] for k in coords if k in variables},
        attrs=attrs,
    )
