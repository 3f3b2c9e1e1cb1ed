"""Child processes of the developer tools (emulators, the demo's server): a free port to give
them, the end of their log for an error message, and a stop that takes their children along.

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
from pathlib import Path
from typing import Final

STOP_TIMEOUT_SECONDS: Final = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (the child binds it later: good enough for local tools)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


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
