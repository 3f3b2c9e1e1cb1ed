"""The /status page: SLO attainment, error budget, ingest rate, freshness and API latency.

``GET /status`` is a static HTML page; its script polls ``GET /status/data.json`` (built by
:class:`aeroflow.observability.slo_status.StatusSampler` from this process's own metrics) and
draws the charts with uPlot, vendored under ``api/static/status`` (no CDN). Assets are served
from a fixed allow-list, so no request path ever reaches the file system.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry

from aeroflow.observability.slo_status import StatusSampler

_STATIC = ("aeroflow.api", "static/status")
_ASSETS: dict[str, str] = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
}
# Scripts and styles from this origin only; uPlot sizes its elements through the style
# attribute, hence 'unsafe-inline' for styles (never for scripts).
STATUS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_HEADERS = {"content-security-policy": STATUS_CSP, "cache-control": "no-cache"}
_ASSET_HEADERS = {"content-security-policy": STATUS_CSP, "cache-control": "public, max-age=3600"}


def _read(name: str) -> bytes:
    package, folder = _STATIC
    return resources.files(package).joinpath(folder, name).read_bytes()


def create_status_router(
    *,
    registry: CollectorRegistry = REGISTRY,
    sample_interval_seconds: float = 10.0,
    history: int = 360,
    prefix: str = "/status",
) -> APIRouter:
    """Routes ``{prefix}``, ``{prefix}/data.json`` and ``{prefix}/assets/{name}``.

    The router's lifespan samples the registry every ``sample_interval_seconds`` while the
    app runs (``history`` points kept: one hour at the defaults); a request also samples when
    the newest point is older than the interval, so the page works even without the lifespan.
    """
    sampler = StatusSampler(registry, interval_seconds=sample_interval_seconds, history=history)
    page = _read("index.html").decode().replace("{{prefix}}", prefix).encode()
    assets = {name: _read(name) for name in _ASSETS}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def sample_forever() -> None:
            while True:
                sampler.sample()
                await asyncio.sleep(sample_interval_seconds)

        task = asyncio.create_task(sample_forever(), name="status-sampler")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    router = APIRouter(prefix=prefix, tags=["status"], lifespan=lifespan)

    @router.get("", response_class=HTMLResponse, summary="Service status page (HTML)")
    async def status_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @router.get("/data.json", summary="Service status figures behind the status page")
    async def status_data() -> JSONResponse:
        sampler.sample_if_due()
        report: dict[str, Any] = sampler.report()
        return JSONResponse(report, headers={"cache-control": "no-store"})

    @router.get("/assets/{name}", include_in_schema=False)
    async def status_asset(name: str) -> Response:
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status_code=404, detail="no such asset")
        return Response(assets[name], media_type=media_type, headers=_ASSET_HEADERS)

    return router
