"""The BigQuery storage adapter: ``storage.port.FlightStore`` over google-cloud-bigquery.

Writes: one staging load and one transactional script per batch, idempotent by Pub/Sub message
id (``bigquery_write`` says why and how). Reads: the SQL of ``storage.queries`` in its
``bigquery`` dialect, named query parameters only, every job capped by maximum bytes billed and a
job timeout. Filters on ``scheduled_departure`` prune partitions; carrier/origin/destination
filters use the tables' clustering.

The client is injected (the composition root builds it with ``build_bigquery_client``), so the
same class runs against BigQuery and against the local emulator. The adapter never creates
tables: Terraform does (``bigquery_setup`` exists for tests and local runs).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from aeroflow.observability.metrics import STORAGE_QUERY_DURATION, STORAGE_ROWS_RETURNED
from aeroflow.settings import Settings
from aeroflow.storage import queries
from aeroflow.storage.bigquery_errors import api_retry, job_retry, unavailable_on_transient
from aeroflow.storage.bigquery_write import STAGING_FIELDS, merge_script, staging_ndjson
from aeroflow.storage.port import (
    DelayStats,
    Flight,
    FlightFilter,
    FlightPage,
    FlightQuery,
    GroupBy,
    Keyset,
    StorageUnavailableError,
    WriteBatch,
    WriteResult,
)
from aeroflow.storage.rows import delay_stats_from_row, flight_from_row

log = logging.getLogger(__name__)

# A staging table outlives its batch only if the process dies between load and drop.
_STAGING_TTL: Final = timedelta(hours=1)
_STAGING_PREFIX: Final = "aeroflow_staging_"
# Dropping a staging table is housekeeping: never let it hold up the caller for long.
_DROP_TIMEOUT_SECONDS: Final = 5.0
_NO_RETRY: Final = Retry(predicate=lambda _exc: False)


def build_bigquery_client(settings: Settings) -> bigquery.Client:
    """The client for ``settings``: Application Default Credentials against BigQuery, or
    anonymous credentials against a plain-http endpoint (the local emulator)."""
    if not settings.gcp_project:
        raise ValueError("AEROFLOW_GCP_PROJECT is required with the bigquery backend")
    endpoint = settings.bigquery_api_endpoint
    if endpoint is None:
        return bigquery.Client(project=settings.gcp_project, location=settings.bigquery_location)
    # An https endpoint is a real BigQuery front (e.g. Private Service Connect): keep ADC.
    anonymous = endpoint.startswith("http://")
    credentials = AnonymousCredentials() if anonymous else None  # type: ignore[no-untyped-call]
    return bigquery.Client(
        project=settings.gcp_project,
        location=settings.bigquery_location,
        credentials=credentials,
        client_options=ClientOptions(api_endpoint=endpoint),
    )


class BigQueryFlightStore:
    """``FlightStore`` over three BigQuery tables in one dataset."""

    def __init__(
        self,
        client: bigquery.Client,
        *,
        dataset: str,
        location: str,
        max_bytes_billed: int,
        job_timeout_seconds: float,
        project: str | None = None,
    ) -> None:
        self._client = client
        self._project = project or client.project
        self._dataset = f"{self._project}.{dataset}"
        self._location = location
        self._max_bytes_billed = max_bytes_billed
        self._timeout = job_timeout_seconds
        self._events = f"{self._dataset}.flight_events"
        self._flights = f"{self._dataset}.flights"
        self._rejected = f"{self._dataset}.rejected_messages"
        # Validates project and dataset names once, so a typo fails at start-up.
        for table in (self._events, self._flights, self._rejected):
            queries.quote_table(table, "bigquery")
        self._api_retry = api_retry(job_timeout_seconds)
        self._job_retry = job_retry(job_timeout_seconds)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, client: bigquery.Client) -> BigQueryFlightStore:
        return cls(
            client,
            dataset=settings.bigquery_dataset,
            location=settings.bigquery_location,
            max_bytes_billed=settings.bigquery_max_bytes_billed,
            job_timeout_seconds=settings.bigquery_job_timeout_seconds,
            project=settings.gcp_project,
        )

    # --- writes --------------------------------------------------------------------------

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        if len(batch) == 0:
            return WriteResult(stored=0, duplicates=0, rejected=0)
        self._check_open()
        staging = f"{self._dataset}.{_STAGING_PREFIX}{uuid.uuid4().hex}"
        with _timed("write_batch"), unavailable_on_transient("write_batch"):
            self._create_staging(staging)
            try:
                self._load_staging(staging, batch)
                new_accepted, new_rejected = self._merge(staging)
            finally:
                self._drop_staging(staging)
        ids = [m.meta.message_id for m in batch.accepted] + [
            m.meta.message_id for m in batch.rejected
        ]
        stored, kept = len(new_accepted), len(new_rejected)
        return WriteResult(
            stored=stored,
            duplicates=len(ids) - stored - kept,
            rejected=kept,
            duplicate_ids=frozenset(ids) - new_accepted - new_rejected,
        )

    def _create_staging(self, staging: str) -> None:
        table = bigquery.Table(staging, schema=_STAGING_SCHEMA)
        table.expires = datetime.now(UTC) + _STAGING_TTL
        self._client.create_table(table, retry=self._api_retry, timeout=self._timeout)

    def _load_staging(self, staging: str, batch: WriteBatch) -> None:
        config = bigquery.LoadJobConfig(
            schema=_STAGING_SCHEMA,
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            # Truncate: a retried load replaces rather than doubles the staged rows.
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            job_timeout_ms=self._timeout_ms,
        )
        # No ``size``: the client then uses a resumable upload, which the emulator supports
        # (its multipart upload does not), at the price of one more round trip.
        job = self._client.load_table_from_file(
            staging_ndjson(batch),
            staging,
            job_config=config,
            location=self._location,
            timeout=self._timeout,
        )
        job.result(timeout=self._timeout, retry=self._api_retry)

    def _merge(self, staging: str) -> tuple[frozenset[str], frozenset[str]]:
        script = merge_script(
            staging=staging, events=self._events, flights=self._flights, rejected=self._rejected
        )
        job = self._client.query(
            script,
            job_config=self._job_config(),
            location=self._location,
            timeout=self._timeout,
            retry=self._api_retry,
            job_retry=self._job_retry,
        )
        rows = list(job.result(timeout=self._timeout, retry=self._api_retry))
        if len(rows) != 1:
            raise RuntimeError(f"merge script returned {len(rows)} rows, expected 1")
        row = rows[0]
        return frozenset(row["new_accepted"] or ()), frozenset(row["new_rejected"] or ())

    def _drop_staging(self, staging: str) -> None:
        # Best effort: the table expires by itself. A failure here must neither mask the
        # write's own error nor fail a write that succeeded.
        try:
            self._client.delete_table(
                staging,
                not_found_ok=True,
                retry=_NO_RETRY,
                timeout=_DROP_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # logged; the table expires by itself
            log.warning("could not drop staging table %s (it expires by itself): %r", staging, exc)

    # --- reads ---------------------------------------------------------------------------

    def list_flights(self, query: FlightQuery) -> FlightPage:
        sql = queries.build_list_flights(query, "bigquery", table=self._flights)
        rows = self._fetch("list_flights", sql)
        flights = [flight_from_row(row) for row in rows[: query.limit]]
        next_key = None
        if len(rows) > query.limit:
            last = flights[-1]
            next_key = Keyset(last.scheduled_departure, last.flight_id)
        return FlightPage(flights=flights, next=next_key)

    def get_flight(self, flight_id: str) -> Flight | None:
        sql = queries.build_get_flight(flight_id, "bigquery", table=self._flights)
        rows = self._fetch("get_flight", sql)
        return flight_from_row(rows[0]) if rows else None

    def delay_stats(self, group_by: GroupBy, flight_filter: FlightFilter) -> Sequence[DelayStats]:
        sql = queries.build_delay_stats(group_by, flight_filter, "bigquery", table=self._flights)
        return [delay_stats_from_row(row) for row in self._fetch("delay_stats", sql)]

    @property
    def reads_block(self) -> bool:
        return True

    def ping(self) -> None:
        # A metadata read, not a query: readiness probes run every few seconds, and a query
        # job each time would cost quota for nothing. It still proves endpoint, credentials
        # and the dataset.
        self._check_open()
        with _timed("ping"), unavailable_on_transient("ping"):
            self._client.get_dataset(self._dataset, retry=self._api_retry, timeout=self._timeout)

    def close(self) -> None:
        self._closed = True
        self._client.close()  # type: ignore[no-untyped-call]

    # --- helpers -------------------------------------------------------------------------

    def _check_open(self) -> None:
        # The client would quietly reopen its HTTP session; a closed store must stay closed,
        # as a closed DuckDB connection does.
        if self._closed:
            raise StorageUnavailableError("the BigQuery store is closed")

    @property
    def _timeout_ms(self) -> int:
        return max(1, round(self._timeout * 1000))

    def _job_config(
        self, parameters: Sequence[bigquery.ScalarQueryParameter] = ()
    ) -> bigquery.QueryJobConfig:
        return bigquery.QueryJobConfig(
            query_parameters=list(parameters),
            maximum_bytes_billed=self._max_bytes_billed,
            job_timeout_ms=self._timeout_ms,
            use_legacy_sql=False,
        )

    def _fetch(self, kind: str, query: queries.SqlQuery) -> list[dict[str, object]]:
        parameters = [
            bigquery.ScalarQueryParameter(name, queries.bigquery_param_type(value), value)
            for name, value in query.params.items()
        ]
        self._check_open()
        with _timed(kind), unavailable_on_transient(kind):
            # Plain row iteration: results come over the REST API, never through the Storage
            # Read API (which the emulator cannot serve for query results).
            result = self._client.query_and_wait(
                query.sql,
                job_config=self._job_config(parameters),
                location=self._location,
                api_timeout=self._timeout,
                wait_timeout=self._timeout,
                retry=self._api_retry,
                job_retry=self._job_retry,
            )
            rows = [dict(row.items()) for row in result]
        STORAGE_ROWS_RETURNED.labels(query=kind).observe(len(rows))
        return rows


_STAGING_SCHEMA: Final = [bigquery.SchemaField(f.name, f.type) for f in STAGING_FIELDS]


@contextlib.contextmanager
def _timed(kind: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        STORAGE_QUERY_DURATION.labels(query=kind).observe(time.perf_counter() - start)
