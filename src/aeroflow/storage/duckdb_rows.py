"""Arrow rows for the DuckDB write path, built a column at a time from a batch's messages.

Building these rows was about a third of ``write_batch``'s CPU when done value by value through
``FlightEvent``'s derived properties: the ``flight_id`` property alone costs ~2 µs per event
(``strftime``), the local departure ~0.7 µs (``datetime.replace``). Here each column is one
``pa.array`` over plain attribute reads, aware datetimes go to Arrow as they are (it converts
them to UTC in C, twice as fast as subtracting the epoch in Python), and the derived columns
are computed by Arrow kernels over whole columns.

The derived columns must equal what ``aeroflow.domain.events`` defines (``flight_id``,
``scheduled_departure_local``, ``dep_delay_minutes``, ``arr_delay_minutes``):
tests/storage/test_duckdb_rows.py checks them against the domain's properties on generated
events, edge cases of rounding and offsets included.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from aeroflow.domain.schema import FLIGHT_EVENTS, FLIGHTS, REJECTED_MESSAGES, ColumnType
from aeroflow.domain.schema import Table as SchemaTable
from aeroflow.storage.port import AcceptedMessage, RejectedMessage

_INSTANT: Final = pa.timestamp("us", tz="UTC")
_WALL_CLOCK: Final = pa.timestamp("us")
_ARROW_TYPES: Final = {
    ColumnType.STRING: pa.string(),
    ColumnType.INT64: pa.int64(),
    ColumnType.FLOAT64: pa.float64(),
    ColumnType.TIMESTAMP: _INSTANT,
    ColumnType.DATETIME: _WALL_CLOCK,
    ColumnType.BYTES: pa.binary(),
    ColumnType.JSON: pa.string(),
}
_MICROS_PER_MINUTE: Final = 60_000_000
_DAY: Final = timedelta(days=1)

# (flight_id, event_time µs, publish_time µs, message_id): which event of a flight is newest.
RecencyKey = tuple[str, int, int, str]


def arrow_schema(table: SchemaTable) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, _ARROW_TYPES[c.type], nullable=not c.required) for c in table.columns]
    )


EVENTS_SCHEMA: Final = arrow_schema(FLIGHT_EVENTS)
# The flight_events column each flights column is copied from, in flights' order.
_FLIGHTS_SOURCES: Final = [
    "ingest_time" if name == "updated_at" else name for name in FLIGHTS.column_names
]
REJECTED_SCHEMA: Final = arrow_schema(REJECTED_MESSAGES)


@dataclass(frozen=True, slots=True)
class EventRows:
    """A batch's flight_events rows, plus what picking the newest event per flight needs."""

    table: pa.Table
    # One per row, in row order: the recency order of the row's event.
    keys: list[RecencyKey]

    def without(self, message_ids: Collection[str]) -> EventRows:
        keep = [i for i, key in enumerate(self.keys) if key[3] not in message_ids]
        return EventRows(self.table.take(pa.array(keep, pa.int64())), [self.keys[i] for i in keep])

    def newest_per_flight(self) -> dict[str, tuple[RecencyKey, int]]:
        """flight_id -> (recency key, row position) of the batch's newest event per flight."""
        newest: dict[str, tuple[RecencyKey, int]] = {}
        for position, key in enumerate(self.keys):
            current = newest.get(key[0])
            if current is None or key > current[0]:
                newest[key[0]] = (key, position)
        return newest

    def local_departure_days(self) -> tuple[datetime, datetime]:
        """[first day, day after the last day) of the rows' local scheduled departures.

        A flight's id carries its local departure date, so every stored row of a flight in
        this batch departs within this range: a sound filter that lets a lookup by flight id
        skip the row groups of other days (their zone maps).
        """
        bounds = pc.min_max(self.table.column("scheduled_departure_local")).as_py()
        first: datetime = bounds["min"]
        last: datetime = bounds["max"]
        return _midnight(first), _midnight(last) + _DAY

    def flights_rows(self, positions: Sequence[int]) -> pa.Table:
        """Rows for ``flights`` made from these events; updated_at = the event's ingest time."""
        flights = self.table.select(_FLIGHTS_SOURCES).rename_columns(FLIGHTS.column_names)
        return flights.take(pa.array(positions, pa.int64()))


