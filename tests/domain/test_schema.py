"""The one schema: committed generated files, and agreement between the event model, the
tables, the port and the topic schema."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import duckdb
import pytest

from aeroflow.domain import schema
from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.domain.schema import (
    DERIVED,
    EVENT_PAYLOAD,
    FLIGHT_EVENTS,
    FLIGHTS,
    REJECTED_MESSAGES,
    TABLES,
    ColumnType,
    generated_files,
    pubsub_avro_schema,
)
from aeroflow.storage.port import Flight

REPO = Path(__file__).resolve().parents[2]
GENERATED_DIR = REPO / "infra" / "terraform" / "schemas"


@pytest.mark.parametrize("relative_path", sorted(generated_files()))
def test_committed_generated_file_is_current(relative_path: str) -> None:
    committed = REPO / relative_path
    assert committed.is_file(), f"{relative_path} is missing: run `aeroflow schema export`"
    assert committed.read_text(encoding="utf-8") == generated_files()[relative_path], (
        f"{relative_path} drifted from aeroflow.domain.schema: run `aeroflow schema export`"
    )


def test_no_stale_generated_files_are_committed() -> None:
    on_disk = {str(p.relative_to(REPO)) for p in GENERATED_DIR.rglob("*") if p.is_file()}
    assert on_disk == set(generated_files())


def test_event_payload_columns_are_the_flight_event_fields() -> None:
    assert tuple(c.name for c in EVENT_PAYLOAD) == tuple(FlightEvent.model_fields)
    for column in EVENT_PAYLOAD:
        field = FlightEvent.model_fields[column.name]
        assert column.required == field.is_required(), column.name


def test_derived_columns_are_flight_event_properties() -> None:
    for column in DERIVED:
        assert isinstance(getattr(FlightEvent, column.name), property), column.name


def test_flights_table_holds_every_field_of_the_port_flight() -> None:
    # The read queries select exactly these columns from ``flights``.
    missing = {f.name for f in dataclasses.fields(Flight)} - set(FLIGHTS.column_names)
    assert not missing


def test_status_description_lists_every_status() -> None:
    description = FLIGHTS.column("status").description
    assert all(status.value in description for status in FlightStatus)


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_duckdb_ddl_creates_the_declared_table(table: schema.Table) -> None:
    connection = duckdb.connect(":memory:")
    try:
        connection.execute(table.duckdb_ddl())
        connection.execute(table.duckdb_ddl())  # IF NOT EXISTS: opening twice is fine
        described = connection.execute(f"DESCRIBE {table.name}").fetchall()
    finally:
        connection.close()
    assert tuple(row[0] for row in described) == table.column_names
    for name, _type, null, key, *_ in described:
        column = table.column(name)
        assert (null == "NO") == (column.required or name in table.primary_key), name
        assert (key == "PRI") == (name in table.primary_key), name


def test_primary_keys_are_the_idempotency_and_state_keys() -> None:
    assert FLIGHT_EVENTS.primary_key == ("message_id",)
    assert REJECTED_MESSAGES.primary_key == ("message_id",)
    assert FLIGHTS.primary_key == ("flight_id",)


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_bigquery_schema_matches_the_columns(table: schema.Table) -> None:
    fields = table.bigquery_schema()
    assert [f["name"] for f in fields] == list(table.column_names)
    for field, column in zip(fields, table.columns, strict=True):
        assert field["type"] in {t.value for t in ColumnType}
        assert field["mode"] == ("REQUIRED" if column.required else "NULLABLE")
        assert field["description"]
    if table.partition_by is not None:
        partition = table.column(table.partition_by)
        assert partition.type is ColumnType.TIMESTAMP
        assert partition.required
    for name in table.cluster_by:
        assert table.column(name).type is ColumnType.STRING
    assert len(table.cluster_by) <= 4  # BigQuery's limit


def test_avro_topic_schema_mirrors_the_event_payload() -> None:
    avro = pubsub_avro_schema()
    assert avro["type"] == "record"
    assert [f["name"] for f in avro["fields"]] == [c.name for c in EVENT_PAYLOAD]
    for field, column in zip(avro["fields"], EVENT_PAYLOAD, strict=True):
        scalar = "long" if column.type is ColumnType.INT64 else "string"
        if column.required:
            assert field["type"] == scalar
            assert "default" not in field
        else:
            # Avro: a union's default must match its first branch, hence null first.
            assert field["type"] == ["null", scalar]
            assert field["default"] is None
    json.dumps(avro)  # serialisable as the .avsc file
