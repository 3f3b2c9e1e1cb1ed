from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import arrived_event, table_count
from prometheus_client import REGISTRY

from aeroflow.domain.events import FlightEvent
from aeroflow.ingest.committer import (
    CommitterClosedError,
    CommitterOverloadedError,
    GroupCommitter,
    Item,
    Outcome,
    company_to_wait_for,
)
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import (
    AcceptedMessage,
    MessageMeta,
    RejectedMessage,
    RejectReason,
    StorageUnavailableError,
    WriteBatch,
    WriteResult,
)

NOW = datetime(2013, 1, 2, tzinfo=UTC)


class RecordingStore(DuckDBFlightStore):
    """The real DuckDB store, counting batch writes, with a gate and an off switch.

    Switching off fakes the failure boundary only: a real storage outage (file locked, disk
    gone) belongs to the reliability tests.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []
        self.down = False
        self.gate = threading.Event()
        self.gate.set()

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        self.gate.wait(10)
        if self.down:
            raise StorageUnavailableError("storage switched off by the test")
        self.batches.append(len(batch))
        return super().write_batch(batch)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ingest.duckdb"


@pytest.fixture
def store(db_path: Path) -> Iterator[RecordingStore]:
    recording = RecordingStore(db_path)
    yield recording
    recording.close()


def flight(number: int) -> FlightEvent:
    return arrived_event(flight_number=number)


def accepted(message_id: str, event: FlightEvent | None = None) -> AcceptedMessage:
    meta = MessageMeta(message_id=message_id, publish_time=NOW - timedelta(seconds=1))
    return AcceptedMessage(meta=meta, event=event or flight(1), ingest_time=NOW)


def rejected(message_id: str) -> RejectedMessage:
    meta = MessageMeta(message_id=message_id, publish_time=NOW)
    return RejectedMessage(
        meta=meta,
        raw_data=b"{oops",
        reason=RejectReason.INVALID_JSON,
        detail="data is not JSON",
        received_at=NOW,
    )


def taken_by_writer(committer: GroupCommitter) -> None:
    """Wait until the writer has taken everything queued (it then blocks at the gate)."""
    deadline = time.monotonic() + 5
    while committer.pending:
        assert time.monotonic() < deadline, "the writer did not take the batch"
        time.sleep(0.005)
    time.sleep(0.01)


def counter(outcome: str, reason: str = "none") -> float:
    value = REGISTRY.get_sample_value(
        "aeroflow_ingest_messages_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


def test_concurrent_submits_share_a_few_batches(store: RecordingStore, db_path: Path) -> None:
    committer = GroupCommitter(store, max_batch=200, max_wait_seconds=0.05)
    committer.start()
    stored_before = counter("stored")

    def submit(number: int) -> Future[Outcome]:
        return committer.submit(accepted(f"m-{number}", flight(number + 1)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = list(pool.map(submit, range(400)))
    outcomes = [f.result(timeout=10) for f in futures]
    committer.drain(5)

    assert outcomes == [Outcome.STORED] * 400
    assert sum(store.batches) == 400
    assert len(store.batches) <= 10, store.batches
    assert counter("stored") - stored_before == 400
    store.close()
    assert table_count(db_path, "flight_events") == 400
    assert table_count(db_path, "flights") == 400


def test_each_caller_learns_its_own_outcome(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=100, max_wait_seconds=0.01)
    committer.start()
    assert committer.submit(accepted("a")).result(5) is Outcome.STORED

    # One batch: an old id, a new one, the new one again, and a poison message.
    store.gate.clear()
    blocker = committer.submit(accepted("blocker", flight(9)))
    taken_by_writer(committer)
    futures = [
        committer.submit(accepted("a")),
        committer.submit(accepted("b", flight(2))),
        committer.submit(accepted("b", flight(2))),
        committer.submit(rejected("poison")),
    ]
    store.gate.set()
    assert blocker.result(5) is Outcome.STORED
    assert [f.result(5) for f in futures] == [
        Outcome.DUPLICATE,
        Outcome.STORED,
        Outcome.DUPLICATE,
        Outcome.REJECTED,
    ]
    assert store.batches[-1] == 3  # the in-batch repeat never reached the store
    assert committer.submit(rejected("poison")).result(5) is Outcome.DUPLICATE
    committer.drain(5)


def test_storage_failure_fails_the_whole_batch_and_retries_succeed(
    store: RecordingStore, db_path: Path
) -> None:
    committer = GroupCommitter(store, max_batch=100, max_wait_seconds=0.05)
    committer.start()
    failed_before = counter("failed")
    store.down = True
    futures = [committer.submit(accepted(f"m-{n}", flight(n + 1))) for n in range(20)]
    wait(futures, timeout=5)
    for future in futures:
        with pytest.raises(StorageUnavailableError):
            future.result(0)
    assert counter("failed") - failed_before == 20

    store.down = False  # recovered: the redeliveries go through, once each
    retried = [committer.submit(accepted(f"m-{n}", flight(n + 1))) for n in range(20)]
    assert [f.result(5) for f in retried] == [Outcome.STORED] * 20
    committer.drain(5)
    store.close()
    assert table_count(db_path, "flight_events") == 20


def test_drain_flushes_without_waiting_for_the_batch_window(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=1000, max_wait_seconds=30)
    committer.start()
    futures = [committer.submit(accepted(f"m-{n}", flight(n + 1))) for n in range(50)]
    started = time.monotonic()
    committer.drain(5)
    assert time.monotonic() - started < 5
    assert all(f.done() for f in futures)
    assert [f.result(0) for f in futures] == [Outcome.STORED] * 50
    with pytest.raises(CommitterClosedError):
        committer.submit(accepted("late"))


def test_drain_timeout_fails_what_was_not_written(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=1, max_wait_seconds=0)
    committer.start()
    store.gate.clear()  # the writer hangs in its first write
    first = committer.submit(accepted("first"))
    taken_by_writer(committer)
    queued = committer.submit(accepted("queued", flight(2)))
    committer.drain(0.2)
    with pytest.raises(CommitterClosedError):
        queued.result(0)
    store.gate.set()
    assert first.result(5) is Outcome.STORED  # the write in flight still completes


def test_a_full_queue_pushes_back(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=2, max_wait_seconds=0, max_pending=3)
    committer.start()
    store.gate.clear()
    in_flight = committer.submit(accepted("in-flight"))
    taken_by_writer(committer)
    waiting = [committer.submit(accepted(f"w-{n}", flight(n + 2))) for n in range(3)]
    refused = committer.submit(accepted("one-too-many", flight(9)))
    with pytest.raises(CommitterOverloadedError):
        refused.result(0)
    store.gate.set()
    assert in_flight.result(5) is Outcome.STORED
    assert [f.result(5) for f in waiting] == [Outcome.STORED] * 3
    committer.drain(5)


def test_ingest_metrics_are_recorded(store: RecordingStore) -> None:
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    before = {
        name: sample(name)
        for name in (
            "aeroflow_ingest_batch_size_count",
            "aeroflow_ingest_batch_size_sum",
            "aeroflow_ingest_commit_duration_seconds_count",
            "aeroflow_ingest_freshness_seconds_count",
            "aeroflow_ingest_event_lag_seconds_count",
        )
    }
    rejected_before = counter("rejected", "invalid_json")
    committer = GroupCommitter(store, max_batch=10, max_wait_seconds=0.2)
    committer.start()
    futures = [committer.submit(accepted("x", flight(3))), committer.submit(rejected("y"))]
    wait(futures, timeout=5)
    committer.drain(5)

    def delta(name: str) -> float:
        return sample(name) - before[name]

    assert delta("aeroflow_ingest_batch_size_count") == 1
    assert delta("aeroflow_ingest_batch_size_sum") == 2
    assert delta("aeroflow_ingest_commit_duration_seconds_count") == 1
    assert delta("aeroflow_ingest_freshness_seconds_count") == 1
    assert delta("aeroflow_ingest_event_lag_seconds_count") == 1
    assert counter("rejected", "invalid_json") - rejected_before == 1


# --- event-loop callers (submit_async) -------------------------------------------------------


class CountingLoop(asyncio.SelectorEventLoop):
    """A real event loop that counts the committer's wake-ups from its writer thread."""

    wakeups = 0

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Any, *args: Any, **kwargs: Any
    ) -> asyncio.Handle:
        if getattr(callback, "__module__", "") == "aeroflow.ingest.committer":
            self.wakeups += 1
        return super().call_soon_threadsafe(callback, *args, **kwargs)


