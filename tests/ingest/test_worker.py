"""The streaming-pull worker against the Pub/Sub emulator, inside an app as ``aeroflow serve``
runs it with DuckDB: PubSubPublisher -> topic -> pull subscription -> PullWorker ->
GroupCommitter -> DuckDB -> read back through the API on a real uvicorn server.

Emulator differences this file relies on or works around (docs/pubsub.md lists them all):
``delivery_attempt`` is only set with a dead-letter policy (as in Pub/Sub); subscriptions are
made with the minimum 10 s ack deadline so redeliveries come quickly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from fastapi import FastAPI

from aeroflow.api.app import create_app
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.ingest.publisher import OutgoingMessage
from aeroflow.ingest.pubsub_publisher import PubSubPublisher
from aeroflow.ingest.worker import PullWorker, run_worker
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from loopback_server import serve
from pubsub_emulator import (
    SAMPLE_EVENTS,
    OutageStore,
    PubSubEmulator,
    SampleMessages,
    assert_api_matches,
    read_all_flights,
    stored_event_counts,
    wait_until,
)

pytestmark = pytest.mark.emulator


def _publish(topic: str, messages: Sequence[OutgoingMessage], *, ordering: bool = True) -> None:
    publisher = PubSubPublisher(topic, ordering=ordering)
    try:
        report = asyncio.run(publisher.publish(messages))
    finally:
        publisher.close()
    assert report.failed == 0, report.failures
    assert report.published == len(messages)


@dataclass
class Served:
    base_url: str
    worker: PullWorker
    store: OutageStore


@contextmanager
def serve_with_worker(
    subscription: str, db: Path, *, max_messages: int = 1000, nack_backoff_max: float = 10.0
) -> Iterator[Served]:
    """An app whose lifespan runs committer and pull worker, as ``aeroflow serve`` would."""
    settings = Settings(environment="test", duckdb_path=db, log_json=False)
    store = OutageStore(DuckDBFlightStore(db))
    committer = GroupCommitter(store, max_batch=1000, max_wait_seconds=0.01)
    worker = PullWorker(
        subscription,
        committer,
        max_messages=max_messages,
        nack_backoff_max_seconds=nack_backoff_max,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        committer.start()
        async with worker.running(drain_timeout=5):
            yield
        committer.drain(5)
        store.close()

    with serve(create_app(settings, store, lifespan=lifespan)) as base_url:
        yield Served(base_url, worker, store)


@pytest.mark.slow
def test_10k_events_pulled_are_stored_exactly_once_and_all_acked(
    pubsub_emulator: PubSubEmulator, sample_messages: SampleMessages, tmp_path: Path
) -> None:
    topic = pubsub_emulator.create_topic()
    subscription = pubsub_emulator.create_subscription(topic)
    db = tmp_path / "aeroflow.duckdb"
    with serve_with_worker(subscription, db) as served:
        _publish(topic, sample_messages.messages)
        wait_until(
            lambda: served.worker.stats.acked >= SAMPLE_EVENTS,
            timeout=90,
            what=f"{SAMPLE_EVENTS} messages acked",
        )
        assert_api_matches(served.base_url, sample_messages)
        stats = served.worker.stats
    assert stats.stored == SAMPLE_EVENTS
    assert stats.nacked == 0
    # Acked means gone: nothing is redelivered to a fresh pull.
    assert pubsub_emulator.pull(subscription) == []
    assert stored_event_counts(db) == (SAMPLE_EVENTS, SAMPLE_EVENTS)


def test_poison_messages_are_kept_as_rejected_and_acked(
    pubsub_emulator: PubSubEmulator, sample_messages: SampleMessages, tmp_path: Path
) -> None:
    topic = pubsub_emulator.create_topic()
    subscription = pubsub_emulator.create_subscription(topic)
    good = sample_messages.messages[:3]
    poison = [
        OutgoingMessage(b"not json", {}, "", "poison-1"),
        OutgoingMessage(b"\xff\xfe", {}, "", "poison-2"),
        OutgoingMessage(b'{"carrier": "UA"}', {}, "", "poison-3"),
    ]
    db = tmp_path / "aeroflow.duckdb"
    with serve_with_worker(subscription, db) as served:
        _publish(topic, [*poison, *good], ordering=False)
        wait_until(lambda: served.worker.stats.acked >= 6, 30, "all six acked")
        assert {f["flight_id"] for f in read_all_flights(served.base_url)} == {
            m.ordering_key for m in good
        }
        stats = served.worker.stats
    assert (stats.stored, stats.rejected, stats.nacked) == (3, 3, 0)
    assert pubsub_emulator.pull(subscription) == []
    with duckdb.connect(str(db), read_only=True) as conn:
        reasons = conn.execute(
            "SELECT reason, raw_data FROM rejected_messages ORDER BY 1"
        ).fetchall()
    assert reasons == [
        ("invalid_json", b"not json"),
        ("invalid_utf8", b"\xff\xfe"),
        ("schema_violation", b'{"carrier": "UA"}'),
    ]


def test_storage_outage_nacks_with_backoff_and_stores_once_back(
    pubsub_emulator: PubSubEmulator, sample_messages: SampleMessages, tmp_path: Path
) -> None:
    topic = pubsub_emulator.create_topic()
    subscription = pubsub_emulator.create_subscription(topic)
    messages = sample_messages.messages[:50]
    db = tmp_path / "aeroflow.duckdb"
    with serve_with_worker(subscription, db, nack_backoff_max=1.0) as served:
        served.store.down = True
        _publish(topic, messages)
        wait_until(lambda: served.worker.stats.nacked >= 2 * len(messages), 30, "two nack rounds")
        assert served.worker.stats.acked == 0
        assert read_all_flights(served.base_url) == []
        # Backoff: redeliveries are spaced out, not a tight loop against a store that is down.
        received, started = served.worker.stats.received, time.monotonic()
        time.sleep(1.0)
        rate = (served.worker.stats.received - received) / (time.monotonic() - started)
        # Each message waits at least 0.25 s before going back (an immediate nack would cycle
        # it through the emulator dozens of times a second).
        assert rate < 5 * len(messages)

        served.store.down = False
        wait_until(lambda: served.worker.stats.stored >= len(messages), 60, "all stored")
        wait_until(lambda: served.worker.stats.acked >= len(messages), 10, "all acked")
    assert served.store.failed_writes > 0
    assert stored_event_counts(db) == (len(messages), len(messages))


def test_stop_drains_in_flight_messages_and_a_new_worker_gets_the_rest(
    pubsub_emulator: PubSubEmulator, sample_messages: SampleMessages, tmp_path: Path
) -> None:
    topic = pubsub_emulator.create_topic()
    subscription = pubsub_emulator.create_subscription(topic)
    messages = sample_messages.messages[:3000]
    _publish(topic, messages)
    db = tmp_path / "aeroflow.duckdb"

    store = DuckDBFlightStore(db)
    try:
        first = _pull_until(subscription, store, lambda w: w.stats.stored >= 500)
        # Everything it took was either acked after its commit or handed back.
        assert first.stats.received == first.stats.acked + first.stats.nacked
        assert first.stats.acked == first.stats.stored + first.stats.duplicates > 0
        pubsub_emulator.end_dead_streams(subscription)  # emulator bug: see its docstring
        second = _pull_until(
            subscription, store, lambda w: first.stats.stored + w.stats.stored >= len(messages)
        )
        assert second.stats.received == second.stats.acked + second.stats.nacked
    finally:
        store.close()
    assert stored_event_counts(db) == (len(messages), len(messages))


def _pull_until(
    subscription: str, store: DuckDBFlightStore, done: Callable[[PullWorker], bool]
) -> PullWorker:
    committer = GroupCommitter(store, max_batch=1000, max_wait_seconds=0.01)
    committer.start()
    # Above the backlog: the emulator ignores stream flow control, and what a worker has not
    # read when it stops would sit on its dead stream until the ack deadline (docs/pubsub.md).
    worker = PullWorker(subscription, committer, max_messages=5000, lease_extension_seconds=10)
    worker.start()
    try:
        wait_until(lambda: done(worker), 60, "messages to be stored")
    finally:
        started = time.monotonic()
        worker.stop(timeout=5)
        committer.drain(5)
    assert time.monotonic() - started < 6
    assert not worker.pulling
    return worker


def test_messages_that_keep_failing_end_on_the_dead_letter_topic(
    pubsub_emulator: PubSubEmulator, sample_messages: SampleMessages, tmp_path: Path
) -> None:
    topic = pubsub_emulator.create_topic()
    dead_letters = pubsub_emulator.create_topic("flight-events-dlq")
    dlq_subscription = pubsub_emulator.create_subscription(dead_letters)
    subscription = pubsub_emulator.create_subscription(
        topic,
        dead_letter_topic=dead_letters,
        max_delivery_attempts=5,  # Pub/Sub's minimum
    )
    messages = sample_messages.messages[:5]
    db = tmp_path / "aeroflow.duckdb"
    # Short nack backoff so that five delivery attempts take seconds, not a minute.
    with serve_with_worker(subscription, db, nack_backoff_max=0.5) as served:
        served.store.down = True  # a write that never succeeds, for these messages
        _publish(topic, messages)
        dead: list[object] = []
        wait_until(
            lambda: len(dead.__iadd__(pubsub_emulator.pull(dlq_subscription))) >= len(messages),
            30,
            "every message on the dead-letter topic",
        )
        stats = served.worker.stats
        assert stats.acked == 0
        assert stats.nacked == stats.received >= 5 * len(messages)
        assert read_all_flights(served.base_url) == []
    forwarded = {m.message.attributes["event_id"] for m in dead}  # type: ignore[attr-defined]
    assert forwarded == {m.message_id for m in messages}


def test_run_worker_exits_1_when_the_subscription_does_not_exist(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    settings = Settings(environment="test", duckdb_path=tmp_path / "aeroflow.duckdb")
    store = DuckDBFlightStore(settings.duckdb_path)
    missing = f"projects/{pubsub_emulator.project}/subscriptions/does-not-exist"
    started = time.monotonic()
    try:
        assert run_worker(settings, store, subscription=missing) == 1
    finally:
        store.close()
    assert time.monotonic() - started < 15
