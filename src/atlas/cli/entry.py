"""The entry point: parse the command line, run the command, turn what it raised into an
exit status."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .errors import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    error_message,
)
from .parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``atlas`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("atlas: interrupted; nothing more was committed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of our output went away (e.g. `atlas ls STORE | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if args.debug:
            raise
        print(f"atlas {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
