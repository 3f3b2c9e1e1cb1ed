"""The streaming-pull worker: Pub/Sub subscription -> GroupCommitter -> store, ack after commit.

Per message (in the client's callback threads):

1. decode with ``envelope.decode_message`` (meta from the Pub/Sub message);
2. submit to the ``GroupCommitter``, which writes it with the other messages of its batch;
3. when the commit future resolves: **ack** (stored, duplicate, or a poison message now kept in
   ``rejected_messages``); on ``StorageUnavailableError`` **nack after a backoff** — holding the
   lease for a while keeps the slot in flow control occupied, so intake slows down instead of
   Pub/Sub redelivering into a store that is down in a tight loop.

Flow control (``max_messages``, ``max_bytes``) bounds what is leased and not yet acked, so
memory stays bounded whatever the backlog (google-cloud-python#7677).

Shutdown (``stop``, run on SIGTERM): stop taking messages (new ones are nacked at once, so
Pub/Sub hands them to another worker), let in-flight batches commit and their acks go out,
nack what still waits for a retry, then cancel the stream and *wait* for the client's shutdown
thread (``StreamingPullFuture.result``) before closing the subscriber: closing the channel
while the stream still sends acks/nacks loses them (python-pubsub#423) and races the
response thread (python-pubsub#997). Anything not acked by then is redelivered later; the
store's idempotency by message id makes that safe.

With DuckDB (one writing process) the worker runs inside ``aeroflow serve`` sharing the app's
committer: ``PullWorker.start()`` / ``stop()`` from the lifespan. Standalone (BigQuery), the CLI
calls ``run_worker``.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import random
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message
from google.cloud.pubsub_v1.types import FlowControl

from aeroflow.ingest.committer import GroupCommitter, Outcome
from aeroflow.ingest.envelope import decode_message
from aeroflow.storage.port import FlightStore, MessageMeta, StorageUnavailableError

if TYPE_CHECKING:
    from google.cloud.pubsub_v1.subscriber.futures import StreamingPullFuture

    from aeroflow.settings import Settings

log = logging.getLogger(__name__)

_BACKOFF_INITIAL: Final = 0.5
_BACKOFF_MAX: Final = 10.0


@dataclass(slots=True)
class WorkerStats:
    received: int = 0
    acked: int = 0
    nacked: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    storage_failures: int = 0


class _DelayedNacks:
    """Nacks messages when their backoff expires, from one thread (not one timer each)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Message]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="aeroflow-delayed-nack", daemon=True)
        self._thread.start()

    def add(self, message: Message, delay: float) -> None:
        with self._cond:
            if self._closed:
                message.nack()
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), message))
            self._cond.notify()

    def flush_and_close(self) -> int:
        """Nack everything still waiting, now; later ``add`` calls nack immediately."""
        with self._cond:
            self._closed = True
            waiting = [entry[2] for entry in self._heap]
            self._heap.clear()
            self._cond.notify()
        for message in waiting:
            message.nack()
        self._thread.join(timeout=1.0)
        return len(waiting)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, message = heapq.heappop(self._heap)
            message.nack()


