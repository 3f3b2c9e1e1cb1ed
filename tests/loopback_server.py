"""An ASGI app under a real uvicorn server on a free 127.0.0.1 port, in a thread of the test.

Tests import it by rootdir (``from loopback_server import serve``), as they do the emulator
helpers. The socket is bound here and handed to uvicorn, so the port is held from the start:
no race with another test picking the same free port. ``log_config=None`` leaves the logging
of the process alone (uvicorn would otherwise install its own handlers, which the
observability tests would then see), and uvicorn's own access log is off: the app's
middleware writes the one the tests look at.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT_SECONDS: Final = 20.0
STOP_TIMEOUT_SECONDS: Final = 30.0


@contextmanager
def serve(app: ASGIApp, **options: Any) -> Iterator[str]:
    """``with serve(app) as base_url:`` runs ``app`` until the block ends, then stops it.

    ``options``: more ``uvicorn.Config`` options (e.g. ``http=`` a protocol class)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up (lifespan failed?)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_SECONDS)
        sock.close()
    # Not in ``finally``: an error of the test itself must not be replaced by this one.
    if thread.is_alive():
        raise RuntimeError(f"uvicorn did not stop within {STOP_TIMEOUT_SECONDS:.0f} s")
