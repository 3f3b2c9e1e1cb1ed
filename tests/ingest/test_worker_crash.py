"""Kill the pull worker mid-stream, restart it: nothing lost, nothing doubled.

Real processes (tests/ingest/worker_process.py runs ``run_worker`` over a DuckDB file, as
``aeroflow worker`` does) against the Pub/Sub emulator, while 10,000 events are being
published:

1. worker A is SIGKILLed after a few thousand commits: its leased and in-transit messages are
   neither acked nor nacked and come back when their ack deadline expires;
2. worker B takes over and is stopped with SIGTERM mid-stream: it must drain (commit and ack
   what it holds, hand back the rest) and exit 0 within the drain budget;
3. worker C finishes the stream.

Then the DuckDB file holds every event exactly once.

Emulator differences that shape this test (docs/pubsub.md):

* the emulator never notices that a streaming-pull client has gone (killed, or closed its
  stream cleanly): it keeps leasing new messages to the dead stream, and they come back only
  when their ack deadline expires - over and over, as the dead stream keeps taking its share.
  Pub/Sub drops the stream when its client goes. Between workers the test ends the dead streams
  with ``PubSubEmulator.end_dead_streams``;
* it ignores the stream's flow control (``max_outstanding_messages``) and sends up to 1000
  messages per 50 ms, so messages a client has not read yet sit on its stream until their
  deadline expires. The workers therefore read everything they are sent (``max_messages``
  above the backlog, so a graceful stop can nack it), lease extensions are capped at 10 s so a
  killed worker's messages expire soon, and the events
are published while the workers run, at a live feed's pace (as in production) rather than
all up front, so that little is in flight when A dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aeroflow.ingest.publisher import OutgoingMessage
from aeroflow.ingest.pubsub_publisher import PubSubPublisher
from pubsub_emulator import (
    SAMPLE_EVENTS,
    PubSubEmulator,
    SampleMessages,
    stored_event_counts,
    wait_until,
)

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

WORKER = Path(__file__).with_name("worker_process.py")
DRAIN_SECONDS = 8.0


class WorkerProcess:
    def __init__(self, subscription: str, db: Path, committed: set[str], lock: threading.Lock):
        env = {
            **os.environ,
            "AEROFLOW_ENVIRONMENT": "test",
            "AEROFLOW_DUCKDB_PATH": str(db),
            "AEROFLOW_LOG_JSON": "false",
            "AEROFLOW_PUBSUB_PULL_MAX_MESSAGES": str(2 * SAMPLE_EVENTS),
            "AEROFLOW_PUBSUB_PULL_LEASE_EXTENSION_SECONDS": "10",
            "AEROFLOW_INGEST_DRAIN_TIMEOUT_SECONDS": str(DRAIN_SECONDS),
        }
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), subscription],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.committed_here = 0
        self._reader = threading.Thread(target=self._read, args=(committed, lock), daemon=True)
        self._reader.start()

    def _read(self, committed: set[str], lock: threading.Lock) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            kind, _, ids = line.partition(" ")
            if kind == "committed":
                batch = ids.split()
                with lock:
                    committed.update(batch)
                    self.committed_here += len(batch)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill_if_running(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Every worker process a test starts; none outlives it, whatever the outcome."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill_if_running()


def test_sigkill_mid_stream_then_restart_loses_nothing_and_doubles_nothing(
    pubsub_emulator: PubSubEmulator,
    sample_messages: SampleMessages,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    topic = pubsub_emulator.create_topic()
    subscription = pubsub_emulator.create_subscription(topic, ack_deadline_seconds=10)
    db = tmp_path / "aeroflow.duckdb"
    committed: set[str] = set()  # Pub/Sub message ids known to be durable in the DuckDB file
    lock = threading.Lock()

    def count() -> int:
        with lock:
            return len(committed)

    def start_worker() -> WorkerProcess:
        workers.append(WorkerProcess(subscription, db, committed, lock))
        return workers[-1]

    publishing = threading.Thread(target=_publish, args=(topic, sample_messages), daemon=True)
    worker_a = start_worker()
    publishing.start()

    wait_until(lambda: count() >= 2500, 60, "worker A to commit 2500 messages")
    worker_a.signal(signal.SIGKILL)
    assert worker_a.wait(10) == -signal.SIGKILL
    assert count() < SAMPLE_EVENTS, "worker A finished before it was killed: not mid-stream"
    pubsub_emulator.end_dead_streams(subscription)  # emulator bug, see the module docstring

    worker_b = start_worker()
    wait_until(lambda: worker_b.committed_here >= 1000, 60, "worker B to commit 1000 messages")
    worker_b.signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker_b.wait(DRAIN_SECONDS + 5) == 0
    assert time.monotonic() - started < DRAIN_SECONDS + 2
    pubsub_emulator.end_dead_streams(subscription)

    worker_c = start_worker()
    # A's unacked messages come back when their deadline expires (see the module docstring).
    wait_until(lambda: count() >= SAMPLE_EVENTS, 120, "every message to be committed")
    publishing.join(timeout=30)
    worker_c.signal(signal.SIGTERM)
    assert worker_c.wait(DRAIN_SECONDS + 5) == 0

    assert count() == SAMPLE_EVENTS
    rows, distinct_events = stored_event_counts(db)
    assert rows == SAMPLE_EVENTS, f"{rows - SAMPLE_EVENTS} events stored twice"
    assert distinct_events == SAMPLE_EVENTS


PUBLISH_RATE = 500  # messages/s: a live feed, slower than a worker drains it


def _publish(topic: str, sample: SampleMessages) -> None:
    async def live_feed() -> AsyncIterator[OutgoingMessage]:
        for index, message in enumerate(sample.messages):
            if index and index % (PUBLISH_RATE // 10) == 0:
                await asyncio.sleep(0.1)
            yield message

    publisher = PubSubPublisher(topic)
    try:
        report = asyncio.run(publisher.publish(live_feed()))
    finally:
        publisher.close()
    assert report.failed == 0, report.failures
    assert report.published == SAMPLE_EVENTS
