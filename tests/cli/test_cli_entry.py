"""``atlas.cli.entry.main``: what each way a command can end turns into (exit status and
the one line on stderr)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas.cli import entry, parser
from atlas.cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, CommandError


def _patch_command(monkeypatch: pytest.MonkeyPatch, run: Callable[[argparse.Namespace], int]) -> None:
    """Make ``atlas ls`` run ``run`` instead of listing."""
    monkeypatch.setattr(parser, "cmd_ls", run)


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.main([]) == EXIT_USAGE
    assert "usage: atlas" in capsys.readouterr().err


def test_the_command_status_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_command(monkeypatch, lambda args: 3)
    assert entry.main(["ls", "x"]) == 3


def test_an_error_is_one_line_naming_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise CommandError("no store here\nsecond line")

    _patch_command(monkeypatch, fail)
    assert entry.main(["ls", "x"]) == EXIT_ERROR
    assert capsys.readouterr().err == "atlas ls: error: no store here\n"


def test_debug_lets_the_error_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise ValueError("boom")

    _patch_command(monkeypatch, fail)
    with pytest.raises(ValueError, match="boom"):
        entry.main(["--debug", "ls", "x"])


def test_an_interrupt_says_nothing_more_was_committed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    _patch_command(monkeypatch, interrupted)
    assert entry.main(["ls", "x"]) == EXIT_INTERRUPTED
    assert "interrupted; nothing more was committed" in capsys.readouterr().err


def test_a_real_command_on_a_missing_store_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.main(["ls", str(tmp_path / "nothing")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("atlas ls: error: ") and err.count("\n") == 1
