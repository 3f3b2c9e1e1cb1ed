"""How the BigQuery adapter writes a batch: one staging load, then one transactional script.

Why not insertId with insertAll: its deduplication is best-effort (a one-minute window, no
guarantee) and the emulator does not emulate it at all. Why not a Storage Write API committed
stream: its offsets make one append exactly-once within one stream, but a Pub/Sub redelivery is a
new append, so deduplication by message id would still have to happen somewhere, and the port
must report which message ids were duplicates. Here the message id is the key of a real check:

1. the batch is serialised as NDJSON and loaded (a free load job, atomic) into a staging table
   of its own that expires on its own after an hour, should the process die before dropping it;
2. one multi-statement script, inside ``BEGIN/COMMIT TRANSACTION``, picks the batch's message ids
   that are in neither ``flight_events`` nor ``rejected_messages``, inserts those events,
   upserts ``flights`` with the newest of them per flight, inserts the new rejected messages,
   and returns the ids it stored. A failed script rolls back and writes nothing; a retried batch
   finds its message ids stored and reports them as duplicates.

Costs are kept bounded by partition pruning on the targets (a constant range on
``scheduled_departure`` held in script variables, which BigQuery treats as constants). The
script takes no query parameters: every value it uses comes from the staging table, and the SQL
text is built from this module's constants and validated table names only.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson

from aeroflow.domain.schema import (
    FLIGHT_EVENTS,
    FLIGHTS,
    REJECTED_MESSAGES,
    Column,
    ColumnType,
)
from aeroflow.storage.port import AcceptedMessage, RejectedMessage, WriteBatch
from aeroflow.storage.queries import quote_table

# Two events of one flight share its flight_id, hence its origin and its local departure date,
# so their UTC scheduled departures lie less than 24 h + the largest possible difference of
# two UTC offsets (28 h) apart. Three days either side of the batch therefore covers every
# stored row a batch row can match, while pruning all other partitions.
PRUNING_MARGIN_DAYS: Final = 3

# Load jobs decode BYTES from base64 and JSON columns from JSON text on real BigQuery, but the
# emulator stores the base64 text undecoded (see docs/bigquery.md). Staging such columns as
# STRING and converting them in SQL (FROM_BASE64, PARSE_JSON) is exact on both.
_STAGED_AS_STRING: Final = {ColumnType.BYTES, ColumnType.JSON}


@dataclass(frozen=True, slots=True)
class StagingField:
    name: str
    type: str  # GoogleSQL type name


def _staging_fields() -> tuple[StagingField, ...]:
    fields = [StagingField("kind", "STRING"), StagingField("seq", "INT64")]
    seen = {"kind", "seq"}
    for column in (*FLIGHT_EVENTS.columns, *REJECTED_MESSAGES.columns):
        if column.name in seen:
            continue
        seen.add(column.name)
        staged = "STRING" if column.type in _STAGED_AS_STRING else column.type.value
        fields.append(StagingField(column.name, staged))
    return tuple(fields)


# Every column of flight_events and rejected_messages, all NULLABLE, plus the row's kind
# ("accepted" / "rejected") and its position in the batch (first occurrence wins).
STAGING_FIELDS: Final = _staging_fields()

ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"


# --- staging rows --------------------------------------------------------------------------


def _timestamp(value: datetime) -> str:
    # The canonical TIMESTAMP literal form that load jobs accept everywhere.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def _datetime(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _optional_timestamp(value: datetime | None) -> str | None:
    return None if value is None else _timestamp(value)


def _attributes(message: AcceptedMessage | RejectedMessage) -> str | None:
    attributes = message.meta.attributes
    return orjson.dumps(dict(attributes)).decode() if attributes else None


def _accepted_row(seq: int, message: AcceptedMessage) -> dict[str, object]:
    event, meta = message.event, message.meta
    return {
        "kind": ACCEPTED,
        "seq": seq,
        "message_id": meta.message_id,
        "publish_time": _timestamp(meta.publish_time),
        "ingest_time": _timestamp(message.ingest_time),
        "ordering_key": meta.ordering_key,
        "attributes": _attributes(message),
        "flight_id": event.flight_id,
        "scheduled_departure_local": _datetime(event.scheduled_departure_local),
        "dep_delay_minutes": event.dep_delay_minutes,
        "arr_delay_minutes": event.arr_delay_minutes,
        "carrier": event.carrier,
        "flight_number": event.flight_number,
        "origin": event.origin,
        "destination": event.destination,
        "scheduled_departure": _timestamp(event.scheduled_departure),
        "scheduled_arrival": _timestamp(event.scheduled_arrival),
        "status": event.status.value,
        "actual_departure": _optional_timestamp(event.actual_departure),
        "actual_arrival": _optional_timestamp(event.actual_arrival),
        "tail_number": event.tail_number,
        "distance_miles": event.distance_miles,
        "air_time_minutes": event.air_time_minutes,
        "event_time": _timestamp(event.event_time),
    }


def _rejected_row(seq: int, message: RejectedMessage) -> dict[str, object]:
    meta = message.meta
    return {
        "kind": REJECTED,
        "seq": seq,
        "message_id": meta.message_id,
        "publish_time": _timestamp(meta.publish_time),
        "received_at": _timestamp(message.received_at),
        "subscription": meta.subscription,
        "attributes": _attributes(message),
        "reason": message.reason.value,
        "detail": message.detail,
        "raw_data": base64.b64encode(message.raw_data).decode("ascii"),
    }


def staging_rows(batch: WriteBatch) -> Iterator[dict[str, object]]:
    """Accepted messages first, then rejected ones, numbered in that order: the same
    first-occurrence-wins order as the DuckDB adapter."""
    seq = 0
    for accepted in batch.accepted:
        yield _accepted_row(seq, accepted)
        seq += 1
    for rejected in batch.rejected:
        yield _rejected_row(seq, rejected)
        seq += 1


def staging_ndjson(batch: WriteBatch) -> io.BytesIO:
    buffer = io.BytesIO()
    for row in staging_rows(batch):
        buffer.write(orjson.dumps(row))
        buffer.write(b"\n")
    buffer.seek(0)
    return buffer


# --- the merge script ----------------------------------------------------------------------


def _staged_value(column: Column, alias: str) -> str:
    ref = f"{alias}.{column.name}"
    if column.type is ColumnType.BYTES:
        return f"FROM_BASE64({ref})"
    if column.type is ColumnType.JSON:
        return f"PARSE_JSON({ref})"
    return ref


def _insert_from_staging(
    target: str, staging: str, columns: Sequence[Column], kind: str, ids: str
) -> str:
    names = ", ".join(c.name for c in columns)
    values = ",\n    ".join(f"{_staged_value(c, 's')} AS {c.name}" for c in columns)
    return (
        f"INSERT INTO {target} ({names})\n"
        f"SELECT\n    {values}\n"
        f"FROM {staging} AS s\n"
        f"WHERE s.kind = '{kind}' AND s.message_id IN UNNEST({ids})\n"
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY s.message_id ORDER BY s.seq) = 1;"
    )


def _newer(new: str, old: str) -> str:
    """``new`` beats ``old`` on (event_time, publish_time, message_id), as in DuckDB."""
    return (
        f"({new}.event_time > {old}.event_time"
        f" OR ({new}.event_time = {old}.event_time"
        f" AND ({new}.publish_time > {old}.publish_time"
        f" OR ({new}.publish_time = {old}.publish_time"
        f" AND {new}.message_id > {old}.message_id))))"
    )


def _flight_source_value(column: Column) -> str:
    # updated_at is when the winning event was stored, as in the DuckDB adapter.
    return "s.ingest_time" if column.name == "updated_at" else f"s.{column.name}"


def _merge_flights(target: str, staging: str) -> str:
    columns = FLIGHTS.columns
    names = ", ".join(c.name for c in columns)
    source_columns = ",\n      ".join(f"{_flight_source_value(c)} AS {c.name}" for c in columns)
    updates = ",\n    ".join(f"{c.name} = s.{c.name}" for c in columns if c.name != "flight_id")
    # Identifiers only (validated table names, schema column names); no value is spliced in.
    return (
        f"MERGE {target} AS t\n"  # noqa: S608
        "USING (\n"
        f"  SELECT\n      {source_columns}\n"
        f"  FROM {staging} AS s\n"
        f"  WHERE s.kind = '{ACCEPTED}' AND s.message_id IN UNNEST(new_accepted)\n"
        "  QUALIFY ROW_NUMBER() OVER (\n"
        "    PARTITION BY s.flight_id\n"
        "    ORDER BY s.event_time DESC, s.publish_time DESC, s.message_id DESC) = 1\n"
        ") AS s\n"
        "ON t.flight_id = s.flight_id\n"
        "  AND t.scheduled_departure >= prune_from AND t.scheduled_departure < prune_to\n"
        f"WHEN MATCHED AND {_newer('s', 't')} THEN UPDATE SET\n    {updates}\n"
        f"WHEN NOT MATCHED THEN INSERT ({names})\n"
        f"  VALUES ({', '.join(f's.{c.name}' for c in columns)});"
    )


def merge_script(*, staging: str, events: str, flights: str, rejected: str) -> str:
    """The script that moves one staged batch into the three tables, atomically.

    Its only result row: ``new_accepted`` and ``new_rejected``, the message ids it stored.
    """
    staging_q = quote_table(staging, "bigquery")
    events_q = quote_table(events, "bigquery")
    flights_q = quote_table(flights, "bigquery")
    rejected_q = quote_table(rejected, "bigquery")
    margin = f"INTERVAL {PRUNING_MARGIN_DAYS} DAY"
    # Identifiers only (validated table names, schema column names); no value is spliced in.
    return f"""\
