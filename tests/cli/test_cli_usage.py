"""The ``atlas`` command line itself: help, usage errors and the one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import SUBCOMMANDS, assert_one_line_error, run

from atlas.cli import main


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    top = run("--help")
    for name in SUBCOMMANDS:
        assert name in top.stdout
    for name in SUBCOMMANDS:  # in-process: the same parser, without a start-up per command
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: atlas {name}")
        if name == "ingest":
            assert "':'" in out  # the naming rule is documented
        if name == "find":
            assert "trailing blanks" in out  # how char data compares


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    proc = run("ingest", rc=2)
    assert "Traceback" not in proc.stderr and "SRC [SRC ...] STORE" in proc.stderr
    assert main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "a", "b", "--chunk-size", "lots"])
    assert exit_info.value.code == 2
    assert "invalid size" in capsys.readouterr().err


def test_missing_store_is_one_clear_line(tmp_path: Path) -> None:
    assert_one_line_error(run("info", tmp_path / "nope", rc=None), "no Atlas store", "nope")
