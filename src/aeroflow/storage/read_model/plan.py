"""A ``FlightQuery`` resolved against the model's dictionaries: codes and microseconds.

Validation mirrors ``storage.queries.build_list_flights`` (same errors for a limit below 1 or a
naive datetime), so a caller sees the same behaviour whichever path answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from aeroflow.storage.port import FlightQuery, SortOrder
from aeroflow.storage.read_model import ids
from aeroflow.storage.read_model.columns import Dictionary

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# Filters answered from posting lists, and the dictionary holding their codes.
POSTED: Final = {"carrier": "carrier", "origin": "airport", "destination": "airport"}


def micros(name: str, value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return (value - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class After:
    """The keyset position: rows strictly after (asc) or before (desc) it."""

    departure: int
    flight_id: str
    key: int | None  # None: an id no stored flight can have; compared as text


# Not frozen, as RowValues: one is made per query, and a frozen dataclass's __init__ sets each
# field through object.__setattr__.
@dataclass(slots=True)
class Plan:
    equal: dict[str, int]  # posted filter -> code
    status: int | None
    departure_from: int | None
    departure_to: int | None
    min_dep_delay: int | None
    descending: bool
    after: After | None
    want: int  # the page's rows plus one, which tells whether a next page exists
    impossible: bool  # a filter value no stored flight has

    @classmethod
    def of(cls, query: FlightQuery, dictionaries: dict[str, Dictionary]) -> Plan:
        if query.limit < 1:
            raise ValueError("limit must be at least 1")
        flt = query.filter
        equal: dict[str, int] = {}
        impossible = False
        for name, dictionary in POSTED.items():
            value: str | None = getattr(flt, name)
            if value is not None:
                code = dictionaries[dictionary].lookup(value)
                impossible |= code is None
                equal[name] = -1 if code is None else code
        status = None
        if flt.status is not None:
            found = dictionaries["status"].lookup(flt.status.value)
            impossible |= found is None
            status = -1 if found is None else found
        # In the order the SQL builder checks them, so the same error surfaces first.
        departure_from = (
            None if flt.departure_from is None else micros("departure_from", flt.departure_from)
        )
        departure_to = (
            None if flt.departure_to is None else micros("departure_to", flt.departure_to)
        )
        after = None
        if query.after is not None:
            departure = micros("after.scheduled_departure", query.after.scheduled_departure)
            flight_id = query.after.flight_id
            after = After(departure, flight_id, ids.encode(flight_id))
        return cls(
            equal=equal,
            status=status,
            departure_from=departure_from,
            departure_to=departure_to,
            min_dep_delay=flt.min_dep_delay,
            descending=query.sort is SortOrder.DESC,
            after=after,
            want=query.limit + 1,
            impossible=impossible,
        )
