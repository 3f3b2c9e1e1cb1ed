"""Where the end-to-end test runs.

With ``AEROFLOW_E2E_BASE_URL`` set (the deploy workflow, or you against any deployment) it runs
once, against that deployment. Without it, it runs against a real local aeroflow: the
``aeroflow serve`` command started as a subprocess on a free 127.0.0.1 port over a fresh DuckDB
file, published to twice over, once through the push endpoint and once through Google's Pub/Sub
emulator (a topic with the real topic schema and a push subscription to that same process).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from aeroflow_e2e import TOPIC_SCHEMA, Target, target_from_env

if TYPE_CHECKING:
    from pubsub_emulator import PubSubEmulator

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
LOCAL_TIMEOUT_SECONDS = 30.0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "e2e_mode" in metafunc.fixturenames:
        if target_from_env() is not None:
            metafunc.parametrize("e2e_mode", ["deployed"])
        else:
            metafunc.parametrize(
                "e2e_mode",
                ["local-push", pytest.param("local-pubsub-emulator", marks=pytest.mark.emulator)],
            )


@dataclass(frozen=True)
class LocalAeroflow:
    base_url: str
    db_path: Path
    log_path: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _aeroflow_command() -> list[str]:
    # The installed console script, as a user runs it; `python -m aeroflow` where it is absent.
    script = Path(sys.executable).with_name("aeroflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("aeroflow")
    return [found] if found else [sys.executable, "-m", "aeroflow"]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


@pytest.fixture(scope="session")
def local_aeroflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAeroflow]:
    workdir = tmp_path_factory.mktemp("e2e-aeroflow")
    port = _free_port()
    db_path = workdir / "data" / "e2e.duckdb"
    log_path = workdir / "aeroflow.log"
    # Run in an empty directory with no AEROFLOW_* variables, so neither a developer's .env
    # nor the test session's environment changes what is being tested.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEROFLOW_")}
    env.pop("PUBSUB_EMULATOR_HOST", None)
    command = [
        *_aeroflow_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db_path),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"aeroflow serve exited with {process.returncode}:\n{_tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"aeroflow serve not ready after {START_TIMEOUT_SECONDS:.0f} s:\n"
                    f"{_tail(log_path)}"
                )
            time.sleep(0.1)
        yield LocalAeroflow(base_url=base_url, db_path=db_path, log_path=log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)


@pytest.fixture
def e2e_target(e2e_mode: str, request: pytest.FixtureRequest) -> Target:
    if e2e_mode == "deployed":
        target = target_from_env()
        assert target is not None
        return target
    local: LocalAeroflow = request.getfixturevalue("local_aeroflow")
    push_url = f"{local.base_url}/pubsub/push"
    if e2e_mode == "local-push":
        return Target(local.base_url, f"push:{push_url}", timeout_seconds=LOCAL_TIMEOUT_SECONDS)
    emulator: PubSubEmulator = request.getfixturevalue("pubsub_emulator")
    # The topic as Terraform creates it: the generated Avro schema, JSON encoding, so the
    # emulator refuses at publish anything the real topic would refuse.
    schema = emulator.create_avro_schema(TOPIC_SCHEMA.read_text(encoding="utf-8"))
    topic = emulator.create_topic("e2e-flight-events", schema=schema)
    emulator.create_subscription(topic, "e2e-push", push_endpoint=push_url)
    return Target(
        local.base_url,
        f"pubsub:{topic}",
        timeout_seconds=LOCAL_TIMEOUT_SECONDS,
        emulator_host=emulator.host,
    )
