"""Run the local BigQuery emulator (bqemulator) as a child process: for tests, benchmarks and
the emulator demo, never in production.

bqemulator lives in a virtual environment of its own (``make bqemulator-venv`` creates
``.venv-bqemulator``: it pins its own duckdb and sqlglot) and is started through
``scripts/bqemulator_launcher.py``, which makes it start offline. This module finds both in the
source checkout, picks free 127.0.0.1 ports, waits for ``/healthz``, and runs it in a session of
its own: a terminal's Ctrl-C does not stop it half-way (whoever started it stops it, after the
processes that still talk to it), and stopping its process group takes along anything it started.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from aeroflow.devtools.child_process import free_port, stop_process_group, tail

REPO_ROOT: Final = Path(__file__).resolve().parents[3]
LAUNCHER: Final = REPO_ROOT / "scripts" / "bqemulator_launcher.py"
DEFAULT_PYTHON: Final = REPO_ROOT / ".venv-bqemulator" / "bin" / "python"
START_TIMEOUT_SECONDS: Final = 60.0


class EmulatorNotInstalledError(RuntimeError):
    """The emulator's virtual environment is missing."""


def emulator_python() -> Path:
    """The emulator's interpreter: ``$AEROFLOW_BQEMULATOR_PYTHON`` or ``.venv-bqemulator``."""
    return Path(os.environ.get("AEROFLOW_BQEMULATOR_PYTHON", DEFAULT_PYTHON))


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    rest_url: str
    grpc_target: str
    project: str
    pid: int
    log_path: Path

    def client(self, *, location: str | None = None) -> bigquery.Client:
        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=self.rest_url),
            location=location,
        )


@contextlib.contextmanager
def running_emulator(project: str, log_path: Path) -> Iterator[RunningEmulator]:
    """Start an in-memory emulator for ``project``; stop its process group on exit."""
    python = emulator_python()
    if not python.exists():
        raise EmulatorNotInstalledError(
            f"BigQuery emulator not installed: {python} is missing "
            "(create it with `make bqemulator-venv`)"
        )
    rest_port, grpc_port = free_port(), free_port()
    command = [
        str(python),
        str(LAUNCHER),
        "--rest-host", "127.0.0.1",
        "--rest-port", str(rest_port),
        "--grpc-host", "127.0.0.1",
        "--grpc-port", str(grpc_port),
        "--project", project,
        "--ephemeral",
        "--log-level", "warning",
        "--log-format", "console",
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and launcher
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    rest_url = f"http://127.0.0.1:{rest_port}"
    try:
        _wait_healthy(rest_url, process, log_path)
        yield RunningEmulator(
            rest_url=rest_url,
            grpc_target=f"127.0.0.1:{grpc_port}",
            project=project,
            pid=process.pid,
            log_path=log_path,
        )
    finally:
        stop_process_group(process)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"bqemulator exited with {process.returncode} at start-up:\n{tail(log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"bqemulator not healthy after {START_TIMEOUT_SECONDS}s:\n{tail(log_path)}")
