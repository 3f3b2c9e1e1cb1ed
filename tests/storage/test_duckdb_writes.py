"""DuckDBFlightStore.write_batch against real DuckDB files: idempotency, ordering, atomicity."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from storage_factories import accepted, make_event, query_db, rejected

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.domain.schema import TABLES
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import (
    AcceptedMessage,
    RejectReason,
    StorageUnavailableError,
    WriteBatch,
    WriteResult,
)

T0 = datetime(2013, 1, 1, 12, 0, tzinfo=UTC)


def lifecycle(flight_number: int = 1545) -> dict[FlightStatus, AcceptedMessage]:
    """scheduled -> departed -> arrived of one flight, event times increasing."""
    events = {
        FlightStatus.SCHEDULED: make_event(
            flight_number=flight_number, event_time=T0 - timedelta(days=2)
        ),
        FlightStatus.DEPARTED: make_event(
            flight_number=flight_number, status=FlightStatus.DEPARTED, dep_delay=12
        ),
        FlightStatus.ARRIVED: make_event(
            flight_number=flight_number, status=FlightStatus.ARRIVED, dep_delay=12, arr_delay=-3
        ),
    }
    return {
        status: accepted(event, f"{flight_number}-{status.value}", publish_time=event.event_time)
        for status, event in events.items()
    }


def count(db_path: Path, table: str) -> int:
    (row,) = query_db(db_path, f"SELECT count(*) FROM {table}")  # noqa: S608 - test constant
    assert isinstance(row[0], int)
    return row[0]


def test_open_creates_directory_and_every_schema_table(db_path: Path) -> None:
    assert not db_path.parent.exists()
    store = DuckDBFlightStore(db_path)
    try:
        for table in TABLES:
            columns = query_db(
                db_path,
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = $name ORDER BY ordinal_position",
                {"name": table.name},
            )
            assert tuple(c[0] for c in columns) == table.column_names
    finally:
        store.close()


def test_write_stores_event_rows_and_current_state(store: DuckDBFlightStore, db_path: Path) -> None:
    event = make_event(status=FlightStatus.ARRIVED, dep_delay=7, arr_delay=-2, air_time_minutes=201)
    message = accepted(event, "m-1", attributes={"source": "test", "quote": "it's"})

    result = store.write_batch(WriteBatch(accepted=[message]))

    assert result == WriteResult(stored=1, duplicates=0, rejected=0)
    flight = store.get_flight("UA1545-EWR-20130101")
    assert flight is not None
    assert flight.status is FlightStatus.ARRIVED
    assert flight.dep_delay_minutes == 7
    assert flight.arr_delay_minutes == -2
    assert flight.air_time_minutes == 201
    assert flight.scheduled_departure == datetime(2013, 1, 1, 10, 15, tzinfo=UTC)
    assert flight.scheduled_departure.tzinfo is UTC
    assert flight.scheduled_departure_local == datetime(2013, 1, 1, 5, 15)
    assert flight.updated_at == message.ingest_time
    (row,) = query_db(
        db_path,
        "SELECT message_id, ordering_key, attributes::VARCHAR, flight_id, dep_delay_minutes"
        " FROM flight_events",
    )
    assert row == (
        "m-1",
        "UA1545-EWR-20130101",
        '{"source":"test","quote":"it\'s"}',
        "UA1545-EWR-20130101",
        7,
    )


def test_same_batch_twice_changes_nothing(store: DuckDBFlightStore, db_path: Path) -> None:
    messages = list(lifecycle(1).values()) + list(lifecycle(2).values())
    bad = [rejected("r-1"), rejected("r-2")]
    batch = WriteBatch(accepted=messages, rejected=bad)

    first = store.write_batch(batch)
    before = store.get_flight("UA0001-EWR-20130101")
    second = store.write_batch(batch)

    assert first == WriteResult(stored=6, duplicates=0, rejected=2)
    assert second.stored == 0
    assert second.rejected == 0
    assert second.duplicates == 8
    assert second.duplicate_ids == {m.meta.message_id for m in messages} | {"r-1", "r-2"}
    assert count(db_path, "flight_events") == 6
    assert count(db_path, "rejected_messages") == 2
    assert count(db_path, "flights") == 2
    assert store.get_flight("UA0001-EWR-20130101") == before


def test_duplicates_inside_one_batch_are_stored_once(
    store: DuckDBFlightStore, db_path: Path
) -> None:
    message = lifecycle()[FlightStatus.DEPARTED]
    poison = rejected("r-1")

    result = store.write_batch(WriteBatch(accepted=[message, message], rejected=[poison, poison]))

    assert result.stored == 1
    assert result.rejected == 1
    assert result.duplicates == 2
    # Both ids were stored by this batch (their first occurrences), so none is named as
    # "already stored".
    assert result.duplicate_ids == frozenset()
    assert count(db_path, "flight_events") == 1
    assert count(db_path, "rejected_messages") == 1


@pytest.mark.parametrize("first", ["accepted", "rejected"])
def test_message_id_is_unique_across_events_and_rejections(
    store: DuckDBFlightStore, db_path: Path, first: str
) -> None:
    # A redelivered message decoded differently the second time (say, after a deploy that
    # changed validation) is still the same message: it is stored once, where it first landed.
    good = WriteBatch(accepted=[lifecycle()[FlightStatus.SCHEDULED]])
    bad = WriteBatch(rejected=[rejected("1545-scheduled")])
    batches = (good, bad) if first == "accepted" else (bad, good)

    store.write_batch(batches[0])
    result = store.write_batch(batches[1])

    assert result == WriteResult(
        stored=0, duplicates=1, rejected=0, duplicate_ids=frozenset({"1545-scheduled"})
    )
    assert count(db_path, "flight_events") + count(db_path, "rejected_messages") == 1
    assert (store.get_flight("UA1545-EWR-20130101") is None) == (first == "rejected")


def test_same_id_accepted_and_rejected_in_one_batch_is_kept_once(
    store: DuckDBFlightStore, db_path: Path
) -> None:
    message = lifecycle()[FlightStatus.SCHEDULED]
    result = store.write_batch(
        WriteBatch(accepted=[message], rejected=[rejected(message.meta.message_id)])
    )
    assert (result.stored, result.rejected, result.duplicates) == (1, 0, 1)
    assert count(db_path, "rejected_messages") == 0


_LIFECYCLE = (FlightStatus.SCHEDULED, FlightStatus.DEPARTED, FlightStatus.ARRIVED)


@pytest.mark.parametrize("order", list(itertools.permutations(_LIFECYCLE)))
@pytest.mark.parametrize("one_batch", [False, True], ids=["batch-per-event", "one-batch"])
def test_every_arrival_order_ends_in_the_latest_event(
    tmp_path: Path, order: tuple[FlightStatus, ...], one_batch: bool
) -> None:
    messages = lifecycle()
    store = DuckDBFlightStore(tmp_path / "f.duckdb")
    try:
        if one_batch:
            store.write_batch(WriteBatch(accepted=[messages[s] for s in order]))
        else:
            for status in order:
                store.write_batch(WriteBatch(accepted=[messages[status]]))
        flight = store.get_flight("UA1545-EWR-20130101")
        assert flight is not None
        assert flight.status is FlightStatus.ARRIVED
        assert flight.arr_delay_minutes == -3
        assert flight.event_time == messages[FlightStatus.ARRIVED].event.event_time
        assert count(tmp_path / "f.duckdb", "flight_events") == 3
    finally:
        store.close()


def test_flights_at_both_ends_of_a_batchs_departure_days_are_replaced(
    store: DuckDBFlightStore, db_path: Path
) -> None:
    # The stored-state lookup only scans the batch's local departure days: the first minute
    # of the first day and the last microsecond of the last day must both be inside.
    first = datetime(2013, 1, 1, 0, 0)
    last = datetime(2013, 3, 9, 23, 59, 59, 999_999)
    scheduled = [
        accepted(make_event(flight_number=1, departure_local=first), "s-1"),
        accepted(make_event(flight_number=2, departure_local=last), "s-2"),
    ]
    departed = [
        accepted(
            make_event(flight_number=n, departure_local=local, status=FlightStatus.DEPARTED),
            f"d-{n}",
        )
        for n, local in ((1, first), (2, last))
    ]
    store.write_batch(WriteBatch(accepted=scheduled))

    result = store.write_batch(WriteBatch(accepted=departed))

    assert result.stored == 2
    assert count(db_path, "flights") == 2
    for message in departed:
        flight = store.get_flight(message.event.flight_id)
        assert flight is not None
        assert flight.status is FlightStatus.DEPARTED


@pytest.mark.parametrize("reverse", [False, True])
def test_event_time_tie_is_broken_by_publish_time(store: DuckDBFlightStore, reverse: bool) -> None:
    same_time = T0
    departed = make_event(status=FlightStatus.DEPARTED, dep_delay=5, event_time=same_time)
    cancelled = make_event(status=FlightStatus.CANCELLED, event_time=same_time)
    early = accepted(departed, "a-early", publish_time=T0 + timedelta(seconds=1))
    late = accepted(cancelled, "b-late", publish_time=T0 + timedelta(seconds=2))
    batches = [early, late][::-1] if reverse else [early, late]

    for message in batches:
        store.write_batch(WriteBatch(accepted=[message]))

    flight = store.get_flight(departed.flight_id)
    assert flight is not None
    assert flight.status is FlightStatus.CANCELLED


@pytest.mark.parametrize("reverse", [False, True])
def test_full_tie_resolves_the_same_whatever_the_order(
    store: DuckDBFlightStore, reverse: bool
) -> None:
    departed = make_event(status=FlightStatus.DEPARTED, dep_delay=5, event_time=T0)
    cancelled = make_event(status=FlightStatus.CANCELLED, event_time=T0)
    # Same event_time, same publish_time: the larger message id wins, deterministically.
    pair = [accepted(departed, "id-1"), accepted(cancelled, "id-2")]
    for message in pair[::-1] if reverse else pair:
        store.write_batch(WriteBatch(accepted=[message]))

    flight = store.get_flight(departed.flight_id)
    assert flight is not None
    assert flight.status is FlightStatus.CANCELLED


def test_rejected_messages_keep_raw_bytes_and_reason(
    store: DuckDBFlightStore, db_path: Path
) -> None:
    raw = b"\xff\xfe\x00 not utf-8 '; DROP TABLE flights; --"
    poison = rejected(
        "r-1",
        raw,
        reason=RejectReason.INVALID_UTF8,
        detail="invalid start byte at position 0",
        attributes={"producer": "legacy"},
    )

    result = store.write_batch(WriteBatch(rejected=[poison]))

    assert result == WriteResult(stored=0, duplicates=0, rejected=1)
    (row,) = query_db(
        db_path,
        "SELECT message_id, publish_time, received_at, subscription, attributes::VARCHAR,"
        " reason, detail, raw_data FROM rejected_messages",
    )
    assert row[0] == "r-1"
    assert row[1] == poison.meta.publish_time
    assert row[2] == poison.received_at
    assert row[3] == "projects/p/subscriptions/flight-events-push"
    assert row[4] == '{"producer":"legacy"}'
    assert row[5:7] == ("invalid_utf8", "invalid start byte at position 0")
    assert row[7] == raw
    assert count(db_path, "flights") == 0  # and nothing leaked into the flight tables
    assert count(db_path, "flight_events") == 0


def test_empty_batch_is_a_no_op(store: DuckDBFlightStore) -> None:
    assert store.write_batch(WriteBatch()) == WriteResult(stored=0, duplicates=0, rejected=0)


# --- failures ------------------------------------------------------------------------------


class _FailingUpsertStore(DuckDBFlightStore):
    """Fault injection: the flights upsert fails after the event rows were inserted in the same
    transaction. Real DuckDB, real transaction; only the failure is staged, because a disk
    error cannot be produced on demand in a test."""

    def __init__(self, path: Path, error: Exception) -> None:
        super().__init__(path)
        self.error = error

    def _upsert_flights(self, cursor: duckdb.DuckDBPyConnection, *args: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (duckdb.IOException("IO Error: No space left on device"), StorageUnavailableError),
        (duckdb.TransactionException("Conflict on update"), StorageUnavailableError),
        # A bug is not an outage: it surfaces as itself, but still rolls back.
        (duckdb.ConversionException("bad value"), duckdb.ConversionException),
    ],
)
def test_failed_write_leaves_nothing_behind(
    db_path: Path, error: Exception, expected: type[Exception]
) -> None:
    messages = list(lifecycle(1).values()) + list(lifecycle(2).values())
    batch = WriteBatch(accepted=messages, rejected=[rejected("r-1")])
    failing = _FailingUpsertStore(db_path, error)
    try:
        with pytest.raises(expected):
            failing.write_batch(batch)
        assert count(db_path, "flight_events") == 0
        assert count(db_path, "rejected_messages") == 0
        assert count(db_path, "flights") == 0
    finally:
        failing.close()

    # The retry (Pub/Sub redelivers) stores everything: nothing was half-written and counted
    # as a duplicate.
    store = DuckDBFlightStore(db_path)
    try:
        assert store.write_batch(batch) == WriteResult(stored=6, duplicates=0, rejected=1)
    finally:
        store.close()


def test_database_locked_by_another_process_is_unavailable(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
            " sys.stdin.read()",
            str(db_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StorageUnavailableError, match="lock"):
            DuckDBFlightStore(db_path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    DuckDBFlightStore(db_path).close()  # usable again once the other process let go


def test_closed_store_is_unavailable_not_crashing(db_path: Path) -> None:
    store = DuckDBFlightStore(db_path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StorageUnavailableError):
        store.write_batch(WriteBatch(accepted=[lifecycle()[FlightStatus.SCHEDULED]]))
    with pytest.raises(StorageUnavailableError):
        store.ping()
    with pytest.raises(StorageUnavailableError):
        store.get_flight("UA1545-EWR-20130101")


def test_reopened_file_keeps_data_and_idempotency(db_path: Path) -> None:
    messages = lifecycle()
    store = DuckDBFlightStore(db_path)
    store.write_batch(WriteBatch(accepted=list(messages.values()), rejected=[rejected("r-1")]))
    before = store.get_flight("UA1545-EWR-20130101")
    store.close()

    reopened = DuckDBFlightStore(db_path)
    try:
        assert reopened.get_flight("UA1545-EWR-20130101") == before
        again = reopened.write_batch(WriteBatch(accepted=[messages[FlightStatus.DEPARTED]]))
        assert again.duplicates == 1
        reopened.ping()
    finally:
        reopened.close()


def test_storage_metrics_are_recorded(store: DuckDBFlightStore) -> None:
    def sample(name: str, kind: str) -> float:
        return REGISTRY.get_sample_value(name, {"query": kind}) or 0.0

    duration = "aeroflow_storage_query_duration_seconds_count"
    rows_sum = "aeroflow_storage_rows_returned_sum"
    before_write = sample(duration, "write_batch")
    before_get = sample(duration, "get_flight")
    before_rows = sample(rows_sum, "get_flight")

    store.write_batch(WriteBatch(accepted=[lifecycle()[FlightStatus.SCHEDULED]]))
    store.get_flight("UA1545-EWR-20130101")
    store.get_flight("nope")

    assert sample(duration, "write_batch") == before_write + 1
    assert sample(duration, "get_flight") == before_get + 2
    assert sample(rows_sum, "get_flight") == before_rows + 1


# --- properties ----------------------------------------------------------------------------


@st.composite
def _deliveries(draw: st.DrawFn) -> tuple[list[AcceptedMessage], list[list[AcceptedMessage]]]:
    """Events of a few flights with colliding event/publish times, delivered in random
    batches with redeliveries."""
    messages: list[AcceptedMessage] = []
    for flight_number in range(1, draw(st.integers(1, 3)) + 1):
        for i in range(draw(st.integers(1, 5))):
            status = draw(st.sampled_from(_LIFECYCLE))
            event: FlightEvent = make_event(
                flight_number=flight_number,
                status=status,
                dep_delay=draw(st.integers(-10, 60)),
                arr_delay=draw(st.integers(-10, 60)),
                event_time=T0 + timedelta(minutes=draw(st.integers(0, 3))),
            )
            publish = T0 + timedelta(seconds=draw(st.integers(0, 2)))
            messages.append(accepted(event, f"{flight_number}-{i}", publish_time=publish))
    deliveries = draw(st.lists(st.sampled_from(messages), min_size=len(messages)))
    deliveries += messages  # every message arrives at least once
    deliveries = draw(st.permutations(deliveries))
    cuts = sorted(draw(st.lists(st.integers(0, len(deliveries)), max_size=4)))
    bounds = [0, *cuts, len(deliveries)]
    batches = [deliveries[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return messages, batches


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBFlightStore]:
    # One file for all hypothesis examples (emptied per example): opening a fresh database
    # per example would dominate the test's run time.
    duck = DuckDBFlightStore(tmp_path_factory.mktemp("property") / "p.duckdb")
    yield duck
    duck.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_deliveries())
def test_any_delivery_order_and_redelivery_gives_the_same_state(
    shared_store: DuckDBFlightStore,
    case: tuple[list[AcceptedMessage], list[list[AcceptedMessage]]],
) -> None:
    messages, batches = case
    store = shared_store
    path = store.path
    query_db(path, "DELETE FROM flight_events; DELETE FROM flights")

    stored = sum(store.write_batch(WriteBatch(accepted=b)).stored for b in batches)

    assert stored == len(messages)
    assert count(path, "flight_events") == len(messages)
    for flight_id in {m.event.flight_id for m in messages}:
        mine = [m for m in messages if m.event.flight_id == flight_id]
        winner = max(
            mine, key=lambda m: (m.event.event_time, m.meta.publish_time, m.meta.message_id)
        )
        flight = store.get_flight(flight_id)
        assert flight is not None
        assert flight.status is winner.event.status
        assert flight.event_time == winner.event.event_time
        assert flight.dep_delay_minutes == winner.event.dep_delay_minutes
        assert flight.arr_delay_minutes == winner.event.arr_delay_minutes


# --- throughput ------------------------------------------------------------------------------


def test_write_throughput_of_a_2000_message_batch(
    store: DuckDBFlightStore,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    def batch(start: int) -> WriteBatch:
        return WriteBatch(
            accepted=[
                accepted(
                    make_event(
                        flight_number=1 + n % 9999,
                        departure_local=datetime(2013, 1, 1) + timedelta(days=n // 9999),
                        status=FlightStatus.DEPARTED,
                        dep_delay=n % 90,
                    ),
                    f"t-{n}",
                )
                for n in range(start, start + 2000)
            ]
        )

    batches = [batch(k * 2000) for k in range(4)]
    store.write_batch(batches[0])  # warm-up: first statements plan and allocate
    started = time.perf_counter()
    for b in batches[1:]:
        assert store.write_batch(b).stored == 2000
    rate = 3 * 2000 / (time.perf_counter() - started)
    record_property("duckdb_write_rows_per_second", round(rate))
    with capsys.disabled():
        sys.stdout.write(f"\nDuckDB write throughput, 2000-message batches: {rate:,.0f} rows/s\n")
    # Reported, not asserted: timing belongs to bench/bench_ingest.py, not to a pass/fail test.
