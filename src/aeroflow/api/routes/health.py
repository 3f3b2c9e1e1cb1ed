"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import orjson
from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from aeroflow.api.dependencies import StoreDep
from aeroflow.api.errors import ErrorCode, error_response
from aeroflow.api.params import strict_query
from aeroflow.api.schemas import StatusOut, error_responses

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"], dependencies=[Depends(strict_query())])

_OK = orjson.dumps({"status": "ok"})
_READY = orjson.dumps({"status": "ready"})
_READINESS_RETRY_AFTER = "5"

# Returns None when healthy, else a short reason; must be cheap and must not block.
ReadinessCheck = Callable[[], str | None]


@router.get("/healthz", summary="Liveness: the process serves requests", response_model=StatusOut)
async def healthz() -> Response:
    return Response(_OK, media_type="application/json")


@router.get(
    "/readyz",
    summary="Readiness: the store answers",
    response_model=StatusOut,
    responses=error_responses(503),
)
async def readyz(request: Request, store: StoreDep) -> Response:
    try:
        await run_in_threadpool(store.ping)  # a query, even with an in-memory read model
    except Exception:
        # Whatever the failure, this instance cannot serve reads: take it out of rotation.
        logger.warning("readiness check failed", exc_info=True)
        return _not_ready("storage is not reachable")
    # A store can answer SELECT 1 while it cannot write (a full disk): ingest says so here.
    checks = cast(tuple[ReadinessCheck, ...], request.app.state.readiness_checks)
    for check in checks:
        reason = check()
        if reason is not None:
            return _not_ready(reason)
    return Response(_READY, media_type="application/json")


def _not_ready(reason: str) -> Response:
    return error_response(
        503, ErrorCode.UNAVAILABLE, reason, headers={"Retry-After": _READINESS_RETRY_AFTER}
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
