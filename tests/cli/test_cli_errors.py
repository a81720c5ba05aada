"""``atlas.cli.errors``: the exit statuses and the one line an error prints."""

from __future__ import annotations

from atlas.cli import errors
from atlas.cli.errors import CommandError, error_message


def test_exit_statuses_are_the_documented_ones() -> None:
    assert (errors.EXIT_OK, errors.EXIT_ERROR, errors.EXIT_USAGE, errors.EXIT_PARTIAL) == (0, 1, 2, 3)
    assert errors.EXIT_INTERRUPTED == 130
    assert errors.EXIT_BROKEN_PIPE == 128 + 13  # SIGPIPE


def test_a_key_error_prints_its_message_without_quotes() -> None:
    assert error_message(KeyError("no dataset named 'x'")) == "no dataset named 'x'"


def test_a_command_error_prints_its_first_line() -> None:
    assert error_message(CommandError("  first line\nsecond line  ")) == "first line"


def test_common_errors_print_their_text_on_one_line() -> None:
    assert error_message(ValueError("bad\n   value")) == "bad value"
    assert error_message(FileNotFoundError("no such\tfile")) == "no such file"
    assert error_message(NotImplementedError("not here")) == "not here"


def test_other_errors_are_named() -> None:
    assert error_message(ZeroDivisionError("division by zero")) == "ZeroDivisionError: division by zero"
    assert error_message(ValueError()) == "ValueError"
    assert error_message(KeyError()) == "KeyError"
