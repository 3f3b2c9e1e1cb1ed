"""Pub/Sub push end to end: PubSubPublisher -> emulator topic -> push subscription -> the real
ingest endpoint (uvicorn on 127.0.0.1) -> DuckDB -> read back through the API.

The emulator really POSTs push envelopes over HTTP. Where it differs from real Pub/Sub the
test works around it and says so (all listed in docs/pubsub.md, "Emulator vs. Google Cloud"):

* it sends no ``Authorization`` header even when the subscription asks for an OIDC token, so
  the endpoint runs without OIDC here (OIDC: tests/ingest/test_oidc.py);
* it pushes one message at a time per subscription (pull one, POST, wait, ack) where Pub/Sub
  keeps hundreds of requests in flight. Each push then waits for a durable commit of its own,
  and 10,000 of them in a row take minutes. The 10k test therefore spreads the flights over
  ``SHARDS`` topics, each with its own push subscription (the emulator also ignores
  subscription filters, which would have been the one-topic way), and tells the group
  committer not to wait for company (``ingest_max_batch_wait_ms=1``);
* it ignores the subscription's retry policy: after a 503 it redelivers at once, where Pub/Sub
  backs off (the test only relies on redelivery happening).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from aeroflow.api.app import create_app
from aeroflow.bootstrap import Role, build_app
from aeroflow.ingest.auth import NoPushAuthentication
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.ingest.publisher import OutgoingMessage, PublishReport
from aeroflow.ingest.pubsub_publisher import PubSubPublisher, build_client
from aeroflow.ingest.push import PUSH_PATH, create_push_router
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from loopback_server import serve
from pubsub_emulator import (
    SAMPLE_EVENTS,
    OutageStore,
    PubSubEmulator,
    SampleMessages,
    assert_api_matches,
    ingest_counter,
    read_all_flights,
    stored_event_counts,
    wait_until,
)

pytestmark = pytest.mark.emulator


def _settings(db: Path) -> Settings:
    return Settings(
        environment="test",
        duckdb_path=db,
        ingest_max_batch_wait_ms=1,  # see the module docstring
        log_json=False,
    )


def _publish(topic: str, messages: Sequence[OutgoingMessage]) -> None:
    publisher = PubSubPublisher(topic)
    try:
        report = asyncio.run(publisher.publish(messages))
    finally:
        publisher.close()
    assert report.failed == 0, report.failures
    assert report.published == len(messages)


SHARDS = 16


def _publish_sharded(
    emulator: PubSubEmulator, push_url: str, messages: Sequence[OutgoingMessage]
) -> None:
    """A flight's messages all go to one of SHARDS topics, each pushed by its own subscription."""
    shards: list[list[OutgoingMessage]] = [[] for _ in range(SHARDS)]
    for message in messages:
        shards[zlib.crc32(message.ordering_key.encode()) % SHARDS].append(message)
    client = build_client(ordering=True)  # one client, as one publisher process would have
    publishers = []
    for shard in shards:
        topic = emulator.create_topic()
        emulator.create_subscription(topic, push_endpoint=push_url)
        publishers.append((PubSubPublisher(topic, client=client), shard))

    async def publish_all() -> list[PublishReport]:
        return await asyncio.gather(*(p.publish(shard) for p, shard in publishers))

    try:
        reports = asyncio.run(publish_all())
    finally:
        client.stop()
    assert sum(r.failed for r in reports) == 0, [r.failures for r in reports]
    assert sum(r.published for r in reports) == len(messages)


@pytest.mark.slow
def test_10k_events_pushed_by_pubsub_are_stored_exactly_once(
    pubsub_emulator: PubSubEmulator, sample_messages: SampleMessages, tmp_path: Path
) -> None:
    db = tmp_path / "aeroflow.duckdb"
    app = build_app(_settings(db), Role.SERVE)  # the composition root `aeroflow serve` uses
    acked_before = ingest_counter("stored") + ingest_counter("duplicate")
    with serve(app) as base_url:
        _publish_sharded(pubsub_emulator, f"{base_url}{PUSH_PATH}", sample_messages.messages)
        wait_until(
            lambda: (
                ingest_counter("stored") + ingest_counter("duplicate") - acked_before
                >= SAMPLE_EVENTS
            ),
            timeout=150,
            what=f"{SAMPLE_EVENTS} pushed messages to be stored",
        )
        assert_api_matches(base_url, sample_messages)
    # The server has drained and closed the store: count what is on disk.
    rows, distinct_events = stored_event_counts(db)
    assert (rows, distinct_events) == (SAMPLE_EVENTS, SAMPLE_EVENTS)


class _StatusRecorder:
    """ASGI wrapper that notes the status of every push response (observation only)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.statuses: list[int] = []

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        async def record(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and scope.get("path") == PUSH_PATH:
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, record)


def test_storage_outage_answers_503_and_pubsub_redelivers_until_stored(
    pubsub_emulator: PubSubEmulator, sample_messages: SampleMessages, tmp_path: Path
) -> None:
    settings = _settings(tmp_path / "aeroflow.duckdb")
    store = OutageStore(DuckDBFlightStore(settings.duckdb_path))
    committer = GroupCommitter(store, max_batch=100, max_wait_seconds=0.001)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        committer.start()
        yield
        committer.drain(5)
        store.close()

    router = create_push_router(committer, NoPushAuthentication(), max_body_bytes=1 << 20)
    recorder = _StatusRecorder(create_app(settings, store, routers=[router], lifespan=lifespan))
    messages = sample_messages.messages[:10]
    flights = {m.ordering_key for m in messages}

    store.down = True
    with serve(recorder) as base_url:
        topic = pubsub_emulator.create_topic()
        pubsub_emulator.create_subscription(topic, push_endpoint=f"{base_url}{PUSH_PATH}")
        _publish(topic, messages)
        # Every message is refused at least once, none is stored.
        wait_until(lambda: recorder.statuses.count(503) >= 2 * len(messages), 60, "two 503 rounds")
        assert set(recorder.statuses) == {503}
        assert read_all_flights(base_url) == []

        store.down = False
        wait_until(
            lambda: {f["flight_id"] for f in read_all_flights(base_url)} == flights,
            timeout=60,
            what="redelivered messages to be stored",
        )
        wait_until(lambda: recorder.statuses.count(204) >= len(messages), 30, "all acks")
    assert store.failed_writes > 0
    rows, distinct_events = stored_event_counts(settings.duckdb_path)
    assert (rows, distinct_events) == (len(messages), len(messages))
