"""Test helpers: run the ``atlas`` command as a user would, and check its errors."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

SUBCOMMANDS = ["ingest", "ls", "show", "info", "rm", "compact", "versions", "tag", "expire", "verify", "export", "demo"]


def run(*args: str | Path, rc: int | None = 0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m atlas ARGS`` with pipes; check the exit status unless ``rc`` is None."""
    proc = subprocess.run(
        [sys.executable, "-m", "atlas", *map(str, args)], capture_output=True, text=True, timeout=120
    )
    if rc is not None:
        assert proc.returncode == rc, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def run_in_pty(*args: str | Path) -> tuple[int, str]:
    """Run ``python -m atlas ARGS`` on a pseudo-terminal 120 columns wide; return (rc, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "atlas", *map(str, args)], stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A user error: exit 1, one line on stderr, no traceback."""
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
