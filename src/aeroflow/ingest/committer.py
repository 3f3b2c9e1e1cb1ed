"""Group commit: many callers, one writer thread, one durable write per batch.

Each push request (or pull callback) submits one decoded message and waits on a Future. The
writer thread takes everything queued, up to ``max_batch`` items, waiting at most
``max_wait_seconds`` after the oldest queued item arrived for more to join it (or, when only a
few queued during the last commit, for the senders that commit just acked:
``company_to_wait_for``), and stores the lot with a single ``FlightStore.write_batch``. Only then
are the futures resolved, so a caller acks a message only after its write is durable. When the
write fails, every future of the batch fails with StorageUnavailableError and nothing is acked:
Pub/Sub redelivers, and the store's idempotency by message id makes the retry safe.

One writer thread because DuckDB wants a single writer, and because a few large transactions
are far cheaper than many small ones on any backend. While one batch is being written the next
one collects in the queue, so under load batches grow to what arrived during a write.

Async callers (the push endpoint) use ``submit_async``: their asyncio futures are settled with
ONE ``call_soon_threadsafe`` per batch and event loop. Wrapping a concurrent Future per message
(``asyncio.wrap_future``) costs a thread-safe wake-up of the loop per message instead.
``submit_callback`` goes one step further for callers that are not coroutines (the push lane of
``ingest/push_protocol.py``): no future at all, the callback runs inside that one per-batch
callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from aeroflow.observability import metrics
from aeroflow.storage.port import (
    AcceptedMessage,
    FlightStore,
    RejectedMessage,
    StorageUnavailableError,
    WriteBatch,
    WriteResult,
)

log = logging.getLogger(__name__)

Item = AcceptedMessage | RejectedMessage

# See GroupCommitter.start.
_SWITCH_INTERVAL_SECONDS: Final = 0.0005
_YOUNG_GC_THRESHOLD: Final = 10_000

_STORED: Final = metrics.INGEST_MESSAGES.labels(outcome="stored", reason="none")
_DUPLICATE: Final = metrics.INGEST_MESSAGES.labels(outcome="duplicate", reason="none")
_FAILED: Final = metrics.INGEST_MESSAGES.labels(outcome="failed", reason="none")


class Outcome(StrEnum):
    STORED = "stored"  # a new accepted message, now durable
    DUPLICATE = "duplicate"  # this message id was already stored; nothing changed
    REJECTED = "rejected"  # a poison message, now durable in rejected_messages


class CommitterOverloadedError(StorageUnavailableError):
    """Too many messages are waiting for the writer; retry later (HTTP 429)."""


class CommitterClosedError(StorageUnavailableError):
    """The committer is draining or stopped and takes no new messages (HTTP 503)."""


# Called on the submitter's event loop with the outcome, or the exception the batch failed with.
OutcomeCallback = Callable[[Outcome | BaseException], None]


@dataclass(slots=True)
class _Pending:
    item: Item
    enqueued: float  # time.monotonic()
    future: Future[Outcome] | None = None  # a thread caller (submit)
    waiter: asyncio.Future[Outcome] | None = None  # an event-loop caller (submit_async)
    callback: OutcomeCallback | None = None  # an event-loop caller (submit_callback) ...
    loop: asyncio.AbstractEventLoop | None = None  # ... and the loop it runs on

    def claim(self) -> bool:
        """False when the caller has given up already (a cancelled Future): skip the item.

        An asyncio waiter cannot be claimed from this thread; if it is cancelled meanwhile the
        message is still written, and the redelivery that follows is a duplicate.
        """
        return self.future is None or self.future.set_running_or_notify_cancel()


Settlement = tuple[_Pending, Outcome | BaseException]


class GroupCommitter:
    def __init__(
        self,
        store: FlightStore,
        *,
        max_batch: int,
        max_wait_seconds: float,
        max_pending: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if max_wait_seconds < 0:
            raise ValueError("max_wait_seconds must be >= 0")
        self._store = store
        self._max_batch = max_batch
        self._max_wait = max_wait_seconds
        # Enough for a few batches in flight; beyond that callers are told to back off rather
        # than pile up memory and latency.
        self._max_pending = max_pending if max_pending is not None else 8 * max_batch
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._warned_unattributed = False
        self._company = True  # did the last batch have more than one message?
        self._last_batch = 0  # messages in the last batch taken
        # When the last commit ended: its messages plus those queued meanwhile.
        self._in_flight = 0
        # The queue length at which a submitter wakes the writer waiting for company.
        self._wake_at = max_batch
        self._write_failure: str | None = None  # set by the writer thread only

    # --- caller side ---------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._closed:
                raise CommitterClosedError("committer was drained; create a new one")
            if self._thread is not None:
                return
            # The writer re-takes the GIL after every DuckDB call; while the event loop is busy
            # it waits a whole switch interval (5 ms by default) each time, which stretched a
            # 15 ms batch write to 60+ ms under load. A shorter interval: ~10 % more msg/s.
            if sys.getswitchinterval() > _SWITCH_INTERVAL_SECONDS:
                sys.setswitchinterval(_SWITCH_INTERVAL_SECONDS)
            # Messages waiting for their commit (with their requests: thousands of containers
            # alive for 50-100 ms under load) keep the young generation above Python's 700:
            # at 512 in flight ~40 young and ~3.5 middle collections a second, none of them
            # finding garbage, ~1 s of GIL-held time per 100 k messages that the writer waits
            # out. Above the in-flight population they run a few times a run.
            young, *older = gc.get_threshold()
            if young < _YOUNG_GC_THRESHOLD:
                gc.set_threshold(_YOUNG_GC_THRESHOLD, *older)
            # A store's one-time write set-up (DuckDB: pyarrow importing pandas, ~1 s holding
            # the GIL) belongs here, at startup, not in the first batch under traffic.
            prepare = getattr(self._store, "prepare_writes", None)
            if callable(prepare):
                prepare()
            self._thread = threading.Thread(
                target=self._run, name="aeroflow-group-committer", daemon=True
            )
            self._thread.start()

    def submit(self, item: Item) -> Future[Outcome]:
        """Queue one message. The future resolves once its batch is durable.

        Raises CommitterClosedError after ``drain``. When too many messages are waiting the
        returned future has already failed with CommitterOverloadedError.
        """
        future: Future[Outcome] = Future()
        with self._cond:
            if self._closed:
                raise CommitterClosedError("ingest is shutting down")
            if len(self._queue) >= self._max_pending:
                _FAILED.inc()
                future.set_exception(
                    CommitterOverloadedError(f"{len(self._queue)} messages waiting to be written")
                )
                return future
            self._enqueue(_Pending(item, time.monotonic(), future=future))
        return future

    def submit_async(self, item: Item) -> asyncio.Future[Outcome]:
        """``submit`` for code on an event loop: await the result instead of wrapping a Future.

        Must be called on the running loop, which the result is delivered to.
        """
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            self._append_unlocked(_Pending(item, time.monotonic(), waiter=waiter))
        except CommitterOverloadedError as exc:
            waiter.set_exception(exc)
        return waiter

    def submit_callback(self, item: Item, callback: OutcomeCallback) -> None:
        """``submit_async`` without a future, for event-loop code that is not a coroutine.

        ``callback`` runs on the running loop once the batch is durable (with the Outcome) or
        has failed (with the exception), inside the committer's one callback per batch: it
        must not raise, and it is never called when this raises CommitterClosedError or
        CommitterOverloadedError instead.
        """
        loop = asyncio.get_running_loop()
        self._append_unlocked(_Pending(item, time.monotonic(), callback=callback, loop=loop))

    def _append_unlocked(self, pending: _Pending) -> None:
        """Queue an event-loop caller's message; raises as ``submit_callback`` says."""
        # Without the lock, unlike ``submit``: taking it per message cost the event loop ~8 %
        # of its time per push request, mostly waiting for it while the writer held it. A
        # deque append is atomic, and the writer only needs the lock for its wake-ups.
        queue = self._queue
        if self._closed:
            raise CommitterClosedError("ingest is shutting down")
        if len(queue) >= self._max_pending:
            _FAILED.inc()
            raise CommitterOverloadedError(f"{len(queue)} messages waiting to be written")
        queue.append(pending)
        queued = len(queue)
        if queued == 1 or queued >= self._wake_at:
            with self._cond:
                self._cond.notify()
        if self._closed:
            # ``drain`` began meanwhile and may have collected its leftovers before the append:
            # take the message back unless the writer or ``drain`` already has it.
            with self._cond:
                try:
                    queue.remove(pending)
                except ValueError:
                    return  # written or settled as closed by whoever took it
            raise CommitterClosedError("ingest is shutting down")

    def _enqueue(self, pending: _Pending) -> None:
        # Called with self._cond held. The writer needs a wake-up only when it may be idle
        # (first item) or when a full batch is ready.
        self._queue.append(pending)
        if len(self._queue) == 1 or len(self._queue) >= self._wake_at:
            self._cond.notify()

    def drain(self, timeout: float) -> None:
        """Stop taking messages, write everything queued, then stop the writer.

        Whatever could not be written within ``timeout`` fails with StorageUnavailableError
        (never acked, so Pub/Sub redelivers it).
        """
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            # One by one, not list() then clear(): submit_async appends without the lock, and
            # what it appends after this is still in the queue for it to take back.
            leftovers = [self._queue.popleft() for _ in range(len(self._queue))]
        closed = CommitterClosedError("shut down before the message was written")
        _settle([(pending, closed) for pending in leftovers if pending.claim()])
        if leftovers:
            _FAILED.inc(len(leftovers))
            log.warning("drain timed out; %d messages left unwritten", len(leftovers))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def write_health(self) -> str | None:
        """A readiness check: None, or why the last batch write failed.

        Stays unhealthy until a write succeeds again; Pub/Sub's redeliveries of the refused
        messages are what bring that write about once storage is back.
        """
        return self._write_failure

    # --- writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            self._commit(batch)

    def _take_batch(self) -> list[_Pending] | None:
        """Block until a batch is due; None when drained and empty."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            # Wait for company only while the oldest item is younger than max_wait: items that
            # queued up during the previous commit have already waited and go at once, unless
            # they are few and the last batch's senders are about to join them. Never for more
            # than were in flight (``company_to_wait_for``). And not when the last batch found
            # none: a lone sender (one publisher, a probe) would only ever add max_wait to each
            # of its messages.
            deadline = self._queue[0].enqueued + (self._max_wait if self._company else 0.0)
            target = self._max_batch
            if self._company and self._last_batch:
                target, returning = company_to_wait_for(
                    len(self._queue), self._in_flight, self._last_batch, self._max_batch
                )
                if returning:
                    deadline = max(deadline, time.monotonic() + self._max_wait)
                self._wake_at = target
            while len(self._queue) < target and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._wake_at = self._max_batch
            count = min(len(self._queue), self._max_batch)
            self._company = count > 1
            self._last_batch = count
            return [self._queue.popleft() for _ in range(count)]

    def _commit(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if p.claim()]
        if not live:
            return
        # The same message id twice in one batch (a redelivery racing the original): write it
        # once; the later copies are duplicates by definition.
        first: dict[str, _Pending] = {}
        repeats: list[_Pending] = []
        for pending in live:
            if first.setdefault(pending.item.meta.message_id, pending) is not pending:
                repeats.append(pending)
        unique = list(first.values()) if repeats else live
        accepted = [p.item for p in unique if isinstance(p.item, AcceptedMessage)]
        rejected = [p.item for p in unique if isinstance(p.item, RejectedMessage)]

        started = time.perf_counter()
        try:
            result = self._store.write_batch(WriteBatch(accepted=accepted, rejected=rejected))
        except Exception as exc:
            self._in_flight = len(batch) + len(self._queue)
            # StorageUnavailableError is the expected case; anything else is a bug in an
            # adapter, but the waiting callers must hear about it either way (none is acked),
            # and the writer must survive it.
            self._write_failure = f"storage writes are failing: {type(exc).__name__}"
            _settle([(pending, exc) for pending in live])
            _FAILED.inc(len(live))
            log.warning("batch write of %d messages failed: %r", len(unique), exc)
            return
        # Counted before the acks go out: the senders resending after them are not new.
        self._in_flight = len(batch) + len(self._queue)
        self._write_failure = None
        committed = time.perf_counter()
        metrics.INGEST_COMMIT_DURATION.observe(committed - started)
        metrics.INGEST_BATCH_SIZE.observe(len(unique))
        _settle(self._outcomes(unique, repeats, result))

    def _outcomes(
        self, unique: list[_Pending], repeats: list[_Pending], result: WriteResult
    ) -> list[Settlement]:
        duplicate_ids = result.duplicate_ids
        if result.duplicates != len(duplicate_ids) and not self._warned_unattributed:
            self._warned_unattributed = True
            log.warning(
                "store reported %d duplicates but named %d; per-message outcomes may say"
                " stored for a duplicate",
                result.duplicates,
                len(duplicate_ids),
            )
        now = datetime.now(UTC)
        stored = duplicates = 0
        outcomes: list[Settlement] = []
        for pending in unique:
            item = pending.item
            if duplicate_ids and item.meta.message_id in duplicate_ids:
                duplicates += 1
                outcomes.append((pending, Outcome.DUPLICATE))
            elif isinstance(item, AcceptedMessage):
                stored += 1
                metrics.INGEST_FRESHNESS.observe((now - item.meta.publish_time).total_seconds())
                metrics.INGEST_EVENT_LAG.observe((now - item.event.event_time).total_seconds())
                outcomes.append((pending, Outcome.STORED))
            else:
                metrics.INGEST_MESSAGES.labels(outcome="rejected", reason=item.reason.value).inc()
                outcomes.append((pending, Outcome.REJECTED))
        outcomes.extend((pending, Outcome.DUPLICATE) for pending in repeats)
        _STORED.inc(stored)
        _DUPLICATE.inc(duplicates + len(repeats))
        return outcomes


def company_to_wait_for(
    queued: int, in_flight: int, last_batch: int, max_batch: int
) -> tuple[int, bool]:
    """(how many messages a batch waits for, whether the senders are on their way).

    ``in_flight``: the last batch's senders plus those who queued during its commit. Under a
    steady load (publishers that each send again once acked) that is everyone there is: the
    writer goes as soon as they are all here rather than wait out the window for more.

    On their way: few queued after a larger batch, the others' acks having just gone out
    with the last commit. A commit's fixed cost is most of a small batch's (~10 of ~17 ms
    for 50 messages on DuckDB), so the writer then waits for them, up to the window from now:
    64 publishers otherwise settle into alternating batches of ~50 and ~14, each paying it.
    With half the last batch or more queued, batches already overlap commits well and the
    usual window (from the oldest message) applies.
    """
    return min(in_flight, max_batch), queued < last_batch // 2


def _settle(settlements: Sequence[Settlement]) -> None:
    """Deliver results: thread callers' Futures at once, event-loop callers' waiters in one
    callback per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Settlement]] = {}
    for settlement in settlements:
        pending, result = settlement
        if pending.waiter is not None:
            by_loop.setdefault(pending.waiter.get_loop(), []).append(settlement)
        elif pending.loop is not None:
            by_loop.setdefault(pending.loop, []).append(settlement)
        elif pending.future is not None:
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
    for loop, on_loop in by_loop.items():
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_waiters, on_loop)


def _settle_waiters(settlements: Sequence[Settlement]) -> None:
    """Runs on the waiters' event loop."""
    for pending, result in settlements:
        callback = pending.callback
        if callback is not None:
            try:
                callback(result)
            except Exception:  # a broken caller must not keep the rest of the batch waiting
                log.exception("an ingest outcome callback failed")
            continue
        waiter = pending.waiter
        if waiter is None or waiter.done():  # done: cancelled, the request went away
            continue
        if isinstance(result, BaseException):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)