def test_async_callers_are_settled_with_one_wakeup_per_batch(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=500, max_wait_seconds=0.05)
    committer.start()
    loop = CountingLoop()

    async def publish() -> list[Outcome | BaseException]:
        store.gate.clear()
        blocker = committer.submit_async(accepted("blocker", flight(9)))
        await asyncio.to_thread(taken_by_writer, committer)
        waiters = [committer.submit_async(accepted(f"m-{n}", flight(n + 1))) for n in range(300)]
        waiters += [committer.submit_async(accepted("m-0")), committer.submit_async(rejected("p"))]
        store.gate.set()
        await blocker
        return await asyncio.gather(*waiters, return_exceptions=True)

    try:
        outcomes = loop.run_until_complete(publish())
    finally:
        loop.close()
    committer.drain(5)
    assert outcomes == [Outcome.STORED] * 300 + [Outcome.DUPLICATE, Outcome.REJECTED]
    assert store.batches == [1, 301]
    assert loop.wakeups == 2  # one per batch, not one per message


def test_async_callers_see_storage_failures_overload_and_shutdown(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=2, max_wait_seconds=0, max_pending=2)
    committer.start()

    async def scenario() -> None:
        store.down = True
        with pytest.raises(StorageUnavailableError):
            await committer.submit_async(accepted("down"))
        store.down = False

        store.gate.clear()
        in_flight = committer.submit_async(accepted("in-flight"))
        await asyncio.to_thread(taken_by_writer, committer)
        queued = [committer.submit_async(accepted(f"q-{n}", flight(n + 2))) for n in range(2)]
        with pytest.raises(CommitterOverloadedError):
            await committer.submit_async(accepted("one-too-many"))
        # A caller that gives up (the client went away) changes nothing for the others.
        queued[0].cancel()
        store.gate.set()
        assert await in_flight is Outcome.STORED
        assert await queued[1] is Outcome.STORED

    asyncio.run(scenario())
    committer.drain(5)

    async def after_drain() -> None:
        with pytest.raises(CommitterClosedError):
            committer.submit_async(accepted("late"))

    asyncio.run(after_drain())


