"""A moto S3 server on 127.0.0.1, for the tests that need one (started and stopped by them)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def serve_moto(wrap: Callable[[Any], Any] = lambda app: app) -> Iterator[str]:
    """Serve moto's S3 app, wrapped by ``wrap`` (a WSGI middleware), on a free port of
    127.0.0.1; yields the endpoint URL and stops the server on exit."""
    pytest.importorskip("moto")
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    log = logging.getLogger("werkzeug")
    level = log.level
    log.setLevel(logging.ERROR)
    app = wrap(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-s3", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        log.setLevel(level)
