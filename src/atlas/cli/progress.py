"""Ingest progress on stderr: a bar on a terminal, log lines otherwise, or nothing."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from .output import format_bytes, format_seconds


class BarProgress:
    """One tqdm bar on stderr: files done, bytes, rate and ETA."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._files = 0
        self._done = 0

    def start(self, files: int, nbytes: int) -> None:
        from tqdm import tqdm

        self._files = files
        self._bar = tqdm(
            total=nbytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.2,
            desc=self._desc(),
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}",
        )

    def _desc(self) -> str:
        return f"{self._label} {self._done}/{self._files} files"

    def advance(self, files: int, nbytes: int) -> None:
        if self._bar is None:
            return
        self._done += files
        self._bar.set_description_str(self._desc(), refresh=False)
        self._bar.update(nbytes)

    def stage(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LogProgress:
    """Plain progress lines on stderr for logs and pipes.

    Nothing is printed until ``interval`` seconds have passed, then one line per
    ``interval``: a short run stays silent, a long one shows it is alive.
    """

    def __init__(self, label: str, interval: float = 10.0, out: TextIO | None = None) -> None:
        self._label = label
        self._interval = interval
        self._out = out
        self._files = self._bytes = self._done_files = self._done_bytes = 0
        self._t0 = self._last = time.monotonic()

    def _line(self, text: str) -> None:
        print(f"{self._label}: {text}", file=self._out or sys.stderr, flush=True)

    def start(self, files: int, nbytes: int) -> None:
        self._files, self._bytes = files, nbytes
        self._t0 = self._last = time.monotonic()

    def advance(self, files: int, nbytes: int) -> None:
        self._done_files += files
        self._done_bytes += nbytes
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        elapsed = now - self._t0
        rate = self._done_bytes / elapsed if elapsed > 0 else 0.0
        left = (self._bytes - self._done_bytes) / rate if rate > 0 else float("nan")
        eta = format_seconds(left) if math.isfinite(left) else "?"
        self._line(
            f"{self._done_files}/{self._files} files, {format_bytes(self._done_bytes)}/"
            f"{format_bytes(self._bytes)}, {format_bytes(rate)}/s, ETA {eta}"
        )

    def stage(self, text: str) -> None:
        if time.monotonic() - self._t0 >= self._interval:
            self._line(text)

    def close(self) -> None:
        return None


class NoProgress:
    """Progress that shows nothing (``--quiet``)."""

    def start(self, files: int, nbytes: int) -> None:
        return None

    def advance(self, files: int, nbytes: int) -> None:
        return None

    def stage(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None


def make_progress(label: str, quiet: bool) -> BarProgress | LogProgress | NoProgress:
    """A bar on a terminal, log lines otherwise, nothing when quiet."""
    if quiet:
        return NoProgress()
    return BarProgress(label) if sys.stderr.isatty() else LogProgress(label)
