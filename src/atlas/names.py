"""Validation of dataset and array names.

Names are plain keys inside the manifest, never file names, so the only rules
are the ones the API promises.
"""

from __future__ import annotations


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid dataset or array name, else raise."""
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, not {type(name).__name__}")
    if name == "" or "/" in name or name.startswith("_") or name in (".", ".."):
        raise ValueError(
            f"invalid {what} name {name!r}: a name must be non-empty, contain no '/', "
            "not start with '_' and not be '.' or '..'"
        )
    return name


def check_key(key: object) -> str:
    """Attribute keys are free-form strings."""
    if not isinstance(key, str):
        raise TypeError(f"attribute key must be a str, not {type(key).__name__}")
    return key
