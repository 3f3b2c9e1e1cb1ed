"""Query parameters of the read API: declared once, validated strictly, documented in OpenAPI.

Strictness is a feature for a public API: a misspelt parameter (``?carier=UA``) silently
ignored would return every flight, so unknown parameters are refused, and a parameter given
twice is refused rather than picking one of the values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from aeroflow.api.cursor import MAX_CURSOR_CHARS
from aeroflow.api.errors import ApiError, ErrorCode
from aeroflow.domain.events import AIRPORT_PATTERN, CARRIER_PATTERN, FlightStatus
from aeroflow.storage.port import FlightFilter, GroupBy, SortOrder

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# Far beyond any real delay (the domain caps delays at 72 h) yet safe for every backend's int64.
MAX_DELAY_FILTER = 100_000
# Query bounds outside this window cannot match a stored flight (the domain allows 1950..2100)
# and would only risk overflow at the edges of datetime.
_MIN_YEAR, _MAX_YEAR = 1900, 2199
_MAX_REPORTED_NAMES = 20
_MAX_NAME_CHARS = 64

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_time_bound(value: Any) -> date | datetime:
    """A bare date, or an RFC 3339 date-time WITH offset (returned in UTC)."""
    if isinstance(value, datetime | date):  # already parsed (defaults, direct calls)
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("time_bound_type", "expected a string")
    if _DATE_RE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date_invalid", "not a valid calendar date") from None
        _check_year(day.year)
        return day
    match = _DATETIME_RE.fullmatch(value)
    if match is None:
        raise PydanticCustomError(
            "time_bound_format",
            "expected a date (YYYY-MM-DD) or an RFC 3339 date-time with offset",
        )
    if match["offset"] is None:
        raise PydanticCustomError(
            "timezone_required",
            "a date-time needs an offset (Z or +HH:MM); naive times are ambiguous",
        )
    try:
        moment = datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("datetime_invalid", "not a valid date-time") from None
    _check_year(moment.year)
    return moment


def _check_year(year: int) -> None:
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise PydanticCustomError(
            "time_bound_range",
            "must be between the years {min} and {max}",
            {"min": _MIN_YEAR, "max": _MAX_YEAR},
        )


_TIME_BOUND_SCHEMA = {
    "type": "string",
    "anyOf": [{"format": "date"}, {"format": "date-time"}],
    # Years 1901..2198: inside _MIN_YEAR.._MAX_YEAR even after an offset moves the UTC
    # instant across New Year, so the document promises nothing the check refuses.
    "pattern": r"^(190[1-9]|19[1-9][0-9]|20[0-9]{2}|21[0-8][0-9]|219[0-8])-",
    "examples": ["2013-01-01", "2013-01-01T06:00:00Z"],
}
TimeBound = Annotated[
    date | datetime, PlainValidator(parse_time_bound), WithJsonSchema(_TIME_BOUND_SCHEMA)
]

# --- the parameters ----------------------------------------------------------------------

CarrierParam = Annotated[
    str | None,
    Query(pattern=CARRIER_PATTERN, description="IATA airline designator, e.g. `UA`."),
]
OriginParam = Annotated[
    str | None, Query(pattern=AIRPORT_PATTERN, description="IATA departure airport, e.g. `EWR`.")
]
DestinationParam = Annotated[
    str | None, Query(pattern=AIRPORT_PATTERN, description="IATA arrival airport, e.g. `IAH`.")
]
StatusParam = Annotated[FlightStatus | None, Query(description="Current status of the flight.")]
DepartureFromParam = Annotated[
    TimeBound | None,
    Query(
        description="Scheduled departure at or after this instant (inclusive). A bare date "
        "means 00:00 UTC that day; a date-time must carry an offset."
    ),
]
DepartureToParam = Annotated[
    TimeBound | None,
    Query(
        description="Scheduled departure before this instant (exclusive). A bare date includes "
        "that whole UTC day; a date-time must carry an offset."
    ),
]
MinDepDelayParam = Annotated[
    int | None,
    Query(
        ge=-MAX_DELAY_FILTER,
        le=MAX_DELAY_FILTER,
        description="Only flights whose departure delay in minutes is at least this.",
    ),
]
SortParam = Annotated[
    SortOrder, Query(description="Order by (scheduled_departure, flight_id), asc or desc.")
]
LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size, 1..1000.")]
CursorParam = Annotated[
    str | None,
    Query(
        description="Opaque `next_cursor` of the previous page. Only valid with the same "
        "filters and sort order it was issued for.",
        json_schema_extra={"maxLength": MAX_CURSOR_CHARS},
    ),
]
GroupByParam = Annotated[GroupBy, Query(description="Dimension to aggregate by.")]

FILTER_PARAMS = (
    "carrier",
    "origin",
    "destination",
    "status",
    "departure_from",
    "departure_to",
    "min_dep_delay",
)
LIST_PARAMS = (*FILTER_PARAMS, "sort", "limit", "cursor")
STATS_PARAMS = (*FILTER_PARAMS, "group_by")


async def flight_filter(
    carrier: CarrierParam = None,
    origin: OriginParam = None,
    destination: DestinationParam = None,
    status: StatusParam = None,
    departure_from: DepartureFromParam = None,
    departure_to: DepartureToParam = None,
    min_dep_delay: MinDepDelayParam = None,
) -> FlightFilter:
    # async although it awaits nothing: FastAPI runs sync dependencies in a thread pool,
    # which costs far more than this function does.
    return build_filter(
        carrier, origin, destination, status, departure_from, departure_to, min_dep_delay
    )


def build_filter(
    carrier: str | None,
    origin: str | None,
    destination: str | None,
    status: FlightStatus | None,
    departure_from: date | datetime | None,
    departure_to: date | datetime | None,
    min_dep_delay: int | None,
) -> FlightFilter:
    """The filter of already validated parameters; RequestValidationError for an empty range."""
    start = None if departure_from is None else _start_instant(departure_from)
    end = None if departure_to is None else _end_instant(departure_to)
    if start is not None and end is not None and start >= end:
        raise RequestValidationError(
            [
                {
                    "type": "time_range",
                    "loc": ("query", "departure_from"),
                    "msg": "departure_from must be before departure_to",
                }
            ]
        )
    return FlightFilter(
        carrier=carrier,
        origin=origin,
        destination=destination,
        status=status,
        departure_from=start,
        departure_to=end,
        min_dep_delay=min_dep_delay,
    )


def _start_instant(bound: date | datetime) -> datetime:
    if isinstance(bound, datetime):
        return bound
    return datetime.combine(bound, time(), tzinfo=UTC)


def _end_instant(bound: date | datetime) -> datetime:
    if isinstance(bound, datetime):
        return bound
    # departure_to is exclusive, and a bare date means "through the end of that day".
    return datetime.combine(bound + timedelta(days=1), time(), tzinfo=UTC)


def strict_query(*allowed: str) -> Callable[[Request], Awaitable[None]]:
    """Dependency refusing unknown (400) and repeated (422) query parameters."""
    allowed_names = frozenset(allowed)
    allowed_text = ", ".join(sorted(allowed_names)) or "none"

    async def check(request: Request) -> None:
        seen: set[str] = set()
        # dicts as insertion-ordered sets: report each name once, in request order
        unknown: dict[str, None] = {}
        repeated: dict[str, None] = {}
        for name, _ in request.query_params.multi_items():
            if name not in allowed_names:
                unknown[name] = None
            elif name in seen:
                repeated[name] = None
            seen.add(name)
        if unknown:
            raise ApiError(
                400,
                ErrorCode.UNKNOWN_PARAMETER,
                f"unknown query parameter(s); allowed: {allowed_text}",
                [
                    {"parameter": name[:_MAX_NAME_CHARS]}
                    for name in itertools.islice(unknown, _MAX_REPORTED_NAMES)
                ],
            )
        if repeated:
            raise RequestValidationError(
                [
                    {
                        "type": "repeated_parameter",
                        "loc": ("query", name),
                        "msg": "must be given at most once",
                    }
                    for name in repeated
                ]
            )

    return check
