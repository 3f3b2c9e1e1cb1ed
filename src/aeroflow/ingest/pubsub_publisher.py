"""Publish OutgoingMessages to a Pub/Sub topic with the official client (``Publisher`` protocol).

What the client is asked to do, and why:

* **Batching** (``BatchSettings``): up to ``batch_max_messages`` per Publish RPC, or whatever
  arrived within ``batch_max_latency`` seconds.
* **Ordering** (``enable_message_ordering``, ordering key = flight_id): a flight's events reach
  subscribers in publish order. The store does not need it (the latest ``event_time`` wins
  whatever the arrival order) but it keeps a flight's visible state from stepping backwards.
  The client batches *per ordering key*, so with one key per flight batches hold a few messages
  each: bulk back-fills are several times faster with ``ordering=False`` (docs/pubsub.md).
* **Retries** (``Retry`` with a deadline): transient errors are retried with backoff. With
  ordering on, the client's default is to retry forever; we bound it, and a message that still
  fails pauses its ordering key in the client. We then ``resume_publish`` that key (from the
  publishing thread, never from the client's callback threads, which hold the key's lock) so
  later events of the flight still go out, and report the failed message.
* **Bounded in-flight** (``PublishFlowControl`` with BLOCK): at most ``max_in_flight_*``
  messages/bytes wait for Pub/Sub's answer; ``publish`` blocks the submitting thread, never the
  event loop, beyond that.

Every future is awaited: ``publish`` returns only when each message is either accepted by
Pub/Sub or counted as failed in the ``PublishReport``.

Against the emulator set ``PUBSUB_EMULATOR_HOST``; the client reads it, the code is unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.cloud.pubsub_v1.types import (
    BatchSettings,
    LimitExceededBehavior,
    PublisherOptions,
    PublishFlowControl,
)

from aeroflow.ingest.publisher import (
    Messages,
    OutgoingMessage,
    ProgressCallback,
    PublishFailure,
    PublishReport,
)

if TYPE_CHECKING:
    from aeroflow.settings import Settings

log = logging.getLogger(__name__)

# publish(topic, data, ordering_key=, retry=, timeout=, **attributes): attribute names that
# would collide with the keyword arguments cannot be sent through this client.
_RESERVED_ATTRIBUTES: Final = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})
# The deterministic id of OutgoingMessage travels as an attribute: Pub/Sub assigns its own ids.
EVENT_ID_ATTRIBUTE: Final = "event_id"
_MAX_REPORTED_FAILURES: Final = 20
# Tries of one publish() that meets a failed batch (see ``_publish_one``): the client's commit
# timer clears it after one batch latency, so two tries suffice; the rest is slack for a loaded
# machine.
_FAILED_BATCH_RETRIES: Final = 5
_ASYNC_CHUNK: Final = 500
_ASYNC_LINGER: Final = 0.05
_PROGRESS_SECONDS: Final = 0.25

# Transient errors worth another attempt (what the client retries by default, minus nothing).
_RETRYABLE: Final = (
    api_exceptions.Aborted,
    api_exceptions.Cancelled,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
    api_exceptions.ResourceExhausted,
    api_exceptions.ServiceUnavailable,
    api_exceptions.Unknown,
)


def publish_retry(deadline_seconds: float) -> api_retry.Retry:
    return api_retry.Retry(
        predicate=api_retry.if_exception_type(*_RETRYABLE),
        initial=0.1,
        maximum=10.0,
        multiplier=1.3,
        timeout=deadline_seconds,
    )


@dataclass(slots=True)
class _Tally:
    """Outcomes, written by the client's callback threads, read by the event loop."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: int = 0
    published: int = 0
    failed: int = 0
    reported: int = 0  # finished messages already passed to the progress callback
    failures: list[PublishFailure] = field(default_factory=list)
    paused_keys: set[str] = field(default_factory=set)
    all_done: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.all_done = threading.Condition(self.lock)

    def fail(self, message_id: str, reason: str) -> None:
        with self.lock:
            self._fail_locked(message_id, reason)

    def _fail_locked(self, message_id: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < _MAX_REPORTED_FAILURES:
            self.failures.append(PublishFailure(message_id, reason))
            log.error("publishing message %s failed: %s", message_id, reason)
        self.all_done.notify_all()

    def done(self, message: OutgoingMessage, future: Future[str]) -> None:
        exc = future.exception()
        with self.lock:
            if exc is None:
                self.published += 1
                self.all_done.notify_all()
                return
            if message.ordering_key:
                self.paused_keys.add(message.ordering_key)
            self._fail_locked(message.message_id, f"{type(exc).__name__}: {exc}")

    @property
    def finished(self) -> int:
        return self.published + self.failed


class PubSubPublisher:
    """``ingest.publisher.Publisher`` over a Pub/Sub topic (``projects/P/topics/T``)."""

    def __init__(
        self,
        topic_path: str,
        *,
        ordering: bool = True,
        client: pubsub_v1.PublisherClient | None = None,
        **client_options: Any,
    ) -> None:
        """``client_options`` go to ``build_client``; pass ``client`` to share one between
        topics (it must have been built with the same ``ordering``)."""
        self.topic_path = topic_path
        self._ordering = ordering
        self._client = client or build_client(ordering=ordering, **client_options)

    @classmethod
    def from_settings(cls, settings: Settings, topic: str | None = None) -> PubSubPublisher:
        name = topic or settings.pubsub_topic
        project = settings.pubsub_project or settings.gcp_project
        if not name.startswith("projects/") and not project:
            raise ValueError(
                f"topic {name!r} needs a project: pass projects/P/topics/{name} or set"
                " AEROFLOW_PUBSUB_PROJECT (or AEROFLOW_GCP_PROJECT)"
            )
        return cls(
            name if name.startswith("projects/") else topic_path(str(project), name),
            ordering=settings.pubsub_message_ordering,
            batch_max_messages=settings.pubsub_publish_batch_max_messages,
            batch_max_latency_seconds=settings.pubsub_publish_batch_max_latency_ms / 1000,
            max_in_flight_messages=settings.pubsub_publish_max_in_flight_messages,
            max_in_flight_bytes=settings.pubsub_publish_max_in_flight_bytes,
            publish_timeout_seconds=settings.pubsub_publish_timeout_seconds,
        )

    async def publish(
        self, messages: Messages, progress: ProgressCallback | None = None
    ) -> PublishReport:
        started = time.perf_counter()
        tally = _Tally()
        reporter = asyncio.create_task(_report_progress(tally, progress))
        try:
            if isinstance(messages, AsyncIterable):
                async for chunk in _chunks(messages):
                    await asyncio.to_thread(self._submit, chunk, tally)
            else:
                await asyncio.to_thread(self._submit, messages, tally)
            await asyncio.to_thread(self._wait_for_all, tally)
        finally:
            reporter.cancel()
        _flush_progress(tally, progress)
        self._resume_paused(tally)
        report = PublishReport(
            published=tally.published,
            failed=tally.failed,
            retries=0,  # the client retries inside each future and does not count them
            elapsed_seconds=time.perf_counter() - started,
            failures=tuple(tally.failures),
        )
        if report.failed:
            log.error("%d of %d messages were not published", report.failed, tally.submitted)
        return report

    def close(self) -> None:
        """Send what is still batched and release the client's threads and channel."""
        self._client.stop()

    # --- runs in a worker thread ---------------------------------------------------------

    def _submit(self, messages: Iterable[OutgoingMessage], tally: _Tally) -> None:
        for message in messages:
            with tally.lock:
                tally.submitted += 1
            reserved = _RESERVED_ATTRIBUTES.intersection(message.attributes)
            if reserved:
                tally.fail(message.message_id, f"reserved attribute names {sorted(reserved)}")
                continue
            key = message.ordering_key if self._ordering else ""
            if key:
                self._resume_if_paused(key, tally)
            attributes = {**message.attributes, EVENT_ID_ATTRIBUTE: message.message_id}
            try:
                future = self._publish_one(message.data, key, attributes)
            except (ValueError, TypeError, RuntimeError) as exc:  # too large, stopped client
                tally.fail(message.message_id, f"{type(exc).__name__}: {exc}")
                continue
            future.add_done_callback(functools.partial(tally.done, message))

    def _publish_one(self, data: bytes, key: str, attributes: dict[str, str]) -> Future[str]:
        """``client.publish``, past a race in google-cloud-pubsub's unordered batches.

        When a full batch's Publish RPC fails before the next ``publish()`` call, that call
        trips an assertion on the failed batch (googleapis/python-pubsub#48; the fix, #49, only
        covers batches committed by the client's timer). The timer drops the failed batch within
        ``max_latency``, and the message was not queued, so waiting for it and trying again
        neither loses nor duplicates anything.
        """
        wait = self._client.batch_settings.max_latency * 2
        for _ in range(_FAILED_BATCH_RETRIES):
            try:
                future: Future[str] = self._client.publish(
                    self.topic_path, data, ordering_key=key, **attributes
                )
                return future
            except AssertionError:
                time.sleep(wait)
        raise RuntimeError("the Pub/Sub client kept refusing publishes after a failed batch")

    def _resume_if_paused(self, key: str, tally: _Tally) -> None:
        with tally.lock:
            if key not in tally.paused_keys:
                return
            tally.paused_keys.discard(key)
        self._client.resume_publish(self.topic_path, key)

    def _resume_paused(self, tally: _Tally) -> None:
        with tally.lock:
            keys, tally.paused_keys = tally.paused_keys, set()
        for key in keys:
            self._client.resume_publish(self.topic_path, key)

    @staticmethod
    def _wait_for_all(tally: _Tally) -> None:
        with tally.all_done:
            tally.all_done.wait_for(lambda: tally.finished >= tally.submitted)


def build_client(
    *,
    ordering: bool = True,
    batch_max_messages: int = 1000,
    batch_max_bytes: int = 1_000_000,
    batch_max_latency_seconds: float = 0.01,
    max_in_flight_messages: int = 10_000,
    max_in_flight_bytes: int = 64 * 1024**2,
    publish_timeout_seconds: float = 60.0,
) -> pubsub_v1.PublisherClient:
    """A PublisherClient with our batching, ordering, flow control and retry settings."""
    return pubsub_v1.PublisherClient(
        batch_settings=BatchSettings(
            max_bytes=batch_max_bytes,
            max_latency=batch_max_latency_seconds,
            max_messages=batch_max_messages,
        ),
        publisher_options=PublisherOptions(
            enable_message_ordering=ordering,
            flow_control=PublishFlowControl(
                message_limit=max_in_flight_messages,
                byte_limit=max_in_flight_bytes,
                limit_exceeded_behavior=LimitExceededBehavior.BLOCK,
            ),
            retry=publish_retry(publish_timeout_seconds),
            # Per attempt; the retry deadline bounds the whole.
            timeout=min(publish_timeout_seconds, 30.0),
        ),
    )


def topic_path(project: str, topic: str) -> str:
    return f"projects/{project}/topics/{topic}"


async def _chunks(messages: AsyncIterable[OutgoingMessage]) -> AsyncIterator[list[OutgoingMessage]]:
    """Up to _ASYNC_CHUNK messages at a time (one thread hop each), and whatever has arrived
    when the source pauses for _ASYNC_LINGER seconds: a slow live feed is not held back."""
    source = aiter(messages)
    chunk: list[OutgoingMessage] = []
    while True:
        pending = asyncio.ensure_future(anext(source))
        done, _ = await asyncio.wait({pending}, timeout=_ASYNC_LINGER)
        if not done and chunk:
            yield chunk
            chunk = []
        try:
            chunk.append(await pending)
        except StopAsyncIteration:
            break
        if len(chunk) >= _ASYNC_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _report_progress(tally: _Tally, progress: ProgressCallback | None) -> None:
    if progress is None:
        return
    while True:
        await asyncio.sleep(_PROGRESS_SECONDS)
        _flush_progress(tally, progress)


def _flush_progress(tally: _Tally, progress: ProgressCallback | None) -> None:
    with tally.lock:
        delta = tally.finished - tally.reported
        tally.reported = tally.finished
    if progress is not None and delta:
        progress(delta)