DECLARE prune_from TIMESTAMP DEFAULT (
  SELECT TIMESTAMP_SUB(MIN(scheduled_departure), {margin}) FROM {staging_q});
DECLARE prune_to TIMESTAMP DEFAULT (
  SELECT TIMESTAMP_ADD(MAX(scheduled_departure), {margin}) FROM {staging_q});
DECLARE new_accepted ARRAY<STRING> DEFAULT [];
DECLARE new_rejected ARRAY<STRING> DEFAULT [];

BEGIN TRANSACTION;

-- A redelivered message carries the same data, so the same scheduled_departure: the
-- pruned range always contains its stored copy.
SET new_accepted = (
  SELECT IFNULL(ARRAY_AGG(DISTINCT s.message_id), [])
  FROM {staging_q} AS s
  WHERE s.kind = '{ACCEPTED}'
    AND NOT EXISTS (
      SELECT 1 FROM {events_q} AS e
      WHERE e.message_id = s.message_id
        AND e.scheduled_departure >= prune_from AND e.scheduled_departure < prune_to)
    AND NOT EXISTS (
      SELECT 1 FROM {rejected_q} AS r WHERE r.message_id = s.message_id));

-- Rejected messages are checked against rejected_messages only: they carry no
-- scheduled_departure to prune flight_events by (see docs/bigquery.md).
SET new_rejected = (
  SELECT IFNULL(ARRAY_AGG(DISTINCT s.message_id), [])
  FROM {staging_q} AS s
  WHERE s.kind = '{REJECTED}'
    AND s.message_id NOT IN (
      SELECT a.message_id FROM {staging_q} AS a WHERE a.kind = '{ACCEPTED}')
    AND NOT EXISTS (
      SELECT 1 FROM {rejected_q} AS r WHERE r.message_id = s.message_id));

{_insert_from_staging(events_q, staging_q, FLIGHT_EVENTS.columns, ACCEPTED, "new_accepted")}

{_merge_flights(flights_q, staging_q)}

{_insert_from_staging(rejected_q, staging_q, REJECTED_MESSAGES.columns, REJECTED, "new_rejected")}

COMMIT TRANSACTION;

SELECT new_accepted, new_rejected;
"""  # noqa: S608
