"""The one schema of aeroflow's tables and topic, and what is generated from it.

Every column is declared once here. From these declarations come the DuckDB DDL, the BigQuery
table schemas (JSON files that Terraform reads, under ``infra/terraform/schemas/``) and the
Pub/Sub topic schema (Avro, JSON encoding). ``aeroflow schema export`` writes the files and a
test fails when the committed files drift from this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aeroflow.domain.events import FlightStatus


class ColumnType(StrEnum):
    STRING = "STRING"
    INT64 = "INT64"
    FLOAT64 = "FLOAT64"
    TIMESTAMP = "TIMESTAMP"  # an instant; stored in UTC
    DATETIME = "DATETIME"  # a wall-clock time without zone
    BYTES = "BYTES"
    JSON = "JSON"


_DUCKDB_TYPES = {
    ColumnType.STRING: "VARCHAR",
    ColumnType.INT64: "BIGINT",
    ColumnType.FLOAT64: "DOUBLE",
    ColumnType.TIMESTAMP: "TIMESTAMPTZ",
    ColumnType.DATETIME: "TIMESTAMP",
    ColumnType.BYTES: "BLOB",
    ColumnType.JSON: "JSON",
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    required: bool
    description: str

    def bigquery_field(self) -> dict[str, str]:
        return {
            "name": self.name,
            "type": self.type.value,
            "mode": "REQUIRED" if self.required else "NULLABLE",
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    # The timestamp column BigQuery partitions by (DAY) and the columns it clusters on.
    partition_by: str | None = None
    cluster_by: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def duckdb_ddl(self) -> str:
        lines = [
            f"    {c.name} {_DUCKDB_TYPES[c.type]}{' NOT NULL' if c.required else ''}"
            for c in self.columns
        ]
        lines.append(f"    PRIMARY KEY ({', '.join(self.primary_key)})")
        body = ",\n".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n{body}\n)"

    def bigquery_schema(self) -> list[dict[str, str]]:
        return [c.bigquery_field() for c in self.columns]


def _col(name: str, type_: ColumnType, description: str, *, required: bool = True) -> Column:
    return Column(name, type_, required, description)


S, INT, TS, DT = ColumnType.STRING, ColumnType.INT64, ColumnType.TIMESTAMP, ColumnType.DATETIME

# The message body published on the topic: exactly the FlightEvent fields.
EVENT_PAYLOAD: tuple[Column, ...] = (
    _col("carrier", S, "IATA airline designator (2 characters)."),
    _col("flight_number", INT, "Flight number, 1-9999."),
    _col("origin", S, "IATA code of the departure airport."),
    _col("destination", S, "IATA code of the arrival airport."),
    _col("scheduled_departure", TS, "Scheduled departure (UTC)."),
    _col("scheduled_arrival", TS, "Scheduled arrival (UTC)."),
    _col("status", S, f"One of: {', '.join(s.value for s in FlightStatus)}."),
    _col("actual_departure", TS, "Actual departure (UTC).", required=False),
    _col("actual_arrival", TS, "Actual arrival (UTC).", required=False),
    _col("tail_number", S, "Aircraft registration.", required=False),
    _col("distance_miles", INT, "Great-circle distance in statute miles."),
    _col("air_time_minutes", INT, "Minutes in the air.", required=False),
    _col("event_time", TS, "When the status change happened (UTC)."),
)

DERIVED: tuple[Column, ...] = (
    _col("flight_id", S, "{carrier}{flight_number:04d}-{origin}-{local date YYYYMMDD}."),
    _col("scheduled_departure_local", DT, "Scheduled departure, wall clock at the origin."),
    _col("dep_delay_minutes", INT, "actual_departure - scheduled_departure.", required=False),
    _col("arr_delay_minutes", INT, "actual_arrival - scheduled_arrival.", required=False),
)

_MESSAGE_ID = _col("message_id", S, "Pub/Sub message id; the idempotency key.")
_PUBLISH_TIME = _col("publish_time", TS, "When Pub/Sub accepted the message.")
_ATTRIBUTES = _col("attributes", ColumnType.JSON, "Pub/Sub message attributes.", required=False)

FLIGHT_EVENTS = Table(
    name="flight_events",
    description="Every accepted flight event, append-only, one row per Pub/Sub message id.",
    columns=(
        _MESSAGE_ID,
        _PUBLISH_TIME,
        _col("ingest_time", TS, "When aeroflow stored the message."),
        _col("ordering_key", S, "Pub/Sub ordering key.", required=False),
        _ATTRIBUTES,
        *DERIVED,
        *EVENT_PAYLOAD,
    ),
    primary_key=("message_id",),
    partition_by="scheduled_departure",
    cluster_by=("carrier", "origin", "destination"),
)

FLIGHTS = Table(
    name="flights",
    description="Current state: the latest event per flight (event_time, then publish_time).",
    columns=(
        *DERIVED,
        *EVENT_PAYLOAD,
        _MESSAGE_ID,
        _PUBLISH_TIME,
        _col("updated_at", TS, "When this row last changed."),
    ),
    primary_key=("flight_id",),
    partition_by="scheduled_departure",
    cluster_by=("carrier", "origin", "destination"),
)

REJECTED_MESSAGES = Table(
    name="rejected_messages",
    description="Poison messages: acked so they never block the stream, kept with the reason.",
    columns=(
        _MESSAGE_ID,
        _PUBLISH_TIME,
        _col("received_at", TS, "When aeroflow rejected the message."),
        _col("subscription", S, "The subscription that delivered it.", required=False),
        _ATTRIBUTES,
        _col("reason", S, "Machine-readable reason code."),
        _col("detail", S, "Human-readable explanation."),
        _col("raw_data", ColumnType.BYTES, "The message data exactly as received."),
    ),
    primary_key=("message_id",),
    partition_by="received_at",
)

TABLES: tuple[Table, ...] = (FLIGHT_EVENTS, FLIGHTS, REJECTED_MESSAGES)


def pubsub_avro_schema() -> dict[str, Any]:
    """The topic schema. Pub/Sub supports Avro and Protocol Buffers, not JSON Schema; Avro
    with JSON encoding lets publishers send plain JSON. Timestamps travel as RFC 3339 strings.
    """
    fields: list[dict[str, Any]] = []
    for column in EVENT_PAYLOAD:
        avro_type = "long" if column.type is ColumnType.INT64 else "string"
        if column.required:
            fields.append({"name": column.name, "type": avro_type, "doc": column.description})
        else:
            fields.append(
                {
                    "name": column.name,
                    "type": ["null", avro_type],
                    "default": None,
                    "doc": column.description,
                }
            )
    return {
        "type": "record",
        "name": "FlightEvent",
        "namespace": "dev.aeroflow",
        "doc": "A flight status event: a full snapshot of one flight at event_time.",
        "fields": fields,
    }


def generated_files() -> dict[str, str]:
    """Relative path (from the repository root) → file content, for every generated file."""
    files = {
        f"infra/terraform/schemas/bigquery/{t.name}.json": _dump(t.bigquery_schema())
        for t in TABLES
    }
    files["infra/terraform/schemas/pubsub/flight_event.avsc"] = _dump(pubsub_avro_schema())
    return files


def _dump(value: object) -> str:
    return json.dumps(value, indent=2) + "\n"
