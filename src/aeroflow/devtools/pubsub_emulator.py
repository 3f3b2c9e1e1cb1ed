"""Run Google's Pub/Sub emulator as a child process: for tests and the emulator demo.

The emulator ships with the Google Cloud CLI (Debian package
``google-cloud-cli-pubsub-emulator``): ``<sdk root>/platform/pubsub-emulator/bin/
cloud-pubsub-emulator``, a shell script that execs Java. It is started in a session of its own,
so it is the leader of a process group holding the JVM and nothing else, and it is stopped by
signalling that group: stopping only the launcher's PID could leave the JVM running, as wrappers
such as ``testing-pubsub`` do. A session of its own also keeps a terminal's Ctrl-C away from it,
so whoever started it decides when it stops (after the processes that still talk to it).

Clients reach it through ``PUBSUB_EMULATOR_HOST=<host>``; nothing else changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from aeroflow.devtools.child_process import free_port, stop_process_group, tail

LAUNCHER_ENV: Final = "AEROFLOW_PUBSUB_EMULATOR"  # overrides where the launcher is looked for
START_TIMEOUT_SECONDS: Final = 30.0
_LAUNCHER_IN_SDK: Final = Path("platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")


class PubSubEmulatorNotInstalledError(RuntimeError):
    """No emulator launcher was found (the message says where it was looked for)."""


@dataclass(frozen=True, slots=True)
class RunningPubSubEmulator:
    host: str  # "127.0.0.1:PORT", the value of PUBSUB_EMULATOR_HOST
    pid: int  # the launcher's PID, also its process group id
    log_path: Path


def not_installed_reason() -> str:
    return (
        "Pub/Sub emulator not installed: no Google Cloud CLI with platform/pubsub-emulator "
        f"(Debian package google-cloud-cli-pubsub-emulator), and ${LAUNCHER_ENV} unset or "
        "pointing nowhere"
    )


def find_launcher() -> Path | None:
    """``$AEROFLOW_PUBSUB_EMULATOR`` if set (None when it points nowhere), else the SDK's."""
    override = os.environ.get(LAUNCHER_ENV)
    if override:
        return Path(override) if Path(override).exists() else None
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        root = subprocess.run(  # noqa: S603 - gcloud from PATH, fixed arguments
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None
    if not root:
        return None
    launcher = Path(root) / _LAUNCHER_IN_SDK
    return launcher if launcher.exists() else None


@contextlib.contextmanager
def running_pubsub_emulator(
    log_path: Path,
    *,
    port: int | None = None,
    launcher: Path | None = None,
    start_timeout: float = START_TIMEOUT_SECONDS,
) -> Iterator[RunningPubSubEmulator]:
    """Start the emulator on 127.0.0.1 (a free port unless given), wait until it answers, and
    stop its whole process group on exit. Its output goes to ``log_path``.

    Raises ``PubSubEmulatorNotInstalledError`` when there is no launcher, ``RuntimeError``
    when it exits or stays silent at start-up (with the end of its log).
    """
    launcher = launcher or find_launcher()
    if launcher is None:
        raise PubSubEmulatorNotInstalledError(not_installed_reason())
    port = port or free_port()
    host = f"127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the SDK's launcher, fixed arguments
            [str(launcher), "--host=127.0.0.1", f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_until_up(host, process, log_path, start_timeout)
        yield RunningPubSubEmulator(host=host, pid=process.pid, log_path=log_path)
    finally:
        stop_process_group(process)


def _wait_until_up(
    host: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    # It answers "Ok" on / once its gRPC and HTTP front end listen (about 1 s here).
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"Pub/Sub emulator exited with {process.returncode} at start-up:\n"
                    f"{tail(log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"http://{host}/").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Pub/Sub emulator not up after {timeout:.0f} s:\n{tail(log_path)}"
                )
            time.sleep(0.1)
