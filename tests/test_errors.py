"""The error types: each one is caught by the builtin a caller of the original API would
catch, and by ``AtlasError``."""

from __future__ import annotations

import pytest

import atlas
from atlas import errors


@pytest.mark.parametrize(
    ("error", "builtins"),
    [
        (errors.StoreNotFoundError, (RuntimeError, FileNotFoundError, OSError)),
        (errors.StorageError, (OSError,)),
        (errors.ConflictError, (RuntimeError,)),
        (errors.CommitOutcomeUnknownError, (RuntimeError,)),
        (errors.CorruptionError, (RuntimeError,)),
        (errors.ReadOnlyError, (PermissionError, OSError)),
        (errors.VersionRemovedError, (KeyError, LookupError)),
    ],
)
def test_each_error_is_an_atlas_error_and_the_builtin_callers_expect(
    error: type[Exception], builtins: tuple[type[Exception], ...]
) -> None:
    assert issubclass(error, errors.AtlasError)
    for builtin in builtins:
        with pytest.raises(builtin):
            raise error("boom")
    assert getattr(atlas, error.__name__) is error  # exported by the package


def test_errors_that_are_not_failures_of_each_other() -> None:
    # a conflict is no corruption, and neither is a storage failure
    assert not issubclass(errors.ConflictError, errors.CorruptionError)
    assert not issubclass(errors.CorruptionError, OSError)
    assert not issubclass(errors.StorageError, RuntimeError)


def test_a_removed_version_is_told_in_plain_words() -> None:
    message = "version 3 of the store at /s was removed by compaction; reopen the store"
    error = errors.VersionRemovedError(message)
    assert str(error) == message  # a plain KeyError would show it quoted
    assert str(KeyError(message)) == repr(message)
    assert str(errors.VersionRemovedError()) == ""