def _midnight(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _minutes_between(scheduled: pa.Array, actual: pa.Array) -> pa.Array:
    """``round((actual - scheduled).total_seconds() / 60)`` per row, null when actual is.

    Exactly the domain's float arithmetic: µs -> float (exact below 2**53), / 1e6, / 60, each
    IEEE-rounded as Python's true division is, then round half to even as ``round()`` does.
    """
    micros = pc.subtract(actual, scheduled).cast(pa.int64()).cast(pa.float64())
    minutes = pc.divide(pc.divide(micros, 1e6), 60.0)
    return pc.round(minutes, 0, round_mode="half_to_even").cast(pa.int64())


def _flight_ids(carrier: pa.Array, number: pa.Array, origin: pa.Array, local: pa.Array) -> pa.Array:
    """``{carrier}{number:04d}-{origin}-{local date:%Y%m%d}``, as ``domain.events.flight_id``.

    The schema bounds make the formats fixed-width: numbers 1..9999, years 1950..2099.
    """
    day = pc.replace_substring(local.cast(pa.date32()).cast(pa.string()), "-", "")
    padded = pc.utf8_lpad(number.cast(pa.string()), 4, "0")
    return pc.binary_join_element_wise(carrier, padded, "-", origin, "-", day, "")


def prepare() -> None:
    """Pay pyarrow's one-time set-up of building arrays from Python objects now.

    Its first ``pa.array`` of a list imports pandas (~50 MiB; 0.5-1.2 s here), holding the GIL
    throughout: in a batch's write that stalled the event loop and every push request for as
    long, once per process. A writer calls this when it starts, before any traffic.
    """
    pa.array([], pa.string())


def event_rows(messages: Sequence[AcceptedMessage]) -> EventRows:
    """The flight_events rows of ``messages``, in order."""
    events = [m.event for m in messages]
    metas = [m.meta for m in messages]
    carrier = pa.array([e.carrier for e in events], pa.string())
    flight_number = pa.array([e.flight_number for e in events], pa.int64())
    origin = pa.array([e.origin for e in events], pa.string())
    departure = pa.array([e.scheduled_departure for e in events], _INSTANT)
    arrival = pa.array([e.scheduled_arrival for e in events], _INSTANT)
    actual_departure = pa.array([e.actual_departure for e in events], _INSTANT)
    actual_arrival = pa.array([e.actual_arrival for e in events], _INSTANT)
    event_time = pa.array([e.event_time for e in events], _INSTANT)
    publish_time = pa.array([m.publish_time for m in metas], _INSTANT)
    # Wall clock at the origin = the UTC instant shifted by the offset the event carried.
    offsets = pa.array([e.scheduled_departure.utcoffset() for e in events], pa.duration("us"))
    local_departure = pc.add(departure.cast(_WALL_CLOCK), offsets)
    flight_id = _flight_ids(carrier, flight_number, origin, local_departure)
    columns: dict[str, pa.Array] = {
        "message_id": pa.array([m.message_id for m in metas], pa.string()),
        "publish_time": publish_time,
        "ingest_time": pa.array([m.ingest_time for m in messages], _INSTANT),
        "ordering_key": pa.array([m.ordering_key for m in metas], pa.string()),
        "attributes": pa.array(
            [orjson.dumps(dict(m.attributes)).decode() if m.attributes else None for m in metas],
            pa.string(),
        ),
        "flight_id": flight_id,
        "scheduled_departure_local": local_departure,
        "dep_delay_minutes": _minutes_between(departure, actual_departure),
        "arr_delay_minutes": _minutes_between(arrival, actual_arrival),
        "carrier": carrier,
        "flight_number": flight_number,
        "origin": origin,
        "destination": pa.array([e.destination for e in events], pa.string()),
        "scheduled_departure": departure,
        "scheduled_arrival": arrival,
        # FlightStatus is a StrEnum: Arrow stores its value.
        "status": pa.array([e.status for e in events], pa.string()),
        "actual_departure": actual_departure,
        "actual_arrival": actual_arrival,
        "tail_number": pa.array([e.tail_number for e in events], pa.string()),
        "distance_miles": pa.array([e.distance_miles for e in events], pa.int64()),
        "air_time_minutes": pa.array([e.air_time_minutes for e in events], pa.int64()),
        "event_time": event_time,
    }
    table = pa.Table.from_arrays([columns[n] for n in EVENTS_SCHEMA.names], schema=EVENTS_SCHEMA)
    keys = list(
        zip(
            flight_id.to_pylist(),
            event_time.cast(pa.int64()).to_pylist(),
            publish_time.cast(pa.int64()).to_pylist(),
            [m.message_id for m in metas],
            strict=True,
        )
    )
    return EventRows(table, keys)


def rejected_rows(messages: Sequence[RejectedMessage]) -> pa.Table:
    """The rejected_messages rows of ``messages``, in order."""
    metas = [m.meta for m in messages]
    columns: dict[str, pa.Array] = {
        "message_id": pa.array([m.message_id for m in metas], pa.string()),
        "publish_time": pa.array([m.publish_time for m in metas], _INSTANT),
        "received_at": pa.array([m.received_at for m in messages], _INSTANT),
        "subscription": pa.array([m.subscription for m in metas], pa.string()),
        "attributes": pa.array(
            [orjson.dumps(dict(m.attributes)).decode() if m.attributes else None for m in metas],
            pa.string(),
        ),
        "reason": pa.array([m.reason for m in messages], pa.string()),
        "detail": pa.array([m.detail for m in messages], pa.string()),
        "raw_data": pa.array([m.raw_data for m in messages], pa.binary()),
    }
    return pa.Table.from_arrays([columns[n] for n in REJECTED_SCHEMA.names], schema=REJECTED_SCHEMA)
