"""``GET /v1/flights`` and ``GET /v1/flights/{id}`` without FastAPI's per-request machinery,
for requests that are plainly valid.

FastAPI solves the dependency tree and validates each parameter through pydantic on every
request: once the store answers from memory, that is most of the CPU a page costs. This ASGI
layer, innermost (inside the response cache, so it is still keyed, authorised, limited,
counted and logged like any request), answers the common case itself: a query whose
parameters are all known, each given once, spelled as it recognises them (canonical integers,
upper-case codes, the same date-time parser as the route), with a usable ``Accept`` and, if
any, a valid cursor. Everything else (every error, every spelling it does not recognise)
goes on to the FastAPI route, which stays the one definition of the contract. Both paths
build the answer with the route module's functions, so a request gets the same status,
headers and bytes either way (tests/api/test_fast_reads.py holds them to that).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, TypeVar
from urllib.parse import parse_qsl

from fastapi.exceptions import RequestValidationError
from pydantic_core import PydanticCustomError
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from aeroflow.api import negotiation
from aeroflow.api.cursor import CursorCodec, InvalidCursorError
from aeroflow.api.errors import ApiError, api_error_response, storage_unavailable_response
from aeroflow.api.params import (
    DEFAULT_LIMIT,
    LIST_PARAMS,
    MAX_DELAY_FILTER,
    MAX_LIMIT,
    build_filter,
    parse_time_bound,
)
from aeroflow.api.reads import read
from aeroflow.api.routes import flights
from aeroflow.domain.events import AIRPORT_PATTERN, CARRIER_PATTERN, FLIGHT_ID_RE, FlightStatus
from aeroflow.storage.port import (
    FlightFilter,
    FlightPage,
    FlightPageJson,
    FlightQuery,
    FlightStore,
    SortOrder,
    StorageUnavailableError,
    json_page_reader,
)

LIST_PATH: Final = "/v1/flights"
_ITEM_PREFIX: Final = LIST_PATH + "/"
_LIST_NAMES: Final = frozenset(LIST_PARAMS)
# The route's own patterns (anchored; matched with fullmatch, so no trailing newline passes).
_CARRIER_RE: Final = re.compile(CARRIER_PATTERN)
_AIRPORT_RE: Final = re.compile(AIRPORT_PATTERN)
# Canonical spellings only; pydantic accepts more ("+5", " 5", "05"), and those go the long way.
_LIMIT_RE: Final = re.compile(r"[1-9][0-9]{0,3}")
_DELAY_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,5})")
_STATUSES: Final = {status.value: status for status in FlightStatus}
_SORTS: Final = {order.value: order for order in SortOrder}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ListRequest:
    filters: FlightFilter
    sort: SortOrder
    limit: int
    cursor: str | None
    items: list[tuple[str, str]]  # the query as parsed, for the Link header


def parse_list_query(query_string: bytes) -> ListRequest | None:
    """The request if the route would accept it exactly so; None to let the route decide."""
    # Parsed as Starlette parses request.query_params, so the Link header comes out the same.
    items = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    values: dict[str, str] = {}
    for name, value in items:
        if name not in _LIST_NAMES or name in values or not value:
            return None
        values[name] = value
    try:
        filters = build_filter(
            _code(values.get("carrier"), _CARRIER_RE),
            _code(values.get("origin"), _AIRPORT_RE),
            _code(values.get("destination"), _AIRPORT_RE),
            _choice(values.get("status"), _STATUSES),
            _time_bound(values.get("departure_from")),
            _time_bound(values.get("departure_to")),
            _integer(values.get("min_dep_delay"), _DELAY_RE, MAX_DELAY_FILTER),
        )
        sort = _choice(values.get("sort"), _SORTS) or SortOrder.ASC
        limit = _integer(values.get("limit"), _LIMIT_RE, MAX_LIMIT) or DEFAULT_LIMIT
    except (_NotPlain, PydanticCustomError, RequestValidationError):
        return None
    return ListRequest(filters, sort, limit, values.get("cursor"), items)


class _NotPlain(Exception):
    """A value this layer does not vouch for; the route validates it."""


def _code(value: str | None, pattern: re.Pattern[str]) -> str | None:
    if value is not None and not pattern.fullmatch(value):
        raise _NotPlain
    return value


def _choice(value: str | None, choices: dict[str, _T]) -> _T | None:
    if value is None:
        return None
    found = choices.get(value)
    if found is None:
        raise _NotPlain
    return found


def _time_bound(value: str | None) -> date | datetime | None:
    return None if value is None else parse_time_bound(value)


def _integer(value: str | None, pattern: re.Pattern[str], bound: int) -> int | None:
    if value is None:
        return None
    if not pattern.fullmatch(value) or not -bound <= (number := int(value)) <= bound:
        raise _NotPlain
    return number


class FastReads:
    """Answers plainly valid flight reads itself; passes every other request to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: FlightStore,
        codec: CursorCodec,
        routes: Iterable[BaseRoute],
    ) -> None:
        self.app = app
        self._store = store
        self._codec = codec
        self._list_json = json_page_reader(store)
        # The routes' own objects, so metrics and the access log label these answers alike.
        by_endpoint = {getattr(route, "endpoint", None): route for route in routes}
        self._list_route = by_endpoint[flights.list_flights]
        self._item_route = by_endpoint[flights.get_flight]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response | None = None
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            path: str = scope["path"]
            try:
                if path == LIST_PATH:
                    response = await self._list(scope)
                elif path.startswith(_ITEM_PREFIX) and not scope["query_string"]:
                    response = await self._item(scope, path[len(_ITEM_PREFIX) :])
            except ApiError as exc:
                response = api_error_response(exc)
            except StorageUnavailableError as exc:
                response = storage_unavailable_response(path, exc)
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _list(self, scope: Scope) -> Response | None:
        request = parse_list_query(scope["query_string"])
        if request is None:
            return None
        media_type = negotiation.negotiate(_accept(scope), flights.OFFERED)
        if media_type is None:
            return None
        after = None
        if request.cursor is not None:
            try:
                after = self._codec.decode(request.cursor, request.sort, request.filters)
            except InvalidCursorError:
                return None
        scope["route"] = self._list_route
        store = self._store
        query = FlightQuery(request.filters, request.sort, request.limit, after)
        page: FlightPage | FlightPageJson
        if media_type == negotiation.JSON:
            # Written by the store where it can (the read model: no Flight objects).
            page = await read(store, self._list_json, query)
        else:
            page = await read(store, store.list_flights, query)
        return flights.page_response(
            page, media_type, self._codec, request.sort, request.filters, LIST_PATH, request.items
        )

    async def _item(self, scope: Scope, flight_id: str) -> Response | None:
        if not FLIGHT_ID_RE.fullmatch(flight_id):
            return None
        scope["route"] = self._item_route
        store = self._store
        return flights.flight_response(flight_id, await read(store, store.get_flight, flight_id))


def _accept(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"accept":
            return str(value.decode("latin-1"))
    return None
