"""How a command ends: its exit status, and the one line an error prints."""

from __future__ import annotations

from ..errors import ConflictError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as for other tools whose reader went away


class CommandError(Exception):
    """A user error the CLI reports as one line."""


def error_message(exc: BaseException) -> str:
    """The one line printed for an error that ends a command."""
    if isinstance(exc, ConflictError):
        clashes = "; ".join(c.describe("this command", "the other") for c in exc.conflicts[:3])
        return (
            "another process changed the store while this command ran"
            + (f" ({clashes})" if clashes else "")
            + "; nothing was committed. Run the command again"
        )
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc).strip()
    if isinstance(exc, (CommandError, OSError, RuntimeError, ValueError, TypeError, NotImplementedError)) and text:
        return text.splitlines()[0] if isinstance(exc, CommandError) else " ".join(text.split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
