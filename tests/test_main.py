"""``python -m atlas`` (``atlas/__main__.py``): the ``atlas`` command, with its exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import atlas


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atlas", *args], capture_output=True, text=True, timeout=120)


def test_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"atlas {atlas.__version__}"


def test_exit_status_of_an_error(tmp_path: Path) -> None:
    proc = _run("ls", str(tmp_path / "nothing"))
    assert proc.returncode == 1 and proc.stderr.startswith("atlas ls: error: ")


def test_no_command_is_a_usage_error() -> None:
    proc = _run()
    assert proc.returncode == 2 and "usage: atlas" in proc.stderr
