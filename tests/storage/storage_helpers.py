"""Test helpers: a static HTTP server (optionally honouring Range requests)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class QuietHandler(SimpleHTTPRequestHandler):
    """Static files without Range support (like many simple servers); directories are 404."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        if not os.path.isfile(self.translate_path(self.path)):
            self.send_error(404, "not found")
            return None
        return super().send_head()


class RangeRequestHandler(QuietHandler):
    """Static files with single ``Range: bytes=a-b`` support; directories are 404."""

    def send_head(self) -> Any:
        path = self.translate_path(self.path)
        spec = self.headers.get("Range")
        if spec is None or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, _, last = spec.removeprefix("bytes=").partition("-")
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")  # closed by the caller of send_head
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", self.date_time_string(int(os.path.getmtime(path))))
        self.end_headers()
        return _Limited(f, end - start + 1)


class _Limited:
    """A file object that reads at most ``n`` bytes."""

    def __init__(self, f: Any, n: int) -> None:
        self.f = f
        self.n = n

    def read(self, size: int = -1) -> bytes:
        if self.n <= 0:
            return b""
        size = self.n if size < 0 else min(size, self.n)
        data: bytes = self.f.read(size)
        self.n -= len(data)
        return data

    def close(self) -> None:
        self.f.close()


def serve_directory(root: Path, handler: type[SimpleHTTPRequestHandler]) -> tuple[str, Callable[[], None]]:
    """Serve ``root`` on 127.0.0.1 in a thread; returns (base URL, stop)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return f"http://127.0.0.1:{server.server_address[1]}", stop


