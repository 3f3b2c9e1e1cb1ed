"""The BigQuery write script and staging rows, checked without a server.

The emulator tests run the script for real; these keep two properties visible even where the
emulator is not installed: the staging table carries every column the targets need, and the
script is valid GoogleSQL that names no value (everything comes from the staging table).
"""

from __future__ import annotations

import base64
import json

import sqlglot
from storage_factories import accepted, make_event, rejected

from aeroflow.domain.schema import FLIGHT_EVENTS, FLIGHTS, REJECTED_MESSAGES
from aeroflow.storage.bigquery_write import STAGING_FIELDS, merge_script, staging_ndjson
from aeroflow.storage.port import WriteBatch

SCRIPT = merge_script(
    staging="proj-1.ds.aeroflow_staging_x",
    events="proj-1.ds.flight_events",
    flights="proj-1.ds.flights",
    rejected="proj-1.ds.rejected_messages",
)


def test_staging_has_every_column_of_the_targets() -> None:
    staged = {f.name for f in STAGING_FIELDS}
    for table in (FLIGHT_EVENTS, REJECTED_MESSAGES):
        assert set(table.column_names) <= staged
    # flights is built from event columns, except updated_at (the winner's ingest_time).
    assert set(FLIGHTS.column_names) - {"updated_at"} <= staged


def test_the_script_parses_as_googlesql_and_has_no_parameters() -> None:
    statements = sqlglot.parse(SCRIPT, read="bigquery")
    assert len([s for s in statements if s is not None]) >= 10
    assert "@" not in SCRIPT


def test_staged_rows_keep_raw_bytes_and_attributes_exactly() -> None:
    raw = b"\x00\xff{not json"
    batch = WriteBatch(
        accepted=[accepted(make_event(), "a-1", attributes={"k": "v"})],
        rejected=[rejected("r-1", raw)],
    )
    rows = [json.loads(line) for line in staging_ndjson(batch).read().splitlines()]
    assert [(r["kind"], r["seq"], r["message_id"]) for r in rows] == [
        ("accepted", 0, "a-1"),
        ("rejected", 1, "r-1"),
    ]
    assert json.loads(rows[0]["attributes"]) == {"k": "v"}
    assert base64.b64decode(rows[1]["raw_data"]) == raw
    assert rows[0]["scheduled_departure"].endswith("+00:00")
