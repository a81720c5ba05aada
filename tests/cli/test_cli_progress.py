"""``atlas.cli.progress``: an ingest's progress as a bar, as log lines, or as nothing."""

from __future__ import annotations

import io
import sys

import pytest

from atlas.cli.progress import BarProgress, LogProgress, NoProgress, make_progress


def test_log_progress_lines() -> None:
    out = io.StringIO()
    progress = LogProgress("ingest", interval=0.0, out=out)
    progress.start(4, 4096)
    progress.advance(1, 1024)
    progress.advance(3, 3072)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ingest: 1/4 files, 1.0 KiB/4.0 KiB, ") and "ETA" in lines[0]
    assert lines[1].startswith("ingest: 4/4 files, 4.0 KiB/4.0 KiB")
    quiet = io.StringIO()
    slow = LogProgress("ingest", interval=3600.0, out=quiet)
    slow.start(4, 4096)
    slow.advance(4, 4096)
    assert quiet.getvalue() == ""  # short runs stay silent


def test_log_progress_stages_show_once_the_run_is_long() -> None:
    out = io.StringIO()
    LogProgress("ingest", interval=0.0, out=out).stage("committing")
    assert out.getvalue() == "ingest: committing\n"
    quiet = io.StringIO()
    LogProgress("ingest", interval=3600.0, out=quiet).stage("committing")
    assert quiet.getvalue() == ""


def test_bar_progress_counts_files_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = BarProgress("ingest")
    bar.advance(1, 10)  # before start: nothing to move
    bar.start(3, 300)
    bar.advance(2, 200)
    bar.stage("committing")
    assert bar._bar is not None and bar._bar.n == 200 and bar._bar.total == 300
    assert bar._desc() == "ingest 2/3 files"
    bar.close()
    assert bar._bar is None
    assert "ingest 2/3 files" in err.getvalue()
    bar.close()  # twice is fine


def test_make_progress_picks_by_quiet_and_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_progress("ingest", quiet=True), NoProgress)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(make_progress("ingest", quiet=False), LogProgress)
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert isinstance(make_progress("ingest", quiet=False), BarProgress)


def test_no_progress_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    p = NoProgress()
    p.start(1, 1)
    p.advance(1, 1)
    p.stage("x")
    p.close()
    assert capsys.readouterr() == ("", "")
