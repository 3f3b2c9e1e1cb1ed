"""BigQueryFlightStore against the bqemulator BigQuery emulator (real REST API, real client).

The same behaviours as the DuckDB adapter: idempotency by message id, out-of-order events,
rejected messages kept byte for byte, keyset pagination, filters, and delay statistics equal to
an independent computation in Python. Where the emulator differs from BigQuery the test says so
(and docs/bigquery.md lists every difference).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from storage_factories import NEW_YORK_WINTER, accepted, make_event, rejected

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.settings import Settings
from aeroflow.storage.bigquery import BigQueryFlightStore, build_bigquery_client
from aeroflow.storage.port import (
    DelayStats,
    Flight,
    FlightFilter,
    FlightQuery,
    GroupBy,
    SortOrder,
    StorageUnavailableError,
    WriteBatch,
)
from bigquery_emulator import BigQueryDataset, BigQueryEmulator, fresh_dataset

pytestmark = pytest.mark.emulator

INGEST = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _expected_flight(event: FlightEvent, updated_at: datetime) -> Flight:
    return Flight(
        flight_id=event.flight_id,
        carrier=event.carrier,
        flight_number=event.flight_number,
        origin=event.origin,
        destination=event.destination,
        scheduled_departure=event.scheduled_departure.astimezone(UTC),
        scheduled_arrival=event.scheduled_arrival.astimezone(UTC),
        scheduled_departure_local=event.scheduled_departure_local,
        status=event.status,
        actual_departure=event.actual_departure and event.actual_departure.astimezone(UTC),
        actual_arrival=event.actual_arrival and event.actual_arrival.astimezone(UTC),
        dep_delay_minutes=event.dep_delay_minutes,
        arr_delay_minutes=event.arr_delay_minutes,
        tail_number=event.tail_number,
        distance_miles=event.distance_miles,
        air_time_minutes=event.air_time_minutes,
        event_time=event.event_time.astimezone(UTC),
        updated_at=updated_at,
    )


# --- writes ----------------------------------------------------------------------------------


def test_tables_are_partitioned_and_clustered_as_terraform_declares(
    bigquery_dataset: BigQueryDataset,
) -> None:
    for name in ("flight_events", "flights"):
        table = bigquery_dataset.client.get_table(bigquery_dataset.table(name))
        assert table.time_partitioning is not None
        assert table.time_partitioning.field == "scheduled_departure"
        assert table.clustering_fields == ["carrier", "origin", "destination"]
    rejected_table = bigquery_dataset.client.get_table(bigquery_dataset.table("rejected_messages"))
    assert rejected_table.time_partitioning is not None
    assert rejected_table.time_partitioning.field == "received_at"


def test_a_written_event_reads_back_field_for_field(
    bigquery_store: BigQueryFlightStore, bigquery_dataset: BigQueryDataset
) -> None:
    event = make_event(status=FlightStatus.ARRIVED, dep_delay=12, arr_delay=-3,
                       air_time_minutes=190)  # fmt: skip
    result = bigquery_store.write_batch(
        WriteBatch(accepted=[accepted(event, "m-1", attributes={"k": "v"}, ingest_time=INGEST)])
    )
    assert (result.stored, result.duplicates, result.rejected) == (1, 0, 0)
    assert bigquery_store.get_flight(event.flight_id) == _expected_flight(event, INGEST)
    assert bigquery_store.get_flight("UA9999-EWR-20130101") is None
    rows = bigquery_dataset.select(
        "message_id, TO_JSON_STRING(attributes) AS attributes, ordering_key", "flight_events"
    )
    assert rows == [
        {"message_id": "m-1", "attributes": '{"k":"v"}', "ordering_key": event.flight_id}
    ]


def test_a_redelivered_batch_is_stored_once(
    bigquery_store: BigQueryFlightStore, bigquery_dataset: BigQueryDataset
) -> None:
    events = [make_event(flight_number=n) for n in (1, 2, 3)]
    batch = WriteBatch(
        accepted=[accepted(e, f"m-{i}") for i, e in enumerate(events)],
        rejected=[rejected("bad-1")],
    )
    first = bigquery_store.write_batch(batch)
    again = bigquery_store.write_batch(batch)

    assert (first.stored, first.duplicates, first.rejected) == (3, 0, 1)
    assert (again.stored, again.duplicates, again.rejected) == (0, 4, 0)
    assert again.duplicate_ids == {"m-0", "m-1", "m-2", "bad-1"}
    assert bigquery_dataset.count("flight_events") == 3
    assert bigquery_dataset.count("flights") == 3
    assert bigquery_dataset.count("rejected_messages") == 1


def test_duplicates_inside_one_batch_count_once(
    bigquery_store: BigQueryFlightStore, bigquery_dataset: BigQueryDataset
) -> None:
    event = make_event()
    message = accepted(event, "m-same")
    result = bigquery_store.write_batch(WriteBatch(accepted=[message, message]))
    assert (result.stored, result.duplicates) == (1, 1)
    assert bigquery_dataset.count("flight_events") == 1


def test_a_message_id_already_rejected_is_a_duplicate_when_it_comes_back_valid(
    bigquery_store: BigQueryFlightStore, bigquery_dataset: BigQueryDataset
) -> None:
    bigquery_store.write_batch(WriteBatch(rejected=[rejected("m-1")]))
    result = bigquery_store.write_batch(WriteBatch(accepted=[accepted(make_event(), "m-1")]))
    assert (result.stored, result.duplicates) == (0, 1)
    assert bigquery_dataset.count("flight_events") == 0


@pytest.mark.parametrize("order", ["forward", "reverse", "one_batch"])
def test_flights_keeps_the_latest_event_whatever_the_arrival_order(
    bigquery_store: BigQueryFlightStore, order: str
) -> None:
    departure = datetime(2013, 1, 1, 5, 15)
    scheduled = make_event(status=FlightStatus.SCHEDULED, departure_local=departure)
    departed = make_event(status=FlightStatus.DEPARTED, dep_delay=20, departure_local=departure)
    arrived = make_event(status=FlightStatus.ARRIVED, dep_delay=20, arr_delay=5,
                         departure_local=departure)  # fmt: skip
    messages = [
        accepted(e, f"m-{i}", publish_time=INGEST + timedelta(seconds=i), ingest_time=INGEST)
        for i, e in enumerate((scheduled, departed, arrived))
    ]
    if order == "one_batch":
        bigquery_store.write_batch(WriteBatch(accepted=messages[::-1]))
    else:
        for message in messages if order == "forward" else messages[::-1]:
            bigquery_store.write_batch(WriteBatch(accepted=[message]))

    assert bigquery_store.get_flight(arrived.flight_id) == _expected_flight(arrived, INGEST)


def test_equal_event_times_are_decided_by_the_later_publish_time(
    bigquery_store: BigQueryFlightStore,
) -> None:
    at = datetime(2013, 1, 1, 12, tzinfo=UTC)
    first = make_event(status=FlightStatus.DEPARTED, dep_delay=5, event_time=at)
    second = make_event(status=FlightStatus.DEPARTED, dep_delay=9, event_time=at)
    later = accepted(second, "m-a", publish_time=INGEST + timedelta(seconds=2))
    earlier = accepted(first, "m-b", publish_time=INGEST + timedelta(seconds=1))
    bigquery_store.write_batch(WriteBatch(accepted=[later]))
    bigquery_store.write_batch(WriteBatch(accepted=[earlier]))
    flight = bigquery_store.get_flight(first.flight_id)
    assert flight is not None
    assert flight.dep_delay_minutes == 9


def test_rejected_messages_are_kept_byte_for_byte_with_their_reason(
    bigquery_store: BigQueryFlightStore, bigquery_dataset: BigQueryDataset
) -> None:
    # Not UTF-8, with a NUL and bytes that base64 text would not survive as text.
    raw = b"\xff\x00{bad json\n\xfe"
    result = bigquery_store.write_batch(
        WriteBatch(rejected=[rejected("r-1", raw, attributes={"source": "test"})])
    )
    assert (result.stored, result.rejected, result.duplicates) == (0, 1, 0)
    rows = bigquery_dataset.select(
        "message_id, raw_data, reason, detail, subscription,"
        " TO_JSON_STRING(attributes) AS attributes",
        "rejected_messages",
    )
    assert rows == [
        {
            "message_id": "r-1",
            "raw_data": raw,
            "reason": "invalid_json",
            "detail": "Expecting property name enclosed in double quotes",
            "subscription": "projects/p/subscriptions/flight-events-push",
            "attributes": '{"source":"test"}',
        }
    ]
    assert bigquery_store.write_batch(WriteBatch(rejected=[rejected("r-1", raw)])).duplicates == 1


def test_a_failed_batch_writes_nothing(
    bigquery_store: BigQueryFlightStore, bigquery_dataset: BigQueryDataset
) -> None:
    # The script inserts into flight_events before it merges flights; without flights the
    # transaction must roll the insert back.
    bigquery_dataset.client.delete_table(bigquery_dataset.table("flights"))
    with pytest.raises(Exception, match="flights"):
        bigquery_store.write_batch(WriteBatch(accepted=[accepted(make_event(), "m-1")]))
    assert bigquery_dataset.count("flight_events") == 0


def test_staging_tables_do_not_outlive_their_batch(
    bigquery_store: BigQueryFlightStore, bigquery_dataset: BigQueryDataset
) -> None:
    bigquery_store.write_batch(WriteBatch(accepted=[accepted(make_event(), "m-1")]))
    tables = {t.table_id for t in bigquery_dataset.client.list_tables(bigquery_dataset.dataset)}
    assert tables == {"flight_events", "flights", "rejected_messages"}


def test_an_empty_batch_does_nothing(bigquery_store: BigQueryFlightStore) -> None:
    result = bigquery_store.write_batch(WriteBatch())
    assert (result.stored, result.duplicates, result.rejected) == (0, 0, 0)


# --- reads over a data set -------------------------------------------------------------------

CARRIERS = ("UA", "AA", "B6")
ORIGINS = ("EWR", "JFK", "LGA")
STATUSES = (
    FlightStatus.ARRIVED,
    FlightStatus.ARRIVED,
    FlightStatus.CANCELLED,
    FlightStatus.DEPARTED,
    FlightStatus.SCHEDULED,
    FlightStatus.ARRIVED,
    FlightStatus.DIVERTED,
)


def _data_set() -> list[FlightEvent]:
    """60 flights over 4 days with repeated departure times, every status, delays known and
    unknown; evening departures fall on the next UTC day."""
    events: list[FlightEvent] = []
    for i in range(60):
        status = STATUSES[i % len(STATUSES)]
        events.append(
            make_event(
                carrier=CARRIERS[i % 3],
                flight_number=100 + i,
                origin=ORIGINS[(i // 3) % 3],
                destination="ORD" if i % 2 else "IAH",
                departure_local=datetime(2013, 1, 1 + i % 4, (6, 13, 21)[i % 3], 0),
                offset=NEW_YORK_WINTER,
                status=status,
                dep_delay=(i * 7) % 50 - 10,
                arr_delay=(i * 11) % 40 - 15,
            )
        )
    return events


@pytest.fixture(scope="module")
def loaded(
    bigquery_emulator: BigQueryEmulator,
) -> Iterator[tuple[BigQueryFlightStore, list[FlightEvent]]]:
    """One data set for all read tests (they only read), written as the API would see it:
    the final events first, then stale earlier events of a third of the flights."""
    events = _data_set()
    stale = [
        e.model_copy(update={
            "status": FlightStatus.SCHEDULED, "actual_departure": None, "actual_arrival": None,
            "event_time": e.event_time - timedelta(days=2),
        })
        for e in events[::3]
    ]  # fmt: skip
    with fresh_dataset(bigquery_emulator) as dataset:
        store = dataset.store()
        finals = [accepted(e, f"m-{i}", ingest_time=INGEST) for i, e in enumerate(events)]
        olds = [accepted(e, f"old-{i}", ingest_time=INGEST) for i, e in enumerate(stale)]
        assert store.write_batch(WriteBatch(accepted=finals)).stored == len(events)
        assert store.write_batch(WriteBatch(accepted=olds)).stored == len(stale)
        yield store, events


def _utc_key(event: FlightEvent) -> tuple[datetime, str]:
    return (event.scheduled_departure.astimezone(UTC), event.flight_id)


def _pages(store: BigQueryFlightStore, query: FlightQuery) -> list[list[str]]:
    pages: list[list[str]] = []
    while True:
        page = store.list_flights(query)
        pages.append([f.flight_id for f in page.flights])
        if page.next is None:
            return pages
        query = FlightQuery(
            filter=query.filter, sort=query.sort, limit=query.limit, after=page.next
        )


@pytest.mark.parametrize("sort", [SortOrder.ASC, SortOrder.DESC])
def test_keyset_pages_cover_every_flight_once_in_order(
    loaded: tuple[BigQueryFlightStore, list[FlightEvent]], sort: SortOrder
) -> None:
    store, events = loaded
    pages = _pages(store, FlightQuery(sort=sort, limit=7))
    expected = [e.flight_id for e in sorted(events, key=_utc_key, reverse=sort is SortOrder.DESC)]
    assert [fid for page in pages for fid in page] == expected
    assert [len(p) for p in pages] == [7] * 8 + [4]


FILTERS: dict[str, tuple[FlightFilter, Callable[[FlightEvent], bool]]] = {
    "carrier": (FlightFilter(carrier="AA"), lambda e: e.carrier == "AA"),
    "origin+destination": (
        FlightFilter(origin="JFK", destination="ORD"),
        lambda e: e.origin == "JFK" and e.destination == "ORD",
    ),
    "status": (
        FlightFilter(status=FlightStatus.CANCELLED),
        lambda e: e.status is FlightStatus.CANCELLED,
    ),
    "departure range": (
        FlightFilter(
            departure_from=datetime(2013, 1, 2, tzinfo=UTC),
            departure_to=datetime(2013, 1, 3, 12, tzinfo=UTC),
        ),
        lambda e: (
            datetime(2013, 1, 2, tzinfo=UTC)
            <= e.scheduled_departure
            < datetime(2013, 1, 3, 12, tzinfo=UTC)
        ),
    ),
    "min delay": (
        FlightFilter(min_dep_delay=15),
        lambda e: e.dep_delay_minutes is not None and e.dep_delay_minutes >= 15,
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_select_what_an_independent_filter_selects(
    loaded: tuple[BigQueryFlightStore, list[FlightEvent]], name: str
) -> None:
    store, events = loaded
    flight_filter, predicate = FILTERS[name]
    page = store.list_flights(FlightQuery(filter=flight_filter, limit=1000))
    expected = [e.flight_id for e in sorted(events, key=_utc_key) if predicate(e)]
    assert expected, "the data set must exercise the filter"
    assert [f.flight_id for f in page.flights] == expected
    assert page.next is None


def _group_key(group_by: GroupBy, event: FlightEvent) -> tuple[object, str]:
    local = event.scheduled_departure_local
    match group_by:
        case GroupBy.CARRIER:
            return (event.carrier, event.carrier)
        case GroupBy.ORIGIN:
            return (event.origin, event.origin)
        case GroupBy.DESTINATION:
            return (event.destination, event.destination)
        case GroupBy.MONTH:
            return (local.strftime("%Y-%m"), local.strftime("%Y-%m"))
        case GroupBy.WEEKDAY:
            return (local.isoweekday(), str(local.isoweekday()))
        case GroupBy.HOUR:
            return (local.hour, str(local.hour))


def _percentile(values: Sequence[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _independent_stats(events: Sequence[FlightEvent], group_by: GroupBy) -> list[DelayStats]:
    groups: dict[tuple[object, str], list[FlightEvent]] = defaultdict(list)
    for event in events:
        groups[_group_key(group_by, event)].append(event)
    result = []
    for (_, name), members in sorted(groups.items(), key=lambda item: item[0][0]):  # type: ignore[arg-type, return-value]
        dep = [e.dep_delay_minutes for e in members if e.dep_delay_minutes is not None]
        arr = [e.arr_delay_minutes for e in members if e.arr_delay_minutes is not None]
        result.append(
            DelayStats(
                group=name,
                flights=len(members),
                cancelled=sum(e.status is FlightStatus.CANCELLED for e in members),
                avg_dep_delay_minutes=statistics.fmean(dep) if dep else None,
                p50_dep_delay_minutes=_percentile(dep, 0.5),
                p95_dep_delay_minutes=_percentile(dep, 0.95),
                on_time_rate=sum(a <= 15 for a in arr) / len(arr) if arr else None,
            )
        )
    return result


def _assert_same_stats(actual: Sequence[DelayStats], expected: Sequence[DelayStats]) -> None:
    assert [s.group for s in actual] == [s.group for s in expected]
    for got, want in zip(actual, expected, strict=True):
        # pytest.approx compares a mapping number by number (it does not take dataclasses).
        assert dataclasses.asdict(got) == pytest.approx(dataclasses.asdict(want))


@pytest.mark.parametrize("group_by", list(GroupBy))
def test_delay_stats_equal_an_independent_computation(
    loaded: tuple[BigQueryFlightStore, list[FlightEvent]], group_by: GroupBy
) -> None:
    store, events = loaded
    _assert_same_stats(
        store.delay_stats(group_by, FlightFilter()), _independent_stats(events, group_by)
    )


def test_delay_stats_honour_the_filter(
    loaded: tuple[BigQueryFlightStore, list[FlightEvent]],
) -> None:
    store, events = loaded
    actual = store.delay_stats(GroupBy.ORIGIN, FlightFilter(carrier="UA"))
    expected = _independent_stats([e for e in events if e.carrier == "UA"], GroupBy.ORIGIN)
    _assert_same_stats(actual, expected)


# --- every job is capped and parameterised ---------------------------------------------------


def test_every_job_carries_the_byte_cap_the_timeout_and_named_parameters(
    bigquery_emulator: BigQueryEmulator, bigquery_dataset: BigQueryDataset
) -> None:
    # The emulator neither enforces nor reports maximumBytesBilled / jobTimeoutMs, so this
    # test reads what the client really sent it, from a requests hook on the real session.
    sent: list[dict[str, Any]] = []

    def record(response: requests.Response, *args: object, **kwargs: object) -> None:
        request = response.request
        is_job = "/jobs" in request.path_url or "/queries" in request.path_url
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        if request.method == "POST" and is_job and body and body.startswith("{"):
            sent.append(json.loads(body))

    session = requests.Session()
    session.hooks["response"].append(record)
    client = bigquery.Client(
        project=bigquery_emulator.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bigquery_emulator.rest_url),
        _http=session,
    )
    store = BigQueryFlightStore(
        client,
        dataset=bigquery_dataset.dataset,
        location="EU",
        max_bytes_billed=123 * 1024**2,
        job_timeout_seconds=7.5,
    )
    event = make_event()
    store.write_batch(WriteBatch(accepted=[accepted(event, "m-1")]))
    store.list_flights(FlightQuery(filter=FlightFilter(carrier="UA"), limit=5))
    store.get_flight(event.flight_id)
    store.delay_stats(GroupBy.CARRIER, FlightFilter(origin="EWR"))

    queries_sent = [b for b in sent if "query" in b.get("configuration", b)]
    assert len(queries_sent) == 4, sent  # the write script and three reads
    for body in queries_sent:
        config = body.get("configuration", {}).get("query", body)
        timeout = body.get("configuration", body).get("jobTimeoutMs")
        assert config["maximumBytesBilled"] == str(123 * 1024**2)
        assert str(timeout) == "7500"
        assert config["useLegacySql"] is False
    reads = queries_sent[1:]
    for body in reads:
        assert body["parameterMode"] == "NAMED"
        assert body["queryParameters"], "reads take their values as parameters"
        assert "'UA'" not in body["query"]
        assert "'EWR'" not in body["query"]
    loads = [b for b in sent if "load" in b.get("configuration", {})]
    assert [str(b["configuration"]["jobTimeoutMs"]) for b in loads] == ["7500"]


def test_the_composition_root_path_reaches_the_emulator(
    bigquery_emulator: BigQueryEmulator, bigquery_dataset: BigQueryDataset
) -> None:
    settings = Settings(
        storage_backend="bigquery",
        gcp_project=bigquery_emulator.project,
        bigquery_dataset=bigquery_dataset.dataset,
        bigquery_api_endpoint=bigquery_emulator.rest_url,
    )
    store = BigQueryFlightStore.from_settings(settings, build_bigquery_client(settings))
    store.ping()
    event = make_event()
    assert store.write_batch(WriteBatch(accepted=[accepted(event, "m-1")])).stored == 1
    assert bigquery_dataset.count("flights") == 1
    store.close()
    with pytest.raises(StorageUnavailableError):
        store.ping()