def test_callback_callers_are_settled_on_their_loop_in_one_wakeup_per_batch(
    store: RecordingStore,
) -> None:
    committer = GroupCommitter(store, max_batch=500, max_wait_seconds=0.05, max_pending=300)
    committer.start()
    loop = CountingLoop()
    results: dict[str, Outcome | BaseException] = {}

    def note(message_id: str) -> Callable[[Outcome | BaseException], None]:
        def callback(result: Outcome | BaseException) -> None:
            assert threading.current_thread() is threading.main_thread()  # the loop's thread
            results[message_id] = result
            if len(results) == 299:
                done.set()

        return callback

    def broken(_: Outcome | BaseException) -> None:
        raise RuntimeError("a caller's bug")

    async def publish() -> None:
        store.gate.clear()
        blocker = committer.submit_async(accepted("blocker", flight(9)))
        await asyncio.to_thread(taken_by_writer, committer)
        # A callback that raises is logged, and the rest of its batch is still settled.
        committer.submit_callback(accepted("broken", flight(300)), broken)
        for n in range(297):
            committer.submit_callback(accepted(f"m-{n}", flight(n + 1)), note(f"m-{n}"))
        committer.submit_callback(accepted("m-0"), note("again"))
        committer.submit_callback(rejected("p"), note("p"))
        with pytest.raises(CommitterOverloadedError):  # raised, the callback never called
            committer.submit_callback(accepted("one-too-many"), note("one-too-many"))
        store.down = True
        store.gate.set()
        await done.wait()
        with pytest.raises(StorageUnavailableError):
            await blocker

    done = asyncio.Event()
    try:
        loop.run_until_complete(publish())
    finally:
        loop.close()
    store.down = False
    committer.drain(5)
    assert len(results) == 299
    assert "one-too-many" not in results
    assert all(isinstance(r, StorageUnavailableError) for r in results.values())
    assert loop.wakeups == 2  # the blocker's batch, then one for the other 300 messages


def test_callback_callers_learn_each_outcome_and_shutdown(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=10, max_wait_seconds=0)
    committer.start()

    async def scenario() -> list[Outcome | BaseException]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]
        items: list[Item] = [accepted("a", flight(1)), accepted("a", flight(1)), rejected("p")]
        for item, future in zip(items, futures, strict=True):
            committer.submit_callback(item, future.set_result)
        return list(await asyncio.gather(*futures))

    assert asyncio.run(scenario()) == [Outcome.STORED, Outcome.DUPLICATE, Outcome.REJECTED]
    committer.drain(5)

    async def after_drain() -> None:
        with pytest.raises(CommitterClosedError):
            committer.submit_callback(accepted("late"), lambda _: None)

    asyncio.run(after_drain())


