"""A FlightEvent from a decoded JSON object, without pydantic's validator, for valid events.

``FlightEvent.model_validate_json`` costs ~15 µs per event (the JSON parsed again, every field
validated, the datetimes built, then the model's own checks); ingest calls it once per message,
thousands of times per second, on the event loop. ``parse_event`` checks the same rules in
plain Python over the object the caller already decoded, and builds the same model, in ~5 µs.

It is a fast path, not a second definition: it accepts only what it can check cheaply and for
certain (RFC 3339 instants in their common form, exact types, every constraint of the model),
and answers None for anything else, valid or not. The caller then validates with the model,
which stays the one source of the accept/reject decision and of the error messages. So the
fast path may say None for a valid event (the model accepts it, a little slower), and must
never accept what the model refuses or build a different event:
tests/domain/test_event_json.py checks both against the model on generated events.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from pydantic_core import TzInfo

from aeroflow.domain.events import FlightEvent, FlightStatus, check_consistency

# Strict RFC 3339 with the 'T', a fraction of at most 6 digits (more are truncated by the
# model: left to it), and 'Z' or an offset under 24 hours. ASCII digits only. What matches is
# then parsed by ``datetime.fromisoformat`` (in C), which checks the calendar.
_INSTANT: Final = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)
_CARRIER: Final = re.compile(r"[A-Z0-9]{2}", re.ASCII)
_AIRPORT: Final = re.compile(r"[A-Z]{3}", re.ASCII)
_TAIL: Final = re.compile(r"[A-Z0-9-]{2,10}", re.ASCII)
_EPOCH_DAYS: Final = datetime(1970, 1, 1).toordinal()
_STATUSES: Final = {status.value: status for status in FlightStatus}
_FIELDS: Final = frozenset(FlightEvent.model_fields)
_REQUIRED: Final = frozenset(
    name for name, info in FlightEvent.model_fields.items() if info.is_required()
)
# The instants a cache keeps: schedules repeat across a flight's events and across flights.
_CACHE_SIZE: Final = 8192

# An instant: the datetime the model would build (tzinfo pydantic_core's TzInfo, as its
# parser makes) and the same instant in µs since the epoch.
Instant = tuple[datetime, int]
_instants: dict[str, Instant] = {}
_zones: dict[int, TzInfo] = {}


def parse_event(document: dict[str, Any]) -> FlightEvent | None:
    """The FlightEvent ``document`` describes, or None when it is not certainly valid.

    ``document``: the JSON object as decoded (Avro union wrappers already removed).
    """
    if not _REQUIRED <= document.keys() <= _FIELDS:
        return None
    get = document.get
    carrier = document["carrier"]
    origin = document["origin"]
    destination = document["destination"]
    number = document["flight_number"]
    distance = document["distance_miles"]
    tail = get("tail_number")
    air_time = get("air_time_minutes")
    if not (
        type(carrier) is str
        and _CARRIER.fullmatch(carrier)
        and type(origin) is str
        and _AIRPORT.fullmatch(origin)
        and type(destination) is str
        and _AIRPORT.fullmatch(destination)
        and type(number) is int
        and 1 <= number <= 9999
        and type(distance) is int
        and 1 <= distance <= 20_000
        and (tail is None or (type(tail) is str and _TAIL.fullmatch(tail)))
        and (air_time is None or (type(air_time) is int and 1 <= air_time <= 1_440))
    ):
        return None
    status = _STATUSES.get(document["status"]) if type(document["status"]) is str else None
    departure = _instant(document["scheduled_departure"])
    arrival = _instant(document["scheduled_arrival"])
    event_time = _instant(document["event_time"])
    actual_dep_value = get("actual_departure")
    actual_arr_value = get("actual_arrival")
    actual_departure = None if actual_dep_value is None else _instant(actual_dep_value)
    actual_arrival = None if actual_arr_value is None else _instant(actual_arr_value)
    if (
        status is None
        or departure is None
        or arrival is None
        or event_time is None
        or (actual_departure is None and actual_dep_value is not None)
        or (actual_arrival is None and actual_arr_value is not None)
    ):
        return None
    try:
        check_consistency(
            status,
            origin,
            destination,
            departure[1],
            arrival[1],
            None if actual_departure is None else actual_departure[1],
            None if actual_arrival is None else actual_arrival[1],
            event_time[1],
        )
    except ValueError:
        return None  # the model words the reason
    return _build(
        document,
        {
            "carrier": carrier,
            "flight_number": number,
            "origin": origin,
            "destination": destination,
            "scheduled_departure": departure[0],
            "scheduled_arrival": arrival[0],
            "status": status,
            "actual_departure": None if actual_departure is None else actual_departure[0],
            "actual_arrival": None if actual_arrival is None else actual_arrival[0],
            "tail_number": tail,
            "distance_miles": distance,
            "air_time_minutes": air_time,
            "event_time": event_time[0],
        },
    )


def _build(document: dict[str, Any], values: dict[str, Any]) -> FlightEvent:
    """The model as validation leaves it: fields in declaration order, the fields set the
    ones the input named, no extra or private values. (``model_construct`` does the same
    with defaults and aliases handled generically, at several µs.)"""
    event = FlightEvent.__new__(FlightEvent)
    setattr_ = object.__setattr__
    setattr_(event, "__dict__", values)
    setattr_(event, "__pydantic_fields_set__", set(document))
    setattr_(event, "__pydantic_extra__", None)
    setattr_(event, "__pydantic_private__", None)
    return event


def _instant(value: object) -> Instant | None:
    if type(value) is not str:
        return None
    known = _instants.get(value)
    if known is not None:
        return known
    if _INSTANT.fullmatch(value) is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None  # no such day or time of day
    since = parsed.utcoffset()
    offset = 0 if since is None else since.days * 86_400 + since.seconds
    zone = _zones.get(offset)
    if zone is None:
        zone = _zones[offset] = TzInfo(offset)
    # Wall clock minus the offset, in µs: what the model's check computes from the datetime.
    days = parsed.toordinal() - _EPOCH_DAYS
    seconds = parsed.hour * 3600 + parsed.minute * 60 + parsed.second - offset
    micros = (days * 86_400 + seconds) * 1_000_000 + parsed.microsecond
    instant = (parsed.replace(tzinfo=zone), micros)
    if len(_instants) >= _CACHE_SIZE:
        _instants.clear()
    _instants[value] = instant
    return instant
