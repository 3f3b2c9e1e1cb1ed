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
from urllib.parse import unquote

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
    items = query_items(query_string)
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


def query_items(query_string: bytes) -> list[tuple[str, str]]:
    """``parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)``, without its
    generic argument handling (a few microseconds of each request)."""
    items: list[tuple[str, str]] = []
    for part in query_string.decode("latin-1").split("&"):
        if part:
            name, _, value = part.partition("=")
            if "+" in name:
                name = name.replace("+", " ")
            if "+" in value:
                value = value.replace("+", " ")
            # unquote returns its argument when there is no escape in it.
            items.append((unquote(name), unquote(value)))
    return items


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


class PlainResponse:
    """A 200 exactly as starlette's ``Response(body, media_type=..., headers=...)`` sends it
    (the same headers in the same order), without building one. Shares the attributes the
    read lane (aeroflow.api.middleware.lane) reads of any starlette ``Response``."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        raw = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ]
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
        raw.append((b"content-type", _content_type(content_type)))
        self.status_code = 200
        self.raw_headers = raw
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


_CONTENT_TYPES: dict[str, bytes] = {}


def _content_type(media_type: str) -> bytes:
    """The header value starlette writes for ``media_type`` (a charset added to text types)."""
    found = _CONTENT_TYPES.get(media_type)
    if found is None:
        value = media_type
        if value.startswith("text/") and "charset=" not in value.lower():
            value += "; charset=utf-8"
        found = _CONTENT_TYPES[media_type] = value.encode("latin-1")
    return found


Answer = PlainResponse | Response


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
        response = await self.answer(scope)
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def answer(self, scope: Scope) -> Answer | None:
        """This layer's answer to the request (``scope["route"]`` set to its route), or None
        when the request is the route's to answer."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        try:
            if path == LIST_PATH:
                return await self._list(scope)
            if path.startswith(_ITEM_PREFIX) and not scope["query_string"]:
                return await self._item(scope, path[len(_ITEM_PREFIX) :])
        except ApiError as exc:
            return api_error_response(exc)
        except StorageUnavailableError as exc:
            return storage_unavailable_response(path, exc)
        return None

    async def _list(self, scope: Scope) -> Answer | None:
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
        return PlainResponse(
            *flights.page_parts(
                page,
                media_type,
                self._codec,
                request.sort,
                request.filters,
                LIST_PATH,
                request.items,
            )
        )

    async def _item(self, scope: Scope, flight_id: str) -> Answer | None:
        if not FLIGHT_ID_RE.fullmatch(flight_id):
            return None
        scope["route"] = self._item_route
        store = self._store
        flight = await read(store, store.get_flight, flight_id)
        return PlainResponse(flights.flight_body(flight_id, flight), negotiation.JSON, {})


def _accept(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"accept":
            return str(value.decode("latin-1"))
    return None
