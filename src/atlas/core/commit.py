"""Publishing a commit and telling, whatever the storage did, whether it landed.

A commit is one manifest created with put-if-absent. Its header carries a random
**commit token**. When the put raises (a lost response, a failed directory fsync after
the link, a server error after the object was stored), the writer reads the manifest
back: its own token means the commit landed, another token means another writer's
commit holds the number, no manifest means nothing was committed. Only when even the
read-back fails is the outcome unknown; the handle then keeps what it needs to settle it
on the next ``flush()``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import CommitOutcomeUnknownError, CorruptionError
from ..format import manifest as mf
from ..format.codec import checksum

if TYPE_CHECKING:
    from ..storage.base import Storage

Outcome = Literal["ours", "theirs", "absent"]

# Read-backs after a failed put: attempts and the pause before each retry (seconds).
READ_BACK_PAUSES = (0.0, 0.05, 0.2, 0.5, 1.0)


def new_token() -> str:
    """A random commit token."""
    return secrets.token_hex(16)


@dataclass
class UnsettledCommit:
    """A commit whose put failed and whose read-back failed too."""

    version: int
    key: str
    token: str
    install: Callable[[], None]  # makes the handle's state the committed one
    lost: Callable[[], None]  # what to do when another writer's commit holds the number


def commit_outcome(storage: Storage, key: str, version: int, token: str) -> Outcome:
    """Whether the manifest at ``key`` is ours, another writer's, or absent.

    Ours only when it is whole (length and checksum of its body); one torn by the failed
    write counts as absent: nothing valid was committed. Retries a few times; raises the
    storage's last error if it never answers.
    """
    last: BaseException | None = None
    for pause in READ_BACK_PAUSES:
        if pause:
            time.sleep(pause)
        try:
            data = storage.get(key)
        except FileNotFoundError:
            return "absent"
        except Exception as e:  # the storage did not answer: try again
            last = e
            continue
        try:
            head, start = mf.decode_header(data, f"{storage.location}/{key}")
        except CorruptionError:
            return "theirs"  # a manifest is there, and not one we could have written
        if head.get("commit") != token:
            return "theirs"
        body = memoryview(data)[start:]
        if len(body) != head["body_length"] or checksum(body) != head.get("body_crc32c"):
            return "absent"  # ours, but torn by the failed write (a store without atomic puts)
        return "ours"
    assert last is not None
    raise last


def publish(storage: Storage, key: str, version: int, data: bytes, token: str) -> bool:
    """Create the manifest ``key`` unless it exists; True if this commit landed.

    A put that raises is settled by reading the manifest back: the original error is
    raised again only when nothing was committed, and ``CommitOutcomeUnknownError`` when
    the read-back fails too.
    """
    try:
        return storage.put_if_absent(key, data)
    except Exception as error:
        try:
            outcome = commit_outcome(storage, key, version, token)
        except Exception as e:
            raise CommitOutcomeUnknownError(
                f"writing version {version} of the store at {storage.location} failed ({error}), and the "
                f"store could not be asked whether it landed ({e}); call flush() again to settle it"
            ) from error
        if outcome == "absent":
            raise
        return outcome == "ours"
