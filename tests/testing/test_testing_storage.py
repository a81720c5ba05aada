"""``atlas.testing.storage``: the suite a third-party backend subclasses passes a correct
store and catches broken ones."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable

import pytest

from atlas.storage import MemoryStorage, check_key
from atlas.storage.base import BytesLike
from atlas.testing.storage import BAD_KEYS, StorageSuite


@pytest.mark.parametrize("key", BAD_KEYS)
def test_the_bad_keys_are_those_atlas_refuses(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


class _Overwrites(MemoryStorage):
    """put_if_absent that writes whatever is there."""

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        self.put(key, data)
        return True


class _Unsorted(MemoryStorage):
    """A listing in the order keys were written."""

    def list(self, prefix: str = "") -> builtins.list[str]:
        return [k for k in self._shared.data if k.startswith(prefix)]


class _Lax(MemoryStorage):
    """A store that takes any key on reads."""

    def exists(self, key: str) -> bool:
        return key in self._shared.data


def _checks() -> dict[str, Callable[[StorageSuite, MemoryStorage], None]]:
    return {
        "put_if_absent": lambda suite, s: suite.test_put_if_absent(s),
        "list": lambda suite, s: suite.test_list(s, s),
        "bad_keys": lambda suite, s: suite.test_bad_keys_are_rejected(s),
    }


@pytest.mark.parametrize("check", sorted(_checks()))
def test_a_correct_store_passes(check: str) -> None:
    name = f"suite-check-{uuid.uuid4().hex}"
    try:
        _checks()[check](StorageSuite(), MemoryStorage(name))
    finally:
        MemoryStorage.discard(name)


@pytest.mark.parametrize(
    ("check", "broken"), [("put_if_absent", _Overwrites), ("list", _Unsorted), ("bad_keys", _Lax)]
)
def test_a_broken_store_fails(check: str, broken: type[MemoryStorage]) -> None:
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        _checks()[check](StorageSuite(), broken())
