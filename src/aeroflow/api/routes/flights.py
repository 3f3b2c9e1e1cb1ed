"""``GET /v1/flights`` (filtered, keyset-paginated, JSON or CSV) and ``GET /v1/flights/{id}``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from aeroflow.api import negotiation
from aeroflow.api.cursor import CursorCodec, InvalidCursorError
from aeroflow.api.dependencies import CursorCodecDep, StoreDep
from aeroflow.api.errors import ApiError, ErrorCode
from aeroflow.api.params import (
    DEFAULT_LIMIT,
    LIST_PARAMS,
    CursorParam,
    LimitParam,
    SortParam,
    flight_filter,
    strict_query,
)
from aeroflow.api.reads import read
from aeroflow.api.schemas import FlightOut, FlightPageOut, error_responses
from aeroflow.api.serialization import flight_json, flight_page_json, flights_csv, page_json
from aeroflow.domain.events import FLIGHT_ID_PATTERN
from aeroflow.storage.port import (
    Flight,
    FlightFilter,
    FlightPage,
    FlightPageJson,
    FlightQuery,
    SortOrder,
)

router = APIRouter(prefix="/v1/flights", tags=["flights"])

OFFERED = (negotiation.JSON, negotiation.CSV)
_CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

# OpenAPI links: how a client (and the stateful fuzzer) gets from a page to the next one, whose
# cursor is only valid with the same parameters, and to one of the flights listed.
_LIST_LINKS = {
    "nextPage": {
        "operationRef": "#/paths/~1v1~1flights/get",
        "parameters": {
            "cursor": "$response.body#/next_cursor",
            **{name: f"$request.query.{name}" for name in LIST_PARAMS if name != "cursor"},
        },
        "description": "The next page: the same parameters with `cursor` = `next_cursor`.",
    },
    "firstFlight": {
        "operationRef": "#/paths/~1v1~1flights~1{flight_id}/get",
        "parameters": {"flight_id": "$response.body#/data/0/flight_id"},
        "description": "The first flight of the page.",
    },
}

FlightIdPath = Annotated[
    str,
    Path(pattern=FLIGHT_ID_PATTERN, description="e.g. `UA1545-EWR-20130101`."),
]


@router.get(
    "",
    summary="List flights",
    description="Current state of the flights matching every given filter, ordered by "
    "(scheduled_departure, flight_id). Follow `next_cursor` (or the `Link: rel=next` header) "
    "for the next page. Send `Accept: text/csv` for CSV.",
    response_model=FlightPageOut,
    responses={
        200: {
            "content": {negotiation.CSV: {"schema": {"type": "string"}}},
            "headers": {
                "Link": {
                    "description": 'Next page: `<url>; rel="next"`.',
                    "schema": {"type": "string"},
                }
            },
            "links": _LIST_LINKS,
        },
        **error_responses(400, 406, 414, 422, 503),
    },
    dependencies=[Depends(strict_query(*LIST_PARAMS))],
)
async def list_flights(
    request: Request,
    store: StoreDep,
    codec: CursorCodecDep,
    filters: Annotated[FlightFilter, Depends(flight_filter)],
    sort: SortParam = SortOrder.ASC,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Response:
    media_type = negotiation.negotiate(request.headers.get("accept"), OFFERED)
    if media_type is None:
        raise ApiError(
            406,
            ErrorCode.NOT_ACCEPTABLE,
            "this resource is available as application/json or text/csv",
        )
    after = None
    if cursor is not None:
        try:
            after = codec.decode(cursor, sort, filters)
        except InvalidCursorError as exc:
            raise ApiError(400, ErrorCode.INVALID_CURSOR, str(exc)) from None

    page = await read(
        store, store.list_flights, FlightQuery(filter=filters, sort=sort, limit=limit, after=after)
    )
    body, content_type, headers = page_parts(
        page, media_type, codec, sort, filters, request.url.path, request.query_params.multi_items()
    )
    return Response(body, media_type=content_type, headers=headers)


@router.get(
    "/{flight_id}",
    summary="Get one flight",
    response_model=FlightOut,
    responses=error_responses(404, 422, 503),
    dependencies=[Depends(strict_query())],
)
async def get_flight(flight_id: FlightIdPath, store: StoreDep) -> Response:
    return flight_response(flight_id, await read(store, store.get_flight, flight_id))


# The answers, built in one place for the routes above and for aeroflow.api.fast_reads.


def page_parts(
    page: FlightPage | FlightPageJson,
    media_type: str,
    codec: CursorCodec,
    sort: SortOrder,
    filters: FlightFilter,
    path: str,
    query_items: Iterable[tuple[str, str]],
) -> tuple[bytes, str, dict[str, str]]:
    """The page as ``media_type``: the body, its content type and the other headers (the
    route wraps them in a Response, aeroflow.api.fast_reads sends them as they are); the
    ``Link`` header is ``path`` with ``query_items`` and the cursor replaced."""
    next_cursor = None if page.next is None else codec.encode(page.next, sort, filters)
    headers = {"Vary": "Accept"}
    if next_cursor is not None:
        headers["Link"] = f'<{_next_url(path, query_items, next_cursor)}>; rel="next"'
    if isinstance(page, FlightPageJson):
        return page_json(page.data, next_cursor), negotiation.JSON, headers
    if media_type == negotiation.CSV:
        return flights_csv(page.flights), _CSV_MEDIA_TYPE, headers
    return flight_page_json(page.flights, next_cursor), negotiation.JSON, headers


def flight_response(flight_id: str, flight: Flight | None) -> Response:
    """The flight, or ApiError 404 for an id matching FLIGHT_ID_PATTERN that is not stored."""
    return Response(flight_body(flight_id, flight), media_type=negotiation.JSON)


def flight_body(flight_id: str, flight: Flight | None) -> bytes:
    """:func:`flight_response`'s JSON body (its content type is ``negotiation.JSON``)."""
    if flight is None:
        # The id matched FLIGHT_ID_PATTERN, so echoing it is safe.
        raise ApiError(404, ErrorCode.NOT_FOUND, f"flight {flight_id} not found")
    return flight_json(flight)


def _next_url(path: str, query_items: Iterable[tuple[str, str]], next_cursor: str) -> str:
    """The request's URL (path relative) with the cursor replaced; other parameters kept."""
    params = [(k, v) for k, v in query_items if k != "cursor"]
    params.append(("cursor", next_cursor))
    return f"{path}?{urlencode(params)}"