def test_a_lone_sender_is_not_held_back_by_the_batch_window(store: RecordingStore) -> None:
    committer = GroupCommitter(store, max_batch=100, max_wait_seconds=0.5)
    committer.start()
    assert committer.submit(accepted("first")).result(5) is Outcome.STORED
    started = time.monotonic()
    for n in range(5):  # one at a time, each waiting for its ack, like a single publisher
        assert committer.submit(accepted(f"next-{n}", flight(n + 2))).result(5) is Outcome.STORED
    assert time.monotonic() - started < 1.5  # not 5 x 0.5 s
    # Company arrives: the window applies again and the burst shares batches.
    store.gate.clear()
    blocker = committer.submit(accepted("blocker", flight(20)))
    taken_by_writer(committer)
    burst = [committer.submit(accepted(f"b-{n}", flight(n + 30))) for n in range(50)]
    store.gate.set()
    assert blocker.result(5) is Outcome.STORED
    assert [f.result(5) for f in burst] == [Outcome.STORED] * 50
    committer.drain(5)
    assert store.batches[-1] == 50


def test_a_batch_waits_for_the_senders_in_flight_and_no_more() -> None:
    # 50 written, 14 queued meanwhile: the 50 acked senders are sending again, wait for all 64.
    assert company_to_wait_for(14, in_flight=64, last_batch=50, max_batch=2000) == (64, True)
    assert company_to_wait_for(1, in_flight=64, last_batch=64, max_batch=2000) == (64, True)
    # Half a batch or more queued: commits overlap well; no more than were in flight.
    assert company_to_wait_for(25, in_flight=75, last_batch=50, max_batch=2000) == (75, False)
    assert company_to_wait_for(20, in_flight=20, last_batch=20, max_batch=2000) == (20, False)
    assert company_to_wait_for(250, in_flight=3000, last_batch=250, max_batch=2000) == (
        2000,
        False,
    )


def test_steady_senders_are_written_together_without_waiting_out_the_window(
    store: RecordingStore,
) -> None:
    # 20 senders, each sending again once acked. The window (3 s) would hold every round for
    # its whole length if the writer waited for more than the 20 senders it can expect.
    committer = GroupCommitter(store, max_batch=1000, max_wait_seconds=3.0)
    committer.start()
    senders, rounds = 20, 4

    async def sender(number: int) -> list[Outcome]:
        outcomes = []
        for n in range(rounds):
            event = flight(number * rounds + n + 1)
            outcomes.append(await committer.submit_async(accepted(f"s{number}-{n}", event)))
        return outcomes

    async def load() -> list[list[Outcome]]:
        everyone = asyncio.gather(*(sender(s) for s in range(senders)))
        # The first round waits out the window (nothing to go by yet); the others must not.
        return await asyncio.wait_for(everyone, timeout=3.0 + (rounds - 1) * 1.5)

    results = asyncio.run(load())
    committer.drain(5)
    assert results == [[Outcome.STORED] * rounds] * senders
    assert store.batches == [senders] * rounds


def test_the_store_write_set_up_is_paid_when_the_writer_starts(tmp_path: Path) -> None:
    # In a fresh interpreter: pyarrow's one-time import of pandas (~1 s holding the GIL) must
    # happen at start, not in the first batch while push requests wait on the event loop.
    script = f"""
import sys
from pathlib import Path
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.storage.duckdb import DuckDBFlightStore

store = DuckDBFlightStore(Path({str(tmp_path / "fresh.duckdb")!r}))
before = "pandas" in sys.modules
committer = GroupCommitter(store, max_batch=10, max_wait_seconds=0.01)
committer.start()
print(before, "pandas" in sys.modules)
committer.drain(5)
store.close()
"""
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert ran.stdout.split() == ["False", "True"]


def test_the_writer_raises_the_young_generation_threshold_only(tmp_path: Path) -> None:
    # In a fresh interpreter (the test process's thresholds are whatever earlier tests left):
    # Python's 700 is raised, the older generations' thresholds are kept, and a higher young
    # threshold chosen by the process is not lowered.
    script = f"""
import gc
from pathlib import Path
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.storage.duckdb import DuckDBFlightStore

store = DuckDBFlightStore(Path({str(tmp_path / "fresh.duckdb")!r}))
for preset in [(700, 10, 10), (700, 7, 3), (50_000, 5, 5)]:
    gc.set_threshold(*preset)
    committer = GroupCommitter(store, max_batch=10, max_wait_seconds=0.01)
    committer.start()
    print(*gc.get_threshold())
    committer.drain(5)
store.close()
"""
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert ran.stdout.splitlines() == ["10000 10 10", "10000 7 3", "50000 5 5"]
