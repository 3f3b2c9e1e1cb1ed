"""Contract tests against real BigQuery, for what the emulator cannot show (docs/bigquery.md).

Skipped unless ``AEROFLOW_BIGQUERY_LIVE_PROJECT`` names a project and Application Default
Credentials can use it (optionally ``AEROFLOW_BIGQUERY_LIVE_LOCATION``, default EU). Each run
creates a dataset of its own and deletes it afterwards.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import bigquery
from storage_factories import accepted, make_event, rejected

from aeroflow.storage import queries
from aeroflow.storage.bigquery import BigQueryFlightStore
from aeroflow.storage.bigquery_setup import create_dataset_and_tables
from aeroflow.storage.port import FlightFilter, FlightQuery, WriteBatch

PROJECT = os.environ.get("AEROFLOW_BIGQUERY_LIVE_PROJECT")
LOCATION = os.environ.get("AEROFLOW_BIGQUERY_LIVE_LOCATION", "EU")

pytestmark = pytest.mark.skipif(
    not PROJECT, reason="real-BigQuery contract tests: set AEROFLOW_BIGQUERY_LIVE_PROJECT"
)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[bigquery.Client, str]]:
    client = bigquery.Client(project=PROJECT, location=LOCATION)
    dataset = f"aeroflow_contract_{uuid.uuid4().hex[:10]}"
    create_dataset_and_tables(client, dataset=dataset, location=LOCATION)
    try:
        yield client, dataset
    finally:
        client.delete_dataset(f"{PROJECT}.{dataset}", delete_contents=True, not_found_ok=True)
        client.close()


def _store(live: tuple[bigquery.Client, str]) -> BigQueryFlightStore:
    client, dataset = live
    return BigQueryFlightStore(
        client,
        dataset=dataset,
        location=LOCATION,
        max_bytes_billed=1024**3,
        job_timeout_seconds=120.0,
    )


def test_write_read_and_redelivery_on_bigquery(live: tuple[bigquery.Client, str]) -> None:
    store = _store(live)
    event = make_event(flight_number=1)
    raw = b"\xff\x00not json"
    batch = WriteBatch(accepted=[accepted(event, "live-1")], rejected=[rejected("live-r", raw)])
    first = store.write_batch(batch)
    again = store.write_batch(batch)
    assert (first.stored, first.rejected, again.duplicates) == (1, 1, 2)
    flight = store.get_flight(event.flight_id)
    assert flight is not None
    assert flight.flight_id == event.flight_id
    client, dataset = live
    rows = list(
        client.query_and_wait(
            f"SELECT raw_data FROM `{PROJECT}.{dataset}.rejected_messages`"  # noqa: S608
        )
    )
    assert [r["raw_data"] for r in rows] == [raw]


def test_concurrent_writers_of_one_batch_store_it_once(live: tuple[bigquery.Client, str]) -> None:
    # Two instances handling the same redelivered messages at the same moment.
    events = [make_event(flight_number=100 + i) for i in range(20)]
    batch = WriteBatch(accepted=[accepted(e, f"race-{i}") for i, e in enumerate(events)])
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_store(live).write_batch(batch)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.stored for r in results) == [0, 20]
    client, dataset = live
    count = next(
        iter(
            client.query_and_wait(
                f"SELECT COUNT(*) AS n FROM `{PROJECT}.{dataset}.flight_events`"  # noqa: S608
                " WHERE STARTS_WITH(message_id, 'race-')"
            )
        )
    )
    assert count["n"] == 20


def test_a_departure_filter_prunes_partitions(live: tuple[bigquery.Client, str]) -> None:
    store = _store(live)
    first_day = datetime(2014, 1, 1, 9, 0)
    events = [
        make_event(flight_number=500 + day, departure_local=first_day + timedelta(days=day))
        for day in range(10)
    ]
    messages = [accepted(e, f"prune-{i}") for i, e in enumerate(events)]
    store.write_batch(WriteBatch(accepted=messages))
    client, dataset = live
    table = f"{PROJECT}.{dataset}.flights"

    def dry_run_bytes(flight_filter: FlightFilter) -> int:
        sql = queries.build_list_flights(FlightQuery(filter=flight_filter), "bigquery", table=table)
        config = bigquery.QueryJobConfig(
            dry_run=True,
            use_query_cache=False,
            query_parameters=[
                bigquery.ScalarQueryParameter(n, queries.bigquery_param_type(v), v)
                for n, v in sql.params.items()
            ],
        )
        job = client.query(sql.sql, job_config=config)
        return int(job.total_bytes_processed or 0)

    everything = dry_run_bytes(FlightFilter())
    one_day = dry_run_bytes(
        FlightFilter(
            departure_from=events[3].scheduled_departure,
            departure_to=events[4].scheduled_departure,
        )
    )
    assert 0 < one_day < everything


def test_the_byte_cap_is_enforced(live: tuple[bigquery.Client, str]) -> None:
    client, dataset = live
    config = bigquery.QueryJobConfig(maximum_bytes_billed=1, use_query_cache=False)
    with pytest.raises(api_exceptions.GoogleAPICallError, match=r"(?i)bytes billed"):
        client.query_and_wait(
            f"SELECT * FROM `{PROJECT}.{dataset}.flights`",  # noqa: S608
            job_config=config,
        )
