"""The bytes of a message on the ``flight-events`` topic: Avro's JSON encoding of a FlightEvent.

The topic schema (``domain.schema.pubsub_avro_schema``) declares each optional field as the
union ``["null", T]``. Avro's JSON encoding writes a non-null union value wrapped in its branch
name, ``{"tail_number": {"string": "N14228"}}``, and a null as a present ``null``. Pub/Sub
enforces exactly that at publish time: Google's emulator refuses a plain ``"N14228"`` and an
omitted optional field ("Could not parse JSON Avro message"; tests/ingest/test_wire.py checks
our encoding against it). Pub/Sub delivers the published bytes unchanged, so the decoder unwraps.

Plain FlightEvent JSON (what ``FlightEvent.model_dump_json`` writes, e.g. an NDJSON file) is
accepted too: a union value is unwrapped only when it is a one-key object naming the expected
branch, anything else is left for the model to judge.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from aeroflow.domain.events import FlightEvent
from aeroflow.domain.schema import EVENT_PAYLOAD, ColumnType

FIELDS: Final = tuple(column.name for column in EVENT_PAYLOAD)

# Optional field -> the Avro branch name of its non-null type (see pubsub_avro_schema).
UNION_BRANCH: Final[dict[str, str]] = {
    column.name: "long" if column.type is ColumnType.INT64 else "string"
    for column in EVENT_PAYLOAD
    if not column.required
}


def event_to_wire(event: FlightEvent) -> dict[str, Any]:
    """The JSON object the topic schema expects, ready for ``orjson.dumps``.

    Datetimes stay ``datetime`` objects: orjson writes aware ones as RFC 3339 with their offset.
    """
    body: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(event, name)
        if value is not None and name in UNION_BRANCH:
            value = {UNION_BRANCH[name]: value}
        body[name] = value
    return body


def encode_event(event: FlightEvent) -> bytes:
    return orjson.dumps(event_to_wire(event))


def unwrap_unions(body: dict[str, Any]) -> bool:
    """Replace Avro-wrapped union values by the plain value, in place; True if any was."""
    changed = False
    for name, branch in UNION_BRANCH.items():
        value = body.get(name)
        if type(value) is dict and len(value) == 1 and branch in value:
            body[name] = value[branch]
            changed = True
    return changed
