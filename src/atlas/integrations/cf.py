"""CF encoding, written once: how a variable goes into a store and how it is decoded back.

Used by ``add_xarray_dataset``, ``open_as_xarray_dataset``, the ``engine="atlas"``
backend, ``atlas export`` and ``atlas show``. It reuses xarray's own machinery: on the way
in, the chain xarray's netCDF4 backend runs before writing a file
(``encode_dataset_coordinates``, ``cf_encoder``, ``ensure_dtype_not_object``, the string
coders); on the way out, ``decode_cf_variables`` through xarray's store backend, with
every decode option xarray takes.

What is stored, per variable (see ``docs/format.md``, "CF encoding record"):

* **decoded**, when the decoded values are something Atlas holds natively (ints, float32/64,
  bool, datetime64 that fit nanoseconds, strings): the array holds the physical values, so
  scans and ``read_array`` give them. Opening re-encodes a window as xarray would write it
  (the same on-disk form a netCDF file would hold) and lets xarray decode it;
* **encoded**, otherwise (timedelta64, cftime dates, dates outside datetime64[ns], object
  arrays of numbers, float16 packed by its encoding...): the array holds the numbers xarray
  would write (an ingested file's own numbers, ``ON_DISK_NUMBERS``), with their units and
  calendar, decoded on opening.

The record of each variable (its on-disk dims, dtype and typed attributes, in order) is the
dataset attribute ``_pyatlas_cf``. Variable attributes are also stored as
``"{var}.{attr}"`` dataset attributes (the 0.10 layout the catalogue and ``find`` read);
edits made there later win over the record on opening.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtypes import DType
from .cf_values import pack
from .conventions import (
    RECORD_ATTR,
    is_default_fill,
)

if TYPE_CHECKING:
    import xarray as xr


__all__ = [
    "DECODE_OPTIONS",
    "ON_DISK_NUMBERS",
    "RECORD_ATTR",
    "EncodedVariable",
    "add_fill",
    "encode_dataset",
    "pack",
]

RECORD_VERSION = 1

#: The decode options the engine and ``open_as_xarray_dataset`` take (as xarray's own
#: backends do); ``decode_cf=False`` turns the first five off (xarray does that itself).
DECODE_OPTIONS = (
    "mask_and_scale",
    "decode_times",
    "concat_characters",
    "decode_coords",
    "use_cftime",
    "decode_timedelta",
    "drop_variables",
    "set_indexes",
)

#: The ``.encoding`` key under which a file's reader leaves a variable's on-disk numbers
#: when xarray decodes them to objects (cftime dates): encoding those again would round
#: them to microseconds and turn missing cells (decoded as the reference date) into 0.
ON_DISK_NUMBERS = "_atlas_on_disk_numbers"

#: Attributes holding the encoding of a variable: what re-encoding a window needs.
_CODING_ATTRS = ("_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar", "_Unsigned")

#: Encoding keys an ``encoding=`` entry may hold (xarray's netCDF4 list, plus the CF ones
#: and Atlas's ``chunks``).
VALID_ENCODINGS = frozenset(
    {
        "dtype", "_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar",
        "_Unsigned", "_Encoding", "char_dim_name", "chunks", "chunksizes", "preferred_chunks",
        "zlib", "szip", "bzip2", "blosc", "zstd", "complevel", "fletcher32", "contiguous", "shuffle",
        "compression", "significant_digits", "quantize_mode", "blosc_shuffle", "szip_coding",
        "szip_pixels_per_block", "endian", "least_significant_digit", "coordinates",
        "source", "original_shape",
    }
)


# ----------------------------------------------------------------------------- writing


@dataclass
class EncodedVariable:
    """One variable as it goes into the store: the data to store and its CF record."""

    name: str
    data: xr.Variable  # what the atlas array holds (decoded or encoded values)
    form: str  # "decoded" or "encoded"
    disk_dims: tuple[str, ...]
    disk_dtype: str
    disk_attrs: dict[str, Any]
    user_attrs: dict[str, Any]  # the variable's own attributes (also stored as "{var}.{attr}")
    strings: str | None = None  # "bytes" or "str" for strings stored decoded
    nchar: int | None = None  # length of the char dim, for char arrays
    string_fill: str | None = None  # what missing string cells are stored as
    none_name: bool = False  # the variable's name is None (stored as "None")

    def record(self) -> dict[str, Any]:
        """The entry of ``_pyatlas_cf`` for this variable."""
        out: dict[str, Any] = {
            "form": self.form,
            "dims": list(self.disk_dims),
            "dtype": self.disk_dtype,
            "attrs": [[k, pack(v)] for k, v in self.disk_attrs.items()],
            "user": [k for k in self.user_attrs if k != "_FillValue"],  # that one is the array fill
            "coding": [k for k in self.disk_attrs if k not in self.user_attrs],
        }
        if self.none_name:
            out["none"] = True
        if self.strings is not None:
            out["strings"] = self.strings
        if self.nchar is not None:
            out["nchar"] = self.nchar
        return out


@dataclass
class EncodedDataset:
    """A whole Dataset encoded: its variables and global attributes, with the record."""

    variables: list[EncodedVariable]
    attrs: dict[str, Any]  # the dataset's own attributes
    disk_attrs: dict[str, Any]  # what a netCDF file would hold (``coordinates`` added)
    encoding: dict[str, Any] = field(default_factory=dict)

    def record(self) -> str:
        """The value of the ``_pyatlas_cf`` dataset attribute."""
        doc = {
            "version": RECORD_VERSION,
            "variables": {v.name: v.record() for v in self.variables},
            "attrs": [[k, pack(v)] for k, v in self.disk_attrs.items()],
            "user": list(self.attrs),
            "encoding": {k: pack(v) for k, v in self.encoding.items()},
        }
        return json.dumps(doc, allow_nan=False)


def _validate_names(ds: xr.Dataset) -> None:
    try:
        from xarray.backends.writers import _validate_dataset_names
    except ImportError:  # pragma: no cover - older xarray
        from xarray.backends.api import _validate_dataset_names  # type: ignore[attr-defined,no-redef]
    _validate_dataset_names(ds)


def _dataset_encoding(ds: xr.Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unlimited = ds.encoding.get("unlimited_dims")
    if unlimited is not None:  # an empty set too: xarray's netCDF4 backend always gives one
        out["unlimited_dims"] = sorted([unlimited] if isinstance(unlimited, str) else [str(d) for d in unlimited])
    fmt = ds.encoding.get("format")
    if isinstance(fmt, str):
        out["format"] = fmt
    return out


def encode_dataset(ds: xr.Dataset, encoding: Mapping[Hashable, Any] | None = None) -> EncodedDataset:
    """Encode ``ds`` the way xarray's netCDF4 backend does before writing a file.

    ``encoding`` is xarray's ``{var: {key: value}}``; each variable's ``.encoding`` counts
    too. Raises what xarray raises for the same input (``KeyError`` for an encoding of a
    missing variable, ``ValueError`` for unexpected encoding keys or bad names,
    ``NotImplementedError`` for a MultiIndex), and ``NotImplementedError`` naming the
    variable for data Atlas cannot hold in any form.
    """
    from xarray import conventions
    from xarray.backends.common import ensure_dtype_not_object

    if encoding is None:
        encoding = {}
    if not isinstance(encoding, Mapping):
        raise TypeError(f"encoding must be a dict {{variable: {{key: value}}}}, not {type(encoding).__name__}")
    _validate_names(ds)
    for vname in ds.variables:
        conventions.ensure_not_multiindex(ds.variables[vname], name=vname)
    variables, disk_global = conventions.encode_dataset_coordinates(ds)
    _keep_file_coordinates(ds, variables)
    checked = set()
    for k, enc in encoding.items():
        try:
            enc = dict(enc)
        except (TypeError, ValueError) as err:
            raise ValueError(f"encoding of variable {k!r} must be castable to a dictionary, got {enc!r}") from err
        variables[k].encoding = enc  # KeyError for a variable the Dataset lacks, as xarray
        checked.add(k)
    for k in checked:
        bad = set(variables[k].encoding) - VALID_ENCODINGS
        if bad:
            raise ValueError(
                f"unexpected encoding parameters for variable {k!r}: {sorted(bad)}; "
                f"valid encodings are {sorted(VALID_ENCODINGS)}"
            )
    for k, var in variables.items():
        enc = var.encoding
        if "original_shape" in enc and "_FillValue" not in enc and "_FillValue" not in var.attrs:
            # decoded from a file that had no _FillValue: write none (not xarray's NaN default)
            var.encoding = {**enc, "_FillValue": None}
        variables[k] = _fixed_width_bytes(var)
    decoded = dict(variables)
    # numbers and bools are stored decoded, so only their on-disk dtype and attributes are
    # needed, which do not depend on the values: encode one cell, not the whole array
    # (fixed-width bytes too: their width is in the dtype)
    sample = {k: _one_cell(v) if _storable(v.dtype) or v.dtype.kind == "S" else v for k, v in variables.items()}
    with warnings.catch_warnings():
        # judged on one cell, not the data: a packed integer variable read from a file
        # without a _FillValue holds no NaN, and the array keeps the physical values anyway
        warnings.filterwarnings("ignore", "saving variable .* as an integer dtype without any _FillValue")
        encoded, disk_global = _cf_encoder(sample, disk_global)
    out = []
    for name, var in encoded.items():
        try:
            ev = _encode_variable(str(name), decoded[name], ensure_dtype_not_object(var, name=name))
            ev.none_name = name is None
            out.append(ev)
        except (NotImplementedError, TypeError, ValueError, OverflowError) as e:
            if f"{name!r}" in str(e) or f"variable {name}" in str(e):
                raise
            raise type(e)(f"variable {name!r}: {e}") from e
    order = {str(k): i for i, k in enumerate([*ds.coords, *ds.data_vars])}  # the 0.10 array order
    out.sort(key=lambda ev: order.get(ev.name, len(order)))
    return EncodedDataset(out, dict(ds.attrs), dict(disk_global), _dataset_encoding(ds))


#: Numbers and bools encoded before, by what their encoding depends on (see _cf_encoder).
_ENCODED: dict[tuple[Any, ...], tuple[xr.Variable, list[tuple[type[Warning], str]]]] = {}
_ENCODED_MAX = 4096
#: Encoding keys that say where a variable came from or how it was stored, which no
#: coder reads (and which differ from file to file).
_PROVENANCE_KEYS = frozenset({"source", "original_shape"})


class _Unkeyed(Exception):
    """A value that cannot be part of a memo key."""


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an attribute or encoding value, telling types apart."""
    if isinstance(value, np.ndarray):
        return ("a", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return ("g", value.dtype.str, value.tobytes())
    if isinstance(value, np.dtype):
        return ("d", value.str)
    if isinstance(value, (list, tuple)):
        return ("l", tuple(_frozen(v) for v in value))
    if value is None or isinstance(value, (str, bytes, bool, int, float)):
        return (type(value).__name__, value)
    raise _Unkeyed


def _memo_key(name: Hashable, var: xr.Variable) -> tuple[Any, ...] | None:
    """What xarray's CF encoding of a number, bool or fixed-width bytes variable depends
    on: its name, dims, dtype (for bytes, their width), attributes and encoding (not its
    values); None for other variables."""
    if not (_storable(var.dtype) or var.dtype.kind == "S"):
        return None
    try:
        return (
            name, var.dims, var.dtype.str,
            tuple((k, _frozen(v)) for k, v in var.attrs.items()),
            tuple((k, _frozen(v)) for k, v in var.encoding.items() if k not in _PROVENANCE_KEYS),
        )
    except (_Unkeyed, TypeError):
        return None


def _cf_encoder(variables: dict[Hashable, xr.Variable], attributes: Any) -> tuple[dict[Hashable, xr.Variable], Any]:
    """``xarray.conventions.cf_encoder``, remembering the encoding of number, bool and
    fixed-width bytes variables: its dtype, dims and attributes depend on the variable's
    name, dims, dtype, attributes and encoding, never on its values (of which only one cell
    is encoded here, and not used), and files of one kind repeat the same variables by
    the thousand.

    A dataset whose variables name ``bounds`` goes through ``cf_encoder`` itself (it
    then relates variables to each other); otherwise ``cf_encoder`` is exactly
    ``encode_cf_variable`` of each variable."""
    from xarray import conventions

    if any("bounds" in v.attrs for v in variables.values()):
        return conventions.cf_encoder(variables, attributes)
    out = {}
    for k, v in variables.items():
        key = _memo_key(k, v)
        if key is None:
            out[k] = conventions.encode_cf_variable(v, name=k)
            continue
        hit = _ENCODED.get(key)
        if hit is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                encoded = conventions.encode_cf_variable(v, name=k)
            hit = (encoded, [(w.category, str(w.message)) for w in caught])
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.clear()
            _ENCODED[key] = hit
        for category, message in hit[1]:  # what encoding it says, every time
            warnings.warn(message, category, stacklevel=3)
        out[k] = hit[0]
    return out, attributes


def _one_cell(var: xr.Variable) -> xr.Variable:
    """The first cell of ``var`` (or ``var`` when empty), with its attributes and encoding."""
    import xarray as xr

    if var.size <= 1:
        return var
    key = tuple(slice(0, 1) for _ in var.shape)
    return xr.Variable(var.dims, np.asarray(var[key].values), var.attrs, var.encoding)


def _keep_file_coordinates(ds: xr.Dataset, variables: Mapping[str, xr.Variable]) -> None:
    """Leave a ``coordinates`` attribute off the variables read from a file that had none:
    xarray's encoding gives one to every variable sharing dimensions with the coordinates
    (a variable read with one keeps it in its encoding, and gets it back)."""
    for name, var in variables.items():
        read = ds.variables.get(name)
        if (
            read is not None and "coordinates" in var.attrs and "coordinates" not in read.encoding
            and "coordinates" not in read.attrs and "original_shape" in read.encoding
        ):
            var.attrs = {k: v for k, v in var.attrs.items() if k != "coordinates"}


def _chunked(var: xr.Variable) -> bool:
    """Whether ``var`` is backed by a chunked (dask) array; numpy data answers without
    ``Variable.chunks``, whose protocol checks cost more than encoding a small variable."""
    return not isinstance(getattr(var, "_data", None), np.ndarray) and var.chunks is not None


def _char_width(var: xr.Variable) -> int:
    """The length of the char dimension a variable was read from (0 when unknown)."""
    shape = var.encoding.get("original_shape")
    if "char_dim_name" in var.encoding and isinstance(shape, tuple) and len(shape) == var.ndim + 1:
        return int(shape[-1])
    return 0


def _fixed_width_bytes(var: xr.Variable) -> xr.Variable:
    """An object array of bytes (or all missing, or empty) read from a char array (encoding
    dtype ``S1``) as fixed-width bytes again, missing cells as the fill, so it is written
    back as the same char array (xarray would infer float64 for an empty or all-NaN one)."""
    if var.encoding.get("dtype") != np.dtype("S1") or _chunked(var):
        return var
    if var.dtype.kind == "S":  # strings shorter than their char dimension: widened back to it
        width = _char_width(var)
        if width > var.dtype.itemsize:
            import xarray as xr

            return xr.Variable(var.dims, np.asarray(var.values).astype(f"S{width}"), var.attrs, var.encoding)
        return var
    if var.dtype.kind != "O":
        return var
    import pandas as pd

    values = np.asarray(var.values)
    flat = values.reshape(-1)
    missing = np.asarray(pd.isna(flat), dtype=bool) if flat.size else np.zeros(0, bool)
    attrs, encoding = var.attrs, var.encoding
    if not all(isinstance(x, bytes) for x in flat[~missing]):
        # text decoded by its _Encoding: encoded back here, so that it keeps the width of
        # its char dimension (xarray would size the dimension by the longest text)
        text = encoding.get("_Encoding")
        if not isinstance(text, str) or not all(isinstance(x, str) for x in flat[~missing]):
            return var
        try:
            flat = np.array([x.encode(text) if isinstance(x, str) else x for x in flat], dtype=object)
        except (LookupError, UnicodeError):
            return var
        attrs = {**attrs, "_Encoding": text}
        encoding = {k: v for k, v in encoding.items() if k != "_Encoding"}
    width = max(1, _char_width(var))
    fill = encoding.get("_FillValue", b"")
    if isinstance(fill, str) and isinstance(attrs.get("_Encoding"), str):
        fill = fill.encode(attrs["_Encoding"])
    fill = bytes(fill) if isinstance(fill, (bytes, np.bytes_)) else b""
    filled = flat.copy()
    filled[missing] = fill
    out = filled.astype("S") if flat.size else np.zeros(0, "S1")
    out = out.astype(f"S{max(width, out.dtype.itemsize, len(fill))}")
    import xarray as xr

    return xr.Variable(var.dims, out.reshape(values.shape), attrs, encoding)


def _masked_objects(var: xr.Variable, enc: xr.Variable) -> xr.Variable:
    """The encoded numbers of an object array (cftime dates): the file's own numbers when
    its reader left them (``ON_DISK_NUMBERS``), else xarray's encoding with the missing
    cells as the ``_FillValue`` (xarray's date encoding leaves them 0)."""
    raw = var.encoding.get(ON_DISK_NUMBERS)
    if raw is not None and tuple(raw.shape) == enc.shape and raw.dtype.kind == enc.dtype.kind:
        return enc.copy(data=raw.astype(enc.dtype.newbyteorder("=")))
    fill = enc.attrs.get("_FillValue", enc.encoding.get("_FillValue"))
    if var.dtype.kind != "O" or fill is None or _chunked(var):
        return enc
    import pandas as pd

    missing = np.asarray(pd.isna(np.asarray(var.values)), dtype=bool)
    if not missing.any():
        return enc
    values = np.array(enc.values, copy=True)
    values[missing] = fill
    return enc.copy(data=values)


def _single_chars(var: xr.Variable) -> bool:
    """Whether ``var`` was read from a char array without a char dimension."""
    enc = var.encoding
    return (
        enc.get("dtype") == np.dtype("S1") and "char_dim_name" not in enc
        and tuple(enc.get("original_shape", ())) == tuple(var.shape)
    )


_HALF = np.dtype("float16")


def _storable(dtype: np.dtype[Any]) -> bool:
    kind = dtype.kind
    return kind in "iub" or (kind == "f" and dtype.itemsize in (4, 8))


def _fits_ns(var: xr.Variable) -> bool:
    """Whether a datetime64 variable converts to nanoseconds without overflow."""
    if var.dtype == np.dtype("datetime64[ns]") or _chunked(var):
        return True  # dask input is converted block by block (an overflow raises then)
    arr = np.asarray(var.values)
    try:
        ns = arr.astype("datetime64[ns]")
    except (OverflowError, ValueError):  # pragma: no cover - numpy raises on some versions
        return False
    return bool(np.all((ns.astype(arr.dtype) == arr) | np.isnat(arr)))


def _string_kind(dtype: np.dtype[Any]) -> str | None:
    """"bytes" or "str" when ``dtype`` holds strings (object dtypes by xarray's vlen mark)."""
    kind = dtype.kind
    if kind == "S":
        return "bytes"
    if kind in "UT":
        return "str"
    if kind == "O":
        from xarray.coding.strings import check_vlen_dtype

        vlen = check_vlen_dtype(dtype)
        return "bytes" if vlen is bytes else "str" if vlen is str else None
    return None


def _is_strings(var: xr.Variable, enc: xr.Variable) -> str | None:
    """"bytes" or "str" when ``var`` holds strings (an unmarked object array judged by
    xarray's encoding of it)."""
    found = _string_kind(var.dtype)
    if found is None and var.dtype.kind == "O":
        return _string_kind(enc.dtype)
    return found


def _encode_variable(name: str, var: xr.Variable, enc: xr.Variable) -> EncodedVariable:
    """Choose the stored form of one variable; ``enc`` is xarray's CF encoding of it."""
    from xarray.backends.netCDF4_ import _encode_nc4_variable, _force_native_endianness

    user_attrs = dict(var.attrs)
    strings = _is_strings(var, enc)
    if strings is not None:
        disk = _encode_nc4_variable(_force_native_endianness(enc), name=name)
        disk_dims = tuple(str(d) for d in disk.dims)
        nchar = None
        if disk.dtype == np.dtype("S1") and len(disk_dims) == len(var.dims) + 1:
            nchar = int(disk.shape[-1])
            if nchar == 1 and _single_chars(var):  # read from an S1 array without a char dim
                disk_dims, nchar = disk_dims[:-1], None
        disk_dtype = "S1" if disk.dtype == np.dtype("S1") else "str"
        attrs = dict(disk.attrs)
        fill = attrs.get("_FillValue")
        string_fill = None
        if fill is not None:
            string_fill = bytes(fill).decode(_text_encoding(attrs), "replace") if isinstance(fill, (bytes, np.bytes_)) else str(fill)
        data = var
        if var.dtype.kind == "T":
            data = var.copy(data=np.asarray(var.values, dtype=object))
        return EncodedVariable(
            name, data, "decoded", disk_dims, disk_dtype, attrs, user_attrs, strings, nchar, string_fill
        )
    enc = _force_native_endianness(enc)
    disk_dtype = np.dtype(enc.dtype)
    half = var.dtype == _HALF and disk_dtype == _HALF  # held as float32, written back as float16
    if not (_storable(disk_dtype) or half):
        raise NotImplementedError(
            f"variable {name!r} has dtype {var.dtype} (written as {disk_dtype}), which Atlas cannot store; "
            "convert it, or give an encoding dtype Atlas holds (int8..uint64, float16..64)"
        )
    decoded_ok = half or _storable(var.dtype) or (var.dtype.kind == "M" and _fits_ns(var))
    form = "decoded" if decoded_ok else "encoded"
    data = (var.astype("f4") if half else var) if decoded_ok else _masked_objects(var, enc)
    disk_attrs = dict(enc.attrs)
    unsigned = var.encoding.get("_Unsigned")
    if unsigned is not None and "_Unsigned" not in disk_attrs and disk_dtype.kind == "i":
        disk_attrs["_Unsigned"] = unsigned  # xarray writes it only beside a fill value
    if (
        unsigned is not None and "_FillValue" in var.encoding and var.encoding["_FillValue"] is None
        and "missing_value" in disk_attrs
    ):
        disk_attrs.pop("_FillValue", None)  # xarray adds the missing_value as one; the file had none
    calendar = disk_attrs.get("calendar")
    if (
        "units" in var.encoding and "calendar" not in var.encoding and "calendar" not in var.attrs
        and (calendar in ("standard", "gregorian") or (calendar == "proleptic_gregorian" and var.dtype.kind == "M"))
    ):
        disk_attrs.pop("calendar", None)  # the source had none (the default): keep it so
    fill = disk_attrs.get("_FillValue")
    if fill is not None and disk_dtype.kind in "iuf" and not isinstance(fill, np.ndarray):
        try:  # on-disk type, as netCDF stores a _FillValue (255 for a u1 var is np.uint8(255))
            with np.errstate(all="ignore"):
                disk_attrs["_FillValue"] = np.array(fill).astype(disk_dtype)[()]
        except (TypeError, ValueError, OverflowError):
            pass
    given = var.encoding.get("units")
    if isinstance(given, str) and "units" in disk_attrs and "units" not in var.attrs:
        disk_attrs["units"] = given  # as written (xarray normalises "... 00:00:00 UTC")
    return EncodedVariable(
        name, data, form, tuple(str(d) for d in enc.dims), disk_dtype.name, disk_attrs, user_attrs
    )


def _text_encoding(attrs: Mapping[str, Any]) -> str:
    value = attrs.get("_Encoding", "utf-8")
    return value if isinstance(value, str) else "utf-8"


def add_fill(ev: EncodedVariable, dt: DType, fill: Any) -> None:
    """Record an explicit Atlas fill (``fill_value=``) as the on-disk ``_FillValue`` of a
    variable that has none, as a netCDF file of the same data would hold it."""
    if fill is None or is_default_fill(dt, fill):
        return
    have = ev.disk_attrs.get("_FillValue")
    if have is not None and not (isinstance(have, (float, np.floating)) and math.isnan(have)):
        return  # the variable's own _FillValue (a NaN one is xarray's default for floats)
    if dt.is_string:
        ev.disk_attrs["_FillValue"] = fill if ev.disk_dtype == "str" else np.bytes_(fill.encode("utf-8"))
    elif dt.kind in ("int", "uint", "float") and np.dtype(ev.disk_dtype) == dt.numpy:
        ev.disk_attrs["_FillValue"] = dt.numpy.type(fill)