class PullWorker:
    """Streaming pull from ``subscription_path`` into ``committer``. ``start`` then ``stop``."""

    def __init__(
        self,
        subscription_path: str,
        committer: GroupCommitter,
        *,
        max_messages: int = 4000,
        max_bytes: int = 64 * 1024**2,
        max_lease_seconds: int = 600,
        lease_extension_seconds: int = 0,
        nack_backoff_max_seconds: float = _BACKOFF_MAX,
        subscriber: pubsub_v1.SubscriberClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.subscription_path = subscription_path
        self._committer = committer
        self._flow_control = FlowControl(
            max_bytes=max_bytes,
            max_messages=max_messages,
            max_lease_duration=max_lease_seconds,
            # 0 = the client's default (leases extended by up to 60 s at a time, adapted to
            # ack latency). A smaller value makes a crashed worker's messages come back sooner.
            max_duration_per_lease_extension=lease_extension_seconds,
        )
        self._backoff_max = nack_backoff_max_seconds
        self._subscriber = subscriber
        self._owns_subscriber = subscriber is None
        self._clock = clock
        self._lock = threading.Condition()
        self._in_flight = 0  # submitted to the committer, not yet acked or nacked
        self._failing_since: float | None = None
        self._draining = False
        self._future: StreamingPullFuture | None = None
        self._nacks: _DelayedNacks | None = None
        self.stats = WorkerStats()

    @classmethod
    def from_settings(
        cls, settings: Settings, committer: GroupCommitter, subscription: str | None = None
    ) -> PullWorker:
        return cls(
            resolve_subscription(settings, subscription),
            committer,
            max_messages=settings.pubsub_pull_max_messages,
            max_bytes=settings.pubsub_pull_max_bytes,
            max_lease_seconds=settings.pubsub_pull_max_lease_seconds,
            lease_extension_seconds=settings.pubsub_pull_lease_extension_seconds,
        )

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._future is not None:
            raise RuntimeError("worker already started")
        if self._subscriber is None:
            self._subscriber = pubsub_v1.SubscriberClient()
        self._nacks = _DelayedNacks()
        self._future = self._subscriber.subscribe(
            self.subscription_path,
            callback=self._on_message,
            flow_control=self._flow_control,
            # await_callbacks_on_shutdown stays False: our callbacks only decode and enqueue,
            # and stop() has already let them settle; True adds a second shutdown race in the
            # client on stream reconnects (google-cloud-python#16125).
        )
        log.info("pulling from %s", self.subscription_path)

    @property
    def pulling(self) -> bool:
        return self._future is not None and not self._future.done()

    @asynccontextmanager
    async def running(self, drain_timeout: float) -> AsyncIterator[PullWorker]:
        """Pull while the block runs: for an app lifespan (``aeroflow serve --subscription``),
        entered after the committer started and left before it drains."""
        self.start()
        try:
            yield self
        finally:
            await asyncio.to_thread(self.stop, drain_timeout)

    def stream_error(self) -> BaseException | None:
        """Why the stream ended on its own (subscription deleted, permission denied...)."""
        if self._future is None or not self._future.done() or self._future.cancelled():
            return None
        try:
            error: BaseException | None = self._future.exception(timeout=0)
        except Exception as exc:  # cancelled or timed out: not a stream error
            log.debug("no stream error: %r", exc)
            return None
        return error

    def stop(self, timeout: float) -> None:
        """Drain and shut down within ``timeout`` seconds; safe to call more than once."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._draining:
                return
            self._draining = True
            # Let the batches already submitted commit and be acked (most of the budget).
            settle_by = time.monotonic() + timeout * 0.7
            self._lock.wait_for(
                lambda: self._in_flight == 0, timeout=max(0.0, settle_by - time.monotonic())
            )
            unsettled = self._in_flight
        if unsettled:
            log.warning("%d messages not committed before shutdown; Pub/Sub redelivers", unsettled)
        if self._nacks is not None:
            self._nacks.flush_and_close()
        if self._future is not None:
            self._future.cancel()  # non-blocking: stops the stream, nacks messages on hold
            try:
                self._future.result(timeout=max(0.1, deadline - time.monotonic()))
            except FutureTimeoutError:
                log.warning("subscriber did not shut down in time")
            except Exception as exc:  # the stream had already failed; it is stopped either way
                log.warning("stream ended with %r", exc)
        if self._owns_subscriber and self._subscriber is not None:
            self._subscriber.close()
        log.info(
            "pull worker stopped: %d received, %d acked, %d nacked",
            self.stats.received,
            self.stats.acked,
            self.stats.nacked,
        )

    # --- callbacks (client threads) ------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        with self._lock:
            self.stats.received += 1
            if self._draining:
                self.stats.nacked += 1
                draining = True
            else:
                self._in_flight += 1
                draining = False
        if draining:
            message.nack()
            return
        try:
            item = decode_message(
                _meta(message, self.subscription_path), message.data, self._clock()
            )
            future = self._committer.submit(item)
        except Exception as exc:
            # CommitterClosedError (shutting down) or a bug: either way not ours to ack.
            log.warning("message %s not submitted: %r", message.message_id, exc)
            self._settle(message, ack=False)
            return
        future.add_done_callback(functools.partial(self._on_committed, message))

    def _on_committed(self, message: Message, future: Future[Outcome]) -> None:
        try:
            outcome = future.result()
        except StorageUnavailableError as exc:
            self._retry_later(message, exc)
            return
        except Exception as exc:
            log.error("commit of message %s failed unexpectedly: %r", message.message_id, exc)
            self._retry_later(message, exc)
            return
        with self._lock:
            self._failing_since = None
            if outcome is Outcome.STORED:
                self.stats.stored += 1
            elif outcome is Outcome.DUPLICATE:
                self.stats.duplicates += 1
            else:
                self.stats.rejected += 1
        self._settle(message, ack=True)

    def _retry_later(self, message: Message, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self.stats.storage_failures += 1
            if self._failing_since is None:
                self._failing_since = now
                log.warning("storage unavailable (%r); nacking with backoff", exc)
            outage = now - self._failing_since
            nacks = self._nacks
        # The longer the store has been down, the longer each message waits before going back.
        delay = min(self._backoff_max, max(_BACKOFF_INITIAL, outage))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        if nacks is not None:
            nacks.add(message, delay)
        else:
            message.nack()
        self._release(acked=False)

    def _settle(self, message: Message, *, ack: bool) -> None:
        if ack:
            message.ack()
        else:
            message.nack()
        self._release(acked=ack)

    def _release(self, *, acked: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            if acked:
                self.stats.acked += 1
            else:
                self.stats.nacked += 1
            if self._in_flight == 0:
                self._lock.notify_all()


def _meta(message: Message, subscription: str) -> MessageMeta:
    published = message.publish_time  # DatetimeWithNanoseconds, UTC
    return MessageMeta(
        message_id=message.message_id,
        publish_time=datetime(
            published.year,
            published.month,
            published.day,
            published.hour,
            published.minute,
            published.second,
            published.microsecond,
            tzinfo=UTC,
        ),
        attributes=dict(message.attributes),
        ordering_key=message.ordering_key or None,
        subscription=subscription,
        delivery_attempt=message.delivery_attempt,
    )


def resolve_subscription(settings: Settings, subscription: str | None = None) -> str:
    """A full ``projects/P/subscriptions/S`` path from a name, a path, or the settings."""
    name = subscription or settings.pubsub_subscription
    if name.startswith("projects/"):
        return name
    project = settings.pubsub_project or settings.gcp_project
    if not project:
        raise ValueError(
            f"subscription {name!r} needs a project: pass projects/P/subscriptions/{name} or set"
            " AEROFLOW_PUBSUB_PROJECT"
        )
    return f"projects/{project}/subscriptions/{name}"


def run_worker(
    settings: Settings,
    store: FlightStore,
    *,
    subscription: str | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """``aeroflow worker``: pull until SIGTERM/SIGINT (or ``stop_event``), then drain.

    Owns a GroupCommitter over ``store``; the caller opens and closes the store. Returns the
    process exit code: 0 after a clean drain, 1 when the stream failed on its own (e.g. the
    subscription does not exist or the identity may not read it).
    """
    stop = stop_event or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    committer = GroupCommitter(
        store,
        max_batch=settings.ingest_max_batch_messages,
        max_wait_seconds=settings.ingest_max_batch_wait_ms / 1000,
    )
    committer.start()
    worker = PullWorker.from_settings(settings, committer, subscription)
    exit_code = 0
    try:
        worker.start()
        while not stop.wait(0.5):
            error = worker.stream_error()
            if error is not None:
                log.error("streaming pull from %s failed: %r", worker.subscription_path, error)
                exit_code = 1
                break
    finally:
        # Cloud Run / Kubernetes allow ingest_drain_timeout_seconds after SIGTERM: most of it
        # for in-flight batches and their acks, the rest to flush the committer.
        budget = settings.ingest_drain_timeout_seconds
        started = time.monotonic()
        worker.stop(budget * 0.75)
        committer.drain(max(0.5, budget - (time.monotonic() - started)))
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return exit_code
