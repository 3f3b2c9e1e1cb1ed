"""Child processes of the developer tools (emulators, the demo's server): a free port to give
them, the server's command line and readiness wait, the end of their log for an error message,
and a stop that takes their children along.

A child started with ``start_new_session=True`` leads a process group of its own, so signalling
that group reaches whatever it forked or exec'd (a launcher script's JVM, a server's workers),
and a terminal's Ctrl-C, which goes to the terminal's foreground group, does not reach it: the
parent decides when it stops, after whatever still talks to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import httpx

STOP_TIMEOUT_SECONDS: Final = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (the child binds it later: good enough for local tools)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command(port: int, *options: str) -> list[str]:
    """``aeroflow serve`` on 127.0.0.1:``port`` with this interpreter, plus ``options``."""
    return [
        sys.executable,
        "-m",
        "aeroflow",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
    ]


class ChildExitedError(Exception):
    """The child exited while the parent waited for it to become ready."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"exited with {returncode}")
        self.returncode = returncode


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``base_url``/readyz until it answers 200. Raises ChildExitedError if ``process``
    exits first, TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    # Loopback only: a proxy from the environment must not be asked.
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ChildExitedError(process.returncode)
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{base_url}/readyz").status_code == 200:
                    return
            time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout:.0f} s")


def stop_process_group(
    process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS
) -> None:
    """SIGTERM the group led by ``process`` (started with ``start_new_session=True``), then
    SIGKILL it if it is still there after ``timeout``; reap the leader either way."""
    if process.poll() is not None:
        # Gone and reaped: a reaped leader's id may be reused, so its group is not signalled
        # blindly (what it left behind, if anything, is no longer ours to identify).
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a child's log, for the error that says why it failed."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
