"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``.

Clients branch on ``code`` (stable, machine-readable); ``message`` is for people; ``details`` is a
list of objects whose keys depend on the code (``loc``/``msg``/``type`` for validation errors,
``parameter`` for unknown parameters). No handler echoes user input at length, and none ever
returns a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from aeroflow.storage.port import StorageUnavailableError

logger = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
STORAGE_RETRY_AFTER_SECONDS = 5
_MAX_DETAILS = 20
_MAX_LOC_PART_CHARS = 64


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_PARAMETER = "unknown_parameter"
    INVALID_CURSOR = "invalid_cursor"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    URI_TOO_LONG = "uri_too_long"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"


_CODE_BY_STATUS: Mapping[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    414: ErrorCode.URI_TOO_LONG,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
    500: ErrorCode.INTERNAL,
    503: ErrorCode.UNAVAILABLE,
}


class ApiError(Exception):
    """Raised by routes and dependencies for a deliberate, documented error response."""

    def __init__(
        self,
        status_code: int,
        code: ErrorCode,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Sequence[Mapping[str, Any]] = ()) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": list(details)}})


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(code, message, details),
        status_code=status_code,
        headers=headers,
        media_type=JSON_MEDIA_TYPE,
    )


def code_for_status(status_code: int) -> str:
    known = _CODE_BY_STATUS.get(status_code)
    if known is not None:
        return known.value
    return ErrorCode.BAD_REQUEST.value if status_code < 500 else ErrorCode.INTERNAL.value


def internal_error_response() -> Response:
    return error_response(500, ErrorCode.INTERNAL, "internal server error")


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors without ``input``/``ctx``/``url``: the input may be megabytes of junk."""
    details: list[dict[str, Any]] = []
    for error in errors[:_MAX_DETAILS]:
        loc = [
            part if isinstance(part, int) else str(part)[:_MAX_LOC_PART_CHARS]
            for part in error.get("loc", ())
        ]
        details.append({"loc": loc, "msg": str(error.get("msg", "")), "type": error.get("type")})
    return details


def api_error_response(exc: ApiError) -> Response:
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    return api_error_response(exc)


async def _http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    if status < 200 or status in (204, 304):  # statuses that must not carry a body
        return Response(status_code=status, headers=exc.headers)
    return error_response(status, code_for_status(status), message, (), exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    return error_response(
        422, ErrorCode.VALIDATION_ERROR, "invalid request", validation_details(exc.errors())
    )


def storage_unavailable_response(path: str, exc: Exception) -> Response:
    """503 with Retry-After for a StorageUnavailableError (logged: the store is in trouble)."""
    logger.warning("storage unavailable", extra={"path": path, "error": str(exc)})
    return error_response(
        503,
        ErrorCode.UNAVAILABLE,
        "storage is temporarily unavailable; retry later",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
    )


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    return storage_unavailable_response(request.url.path, exc)


async def _last_resort(request: Request, exc: Exception) -> Response:
    # Normally InternalErrorMiddleware answers first; this covers failures outside it.
    logger.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return internal_error_response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StorageUnavailableError, _storage_unavailable)
    app.add_exception_handler(Exception, _last_resort)
